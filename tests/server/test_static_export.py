"""`clip-web export DIR`: the static site holds every file the pages load, the JSON answers of a
live `clip-web serve` byte for byte, precompressed copies equal to their originals, and header files
that say what the server sends (checked URL by URL against the live server)."""

from __future__ import annotations

import filecmp
import gzip
import json
import os
import re
import subprocess
import sys
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import brotli
import pytest

from helpers import REPO_ROOT

WEB = REPO_ROOT / "web"
COMMON = ("X-Content-Type-Options", "Cross-Origin-Opener-Policy", "Cross-Origin-Embedder-Policy",
          "Cross-Origin-Resource-Policy", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
          "Referrer-Policy")


def run_cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, live_server, reference_models) -> Path:
    # live_server first: it brought the locks and the snapshot up to date, as the export does too.
    dest = tmp_path_factory.mktemp("export") / "site"
    result = run_cli("export", str(dest), "--models-dir", str(reference_models))
    assert result.returncode == 0, result.stderr
    assert "exported" in result.stderr
    return dest


def _get(url: str, method: str = "GET", headers: dict | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, response.read()


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)


def _local(ref: str) -> str | None:
    parts = urlsplit(ref)
    if parts.scheme or parts.netloc or ref.startswith("#"):
        return None
    return parts.path


_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}/[^'"]+)['"]""")


def test_every_file_the_pages_reference_exists(exported):
    pages = sorted(WEB.glob("*.html"))
    assert len(pages) >= 6
    modules: list[Path] = []
    for page in pages:
        parser = _Refs()
        parser.feed(page.read_text())
        assert parser.refs, page
        for ref in parser.refs:
            path = _local(ref)
            if path is None:
                continue
            target = exported / path if path not in ("", "./") else exported / "index.html"
            assert target.is_file(), f"{page.name} references {ref}, missing from the export"
            if target.suffix == ".js":
                modules.append(target)
    # And every module those import, transitively (static and dynamic relative imports).
    seen = set()
    while modules:
        module = modules.pop()
        if module in seen:
            continue
        seen.add(module)
        for ref in _IMPORT.findall(module.read_text()):
            target = (module.parent / ref).resolve()
            assert target.is_file(), f"{module.relative_to(exported)} imports {ref}, missing from the export"
            modules.append(target)
    assert len(seen) > 20
    assert (exported / "widget.js").is_file() and (exported / "embed.html").is_file()


def test_api_answers_equal_the_live_server_byte_for_byte(exported, live_server):
    # sw.js too: its build (version, saved files) is made from those answers (server/offline.py).
    for path in ("api/runtime", "api/models", "sw.js"):
        _, _, body = _get(live_server.url + path)
        assert (exported / path).read_bytes() == body, path
    models = json.loads((exported / "api/models").read_text())
    assert models["default"] == "tiny-reference"


def test_everything_api_runtime_and_the_models_name_is_exported(exported):
    runtime = json.loads((exported / "api/runtime").read_text())
    site = lambda url: exported / url.lstrip("/")  # noqa: E731
    assert site(runtime["pyodide_index_url"]).is_dir() and site(runtime["ort_base_url"]).is_dir()
    for key in ("pyodide_lock_url", "vocab_url"):
        assert site(runtime[key]).is_file(), key
    assert runtime["pyodide_precompiled"] and runtime["python_snapshot"], "the assets are fully built here"
    assert site(runtime["pyodide_precompiled"]["lock_url"]).is_file()
    assert site(runtime["pyodide_precompiled"]["stdlib_url"]).is_file()
    assert site(runtime["python_snapshot"]["url"]).is_file()
    for name in ("pyodide.mjs", "pyodide.asm.wasm", "python_stdlib.zip"):
        assert (site(runtime["pyodide_index_url"]) / name).is_file(), name
    for lock_url in (runtime["pyodide_lock_url"], runtime["pyodide_precompiled"]["lock_url"]):
        lock = json.loads(site(lock_url).read_text())
        for package in lock["packages"].values():
            assert (site(lock_url).parent / package["file_name"]).is_file(), (lock_url, package["file_name"])
    assert list(site(runtime["ort_base_url"]).glob("*.wasm")) and list(site(runtime["ort_base_url"]).glob("*.mjs"))
    for model in json.loads((exported / "api/models").read_text())["models"]:
        if model["origin"] == "local":
            for part in ("image", "text"):
                assert site(model[part]["url"]).is_file(), model[part]["url"]


def test_models_are_copied_as_served(exported, reference_models):
    served = sorted(p.relative_to(reference_models) for p in reference_models.rglob("*") if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(reference_models).parts))
    copied = sorted(p.relative_to(exported / "models") for p in (exported / "models").rglob("*") if p.is_file())
    assert served == copied
    for relative in served:
        assert filecmp.cmp(reference_models / relative, exported / "models" / relative, shallow=False)


def _copies(exported: Path) -> list[tuple[Path, Path, str]]:
    out = []
    for path in sorted(exported.rglob("*")):
        for suffix, coding in ((".br", "br"), (".gz", "gzip")):
            if path.name.endswith(suffix) and len(path.name) > len(suffix):
                original = path.with_name(path.name[: -len(suffix)])
                if original.is_file():
                    out.append((path, original, coding))
    return out


def test_precompressed_copies_decode_to_their_originals(exported, live_server):
    copies = _copies(exported)
    names = {str(c.relative_to(exported)) for c, _, _ in copies}
    for name in ("assets/pyodide-0.27.7/pyodide.asm.wasm", "assets/ort-1.30.0/ort-wasm-simd-threaded.wasm"):
        assert name + ".br" in names and name + ".gz" in names, name
    assert not any(n.startswith(("models/", "assets/vocab/")) for n in names)
    for copy, original, coding in copies:
        data = brotli.decompress(copy.read_bytes()) if coding == "br" else gzip.decompress(copy.read_bytes())
        assert data == original.read_bytes(), copy
    # Exactly the copies the server itself sends: a URL with a copy here answers encoded there.
    for copy, original, coding in copies[:: max(1, len(copies) // 8)]:
        url = live_server.url + str(original.relative_to(exported))
        _, headers, _ = _get(url, "HEAD", {"Accept-Encoding": coding})
        assert headers.get("Content-Encoding") == coding, url


def _parse_headers_file(text: str) -> list[tuple[str, dict]]:
    rules, current = [], None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            current = (line.strip(), {})
            rules.append(current)
        else:
            name, _, value = line.strip().partition(":")
            assert name not in current[1], (current[0], name)
            current[1][name] = value.strip()
    return rules


def _matching(rules, url: str) -> dict:
    """Every matching rule's headers, as Cloudflare Pages applies them; one header set twice fails."""
    out: dict = {}
    for pattern, headers in rules:
        hit = url.startswith(pattern[:-1]) if pattern.endswith("*") else url == pattern
        if hit:
            for name, value in headers.items():
                assert name not in out, f"{url}: {name} set by two rules ({pattern})"
                out[name] = value
    return out


def _served_urls(exported: Path) -> list[str]:
    copies = {c for c, _, _ in _copies(exported)}
    urls = []
    for path in sorted(exported.rglob("*")):
        relative = path.relative_to(exported).as_posix()
        if path.is_file() and path not in copies and not relative.startswith(("_deploy/", "_headers")):
            urls.append("/" + relative)
    return urls + ["/", "/embed"]


def test_headers_file_says_what_the_server_sends(exported, live_server):
    rules = _parse_headers_file((exported / "_headers").read_text())
    assert rules[0][0] == "/*" and set(rules[0][1]) == set(COMMON)
    assert len(rules) <= 100  # Cloudflare Pages' limit
    urls = _served_urls(exported)
    assert len(urls) > 50
    for url in urls:
        expected = _matching(rules, url)
        _, served, _ = _get(live_server.url + url.lstrip("/"), "HEAD")
        for name in COMMON + ("Content-Security-Policy",):
            assert expected.get(name) == served.get(name), (url, name)
        if url.startswith("/api/"):
            assert expected["Content-Type"] == "application/json" == served["Content-Type"]
            assert expected["Cache-Control"] == "no-cache"  # the server sends none; hosts must revalidate
        else:
            assert expected.get("Cache-Control") == served.get("Cache-Control"), url
    # Pages are also reached at the pretty URLs these hosts give them, with the same policy.
    by_pattern = dict(rules)
    for page in sorted(WEB.glob("*.html")):
        pretty = "/" if page.name == "index.html" else "/" + page.stem
        if pretty != "/embed":
            assert by_pattern[pretty] == by_pattern["/" + page.name], pretty
    assert by_pattern["/embed"]["Content-Security-Policy"].endswith("frame-ancestors *")
    assert by_pattern["/assets/vocab/*"]["Content-Type"] == "application/gzip"


def test_nginx_and_caddy_snippets_carry_the_headers(exported, live_server):
    nginx = (exported / "_deploy" / "nginx.conf").read_text()
    caddy = (exported / "_deploy" / "Caddyfile").read_text()
    _, page, _ = _get(live_server.url + "image.html", "HEAD")
    _, embed, _ = _get(live_server.url + "embed", "HEAD")
    _, wasm, _ = _get(live_server.url + "assets/ort-1.30.0/ort-wasm-simd-threaded.wasm", "HEAD")
    for name in COMMON:
        assert f'add_header {name} "{page[name]}" always;' in nginx, name
        assert f'{name} "{page[name]}"' in caddy, name
    for csp in (page["Content-Security-Policy"], embed["Content-Security-Policy"]):
        assert f'add_header Content-Security-Policy "{csp}" always;' in nginx
        assert f'Content-Security-Policy "{csp}"' in caddy
    assert f'add_header Cache-Control "{wasm["Cache-Control"]}" always;' in nginx
    for line in ("gzip_static on;", "gzip_vary on;", "application/wasm wasm;", "text/javascript js mjs;",
                 "application/zip whl zip;", "location = /embed {", "try_files /embed.html =404;",
                 "location = /api/runtime {", "default_type application/json;", "brotli_static"):
        assert line in nginx, line
    assert "precompressed br gzip" in caddy and "rewrite /embed /embed.html" in caddy


def test_output_is_deterministic(exported, tmp_path, reference_models):
    again = tmp_path / "again"
    result = run_cli("export", str(again), "--models-dir", str(reference_models))
    assert result.returncode == 0, result.stderr
    first = sorted(p.relative_to(exported) for p in exported.rglob("*"))
    assert first == sorted(p.relative_to(again) for p in again.rglob("*"))
    for relative in first:
        if (exported / relative).is_file():
            assert filecmp.cmp(exported / relative, again / relative, shallow=False), relative


def test_non_empty_target_is_refused_unless_forced(tmp_path, assets_dir):
    dest = tmp_path / "site"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    result = run_cli("export", str(dest), "--no-python-snapshot")
    assert result.returncode == 2 and "is not empty" in result.stderr and "--force" in result.stderr
    assert (dest / "keep.txt").read_text() == "mine"
    result = run_cli("export", str(dest), "--force", "--no-python-snapshot")
    assert result.returncode == 0, result.stderr
    assert not (dest / "keep.txt").exists() and (dest / "index.html").is_file()
    assert json.loads((dest / "api/runtime").read_text())["python_snapshot"] is None
    assert not (dest / "assets/pyodide-0.27.7/snapshots").exists()
    assert not (dest / "models").exists()


def test_missing_assets_say_run_clip_web_assets(tmp_path):
    env = dict(os.environ, CLIP_WEB_ASSETS=str(tmp_path / "empty"))
    result = run_cli("export", str(tmp_path / "site"), env=env)
    assert result.returncode == 2
    assert "runtime assets are missing" in result.stderr and "clip-web assets" in result.stderr
    assert not (tmp_path / "site").exists()


def test_export_into_a_folder_it_reads_is_refused(tmp_path, assets_dir):
    result = run_cli("export", str(WEB / "out"))
    assert result.returncode == 2 and "overlaps" in result.stderr
    assert not (WEB / "out").exists()


def test_help_describes_export():
    result = run_cli("export", "--help")
    assert result.returncode == 0
    for word in ("--models-dir", "--force", "_headers", "nginx", "GitHub Pages"):
        assert word in result.stdout, word
