"""A throttling HTTP/1.1 reverse proxy for the benchmarks: one slow link between the browser and a
`clip-web serve`, the same for every contender (benchmarks/network_start.py).

    proxy = ThrottleProxy("http://127.0.0.1:8000/", mbit=50, rtt_ms=40)   # runs in its own thread
    i = proxy.reset()                 # a fresh link (no backlog) and a new window of records
    ... page.goto(proxy.url + "...") ...
    proxy.records(i)                  # one dict per response: path, status, encoding, bytes, times
    proxy.stop()

The link: every byte in either direction, of every connection, goes through one token bucket per
direction (`mbit` Mbit/s, a burst of BURST bytes so that timer slack does not cost throughput); a
new connection waits one round trip (TCP's handshake) and every request one more before it is
forwarded (a round trip from request to the first byte of the answer). The browser's own limits
(6 connections per host over HTTP/1.1) apply as on any server. It throttles at the socket, so it
slows what a page, its workers and their workers fetch alike, and counts each of their responses
as it went over the wire: head, body as sent (encoded), and `Content-Encoding`.

`overlay` {path: (bytes, encoding)}: answers a 200 GET for that path with these bytes (e.g. a
precompressed copy of a file the upstream serves identity) when the request's Accept-Encoding
allows the encoding and it is no Range request: the upstream's head is kept (security headers,
type, caching) with Content-Length, Content-Encoding, Vary and ETag changed, the way our server
sends its own precompressed assets. The upstream's identity body is read and dropped.
"""

from __future__ import annotations

import asyncio
import threading
import time
from urllib.parse import urlsplit

CHUNK = 16 * 1024
BURST = 64 * 1024


class Bucket:
    """Token bucket: bytes leave at `rate` bytes/s, at most BURST of them at once; first come first
    served across every connection that shares it."""

    def __init__(self, rate: float | None):
        self.rate = rate
        self.free_at = 0.0  # loop time at which everything reserved so far has been sent

    async def send(self, n: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        start = max(self.free_at, now - BURST / self.rate)
        self.free_at = start + n / self.rate
        if self.free_at > now:
            await asyncio.sleep(self.free_at - now)


def _headers(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    out = []
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out.append((k.strip(), v.strip()))
    return lines[0], out


def _get(headers, name: str) -> str | None:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _accepts(accept_encoding: str | None, encoding: str) -> bool:
    for part in (accept_encoding or "").split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() == encoding and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            return True
    return False


class ThrottleProxy:
    def __init__(self, upstream: str, mbit: float | None = 50.0, rtt_ms: float = 40.0, overlay: dict | None = None):
        u = urlsplit(upstream)
        self.upstream = (u.hostname, u.port)
        self.rate = mbit * 1e6 / 8 if mbit else None
        self.rtt = rtt_ms / 1000
        self.overlay = dict(overlay or {})
        self.overlay_on = True
        self._records: list[dict] = []
        self._conn_seq = 0
        self._loop = asyncio.new_event_loop()
        self._down = Bucket(self.rate)
        self._up = Bucket(self.rate)
        self._writers: set = set()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True, name="throttle-proxy")
        self._thread.start()
        ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}/"

    # ------------------------------------------------------------------ control (any thread)
    def reset(self, overlay: bool = True) -> int:
        """A fresh link (nothing queued; open connections are closed), the overlay on or off, and the
        index of the next record."""
        def _reset():
            self.overlay_on = overlay
            self._down = Bucket(self.rate)
            self._up = Bucket(self.rate)
            for w in list(self._writers):
                w.close()
        asyncio.run_coroutine_threadsafe(self._call(_reset), self._loop).result(10)
        return len(self._records)

    def records(self, since: int = 0) -> list[dict]:
        """Copies of the records from index `since`: one per request, made when it arrived (t_done
        None: still in flight), bytes counted as they went out; times are time.monotonic()."""
        return [dict(r) for r in self._records[since:]]

    def stop(self) -> None:
        async def _stop():
            self._server.close()
            for w in list(self._writers):
                w.close()
        try:
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    @staticmethod
    async def _call(fn):
        return fn()

    # ------------------------------------------------------------------------- the loop thread
    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)

        async def start():
            self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

        self._loop.run_until_complete(start())
        ready.set()
        self._loop.run_forever()

    async def _write(self, writer, data: bytes, rec: dict, payload: int = 0) -> None:
        """Send `data` down the link; `payload` of its bytes are body (the rest: head, chunk framing)."""
        for i in range(0, len(data), CHUNK):
            part = data[i:i + CHUNK]
            await self._down.send(len(part))
            writer.write(part)
            await writer.drain()
            rec["wire_bytes"] += len(part)
        rec["body_bytes"] += payload

    async def _client(self, reader, writer) -> None:
        self._conn_seq += 1
        conn = self._conn_seq
        self._writers.add(writer)
        up_reader = up_writer = None
        try:
            await asyncio.sleep(self.rtt)  # the TCP handshake
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                t_request = time.monotonic()
                request_line, req_headers = _headers(head)
                method, target = request_line.split(" ")[:2]
                body = b""
                n = int(_get(req_headers, "content-length") or 0)
                if n:
                    body = await reader.readexactly(n)
                await self._up.send(len(head) + len(body))
                await asyncio.sleep(self.rtt)  # request out, first byte back
                rec = {"conn": conn, "method": method, "path": target.split("?", 1)[0],
                       "query": target.split("?", 1)[1] if "?" in target else "",
                       "accept_encoding": _get(req_headers, "accept-encoding"), "range": _get(req_headers, "range"),
                       "t_request": t_request, "t_first_byte": None, "t_done": None, "status": None,
                       "content_type": None, "content_encoding": None, "overlay": False,
                       "head_bytes": 0, "body_bytes": 0, "wire_bytes": 0}
                self._records.append(rec)  # in flight until t_done is set
                for attempt in (1, 2):
                    # The server closes idle keep-alive connections (uvicorn: after 5 s); one it
                    # closed is replaced, and a request it dropped unanswered is sent again once.
                    if up_writer is None or up_writer.is_closing() or up_reader.at_eof():
                        if up_writer is not None:
                            up_writer.close()
                        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
                    try:
                        up_writer.write(head + body)
                        await up_writer.drain()
                        keep = await self._response(up_reader, up_writer, writer, method, rec)
                        break
                    except (asyncio.IncompleteReadError, ConnectionError):
                        if attempt == 2 or rec["wire_bytes"]:
                            raise
                        up_writer.close()
                        up_writer = None
                rec["t_done"] = time.monotonic()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
            if up_writer is not None:
                up_writer.close()

    async def _response(self, up_reader, up_writer, writer, method: str, rec: dict) -> bool:
        """Relay one response through the link; fills rec; returns whether the connection stays open."""
        head = await up_reader.readuntil(b"\r\n\r\n")
        status_line, headers = _headers(head)
        status = int(status_line.split(" ")[1])
        rec.update(status=status, content_type=_get(headers, "content-type"),
                   content_encoding=_get(headers, "content-encoding"))
        close = (_get(headers, "connection") or "").lower() == "close"
        chunked = "chunked" in (_get(headers, "transfer-encoding") or "").lower()
        length = _get(headers, "content-length")
        no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        rec["head_bytes"] = len(head)
        overlay = self.overlay.get(rec["path"]) if self.overlay_on else None
        if (overlay and method == "GET" and status == 200 and not rec["range"] and not rec["content_encoding"]
                and not chunked and length is not None and _accepts(rec["accept_encoding"], overlay[1])):
            data, encoding = overlay
            await up_reader.readexactly(int(length))  # the identity body, dropped
            etag = _get(headers, "etag")
            keep = [(k, v) for k, v in headers if k.lower() not in ("content-length", "etag", "vary")]
            keep += [("Content-Length", str(len(data))), ("Content-Encoding", encoding), ("Vary", "Accept-Encoding")]
            if etag:
                keep.append(("ETag", etag[:-1] + f'-{encoding}"' if etag.endswith('"') else f"{etag}-{encoding}"))
            head = (status_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in keep) + "\r\n").encode("latin-1")
            rec.update(content_encoding=encoding, overlay=True, identity_bytes=int(length), head_bytes=len(head),
                       t_first_byte=time.monotonic())
            await self._write(writer, head, rec)
            await self._write(writer, data, rec, len(data))
            return not close
        rec["t_first_byte"] = time.monotonic()
        await self._write(writer, head, rec)
        if no_body:
            pass
        elif chunked:
            while True:
                size_line = await up_reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    trailer = size_line
                    while True:
                        line = await up_reader.readuntil(b"\r\n")
                        trailer += line
                        if line == b"\r\n":
                            break
                    await self._write(writer, trailer, rec)
                    break
                await self._write(writer, size_line + await up_reader.readexactly(size + 2), rec, size)
        elif length is not None:
            left = int(length)
            while left:
                data = await up_reader.read(min(CHUNK, left))
                if not data:
                    raise ConnectionError("upstream closed mid-body")
                left -= len(data)
                await self._write(writer, data, rec, len(data))
        else:
            close = True
            while data := await up_reader.read(CHUNK):
                await self._write(writer, data, rec, len(data))
        if close:
            up_writer.close()
        return not close
