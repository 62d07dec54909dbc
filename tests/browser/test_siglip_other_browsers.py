"""SigLIP in Firefox ESR and WebKitGTK: the same numbers as in Chromium (test_siglip_family.py).

The tiny random-weight SiglipModel served alone; each browser boots the text page on it once and
must give transformers' ids (SentencePiece in Pyodide), torch's text and image embeddings on every
decoder path (cosine >= 0.99999; pixels within 1e-6 of SiglipImageProcessorPil's) and the
model's sigmoid probabilities.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

from drivers import DRIVERS, boot
from test_siglip_family import FILES, TEXTS, _corpus, cosines


@pytest.fixture(scope="module", params=sorted(DRIVERS))
def other(request, siglip_server):
    driver = boot(request.param, siglip_server.url + "text.html?model=tiny-siglip")
    try:
        yield driver
    finally:
        driver.close()


def test_ids_and_text_embeddings_equal_transformers(other, torch_siglip):
    got = other.evaluate("""async (texts) => {
        const out = await clip.embedText(texts, { details: true });
        return { ids: Array.from(out.inputIds.data), embeds: out.embeddings.map((e) => Array.from(e)) };
    }""", TEXTS)
    ids = np.asarray(got["ids"]).reshape(len(TEXTS), 64)
    want_ids = torch_siglip.input_ids(TEXTS)
    assert [t for t, a, b in zip(TEXTS, ids, want_ids) if not np.array_equal(a, b)] == [], other.name
    ours = np.asarray(got["embeds"], dtype=np.float32)
    assert cosines(ours, torch_siglip.text_embeds(TEXTS)).min() >= 0.99999, other.name


def test_images_equal_transformers_on_every_decoder_path(other, torch_siglip):
    corpus = _corpus()
    got = other.evaluate("""async (files) => {
        const out = {};
        for (const [name, b64] of files) {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const r = await clip.embedImage(bytes, { details: true });
            out[name] = { pixels: Array.from(r.pixelValues.data), embedding: Array.from(r.embedding), decoder: r.decoder };
        }
        return out;
    }""", [[name, base64.b64encode(corpus[name]).decode()] for name in FILES])
    for name in FILES:
        want_pixels = torch_siglip.pixel_values([corpus[name]])  # (1, 3, 224, 224)
        pixels = np.asarray(got[name]["pixels"], dtype=np.float32).reshape(want_pixels.shape)
        assert np.abs(pixels - want_pixels).max() <= 1e-6, (other.name, name, got[name]["decoder"])
        embedding = np.asarray([got[name]["embedding"]], dtype=np.float32)
        assert cosines(embedding, torch_siglip.image_embeds([corpus[name]]))[0] >= 0.99999, (other.name, name)


def test_label_probabilities_are_the_models_sigmoid(other, torch_siglip):
    data = _corpus()["rgb_photo_420x560_portrait.jpg"]
    labels = ["a photo of a cat", "a photo of a dog", "a city at night"]
    probs = other.evaluate("""async ([b64, labels]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        return clip.similarity(await clip.embedImage(bytes), await clip.embedText(labels)).probs;
    }""", [base64.b64encode(data).decode(), labels])
    np.testing.assert_allclose(probs, torch_siglip.probs([data], labels)[0], rtol=1e-4, atol=1e-6)
