"""The self-hosted runtime in real Chromium: start page, isolation, Python in the worker,
onnxruntime-web on the tiny reference model, and no request leaving 127.0.0.1."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest


@pytest.fixture(scope="module")
def ready(page_session):
    page_session.open("/?model=tiny-reference")
    return page_session


def test_start_page_reaches_ready(ready):
    text = ready.page.inner_text("#status")
    assert "0.27.7" in text and "1.30.0" in text
    assert "Cross-origin isolated\tyes" in text
    ready.screenshot("start-page.png")


def test_cross_origin_isolated_with_threads(ready):
    assert ready.page.evaluate("self.crossOriginIsolated") is True
    info = ready.page.evaluate("runtime.info()")
    assert info["onnx"]["crossOriginIsolated"] is True
    assert info["onnx"]["threads"] >= 1
    assert info["python"]["versions"]["pyodide"] == "0.27.7"
    assert info["python"]["versions"]["numpy"] == "2.0.2"
    assert info["python"]["versions"]["pillow"] == "10.2.0"
    timings = info["timings"]
    assert 0 < timings["pyodide_ready_ms"] <= timings["ready_ms"]


def test_public_client_url_imports_and_embeds(ready):
    """/js/clip.js is the public client other sites import; it must keep working from its URL."""
    dims = ready.page.evaluate(
        """async () => {
            const { createClip } = await import('/js/clip.js');
            const clip = await createClip({ model: 'tiny-reference' });
            const embedding = await clip.embedText('a photo of a cat');
            clip.dispose();
            return embedding.length;
        }"""
    )
    assert dims == 512


def test_python_in_worker_imports_numpy_and_pil(ready):
    out = ready.page.evaluate(
        """runtime.runPython(`
import json, numpy as np, PIL.Image, pyapp.preprocess, pyapp.tokenizer
a = np.arange(6, dtype=np.float32).reshape(2, 3)
json.dumps({"sum": float(a.sum()), "pil": PIL.__version__, "platform": __import__("sys").platform})
`)"""
    )
    assert json.loads(out) == {"sum": 15.0, "pil": "10.2.0", "platform": "emscripten"}


def _cpu_session(path):
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_image_encoder_equals_native_onnxruntime(ready, tiny_model_dir):
    rng = np.random.default_rng(7)
    pixel_values = rng.standard_normal((2, 3, 224, 224)).astype(np.float32)  # (2, 3, 224, 224)
    browser = ready.page.evaluate(
        """async (values) => {
            const out = await runtime.run('tiny-reference', 'image', {data: new Float32Array(values), dims: [2, 3, 224, 224]});
            return {data: Array.from(out.data), dims: out.dims};
        }""",
        pixel_values.ravel().tolist(),
    )
    assert browser["dims"] == [2, 512]
    image_embeds = np.asarray(browser["data"], dtype=np.float32).reshape(2, 512)  # (2, 512)
    native = _cpu_session(tiny_model_dir / "image.onnx").run(None, {"input": pixel_values})[0]
    assert np.abs(image_embeds - native).max() <= 1e-4


def test_text_encoder_equals_native_onnxruntime(ready, tiny_model_dir):
    input_ids = np.zeros((2, 77), dtype=np.int32)  # (2, 77)
    input_ids[0, :5] = [49406, 320, 1125, 539, 49407]
    input_ids[1, :8] = [49406, 320, 2368, 530, 518, 4494, 269, 49407]
    browser = ready.page.evaluate(
        """async (ids) => {
            const out = await runtime.run('tiny-reference', 'text', {data: new Int32Array(ids), dims: [2, 77]});
            return Array.from(out.data);
        }""",
        input_ids.ravel().tolist(),
    )
    text_embeds = np.asarray(browser, dtype=np.float32).reshape(2, 512)  # (2, 512)
    native = _cpu_session(tiny_model_dir / "text.onnx").run(None, {"input": input_ids})[0]
    assert np.abs(text_embeds - native).max() <= 1e-4


def test_concurrent_runs_all_complete_in_order(ready):
    results = ready.page.evaluate(
        """async () => {
            const runs = [];
            for (let i = 0; i < 6; i++) {
                const ids = new Int32Array(77); ids[0] = 49406; ids[1] = 320 + i; ids[2] = 49407;
                runs.push(runtime.run('tiny-reference', 'text', {data: ids, dims: [1, 77]}).then(o => o.data[0]));
            }
            return Promise.all(runs);
        }"""
    )
    assert len(results) == 6 and len(set(results)) == 6


@pytest.mark.parametrize(
    "spec_patch, code, words",
    [
        ({"url": "/models/tiny/missing.onnx"}, "download_failed", "HTTP 404"),
        ({"url": "/js/runtime/rpc.js", "bytes": None, "sha256": None}, "invalid_model", "not a valid ONNX model"),
        ({"url": "http://127.0.0.1:9/image.onnx"}, "download_failed", "unreachable"),
        ({"input": "pixel_values"}, "model_mismatch", 'manifest says input "pixel_values"'),
        # Downloaded now (a key the cache has not seen), kept before its session is made, then
        # found to be another model than its manifest says: removed from the cache again.
        ({"url": "/models/tiny/text.onnx", "sha256": None, "bytes": None, "output": "logits"}, "model_mismatch",
         'output "logits"'),
        ({"sha256": "0" * 64}, "hash_mismatch", "does not match its manifest"),
    ],
)
def test_bad_model_gives_clear_error_and_runtime_keeps_working(ready, spec_patch, code, words):
    error = ready.page.evaluate(
        """async (patch) => {
            const { models } = await (await fetch('/api/models')).json();
            const tiny = models.find(m => m.id === 'tiny-reference');
            const spec = {...tiny.image, ...patch};
            try {
                await runtime.ort.call('loadModel', {key: 'broken:image', spec, backend: 'wasm'});
                return null;
            } catch (err) { return {code: err.code, message: err.message}; }
        }""",
        spec_patch,
    )
    assert error is not None and error["code"] == code, error
    assert words in error["message"]
    # Nothing of a refused file is kept: not in the model cache, and no partial download either (a
    # file that downloaded whole but is no ONNX model used to leave its bytes in OPFS).
    kept = ready.page.evaluate("""async () => {
        const cache = await caches.open('clip-web-models-v1');
        const storage = await runtime.ort.call('storage');
        return { keys: (await cache.keys()).map((r) => decodeURIComponent(r.url)), partialBytes: storage.partialBytes };
    }""")
    assert kept["partialBytes"] == 0, kept
    assert not any("0" * 64 in k or "rpc.js" in k or ("text.onnx" in k and "sha256=&" in k) for k in kept["keys"]), kept
    still = ready.page.evaluate(
        "runtime.run('tiny-reference', 'text', {data: new Int32Array(77).fill(0).map((v, i) => i === 0 ? 49406 : i === 1 ? 49407 : 0), dims: [1, 77]}).then(o => o.dims)"
    )
    assert still == [1, 512]


def test_no_request_leaves_127_0_0_1(ready):
    # Every request of this module so far: page, workers, Pyodide, wheels, ORT, models.
    assert ready.requests, "no requests recorded"
    assert ready.foreign_requests() == []
    assert any("pyodide.asm.wasm" in url for url in ready.requests)
    assert any("ort-wasm-simd-threaded" in url for url in ready.requests)


def test_runtime_wasm_arrives_compressed_and_still_boots(browser, live_server):
    """Chromium asks for br; the big wasm files come precompressed (about a fifth of their size on
    the wire) and Pyodide and onnxruntime-web still compile and verify them: the page reaches ready."""
    context = browser.new_context()
    encodings = {}

    def on_response(response):
        name = response.url.rsplit("/", 1)[-1]
        if name.endswith(".wasm") or name == "pyodide.asm.js":
            encodings[name] = response.all_headers().get("content-encoding")

    context.on("response", on_response)
    try:
        page = context.new_page()
        page.goto(live_server.url + "?model=tiny-reference")
        page.wait_for_function("document.body.dataset.state === 'ready' || document.body.dataset.state === 'error'",
                               timeout=120_000)
        assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("#message")
    finally:
        context.close()
    assert encodings.get("pyodide.asm.wasm") == "br", encodings
    assert encodings.get("pyodide.asm.js") == "br", encodings
    assert encodings.get("ort-wasm-simd-threaded.wasm") == "br", encodings
