"""The image and text demo pages in real Chromium, on the tiny reference CLIP: embeddings equal to
transformers' CLIP in torch on the same weights, through the UI and through window.clip, plus
the UI flows and error states a person meets."""

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

# >= 10 images of different modes and sizes (and every decoder path: browser JPEG and Pillow).
IMAGES = [
    "rgb_photo_1024x768.jpg",
    "rgb_photo_420x560_portrait.jpg",
    "exif_orientation6_320x240.jpg",
    "gray_jpeg_L_350x260.jpg",
    "tiny_1x1.png",
    "size_225x301.png",
    "size_2000x40.png",
    "rgba_varying_alpha_300x200.png",
    "p_transparency_250x180.png",
    "bilevel_1_300x210.png",
    "animated_3frames_200x150.gif",
    "webp_lossless_260x190.webp",
    "cmyk_300x200.jpg",
    "i16_png_300x200.png",
    "i16_png_board_300x200.png",  # 16-bit resized as Pillow 13 does it (clipped between passes)
    "i16b_tiff_full_range_300x200.tif",
    "f32_tiff_280x190.tif",
]

TEXTS = [
    "a photo of a cat", "a photo of a dog", "a portrait of an astronaut with the American flag",
    "A diagram", "", "   ", "café crème brûlée", "東京の夜景", "Ⅻ ½ ² ٣ ३", "👩‍👩‍👧 family",
    "&amp; &lt;br&gt; html", "don’t stop", "<|endoftext|> after", "x" * 400,
    "a " * 100, "ΑΒΓ greek", "emoji 🐈‍⬛ cat", "numbers 1234567890", "mixed CASE Text", "tab\tand\nnewline",
    "URL https://example.com/a?b=c", "قطة", "ข้อความภาษาไทย", "한국어 텍스트",
]


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def assert_matches_torch(browser: np.ndarray, torch_out: np.ndarray, what: str):
    """cosine >= 0.99999 and max abs diff <= 1e-4. The tiny random model's embeddings have norm
    ~110 (entries up to ~15), so float32 rounding alone is ~1e-5 absolute there: measured worst
    is reported by the tests that call this."""
    c = cos(browser, torch_out)
    diff = float(np.abs(browser - torch_out).max())
    assert c >= 0.99999, f"{what}: cosine {c}"
    assert diff <= 1e-4, f"{what}: max abs diff {diff}"
    return c, diff


@pytest.fixture(scope="module")
def corpus():
    names = dict(generate_image_corpus())
    missing = [n for n in IMAGES if n not in names]
    assert not missing, f"corpus lacks {missing}"
    return {n: names[n] for n in IMAGES}


@pytest.fixture(scope="module")
def torch_clip(tiny_model_dir):
    from torch_reference import TorchClip

    return TorchClip(tiny_model_dir / "checkpoint")


@pytest.fixture(scope="module")
def image_page(page_session):
    page_session.open("/image.html?model=tiny-reference")
    return page_session


def upload(page, name, data):
    before = int(page.evaluate("document.body.dataset.embedded || '0'"))
    errors = int(page.evaluate("document.body.dataset.imageError || '0'"))
    page.set_input_files("#file", files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
    page.wait_for_function(
        f"Number(document.body.dataset.embedded || 0) > {before} || Number(document.body.dataset.imageError || 0) > {errors}"
    )


def test_image_page_embeddings_equal_torch_through_ui(image_page, corpus, torch_clip):
    page = image_page.page
    worst, worst_diff = 1.0, 0.0
    for name, data in corpus.items():
        upload(page, name, data)
        assert page.inner_text("#image-error") == "", name
        browser = np.asarray(page.evaluate("Array.from(window.lastImageEmbedding)"), dtype=np.float32)  # (512,)
        reference = torch_clip.image_embeds(pyapp.preprocess_image(data))[0]  # (512,)
        c, diff = assert_matches_torch(browser, reference, name)
        worst, worst_diff = min(worst, c), max(worst_diff, diff)
    print(f"image page vs torch over {len(corpus)} images: min cosine {worst:.8f}, max abs diff {worst_diff:.2e}")
    image_page.screenshot("image-page.png")


def test_window_clip_embed_image_equals_torch(image_page, corpus, torch_clip):
    for name in ("rgb_photo_1024x768.jpg", "p_transparency_250x180.png", "cmyk_300x200.jpg"):
        data = corpus[name]
        browser = np.asarray(
            image_page.page.evaluate(
                "async (b64) => Array.from(await clip.embedImage(Uint8Array.from(atob(b64), c => c.charCodeAt(0))))",
                base64.b64encode(data).decode(),
            ),
            dtype=np.float32,
        )
        assert_matches_torch(browser, torch_clip.image_embeds(pyapp.preprocess_image(data))[0], name)


def test_crop_preview_is_the_tensor(image_page, corpus):
    page = image_page.page
    upload(page, "portrait.jpg", corpus["rgb_photo_420x560_portrait.jpg"])
    pixels = page.evaluate(
        "Array.from(document.querySelector('#crop').getContext('2d').getImageData(0, 0, 224, 224).data)"
    )
    rgba = np.asarray(pixels, dtype=np.uint8).reshape(224, 224, 4)  # (224, 224, 4)
    expected = pyapp.tensor_to_rgb_uint8(pyapp.preprocess_image(corpus["rgb_photo_420x560_portrait.jpg"]))
    assert np.array_equal(rgba[:, :, :3], expected)


def test_zero_shot_labels(image_page, corpus, torch_clip):
    page = image_page.page
    data = corpus["rgb_photo_1024x768.jpg"]
    upload(page, "photo.jpg", data)
    labels = ["a photo of a cat", "a photo of a dog", "a diagram", "a colourful gradient"]
    page.fill("#labels", "\n".join(labels))
    page.wait_for_function(f"document.querySelectorAll('#probs li').length === {len(labels)} && window.lastProbs?.labels.length === {len(labels)}")
    got = page.evaluate("window.lastProbs")
    image = torch_clip.image_embeds(pyapp.preprocess_image(data))
    text = torch_clip.text_embeds(pyapp.tokenize(labels))
    expected = pyapp.zero_shot_probs(image, text)[0]
    assert np.allclose(got["probs"], expected, atol=1e-4)
    shown = page.eval_on_selector_all("#probs li", "els => els.map(e => e.dataset.label)")
    assert shown == [labels[i] for i in np.argsort(-expected, kind="stable")]


def test_image_dropped_while_loading_is_embedded_once_ready(browser, live_server, corpus, torch_clip):
    """A cold page (fresh context): the drop zone takes the image before the model is ready, says
    it waits, and embeds it when the model is there."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(live_server.url + "image.html?model=tiny-reference")
        page.wait_for_function("document.body.dataset.inputs === 'wired'")
        b64 = base64.b64encode(corpus["rgb_photo_1024x768.jpg"]).decode()
        at_drop = page.evaluate(
            """(b64) => {
                const dt = new DataTransfer();
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                dt.items.add(new File([bytes], 'early.jpg', {type: 'image/jpeg'}));
                const state = document.body.dataset.state;
                document.querySelector('#drop-zone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
                return { state, waiting: document.body.dataset.waiting ?? null, timings: document.querySelector('#timings').textContent };
            }""",
            b64,
        )
        assert at_drop["state"] == "loading" and at_drop["waiting"] == "true", at_drop
        assert "waiting for the model" in at_drop["timings"]
        page.wait_for_function("Number(document.body.dataset.embedded || 0) >= 1", timeout=PW.BOOT_TIMEOUT_MS)
        got = np.asarray(page.evaluate("Array.from(window.lastImageEmbedding)"), dtype=np.float32)
        want = torch_clip.image_embeds(pyapp.preprocess_image(corpus["rgb_photo_1024x768.jpg"]))[0]
        assert_matches_torch(got, want, "early.jpg")
        assert "early.jpg" in page.inner_text("#timings")
    finally:
        context.close()


def test_drag_and_drop_and_paste(image_page, corpus):
    page = image_page.page
    data = corpus["size_225x301.png"]
    for event, target in (("drop", "#drop-zone"), ("paste", "document")):
        before = int(page.evaluate("document.body.dataset.embedded || '0'"))
        page.evaluate(
            """([b64, event, target]) => {
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
                const el = target === 'document' ? document : document.querySelector(target);
                const e = event === 'drop' ? new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})
                                           : new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true});
                el.dispatchEvent(e);
            }""",
            [base64.b64encode(data).decode(), event, target],
        )
        page.wait_for_function(f"Number(document.body.dataset.embedded || 0) > {before}")
        expected = pyapp.preprocess_image(data)
        assert page.inner_text("#image-error") == ""
        assert "dropped.png" in page.inner_text("#timings") or event == "paste"
        assert expected.shape == (1, 3, 224, 224)


def test_bad_image_file_shows_error_and_page_keeps_working(image_page, corpus):
    page = image_page.page
    for name, data, words in (
        ("notes.txt", b"just some text\n", "text, not an image"),
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        ("broken.png", corpus["size_225x301.png"][:200], "damaged or truncated"),
        ("empty.jpg", b"", "empty"),
    ):
        upload(page, name, data)
        assert words in page.inner_text("#image-error"), name
    upload(page, "ok.png", corpus["size_225x301.png"])
    assert page.inner_text("#image-error") == ""
    assert page.evaluate("document.body.dataset.state") == "ready"


def test_image_url_with_and_without_cors(image_page, corpus, image_host):
    page = image_page.page
    before = int(page.evaluate("document.body.dataset.embedded || '0'"))
    page.fill("#url", image_host + "cors/photo.png")
    page.click("#url-form button")
    page.wait_for_function(f"Number(document.body.dataset.embedded || 0) > {before}")
    assert "photo.png" in page.inner_text("#timings")
    errors = int(page.evaluate("document.body.dataset.imageError || '0'"))
    page.fill("#url", image_host + "nocors/photo.png")
    page.click("#url-form button")
    page.wait_for_function(f"Number(document.body.dataset.imageError || 0) > {errors}")
    assert "CORS" in page.inner_text("#image-error")
    assert page.evaluate("document.body.dataset.state") == "ready"


def test_downloads_are_the_embedding(image_page, corpus, tmp_path):
    page = image_page.page
    upload(page, "photo.jpg", corpus["rgb_photo_1024x768.jpg"])
    embedding = np.asarray(page.evaluate("Array.from(window.lastImageEmbedding)"), dtype=np.float32)
    with page.expect_download() as npy_info:
        page.click("#download-npy")
    npy_path = tmp_path / "image_embeds.npy"
    npy_info.value.save_as(npy_path)
    assert np.array_equal(np.load(npy_path), embedding[None])
    with page.expect_download() as json_info:
        page.click("#download-json")
    json_path = tmp_path / "image_embeds.json"
    json_info.value.save_as(json_path)
    assert np.allclose(json.loads(json_path.read_text())["image_embeds"], embedding, rtol=1e-6)


def test_text_page_embeddings_and_tokens_equal_reference(page_session, torch_clip):
    page = page_session.open("/text.html?model=tiny-reference")
    assert len(TEXTS) >= 20
    lines = [t.replace("\n", " ").replace("\t", " ") for t in TEXTS]
    kept = [t for t in lines if t.strip()]
    page.fill("#texts", "\n".join(lines))
    before = int(page.evaluate("document.body.dataset.embedded || '0'"))
    page.click("#embed")
    page.wait_for_function(f"Number(document.body.dataset.embedded || 0) > {before}")
    got = np.asarray(page.evaluate("window.lastTextEmbeddings.map(e => Array.from(e))"), dtype=np.float32)  # (n, 512)
    texts = [t.strip() for t in kept]
    input_ids = pyapp.tokenize(texts)  # (n, 77)
    shown_ids = page.eval_on_selector_all(".text-result", "els => els.map(e => JSON.parse(e.dataset.ids))")
    assert shown_ids == input_ids.tolist()
    reference = torch_clip.text_embeds(input_ids)  # (n, 512)
    checks = [assert_matches_torch(g, r, t) for g, r, t in zip(got, reference, texts)]
    print(f"text page vs torch over {len(texts)} texts: min cosine {min(c for c, _ in checks):.8f}, "
          f"max abs diff {max(d for _, d in checks):.2e}")
    # The similarity matrix is the cosine of the page's own embeddings.
    cells = page.eval_on_selector_all("#similarity td", "tds => tds.map(td => Number(td.dataset.cosine))")
    normed = pyapp.l2_normalize(reference)
    assert np.allclose(np.asarray(cells).reshape(len(texts), len(texts)), normed @ normed.T, atol=1e-4)
    page_session.screenshot("text-page.png")
    # window.clip gives the same, one text at a time.
    one = np.asarray(page.evaluate("async (t) => Array.from(await clip.embedText(t))", texts[2]), dtype=np.float32)
    assert_matches_torch(one, reference[2], texts[2])
    tokens = page.evaluate("async (t) => { const r = await clip.tokenize(t); return {ids: Array.from(r.ids), tokens: r.tokens}; }", texts[2])
    assert tokens["ids"] == input_ids[2].tolist() and tokens["tokens"] == pyapp.tokens(texts[2])


GOLDEN_TOKENS = Path(__file__).resolve().parent.parent / "pyapp" / "golden" / "tokens.json"


def test_text_runs_at_its_real_length_and_equals_torch_at_77(page_session, torch_clip):
    """The tiny model's text encoder takes a dynamic sequence: each batch runs only up to its last
    end-of-text token, and the embeddings still equal torch's at 77 positions, over the whole hard
    golden corpus (texts over 77 tokens and the literal <|endoftext|> included)."""
    page = page_session.page
    if "/text.html" not in page.url:
        page_session.open("/text.html?model=tiny-reference")
    golden = json.loads(GOLDEN_TOKENS.read_text())
    texts = [e["text"] for e in golden]
    assert any(e["ids"][-1] == 49407 for e in golden)  # texts over 77 tokens, truncated
    assert any("<|endoftext|>" in t for t in texts)
    reference = torch_clip.text_embeds(np.array([e["ids"] for e in golden], dtype=np.int32))  # (n, 77) -> (n, 512)
    run = """async (texts) => {
        const r = await clip.embedText(texts, { details: true });
        return { embeddings: r.embeddings.map((e) => Array.from(e)), ids: r.inputIds.dims, model: r.modelInputDims };
    }"""
    worst = 1.0
    for start in range(0, len(texts), 8):  # batches of 8, each cut to its own longest text
        batch = texts[start:start + 8]
        out = page.evaluate(run, batch)
        longest = max(e["ids"].index(49407) for e in golden[start:start + 8]) + 1
        assert out["ids"] == [len(batch), 77]  # what callers see stays OpenAI's 77 ids
        assert out["model"] == [len(batch), longest]
        for got, want, text in zip(np.asarray(out["embeddings"], dtype=np.float32), reference[start:start + 8], batch):
            worst = min(worst, assert_matches_torch(got, want, text)[0])
    short = page.evaluate(run, ["a photo of a cat"])
    assert short["model"] == [1, 7]
    print(f"dynamic-length text vs torch at 77 over {len(texts)} golden texts: min cosine {worst:.8f}")


def test_privacy_images_never_leave_the_page(page_session, live_server):
    # Runs after this module's uploads, drops, pastes and URL fetches: the server saw only GETs
    # without a body, and the browser talked to nobody but 127.0.0.1.
    requests = live_server.requests()
    assert requests
    assert all(r["method"] in ("GET", "HEAD") and r["body_bytes"] == 0 for r in requests), [
        r for r in requests if r["method"] not in ("GET", "HEAD") or r["body_bytes"]
    ]
    assert page_session.foreign_requests() == []
