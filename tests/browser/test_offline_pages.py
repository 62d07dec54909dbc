"""Offline after the first visit, in real Chromium: once a model page is ready, the service worker
(/sw.js, server/offline.py) saves this version's files; with the server stopped, a reload of the
image, text and search pages reaches ready from that copy with the cached model, says that it is
offline, and embeds exactly as it did online. A new version (here: the server's model list changed)
replaces the saved copy on the next visit, and the page says so.

The module runs its own server on a fixed port (one origin across restarts) over a copy of the
tiny model, so the test can stop it, change it and start it again.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from helpers import PW, LiveServer, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pyapp"))
from image_corpus import generate_image_corpus  # noqa: E402

PAGES = ["/text.html", "/image.html", "/search.html"]
TEXTS = ["a photo of a cat", "café au lait"]
IMAGE = "rgb_photo_640x480.png"
CACHE_PREFIX = "clip-web-app-"
APP_CACHES = f"caches.keys().then(ks => ks.filter(k => k.startsWith('{CACHE_PREFIX}')))"
SAVED_URLS = "(name) => caches.open(name).then(c => c.keys()).then(ks => ks.map(k => new URL(k.url).pathname))"


def build_of(server) -> dict:
    """The BUILD object the server put into /sw.js."""
    with urllib.request.urlopen(server.url + "sw.js", timeout=30) as r:
        source = r.read().decode()
    start = source.index("const BUILD = ") + len("const BUILD = ")
    return json.JSONDecoder().raw_decode(source[start:])[0]


class Site:
    """A clip-web server that can be stopped and started again on the same port."""

    def __init__(self, tmp: Path, models: Path):
        self.tmp, self.models, self.port = tmp, models, free_port()
        self.server = None
        self.starts = 0

    def start(self):
        self.starts += 1
        folder = self.tmp / f"run-{self.starts}"
        folder.mkdir()
        self.server = LiveServer(folder, self.models, port=self.port)
        return self.server

    def stop(self):
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture(scope="module")
def site(tmp_path_factory, assets_dir, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("offline")
    models = tmp / "models"
    shutil.copytree(tiny_model_dir, models / "tiny")
    site = Site(tmp, models)
    site.start()
    yield site
    site.stop()


@pytest.fixture(scope="module")
def page(browser, site):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(PW.ACTION_TIMEOUT_MS)
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    yield page
    context.close()


def open_page(page, url: str, state: str = "ready"):
    page.goto(url)
    page.wait_for_function("document.body.dataset.state && document.body.dataset.state !== 'loading'",
                           timeout=PW.BOOT_TIMEOUT_MS)
    actual = page.evaluate("document.body.dataset.state")
    if actual != state:
        message = page.evaluate("document.querySelector('#message')?.textContent")
        raise AssertionError(f"{url}: page state {actual!r}, expected {state!r}: {message}\nconsole: {page.console_errors}")


def wait_offline_state(page, state: str):
    try:
        page.wait_for_function(f"document.body.dataset.offline === '{state}'", timeout=PW.BOOT_TIMEOUT_MS)
    except Exception:
        seen = page.evaluate("""async () => {
          const r = await navigator.serviceWorker.getRegistration();
          const w = (x) => x && [x.state, x.scriptURL];
          return [document.body.dataset.offline, document.querySelector('#offline-status')?.textContent,
                  await caches.keys(), w(r?.active), w(r?.waiting), w(r?.installing)];
        }""")
        raise AssertionError(f"offline state {seen[0]!r} ({seen[1]!r}), expected {state!r}; caches {seen[2]}, "
                             f"service worker active/waiting/installing {seen[3:]}; console: {page.console_errors}")


def embed_text(page) -> np.ndarray:
    return np.asarray(page.evaluate("(t) => clip.embedText(t).then(es => es.map(e => Array.from(e)))", TEXTS),
                      dtype=np.float32)  # (2, 512)


def embed_image(page) -> np.ndarray:
    data = base64.b64encode(dict(generate_image_corpus())[IMAGE]).decode()
    return np.asarray(page.evaluate(
        "(b64) => clip.embedImage(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))).then(e => Array.from(e))", data),
        dtype=np.float32)  # (512,)


ONLINE = {}


def test_a_ready_page_saves_this_version(page, site):
    build = build_of(site.server)
    open_page(page, site.url + "text.html")
    wait_offline_state(page, "saved")
    # The worker does not claim the page that installed it (sw.js: Firefox's claim never settles);
    # that page is told all the same, and the next load is controlled.
    assert page.evaluate("navigator.serviceWorker.controller") is None
    assert page.evaluate(APP_CACHES) == [CACHE_PREFIX + build["version"]]
    saved = set(page.evaluate(SAVED_URLS, CACHE_PREFIX + build["version"]))
    assert saved == set(build["files"])
    # The runtime and every page's modules, never a model (the pages keep those themselves).
    assert {"/sw.js", "/models/tiny/text.onnx"}.isdisjoint(saved)
    assert {"/api/runtime", "/js/runtime/py-worker.js", "/assets/ort-1.30.0/ort-wasm-simd-threaded.wasm"} <= saved
    status = page.text_content("#offline-status")
    assert "Saved in this browser" in status and build["version"] in status
    open_page(page, site.url + "text.html")
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    ONLINE["text"] = embed_text(page)
    for path in ("/image.html", "/search.html"):
        open_page(page, site.url + path.lstrip("/"))
    ONLINE["image"] = embed_image(page)  # the search page's client embeds images too


def test_a_new_version_replaces_the_saved_one(page, site):
    if "text" not in ONLINE:
        pytest.fail("needs test_a_ready_page_saves_this_version first")
    old = page.evaluate(APP_CACHES)
    assert len(old) == 1
    # A new version: here the server's model list changed (another name for the model).
    site.stop()
    manifest = site.models / "tiny" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["name"] = data.get("name", "tiny") + " (renamed)"
    manifest.write_text(json.dumps(data))
    site.start()
    open_page(page, site.url + "text.html")
    wait_offline_state(page, "updated")
    new_version = build_of(site.server)["version"]
    status = page.text_content("#offline-status")
    assert f"updated to version {new_version} (from {old[0][len(CACHE_PREFIX):]})" in status
    # The old copy is deleted when the new worker takes over, which may come a moment after the page
    # is told that the new copy is complete.
    deadline = time.monotonic() + PW.BOOT_TIMEOUT_MS / 1000
    while len(page.evaluate(APP_CACHES)) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert page.evaluate(APP_CACHES) == [CACHE_PREFIX + new_version]
    ONLINE["version"] = new_version


@pytest.mark.parametrize("path", PAGES)
def test_pages_reach_ready_with_the_server_stopped(page, site, path):
    if "version" not in ONLINE:
        pytest.fail("needs the tests above first")
    site.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(site.url + "healthz", timeout=5)
    open_page(page, site.url + path.lstrip("/"))
    wait_offline_state(page, "offline")
    status = page.text_content("#offline-status")
    assert "Offline: the server cannot be reached" in status and ONLINE["version"] in status
    assert "(renamed)" in page.text_content("#model")  # the new version's model list
    assert page.evaluate("clip.info()")["cached"] is True
    if path == "/image.html":
        assert np.array_equal(embed_image(page), ONLINE["image"])
    else:
        assert np.array_equal(embed_text(page), ONLINE["text"])
