"""`clip-web models quantize` and `fp16`: smaller files, same I/O, embeddings close to fp32."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from mt_helpers import VARIANTS, cos, error_line, no_temp_files, ort_run, run_cli, tiny_ids
from server.model_tools import common
from server.model_tools.common import sha256_file
from server.models import list_models
from server.settings import Settings

# Measured on the tiny model (see the final report): uint8/int8 >= 0.990, fp16 >= 0.99999.
COS_MIN = {"uint8": 0.98, "int8": 0.98, "fp16": 0.9999}


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_manifest(models_dir, variant):
    src, m = _manifest(models_dir / "tiny"), _manifest(models_dir / f"tiny-{variant}")
    assert (m["id"], m["variant"], m["source"]) == (f"tiny-reference-{variant}", variant, "tiny-reference")
    for part in ("image", "text"):
        e = m[part]
        # Same I/O names and dtypes as the source: the browser feeds them the same tensors.
        keys = ("url", "input", "output", "input_dtype", "dynamic_sequence")
        assert {k: e.get(k) for k in keys} == {k: src[part].get(k) for k in keys}
        assert e["sha256"] == sha256_file(models_dir / f"tiny-{variant}" / e["url"])
        assert e["bytes"] == (models_dir / f"tiny-{variant}" / e["url"]).stat().st_size
    ratio = m["text"]["bytes"] / src["text"]["bytes"]  # the text model is mostly its token table
    assert ratio < (0.55 if variant == "fp16" else 0.3), ratio
    ids = {x["id"] for x in list_models(Settings(models_dir=models_dir))["models"]}
    assert f"tiny-reference-{variant}" in ids


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_runs_in_onnxruntime_close_to_fp32(models_dir, variant):
    rng = np.random.default_rng(11)
    pixels = rng.standard_normal((3, 3, 224, 224)).astype(np.float32)  # (3, 3, 224, 224)
    ids = tiny_ids(4, seed=12)  # (4, 77) int32
    folder = models_dir / f"tiny-{variant}"
    short_ids = np.ascontiguousarray(ids[:2, :30])  # (2, 30): the dynamic sequence axis survives
    for part, x in [("image", pixels), ("text", ids), ("text", short_ids)]:
        want = ort_run(models_dir / "tiny" / f"{part}.onnx", x)  # (n, 512)
        got = ort_run(folder / f"{part}.onnx", x)  # (n, 512)
        assert got.dtype == np.float32 and got.shape == want.shape
        c = cos(got, want)
        assert COS_MIN[variant] <= c.min() and c.max() < 1.0 + 1e-9, (part, c)
        assert not np.array_equal(got, want)  # really another model


def test_quantized_graphs(models_dir):
    for variant, weight in [("uint8", TensorProto.UINT8), ("int8", TensorProto.INT8)]:
        m = onnx.load(str(models_dir / f"tiny-{variant}" / "text.onnx"))
        ops = {n.op_type for n in m.graph.node}
        types = {t.name: t.data_type for t in m.graph.initializer}
        assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
        # Every MatMul by a weight matrix is quantized; activation x activation (attention) stays.
        assert [n.name for n in m.graph.node if n.op_type == "MatMul" and n.input[1] in types] == []
        # The flag picks the MatMul weights' type ...
        weights = {types[n.input[1]] for n in m.graph.node if n.op_type == "MatMulInteger" and n.input[1] in types}
        assert weights == {weight}
        # ... while onnxruntime stores Gather tables (token, position) as uint8 either way.
        tables = [n.input[0] for n in m.graph.node if n.op_type == "Gather" and n.input[0] in types]
        assert len(tables) == 2 and {types[t] for t in tables} == {TensorProto.UINT8}


def test_fp16_graph_keeps_float32_io(models_dir):
    for part in ("image", "text"):
        m = onnx.load(str(models_dir / "tiny-fp16" / f"{part}.onnx"))
        assert [i.type.tensor_type.elem_type for i in m.graph.input] == \
               [TensorProto.FLOAT if part == "image" else TensorProto.INT32]
        assert [o.type.tensor_type.elem_type for o in m.graph.output] == [TensorProto.FLOAT]
        big = [t for t in m.graph.initializer if np.prod(t.dims) >= 16]
        assert big and all(t.data_type == TensorProto.FLOAT16 for t in big)
        casts = [n for n in m.graph.node if n.op_type == "Cast" and n.input[0].endswith("__fp16")]
        assert len(casts) == len(big)


def test_bad_inputs(models_dir, tmp_path, capsys):
    # not an ONNX file
    bad = tmp_path / "bad"
    shutil.copytree(models_dir / "tiny", bad)
    (bad / "image.onnx").write_text("<html>404 Not Found</html>")
    assert run_cli("models", "quantize", bad, "--to", tmp_path / "q") == 2
    assert "image.onnx: not an ONNX model" in error_line(capsys.readouterr().err)
    # I/O names that are not the model's
    wrong = tmp_path / "wrong"
    shutil.copytree(models_dir / "tiny", wrong)
    m = _manifest(wrong)
    m["image"]["input"] = "pixel_values"
    (wrong / "manifest.json").write_text(json.dumps(m))
    assert run_cli("models", "fp16", wrong, "--to", tmp_path / "f") == 2
    assert "the model has inputs ['input'] and outputs ['output'], but the manifest says input 'pixel_values'" \
        in error_line(capsys.readouterr().err)
    # a variant is not a source
    assert run_cli("models", "quantize", models_dir / "tiny-uint8", "--to", tmp_path / "qq", "--int8") == 2
    assert "needs a float32 model, this one is 'uint8' (use its source: tiny-reference)" \
        in error_line(capsys.readouterr().err)
    # not a model folder
    assert run_cli("models", "fp16", tmp_path / "nowhere", "--to", tmp_path / "f") == 2
    assert "no such model folder" in error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad", "wrong"]
    assert no_temp_files(tmp_path) == []


@pytest.mark.parametrize("command", [["quantize", "--int8"], ["fp16"]])
def test_full_disk_removes_partial_output(models_dir, tmp_path, monkeypatch, capsys, command):
    def full(path, data):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(common, "write_bytes", full)
    assert run_cli("models", command[0], models_dir / "tiny", "--to", tmp_path / "out", *command[1:]) == 2
    assert error_line(capsys.readouterr().err).startswith("clip-web: error: no space left on device")
    assert list(tmp_path.iterdir()) == []  # neither the target nor its temp folder
