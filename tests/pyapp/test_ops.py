"""pyapp.ops on hand-computed cases, zero vectors, extremes and shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pyapp.constants import LOGIT_SCALE
from pyapp.ops import (
    cosine_similarity_matrix,
    l2_normalize,
    softmax,
    top_k,
    zero_shot_probs,
)

F32 = np.float32


# --- l2_normalize -----------------------------------------------------------------------------


def test_l2_normalize_3_4_5():
    out = l2_normalize(np.array([3, 4], F32))
    assert out.dtype == F32
    np.testing.assert_allclose(out, [0.6, 0.8], rtol=1e-7)


def test_l2_normalize_rows_and_axis():
    x = np.array([[3, 4, 0], [0, 0, 2]], F32)  # (2, 3)
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8, 0], [0, 0, 1]], rtol=1e-7)
    # axis=0 normalizes columns: [3, 0] -> [1, 0], [4, 0] -> [1, 0], [0, 2] -> [0, 1].
    np.testing.assert_allclose(l2_normalize(x, axis=0), [[1, 1, 0], [0, 0, 1]], rtol=1e-7)


def test_l2_normalize_zero_vector_stays_zero():
    x = np.array([[0, 0, 0], [1, 2, 2]], F32)
    out = l2_normalize(x)
    assert not np.isnan(out).any()
    np.testing.assert_allclose(out, [[0, 0, 0], [1 / 3, 2 / 3, 2 / 3]], rtol=1e-6)


def test_l2_normalize_float32_extremes():
    # Squares would overflow (2e19**2 > 3.4e38) or underflow (1e-30**2 == 0) in float32.
    np.testing.assert_allclose(l2_normalize(np.array([3e19, 4e19], F32)), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(l2_normalize(np.array([3e-30, 4e-30], F32)), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(l2_normalize(np.array([F32(1e-45), 0], F32)), [1, 0])  # a subnormal


def test_l2_normalize_dtypes_and_shapes():
    assert l2_normalize(np.array([1, 2], np.int64)).dtype == F32
    assert l2_normalize(np.array([1.0, 2.0])).dtype == np.float64
    assert l2_normalize(np.zeros((0, 512), F32)).shape == (0, 512)
    assert l2_normalize(np.ones((2, 3, 4), F32)).shape == (2, 3, 4)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(F32, (3, 8), elements=st.floats(float(F32(-1e30)), float(F32(1e30)), width=32)))
def test_l2_normalize_unit_or_zero(x):
    out = l2_normalize(x)  # (3, 8)
    assert np.isfinite(out).all()
    norms = np.linalg.norm(out.astype(np.float64), axis=-1)
    for row, n in zip(x, norms):
        assert (n == 0) if not row.any() else math.isclose(n, 1.0, rel_tol=1e-5)


# --- cosine_similarity_matrix -----------------------------------------------------------------


def test_cosine_hand_computed():
    a = np.array([[1, 0], [1, 1]], F32)  # (2, 2)
    b = np.array([[1, 0], [0, 3], [-2, 0], [1, 1]], F32)  # (4, 2)
    s = cosine_similarity_matrix(a, b)  # (2, 4)
    r = 1 / math.sqrt(2)
    np.testing.assert_allclose(s, [[1, 0, -1, r], [r, r, -r, 1]], rtol=1e-6, atol=1e-7)
    assert s.dtype == F32 and s.shape == (2, 4)


def test_cosine_zero_vectors_give_zero():
    s = cosine_similarity_matrix(np.zeros((1, 3), F32), np.array([[1, 2, 3], [0, 0, 0]], F32))
    assert not np.isnan(s).any()
    np.testing.assert_array_equal(s, [[0, 0]])


def test_cosine_shapes():
    assert cosine_similarity_matrix(np.ones(4, F32), np.ones((3, 4), F32)).shape == (1, 3)
    assert cosine_similarity_matrix(np.ones((0, 4), F32), np.ones((3, 4), F32)).shape == (0, 3)
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        cosine_similarity_matrix(np.ones((2, 4)), np.ones((2, 5)))


def test_cosine_stays_in_range():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 512)).astype(F32)
    s = cosine_similarity_matrix(x, x)  # (50, 50)
    assert (np.abs(s) <= 1).all()
    np.testing.assert_allclose(np.diag(s), 1, rtol=1e-6)


# --- softmax and zero_shot_probs --------------------------------------------------------------


def test_softmax_hand_computed_and_stable():
    np.testing.assert_allclose(softmax(np.array([0, math.log(3)], F32)), [0.25, 0.75], rtol=1e-6)
    big = softmax(np.array([1000, 1000, 1000], F32))  # exp(1000) overflows without the shift
    np.testing.assert_allclose(big, [1 / 3] * 3, rtol=1e-6)


def test_zero_shot_probs_hand_computed():
    image = np.array([[1, 0]], F32)  # (1, 2)
    texts = np.array([[1, 0], [0, 1]], F32)  # (2, 2): cosines 1 and 0
    p = zero_shot_probs(image, texts, logit_scale=1.0)  # softmax([1, 0])
    np.testing.assert_allclose(p, [[math.e / (math.e + 1), 1 / (math.e + 1)]], rtol=1e-6)
    # Default scale 100 (CLIP's clamp, exp(ln 100)): softmax([100, 0]) = [1, e^-100].
    assert LOGIT_SCALE == 100.0
    p100 = zero_shot_probs(image.astype(np.float64), texts.astype(np.float64))  # float64 in, out
    np.testing.assert_allclose(p100, [[1.0, math.exp(-100)]], rtol=1e-12)
    p32 = zero_shot_probs(image, texts)  # e^-100 is a float32 subnormal: only its order holds
    assert p32.dtype == F32 and p32[0, 0] == 1 and 0 < p32[0, 1] < 1e-43
    # Scale-invariant in the inputs: unnormalized embeddings give the same probabilities.
    np.testing.assert_allclose(zero_shot_probs(image * 7, texts * 0.1, 1.0), p, rtol=1e-6)


def test_zero_shot_probs_equal_labels_and_zero_image():
    texts = np.array([[1, 0], [1, 0], [0, 1]], F32)
    np.testing.assert_allclose(zero_shot_probs([1, 0], texts, 1.0)[0, 0], zero_shot_probs([1, 0], texts, 1.0)[0, 1])
    p = zero_shot_probs(np.zeros(2, F32), texts)  # zero image: every cosine 0 -> uniform
    np.testing.assert_allclose(p, [[1 / 3] * 3], rtol=1e-6)


def test_zero_shot_probs_shapes_and_sum():
    rng = np.random.default_rng(1)
    images = rng.standard_normal((4, 16)).astype(F32)
    texts = rng.standard_normal((5, 16)).astype(F32)
    p = zero_shot_probs(images, texts)  # (4, 5)
    assert p.shape == (4, 5) and p.dtype == F32
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert zero_shot_probs(np.ones(16, F32), texts).shape == (1, 5)
    assert zero_shot_probs(images, np.zeros((0, 16), F32)).shape == (4, 0)
    assert zero_shot_probs(np.zeros((0, 16), F32), texts).shape == (0, 5)


# --- top_k ------------------------------------------------------------------------------------


def test_top_k_1d():
    idx, val = top_k(np.array([0.1, 0.7, 0.2, 0.7], F32), 3)
    assert idx.tolist() == [1, 3, 2]  # tie 0.7: lower index first
    np.testing.assert_allclose(val, [0.7, 0.7, 0.2])


def test_top_k_2d_and_bounds():
    scores = np.array([[3, 1, 2], [0, 5, 4]])
    idx, val = top_k(scores, 2)
    assert idx.tolist() == [[0, 2], [1, 2]] and val.tolist() == [[3, 2], [5, 4]]
    assert top_k(scores, 10)[0].shape == (2, 3)  # k clipped to m
    assert top_k(scores, 0)[0].shape == (2, 0)
    assert top_k(np.array([1, 200, 3], np.uint8), 1)[0].tolist() == [1]  # no unsigned wrap
    assert top_k(np.array([np.nan, 1.0, 2.0]), 3)[0].tolist() == [2, 1, 0]  # NaN last
    with pytest.raises(ValueError):
        top_k(np.ones((2, 2, 2)), 1)
