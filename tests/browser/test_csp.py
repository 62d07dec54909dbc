"""Every page under its Content-Security-Policy (server/csp.py), in real Chromium: each reaches its
ready state and does one real thing (embeds a text or an image, indexes a folder, fetches an image
from another origin, frames /embed from another site) with no violation reported.

Violations are caught three ways, from before any of our scripts runs:
- a `securitypolicyviolation` listener in every document (context.add_init_script);
- console messages that mention "Content Security Policy" (what Chromium logs when it refuses);
- in the workers: Chromium gives a worker the policy its own script is sent with, and our scripts
  carry none. So the test sends each worker script with its page's policy and a violation
  listener of its own (a route): the policy must also cover what the workers do (WebAssembly,
  wheels, model downloads, onnxruntime's thread pool), for browsers that apply the page's policy to workers.
"""

from __future__ import annotations

import io
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from helpers import PW

MODEL = "tiny-reference"

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
}, true);
"""

# Prepended to each worker script; the worker's console reaches the page's console events.
WORKER_PREAMBLE = """self.addEventListener('securitypolicyviolation', (e) => {
  console.error(`Content Security Policy violation in worker ${self.name}: ${e.violatedDirective} blocked ${e.blockedURI || '(inline)'} at ${e.sourceFile}:${e.lineNumber}`);
});
"""
WORKER_SCRIPTS = ("/js/runtime/py-worker.js", "/js/runtime/ort-worker.js", "/js/runtime/snapshot-worker.js",
                  "/js/search/import-worker.js", "/js/search/vector-worker.js", "/js/search/zero-shot-thread.js")


def png(color, size=(96, 72)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def policy_of(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers.get_content_type() == "text/html", url
        return r.headers["Content-Security-Policy"]


class OtherOrigin:
    """Another origin on 127.0.0.1: a CORS image, and HTML pages registered by a test."""

    def __init__(self):
        self.pages: dict[str, str] = {}
        self.image = png((200, 60, 30))
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path in site.pages:
                    body, kind = site.pages[self.path].encode(), "text/html; charset=utf-8"
                elif self.path == "/photo.png":
                    body, kind = site.image, "image/png"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def other_origin():
    site = OtherOrigin()
    yield site
    site.close()


class CspWatch:
    """One browser context for the module: the page's listener, console capture, worker routes."""

    def __init__(self, browser, server):
        self.server = server
        self.context = browser.new_context(viewport=PW.VIEWPORT)
        self.context.add_init_script(RECORD_VIOLATIONS)
        self.worker_policy = None  # the policy of the page being tested, for its workers
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.workers_routed: list[str] = []
        self.context.route(lambda url: any(url.split("?")[0].endswith(s) for s in WORKER_SCRIPTS), self._worker_script)

    def _worker_script(self, route):
        request = route.request
        if self.worker_policy is None or not request.url.startswith(self.server.url):
            return route.continue_()
        # Fresh bytes (no 304 from a revalidation), decoded; the policy and the listener added.
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("if-none-match", "if-modified-since")}
        response = route.fetch(headers=headers)
        out = {k: v for k, v in response.headers.items() if k.lower() not in ("content-encoding", "content-length", "etag")}
        out["content-security-policy"] = self.worker_policy
        self.workers_routed.append(request.url.split("?")[0].rsplit("/", 1)[-1])
        route.fulfill(status=response.status, headers=out, body=WORKER_PREAMBLE + response.text())

    def new_page(self, path_for_policy: str):
        self.worker_policy = policy_of(self.server.url + path_for_policy)
        self.console.clear()
        self.page_errors.clear()
        page = self.context.new_page()
        page.set_default_timeout(PW.ACTION_TIMEOUT_MS)
        page.on("console", lambda m: "Content Security Policy" in m.text and self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        return page

    def violations(self, page) -> list[str]:
        found = []
        for frame in page.frames:
            try:
                found += frame.evaluate("window.__cspViolations || []")
            except Exception as exc:  # a frame of another origin that navigated away
                found.append(f"could not read violations of {frame.url}: {exc}")
        return found + self.console

    def close(self):
        # Worker scripts still being fetched for a page a failed test left open: no errors from them.
        self.context.unroute_all(behavior="ignoreErrors")
        self.context.close()


@pytest.fixture(scope="module")
def watch(browser, live_server):
    w = CspWatch(browser, live_server)
    yield w
    w.close()


def wait_ready(watch, page, frame=None):
    target = frame or page
    until(target, "document.body.dataset.state && document.body.dataset.state !== 'loading'", timeout=PW.BOOT_TIMEOUT_MS)
    state = target.evaluate("document.body.dataset.state")
    message = target.evaluate("document.querySelector('#message')?.textContent")
    assert state == "ready", f"{state}: {message}\nreported: {watch.console}\npage errors: {watch.page_errors}"


def until(target, condition: str, timeout=PW.ACTION_TIMEOUT_MS):
    """Wait for a JS condition on a page or frame; stop at once, and fail, if the document reports
    a CSP violation meanwhile (rather than wait out the timeout on what it blocked)."""
    target.wait_for_function(f"() => (window.__cspViolations || []).length > 0 || ({condition})", timeout=timeout)
    violations = target.evaluate("window.__cspViolations || []")
    assert violations == [], "CSP violations:\n" + "\n".join(violations)


def finish(watch, page, what):
    """No violation on the page, in its frames and workers, and no uncaught error."""
    page.wait_for_timeout(300)  # a violation report is queued as a task; let it land
    violations = watch.violations(page)
    errors = list(watch.page_errors)
    watch.console.clear()
    watch.page_errors.clear()
    page.close()
    assert violations == [], f"{what}: CSP violations:\n" + "\n".join(violations)
    assert errors == [], f"{what}: page errors: {errors}"


def test_every_page_sends_the_full_policy(live_server):
    for path in ("", "image.html", "text.html", "search.html", "widget-demo.html", "embed"):
        policy = policy_of(live_server.url + path)
        assert "default-src 'none'" in policy and "script-src 'self' 'wasm-unsafe-eval'" in policy, path


def test_playwright_conditions_poll_without_eval(watch, live_server):
    """tests/helpers.py turns wait_for_function's expression strings into functions: our pages
    refuse eval, which Playwright uses to poll a plain expression."""
    page = watch.new_page("text.html")
    page.goto(live_server.url + f"text.html?model={MODEL}")
    page.evaluate("setTimeout(() => { window.later = 'yes'; }, 300)")
    assert page.wait_for_function("window.later === 'yes' && window.later").json_value() == "yes"
    assert page.wait_for_function("(n) => window.later && n + 1", arg=41).json_value() == 42
    finish(watch, page, "polling")


def test_start_page(watch, live_server):
    page = watch.new_page("")
    page.goto(live_server.url + f"?model={MODEL}")
    wait_ready(watch, page)
    # A dynamic import of the public client from the page, and a text embedded through it.
    dims = page.evaluate("""async (model) => {
        const { createClip } = await import('./js/clip.js');
        const clip = await createClip({ model, encoders: ['text'] });
        const [e] = await clip.embedText(['a photo of a cat']);
        return e.length;
    }""", MODEL)
    assert dims > 0
    assert set(watch.workers_routed) >= {"py-worker.js", "ort-worker.js"}, watch.workers_routed
    finish(watch, page, "/")


def test_text_page(watch, live_server):
    page = watch.new_page("text.html")
    page.goto(live_server.url + f"text.html?model={MODEL}")
    wait_ready(watch, page)
    page.fill("#texts", "a photo of a cat\na photo of a dog")
    page.click("#embed")
    until(page, "Number(document.body.dataset.embedded || 0) >= 1 && !document.body.dataset.busy")
    assert page.locator("#similarity td[data-cosine]").count() > 0  # the matrix, coloured through CSSOM
    finish(watch, page, "/text.html")


def test_image_page(watch, live_server, other_origin):
    page = watch.new_page("image.html")
    page.goto(live_server.url + f"image.html?model={MODEL}")
    wait_ready(watch, page)
    page.set_input_files("#file", files=[{"name": "red.png", "mimeType": "image/png", "buffer": png((220, 30, 30))}])
    until(page, "Number(document.body.dataset.embedded || 0) >= 1")
    # An image URL on another origin: fetched by the page (connect-src *, this page only).
    page.fill("#url", other_origin.origin + "/photo.png")
    page.click("#url-form button")
    until(page, "Number(document.body.dataset.embedded || 0) >= 2")
    page.fill("#labels", "a red square\na blue square")
    until(page, "document.querySelectorAll('#probs li').length === 2")
    finish(watch, page, "/image.html")


def test_search_page(watch, live_server, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, color in enumerate([(220, 30, 30), (30, 200, 40), (30, 40, 210)]):
        (folder / f"photo-{i}.png").write_bytes(png(color))
    page = watch.new_page("search.html")
    page.goto(live_server.url + f"search.html?model={MODEL}")
    wait_ready(watch, page)
    page.set_input_files("#folder-input", str(folder))
    until(page, "search.stats().opened > 0 && !document.body.dataset.indexing && search.stats().state === 'done'")
    # Thumbnails are blob: URLs of the local files (img-src blob:).
    until(page, "[...document.querySelectorAll('#grid .card img')].some(i => i.complete && i.naturalWidth > 0)")
    # A text query through the form's submit button (it must stay on the page), then "more like
    # this" (its thumbnail is a blob: URL too).
    page.fill("#prompt", "a red photo")
    page.click("#search-button")
    until(page, "search.shown().length === 3 && search.shown().every(r => typeof r.score === 'number')")
    page.locator("#grid .card .more").first.click()
    until(page, "!document.querySelector('#example').hidden && document.querySelector('#example-thumb').naturalWidth > 0")
    assert page.url.startswith(live_server.url + "search.html")
    finish(watch, page, "/search.html")


def test_widget_demo_page(watch, live_server):
    page = watch.new_page("widget-demo.html")
    page.goto(live_server.url + f"widget-demo.html?model={MODEL}")
    wait_ready(watch, page)
    until(page, "/text-widget: clip-(ready|error)/.test(document.querySelector('#events').textContent)",
                           timeout=PW.BOOT_TIMEOUT_MS)
    events = page.inner_text("#events")
    assert "text-widget: clip-ready" in events, events
    page.fill("#text-widget input.text", "a photo of a cat")
    page.click("#text-widget button[type=submit]")
    until(page, "document.querySelector('#events').textContent.includes('text-widget: clip-embedding')")
    # The widget's own stylesheet applies (a constructed sheet: style-src has no 'unsafe-inline').
    radius = page.evaluate("getComputedStyle(document.querySelector('#text-widget').shadowRoot.querySelector('.box')).borderTopLeftRadius")
    assert radius not in ("", "0px"), radius
    assert page.inner_text("#origin") == live_server.url.rstrip("/")
    finish(watch, page, "/widget-demo.html")


def test_embed_framed_by_another_site(watch, live_server, other_origin):
    src = f"{live_server.url}embed?mode=text&model={MODEL}&origin={other_origin.origin}"
    other_origin.pages["/host.html"] = (f'<!doctype html><html><body><iframe id="clip" src="{src}" '
                                        f'width="340" height="260"></iframe></body></html>')
    page = watch.new_page("embed")
    page.goto(other_origin.origin + "/host.html")
    page.frame_locator("#clip").locator("body[data-state]").wait_for()
    frame = next(f for f in page.frames if f.url.startswith(live_server.url))
    wait_ready(watch, page, frame)
    frame.fill("clip-widget input.text", "a photo of a dog")
    frame.click("clip-widget button[type=submit]")
    until(frame, "document.querySelector('clip-widget').shadowRoot.querySelector('.output').textContent.length > 0")
    finish(watch, page, "/embed in an iframe of another origin")
