"""The tiny SigLIP model: cached build, manifest, ONNX (native onnxruntime) == transformers' oracle
on real tokenizer and image-processor inputs, embeddings apart enough for those checks to fail, and
the steps transformers' SiglipTokenizer applies (the browser tokenizer must reproduce them).

Nothing skips: a missing library fails the import.
"""

from __future__ import annotations

import json
import re
import string
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import sentencepiece

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.insert(0, str(_HERE.parent / "pyapp"))  # image_corpus

import build_siglip  # noqa: E402
from build_models import sha256_file, tree_digest  # noqa: E402
from image_corpus import generate_image_corpus  # noqa: E402
from pyapp import pipeline  # noqa: E402
from siglip_reference import TorchSiglip, ensure_siglip_model  # noqa: E402

COS_MIN = 0.99999
APART_MAX = 0.99  # distinct inputs embed below this cosine

TEXTS = [
    "a photo of a cat", "a photo of a dog", "A PHOTO OF A CAT!", "red car", "", "   ",
    "the city street at night, rainy and dark", "a small bird sitting on a house near the river",
    "people playing and running in the sunny park", "a blurry close-up picture of a green frog",
    "café crème brûlée", "une photo d'un chat", "ein Foto einer Katze über der Straße",
    "una foto de un perro", "фото кошка", "φωτογραφία γάτα", "猫の写真", "一只猫的照片", "고양이 사진",
    "قطة", "🐱 🐶 🚗", "ＡＢＣ１２３！", "photo #42: 100% (cat) & dog / bird?", "hello...world", "12345 67890",
    "a " * 40,  # 40 tokens
    "the quick brown fox jumps over the lazy dog " * 6,  # truncated at 63 tokens + eos
    "x", "truck airplane ship horse frog deer", "Ünïcödé naïve façade",
]
# Whitespace and normalisation corners, for the tokenizer's steps (not embedded).
TOKENIZER_EXTRAS = [
    " leading space", "trailing space ", "a\tb\nc\u3000d", "▁photo", " ▁ a ▁", "l'été", "¿qué?", "…ellipsis…",
    "“quotes”", "a_b-c", "ﬁne", "e\u0301", "ΣΊΣΥΦΟΣ", "İstanbul", "<pad> photo", "[brackets] {braces}",
]
IMAGES = [
    "rgb_photo_1024x768.jpg", "rgb_photo_420x560_portrait.jpg", "gray_jpeg_L_350x260.jpg",
    "rgba_varying_alpha_300x200.png", "p_transparency_250x180.png", "cmyk_300x200.jpg",
    "checkerboard_500x375.png", "size_2000x40.png",
]


@pytest.fixture(scope="module")
def folder() -> Path:
    return ensure_siglip_model()


@pytest.fixture(scope="module")
def manifest(folder) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture(scope="module")
def sig(folder) -> TorchSiglip:
    return TorchSiglip(folder)


@pytest.fixture(scope="module")
def images() -> list[bytes]:
    corpus = dict(generate_image_corpus())
    return [corpus[name] for name in IMAGES]


def _run(folder: Path, part: str, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(folder / f"{part}.onnx"), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x})
    return out


def _unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)  # (n, d)


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """Cosine per row; the raw scale relatively (embedding norms reach ~100, float32 noise scales with it)."""
    assert got.shape == want.shape and got.dtype == np.float32, (got.shape, got.dtype)
    cos = (_unit(got) * _unit(want)).sum(-1)
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert cos.min() >= COS_MIN and rel <= 1e-4, \
        f"min cosine {cos.min()}, max abs diff {np.abs(got - want).max()}, max rel diff {rel}"


def _max_cosine_apart(emb: np.ndarray, inputs: np.ndarray) -> tuple[float, int, int]:
    """Highest cosine between rows whose inputs differ, and that pair."""
    u = _unit(emb)
    cos = u @ u.T  # (n, n)
    flat = inputs.reshape(len(inputs), -1)
    same = (flat[:, None, :] == flat[None, :, :]).all(-1)  # (n, n): identical inputs
    cos[same] = -2.0
    i, j = np.unravel_index(np.argmax(cos), cos.shape)
    return float(cos[i, j]), int(i), int(j)


# --- build and manifest


def test_build_is_cached(folder):
    stamp = folder / build_siglip.STAMP_NAME
    before = stamp.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = ensure_siglip_model()
    dt = time.perf_counter() - t0
    assert again == folder and stamp.stat().st_mtime_ns == before, "a current build was rebuilt"
    assert dt < 1.0, f"a cache hit took {dt:.2f} s"
    assert folder.parent == build_siglip.DEFAULT_OUT and "reference" not in folder.parts[-3:]


def test_build_is_deterministic(folder, tmp_path):
    """A fresh build has the cached files' bytes (the cache was built by the same code and libraries)."""
    build_siglip.build_into(tmp_path)
    cached = tree_digest(folder)
    cached.pop(build_siglip.STAMP_NAME)
    assert tree_digest(tmp_path) == cached


def test_manifest_matches_files(folder, manifest, sig):
    assert list(manifest) == ["id", "name", "variant", "image", "text", "context_length", "image_size", "mean",
                              "std", "preprocess", "tokenizer", "scoring", "embed_dim"]
    assert (manifest["id"], manifest["variant"], manifest["embed_dim"]) == ("tiny-siglip", "fp32", 64)
    assert manifest["image"] == {"url": "image.onnx", "input": "pixel_values", "output": "pooler_output",
                                 "input_dtype": "float32", "sha256": sha256_file(folder / "image.onnx"),
                                 "bytes": (folder / "image.onnx").stat().st_size}
    assert manifest["text"] == {"url": "text.onnx", "input": "input_ids", "output": "pooler_output",
                                "input_dtype": "int64", "dynamic_sequence": False,
                                "sha256": sha256_file(folder / "text.onnx"),
                                "bytes": (folder / "text.onnx").stat().st_size}
    tok = manifest["tokenizer"]
    assert tok == {"kind": "sentencepiece", "url": "spiece.model", "sha256": sha256_file(folder / "spiece.model"),
                   "bytes": (folder / "spiece.model").stat().st_size, "lowercase": True,
                   "strip_punctuation": True, "eos_id": 1, "pad_id": 1}
    # ... and says what transformers does with these files.
    config = sig.model.config
    assert (tok["eos_id"], tok["pad_id"]) == (sig.tokenizer.eos_token_id, sig.tokenizer.pad_token_id)
    assert tok["lowercase"] == sig.tokenizer.do_lower_case
    assert manifest["context_length"] == config.text_config.max_position_embeddings == sig.tokenizer.model_max_length
    assert config.text_config.vocab_size == sentencepiece.SentencePieceProcessor(
        model_file=str(folder / "spiece.model")).vocab_size()
    assert manifest["image_size"] == config.vision_config.image_size == sig.processor.size["height"] \
        == sig.processor.size["width"]
    assert manifest["mean"] == list(sig.processor.image_mean) and manifest["std"] == list(sig.processor.image_std)
    assert manifest["embed_dim"] == config.text_config.projection_size == config.vision_config.hidden_size


def test_manifest_passes_pipeline_rules(manifest, sig):
    rules = pipeline.image_rules(manifest)
    assert (rules.size, rules.resize, rules.resize_size, rules.center_crop) == (224, "squash", 224, False)
    assert (rules.interpolation, rules.convert_rgb, rules.crop_rounding) == ("bicubic", "first_over_white", "floor")
    assert rules.mean == rules.std == (0.5, 0.5, 0.5)
    scoring = pipeline.scoring(manifest)
    assert scoring.kind == "sigmoid"
    assert scoring.logit_scale == pytest.approx(sig.model.logit_scale.exp().item(), rel=1e-6)
    assert scoring.logit_scale == pytest.approx(10.0, rel=1e-6) and scoring.logit_bias == -2.5
    assert scoring.logit_bias == sig.model.logit_bias.item()


def test_onnx_graphs(folder):
    for part, name, elem, dims in [("image", "pixel_values", onnx.TensorProto.FLOAT, [3, 224, 224]),
                                   ("text", "input_ids", onnx.TensorProto.INT64, [64])]:
        build_siglip.check_graph(folder / f"{part}.onnx", name, elem, dims)  # raises on a mismatch
        m = onnx.load(str(folder / f"{part}.onnx"))
        assert m.ir_version <= 10 and max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) <= 17


# --- ONNX == torch


def test_text_onnx_equals_torch(folder, sig):
    ids = sig.input_ids(TEXTS)  # (30, 64) int64, SiglipTokenizer
    want = sig.text_embeds_from_ids(ids)
    _assert_same(_run(folder, "text", ids), want)
    _assert_same(_run(folder, "text", ids[3:4]), want[3:4])  # batch 1: the batch axis is dynamic
    # The tokenizer path the oracle offers gives the same.
    np.testing.assert_array_equal(sig.text_embeds(TEXTS), want)


def test_image_onnx_equals_torch(folder, sig, images):
    pixels = sig.pixel_values(images)  # (8, 3, 224, 224), SiglipImageProcessorPil
    assert pixels.shape == (len(IMAGES), 3, 224, 224) and pixels.dtype == np.float32
    assert -1.0 <= pixels.min() and pixels.max() <= 1.0
    want = sig.image_embeds_from_pixels(pixels)
    _assert_same(_run(folder, "image", pixels), want)
    _assert_same(_run(folder, "image", pixels[2:3]), want[2:3])


def test_sigmoid_scoring_from_onnx_embeddings(folder, manifest, sig, images):
    """The manifest's scoring applied to the ONNX embeddings gives the model's own forward."""
    texts = TEXTS[:6]
    img = _unit(_run(folder, "image", sig.pixel_values(images)))
    txt = _unit(_run(folder, "text", sig.input_ids(texts)))
    s = manifest["scoring"]
    logits = s["logit_scale"] * img @ txt.T + s["logit_bias"]  # (8, 6)
    want = sig.logits_per_image(images, texts)
    np.testing.assert_allclose(logits, want, atol=1e-4)
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), sig.probs(images, texts), atol=1e-5)
    # Random towers: image-text cosines within about +-0.2, so logits around the bias, +-2.
    assert np.ptp(want) > 1.0, f"logits span only {np.ptp(want)}: scoring would not be tested"


# --- the equivalence checks can fail


def test_distinct_inputs_embed_apart(sig, images):
    ids = sig.input_ids(TEXTS)
    cos, i, j = _max_cosine_apart(sig.text_embeds_from_ids(ids), ids)
    assert cos < APART_MAX, f"texts {TEXTS[i]!r} and {TEXTS[j]!r} embed alike (cosine {cos})"
    pixels = sig.pixel_values(images)
    cos, i, j = _max_cosine_apart(sig.image_embeds_from_pixels(pixels), pixels)
    assert cos < APART_MAX, f"images {IMAGES[i]} and {IMAGES[j]} embed alike (cosine {cos})"


def test_one_token_moves_the_embedding(sig):
    """A wrong token anywhere in the text (or pad region) must fail a cosine >= 0.99999 check."""
    ids = sig.input_ids(TEXTS)
    base = sig.text_embeds_from_ids(ids)
    rng = np.random.default_rng(0)
    vocab = sig.model.config.text_config.vocab_size
    for col in (0, 5, 30, 62):
        edited = ids.copy()  # another ordinary piece (id >= 3) in one column of every row
        edited[:, col] = 3 + (ids[:, col] - 3 + rng.integers(1, vocab - 3, size=len(ids))) % (vocab - 3)
        assert (edited[:, col] != ids[:, col]).all()
        cos = (_unit(base) * _unit(sig.text_embeds_from_ids(edited))).sum(-1)
        # 5x the equivalence tolerance (1e-5); measured: >= 1.3e-4, median 2e-2..9e-2.
        assert cos.max() < 1 - 5e-5, f"column {col}: a changed token moved a text only to cosine {cos.max()}"


def test_small_pixel_change_moves_the_embedding(sig, images):
    """Off-by-a-few-levels preprocessing must fail the equivalence check."""
    pixels = sig.pixel_values(images)
    noisy = pixels + np.random.default_rng(0).normal(0, 2 / 255, pixels.shape).astype(np.float32)
    cos = (_unit(sig.image_embeds_from_pixels(pixels)) * _unit(sig.image_embeds_from_pixels(noisy))).sum(-1)
    assert cos.max() < 1 - 1e-4, f"noise of sd 2/255 left an image at cosine {cos.max()}"  # measured >= 1.7e-3


# --- what transformers' SiglipTokenizer does (transformers 5.25), for the browser tokenizer


def canonical_ids(sp, text: str, context_length: int = 64, eos: int = 1, pad: int = 1) -> list[int]:
    """SiglipTokenizer's steps, written out: lowercase (str.lower), delete ASCII punctuation
    (string.punctuation, before SentencePiece's NFKC: fullwidth '！' and '…' survive as '!' and '...'),
    collapse whitespace runs to one space, strip; SentencePiece encode (its dummy prefix and
    normalizer); keep 63 ids, add eos; pad with eos to 64. No bos, no attention to the mask."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    text = re.sub(r"\s+", " ", text).strip()
    ids = sp.encode(text)[:context_length - 1] + [eos]
    return ids + [pad] * (context_length - len(ids))


def test_tokenizer_steps(folder, sig):
    sp = sentencepiece.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    texts = TEXTS + TOKENIZER_EXTRAS
    got = sig.input_ids(texts).tolist()
    for text, ids in zip(texts, got):
        assert ids == canonical_ids(sp, text), text
    assert got[TEXTS.index("")] == [1] * 64  # empty text: eos then eos-padding
    assert got[TEXTS.index("a photo of a cat")] == got[TEXTS.index("A PHOTO OF A CAT!")]
    assert sp.piece_to_id("!") in got[TEXTS.index("ＡＢＣ１２３！")]  # fullwidth: NFKC after the strip


def test_tokenizer_special_token_strings(folder, sig):
    """The exception: special tokens' text ('</s>', '<unk>') in the input is matched before
    punctuation is deleted, becomes that id, and swallows the spaces around it (the next word
    loses its '▁')."""
    sp = sentencepiece.SentencePieceProcessor(model_file=str(folder / "spiece.model"))
    for text, special in [("a cat </s> dog", "</s>"), ("<unk> dog", "<unk>")]:
        ids = sig.input_ids([text])[0].tolist()
        assert ids != canonical_ids(sp, text), text
        pieces = sig.tokenizer.convert_ids_to_tokens(ids)
        k = pieces.index(special)
        assert pieces[k + 1] != "</s>" and not pieces[k + 1].startswith("▁"), (text, pieces[:8])
    assert sig.tokenizer.convert_ids_to_tokens(sig.input_ids(["a cat </s> dog"])[0, :2].tolist()) == ["▁a", "▁cat"]


def test_attention_mask_changes_the_embedding(sig):
    """SiglipTokenizer returns an attention_mask; `get_text_features(**inputs)` with it is not
    what SigLIP computes (trained without one) nor what the ONNX graph takes (ids only)."""
    enc = sig.tokenize(["a photo of a cat", "red car"])
    assert set(enc) == {"input_ids", "attention_mask"}
    with_mask = sig.text_embeds_from_ids(enc["input_ids"], enc["attention_mask"])
    without = sig.text_embeds_from_ids(enc["input_ids"])
    cos = (_unit(with_mask) * _unit(without)).sum(-1)
    assert cos.max() < 0.99, cos
