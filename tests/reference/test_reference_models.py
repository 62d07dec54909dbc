"""The tiny reference model: ONNX graphs == transformers oracle, int32 pooling, manifest, determinism."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import build_models  # noqa: E402
from build_models import C  # noqa: E402
from torch_reference import TorchClip, ensure_reference_models  # noqa: E402

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

COS_MIN = 0.99999
ABS_MAX = 1e-4


@pytest.fixture(scope="module")
def folder() -> Path:
    return ensure_reference_models("tiny")


@pytest.fixture(scope="module")
def clip(folder) -> TorchClip:
    return TorchClip(folder / "checkpoint")


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)  # (n, 512)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (_unit(a) * _unit(b)).sum(-1)  # (n,)


def _assert_close(got: np.ndarray, want: np.ndarray) -> None:
    """Cosine, and max abs diff of the unit vectors the app compares. The raw embeddings have
    norm ~110 (the widened init), where float32 noise alone is ~1e-5..1e-4 per element, so an
    absolute bound on them would flake across CPUs; the raw scale is checked relatively instead."""
    assert got.shape == want.shape and got.dtype == np.float32
    cos = _cos(got, want)
    diff = np.abs(_unit(got) - _unit(want)).max()
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert cos.min() >= COS_MIN and diff <= ABS_MAX and rel <= ABS_MAX, \
        f"cosine {cos}, max abs diff (unit) {diff}, max rel diff (raw) {rel}"


def _ids(eot_positions: list[int], seed: int = 0) -> np.ndarray:
    """Tokenizer-shaped ids: SOT, random BPE ids, EOT at the given position, zero padding."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(eot_positions), C.CONTEXT_LENGTH), dtype=np.int32)  # (n, 77)
    for row, pos in zip(ids, eot_positions):
        row[0] = C.SOT_ID
        row[1:pos] = rng.integers(1, C.SOT_ID, size=pos - 1)  # ordinary tokens are < SOT < EOT
        row[pos] = C.EOT_ID
    return ids


EOT_POSITIONS = [1, 5, 20, C.CONTEXT_LENGTH - 1]  # empty text, short, medium, full context


def test_manifest_matches_files(folder):
    m = json.loads((folder / "manifest.json").read_text())
    assert list(m) == ["id", "name", "variant", "image", "text", "context_length", "image_size",
                       "mean", "std", "embed_dim"]
    assert m["id"] == "tiny-reference" and m["variant"] == "fp32"
    assert (m["context_length"], m["image_size"], m["embed_dim"]) == (C.CONTEXT_LENGTH, C.IMAGE_SIZE, C.EMBED_DIM)
    assert m["mean"] == list(C.OPENAI_DATASET_MEAN) and m["std"] == list(C.OPENAI_DATASET_STD)
    for part, dtype in [("image", "float32"), ("text", "int32")]:
        e = m[part]
        dynamic = ["dynamic_sequence"] if part == "text" else []
        assert list(e) == ["url", "input", "output", "input_dtype", *dynamic, "sha256", "bytes"]
        assert e.get("dynamic_sequence", True) is True
        assert (e["input"], e["output"], e["input_dtype"]) == ("input", "output", dtype)
        f = folder / e["url"]
        assert f.stat().st_size == e["bytes"]
        assert build_models.sha256_file(f) == e["sha256"]


def test_image_onnx_matches_torch(folder, clip):
    sess = _session(folder / "image.onnx")
    rng = np.random.default_rng(1)
    for n in (3, 1):  # traced at batch 2: both must work through the dynamic batch axis
        pixels = rng.standard_normal((n, 3, C.IMAGE_SIZE, C.IMAGE_SIZE)).astype(np.float32)  # (n, 3, 224, 224)
        got = sess.run(["output"], {"input": pixels})[0]  # (n, 512)
        _assert_close(got, clip.image_embeds(pixels))


def test_text_onnx_matches_torch(folder, clip):
    sess = _session(folder / "text.onnx")
    ids = _ids(EOT_POSITIONS)  # (4, 77) int32
    got = sess.run(["output"], {"input": ids})[0]  # (4, 512)
    _assert_close(got, clip.text_embeds(ids))


def test_text_at_its_real_length_equals_77_positions(folder, clip):
    """The dynamic sequence axis: a batch cut right after its last EOT (tokenizer.trim_padding)
    embeds exactly as the torch oracle does at 77 positions; a cut before an EOT would not."""
    from pyapp.tokenizer import trim_padding

    sess = _session(folder / "text.onnx")
    for positions in ([1], [5, 20], [1, 5, 20], EOT_POSITIONS):
        ids = _ids(positions, seed=len(positions))  # (n, 77)
        short = trim_padding(ids)  # (n, max(positions) + 1)
        assert short.shape == (len(positions), max(positions) + 1)
        got = sess.run(["output"], {"input": short})[0]  # (n, 512)
        _assert_close(got, clip.text_embeds(ids))
    ids = _ids([5, 20], seed=9)
    cut_too_soon = sess.run(["output"], {"input": np.ascontiguousarray(ids[:, :10])})[0]  # row 2 loses its EOT
    assert _cos(cut_too_soon, clip.text_embeds(ids))[1] < 0.9


def test_text_graph_is_int32_end_to_end(folder):
    """onnxruntime-web has no int64 ArgMax: ids must arrive as int32 and be argmaxed as int32."""
    m = onnx.shape_inference.infer_shapes(onnx.load(str(folder / "text.onnx")))
    (inp,) = m.graph.input
    assert inp.name == "input" and inp.type.tensor_type.elem_type == onnx.TensorProto.INT32
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]
    types = {v.name: v.type.tensor_type.elem_type for v in [*m.graph.input, *m.graph.value_info]}
    argmax_inputs = [types.get(n.input[0]) for n in m.graph.node if n.op_type == "ArgMax"]
    assert argmax_inputs == [onnx.TensorProto.INT32]
    with pytest.raises(Exception):  # and int64 ids are refused, not silently cast
        _session(folder / "text.onnx").run(["output"], {"input": _ids([5]).astype(np.int64)})


def test_transformers_pools_at_eot(clip):
    ids = _ids(EOT_POSITIONS, seed=2)  # (4, 77)
    by_hand = clip.text_embeds_at(ids, np.array(EOT_POSITIONS))  # (4, 512)
    np.testing.assert_allclose(clip.text_embeds(ids), by_hand, rtol=0, atol=1e-6)


def test_wrong_pooling_would_be_caught(folder, clip):
    """Pooling at the last position instead of the EOT must fail the equivalence tolerance."""
    ids = _ids([5], seed=3)  # (1, 77)
    right = _session(folder / "text.onnx").run(["output"], {"input": ids})[0]  # (1, 512)
    wrong = clip.text_embeds_at(ids, np.array([C.CONTEXT_LENGTH - 1]))  # (1, 512)
    assert _cos(right, wrong)[0] < 0.9


def test_embeddings_are_distinct(clip):
    """The widened init keeps random inputs apart; near-identical embeddings would hide bugs."""
    rng = np.random.default_rng(4)
    pixels = rng.standard_normal((4, 3, C.IMAGE_SIZE, C.IMAGE_SIZE)).astype(np.float32)  # (4, 3, 224, 224)
    for e in (clip.image_embeds(pixels), clip.text_embeds(_ids(EOT_POSITIONS, seed=5))):
        sims = _unit(e) @ _unit(e).T  # (4, 4)
        assert sims[~np.eye(4, dtype=bool)].max() < 0.9


def test_build_is_deterministic_and_cached(folder, tmp_path):
    """A fresh build (another folder, maybe another process than the cache's) is byte-identical;
    a second call reuses it; a stale stamp triggers a rebuild."""
    fresh = build_models.build("tiny", tmp_path)
    assert build_models.tree_digest(fresh) == build_models.tree_digest(folder)

    onnx_mtime = (fresh / "text.onnx").stat().st_mtime_ns
    assert build_models.build("tiny", tmp_path) == fresh
    assert (fresh / "text.onnx").stat().st_mtime_ns == onnx_mtime

    (fresh / build_models.STAMP_NAME).write_text("stale\n")
    build_models.build("tiny", tmp_path)
    assert build_models.is_current(fresh)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # no temp folders left behind
