"""`clip-web models fix-text-model`: int64 ArgMax -> int32, checked against the input model and torch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from mt_helpers import cos, error_line, no_temp_files, ort_run, run_cli, tiny_ids
from server.model_tools import common, fix_text
from server.model_tools.export import argmax_input_types


def _input_type(path):
    return onnx.load(str(path)).graph.input[0].type.tensor_type.elem_type


@pytest.fixture(scope="module")
def port_style(legacy_text, tmp_path_factory):
    """The original JS port's shape of the bug: int32 input, Cast to int64, int64 ArgMax."""
    m = onnx.load(str(legacy_text))
    fix_text._widen_input(m, "input")
    path = tmp_path_factory.mktemp("port") / "text-int32-in-int64-argmax.onnx"
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def torch_clip(tiny_model_dir):
    from torch_reference import TorchClip

    return TorchClip(tiny_model_dir / "checkpoint")


def test_fixtures_reproduce_the_bug(legacy_text, port_style):
    assert argmax_input_types(onnx.load(str(legacy_text))) == [TensorProto.INT64]
    assert _input_type(legacy_text) == TensorProto.INT64
    assert argmax_input_types(onnx.load(str(port_style))) == [TensorProto.INT64]
    assert _input_type(port_style) == TensorProto.INT32


def test_int64_input_keeps_its_input_and_casts_before_argmax(legacy_text, tmp_path, capsys, torch_clip):
    out = tmp_path / "fixed.onnx"
    assert run_cli("models", "fix-text-model", legacy_text, out) == 0
    check = json.loads(capsys.readouterr().out)
    assert check["input_dtype_before"] == check["input_dtype_after"] == "int64"
    assert check["max_abs_diff"] == 0.0 and check["checked_samples"] == 6
    assert check["changes"] == ["ArgMax '/ArgMax': Cast(to=int32) inserted on 'input'"]
    assert argmax_input_types(onnx.load(str(out))) == [TensorProto.INT32]
    assert _input_type(out) == TensorProto.INT64
    ids = tiny_ids(5, seed=4).astype(np.int64)  # (5, 77)
    got = ort_run(out, ids)  # (5, 512)
    np.testing.assert_array_equal(got, ort_run(legacy_text, ids))
    assert cos(got, torch_clip.text_embeds(ids)).min() >= 0.99999


def test_int32_input_option(legacy_text, tmp_path, capsys, tiny_model_dir):
    out = tmp_path / "fixed32.onnx"
    assert run_cli("models", "fix-text-model", legacy_text, out, "--int32-input") == 0
    check = json.loads(capsys.readouterr().out)
    assert (check["input_dtype_before"], check["input_dtype_after"]) == ("int64", "int32")
    assert _input_type(out) == TensorProto.INT32
    assert argmax_input_types(onnx.load(str(out))) == [TensorProto.INT32]
    ids = tiny_ids(5, seed=5)  # (5, 77) int32
    np.testing.assert_array_equal(ort_run(out, ids), ort_run(legacy_text, ids.astype(np.int64)))
    # and it now matches our own int32 export exactly in behaviour
    np.testing.assert_allclose(ort_run(out, ids), ort_run(tiny_model_dir / "text.onnx", ids), rtol=0, atol=1e-4)


def test_port_style_argmax_reads_the_int32_input(port_style, tmp_path, capsys):
    out = tmp_path / "fixed-port.onnx"
    assert run_cli("models", "fix-text-model", port_style, out) == 0
    check = json.loads(capsys.readouterr().out)
    assert check["changes"] == ["ArgMax '/ArgMax' now reads the int32 'input' (was its int64 Cast)"]
    assert argmax_input_types(onnx.load(str(out))) == [TensorProto.INT32]
    ids = tiny_ids(3, seed=6)  # (3, 77) int32
    np.testing.assert_array_equal(ort_run(out, ids), ort_run(port_style, ids))


def test_already_int32_is_copied(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "same.onnx"
    assert run_cli("models", "fix-text-model", tiny_model_dir / "text.onnx", out) == 0
    captured = capsys.readouterr()
    assert "no int64 ArgMax found" in captured.err and json.loads(captured.out)["changes"] == []


def test_bad_inputs(legacy_text, tiny_model_dir, tmp_path, capsys):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\x01 definitely not protobuf \xff" * 10)
    assert run_cli("models", "fix-text-model", junk, tmp_path / "o1.onnx") == 2
    assert "junk.onnx: not an ONNX model" in error_line(capsys.readouterr().err)

    assert run_cli("models", "fix-text-model", tiny_model_dir / "image.onnx", tmp_path / "o2.onnx") == 2
    assert "is not int32/int64 token ids" in error_line(capsys.readouterr().err)

    assert run_cli("models", "fix-text-model", legacy_text, tmp_path / "o3.onnx", "--input-name", "input_ids") == 2
    assert "no input named 'input_ids'; the model's inputs are ['input']" in error_line(capsys.readouterr().err)

    assert run_cli("models", "fix-text-model", legacy_text, legacy_text) == 2
    assert "IN and OUT are the same file" in error_line(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.onnx"]


def test_full_disk_leaves_no_partial_file(legacy_text, tmp_path, monkeypatch, capsys):
    def full(path, data):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(common, "write_bytes", full)
    assert run_cli("models", "fix-text-model", legacy_text, tmp_path / "out.onnx") == 2
    assert error_line(capsys.readouterr().err).startswith("clip-web: error: no space left on device")
    assert list(tmp_path.iterdir()) == [] and no_temp_files(tmp_path) == []
