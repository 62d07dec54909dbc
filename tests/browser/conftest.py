"""Browser fixtures: one page per test module, booted once and reused (Pyodide takes seconds)."""

from __future__ import annotations

import sys

import pytest

from helpers import PW, REPO_ROOT, PageSession

sys.path.insert(0, str(REPO_ROOT / "tests" / "reference"))  # siglip_reference, for the SigLIP fixtures


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
