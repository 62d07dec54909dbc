"""First visits in real Chromium restore the Python snapshot the server built under Node
(server/python_snapshot.py) instead of booting Pyodide: tokens and embeddings equal torch's, the
vocab is never downloaded, the snapshot becomes the browser's own for the next visit (which then
downloads nothing of it), and a damaged one falls back to a normal boot that still works.

Bit-for-bit parity of a restored interpreter is checked by test_pyodide_parity.py ("served").
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess

import brotli
import numpy as np
import pytest

from test_pyodide_parity import wait_for_snapshot

import pyapp
from helpers import PW, LiveServer
from server.assets import encoded_dir, pyodide_dir
from server.python_snapshot import FOLDER, current_snapshot, inputs

TEXT_PAGE = "/text.html?model=tiny-reference"


def gets(server, fragment: str) -> int:
    return sum(1 for r in server.requests() if fragment in r["path"] and r["method"] == "GET")


def snapshot_state(page) -> dict:
    return page.evaluate("clip.info().then(i => i.python.snapshot)")


@pytest.fixture(scope="module")
def served_path(assets_dir) -> str:
    from helpers import REPO_ROOT

    path = current_snapshot(*inputs(assets_dir, REPO_ROOT / "web"))
    assert path, "clip-web assets built no Python snapshot (is Node.js installed?)"
    return path


@pytest.fixture(scope="module")
def first_visit(page_session, live_server, served_path):
    before = {"snapshot": gets(live_server, served_path), "vocab": gets(live_server, "/assets/vocab/")}
    page_session.open(TEXT_PAGE)
    return page_session, before


def test_first_visit_restores_the_servers_snapshot(first_visit, live_server, served_path, assets_dir):
    session, before = first_visit
    state = snapshot_state(session.page)
    assert state["restored"] is True and state["source"] == "server" and state["error"] is None, state
    assert state["bytes"] == (pyodide_dir(assets_dir) / served_path).stat().st_size
    assert gets(live_server, served_path) == before["snapshot"] + 1
    # The vocab is parsed inside the snapshot: a first visit never downloads it.
    assert gets(live_server, "/assets/vocab/") == before["vocab"]
    assert session.page.evaluate("fetch('/api/runtime').then(r => r.json())")["python_snapshot"]["url"].endswith(served_path)


def test_tokens_and_embeddings_from_the_servers_snapshot_equal_torch(first_visit, torch_clip):
    page = first_visit[0].page
    texts = ["a photo of a cat", "café au lait", "<|endoftext|>", "x " * 100]
    ids = page.evaluate("async (t) => Array.from((await clip.runtime.tokenize(t, clip.manifest)).data)", texts)
    assert np.array_equal(np.asarray(ids, dtype=np.int64).reshape(len(texts), 77), pyapp.tokenize(texts))
    got = np.asarray(page.evaluate("(t) => clip.embedText(t).then(es => es.map(e => Array.from(e)))", texts),
                     dtype=np.float32)  # (4, 512)
    want = torch_clip.text_embeds(pyapp.tokenize(texts))  # (4, 512)
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.99999, cos


def test_the_servers_snapshot_becomes_the_browsers_own(first_visit, live_server, served_path):
    session, _ = first_visit
    made = wait_for_snapshot(session.page)  # kept in Cache Storage once the page is idle
    assert made.get("adopted") is True
    keys = session.page.evaluate("caches.open('clip-web-python-v1').then(c => c.keys()).then(ks => ks.length)")
    assert keys == 1
    before = gets(live_server, served_path)
    session.open(TEXT_PAGE)
    state = snapshot_state(session.page)
    assert state["restored"] is True and state["source"] == "browser", state
    assert gets(live_server, served_path) == before  # nothing of it downloaded again
    assert session.page.evaluate("clip.embedText('a photo of a cat').then(e => e.length)") == 512


@pytest.fixture(scope="module")
def damaged_server(tmp_path_factory, assets_dir, reference_models, served_path):
    """A server whose prebuilt snapshot (and its brotli and gzip copies) are damaged: an asset
    cache of hard links, with the three snapshot files replaced (unlinked first, so the real cache
    is untouched) by the same bytes with every 4096th flipped."""
    tmp = tmp_path_factory.mktemp("damaged")
    assets = tmp / "assets"
    subprocess.run(["cp", "-al", str(assets_dir), str(assets)], check=True)
    target = pyodide_dir(assets) / served_path
    bad = bytearray(target.read_bytes())
    for i in range(0, len(bad), 4096):
        bad[i] ^= 0x5A
    target.unlink()
    target.write_bytes(bytes(bad))
    copies = encoded_dir(pyodide_dir(assets)) / FOLDER
    for suffix, compress in ((".br", lambda d: brotli.compress(d, quality=1)), (".gz", lambda d: gzip.compress(d, 1))):
        copy = copies / (target.name + suffix)
        copy.unlink()
        copy.write_bytes(compress(bytes(bad)))
        st = target.stat()
        os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    server = LiveServer(tmp, reference_models, env={"CLIP_WEB_ASSETS": str(assets)})
    yield server
    server.stop()
    shutil.rmtree(assets, ignore_errors=True)


def test_a_damaged_servers_snapshot_falls_back_to_a_normal_boot(browser, damaged_server):
    context = browser.new_context(viewport=PW.VIEWPORT)
    try:
        page = context.new_page()
        page.set_default_timeout(PW.ACTION_TIMEOUT_MS)
        page.goto(damaged_server.url + TEXT_PAGE.lstrip("/"))
        page.wait_for_function("document.body.dataset.state && document.body.dataset.state !== 'loading'",
                               timeout=PW.BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.state") == "ready"
        state = snapshot_state(page)
        assert state["restored"] is False, state
        assert "server's Python snapshot could not be restored" in state["error"] and "started normally" in state["error"]
        assert page.evaluate("clip.embedText('a photo of a cat').then(e => e.length)") == 512
        # The normal boot leaves a snapshot of this browser's own, which the next visit prefers.
        made = wait_for_snapshot(page)
        assert not made.get("adopted")
        page.reload()
        page.wait_for_function("document.body.dataset.state === 'ready'", timeout=PW.BOOT_TIMEOUT_MS)
        state = snapshot_state(page)
        assert state["restored"] is True and state["source"] == "browser" and state["error"] is None, state
    finally:
        context.close()


@pytest.fixture(scope="module")
def torch_clip(tiny_model_dir):
    from torch_reference import TorchClip

    return TorchClip(tiny_model_dir / "checkpoint")
