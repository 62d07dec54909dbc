"""<clip-widget> and the /embed iframe on pages of *another origin*, in real Chromium: all three
modes, one shared runtime, isolated and non-isolated hosts, postMessage origin checks, privacy,
and errors that stay inside the widget."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
import pytest

import pyapp
from helpers import PW

ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


class HostSite:
    """Another origin: serves the HTML pages a test registers, and logs what it was asked for."""

    def __init__(self):
        self.pages: dict[str, tuple[str, bool]] = {}
        self.log: list[tuple[str, str, int]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                length = int(self.headers.get("Content-Length") or 0)
                site.log.append(("GET", self.path, length))
                path = urlsplit(self.path).path
                if path not in site.pages:
                    self.send_error(404)
                    return
                html, isolated = site.pages[path]
                body = html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (ISOLATION_HEADERS if isolated else {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                site.log.append(("POST", self.path, int(self.headers.get("Content-Length") or 0)))
                self.send_error(405)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, path, html, isolated=False):
        self.pages[path] = (html, isolated)
        return self.origin + path

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def host():
    site = HostSite()
    yield site
    site.close()


@pytest.fixture(scope="module")
def third_site():
    site = HostSite()
    yield site
    site.close()


@pytest.fixture(scope="module")
def context(browser):
    context = browser.new_context(viewport=PW.VIEWPORT)
    context.requested = []
    context.on("request", lambda r: context.requested.append(r.url))
    yield context
    context.close()


@pytest.fixture(scope="module")
def torch_clip(tiny_model_dir):
    from torch_reference import TorchClip

    return TorchClip(tiny_model_dir / "checkpoint")


def host_page(server_url, widgets: str) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8">
<script type="module" src="{server_url}widget.js"></script>
<script>
  window.events = [];
  for (const name of ['clip-ready', 'clip-embedding', 'clip-error']) {{
    document.addEventListener(name, (e) => window.events.push({{
      type: name, id: e.target.id, detail: name === 'clip-embedding'
        ? {{ source: e.detail.source, embedding: Array.from(e.detail.embedding) }} : e.detail }}));
  }}
</script></head><body><h1>A host page on another origin</h1>{widgets}</body></html>"""


def open_page(context, url):
    page = context.new_page()
    page.set_default_timeout(PW.ACTION_TIMEOUT_MS)
    page.errors = []
    page.workers_seen = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("worker", lambda w: page.workers_seen.append(w.url))
    page.goto(url)
    return page


def wait_events(page, type_, count, widget_id=None):
    where = f" && e.id === '{widget_id}'" if widget_id else ""
    page.wait_for_function(
        f"window.events.filter(e => e.type === '{type_}'{where}).length >= {count}", timeout=PW.BOOT_TIMEOUT_MS
    )
    return [e for e in page.evaluate("window.events") if e["type"] == type_ and (widget_id is None or e["id"] == widget_id)]


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def photo_png():
    import io

    from PIL import Image

    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (180, 240, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


WIDGETS = """
<clip-widget id="w-image" mode="image" model="tiny-reference"></clip-widget>
<clip-widget id="w-text" mode="text" model="tiny-reference" theme="dark"></clip-widget>
<div style="width: 320px"><clip-widget id="w-match" mode="match" model="tiny-reference"></clip-widget></div>
"""


def test_three_modes_on_a_non_isolated_host_share_one_runtime(context, host, live_server, torch_clip):
    url = host.add("/plain.html", host_page(live_server.url, WIDGETS))
    page = open_page(context, url)
    wait_events(page, "clip-ready", 3)
    # Three widgets, one Python worker and one onnxruntime worker (single-threaded: no pthreads).
    assert len(page.workers_seen) == 2, page.workers_seen
    info = page.evaluate("document.querySelector('#w-text').info()")
    assert info["crossOriginIsolated"] is False and info["threads"] == 1
    image = photo_png()
    expected_image = torch_clip.image_embeds(pyapp.preprocess_image(image))[0]  # (512,)

    page.set_input_files("#w-image input[type=file]", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": image}])
    got = wait_events(page, "clip-embedding", 1, "w-image")[0]["detail"]
    assert got["source"] == "image"
    assert cosine(np.asarray(got["embedding"]), expected_image) >= 0.99999

    page.fill("#w-text input[type=text]", "a photo of a cat")
    page.click("#w-text button")
    got = wait_events(page, "clip-embedding", 1, "w-text")[0]["detail"]
    expected_text = torch_clip.text_embeds(pyapp.tokenize("a photo of a cat"))[0]
    assert cosine(np.asarray(got["embedding"]), expected_text) >= 0.99999

    labels = ["a photo of a cat", "a photo of a dog", "a diagram"]
    page.set_input_files("#w-match input[type=file]", files=[{"name": "photo.png", "mimeType": "image/png", "buffer": image}])
    page.wait_for_function("document.querySelector('#w-match').shadowRoot.querySelectorAll('li').length === 3")
    shown = page.evaluate(
        "[...document.querySelector('#w-match').shadowRoot.querySelectorAll('li')].map(li => [li.dataset.label, Number(li.dataset.prob)])"
    )
    expected = pyapp.zero_shot_probs(expected_image[None], torch_clip.text_embeds(pyapp.tokenize(labels)))[0]
    for label, prob in shown:
        assert abs(prob - expected[labels.index(label)]) <= 1e-4
    # The JS API gives the same as the UI, and equals the demo page's client (same runtime code path).
    api = page.evaluate(
        """async (bytes) => Array.from(await document.querySelector('#w-match').embedImage(new Blob([new Uint8Array(bytes)])))""",
        list(image),
    )
    assert cosine(np.asarray(api), expected_image) >= 0.99999
    assert page.errors == []
    page.screenshot(path=str(__import__("helpers").ARTIFACTS / "widget-host.png"), full_page=True)
    page.close()


def test_isolated_host_gets_threads(context, host, live_server, torch_clip):
    url = host.add("/isolated.html", host_page(live_server.url, '<clip-widget id="w" mode="text" model="tiny-reference"></clip-widget>'), isolated=True)
    page = open_page(context, url)
    wait_events(page, "clip-ready", 1)
    assert page.evaluate("self.crossOriginIsolated") is True
    info = page.evaluate("document.querySelector('#w').info()")
    assert info["crossOriginIsolated"] is True and info["threads"] >= 1
    got = page.evaluate("async () => Array.from(await document.querySelector('#w').embedText('a diagram'))")
    assert cosine(np.asarray(got), torch_clip.text_embeds(pyapp.tokenize("a diagram"))[0]) >= 0.99999
    image = photo_png()
    got = page.evaluate("async (b) => Array.from(await document.querySelector('#w').embedImage(new Blob([new Uint8Array(b)])))", list(image))
    assert cosine(np.asarray(got), torch_clip.image_embeds(pyapp.preprocess_image(image))[0]) >= 0.99999
    assert page.errors == []
    page.close()


IFRAME_HOST = """<!doctype html><html><body>
<iframe id="clip" src="{src}" style="width: 340px; height: 260px; border: 0"></iframe>
<script>
  window.replies = [];
  const widgetOrigin = {widget_origin!r};
  window.addEventListener('message', (e) => {{
    // Check the sender both ways: the right origin, and our own iframe.
    if (e.origin !== widgetOrigin || e.source !== document.querySelector('#clip').contentWindow) return;
    const d = e.data;
    window.replies.push({{ type: d.type, id: d.id, origin: e.origin, message: d.message,
      result: d.result ? (d.result.length !== undefined && typeof d.result[0] === 'number' ? Array.from(d.result) : d.result) : null }});
  }});
  window.ask = (msg) => document.querySelector('#clip').contentWindow.postMessage(msg, widgetOrigin);
</script></body></html>"""


def test_iframe_postmessage_checks_origins(context, host, third_site, live_server, torch_clip):
    widget_origin = live_server.url.rstrip("/")
    src = f"{live_server.url}embed?mode=match&model=tiny-reference&origin={host.origin}"
    page = open_page(context, host.add("/iframe.html", IFRAME_HOST.format(src=src, widget_origin=widget_origin)))
    page.wait_for_function("window.replies.some(r => r.type === 'clip:ready')", timeout=PW.BOOT_TIMEOUT_MS)
    page.evaluate("window.ask({type: 'clip:embedText', id: 1, text: 'a photo of a dog'})")
    image = photo_png()
    page.evaluate("(b) => window.ask({type: 'clip:embedImage', id: 2, image: new Uint8Array(b).buffer})", list(image))
    page.evaluate("(b) => window.ask({type: 'clip:classify', id: 3, image: new Uint8Array(b).buffer, labels: ['a cat', 'a dog']})", list(image))
    page.evaluate("window.ask({type: 'clip:nonsense', id: 4})")
    page.wait_for_function("[1, 2, 3, 4].every(id => window.replies.some(r => r.id === id))")
    replies = {r["id"]: r for r in page.evaluate("window.replies") if r.get("id")}
    assert all(r["origin"] == widget_origin for r in replies.values())
    assert cosine(np.asarray(replies[1]["result"]), torch_clip.text_embeds(pyapp.tokenize("a photo of a dog"))[0]) >= 0.99999
    assert cosine(np.asarray(replies[2]["result"]), torch_clip.image_embeds(pyapp.preprocess_image(image))[0]) >= 0.99999
    assert {r["label"] for r in replies[3]["result"]} == {"a cat", "a dog"}
    assert replies[4]["type"] == "clip:error" and "unknown message type" in replies[4]["message"]
    page.close()

    # The same iframe on a page of an origin it was not told about: messages are ignored, and it
    # never posts its results there.
    page = open_page(context, third_site.add("/evil.html", IFRAME_HOST.format(src=src, widget_origin=widget_origin)))
    frame = page.frame_locator("#clip")
    frame.locator("body[data-state=ready]").wait_for(timeout=PW.BOOT_TIMEOUT_MS)
    page.evaluate("window.ask({type: 'clip:embedText', id: 9, text: 'steal this'})")
    iframe = next(f for f in page.frames if f.url.startswith(live_server.url))
    iframe.wait_for_function("document.body.dataset.ignoredMessages === '1'")
    page.wait_for_timeout(500)
    assert page.evaluate("window.replies") == []
    page.close()


def test_errors_stay_inside_the_widget(context, host, live_server):
    widgets = """
<clip-widget id="bad-mode" mode="bogus" model="tiny-reference"></clip-widget>
<clip-widget id="bad-model" mode="text" model="no-such-model"></clip-widget>
<clip-widget id="no-server" mode="text" server="http://127.0.0.1:9/"></clip-widget>
<clip-widget id="ok" mode="image" model="tiny-reference"></clip-widget>
<button id="host-button" onclick="this.textContent = 'host still works'">click</button>"""
    page = open_page(context, host.add("/errors.html", host_page(live_server.url, widgets)))
    errors = wait_events(page, "clip-error", 3)
    by_id = {e["id"]: e["detail"]["message"] for e in errors}
    assert 'unknown mode "bogus"' in by_id["bad-mode"]
    assert 'unknown model "no-such-model"' in by_id["bad-model"]
    assert "unreachable" in by_id["no-server"]
    for wid, message in by_id.items():
        shown = page.evaluate(f"document.querySelector('#{wid}').shadowRoot.querySelector('.status.error')?.textContent")
        assert shown == message
    wait_events(page, "clip-ready", 1, "ok")
    page.set_input_files("#ok input[type=file]", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    err = wait_events(page, "clip-error", 1, "ok")[0]["detail"]["message"]
    assert "text, not an image" in err
    page.click("#host-button")
    assert page.inner_text("#host-button") == "host still works"
    assert page.errors == [], page.errors
    page.close()


def test_privacy_no_image_bytes_sent_and_only_local_servers(context, host, third_site, live_server):
    # Runs last in this module: covers every request made by the tests above.
    allowed = {urlsplit(live_server.url).netloc, urlsplit(host.origin).netloc, urlsplit(third_site.origin).netloc}
    foreign = [u for u in context.requested if urlsplit(u).scheme in ("http", "https") and urlsplit(u).netloc not in allowed]
    # The one deliberate exception: the widget told to use an unreachable server on port 9.
    assert [u for u in foreign if not u.startswith("http://127.0.0.1:9/")] == []
    assert context.requested
    assert all(r["method"] in ("GET", "HEAD") and r["body_bytes"] == 0 for r in live_server.requests())
    assert all(method == "GET" and length == 0 for method, _, length in host.log + third_site.log)
