"""`clip-web export DIR`: the whole app as plain static files, for any static host or CDN.

Layout of an export (the same URLs `clip-web serve` answers, so every page works unchanged):

    index.html, image.html, ...     web/ (pages, JS modules, CSS, widget.js)
    assets/pyodide-X/               Pyodide, the wheels, our locks, pyc/, snapshots/
    assets/ort-X/                   onnxruntime-web
    assets/vocab/                   OpenAI's BPE merges file
    api/runtime, api/models         the two JSON answers, as files (made by the app itself)
    sw.js                           the service worker with this export's build (server/offline.py)
    models/                         --models-dir, copied as the server serves it
    FILE.br, FILE.gz                beside a runtime file: its precompressed copies, where the
                                    server has current ones (for nginx gzip_static, Caddy precompressed)
    _headers                        Netlify / Cloudflare Pages header rules
    _deploy/nginx.conf              an nginx snippet: include it in a `server {}` whose root is here
    _deploy/Caddyfile               a Caddy site block

The header files carry what server/middleware.py, server/csp.py and server/app.py's Cache-Control
rules send, from one list of rules (`header_rules`). The JSON files are the app's own answers: the
export builds the FastAPI app and asks it, in process, so they cannot drift from `serve`. Their URLs
are root-relative (`/assets/...`), as the server's are: an export is served at a site's root.
Output is deterministic: the same inputs give the same files, byte for byte.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import pins
from .assets import ENCODING_SUFFIXES, encoded_dir, missing_assets, ort_dir, pyodide_dir, vocab_path
from .csp import FRAMED_BY_ANY_SITE, frame_ancestors, policy_for
from .middleware import COMMON_HEADERS
from .offline import API_PATHS, SERVICE_WORKER
from .python_snapshot import FOLDER as SNAPSHOT_FOLDER
from .settings import Settings

DEPLOY_FOLDER = "_deploy"
# The app's own answers written as files: the JSON answers, and the service worker, whose build
# (version, saved files) is made from them.
APP_ANSWERS = (*API_PATHS, "/" + SERVICE_WORKER)
JSON_TYPE = "application/json"


class ExportError(RuntimeError):
    """The export cannot be made (assets missing, target not empty, the app answered an error)."""


def _asgi_get(app, path: str) -> tuple[int, dict, bytes]:
    """GET `path` from an ASGI app in this process: (status, headers, body)."""
    messages: list[dict] = []
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"export.invalid")], "client": ("127.0.0.1", 0), "server": ("export.invalid", 80),
    }

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, body


# --- what gets copied --------------------------------------------------------------------------


def _files(folder: Path) -> list[Path]:
    """Every file under `folder` (symlinks followed), sorted, without dotfiles (stamps)."""
    out = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
    return sorted(out)


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    st = src.stat()
    os.utime(dest, ns=(st.st_mtime_ns, st.st_mtime_ns))  # Last-Modified as the server sends it


def _runtime_folders(settings: Settings) -> list[tuple[Path, str, bool]]:
    """(folder, URL path under the site, has precompressed copies) as server/app.py mounts them."""
    return [
        (pyodide_dir(settings.assets_dir), f"assets/pyodide-{pins.PYODIDE_VERSION}", True),
        (ort_dir(settings.assets_dir), f"assets/ort-{pins.ORT_WEB_VERSION}", True),
        (vocab_path(settings.assets_dir).parent, "assets/vocab", False),
    ]


def _current_copies(folder: Path, path: Path) -> dict[str, Path]:
    """coding -> the precompressed copy of `path` the server would send (server/app.py decides)."""
    from .app import CachedStaticFiles

    files = CachedStaticFiles(directory=folder, check_dir=False, encoded=encoded_dir(folder))
    return {coding: Path(copy) for coding, (copy, _) in files._copies(os.path.realpath(path), path.stat()).items()}


# --- header rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Headers for one URL (`exact`) or everything under a folder URL ending in `/` (a prefix).
    The most specific rule for a URL gives its Cache-Control and CSP (and type, when set)."""

    path: str
    exact: bool
    cache_control: str
    csp: str
    content_type: str | None = None

    def headers(self) -> dict[str, str]:
        out = {"Cache-Control": self.cache_control, "Content-Security-Policy": self.csp}
        if self.content_type:
            out["Content-Type"] = self.content_type
        return out


def header_rules(settings: Settings, dest: Path) -> list[Rule]:
    """What `clip-web serve` sends, as rules over the export's URLs (sorted, most general first)."""
    from .app import IMMUTABLE, REVALIDATE, _pyodide_cache_control

    policy = policy_for(settings)
    rules = [Rule("/", False, REVALIDATE, frame_ancestors("/"))]
    # Pages: every web/*.html, "/" (index.html), and /embed (embed.html, framed by any site).
    pages = sorted(p.name for p in settings.web_dir.glob("*.html"))
    for name in pages:
        rules.append(Rule("/" + name, True, REVALIDATE, policy("/" + name)))
    for path in FRAMED_BY_ANY_SITE:
        rules.append(Rule(path, True, REVALIDATE, policy(path)))
    for path in API_PATHS:  # the server sends no Cache-Control on them; a static host must revalidate
        rules.append(Rule(path, True, REVALIDATE, frame_ancestors(path), JSON_TYPE))
    pyodide = f"/assets/pyodide-{pins.PYODIDE_VERSION}/"
    rules.append(Rule(pyodide, False, IMMUTABLE, frame_ancestors(pyodide)))
    # The exceptions in that folder, by server/app.py's own function.
    folder = dest / pyodide.strip("/")
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        url = pyodide + entry.name
        if entry.is_dir():
            rule = _pyodide_cache_control(str(entry / "x"))
            if rule != IMMUTABLE:
                rules.append(Rule(url + "/", False, rule, frame_ancestors(url)))
        elif not _is_copy(entry) and _pyodide_cache_control(str(entry)) != IMMUTABLE:
            rules.append(Rule(url, True, _pyodide_cache_control(str(entry)), frame_ancestors(url)))
    rules.append(Rule(f"/assets/ort-{pins.ORT_WEB_VERSION}/", False, IMMUTABLE, frame_ancestors("/assets/")))
    # The vocab is a gzip *file*: its own type, and never a Content-Encoding.
    rules.append(Rule("/assets/vocab/", False, IMMUTABLE, frame_ancestors("/assets/"), "application/gzip"))
    if settings.models_dir is not None:
        rules.append(Rule("/models/", False, REVALIDATE, frame_ancestors("/models/")))
    return sorted(rules, key=lambda r: (r.path.rstrip("/").count("/") if r.path != "/" else -1, r.exact, r.path))


def _is_copy(path: Path) -> bool:
    """A precompressed copy written beside its original."""
    for suffix in ENCODING_SUFFIXES.values():
        if path.name.endswith(suffix) and path.with_name(path.name[: -len(suffix)]).is_file():
            return True
    return False


def _covering(rules: list[Rule], url: str) -> Rule:
    """The most specific rule for `url` (exact first, then the longest prefix), as nginx picks it."""
    for rule in rules:
        if rule.exact and rule.path == url:
            return rule
    return max((r for r in rules if not r.exact and url.startswith(r.path)), key=lambda r: len(r.path))


# MIME types, as server/app.py registers them (Python's table plus its fixes).
MIME_TYPES = {
    "text/html": ("html",),
    "text/css": ("css",),
    "text/javascript": ("js", "mjs"),
    "text/plain": ("txt",),
    "image/svg+xml": ("svg",),
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg"),
    "application/json": ("json",),
    "application/wasm": ("wasm",),
    "application/zip": ("whl", "zip"),
    "application/gzip": ("gz",),
    "application/octet-stream": ("onnx", "bin", "npy"),
}


def _headers_file(rules: list[Rule], dest: Path) -> str:
    """Netlify / Cloudflare Pages `_headers`. Both apply every matching rule, and Cloudflare joins a
    header set by two rules with a comma, so only the common headers are on `/*` and each URL gets
    its Cache-Control and CSP from exactly one rule: a folder that holds a more specific rule is
    listed entry by entry. Pages are listed under their .html URL and the pretty URL these hosts
    also serve them at (/image for /image.html; /embed is embed.html)."""
    lines = ["# clip-web export: headers for Netlify and Cloudflare Pages (written by `clip-web export`).",
             "# Every response: cross-origin isolation (wasm threads), CORS, no sniffing, no referrer.", "/*"]
    lines += [f"  {k}: {v}" for k, v in COMMON_HEADERS.items()]
    entries: list[tuple[str, Rule]] = []

    def add(url: str, rule: Rule):
        entries.append((url, rule))

    def walk(folder_url: str, rule: Rule):
        nested = [r for r in rules if r is not rule and r.path.startswith(folder_url) and r.path != folder_url]
        if not nested:
            add(folder_url + "*", rule)
            return
        folder = dest / folder_url.strip("/") if folder_url != "/" else dest
        for entry in sorted(folder.iterdir()):
            url = folder_url + entry.name
            if entry.name == "_headers" or _is_copy(entry):
                continue  # not served by these hosts / never asked for by name
            if entry.is_dir():
                own = next((r for r in rules if not r.exact and r.path == url + "/"), None)
                if own is None:
                    walk(url + "/", rule)
            elif not any(r.exact and r.path == url for r in rules):
                add(url, rule)

    for rule in rules:
        if rule.exact:
            add(rule.path, rule)
            if rule.path.endswith(".html"):
                add("/" if rule.path == "/index.html" else rule.path[: -len(".html")], rule)
        else:
            walk(rule.path, rule)
    seen = set()
    for url, rule in sorted(entries, key=lambda e: e[0]):
        if url in seen:
            continue  # /embed is both embed.html's pretty URL and its own rule: its own wins
        seen.add(url)
        if url == "/embed" and rule.path != "/embed":
            rule = next(r for r in rules if r.path == "/embed")
        lines += ["", url] + [f"  {k}: {v}" for k, v in rule.headers().items()]
    return "\n".join(lines) + "\n"


def _nginx_headers(rule: Rule, indent: str) -> list[str]:
    # add_header is inherited only by a level with none of its own: each location states them all.
    # `always`: error answers (404) carry them too, as the server's do.
    out = [f"{indent}add_header {k} \"{v}\" always;" for k, v in COMMON_HEADERS.items()]
    out += [f"{indent}add_header Cache-Control \"{rule.cache_control}\" always;",
            f"{indent}add_header Content-Security-Policy \"{rule.csp}\" always;"]
    return out


def _nginx_file(rules: list[Rule]) -> str:
    lines = [
        "# clip-web export: nginx snippet (written by `clip-web export`). Include it inside a server block",
        "# whose root is the export folder:",
        "#     server { listen 8080; root /srv/clip-web; include /srv/clip-web/_deploy/nginx.conf; }",
        "#",
        "# Precompressed copies (FILE.gz, FILE.br beside FILE) are sent to browsers that accept them.",
        "# gzip_static is in Debian's and most builds; brotli_static needs the ngx_brotli module",
        "# (Debian: apt-get install libnginx-mod-http-brotli-static; then uncomment the line below).",
        "gzip_static on;",
        "# brotli_static on;",
        "gzip_vary on;  # Vary: Accept-Encoding, so caches keep the encodings apart",
        "index index.html;",
        "types {",
    ]
    lines += [f"    {mime} {' '.join(exts)};" for mime, exts in MIME_TYPES.items()]
    lines += ["}", "default_type application/octet-stream;", ""]
    for rule in rules:
        if rule.exact:
            lines.append(f"location = {rule.path} {{")
        elif rule.path == "/":
            lines.append("location / {")
        else:
            lines.append(f"location ^~ {rule.path} {{")
        if rule.content_type:
            lines += ["    types { }", f"    default_type {rule.content_type};"]
        if rule.content_type == "application/gzip":
            lines.append("    gzip_static off;  # a gzip file, never a Content-Encoding")
        lines += _nginx_headers(rule, "    ")
        if rule.exact and rule.path in FRAMED_BY_ANY_SITE:
            lines.append(f"    try_files {rule.path}.html =404;")
        lines += ["}", ""]
    return "\n".join(lines)


def _caddy_file(rules: list[Rule]) -> str:
    lines = [
        "# clip-web export: Caddy site block (written by `clip-web export`). Set the address and root:",
        "#     caddy run --config _deploy/Caddyfile --adapter caddyfile",
        ":8080 {",
        "\troot * {$CLIP_WEB_EXPORT:/srv/clip-web}",
        "\troute {",
        "\t\t# Every response: cross-origin isolation (wasm threads), CORS, no sniffing, no referrer.",
        "\t\theader {",
    ]
    lines += [f"\t\t\t{k} \"{v}\"" for k, v in COMMON_HEADERS.items()]
    lines += ["\t\t}", "\t\t# Most general first: a later, more specific rule replaces a header set above."]
    for rule in rules:
        # file_server answers "/" with index.html itself, so the index page's rule names "/" too.
        matchers = [rule.path] if rule.exact else [rule.path + "*"]
        if rule.exact and rule.path == "/index.html":
            matchers.append("/")
        for matcher in matchers:
            lines.append(f"\t\theader {matcher} {{")
            lines += [f"\t\t\t{k} \"{v}\"" for k, v in rule.headers().items()]
            lines.append("\t\t}")
    # Types Go's table lacks or may name otherwise (file_server keeps a Content-Type already set).
    lines += ["\t\t@wheel path *.whl", "\t\theader @wheel Content-Type application/zip",
              "\t\t@module path *.mjs", "\t\theader @module Content-Type text/javascript"]
    for path in FRAMED_BY_ANY_SITE:
        lines.append(f"\t\trewrite {path} {path}.html")
    lines += ["\t\t# FILE.br / FILE.gz beside FILE are sent to browsers that accept them (with Vary).",
              "\t\tfile_server {", "\t\t\tprecompressed br gzip", "\t\t}", "\t}", "}", ""]
    return "\n".join(lines)


# --- the export ------------------------------------------------------------------------------


def _inside(a: Path, b: Path) -> bool:
    try:
        a.resolve().relative_to(b.resolve())
        return True
    except ValueError:
        return False


def export(settings: Settings, dest: Path, force: bool = False, prepare: bool = True,
           log: Callable[[str], None] = print) -> Path:
    """Write the static site to `dest`. `prepare`: bring pyapp's wheel, the locks and the Python
    snapshot up to date first, as `clip-web serve` does before serving."""
    dest = Path(dest).resolve()
    missing = missing_assets(settings.assets_dir)
    if missing:
        raise ExportError(f"{len(missing)} runtime assets are missing from {settings.assets_dir} "
                          f"(first: {missing[0]}). Run `clip-web assets` first.")
    sources = [settings.web_dir, settings.assets_dir] + ([settings.models_dir] if settings.models_dir else [])
    for source in sources:
        if _inside(dest, source) or _inside(source, dest):
            raise ExportError(f"{dest} overlaps {source}, which the export reads; pick another folder")
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        if not force:
            raise ExportError(f"{dest} is not empty; pick an empty or new folder, or pass --force to replace its contents")
        for entry in sorted(dest.iterdir()):
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    if prepare:
        from .assets import write_lock
        from .python_snapshot import ensure_snapshot, inputs

        write_lock(settings.assets_dir, strict=False, log=log)
        if settings.python_snapshot:
            ensure_snapshot(*inputs(settings.assets_dir, settings.web_dir), log=log)

    from .app import create_app

    app = create_app(settings)
    answers = {}
    for path in APP_ANSWERS:
        status, _, body = _asgi_get(app, path)
        if status != 200:
            raise ExportError(f"{path} answered {status}: {body.decode(errors='replace')}")
        answers[path] = body

    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for src in _files(settings.web_dir):
        _copy(src, dest / src.relative_to(settings.web_dir))
        count += 1
    copies = 0
    for folder, url, encoded in _runtime_folders(settings):
        for src in _files(folder):
            relative = src.relative_to(folder)
            if relative.parts[0] == SNAPSHOT_FOLDER and not settings.python_snapshot:
                continue  # /api/runtime offers none
            if src.name.endswith(".part"):
                continue  # being written by `clip-web assets`
            target = dest / url / relative
            _copy(src, target)
            count += 1
            if encoded:
                for coding, copy in _current_copies(folder, src).items():
                    _copy(copy, target.with_name(target.name + ENCODING_SUFFIXES[coding]))
                    copies += 1
    if settings.models_dir is not None:
        for src in _files(settings.models_dir):
            _copy(src, dest / "models" / src.relative_to(settings.models_dir))
            count += 1
    for path, body in answers.items():
        target = dest / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)

    rules = header_rules(settings, dest)
    (dest / DEPLOY_FOLDER).mkdir(exist_ok=True)
    (dest / DEPLOY_FOLDER / "nginx.conf").write_text(_nginx_file(rules))
    (dest / DEPLOY_FOLDER / "Caddyfile").write_text(_caddy_file(rules))
    (dest / "_headers").write_text(_headers_file(rules, dest))
    log(f"exported {count} files and {copies} precompressed copies to {dest} "
        f"(header rules: _headers, {DEPLOY_FOLDER}/nginx.conf, {DEPLOY_FOLDER}/Caddyfile; see docs/deploy.md)")
    return dest
