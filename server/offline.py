"""The service worker's build: which URLs a page needs to start with the server gone, and a version
that changes whenever any of them does.

`/sw.js` is web/sw.js with its `const BUILD = null;` line replaced by this build (`service_worker`).
The browser compares the script byte for byte on each visit, so a new build (a changed page, wheel,
lock, snapshot or model list) installs a new service worker, which saves the new files under a new
cache name and then deletes the old cache: a page never mixes files of two versions.

What is saved is what a page fetches when it starts on the default (wasm) backend: the pages and
their modules (all of web/), the two JSON answers, Pyodide's core, the lock the pages boot from and
its wheels, the stdlib, the vocab, and onnxruntime-web's wasm build. Model files and the Python
snapshot are not listed: the pages keep their own copies of both (web/js/runtime/model-fetch.js,
python-snapshot.js).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from .settings import Settings, package_version

SERVICE_WORKER = "sw.js"
# The line of web/sw.js that the build replaces; the worker refuses to run without it.
BUILD_PLACEHOLDER = "const BUILD = null;"
# onnxruntime-web's files for the wasm backend: the bundle web/js/runtime/ort-backend.js imports
# (BUNDLES.wasm) and the threaded SIMD build it loads from wasmPaths.
ORT_WASM_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PYODIDE_CORE_FILES = ("pyodide.mjs", "pyodide.asm.js", "pyodide.asm.wasm")
PYODIDE_STDLIB = "python_stdlib.zip"
API_PATHS = ("/api/runtime", "/api/models")


def _web_files(web_dir: Path) -> list[Path]:
    return sorted(p for p in web_dir.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.relative_to(web_dir).as_posix() != SERVICE_WORKER)


def _url_to_path(url: str, settings: Settings, runtime: dict) -> Path | None:
    """The file on disk behind one of /api/runtime's URLs (None for a URL outside the runtime)."""
    from .assets import ort_dir, pyodide_dir, vocab_path

    roots = {
        runtime["pyodide_index_url"]: pyodide_dir(settings.assets_dir),
        runtime["ort_base_url"]: ort_dir(settings.assets_dir),
        runtime["vocab_url"].rsplit("/", 1)[0] + "/": vocab_path(settings.assets_dir).parent,
    }
    for prefix, folder in roots.items():
        if url.startswith(prefix):
            return folder / url[len(prefix):]
    return None


def runtime_urls(settings: Settings, runtime: dict) -> list[str]:
    """The runtime files a page fetches on the wasm backend, from /api/runtime's answer."""
    index = runtime["pyodide_index_url"]
    precompiled = runtime.get("pyodide_precompiled")
    lock_url = precompiled["lock_url"] if precompiled else runtime["pyodide_lock_url"]
    urls = [index + name for name in PYODIDE_CORE_FILES]
    urls += [lock_url, precompiled["stdlib_url"] if precompiled else index + PYODIDE_STDLIB]
    lock = json.loads(_url_to_path(lock_url, settings, runtime).read_text())
    urls += [index + package["file_name"] for _, package in sorted(lock["packages"].items())]
    # Not the served Python snapshot (52 MB): a page adopts it as its own (Cache Storage
    # clip-web-python-v1), and without one it boots normally, offline too, from the files above.
    urls.append(runtime["vocab_url"])
    urls += [runtime["ort_base_url"] + name for name in ORT_WASM_FILES]
    return sorted(set(urls))


def build(settings: Settings, answer: Callable[[str], bytes]) -> dict:
    """{version, files}: `answer(path)` is the app's own body for an API path."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("clip-web", package_version().encode())
    add(SERVICE_WORKER, (settings.web_dir / SERVICE_WORKER).read_bytes())  # its own code, not in the list
    pages = []
    for path in _web_files(settings.web_dir):
        rel = path.relative_to(settings.web_dir).as_posix()
        pages.append("/" + rel)
        add(rel, hashlib.sha256(path.read_bytes()).digest())
    answers = {path: answer(path) for path in API_PATHS}
    for path, body in answers.items():
        add(path, body)
    runtime = json.loads(answers["/api/runtime"])
    files = runtime_urls(settings, runtime)
    for url in files:
        file = _url_to_path(url, settings, runtime)
        # Versioned names (Pyodide, onnxruntime-web, wheels, the snapshot's digest) change with
        # their bytes; the locks do not, but they hold every wheel's sha256.
        add(url, file.read_bytes() if url.endswith(".json") else str(file.stat().st_size).encode())
    from .app import IMMUTABLE, _pyodide_cache_control

    index = runtime["pyodide_index_url"]
    immutable = [url for url in files if not url.startswith(index) or _pyodide_cache_control(url) == IMMUTABLE]
    return {
        "version": f"{package_version()}+{digest.hexdigest()[:12]}",
        "files": sorted(["/", *pages, *API_PATHS, *files]),
        # What the server sends as immutable (versioned names): the saved copy is served first.
        "immutable": sorted(immutable),
    }


def service_worker(settings: Settings, answer: Callable[[str], bytes]) -> bytes:
    """web/sw.js with this build filled in."""
    source = (settings.web_dir / SERVICE_WORKER).read_text()
    if source.count(BUILD_PLACEHOLDER) != 1:
        raise ValueError(f"{settings.web_dir / SERVICE_WORKER} must contain the line {BUILD_PLACEHOLDER!r} exactly once")
    line = f"const BUILD = {json.dumps(build(settings, answer), indent=1)};"
    return source.replace(BUILD_PLACEHOLDER, line).encode()
