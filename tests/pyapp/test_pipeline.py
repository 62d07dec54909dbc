"""Manifest pipeline rules (pyapp/pipeline.py) and the preprocessing each family's rules give.

Oracles: transformers' own image processors on their PIL backend (SiglipImageProcessorPil,
CLIPImageProcessorPil: the processors a transformers user gets with `backend="pil"`), and the genuine
torchvision transforms (tests/pyapp/reference_transform.py) in open_clip's order for MobileCLIP
(Resize(BILINEAR), CenterCrop, RGB, ToTensor, no Normalize). Both run under this environment's
Pillow (10.2, Pyodide's).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pyapp import pipeline
from pyapp.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from pyapp.pipeline import ImageRules, PipelineError, Scoring, image_rules, scoring
from pyapp.preprocess import preprocess_decoded_rgba, preprocess_image, preprocess_images, tensor_to_rgb_uint8

try:
    from . import image_corpus, reference_transform
except ImportError:  # run as a plain module
    import image_corpus
    import reference_transform

# Rules as a manifest states them, per family.
SIGLIP = {
    "image_size": 224, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
    "preprocess": {"resize": "squash", "interpolation": "bicubic", "convert_rgb": "first_over_white", "crop_rounding": "floor"},
}
HF_CLIP = {
    "image_size": 224, "mean": list(OPENAI_DATASET_MEAN), "std": list(OPENAI_DATASET_STD),
    "preprocess": {"resize": "shortest_side", "interpolation": "bicubic", "crop_rounding": "floor",
                   "convert_rgb": "first_over_white"},
}
HF_MOBILECLIP = {  # transformers' CLIP processor configured as transformers.js's MobileCLIP ports are
    "image_size": 256, "mean": None, "std": None,
    "preprocess": {"resize": "shortest_side", "interpolation": "bilinear", "crop_rounding": "floor",
                   "convert_rgb": "first_over_white"},
}
OPEN_CLIP_MOBILECLIP = {  # open_clip's MobileCLIP transform: torchvision order, bilinear, no Normalize
    "image_size": 256, "mean": None, "std": None, "preprocess": {"interpolation": "bilinear"},
}

# 16-bit and 32-bit greyscale files this Pillow (10.2) can't convert or resize the way transformers
# asks (it raises on I;16 -> RGBA/RGB paths or on the resize); checked below to fail on both sides.
_CORPUS = dict(image_corpus.generate_image_corpus())


def _open(name: str) -> Image.Image:
    return Image.open(io.BytesIO(_CORPUS[name]))


def _transformers_reference(processor, name: str) -> np.ndarray | Exception:
    try:
        out = processor(images=_open(name), return_tensors="np")["pixel_values"]
    except Exception as exc:  # noqa: BLE001 - compared with ours below
        return exc
    return np.asarray(out, dtype=np.float32)  # (1, 3, s, s)


def _ours(manifest: dict, name: str) -> np.ndarray | Exception:
    try:
        return preprocess_image(_CORPUS[name], rules=image_rules(manifest))
    except Exception as exc:  # noqa: BLE001
        return exc


@pytest.fixture(scope="module")
def processors():
    from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil

    return {
        "siglip": SiglipImageProcessorPil(),  # its defaults are google/siglip-base-patch16-224's
        "hf_clip": CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}),
        "hf_mobileclip": CLIPImageProcessorPil(
            size={"shortest_edge": 256}, crop_size={"height": 256, "width": 256},
            resample=Image.Resampling.BILINEAR, do_normalize=False,
        ),
    }


FAMILIES = {"siglip": SIGLIP, "hf_clip": HF_CLIP, "hf_mobileclip": HF_MOBILECLIP}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_rules_equal_transformers_processor_on_the_corpus(processors, family):
    """Every corpus file: the same tensor (max abs diff <= 1e-6), or both sides refuse it."""
    worst, compared, refused = 0.0, 0, []
    for name in _CORPUS:
        ref = _transformers_reference(processors[family], name)
        ours = _ours(FAMILIES[family], name)
        if isinstance(ref, Exception):
            # A file transformers can't take (a truncated file, a mode it can't convert): ours
            # refuses it too, with our typed error.
            assert isinstance(ours, Exception), f"{name}: transformers raised {ref!r}, we gave a tensor"
            refused.append(name)
            continue
        assert not isinstance(ours, Exception), f"{name}: we raised {ours!r}"
        assert ours.shape == ref.shape, name
        worst = max(worst, float(np.max(np.abs(ours - ref))))
        compared += 1
        assert worst <= 1e-6, f"{name}: max abs diff {worst}"
    assert compared >= 35, (compared, refused)


def test_open_clip_mobileclip_rules_equal_genuine_torchvision():
    T = reference_transform.load_torchvision_transforms()
    transform = T.Compose([
        T.Resize(256, interpolation=T.InterpolationMode.BILINEAR),
        T.CenterCrop(256),
        lambda image: image.convert("RGB"),
        T.ToTensor(),
    ])
    compared = 0
    for name in _CORPUS:
        if _open(name).mode.startswith("I;16") or name in image_corpus.PILLOW_10_2_DIFFERS:
            # 16-bit greyscale: Pillow 10.2 can't resize it, and the Pillow 13 oracle
            # (tests/pyapp/pillow_oracle.py) runs OpenAI's bicubic transform only.
            continue
        try:
            ref = transform(_open(name)).numpy()[None]  # (1, 3, 256, 256)
        except Exception:  # noqa: BLE001
            assert isinstance(_ours(OPEN_CLIP_MOBILECLIP, name), Exception), name
            continue
        ours = preprocess_image(_CORPUS[name], rules=image_rules(OPEN_CLIP_MOBILECLIP))
        np.testing.assert_array_equal(ours, ref, err_msg=name)
        compared += 1
    assert compared >= 30


def test_the_rules_actually_differ_where_families_differ():
    """The corpus exercises every rule: a rule that did nothing would let the parity tests pass for
    the wrong reason."""
    photo = next(n for n in _CORPUS if n.endswith(".jpg") and "exif" not in n)
    odd = _odd_excess_png()
    alpha = next(n for n in _CORPUS if "rgba" in n)
    base = image_rules(HF_CLIP)

    def tensor(data, **changes):
        fields = {f: getattr(base, f) for f in ("size", "resize", "resize_size", "interpolation", "center_crop",
                                               "crop_rounding", "convert_rgb", "mean", "std")}
        return preprocess_image(data, rules=ImageRules(**{**fields, **changes}))

    ref = tensor(_CORPUS[photo])
    assert not np.array_equal(ref, tensor(_CORPUS[photo], interpolation="bilinear"))
    assert not np.array_equal(ref, tensor(_CORPUS[photo], resize="squash", center_crop=False))
    assert not np.array_equal(tensor(odd), tensor(odd, crop_rounding="round_half_even"))
    assert not np.array_equal(tensor(_CORPUS[alpha]), tensor(_CORPUS[alpha], convert_rgb="after_crop"))
    no_norm = tensor(_CORPUS[photo], mean=None, std=None)
    assert no_norm.min() >= 0 and no_norm.max() <= 1


def test_no_rescale_rule_is_needed():
    """torchvision divides in float32; transformers multiplies by 1/255 in float64 and casts: the
    same float32 for every level, so no manifest needs to say which."""
    levels = np.arange(256)
    np.testing.assert_array_equal(
        levels.astype(np.float32) / np.float32(255), (levels.astype(np.float64) * (1 / 255)).astype(np.float32)
    )


def _odd_excess_png() -> bytes:
    # 224 x 227 after the resize: an excess of 3 rows, where floor (1) and round-half-even (2) differ.
    rs = np.random.RandomState(7)
    buf = io.BytesIO()
    Image.fromarray(rs.randint(0, 256, (227, 224, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_browser_decoded_jpeg_follows_the_rules_too():
    name = next(n for n in _CORPUS if n.endswith(".jpg") and "exif" not in n and "grey" not in n)
    im = _open(name).convert("RGB")
    rgba = im.convert("RGBA").tobytes()
    for manifest in (SIGLIP, HF_MOBILECLIP, OPEN_CLIP_MOBILECLIP):
        rules = image_rules(manifest)
        np.testing.assert_array_equal(
            preprocess_decoded_rgba(rgba, im.width, im.height, rules=rules),
            preprocess_image(_CORPUS[name], rules=rules),
        )


def test_batches_take_the_rules_size():
    rules = image_rules(HF_MOBILECLIP)
    names = [n for n in _CORPUS if n.endswith(".png")][:3]
    batch = preprocess_images([_CORPUS[n] for n in names], rules=rules)
    assert batch.shape == (3, 3, 256, 256)
    np.testing.assert_array_equal(batch[1], preprocess_image(_CORPUS[names[1]], rules=rules)[0])


def test_preview_without_normalisation_gives_the_levels_back():
    name = next(n for n in _CORPUS if n.endswith(".png") and "rgb" in n)
    rules = image_rules(OPEN_CLIP_MOBILECLIP)
    tensor = preprocess_image(_CORPUS[name], rules=rules)
    rgb = tensor_to_rgb_uint8(tensor, mean=None, std=None)
    np.testing.assert_array_equal(rgb.astype(np.float32).transpose(2, 0, 1) / np.float32(255), tensor[0])


# --------------------------------------------------------------------------------------------------
# Reading and refusing manifests
# --------------------------------------------------------------------------------------------------


def test_a_manifest_without_rules_is_openai_clip():
    old = {"image_size": 224, "mean": list(OPENAI_DATASET_MEAN), "std": list(OPENAI_DATASET_STD)}
    assert image_rules(old) == pipeline.OPENAI_IMAGE_RULES
    assert scoring(old) == Scoring("softmax", 100.0, 0.0)
    png = next(v for n, v in _CORPUS.items() if n.endswith(".png"))
    np.testing.assert_array_equal(preprocess_image(png, rules=image_rules(old)), preprocess_image(png))


def test_rules_round_trip_through_their_manifest_spelling():
    for manifest in (SIGLIP, HF_CLIP, HF_MOBILECLIP, OPEN_CLIP_MOBILECLIP):
        rules = image_rules(manifest)
        assert image_rules(rules.to_dict()) == rules
    sig = {"scoring": {"kind": "sigmoid", "logit_scale": 117.33, "logit_bias": -12.93}}
    assert scoring({"scoring": scoring(sig).to_dict()}) == scoring(sig)


@pytest.mark.parametrize(
    ("manifest", "field", "words"),
    [
        ({"preprocess": {"interpolation": "lanczos"}}, "preprocess.interpolation", "'lanczos' is not one of bicubic, bilinear"),
        ({"preprocess": {"resize": "longest_side"}}, "preprocess.resize", "not one of"),
        ({"preprocess": {"crop_rounding": "ceil"}}, "preprocess.crop_rounding", "not one of"),
        ({"preprocess": {"convert_rgb": "first"}}, "preprocess.convert_rgb", "not one of"),
        ({"preprocess": {"rescale": "float64_multiply"}}, "preprocess.rescale", "unknown rule"),
        ({"preprocess": {"antialias": False}}, "preprocess.antialias", "unknown rule"),
        ({"preprocess": "bicubic"}, "preprocess", "must be an object"),
        ({"preprocess": {"center_crop": "yes"}}, "preprocess.center_crop", "true or false"),
        ({"preprocess": {"center_crop": False}}, "preprocess.center_crop", "non-square"),
        ({"preprocess": {"resize_size": 200}}, "preprocess.resize_size", "smaller than image_size 224"),
        ({"preprocess": {"resize": "squash", "resize_size": 256}}, "preprocess.resize_size", "without a centre crop"),
        ({"image_size": 0}, "image_size", "positive integer"),
        ({"image_size": 224.0}, "image_size", "positive integer"),
        ({"mean": None}, "mean", "both null"),
        ({"mean": [0.5, 0.5]}, "mean", "3 finite numbers"),
        ({"std": [0.5, "0.5", 0.5]}, "std", "3 numbers"),
        ({"std": [0.5, 0, 0.5]}, "std", "must not contain 0"),
        ({"mean": "0.5"}, "mean", "3 numbers (R, G, B) or null"),
        ({"scoring": {"kind": "cosine"}}, "scoring.kind", "'cosine' is not one of softmax, sigmoid"),
        ({"scoring": {"kind": "softmax", "logit_bias": -10}}, "scoring.logit_bias", "only a sigmoid"),
        ({"scoring": {"kind": "sigmoid", "logit_scale": float("nan")}}, "scoring.logit_scale", "finite number"),
        ({"scoring": {"kind": "sigmoid", "logit_scale": -1}}, "scoring.logit_scale", "positive"),
        ({"scoring": {"temperature": 1}}, "scoring.temperature", "unknown field"),
    ],
)
def test_bad_rules_are_refused_naming_the_field(manifest, field, words):
    with pytest.raises(PipelineError) as err:
        image_rules(manifest)
        scoring(manifest)
    assert err.value.field == field
    assert words in str(err.value)
    assert str(err.value).startswith(f"{field}: ")


def test_zero_shot_probs_follow_the_scoring():
    from pyapp.ops import zero_shot_probs

    rs = np.random.RandomState(3)
    image, texts = rs.randn(2, 8).astype(np.float32), rs.randn(3, 8).astype(np.float32)
    cos = (image / np.linalg.norm(image, axis=1, keepdims=True)) @ (texts / np.linalg.norm(texts, axis=1, keepdims=True)).T
    sig = scoring({"scoring": {"kind": "sigmoid", "logit_scale": 10.0, "logit_bias": -2.5}})
    np.testing.assert_allclose(zero_shot_probs(image, texts, scoring=sig), 1 / (1 + np.exp(-(10 * cos - 2.5))), rtol=1e-5)
    np.testing.assert_allclose(zero_shot_probs(image, texts, scoring=scoring({})), zero_shot_probs(image, texts), rtol=0)
