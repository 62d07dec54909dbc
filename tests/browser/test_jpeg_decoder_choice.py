"""The Python worker lets the browser decode colour JPEGs only if it decodes the self-check's
samples exactly as PyPI's Pillow does; otherwise Pillow in Pyodide decodes them, and info() says
so. The mismatch is forced by serving doctored expectations to a real page."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import pyapp
from helpers import PW

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pyapp"))
from image_corpus import generate_image_corpus  # noqa: E402

EXPECTATIONS = Path(__file__).resolve().parents[2] / "web" / "js" / "runtime" / "jpeg-self-check.json"

EMBED = """async (b64) => {
  const { createClip } = await import('/js/clip.js');
  const clip = await createClip({ model: 'tiny-reference' });
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const result = await clip.embedImage(bytes, { details: true });
  const info = await clip.info();
  return { decoder: result.decoder, jpegDecoder: info.jpegDecoder, embedding: Array.from(result.embedding),
           pixels: Array.from(result.pixelValues.data.slice(0, 4096)) };
}"""


@pytest.fixture(scope="module")
def jpeg_b64():
    return base64.b64encode(dict(generate_image_corpus())["rgb_photo_1024x768.jpg"]).decode()


def _open(browser, live_server, route=None):
    context = browser.new_context()
    if route:
        context.route("**/jpeg-self-check.json", route)
    page = context.new_page()
    page.set_default_timeout(PW.BOOT_TIMEOUT_MS)
    page.goto(live_server.url + "?model=tiny-reference")
    page.wait_for_function("document.body.dataset.state === 'ready' || document.body.dataset.state === 'error'")
    assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("#message")
    return context, page


def test_chromium_passes_and_decodes_jpegs_itself(browser, live_server, jpeg_b64):
    context, page = _open(browser, live_server)
    try:
        out = page.evaluate(EMBED, jpeg_b64)
    finally:
        context.close()
    assert out["jpegDecoder"]["decoder"] == "browser", out["jpegDecoder"]
    assert "3 samples" in out["jpegDecoder"]["reason"]
    assert out["decoder"] == "browser"


@pytest.fixture(scope="module")
def torch_clip(tiny_model_dir):
    from torch_reference import TorchClip

    return TorchClip(tiny_model_dir / "checkpoint")


def test_a_browser_that_decodes_differently_gets_pillow(browser, live_server, jpeg_b64, torch_clip):
    doctored = json.loads(EXPECTATIONS.read_text())
    sample = doctored["samples"][1]
    rgb = bytearray(base64.b64decode(sample["rgb"]))
    rgb[100] ^= 0x03  # a decoder 3 levels off in one channel of one pixel
    sample["rgb"] = base64.b64encode(bytes(rgb)).decode()

    def serve_doctored(route):
        route.fulfill(status=200, content_type="application/json", body=json.dumps(doctored))

    context, page = _open(browser, live_server, serve_doctored)
    try:
        out = page.evaluate(EMBED, jpeg_b64)
        # The same JPEG through Pillow in Pyodide, asked directly: what the fallback must give.
        pillow = page.evaluate(
            """async (b64) => {
              const { createClip } = await import('/js/clip.js');
              const clip = await createClip({ model: 'tiny-reference' });
              const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
              const m = clip.manifest;
              const code = `import base64, json, numpy as np
from pyapp import preprocess
px = preprocess.preprocess_image(base64.b64decode("${b64}"), size=${m.image_size}, mean=${JSON.stringify(m.mean)}, std=${JSON.stringify(m.std)})
json.dumps(px.ravel()[:4096].tolist())`;
              return JSON.parse(await clip.runtime.runPython(code));
            }""",
            jpeg_b64,
        )
        still_works = page.evaluate("window.clip ? true : document.body.dataset.state === 'ready'")
    finally:
        context.close()
    verdict = out["jpegDecoder"]
    assert verdict["decoder"] == "pillow", verdict
    assert "baseline-444" in verdict["reason"] and "up to 3 levels" in verdict["reason"]
    assert out["decoder"] == "pillow"
    assert len(pillow) == 4096 and out["pixels"] == pillow
    assert still_works
    # Pyodide's libjpeg is not PyPI's libjpeg-turbo (chroma upsampling, mean <= 2 levels): the
    # fallback is close to torch's input, not equal. Measured on this photo with the tiny random-weight
    # model (which amplifies pixel noise): cosine 0.99914. Not the 0.99999 the exact path gives.
    want = torch_clip.image_embeds(pyapp.preprocess_image(base64.b64decode(jpeg_b64)))[0]  # (512,)
    got = np.asarray(out["embedding"], dtype=np.float32)  # (512,)
    cosine = float(np.dot(got, want) / (np.linalg.norm(got) * np.linalg.norm(want)))
    print(f"forced Pillow fallback vs torch: cosine {cosine:.8f}")
    assert 0.999 <= cosine < 0.99999


def test_the_samples_catch_a_real_other_decoder(page_session):
    """Pyodide's Pillow is built against another libjpeg (see pyapp/preprocess.py): on these
    samples it gives other pixels, so a browser decoding like it would fail the check."""
    page_session.open("/?model=tiny-reference")
    samples = json.loads(EXPECTATIONS.read_text())["samples"]
    code = (
        "import base64, io, json, numpy as np\nfrom PIL import Image\n"
        f"samples = json.loads({json.dumps(json.dumps(samples))})\n"
        "out = {}\n"
        "for s in samples:\n"
        "    got = np.asarray(Image.open(io.BytesIO(base64.b64decode(s['jpeg']))).convert('RGB')).astype(int)\n"
        "    want = np.frombuffer(base64.b64decode(s['rgb']), dtype=np.uint8).reshape(got.shape).astype(int)\n"
        "    out[s['name']] = int(np.abs(got - want).max())\n"
        "json.dumps(out)"
    )
    worst = json.loads(page_session.page.evaluate("(code) => runtime.runPython(code)", code))
    assert set(worst) == {"baseline-420", "baseline-444", "progressive-420"}
    assert worst["baseline-420"] > 0 and worst["progressive-420"] > 0, worst
