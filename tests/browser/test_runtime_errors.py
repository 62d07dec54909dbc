"""The runtime fails loudly and clearly: a corrupt asset on the server, and a model that cannot be
had, each give a readable error on the page instead of a hang."""

from __future__ import annotations

import base64
import os
import shutil

import numpy as np
import pytest

import pyapp

from helpers import PW, LiveServer
from server import pins

ONE_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


def link_tree(src, dst):
    """A copy of the asset cache made of hard links (cheap), so one file can be replaced."""
    for root, _dirs, files in os.walk(src):
        rel = os.path.relpath(root, src)
        if rel.startswith("downloads"):
            continue
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for name in files:
            os.link(os.path.join(root, name), os.path.join(dst, rel, name))


@pytest.fixture(scope="module")
def corrupt_server(tmp_path_factory, assets_dir):
    assets = tmp_path_factory.mktemp("corrupt-assets")
    link_tree(assets_dir, assets)
    wheel = assets / f"pyodide-{pins.PYODIDE_VERSION}" / "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
    data = bytearray(wheel.read_bytes())
    wheel.unlink()  # break the hard link before writing
    data[5000] ^= 0xFF
    wheel.write_bytes(bytes(data))
    server = LiveServer(tmp_path_factory.mktemp("corrupt-server"), None, env={"CLIP_WEB_ASSETS": str(assets)})
    yield server
    server.stop()
    shutil.rmtree(assets, ignore_errors=True)


def test_corrupt_wheel_is_refused_with_a_clear_error(browser, corrupt_server):
    """A normal boot (no snapshot) loads numpy before ready: the page itself fails, clearly."""
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(corrupt_server.url + "?served_snapshot=0")
        page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=PW.BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.state") == "error"
        message = page.inner_text("#message")
        assert "pyapp failed to import" in message
        assert "numpy" in message
    finally:
        context.close()


def test_corrupt_wheel_builds_no_snapshot(corrupt_server):
    """The first-visit snapshot imports numpy: from a corrupt wheel the server builds none, says
    why, and serves on (the page then boots normally and fails as above)."""
    log = corrupt_server.stderr_text()
    assert "no Python snapshot for first visits: building it failed" in log, log[-2000:]
    assert corrupt_server.requests() is not None  # still serving


@pytest.fixture(scope="module")
def wheel_changed_server(tmp_path_factory, assets_dir):
    """A server whose snapshot and lock were built from good wheels, then numpy's precompiled
    wheel changed on disk (a botched deploy): the lock's sha256 no longer matches it. Its
    brotli and gzip copies are older than it now, so the server sends it as it is."""
    assets = tmp_path_factory.mktemp("changed-assets")
    link_tree(assets_dir, assets)
    server = LiveServer(tmp_path_factory.mktemp("changed-server"), None, env={"CLIP_WEB_ASSETS": str(assets)})
    wheel = assets / f"pyodide-{pins.PYODIDE_VERSION}" / "pyc" / "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"
    data = bytearray(wheel.read_bytes())
    wheel.unlink()  # break the hard link before writing
    data[5000] ^= 0xFF
    wheel.write_bytes(bytes(data))
    yield server
    server.stop()
    shutil.rmtree(assets, ignore_errors=True)


def test_changed_wheel_is_reported_and_images_still_work(browser, wheel_changed_server):
    """Restored from the server's snapshot (its libraries and modules come from the snapshot
    itself), Python is ready; numpy's wheel, whose other files are written after ready, no longer
    matches the lock. Images still get pyapp's pixels from the snapshot's modules, the runtime's
    status names the broken wheel, what needs numpy's files fails with that reason, and text works."""
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(wheel_changed_server.url)
        page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=PW.BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.state") == "ready"
        assert page.evaluate("runtime.info().then(i => i.python.snapshot.source)") == "server"
        pixels = page.evaluate(
            """async () => {
                const png = Uint8Array.from(atob('%s'), c => c.charCodeAt(0));
                return Array.from((await runtime.preprocess(png, {image_size: 224, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], text: {}})).data);
            }""" % ONE_PIXEL_PNG
        )
        want = pyapp.preprocess_image(base64.b64decode(ONE_PIXEL_PNG), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)).ravel()
        assert np.array_equal(np.asarray(pixels, dtype=np.float32), want)
        # numpy's and Pillow's files are written a few seconds after ready (py-worker.js, imageFiles).
        status = page.evaluate(
            """async () => {
                for (let i = 0; i < 300; i++) {
                    const s = await runtime.py.call('status');
                    if (s.imagesError || s.imagesReady) return s;
                    await new Promise((r) => setTimeout(r, 100));
                }
                return runtime.py.call('status');
            }"""
        )
        assert "numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl does not match the lock's sha256" in status["imagesError"], status
        error = page.evaluate(
            """runtime.runPython('import numpy.random; "imported"').then(() => null, (err) => ({code: err.code, message: err.message}))"""
        )
        assert error and error["code"] == "package_failed", error
        assert "numpy/Pillow failed to load" in error["message"], error
        ids = page.evaluate("runtime.tokenize(['a photo of a cat'], {context_length: 77, text: {}}).then(t => Array.from(t.data.slice(0, 7)))")
        assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    finally:
        context.close()


def test_unreachable_default_model_on_start_page(page_session):
    # No network here, as for an offline user: HuggingFace cannot be reached.
    page = page_session.page
    page.goto(page_session.server.url + "?model=rocca-vit-b-32-fp32")
    page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=PW.BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "error"
    message = page.inner_text("#message")
    assert "cannot download https://huggingface.co/rocca/openai-clip-js/resolve/main/" in message
    assert "unreachable" in message
