"""Small numpy helpers for the pages: normalize embeddings, compare them, rank labels.

CLIP compares L2-normalized embeddings by dot product (clip/model.py CLIP.forward:
logits_per_image = logit_scale * image_features @ text_features.T, features normalized first);
zero_shot_probs is the softmax of those logits over labels, as in OpenAI's zero-shot example.

Float32 in, float32 out (float64 stays float64). Zero vectors give 0 similarity, never NaN.
"""

from __future__ import annotations

import numpy as np

from .constants import LOGIT_SCALE


def _as_float(x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float32)  # ints/bools: compute in float32, like the model outputs
    return arr


def l2_normalize(x, axis: int = -1) -> np.ndarray:
    """x / ||x|| along axis. A zero vector stays zero.

    Each vector is first divided by its largest |component|, so squaring can neither overflow
    (float32 max is ~3.4e38: a component of 2e19 would) nor underflow to a false zero norm (1e-30
    squared is 0 in float32); after that the norm is >= 1 for every non-zero vector. inf/NaN
    components give NaN, as any normalization would.
    """
    x = _as_float(x)
    peak = np.max(np.abs(x), axis=axis, keepdims=True) if x.size else np.ones_like(x)
    y = x / np.where(peak > 0, peak, 1).astype(x.dtype)  # components in [-1, 1]
    norm = np.sqrt(np.sum(y * y, axis=axis, keepdims=True))
    return y / np.where(norm > 0, norm, 1).astype(x.dtype)  # zero vector: 0 / 1 = 0, not NaN


def cosine_similarity_matrix(a, b) -> np.ndarray:
    """Cosine similarity of every row of a (n, d) with every row of b (m, d): (n, m).

    1-D inputs are taken as one row each. Rows that are all zeros have similarity 0 with everything.
    """
    a = np.atleast_2d(_as_float(a))  # (n, d)
    b = np.atleast_2d(_as_float(b))  # (m, d)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected (n, d) and (m, d) arrays, got {a.shape} and {b.shape}")
    dtype = np.result_type(a.dtype, b.dtype)
    sim = l2_normalize(a).astype(dtype, copy=False) @ l2_normalize(b).astype(dtype, copy=False).T  # (n, m)
    # Rounding can put |cos| a hair above 1; keep it a cosine.
    return np.clip(sim, -1.0, 1.0)


def softmax(x, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (the max is subtracted first, so large logits don't overflow)."""
    x = _as_float(x)
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def zero_shot_probs(image_embeds, text_embeds, logit_scale: float = LOGIT_SCALE, *, scoring=None) -> np.ndarray:
    """Probability of each label for each image: softmax over labels of scale * cosine.

    image_embeds (n, d) or (d,), text_embeds (m, d) -> (n, m), rows summing to 1. logit_scale is
    CLIP's exp(logit_scale) (100 for trained OpenAI models), not its log. `scoring` (a manifest's,
    pyapp.pipeline.scoring) overrides it; a sigmoid scoring (SigLIP) gives each label its own
    sigmoid(scale * cosine + bias), rows not summing to 1.
    """
    kind, bias = "softmax", 0.0
    if scoring is not None:
        kind, logit_scale, bias = scoring.kind, scoring.logit_scale, scoring.logit_bias
    logits = np.float32(logit_scale) * cosine_similarity_matrix(image_embeds, text_embeds)  # (n, m)
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-(logits + np.float32(bias))))  # (n, m)
    if logits.shape[1] == 0:
        return logits  # no labels: nothing to normalize over
    return softmax(logits, axis=-1)  # (n, m)


def top_k(scores, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest scores along the last axis, best first: (indices, values).

    scores (m,) -> two (k,) arrays; (n, m) -> two (n, k). k is clipped to [0, m]. Ties keep the
    lower index first (stable), so results are deterministic across runtimes.
    """
    scores = np.asarray(scores)
    if scores.ndim not in (1, 2):
        raise ValueError(f"expected scores of shape (m,) or (n, m), got {scores.shape}")
    k = max(0, min(int(k), scores.shape[-1]))
    # Stable sort of -scores puts larger first and equal ones by index; NaN sorts last. Ints and
    # bools are negated as float64 (unsigned ints would wrap, bools can't be negated).
    key = scores if scores.dtype.kind == "f" else scores.astype(np.float64)
    order = np.argsort(-key, axis=-1, kind="stable")[..., :k]  # (..., k)
    return order, np.take_along_axis(scores, order, axis=-1)
