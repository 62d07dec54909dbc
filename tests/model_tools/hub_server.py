"""A local stand-in for the HuggingFace hub: `/<owner>/<name>/resolve/main/<file>` is served
from `<root>/<owner>/<name>/<file>`, with real HTTP Range support (206 + Content-Range, 416) and
switches that misbehave the way networks do:

    hub.drop_once = {"clip-image-vit-32-float32.onnx"}   # next GET sends half the body, then hangs up
    hub.honor_range = False                              # answer 200 + the whole file to Range requests

Every request is recorded in hub.requests as (path, Range header or None, status).
"""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_PATH = re.compile(r"^/([^/]+)/([^/]+)/resolve/main/(.+)$")


class HubServer:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.drop_once: set[str] = set()
        self.honor_range = True
        self.requests: list[tuple[str, str | None, int]] = []
        self._lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: pytest shows failures, not access logs
                pass

            def do_GET(self):
                hub._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _record(self, path: str, rng: str | None, status: int) -> None:
        with self._lock:
            self.requests.append((path, rng, status))

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path = unquote(urlsplit(h.path).path)
        rng = h.headers.get("Range")
        m = _PATH.match(path)
        file = self.root / m.group(1) / m.group(2) / m.group(3) if m else None
        if file is None or ".." in Path(path).parts or not file.is_file():
            self._record(path, rng, 404)
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        data = file.read_bytes()
        start, status = 0, 200
        r = re.match(r"^bytes=(\d+)-$", rng or "")
        if r and self.honor_range:
            start = int(r.group(1))
            if start >= len(data):
                self._record(path, rng, 416)
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            status = 206
        body = data[start:]
        self._record(path, rng, status)
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        name = file.name
        with self._lock:
            drop = name in self.drop_once
            self.drop_once.discard(name)
        if drop:
            # Half the body, then the connection dies mid-transfer (Content-Length promised more).
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)
            return
        h.wfile.write(body)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
