"""Tool outputs in real Chromium: a pulled folder serves offline with the source's embeddings;
uint8, int8 and fp16 variants run in onnxruntime-web (wasm); the repaired text model runs there
too. Our own `clip-web serve` over a temp models folder, our own browser context."""

from __future__ import annotations

import base64
import json
import shutil
import urllib.request

import numpy as np
import pytest

from helpers import PW, LiveServer
from hub_server import HubServer
from mt_helpers import VARIANTS, cos, ort_run, run_cli, tiny_ids

LOCAL = "rocca-vit-b-32-fp32-local"  # the pulled preset's id in the local folder
FOLDER = "rocca-vit-b-32-fp32"


@pytest.fixture(scope="module")
def served(tmp_path_factory, hub_root, legacy_text):
    """pull (through the stand-in hub) -> quantize/fp16 the pulled folder -> a models dir to serve."""
    root = tmp_path_factory.mktemp("served")
    hub = HubServer(hub_root)
    try:
        assert run_cli("models", "pull", FOLDER, "--to", root, "--hub", hub.url, "--quiet") == 0
    finally:
        hub.stop()
    for variant in VARIANTS:
        args = ["fp16"] if variant == "fp16" else ["quantize", f"--{variant}"]
        assert run_cli("models", args[0], root / FOLDER, "--to", root / f"{FOLDER}-{variant}", *args[1:]) == 0
    extra = root / "extra"  # no manifest: served as files, not listed
    extra.mkdir()
    shutil.copy(legacy_text, extra / "text-int64.onnx")
    assert run_cli("models", "fix-text-model", legacy_text, extra / "text-fixed.onnx") == 0
    return root


@pytest.fixture(scope="module")
def server(served, assets_dir, tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("variant-server"), served)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def page(server, browser):
    context = browser.new_context(viewport=PW.VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PW.ACTION_TIMEOUT_MS)
    page.goto(server.url + f"?model={LOCAL}")
    page.wait_for_function("document.body.dataset.state && document.body.dataset.state !== 'loading'",
                           timeout=PW.BOOT_TIMEOUT_MS)
    state = page.evaluate("document.body.dataset.state")
    assert state == "ready", page.evaluate("document.querySelector('#message')?.textContent")
    yield page
    context.close()


def _models(server) -> dict:
    with urllib.request.urlopen(server.url + "api/models", timeout=10) as r:
        return {m["id"]: m for m in json.loads(r.read())["models"]}


def _run(page, model_id, part, x):
    """runtime.run in the browser -> numpy (n, 512). The tensor travels as base64 bytes: a JSON
    list of 300k floats takes Playwright ~5 s."""
    kind = "Float32Array" if part == "image" else "Int32Array"
    out = page.evaluate(
        f"""async ([id, part, b64, dims]) => {{
            const models = (await (await fetch('/api/models')).json()).models;
            if (!runtime.models.has(id)) await runtime.loadModel(models.find(m => m.id === id));
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const out = await runtime.run(id, part, {{data: new {kind}(bytes.buffer), dims}});
            return {{data: Array.from(out.data), dims: out.dims}};
        }}""",
        [model_id, part, base64.b64encode(np.ascontiguousarray(x).tobytes()).decode(), list(x.shape)],
    )
    return np.asarray(out["data"], dtype=np.float32).reshape(out["dims"])


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(21)
    return {"image": rng.standard_normal((2, 3, 224, 224)).astype(np.float32),  # (2, 3, 224, 224)
            "text": tiny_ids(3, seed=22)}  # (3, 77) int32


def test_api_lists_pulled_model_and_variants(server):
    models = _models(server)
    assert models[LOCAL]["origin"] == "local" and models[LOCAL]["mirror_of"] == FOLDER
    assert models[LOCAL]["image"]["url"].startswith(f"/models/{FOLDER}/")
    for variant in VARIANTS:
        m = models[f"{LOCAL}-{variant}"]
        assert (m["origin"], m["variant"], m["source"]) == ("local", variant, LOCAL)
        assert m["image"]["url"] == f"/models/{FOLDER}-{variant}/clip-image-vit-32-float32.onnx"


def test_pulled_model_equals_source_in_browser(page, served, tiny_model_dir, inputs):
    """Served offline from the mirror, the embeddings are the source model's."""
    for part, x in inputs.items():
        got = _run(page, LOCAL, part, x)  # (n, 512)
        want = ort_run(tiny_model_dir / f"{part}.onnx", x)  # the source the hub served
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), part


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_runs_in_browser(page, served, inputs, variant):
    folder = served / f"{FOLDER}-{variant}"
    manifest = json.loads((folder / "manifest.json").read_text())
    for part, x in inputs.items():
        got = _run(page, f"{LOCAL}-{variant}", part, x)  # (n, 512) from onnxruntime-web wasm
        native = ort_run(folder / manifest[part]["url"], x)  # same file, native onnxruntime
        fp32 = ort_run(served / FOLDER / manifest[part]["url"], x)
        assert got.shape == native.shape
        assert cos(got, native).min() >= 0.9999, (part, cos(got, native))
        assert cos(got, fp32).min() >= (0.9999 if variant == "fp16" else 0.98), (part, cos(got, fp32))


def test_fixed_text_model_runs_like_the_original(page, served):
    """The repaired model loads and runs in onnxruntime-web (wasm) with the original's output.
    Measured: onnxruntime-web 1.30 (wasm, and WebGPU on SwiftShader) also runs the int64-ArgMax
    original; the repair is for older runtimes, where that kernel was missing."""
    result = page.evaluate(
        """async () => {
            const spec = (url) => ({url, input: 'input', output: 'output', input_dtype: 'int64'});
            const ids = new Int32Array(77); ids[0] = 49406; ids[1] = 320; ids[2] = 1125; ids[3] = 49407;
            const out = {};
            for (const name of ['int64', 'fixed']) {
                const key = `${name}:text`;
                const url = `/models/extra/text-${name}.onnx`;
                await runtime.ort.call('loadModel', {key, spec: spec(url), backend: 'wasm'});
                out[name] = Array.from((await runtime.ort.call('run', {key, data: ids, dims: [1, 77]})).data);
            }
            return out;
        }"""
    )
    ids = np.zeros((1, 77), dtype=np.int64)  # (1, 77)
    ids[0, :4] = [49406, 320, 1125, 49407]
    native = ort_run(served / "extra" / "text-int64.onnx", ids)[0]  # (512,)
    fixed = np.asarray(result["fixed"], dtype=np.float32)  # (512,)
    assert np.abs(fixed - native).max() <= 1e-4 * np.abs(native).max()
    np.testing.assert_array_equal(fixed, np.asarray(result["int64"], dtype=np.float32))


def test_memory_advice_offers_the_smaller_variant(server, browser):
    """A device that reports less memory than the model needs (navigator.deviceMemory, stubbed to
    0.47 GB: the tiny fp32 mirror needs ~0.49 GB by docs/memory.md's rule, its quantized variants
    ~0.46) gets a notice naming the need and a button that loads the smallest variant of the family."""
    context = browser.new_context(viewport=PW.VIEWPORT)
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'deviceMemory', { get: () => 0.47 })")
    try:
        page = context.new_page()
        page.set_default_timeout(PW.ACTION_TIMEOUT_MS)
        page.goto(server.url + f"text.html?model={LOCAL}")
        page.wait_for_function("document.body.dataset.state === 'ready' || document.body.dataset.state === 'error'",
                               timeout=PW.BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.state") == "ready"
        notice = page.inner_text("#memory-advice")
        assert "0.47 GB" in notice and "needs about 0.5 GB" in notice, notice
        models = _models(server)
        quantized = {f"{LOCAL}-{v}" for v in ("uint8", "int8")}
        page.click("#use-smaller")
        page.wait_for_function(f"window.clip && window.clip.manifest.id !== '{LOCAL}' && document.body.dataset.state === 'ready'",
                               timeout=PW.BOOT_TIMEOUT_MS)
        chosen = page.evaluate("window.clip.manifest.id")
        assert chosen in quantized, chosen
        assert models[chosen]["image"]["bytes"] < models[LOCAL]["image"]["bytes"]
        assert page.evaluate("new URLSearchParams(location.search).get('model')") == chosen
        assert page.query_selector("#memory-advice") is None  # the variant fits
        assert len(page.evaluate("clip.embedText('a photo of a cat')")) == 512
        # Without the stub nothing is said: the real deviceMemory here is 8 GB (Chromium's cap).
        plain = browser.new_context(viewport=PW.VIEWPORT).new_page()
        plain.goto(server.url + f"text.html?model={LOCAL}")
        plain.wait_for_function("document.body.dataset.state === 'ready'", timeout=PW.BOOT_TIMEOUT_MS)
        assert plain.query_selector("#memory-advice") is None
        plain.context.close()
    finally:
        context.close()
