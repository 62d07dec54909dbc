"""SigLIP end to end in Chromium (#16 item 4): a tiny random-weight SiglipModel (transformers' own
architecture, tests/reference/build_siglip.py) served with its manifest, spiece.model and ONNX files.

Every number is compared with transformers + torch on the same weights, as a SigLIP user computes it:
- ids: the page's SentencePiece (pyapp in Pyodide) vs SiglipTokenizer(padding="max_length", 64), exact;
- text embeddings vs SiglipModel.get_text_features, images (Pillow in Pyodide and the browser's own
  JPEG decoder) vs SiglipImageProcessorPil + get_image_features: cosine >= 0.99999;
- label probabilities vs sigmoid(logits_per_image) of the model's forward;
- the text page and the search page run the model.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import PW, PageSession

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS / "pyapp"))
import image_corpus  # noqa: E402

HARD = json.loads((TESTS / "pyapp" / "golden" / "spiece_hard_strings.json").read_text(encoding="utf-8"))
TEXTS = ["a photo of a cat", "A DOG, running!", "it's </s> here", "<unk> and <pad>", "▁lead", "  spaces   ",
         "東京タワー", "🙂", "x " * 80, *HARD[::9]]
FILES = ("rgb_photo_420x560_portrait.jpg", "rgba_varying_alpha_300x200.png", "p_transparency_250x180.png",
         "webp_lossy_rgba_260x190.webp", "size_2000x40.png")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def page(browser, siglip_server):
    context = browser.new_context(viewport=PW.VIEWPORT)
    page = PageSession(context, siglip_server).open("text.html?model=tiny-siglip")
    yield page
    context.close()


def _corpus() -> dict[str, bytes]:
    corpus = dict(image_corpus.generate_image_corpus())
    return {name: corpus[name] for name in FILES}


def test_ids_and_text_embeddings_equal_transformers(page, torch_siglip):
    got = page.evaluate("""async (texts) => {
        const out = await clip.embedText(texts, { details: true });
        return { ids: Array.from(out.inputIds.data), dims: out.inputIds.dims, modelDims: out.modelInputDims,
                 embeds: out.embeddings.map((e) => Array.from(e)) };
    }""", TEXTS)
    assert got["dims"] == [len(TEXTS), 64] and got["modelDims"] == [len(TEXTS), 64]  # never cut short
    ids = np.asarray(got["ids"]).reshape(len(TEXTS), 64)
    want_ids = torch_siglip.input_ids(TEXTS)
    wrong = [t for t, a, b in zip(TEXTS, ids, want_ids) if not np.array_equal(a, b)]
    assert not wrong, wrong
    ours = np.asarray(got["embeds"], dtype=np.float32)  # (n, 64)
    want = torch_siglip.text_embeds(TEXTS)  # (n, 64)
    assert cosines(ours, want).min() >= 0.99999
    # Distinct texts embed apart: the comparison above can fail.
    unit = want / np.linalg.norm(want, axis=1, keepdims=True)
    assert (unit[:5] @ unit[:5].T)[np.triu_indices(5, 1)].max() < 0.99


def test_image_pixels_and_embeddings_equal_transformers(page, torch_siglip):
    corpus = _corpus()
    for name, data in corpus.items():
        got = page.evaluate("""async (b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const out = await clip.embedImage(bytes, { details: true });
            return { pixels: Array.from(out.pixelValues.data), embedding: Array.from(out.embedding), decoder: out.decoder };
        }""", base64.b64encode(data).decode())
        want_pixels = torch_siglip.pixel_values([data])  # (1, 3, 224, 224)
        pixels = np.asarray(got["pixels"], dtype=np.float32).reshape(want_pixels.shape)
        assert np.abs(pixels - want_pixels).max() <= 1e-6, name
        if name.endswith(".jpg"):
            assert got["decoder"] == "browser", name
        ours = np.asarray([got["embedding"]], dtype=np.float32)
        assert cosines(ours, torch_siglip.image_embeds([data]))[0] >= 0.99999, name


def test_label_probabilities_are_the_models_sigmoid(page, torch_siglip):
    data = _corpus()["rgb_photo_420x560_portrait.jpg"]
    labels = ["a photo of a cat", "a photo of a dog", "a city at night"]
    probs = page.evaluate("""async ([b64, labels]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const image = await clip.embedImage(bytes);
        const texts = await clip.embedText(labels);
        return clip.similarity(image, texts).probs;
    }""", [base64.b64encode(data).decode(), labels])
    want = torch_siglip.probs([data], labels)[0]  # (3,)
    np.testing.assert_allclose(probs, want, rtol=1e-4, atol=1e-6)


def test_text_page_shows_the_models_own_tokens(page):
    page.fill("#texts", "A Photo of a CAT!")
    before = int(page.evaluate("document.body.dataset.embedded || 0"))
    page.click("#embed")
    page.wait_for_function(f"Number(document.body.dataset.embedded || 0) > {before}")
    chips = page.eval_on_selector_all("#results .text-result .token", "els => els.map((e) => e.textContent)")
    assert chips[-2].startswith("</s>"), chips  # end-of-text, then the padding chip
    assert chips[-1].startswith("1 × ") and chips[-1].endswith("(padding)"), chips
    assert not any("startoftext" in c for c in chips)


def test_search_page_ranks_and_sorts_by_the_models_scores(browser, siglip_server, torch_siglip):
    """The search page indexes the files with the model, ranks them by a text query in torch's order,
    and its zero-shot sort gives each image torch's best label and that label's own sigmoid."""
    corpus = _corpus()
    context = browser.new_context(viewport=PW.VIEWPORT)
    try:
        page = PageSession(context, siglip_server).open("search.html?model=tiny-siglip")
        stats = page.evaluate("""async (payload) => {
            const files = Object.entries(payload).map(([name, b64]) => {
                const f = new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, {lastModified: 1700000000000});
                Object.defineProperty(f, 'path', {value: 'lib/' + name});
                return f;
            });
            return search.indexFiles(files);
        }""", {name: base64.b64encode(data).decode() for name, data in corpus.items()})
        assert stats["indexed"] == len(corpus), stats
        images = torch_siglip.image_embeds(list(corpus.values()))  # (5, 64)
        unit = images / np.linalg.norm(images, axis=1, keepdims=True)
        query = "a photo of a cat"
        text = torch_siglip.text_embeds([query])[0]
        order = np.argsort(-(unit @ (text / np.linalg.norm(text))), kind="stable")
        ranked = page.evaluate("(q) => search.query({text: q})", query)
        assert [r["path"] for r in ranked] == ["lib/" + list(corpus)[k] for k in order]
        labels = ["a photo of a cat", "a striped pattern", "a city at night"]
        sorted_ = {r["path"]: r for r in page.evaluate("(l) => search.zeroShot(l)", labels)}
        probs = torch_siglip.probs(list(corpus.values()), labels)  # (5, 3)
        for k, name in enumerate(corpus):
            got = sorted_["lib/" + name]
            assert got["label"] == labels[int(np.argmax(probs[k]))], name
            assert abs(got["prob"] - float(probs[k].max())) <= 2e-3, (name, got, probs[k])  # int8 index scores
    finally:
        context.close()
