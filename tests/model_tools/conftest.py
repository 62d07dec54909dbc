"""Model-tool fixtures, built once per session in temp folders (never in .cache/reference):

    hub_root     files of a local stand-in for huggingface.co (tiny model, rocca's file names)
    hub          an HTTP server over hub_root (fresh per test: clean request log and switches)
    models_dir   tiny/ (fp32 copy) + tiny-uint8/, tiny-int8/, tiny-fp16/ made by our tools
    legacy_text  the tiny text encoder exported the broken way (int64 ids, int64 ArgMax)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hub_server import HubServer
from mt_helpers import ROCCA, ROCCA_IMAGE, ROCCA_TEXT


@pytest.fixture(scope="session")
def hub_root(tmp_path_factory, tiny_model_dir) -> Path:
    root = tmp_path_factory.mktemp("hub")
    repo = root / ROCCA
    repo.mkdir(parents=True)
    shutil.copy(tiny_model_dir / "image.onnx", repo / ROCCA_IMAGE)
    shutil.copy(tiny_model_dir / "text.onnx", repo / ROCCA_TEXT)
    return root


@pytest.fixture
def hub(hub_root):
    """A fresh server per test: its request log and misbehaviour switches start clean."""
    server = HubServer(hub_root)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory, tiny_model_dir) -> Path:
    from server.model_tools.fp16 import fp16_folder
    from server.model_tools.quantize import quantize_folder

    root = tmp_path_factory.mktemp("models")
    (root / "tiny").mkdir()
    for name in ("image.onnx", "text.onnx", "manifest.json"):
        shutil.copy(tiny_model_dir / name, root / "tiny" / name)
    quantize_folder(root / "tiny", root / "tiny-uint8", "uint8")
    quantize_folder(root / "tiny", root / "tiny-int8", "int8")
    fp16_folder(root / "tiny", root / "tiny-fp16")
    return root


@pytest.fixture(scope="session")
def legacy_text(tmp_path_factory, tiny_model_dir) -> Path:
    from server.model_tools.export import export_checkpoint

    out = tmp_path_factory.mktemp("legacy") / "tiny-int64"
    export_checkpoint(tiny_model_dir / "checkpoint", out, legacy_int64=True)
    assert json.loads((out / "manifest.json").read_text())["text"]["input_dtype"] == "int64"
    return out / "text.onnx"
