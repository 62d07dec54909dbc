"""What a model's manifest says about its inputs and its scores, read once into rules pyapp applies.

Families prepare their inputs differently, and that is where in-browser ports drift from their
references. A manifest names each rule; pyapp implements each rule once (preprocess.py, tokenizer
modules, ops.py), and pages, the widget, the search page and the native indexer read them from here.

A manifest without these fields describes OpenAI CLIP, so every existing manifest keeps working:

    "image_size": 224, "mean": [...], "std": [...]            (top level, as before; mean/std may be null)
    "preprocess": {                                            (all optional)
        "resize": "shortest_side" | "squash",                  shorter side to resize_size, or both sides
        "resize_size": int,                                    default image_size
        "interpolation": "bicubic" | "bilinear",
        "center_crop": bool,                                   default true for shortest_side
        "crop_rounding": "round_half_even" | "floor",          torchvision round() / transformers //
        "convert_rgb": "after_crop" | "first_over_white"}      OpenAI's order / transformers' (alpha on white)
    "scoring": {"kind": "softmax", "logit_scale": 100}
             | {"kind": "sigmoid", "logit_scale": s, "logit_bias": b}
    "tokenizer": {"kind": "clip_bpe"}                          (default: OpenAI's BPE, pyapp.tokenizer)
               | {"kind": "sentencepiece", "url": "spiece.model", ["sha256"], ["bytes"],
                  "lowercase": bool, "strip_punctuation": bool, "eos_id": int, "pad_id": int}
                                                               (pyapp.spiece_tokenizer; SigLIP)

No rescale rule: torchvision's `level / 255` in float32 and transformers' `level * (1/255)` in
float64 cast to float32 give the same float32 for every uint8 level (tests/pyapp/test_pipeline.py).

Plain Python (no numpy, no Pillow): the server validates manifests with it at /api/models, and the
browser reads rules before numpy has loaded.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from .constants import CONTEXT_LENGTH, IMAGE_SIZE, LOGIT_SCALE, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

__all__ = ["ImageRules", "PipelineError", "Scoring", "TextRules", "OPENAI_IMAGE_RULES", "image_rules", "scoring",
           "text_rules"]

# Each rule's choices; the first is OpenAI CLIP's (clip/clip.py `_transform` on torchvision).
RESIZE_MODES = ("shortest_side", "squash")
INTERPOLATIONS = ("bicubic", "bilinear")
CROP_ROUNDINGS = ("round_half_even", "floor")
RGB_CONVERSIONS = ("after_crop", "first_over_white")
SCORING_KINDS = ("softmax", "sigmoid")
TOKENIZER_KINDS = ("clip_bpe", "sentencepiece")
SENTENCEPIECE_FIELDS = ("url", "sha256", "bytes", "lowercase", "strip_punctuation", "eos_id", "pad_id")

PREPROCESS_FIELDS = ("resize", "resize_size", "interpolation", "center_crop", "crop_rounding", "convert_rgb")


class PipelineError(ValueError):
    """A manifest's pipeline field is missing, unknown or contradicts another; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class ImageRules:
    size: int = IMAGE_SIZE  # the model's input side: pixel_values is (n, 3, size, size)
    resize: str = "shortest_side"
    resize_size: int = IMAGE_SIZE
    interpolation: str = "bicubic"
    center_crop: bool = True
    crop_rounding: str = "round_half_even"
    convert_rgb: str = "after_crop"
    mean: tuple[float, float, float] | None = OPENAI_DATASET_MEAN  # None: no Normalize step
    std: tuple[float, float, float] | None = OPENAI_DATASET_STD

    def __post_init__(self):
        _check_choice("preprocess.resize", self.resize, RESIZE_MODES)
        _check_choice("preprocess.interpolation", self.interpolation, INTERPOLATIONS)
        _check_choice("preprocess.crop_rounding", self.crop_rounding, CROP_ROUNDINGS)
        _check_choice("preprocess.convert_rgb", self.convert_rgb, RGB_CONVERSIONS)
        _check_positive_int("image_size", self.size)
        _check_positive_int("preprocess.resize_size", self.resize_size)
        if not isinstance(self.center_crop, bool):
            raise PipelineError("preprocess.center_crop", f"must be true or false, got {self.center_crop!r}")
        if (self.mean is None) != (self.std is None):
            raise PipelineError("mean", "mean and std are both null (no normalisation) or both given")
        if self.mean is not None:
            _check_triple("mean", self.mean)
            _check_triple("std", self.std)
            if any(_float32_zero(s) for s in self.std):
                raise PipelineError("std", "must not contain 0 (nor a value float32 rounds to 0)")
        # The output must be size x size, whatever the image's shape: batches stack.
        if self.resize == "squash":
            if self.resize_size != self.size and not self.center_crop:
                raise PipelineError(
                    "preprocess.resize_size",
                    f"squash to {self.resize_size} without a centre crop gives {self.resize_size}px images, "
                    f"but image_size is {self.size}",
                )
        elif not self.center_crop:
            raise PipelineError(
                "preprocess.center_crop",
                "false with resize shortest_side leaves non-square images; use squash or a centre crop",
            )
        if self.center_crop and self.resize_size < self.size:
            raise PipelineError(
                "preprocess.resize_size",
                f"{self.resize_size} is smaller than image_size {self.size}: the centre crop would need padding",
            )

    @property
    def normalises(self) -> bool:
        return self.mean is not None

    def to_dict(self) -> dict:
        """The manifest's spelling of these rules (image_size, mean and std at the top level)."""
        return {
            "image_size": self.size,
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
            "preprocess": {name: getattr(self, name) for name in PREPROCESS_FIELDS},
        }



@dataclass(frozen=True)
class Scoring:
    """How two unit embeddings' cosine becomes a label's probability."""

    kind: str = "softmax"  # over the labels (CLIP); "sigmoid": each label on its own (SigLIP)
    logit_scale: float = LOGIT_SCALE  # exp() of the model's learned log scale
    logit_bias: float = 0.0  # sigmoid only

    def __post_init__(self):
        _check_choice("scoring.kind", self.kind, SCORING_KINDS)
        for name in ("logit_scale", "logit_bias"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise PipelineError(f"scoring.{name}", f"must be a finite number, got {value!r}")
        if self.kind == "softmax" and self.logit_bias != 0:
            raise PipelineError("scoring.logit_bias", "only a sigmoid scoring has a bias (softmax ignores it)")
        if self.logit_scale <= 0:
            raise PipelineError("scoring.logit_scale", f"must be positive, got {self.logit_scale}")

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "logit_scale": self.logit_scale}
        if self.kind == "sigmoid":
            out["logit_bias"] = self.logit_bias
        return out


@dataclass(frozen=True)
class TextRules:
    """How texts become the text encoder's ids."""

    kind: str = "clip_bpe"
    context_length: int = CONTEXT_LENGTH
    url: str | None = None  # the tokenizer's own file (sentencepiece), relative to the manifest
    sha256: str | None = None
    bytes: int | None = None
    # SentencePiece only (OpenAI's BPE has its own fixed special ids, pyapp.constants):
    lowercase: bool = False
    strip_punctuation: bool = False
    eos_id: int = 1
    pad_id: int = 0

    def __post_init__(self):
        _check_choice("tokenizer.kind", self.kind, TOKENIZER_KINDS)
        _check_positive_int("context_length", self.context_length)
        if self.kind == "clip_bpe":
            return
        if not isinstance(self.url, str) or not self.url:
            raise PipelineError("tokenizer.url", "a sentencepiece tokenizer needs its model file's URL")
        if self.sha256 is not None and not (isinstance(self.sha256, str) and len(self.sha256) == 64
                                            and all(c in "0123456789abcdef" for c in self.sha256)):
            raise PipelineError("tokenizer.sha256", f"must be 64 lowercase hex digits, got {self.sha256!r}")
        if self.bytes is not None:
            _check_positive_int("tokenizer.bytes", self.bytes)
        for name in ("lowercase", "strip_punctuation"):
            if not isinstance(getattr(self, name), bool):
                raise PipelineError(f"tokenizer.{name}", f"must be true or false, got {getattr(self, name)!r}")
        for name in ("eos_id", "pad_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise PipelineError(f"tokenizer.{name}", f"must be a piece id (an integer >= 0), got {value!r}")
        if self.context_length < 2:
            raise PipelineError("context_length", "needs room for a token and the end-of-text id")


def text_rules(manifest: dict) -> TextRules:
    """The text rules a manifest states (OpenAI's BPE at its context length where it is silent)."""
    spec = _section(manifest, "tokenizer")
    kind = spec.get("kind", "clip_bpe")
    _refuse_unknown("tokenizer", spec, ("kind",) + (SENTENCEPIECE_FIELDS if kind == "sentencepiece" else ()),
                    f"field for a {kind} tokenizer")
    fields = {name: spec[name] for name in SENTENCEPIECE_FIELDS if name in spec}
    return TextRules(kind=kind, context_length=manifest.get("context_length", CONTEXT_LENGTH), **fields)


def image_rules(manifest: dict) -> ImageRules:
    """The image rules a manifest states (OpenAI CLIP's where it is silent)."""
    rules = _section(manifest, "preprocess")
    _refuse_unknown("preprocess", rules, PREPROCESS_FIELDS, "rule")
    size = manifest.get("image_size", IMAGE_SIZE)
    resize = rules.get("resize", "shortest_side")
    mean = manifest.get("mean", OPENAI_DATASET_MEAN)
    std = manifest.get("std", OPENAI_DATASET_STD)
    return ImageRules(
        size=size,
        resize=resize,
        resize_size=rules.get("resize_size", size),
        interpolation=rules.get("interpolation", "bicubic"),
        center_crop=rules.get("center_crop", resize == "shortest_side"),
        crop_rounding=rules.get("crop_rounding", "round_half_even"),
        convert_rgb=rules.get("convert_rgb", "after_crop"),
        mean=None if mean is None else _triple("mean", mean),
        std=None if std is None else _triple("std", std),
    )


def scoring(manifest: dict) -> Scoring:
    """The scoring a manifest states (CLIP's softmax at scale 100 where it is silent)."""
    spec = _section(manifest, "scoring")
    _refuse_unknown("scoring", spec, ("kind", "logit_scale", "logit_bias"), "field")
    return Scoring(
        kind=spec.get("kind", "softmax"),
        logit_scale=spec.get("logit_scale", LOGIT_SCALE),
        logit_bias=spec.get("logit_bias", 0.0),
    )


def _section(manifest: dict, name: str) -> dict:
    """A manifest's optional object `name` ({} when absent)."""
    spec = manifest.get(name, {})
    if not isinstance(spec, dict):
        raise PipelineError(name, f"must be an object, got {type(spec).__name__}")
    return spec


def _refuse_unknown(name: str, spec: dict, known: tuple[str, ...], noun: str) -> None:
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise PipelineError(f"{name}.{unknown[0]}", f"unknown {noun} (known: {', '.join(known)})")


def _float32_zero(value: float) -> bool:
    # Normalize divides in float32 (torchvision, transformers): a std that float32 rounds to 0
    # divides by zero as surely as 0 does.
    return abs(value) < 1 and struct.unpack("f", struct.pack("f", value))[0] == 0


def _check_choice(field: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise PipelineError(field, f"{value!r} is not one of {', '.join(choices)}")


def _check_positive_int(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PipelineError(field, f"must be a positive integer, got {value!r}")


def _check_triple(field: str, values: object) -> None:
    if len(values) != 3 or not all(isinstance(v, float) and math.isfinite(v) for v in values):
        raise PipelineError(field, f"needs 3 finite numbers (R, G, B), got {list(values)!r}")


def _triple(field: str, values: object) -> tuple[float, float, float]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise PipelineError(field, f"needs 3 numbers (R, G, B) or null, got {values!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise PipelineError(field, f"needs 3 numbers (R, G, B), got {list(values)!r}")
    out = tuple(float(v) for v in values)
    _check_triple(field, out)
    return out  # type: ignore[return-value]


# Made last: the dataclass checks itself with the helpers above.
OPENAI_IMAGE_RULES = ImageRules()
