"""Demo-page controls and model loading: presets, URL query round trip, the browser's model
cache, and a clear message with a retry button for every way a model can fail to load."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import PW, LiveServer


def write_manifest(folder, manifest):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def models_server(tmp_path_factory, tiny_model_dir, assets_dir):
    """A server whose models folder holds the tiny model twice and four broken models."""
    root = tmp_path_factory.mktemp("models")
    tiny = json.loads((tiny_model_dir / "manifest.json").read_text())
    for name in ("a-tiny", "b-tiny-copy"):
        shutil.copy(tiny_model_dir / "image.onnx", root / f"{name}-image.onnx")
        shutil.copy(tiny_model_dir / "text.onnx", root / f"{name}-text.onnx")
        write_manifest(root / name, {**tiny, "id": name, "name": f"Tiny {name}",
                                     "image": {**tiny["image"], "url": f"../{name}-image.onnx"},
                                     "text": {**tiny["text"], "url": f"../{name}-text.onnx"}})
    (root / "notes.txt").write_text("this is not an ONNX model\n" * 100)
    broken = {
        "c-missing-file": {"image": {**tiny["image"], "url": "../nowhere.onnx"}},
        "d-not-onnx": {"image": {"url": "../notes.txt", "input": "input", "output": "output", "input_dtype": "float32"}},
        "e-wrong-input-name": {"image": {**tiny["image"], "url": "../a-tiny-image.onnx", "input": "pixel_values"}},
        "f-truncated": {"image": {**tiny["image"], "url": "../a-tiny-image.onnx", "bytes": tiny["image"]["bytes"] + 1000,
                                  "sha256": None}},
    }
    for name, patch in broken.items():
        write_manifest(root / name, {**tiny, "id": name, "name": name, "text": {**tiny["text"], "url": "../a-tiny-text.onnx"},
                                     **patch})
    server = LiveServer(tmp_path_factory.mktemp("models-server"), root)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser, models_server):
    """One context for the module: its HTTP cache keeps Pyodide's reboots on navigation short."""
    context = browser.new_context(viewport=PW.VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PW.ACTION_TIMEOUT_MS)
    yield page
    context.close()


def wait_settled(page):
    page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=PW.BOOT_TIMEOUT_MS)
    return page.evaluate("document.body.dataset.state")


def model_gets(server, name):
    return sum(1 for r in server.requests() if r["path"] == f"/models/{name}" and r["method"] == "GET")


def test_default_model_and_query_round_trip(page, models_server):
    page.goto(models_server.url + "text.html")
    assert wait_settled(page) == "ready"
    assert page.input_value("#model") == "a-tiny"  # the local folder's first model is the default
    assert "model=a-tiny" in page.url and "backend=wasm" in page.url
    options = page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
    assert {"a-tiny", "b-tiny-copy", "rocca-vit-b-32-fp32", "xenova-vit-b-32-quantized"} <= set(options)
    page.select_option("#model", "b-tiny-copy")
    assert wait_settled(page) == "ready"
    page.wait_for_function("window.clip && window.clip.manifest.id === 'b-tiny-copy'")
    assert "model=b-tiny-copy" in page.url
    # The URL reproduces the setup.
    url = page.url
    page.goto(models_server.url + "image.html")
    page.goto(url)
    assert wait_settled(page) == "ready"
    assert page.input_value("#model") == "b-tiny-copy"
    assert page.evaluate("clip.manifest.id") == "b-tiny-copy"


def test_models_are_cached_in_the_browser(page, models_server):
    page.goto(models_server.url + "image.html?model=a-tiny")
    assert wait_settled(page) == "ready"
    page.evaluate("caches.delete('clip-web-models-v1')")
    page.reload()
    assert wait_settled(page) == "ready"
    first = model_gets(models_server, "a-tiny-image.onnx")
    assert page.evaluate("clip.info().then(i => i.cached)") is False
    page.reload()
    assert wait_settled(page) == "ready"
    assert model_gets(models_server, "a-tiny-image.onnx") == first, "the model was downloaded again"
    assert page.evaluate("clip.info().then(i => i.cached)") is True
    # The page says what the site stores: at least the cached model files.
    page.wait_for_function("document.querySelector('#storage-line')?.textContent.startsWith('Stored by this site:')")
    stored = int(page.get_attribute("#clear-cache", "data-stored-bytes"))
    model_bytes = sum(page.evaluate("clip.manifest")[part]["bytes"] for part in ("image", "text"))
    assert stored >= model_bytes, (stored, model_bytes)
    page.click("#clear-cache")
    page.wait_for_function("document.querySelector('#message').textContent.includes('cleared')")
    page.reload()
    assert wait_settled(page) == "ready"
    assert model_gets(models_server, "a-tiny-image.onnx") == first + 1


@pytest.mark.parametrize(
    "model, words",
    [
        ("c-missing-file", "HTTP 404"),
        ("d-not-onnx", "not a valid ONNX model"),
        ("e-wrong-input-name", 'manifest says input "pixel_values"'),
        ("f-truncated", "incomplete"),
        ("rocca-vit-b-32-fp32", "unreachable"),  # HuggingFace: no network here, as for an offline user
    ],
)
def test_bad_model_shows_error_with_retry_and_page_recovers(page, models_server, model, words):
    if "/image.html" not in page.url:
        page.goto(models_server.url + "image.html?model=a-tiny")
        assert wait_settled(page) == "ready"
    # Picking the model in the page (the runtime stays warm) fails the way opening a link to it would.
    page.select_option("#model", model)
    assert wait_settled(page) == "error"
    assert f"model={model}" in page.url
    message = page.inner_text("#message")
    assert "Could not load the model" in message and words in message, message
    assert page.is_visible("#retry")
    page.click("#retry")  # retrying fails the same way, and says so again
    assert wait_settled(page) == "error"
    page.select_option("#model", "a-tiny")
    assert wait_settled(page) == "ready"
    embedding = page.evaluate("clip.embedText('still works').then(e => e.length)")
    assert embedding == 512


def test_unknown_model_in_query_falls_back_with_notice(page, models_server):
    page.goto(models_server.url + "text.html?model=no-such-model")
    assert wait_settled(page) == "ready"
    assert 'Unknown model "no-such-model"' in page.inner_text("#notices")
    assert page.input_value("#model") == "a-tiny"
