"""`clip-web models export`: a transformers checkpoint -> our ONNX layout, equal to torch."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest

from mt_helpers import cos, error_line, no_temp_files, ort_run, run_cli, tiny_ids
from server.model_tools import common
from server.model_tools.common import ToolError, sha256_file
from server.model_tools.export import argmax_input_types, check_text_graph, sequence_is_dynamic
from server.models import validate_manifest


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("export") / "my-clip"
    assert run_cli("models", "export", tiny_model_dir / "checkpoint", "--to", out) == 0
    return out


@pytest.fixture(scope="module")
def torch_clip(tiny_model_dir):
    from torch_reference import TorchClip

    return TorchClip(tiny_model_dir / "checkpoint")


def test_manifest_describes_the_files(exported):
    m = validate_manifest(json.loads((exported / "manifest.json").read_text()), "export")
    assert (m["id"], m["variant"], m["embed_dim"]) == ("my-clip", "fp32", 512)
    assert (m["context_length"], m["image_size"]) == (77, 224)
    for part, dtype in [("image", "float32"), ("text", "int32")]:
        e = m[part]
        assert (e["input"], e["output"], e["input_dtype"]) == ("input", "output", dtype)
        assert e["sha256"] == sha256_file(exported / e["url"]) and e["bytes"] == (exported / e["url"]).stat().st_size


def test_export_equals_the_reference_build(exported, tiny_model_dir):
    """The reference builder calls the same export code: same checkpoint, same bytes."""
    for name in ("image.onnx", "text.onnx"):
        assert sha256_file(exported / name) == sha256_file(tiny_model_dir / name)


def test_image_encoder_equals_torch(exported, torch_clip):
    rng = np.random.default_rng(3)
    for n in (1, 3):  # dynamic batch
        pixels = rng.standard_normal((n, 3, 224, 224)).astype(np.float32)  # (n, 3, 224, 224)
        got = ort_run(exported / "image.onnx", pixels)  # (n, 512)
        assert got.shape == (n, 512)
        assert cos(got, torch_clip.image_embeds(pixels)).min() >= 0.99999


def test_text_encoder_equals_torch_with_int32_eot_pooling(exported, torch_clip):
    ids = tiny_ids(5)  # (5, 77) int32, EOT from position 1 to 76
    got = ort_run(exported / "text.onnx", ids)  # (5, 512)
    assert cos(got, torch_clip.text_embeds(ids)).min() >= 0.99999
    check_text_graph(exported / "text.onnx")  # int32 input, the one ArgMax on int32
    assert argmax_input_types(onnx.load(str(exported / "text.onnx"))) == [onnx.TensorProto.INT32]


def test_text_encoder_takes_any_length_up_to_its_last_eot(exported, torch_clip):
    """The dynamic sequence axis the manifest declares: short batches embed as torch does at 77."""
    from pyapp.tokenizer import trim_padding

    assert json.loads((exported / "manifest.json").read_text())["text"]["dynamic_sequence"] is True
    assert sequence_is_dynamic(onnx.load(str(exported / "text.onnx")))
    ids = tiny_ids(5, seed=4)[:3]  # (3, 77), EOT at 1, 19, 38
    short = trim_padding(ids)  # (3, 39)
    assert short.shape == (3, 39)
    got = ort_run(exported / "text.onnx", short)  # (3, 512)
    assert cos(got, torch_clip.text_embeds(ids)).min() >= 0.99999
    np.testing.assert_allclose(got, ort_run(exported / "text.onnx", ids), rtol=0, atol=1e-5)


def test_not_a_checkpoint(tmp_path, capsys):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"junk")
    assert run_cli("models", "export", tmp_path / "ckpt", "--to", tmp_path / "out") == 2
    assert "not a transformers checkpoint folder (no config.json" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists() and no_temp_files(tmp_path) == []


def test_broken_checkpoint_weights(tmp_path, tiny_model_dir, capsys):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text((tiny_model_dir / "checkpoint" / "config.json").read_text())
    (ckpt / "model.safetensors").write_bytes(b"not safetensors")
    assert run_cli("models", "export", ckpt, "--to", tmp_path / "out") == 2
    assert "cannot load as a CLIP checkpoint" in error_line(capsys.readouterr().err)


def test_refuses_to_overwrite_without_force(exported, tiny_model_dir, capsys):
    assert run_cli("models", "export", tiny_model_dir / "checkpoint", "--to", exported) == 2
    assert "already exists and is not empty (use --force" in error_line(capsys.readouterr().err)


def test_full_disk_leaves_nothing(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """ENOSPC at the write boundary (the manifest, after both models): the temp folder goes."""
    def full(path, data):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(common, "write_bytes", full)
    assert run_cli("models", "export", tiny_model_dir / "checkpoint", "--to", tmp_path / "out") == 2
    assert error_line(capsys.readouterr().err).startswith("clip-web: error: no space left on device")
    assert list(tmp_path.iterdir()) == []


def test_missing_optional_dependency_is_explained(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    from server.model_tools.export import export_checkpoint

    with pytest.raises(ToolError, match=r"pip install 'clip-web\[models\]'"):
        export_checkpoint(tiny_model_dir / "checkpoint", tmp_path / "out")
