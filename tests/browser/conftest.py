"""Browser fixtures: one page per test module, booted once and reused (Pyodide takes seconds)."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import pytest

from helpers import ARTIFACTS, PW, REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests" / "reference"))  # siglip_reference, for the SigLIP fixtures


class PageSession:
    """A Playwright page that records every request it makes and every error it logs."""

    def __init__(self, context, server):
        self.context = context
        self.server = server
        self.page = context.new_page()
        self.page.set_default_timeout(PW.ACTION_TIMEOUT_MS)
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        # Context-level: catches worker requests too.
        context.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def open(self, path: str, state: str = "ready"):
        self.page.goto(self.server.url + path.lstrip("/"))
        return self.wait_state(state)

    def wait_state(self, state: str = "ready"):
        self.page.wait_for_function(
            "document.body.dataset.state && document.body.dataset.state !== 'loading'",
            timeout=PW.BOOT_TIMEOUT_MS,
        )
        actual = self.page.evaluate("document.body.dataset.state")
        if actual != state:
            message = self.page.evaluate("document.querySelector('#message')?.textContent")
            raise AssertionError(f"page state {actual!r}, expected {state!r}: {message}\nconsole: {self.console_errors}")
        return self.page

    def foreign_requests(self) -> list[str]:
        """Requests that went anywhere but 127.0.0.1 (blob: and data: URLs never leave the page)."""
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("blob", "data"):
                continue
            if parts.hostname != "127.0.0.1":
                out.append(url)
        return out

    def screenshot(self, name: str):
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.fixture(scope="module")
def page_session(browser, live_server):
    context = browser.new_context(viewport=PW.VIEWPORT)
    session = PageSession(context, live_server)
    yield session
    context.close()


@pytest.fixture(scope="module")
def image_host():
    """Another origin serving one PNG twice: /cors/ with Access-Control-Allow-Origin, /nocors/ without."""
    import io
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 60, 30)).save(buf, format="PNG")
    png = buf.getvalue()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if not self.path.endswith("/photo.png"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            if self.path.startswith("/cors/"):
                self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


# The tiny SigLIP (tests/reference/build_siglip.py), for the family's tests in every browser.
@pytest.fixture(scope="module")
def torch_siglip():
    from siglip_reference import TorchSiglip, ensure_siglip_model

    return TorchSiglip(ensure_siglip_model())


@pytest.fixture(scope="module")
def siglip_server(tmp_path_factory):
    """A clip-web server whose models folder holds the tiny SigLIP alone (its checkpoint left out)."""
    import shutil

    from helpers import LiveServer
    from siglip_reference import ensure_siglip_model

    root = tmp_path_factory.mktemp("siglip-models")
    shutil.copytree(ensure_siglip_model(), root / "tiny-siglip", ignore=shutil.ignore_patterns("checkpoint"))
    live = LiveServer(tmp_path_factory.mktemp("siglip-server"), root)
    yield live
    live.stop()
