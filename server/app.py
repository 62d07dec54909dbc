"""The FastAPI app: static pages, the self-hosted runtime, models, and two small JSON endpoints.

URL map:
    /                       web/ (pages, JS modules, CSS)
    /assets/pyodide-X/      Pyodide core, wheels, pyapp's wheel, clip-web-lock.json, and
                            snapshots/: the Python memory snapshot first visits restore
    /assets/ort-X/          onnxruntime-web
    /assets/vocab/          OpenAI's BPE merges file
    /models/                the local models folder (--models-dir), when given
    /api/runtime            where the browser finds all of the above
    /api/models             model manifests: presets + the local folder
    /embed                  the widget in an iframe, with a postMessage API
    /sw.js                  the service worker that keeps the app usable offline (server/offline.py)
    /healthz                liveness, and whether the assets are in place
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import Headers
from starlette.staticfiles import NotModifiedResponse, StaticFiles

from pyapp.constants import BPE_VOCAB_FILENAME

from . import pins
from .csp import policy_for
from .assets import ENCODING_SUFFIXES, LOCK_NAME, encoded_dir, missing_assets, ort_dir, pyodide_dir, vocab_path
from .middleware import RequestLogMiddleware, SecurityHeadersMiddleware
from .precompile import FOLDER as PYC_FOLDER, PYC_LOCK_NAME, STDLIB_NAME as PYC_STDLIB
from .models import list_models
from . import offline
from .python_snapshot import FOLDER as SNAPSHOT_FOLDER, PREFIX as SNAPSHOT_PREFIX, current_snapshot, inputs as snapshot_inputs
from .settings import Settings

# Python 3.11's table lacks or misnames these; browsers refuse module scripts and streaming wasm
# compilation with the wrong type.
for _type, _ext in (
    ("text/javascript", ".mjs"),
    ("text/javascript", ".js"),
    ("application/wasm", ".wasm"),
    ("application/octet-stream", ".onnx"),
    ("application/zip", ".whl"),
    ("application/json", ".json"),
    ("application/manifest+json", ".webmanifest"),
):
    mimetypes.add_type(_type, _ext)

IMMUTABLE = "public, max-age=31536000, immutable"
GET_HEAD = ["GET", "HEAD"]  # HEAD wherever GET works (StaticFiles already answers both)
REVALIDATE = "no-cache"  # may be cached, but is checked with its ETag each time


def _accepts(accept_encoding: str, coding: str) -> bool:
    """Whether an Accept-Encoding header allows `coding` (q > 0, by name or by `*`)."""
    weights = {}
    for item in accept_encoding.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name:
            weights[name.lower()] = q
    return weights.get(coding, weights.get("*", 0.0)) > 0


class CachedStaticFiles(StaticFiles):
    """StaticFiles (which keeps paths inside its folder and answers If-None-Match with 304)
    with an explicit Cache-Control, gzip files served as opaque bytes, and, where `encoded` holds
    a precompressed copy (see server/assets.py), that copy for browsers that accept its encoding."""

    def __init__(self, *args, cache_control=lambda path: REVALIDATE, encoded: Path | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._cache_control = cache_control
        self._encoded = encoded

    def file_response(self, full_path, stat_result, scope, status_code=200):
        copies = self._copies(full_path, stat_result)
        chosen = self._choose(copies, scope) if status_code == 200 else None
        if chosen is None:
            response = super().file_response(full_path, stat_result, scope, status_code)
        else:
            response = self._encoded_response(full_path, stat_result, scope, *chosen)
        path = str(full_path)
        response.headers["Cache-Control"] = self._cache_control(path)
        if copies:
            # Caches must keep the identity and the compressed answers apart.
            response.headers["Vary"] = "Accept-Encoding"
        if path.endswith(".gz"):
            # The BPE vocab is a gzip *file*; no Content-Encoding, so the browser keeps the bytes.
            response.headers["Content-Type"] = "application/gzip"
        return response

    def _copies(self, full_path, stat_result) -> dict:
        """coding -> (path, stat) of the current precompressed copies of this file."""
        if self._encoded is None:
            return {}
        relative = os.path.relpath(full_path, os.path.realpath(self.directory))
        copies = {}
        for coding, suffix in ENCODING_SUFFIXES.items():
            copy = os.path.join(self._encoded, relative + suffix)
            try:
                copy_stat = os.stat(copy)
            except OSError:
                continue
            # `clip-web assets` gives a copy its source's mtime; a source replaced since then differs.
            if copy_stat.st_mtime_ns == stat_result.st_mtime_ns:
                copies[coding] = (copy, copy_stat)
        return copies

    @staticmethod
    def _choose(copies: dict, scope):
        headers = Headers(scope=scope)
        # Ranges are ranges of the identity bytes (model pulls, browsers resuming a download).
        if not copies or "range" in headers:
            return None
        accept = headers.get("accept-encoding", "")
        return next(((coding, *copies[coding]) for coding in copies if _accepts(accept, coding)), None)

    def _encoded_response(self, full_path, stat_result, scope, coding, copy, copy_stat):
        # The original's type and an ETag of its own: a cache holding one encoding must not
        # have its ETag match the other's bytes.
        identity_etag = FileResponse(full_path, stat_result=stat_result).headers["etag"]
        response = FileResponse(
            copy,
            stat_result=copy_stat,
            media_type=mimetypes.guess_type(str(full_path))[0] or "application/octet-stream",
            headers={"Content-Encoding": coding, "ETag": f'{identity_etag[:-1]}-{coding}"'},
        )
        if self.is_not_modified(response.headers, Headers(scope=scope)):
            return NotModifiedResponse(response.headers)
        return response


def _pyodide_cache_control(path: str) -> str:
    # Our locks and pyapp's wheel change with pyapp's code; the compiled copies in pyc/ keep their
    # names when the recipe that makes them changes (a stale cached wheel would then fail its
    # lock's sha256). Everything else there is versioned.
    folder, _, name = path.rpartition("/")
    if name in (LOCK_NAME, PYC_LOCK_NAME) or name.startswith("pyapp-") or folder.endswith("/" + PYC_FOLDER):
        return REVALIDATE
    return IMMUTABLE


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="clip-web", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings

    @app.api_route("/healthz", methods=GET_HEAD)
    def healthz():
        missing = missing_assets(settings.assets_dir)
        return {"status": "ok", "assets_ready": not missing, "missing_assets": missing}

    # The snapshot's name is a digest of ~15 MB of inputs: worked out once, not on every page load,
    # and again only when its file or lock is gone (`clip-web assets` rebuilt them meanwhile).
    served = {}

    def _served_snapshot() -> tuple[str, str] | None:
        if not settings.python_snapshot:
            return None
        folder = pyodide_dir(settings.assets_dir)
        if "answer" in served:
            known = served["answer"]
            if known and (folder / known[0]).exists() and (folder / known[1]).exists():
                return known
            if known is None and not any((folder / SNAPSHOT_FOLDER).glob(SNAPSHOT_PREFIX + "*.bin")):
                return None  # still none built
        folder, lock, vocab, prepare = snapshot_inputs(settings.assets_dir, settings.web_dir)
        path = current_snapshot(folder, lock, vocab, prepare)
        served["answer"] = (path, lock.name) if path else None
        return served["answer"]

    @app.api_route("/api/runtime", methods=GET_HEAD)
    def runtime():
        pyodide = f"/assets/pyodide-{pins.PYODIDE_VERSION}/"
        return {
            "pyodide_version": pins.PYODIDE_VERSION,
            "ort_version": pins.ORT_WEB_VERSION,
            "pyodide_index_url": pyodide,
            "pyodide_lock_url": pyodide + LOCK_NAME,
            "ort_base_url": f"/assets/ort-{pins.ORT_WEB_VERSION}/",
            "vocab_url": f"/assets/vocab/{BPE_VOCAB_FILENAME}",
            # The precompiled stdlib and wheels (server/precompile.py), null when not built: the
            # pages then load the plain ones above.
            "pyodide_precompiled": {"lock_url": pyodide + PYC_LOCK_NAME, "stdlib_url": pyodide + f"{PYC_FOLDER}/{PYC_STDLIB}"}
            if (pyodide_dir(settings.assets_dir) / PYC_LOCK_NAME).exists() else None,
            # null when it was not built (no Node): pages then boot Pyodide and make their own.
            # It may be restored only by a page that loads the lock it was made with.
            "python_snapshot": {"url": pyodide + snapshot[0], "lock_url": pyodide + snapshot[1]} if (snapshot := _served_snapshot()) else None,
        }

    @app.api_route("/embed", methods=GET_HEAD)
    def embed():
        # The widget in an iframe (web/embed.html); the query string carries its settings.
        return FileResponse(settings.web_dir / "embed.html", headers={"Cache-Control": REVALIDATE})

    @app.api_route("/api/models", methods=GET_HEAD)
    def models():
        try:
            return list_models(settings)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=500)

    def api_answer(path: str) -> bytes:
        """The body /api/runtime or /api/models sends, byte for byte."""
        found = {"/api/runtime": runtime, "/api/models": models}[path]()
        return found.body if isinstance(found, Response) else JSONResponse(found).body

    @app.api_route("/" + offline.SERVICE_WORKER, methods=GET_HEAD)
    def service_worker():
        # Revalidated on every visit: its bytes are the app's version (server/offline.py).
        try:
            script = offline.service_worker(settings, api_answer)
        except (OSError, ValueError, KeyError) as exc:
            return Response(f"// the service worker could not be built: {exc}\n", status_code=503,
                            media_type="text/javascript", headers={"Cache-Control": "no-store"})
        return Response(script, media_type="text/javascript", headers={"Cache-Control": REVALIDATE})

    app.mount(
        f"/assets/pyodide-{pins.PYODIDE_VERSION}",
        CachedStaticFiles(directory=pyodide_dir(settings.assets_dir), check_dir=False,
                          cache_control=_pyodide_cache_control, encoded=encoded_dir(pyodide_dir(settings.assets_dir))),
    )
    app.mount(
        f"/assets/ort-{pins.ORT_WEB_VERSION}",
        CachedStaticFiles(directory=ort_dir(settings.assets_dir), check_dir=False,
                          cache_control=lambda path: IMMUTABLE, encoded=encoded_dir(ort_dir(settings.assets_dir))),
    )
    app.mount(
        "/assets/vocab",
        CachedStaticFiles(directory=vocab_path(settings.assets_dir).parent, check_dir=False,
                          cache_control=lambda path: IMMUTABLE),
    )
    if settings.models_dir is not None:
        app.mount("/models", CachedStaticFiles(directory=settings.models_dir))
    app.mount("/", CachedStaticFiles(directory=settings.web_dir, html=True))

    app.add_middleware(SecurityHeadersMiddleware, page_policy=policy_for(settings))
    if settings.request_log is not None:
        app.add_middleware(RequestLogMiddleware, path=settings.request_log)
    return app
