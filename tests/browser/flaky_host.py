"""A model host on another origin that misbehaves the way networks do, for the browser's
resumable downloads: real HTTP on a free port, CORS as HuggingFace sends it, Range (206 +
Content-Range), and per-file plans.

    host.drop_at["text.onnx"] = [2_000_000, 6_000_000]  # cut the connection when the file's byte
                                                         # offset reaches each of these (once each)
    host.hang_at["text.onnx"] = 6_000_000                # stop sending there until released
    host.honor_range = False                             # answer Range with 200 + the whole file

Every request is recorded in host.requests as {file, range, status, sent} (body bytes sent).
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FlakyHost:
    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.drop_at: dict[str, list[int]] = {}
        self.hang_at: dict[str, int] = {}
        self.honor_range = True
        self.requests: list[dict] = []
        self.hanging = threading.Event()  # set while a request is held at hang_at
        self.release = threading.Event()
        self._lock = threading.Lock()
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_OPTIONS(self):  # never needed by a safelisted Range request; recorded if it comes
                host._record({"file": self.path, "range": None, "status": 204, "sent": 0, "method": "OPTIONS"})
                self.send_response(204)
                host._cors(self)
                self.send_header("Access-Control-Allow-Headers", "Range")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                host._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _record(self, entry: dict) -> dict:
        with self._lock:
            self.requests.append(entry)
        return entry

    def gets(self, name: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["file"] == name and r.get("method", "GET") == "GET"]

    @staticmethod
    def _cors(h) -> None:
        h.send_header("Access-Control-Allow-Origin", "*")
        h.send_header("Access-Control-Expose-Headers", "Content-Range, Content-Length, ETag, Accept-Ranges")

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        name = h.path.lstrip("/").split("?")[0]
        data = self.files.get(name)
        rng = h.headers.get("Range")
        if data is None:
            self._record({"file": name, "range": rng, "status": 404, "sent": 0})
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        start, status = 0, 200
        m = re.match(r"^bytes=(\d+)-$", rng or "")
        if m and self.honor_range:
            start, status = int(m.group(1)), 206
        entry = self._record({"file": name, "range": rng, "status": status, "sent": 0})
        h.send_response(status)
        self._cors(h)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data) - start))
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("ETag", '"' + hashlib.sha256(data).hexdigest()[:16] + '"')
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        with self._lock:
            drops = self.drop_at.get(name, [])
            stop = next((d for d in drops if d > start), None)
            if stop is not None:
                drops.remove(stop)
            hang = self.hang_at.pop(name, None) if name in self.hang_at and self.hang_at[name] > start else None
        end = min(x for x in (stop, hang, len(data)) if x is not None)
        pos = start
        try:
            while pos < end:
                n = min(64 << 10, end - pos)
                h.wfile.write(data[pos:pos + n])
                pos += n
                entry["sent"] = pos - start
            h.wfile.flush()
            if hang is not None and end == hang:
                self.hanging.set()
                self.release.wait(60)
                raise ConnectionError("released")
            if stop is not None and end == stop:
                # Cut after the bytes have arrived: a browser drops what it had buffered but not yet
                # handed to the page when a connection fails, so cutting at once would make the
                # test measure that buffer instead of the client's resume offsets.
                time.sleep(0.5)
                raise ConnectionError("dropped")
        except (ConnectionError, OSError):
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
