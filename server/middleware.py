"""Two plain ASGI middlewares: response headers, and a request log."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from starlette.datastructures import MutableHeaders

from .csp import frame_ancestors, is_our_page


# What every response carries, whatever its path (server/export.py writes the same for static hosts).
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "cross-origin",
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Encoding, Content-Range, ETag",
    # Privacy: a model host (HuggingFace) is not told which page asked for its files.
    "Referrer-Policy": "no-referrer",
}


class SecurityHeadersMiddleware:
    """Headers every response gets.

    COOP + COEP make our pages cross-origin isolated, which onnxruntime-web needs for wasm
    threads (SharedArrayBuffer). CORP cross-origin + CORS let other sites (the widget) load our
    assets, including from their own isolated pages. Our assets are public and carry no
    credentials, so `*` is the honest CORS answer.
    """

    def __init__(self, app, page_policy=None):
        self.app = app
        # path -> the Content-Security-Policy of an HTML page there (server/csp.py).
        self.page_policy = page_policy

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers[name] = value
                # HTML pages get the full policy (what they may load and run, server/csp.py).
                # Everything else only states framing: /embed is the widget and meant to be framed
                # by any site; every other URL only by this server's own pages.
                if "content-security-policy" not in headers:
                    path = scope["path"]
                    if (self.page_policy is not None and is_our_page(path)
                            and headers.get("content-type", "").startswith("text/html")):
                        headers["Content-Security-Policy"] = self.page_policy(path)
                    else:
                        headers["Content-Security-Policy"] = frame_ancestors(path)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestLogMiddleware:
    """Append one JSON line per request: method, path, status, and request body size.

    Tests read it to prove that no image bytes ever reach the server.
    """

    def __init__(self, app, path: Path):
        self.app = app
        self.path = Path(path)
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        entry = {"method": scope["method"], "path": scope["path"], "query": scope["query_string"].decode(),
                 "body_bytes": 0, "time": time.time()}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                entry["body_bytes"] += len(message.get("body", b""))
            return message

        async def recording_send(message):
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        try:
            await self.app(scope, counting_receive, recording_send)
        finally:
            with self.lock, open(self.path, "a") as f:
                f.write(json.dumps(entry) + "\n")
