"""The `clip-web` command: `assets`, `serve`, `export`, `index` and `models`."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from pathlib import Path

from . import pins
from .settings import Settings, default_assets_dir, package_version


def _fail(message: str) -> int:
    print(f"clip-web: error: {message}", file=sys.stderr)
    return 2


def cmd_assets(args) -> int:
    from .assets import AssetError, ensure_assets

    settings = Settings()
    if args.assets_dir:
        settings.assets_dir = Path(args.assets_dir).resolve()
    try:
        ensure_assets(settings.assets_dir)
    except AssetError as exc:
        return _fail(str(exc))
    return 0


def _port_free(host: str, port: int) -> str | None:
    """None if we can bind host:port now, else a sentence saying why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is already in use. Stop the other server, or pick "
                        f"another port with --port (e.g. --port {port + 1}).")
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def _settings(args) -> tuple[Settings, str | None]:
    """Settings with the options serve and export share (--models-dir, --no-python-snapshot), and
    the problem with them, if any."""
    settings = Settings()
    if args.models_dir:
        models_dir = Path(args.models_dir).resolve()
        if not models_dir.is_dir():
            return settings, f"--models-dir {args.models_dir}: no such folder"
        settings.models_dir = models_dir
    if args.no_python_snapshot:
        settings.python_snapshot = False
    return settings, None


def cmd_serve(args) -> int:
    import uvicorn

    from .app import create_app
    from .assets import missing_assets, write_lock
    from .models import ManifestError, list_models
    from .python_snapshot import ensure_snapshot, inputs

    settings, problem = _settings(args)
    if problem:
        return _fail(problem)
    if args.request_log:
        settings.request_log = Path(args.request_log).resolve()
    missing = missing_assets(settings.assets_dir)
    if missing:
        return _fail(
            f"{len(missing)} runtime assets are missing from {settings.assets_dir} "
            f"(first: {missing[0]}). Run `clip-web assets` (or `make run`) first."
        )
    try:
        write_lock(settings.assets_dir, strict=False,  # pyapp's wheel follows its sources
                   log=lambda line: print(f"clip-web: {line}", file=sys.stderr, flush=True))
        if settings.python_snapshot:  # and so does the snapshot first visits restore
            ensure_snapshot(*inputs(settings.assets_dir, settings.web_dir),
                            log=lambda line: print(f"clip-web: {line}", file=sys.stderr, flush=True))
        refused = list_models(settings).get("refused", [])
    except ManifestError as exc:
        return _fail(str(exc))
    for r in refused:
        # The pages list these as refused and offer the rest; at the terminal, say which file and why.
        where = str(settings.models_dir / r["manifest"].removeprefix("/models/"))
        print(f"clip-web: warning: {r['error'].replace(r['manifest'], where, 1)} (not offered)", file=sys.stderr, flush=True)
    problem = _port_free(args.host, args.port)
    if problem:
        return _fail(problem)
    print(f"clip-web: serving on http://{args.host}:{args.port}/", file=sys.stderr, flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_export(args) -> int:
    from .assets import AssetError
    from .export import ExportError, export
    from .models import ManifestError

    settings, problem = _settings(args)
    if problem:
        return _fail(problem)
    try:
        export(settings, Path(args.dir), force=args.force,
               log=lambda line: print(f"clip-web: {line}", file=sys.stderr, flush=True))
    except (ExportError, AssetError, ManifestError) as exc:
        return _fail(str(exc))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clip-web", description="CLIP in the browser: server and tools.")
    parser.add_argument("--version", action="version", version=f"clip-web {package_version()} "
                        f"(Pyodide {pins.PYODIDE_VERSION}, onnxruntime-web {pins.ORT_WEB_VERSION})")
    sub = parser.add_subparsers(dest="command", required=True)

    assets = sub.add_parser("assets", help="fetch and verify Pyodide, onnxruntime-web, wheels and the BPE vocab")
    assets.add_argument("--assets-dir", help=f"asset cache folder (default: {default_assets_dir()}; that is "
                        "$CLIP_WEB_ASSETS, else .assets/ in a checkout, else the user's cache folder)")
    assets.set_defaults(func=cmd_assets)

    serve = sub.add_parser("serve", help="serve the pages and the self-hosted runtime")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--models-dir", help="a local folder of models (subfolders with manifest.json)")
    serve.add_argument("--request-log", help="append one JSON line per request to this file")
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--no-python-snapshot", action="store_true",
                       help="do not offer first visits the prebuilt Python snapshot (they boot Pyodide and make their own)")
    serve.set_defaults(func=cmd_serve)

    export = sub.add_parser(
        "export", help="write the whole app as plain static files, for any static host or CDN",
        description="Write the pages, the widget, the runtime (Pyodide, onnxruntime-web, precompiled Python, "
        "the Python snapshot, the vocab), /api/runtime and /api/models as files, and optionally a models "
        "folder, into DIR, with .br/.gz copies beside the runtime files the server compresses. Also writes "
        "header rules for static hosts: DIR/_headers (Netlify, Cloudflare Pages), DIR/_deploy/nginx.conf and "
        "DIR/_deploy/Caddyfile (cross-origin isolation for wasm threads, CORS, MIME types, caching, the CSP). "
        "Serve DIR at a site's root. Hosts that cannot set headers (GitHub Pages) still work, single-threaded. "
        "See docs/deploy.md.")
    export.add_argument("dir", metavar="DIR", help="the folder to write (new or empty, unless --force)")
    export.add_argument("--models-dir", help="a local folder of models (subfolders with manifest.json), copied "
                        "to DIR/models/ and listed in api/models as `serve --models-dir` lists it")
    export.add_argument("--force", action="store_true", help="delete everything in a non-empty DIR first, then export")
    export.add_argument("--no-python-snapshot", action="store_true",
                        help="leave out the prebuilt Python snapshot (first visits boot Pyodide and make their own)")
    export.set_defaults(func=cmd_export)
    from .model_tools.cli import register as register_models
    from .native_index import register as register_index
    register_index(sub)
    register_models(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
