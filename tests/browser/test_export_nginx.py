"""`clip-web export` served by nginx (Debian's, started here as a plain process), in Chromium.

With the generated snippet (_deploy/nginx.conf): the start page reaches ready, cross-origin isolated
(wasm threads), and embeds exactly as a live `clip-web serve`. Without any of its headers, as a host
that cannot set them (GitHub Pages): ready, single-threaded, and still the same embeddings. And the
widget from the export on a page of another origin."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from helpers import PW, REPO_ROOT, free_port, stop_process
from server.export import MIME_TYPES

NGINX = Path("/usr/sbin/nginx")
TEXT = "a photo of a cat"

EMBED_JS = """async ([png, text]) => {
    const { createClip } = await import('/js/clip.js');
    const clip = await createClip({ model: 'tiny-reference' });
    const image = await clip.embedImage(new Blob([new Uint8Array(png)], { type: 'image/png' }));
    const [embedded] = await clip.embedText([text]);
    const info = await clip.info();
    clip.dispose();
    return { image: Array.from(image), text: Array.from(embedded), threads: info.threads,
             isolated: info.crossOriginIsolated };
}"""


def photo_png() -> bytes:
    from PIL import Image

    rng = np.random.default_rng(11)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (150, 200, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class Nginx:
    """nginx in the foreground on two free ports, everything it writes under `prefix`: one server
    block with the export's snippet, one with none of its headers (types only, as a plain host)."""

    def __init__(self, prefix: Path, site: Path):
        self.prefix = prefix
        self.with_headers = free_port()
        self.without_headers = free_port()
        self.error_log = prefix / "error.log"
        types = "\n".join(f"      {mime} {' '.join(exts)};" for mime, exts in MIME_TYPES.items())
        temp = " ".join(f"{name}_temp_path {prefix / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        # As root (here, in CI containers) the workers would switch to `nobody`, which cannot read
        # pytest's private tmp folder; as any other user nginx keeps that user.
        user = "user root;" if os.geteuid() == 0 else ""
        self.config = prefix / "nginx.conf"
        self.config.write_text(f"""
{user}
worker_processes 1;
pid {prefix / 'nginx.pid'};
error_log {self.error_log} info;
daemon off;
events {{ worker_connections 256; }}
http {{
  access_log {prefix / 'access.log'};
  {temp}
  server {{
    listen 127.0.0.1:{self.with_headers};
    root {site};
    include {site / '_deploy' / 'nginx.conf'};
  }}
  server {{
    listen 127.0.0.1:{self.without_headers};
    root {site};
    index index.html;
    types {{
{types}
    }}
    default_type application/octet-stream;
    location = /embed {{ try_files /embed.html =404; }}
  }}
}}
""")
        self.process = subprocess.Popen([str(NGINX), "-p", str(prefix), "-c", str(self.config), "-e", str(self.error_log)],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait()

    def url(self, headers: bool) -> str:
        return f"http://127.0.0.1:{self.with_headers if headers else self.without_headers}/"

    def _wait(self, timeout=20.0):
        deadline = time.time() + timeout
        for headers in (True, False):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"nginx exited with {self.process.returncode}:\n"
                                       f"{self.process.stdout.read().decode(errors='replace')}\n{self.log()}")
                try:
                    with urllib.request.urlopen(self.url(headers) + "api/runtime", timeout=1):
                        break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError(f"nginx did not answer within {timeout}s:\n{self.log()}")
                    time.sleep(0.1)

    def log(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else "(no error log)"

    def stop(self):
        stop_process(self.process)


@pytest.fixture(scope="module")
def site(tmp_path_factory, live_server, reference_models) -> Path:
    # The same models folder the live server serves, so both list and serve the same tiny model.
    dest = tmp_path_factory.mktemp("export") / "site"
    result = subprocess.run([sys.executable, "-m", "server.cli", "export", str(dest), "--models-dir", str(reference_models)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return dest


@pytest.fixture(scope="module")
def nginx(request, tmp_path_factory, site):
    if not NGINX.exists():
        pytest.fail(f"nginx not found at {NGINX}: install it with `apt-get install -y nginx` (tests never install it)")
    failed_before = request.session.testsfailed
    server = Nginx(tmp_path_factory.mktemp("nginx"), site)
    yield server
    server.stop()
    if request.session.testsfailed > failed_before:
        sys.__stderr__.write(f"\n--- nginx error log ({server.error_log}) ---\n{server.log()[-8000:]}\n")


class _Origin:
    def __init__(self, url):
        self.url = url


@pytest.fixture(scope="module")
def reference(page_session):
    """The embeddings a live `clip-web serve` gives (same model, same browser)."""
    page = page_session.open("/?model=tiny-reference")
    return page.evaluate(EMBED_JS, [list(photo_png()), TEXT])


def _open(browser, nginx, headers: bool, like):
    # A page session of tests/browser/conftest.py's kind (it records requests and errors).
    context = browser.new_context(viewport=PW.VIEWPORT)
    session = type(like)(context, _Origin(nginx.url(headers)))
    session.open("/?model=tiny-reference")
    return session


@pytest.fixture(scope="module")
def isolated(browser, nginx, page_session):
    session = _open(browser, nginx, True, page_session)
    yield session
    session.context.close()


@pytest.fixture(scope="module")
def plain(browser, nginx, page_session):
    session = _open(browser, nginx, False, page_session)
    yield session
    session.context.close()


def _assert_same(result, reference):
    for key in ("image", "text"):
        ours = np.asarray(result[key], dtype=np.float32)
        theirs = np.asarray(reference[key], dtype=np.float32)
        assert ours.shape == theirs.shape == (512,), key
        assert np.abs(ours - theirs).max() <= 1e-6, key


def test_nginx_sends_the_generated_headers_and_precompressed_copies(nginx, site):
    with urllib.request.urlopen(nginx.url(True)) as page:
        assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert page.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        assert "'wasm-unsafe-eval'" in page.headers["Content-Security-Policy"]
    wasm = "assets/ort-1.30.0/ort-wasm-simd-threaded.wasm"
    request = urllib.request.Request(nginx.url(True) + wasm, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Type"] == "application/wasm"
        assert "Accept-Encoding" in response.headers["Vary"]
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert gzip.decompress(response.read()) == (site / wasm).read_bytes()
    with urllib.request.urlopen(nginx.url(True) + "api/runtime") as response:
        assert response.headers["Content-Type"] == "application/json"
    with urllib.request.urlopen(nginx.url(False)) as page:
        assert page.headers["Cross-Origin-Opener-Policy"] is None


HEADERS = ("X-Content-Type-Options", "Cross-Origin-Opener-Policy", "Cross-Origin-Embedder-Policy",
           "Cross-Origin-Resource-Policy", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
           "Referrer-Policy", "Content-Security-Policy", "Cache-Control", "Content-Type")


def test_nginx_answers_every_url_with_the_servers_headers(nginx, site, live_server):
    urls = ["/", "/embed"]
    for path in sorted(site.rglob("*")):
        relative = path.relative_to(site).as_posix()
        copy = relative.endswith((".br", ".gz")) and (site / relative[:-3]).is_file()
        if path.is_file() and not copy and not relative.startswith(("_deploy/", "_headers")):
            urls.append("/" + relative)
    assert len(urls) > 50
    for url in urls:
        answers = []
        for base in (nginx.url(True), live_server.url):
            request = urllib.request.Request(base + url.lstrip("/"), method="HEAD")
            with urllib.request.urlopen(request) as response:
                answers.append(response.headers)
        ours, server = answers
        for name in HEADERS:
            if url.startswith("/api/") and name == "Cache-Control":
                assert ours[name] == "no-cache" and server[name] is None  # a static file must revalidate
            elif name == "Content-Type":
                # Python's table names a few types otherwise (svg, html with charset); the ones the
                # browser is strict about must be equal.
                if url.endswith((".mjs", ".js", ".wasm", ".json", ".whl", ".zip", ".gz")) or url.startswith("/api/"):
                    assert ours[name].split(";")[0] == server[name].split(";")[0], (url, name)
            else:
                assert ours[name] == server[name], (url, name, ours[name], server[name])


def test_with_headers_ready_isolated_and_equal_to_the_server(isolated, reference):
    page = isolated.page
    assert page.evaluate("self.crossOriginIsolated") is True
    assert "Cross-origin isolated\tyes" in page.inner_text("#status")
    result = page.evaluate(EMBED_JS, [list(photo_png()), TEXT])
    assert result["isolated"] is True
    assert result["threads"] == page.evaluate("navigator.hardwareConcurrency")  # threads=0: one per core
    assert reference["isolated"] is True
    _assert_same(result, reference)
    assert not isolated.foreign_requests()
    assert not [e for e in isolated.console_errors if "Content Security Policy" in e], isolated.console_errors
    assert not isolated.page_errors


def test_without_headers_single_threaded_and_still_equal(plain, reference):
    page = plain.page
    assert page.evaluate("self.crossOriginIsolated") is False
    assert "no (single-threaded wasm)" in page.inner_text("#status")
    result = page.evaluate(EMBED_JS, [list(photo_png()), TEXT])
    assert result["isolated"] is False and result["threads"] == 1
    _assert_same(result, reference)
    assert not plain.foreign_requests()
    assert not plain.page_errors


def test_widget_from_the_export_on_another_origin(browser, nginx, reference):
    from test_widget import HostSite, host_page, open_page, wait_events

    host = HostSite()
    context = browser.new_context(viewport=PW.VIEWPORT)
    try:
        server = nginx.url(True)
        url = host.add("/page.html", host_page(server, '<clip-widget id="w" mode="text" model="tiny-reference"></clip-widget>'))
        page = open_page(context, url)
        wait_events(page, "clip-ready", 1, "w")
        embedded = page.evaluate("async (text) => Array.from(await document.querySelector('#w').embedText(text))", TEXT)
        ours = np.asarray(embedded, dtype=np.float32)
        assert np.abs(ours - np.asarray(reference["text"], dtype=np.float32)).max() <= 1e-6
        assert not page.errors
    finally:
        context.close()
        host.close()
