"""Warm starts in real Chromium: the Python memory snapshot is made after a first visit, restored
and reused on the next ones, and a corrupt or stale one falls back to a normal boot and is
replaced; the text page never loads the image encoder; a warm start downloads and hashes no model.

These run against a server that offers no prebuilt snapshot (`--no-python-snapshot`), so the first
visit boots; test_served_snapshot.py covers the server's snapshot.

Bit-for-bit parity of a restored interpreter (every image, every golden text) is checked by
test_pyodide_parity.py, which runs all of its tests on a booted and on a restored interpreter.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from test_pyodide_parity import GOLDEN_TOKENS, wait_for_snapshot

import pyapp
from helpers import LiveServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pyapp"))
from image_corpus import generate_image_corpus  # noqa: E402

TEXT_PAGE = "/text.html?model=tiny-reference"
GOLDEN = json.loads(GOLDEN_TOKENS.read_text())

SNAPSHOT_KEYS = "caches.open('clip-web-python-v1').then(c => c.keys()).then(ks => ks.map(k => k.url))"


def python_state(page) -> dict:
    return page.evaluate("clip.info().then(i => i.python)")


def model_gets(server, suffix: str) -> int:
    return sum(1 for r in server.requests() if r["path"].endswith(suffix) and r["method"] == "GET")


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, assets_dir, reference_models):
    server = LiveServer(tmp_path_factory.mktemp("server"), reference_models, extra_args=["--no-python-snapshot"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def text_page(page_session, live_server):
    """The text page in this module's fresh context, booted normally once, its snapshot made."""
    page_session.model_gets_before = {f: model_gets(live_server, f"/tiny/{f}") for f in ("image.onnx", "text.onnx")}
    page = page_session.open(TEXT_PAGE)
    assert python_state(page)["snapshot"]["restored"] is False
    assert page.evaluate("fetch('/api/runtime').then(r => r.json())")["python_snapshot"] is None
    wait_for_snapshot(page)
    return page_session


def test_snapshot_is_made_keyed_and_restored(text_page):
    page = text_page.page
    keys = page.evaluate(SNAPSHOT_KEYS)
    assert len(keys) == 1
    key = parse_qs(urlsplit(keys[0]).query)
    assert key["pyodide"] == ["0.27.7"] and len(key["lock"][0]) == 64
    text_page.open(TEXT_PAGE)
    state = python_state(page)
    assert state["snapshot"]["restored"] is True and state["snapshot"]["error"] is None
    assert state["snapshot"]["source"] == "browser"
    assert page.evaluate("clip.runtime.python.timings.ready_ms") > 0
    # Reused, not made again: still the one entry.
    assert page.evaluate(SNAPSHOT_KEYS) == keys


def test_restored_tokens_and_embeddings_equal_a_normal_boot(text_page, torch_clip):
    page = text_page.page
    assert python_state(page)["snapshot"]["restored"] is True
    texts = [e["text"] for e in GOLDEN]
    ids = page.evaluate("async (t) => { const r = await clip.runtime.tokenize(t, clip.manifest); return Array.from(r.data); }", texts)
    assert np.array_equal(np.asarray(ids, dtype=np.int32).reshape(len(texts), 77), np.array([e["ids"] for e in GOLDEN]))
    got = np.asarray(page.evaluate("clip.embedText(['a photo of a cat', 'café au lait']).then(es => es.map(e => Array.from(e)))"),
                     dtype=np.float32)  # (2, 512)
    want = torch_clip.text_embeds(pyapp.tokenize(["a photo of a cat", "café au lait"]))  # (2, 512)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.99999


def test_restored_interpreter_takes_images_at_once(text_page):
    """Right after a restore, before numpy's and Pillow's files are written: TIFF and WebP (the
    plugins Pillow's init() imports) give pyapp's pixels, and no call needed a second try."""
    page = text_page.page
    text_page.open(TEXT_PAGE)
    corpus = dict(generate_image_corpus())
    names = ["i16_tiff_300x200.tif", "webp_lossless_260x190.webp", "rgb_photo_640x480.png"]
    got = page.evaluate(
        """async (images) => Promise.all(images.map(async (b64) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             return Array.from((await clip.runtime.preprocess(bytes, clip.manifest)).data);
           }))""",
        [base64.b64encode(corpus[n]).decode() for n in names],
    )
    state = page.evaluate("clip.runtime.py.call('status')")
    assert python_state(page)["snapshot"]["restored"] is True
    assert state.get("imagesRetries") is None, state
    for name, pixels in zip(names, got):
        want = pyapp.preprocess_image(corpus[name]).ravel()  # (1 * 3 * 224 * 224,)
        assert np.array_equal(np.asarray(pixels, dtype=np.float32), want), name


def test_text_page_never_loads_the_image_encoder(text_page, live_server):
    page = text_page.page
    info = page.evaluate("clip.info()")
    assert info["encoders"] == ["text"]
    before = text_page.model_gets_before
    assert model_gets(live_server, "/tiny/image.onnx") == before["image.onnx"]  # never fetched by this page
    assert model_gets(live_server, "/tiny/text.onnx") == before["text.onnx"] + 1  # once, then from the cache


def test_warm_start_downloads_and_hashes_no_model(text_page, live_server):
    page = text_page.page
    before = model_gets(live_server, "/tiny/text.onnx")
    text_page.open(TEXT_PAGE)
    model = page.evaluate("clip.info().then(i => i.timings.model.text)")
    assert page.evaluate("clip.info().then(i => i.cached)") is True
    assert model_gets(live_server, "/tiny/text.onnx") == before
    text_info = page.evaluate("clip.runtime.loadedParts.get('tiny-reference:text')")
    assert text_info["cached"] is True and text_info["hashed"] is False, text_info
    assert model["download_ms"] >= 0


def test_corrupt_snapshot_falls_back_and_is_replaced(text_page):
    page = text_page.page
    (key,) = page.evaluate(SNAPSHOT_KEYS)
    # Same key and length, wrong bytes: what a damaged cache entry would look like.
    page.evaluate(
        """async (key) => {
            const cache = await caches.open('clip-web-python-v1');
            const good = new Uint8Array(await (await cache.match(key)).arrayBuffer());
            const bad = good.slice();
            for (let i = 0; i < bad.length; i += 4096) bad[i] ^= 0x5a;
            await cache.put(key, new Response(bad, { headers: { 'X-Clip-Web-Bytes': String(bad.length) } }));
        }""",
        key,
    )
    text_page.open(TEXT_PAGE)  # still reaches ready
    state = python_state(page)
    assert state["snapshot"]["restored"] is False
    assert "could not be restored" in state["snapshot"]["error"]
    assert page.evaluate("clip.embedText('a photo of a cat').then(e => e.length)") == 512
    wait_for_snapshot(page)  # a new one replaces it
    text_page.open(TEXT_PAGE)
    assert python_state(page)["snapshot"]["restored"] is True


def test_stale_snapshot_is_not_used_and_is_dropped(text_page):
    page = text_page.page
    (key,) = page.evaluate(SNAPSHOT_KEYS)
    stale = key.replace("lock=", "lock=0000")  # as if made for another lock (other wheels)
    page.evaluate(
        """async ([key, stale]) => {
            const cache = await caches.open('clip-web-python-v1');
            const bytes = await (await cache.match(key)).arrayBuffer();
            await cache.delete(key);
            await cache.put(stale, new Response(bytes, { headers: { 'X-Clip-Web-Bytes': String(bytes.byteLength) } }));
        }""",
        [key, stale],
    )
    text_page.open(TEXT_PAGE)
    assert python_state(page)["snapshot"]["restored"] is False
    wait_for_snapshot(page)
    assert page.evaluate(SNAPSHOT_KEYS) == [key]  # the stale one is gone, the current one is back


@pytest.fixture(scope="module")
def torch_clip(tiny_model_dir):
    from torch_reference import TorchClip

    return TorchClip(tiny_model_dir / "checkpoint")
