"""A manifest's pipeline rules reach the page (#16 item 1), in real Chromium.

The tiny reference model served twice: as itself (OpenAI CLIP's rules) and under a second manifest
that states SigLIP's image rules (squash, alpha over white, floor crop, mean/std 0.5) and sigmoid
scoring. The page's pixel values must equal CPython pyapp's under those rules (which equal
transformers' SiglipImageProcessorPil: tests/pyapp/test_pipeline.py), through Pillow in Pyodide and
through the browser's JPEG decoder, its embeddings native onnxruntime's on those pixels, and its
label probabilities the sigmoid. A manifest with an unknown rule is refused by name, in the page too.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from helpers import PW, LiveServer, PageSession
from pyapp.pipeline import image_rules
from pyapp.preprocess import preprocess_image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pyapp"))
import image_corpus  # noqa: E402

RULES = {
    "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
    "preprocess": {"resize": "squash", "interpolation": "bilinear", "convert_rgb": "first_over_white",
                   "crop_rounding": "floor"},
    "scoring": {"kind": "sigmoid", "logit_scale": 10.0, "logit_bias": -2.5},
}
# One file per path the worker takes: browser-decoded JPEG, Pillow (PNG with alpha, palette GIF, WebP).
FILES = ("rgb_photo_420x560_portrait.jpg", "rgba_varying_alpha_300x200.png", "p_transparency_250x180.png",
         "webp_lossy_rgba_260x190.webp")


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("rule-models")
    shutil.copytree(tiny_model_dir, root / "tiny")
    tiny = json.loads((tiny_model_dir / "manifest.json").read_text())
    ruled = {**tiny, **RULES, "id": "tiny-siglip-rules", "name": "Tiny reference, SigLIP's rules"}
    ruled["image"] = {**tiny["image"], "url": "../tiny/image.onnx"}
    ruled["text"] = {**tiny["text"], "url": "../tiny/text.onnx"}
    (root / "ruled").mkdir()
    (root / "ruled" / "manifest.json").write_text(json.dumps(ruled))
    bad = {**ruled, "id": "tiny-lanczos", "preprocess": {"interpolation": "lanczos"}}
    (root / "bad").mkdir()
    (root / "bad" / "manifest.json").write_text(json.dumps(bad))
    return root, ruled


@pytest.fixture(scope="module")
def page(browser, models, tmp_path_factory):
    root, _ = models
    server = LiveServer(tmp_path_factory.mktemp("rules-server"), root)
    context = browser.new_context(viewport=PW.VIEWPORT)
    page = PageSession(context, server).open("?model=tiny-reference")
    page.evaluate("""async () => {
        const { createClip } = await import('/js/clip.js');
        window.ruled = await createClip({ model: 'tiny-siglip-rules' });
    }""")
    yield page
    context.close()
    server.stop()


def _corpus() -> dict[str, bytes]:
    corpus = dict(image_corpus.generate_image_corpus())
    missing = [f for f in FILES if f not in corpus]
    assert not missing, f"corpus has no {missing}: {sorted(corpus)}"
    return corpus


def test_page_pixels_and_embeddings_follow_the_manifest_rules(page, models, tiny_model_dir):
    _, manifest = models
    rules = image_rules(manifest)
    corpus = _corpus()
    session = onnxruntime.InferenceSession(str(tiny_model_dir / "image.onnx"), providers=["CPUExecutionProvider"])
    for name in FILES:
        got = page.evaluate(
            """async (b64) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const out = await window.ruled.embedImage(bytes, { details: true });
                return { pixels: Array.from(out.pixelValues.data), dims: out.pixelValues.dims,
                         embedding: Array.from(out.embedding), decoder: out.decoder };
            }""",
            base64.b64encode(corpus[name]).decode(),
        )
        want = preprocess_image(corpus[name], rules=rules)  # (1, 3, 224, 224)
        assert got["dims"] == [1, 3, 224, 224], name
        pixels = np.asarray(got["pixels"], dtype=np.float32).reshape(want.shape)
        assert np.max(np.abs(pixels - want)) <= 1e-6, name
        # The rules mattered: OpenAI's would have given other pixels.
        assert np.max(np.abs(preprocess_image(corpus[name]) - want)) > 0.1, name
        if name.endswith(".jpg"):
            assert got["decoder"] == "browser", name  # the browser's decoder path took the rules too
        native = session.run(None, {"input": want})[0][0]  # (512,)
        ours = np.asarray(got["embedding"], dtype=np.float32)
        cosine = float(ours @ native / np.linalg.norm(ours) / np.linalg.norm(native))
        assert cosine >= 0.99999, (name, cosine)


def test_label_probabilities_use_the_manifests_sigmoid(page):
    got = page.evaluate("""async () => {
        const image = Float32Array.from({ length: 512 }, (_, i) => Math.sin(i));
        const texts = [Float32Array.from({ length: 512 }, (_, i) => Math.sin(i) + 0.5 * Math.cos(3 * i)),
                       Float32Array.from({ length: 512 }, (_, i) => Math.cos(i))];
        const ruledOut = window.ruled.similarity(image, texts);
        const { createClip } = await import('/js/clip.js');
        const clip = await createClip({ model: 'tiny-reference', encoders: ['text'] });
        const plain = clip.similarity(image, texts);
        return { cosine: ruledOut.cosine, ruled: ruledOut.probs, plain: plain.probs };
    }""")
    cos = np.asarray(got["cosine"])
    sigmoid = 1 / (1 + np.exp(-(10.0 * cos - 2.5)))
    np.testing.assert_allclose(got["ruled"], sigmoid, rtol=1e-12)
    softmax = np.exp(100 * cos - np.max(100 * cos))
    np.testing.assert_allclose(got["plain"], softmax / softmax.sum(), rtol=1e-9)
    assert abs(sum(got["ruled"]) - 1) > 1e-3  # sigmoid probabilities are each label's own


def test_a_manifest_with_an_unknown_rule_is_refused_by_name_in_the_page(page):
    err = page.evaluate("""async () => {
        const { createClip } = await import('/js/clip.js');
        try { await createClip({ model: 'tiny-lanczos' }); return null; }
        catch (e) { return { code: e.code, message: e.message }; }
    }""")
    assert err["code"] == "bad_manifest"
    assert err["message"].startswith('model "tiny-lanczos" can\'t be used: /models/bad/manifest.json: '
                                      "preprocess.interpolation: 'lanczos' is not one of bicubic, bilinear"), err
    # The page keeps working with the models that are fine.
    assert page.evaluate("window.ruled.embedText('a cat').then((e) => e.length)") == 512
