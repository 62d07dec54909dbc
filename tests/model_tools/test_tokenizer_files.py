"""A model with its own tokenizer file (SigLIP's spiece.model) through the model tools: `pull`
mirrors the file beside the encoders, and `quantize`, `fp16` and `optimize` carry it into the
variant's folder, so each folder is served on its own with no network."""

from __future__ import annotations

import json
import shutil

import pytest

from hub_server import HubServer
from mt_helpers import error_line, run_cli
from server.model_tools.common import sha256_file
from server.models import list_models
from server.settings import Settings

REPO = "test-org/tiny-siglip"  # the stand-in hub's path for it
FILES = ("image.onnx", "text.onnx", "spiece.model")


@pytest.fixture(scope="module")
def siglip_dir():
    from siglip_reference import ensure_siglip_model

    return ensure_siglip_model()


@pytest.fixture
def siglip_hub(tmp_path, siglip_dir):
    """The tiny SigLIP's files on a stand-in hub, and a manifest naming them by hub URL."""
    root = tmp_path / "hub"
    (root / REPO).mkdir(parents=True)
    for name in FILES:
        shutil.copy(siglip_dir / name, root / REPO / name)
    manifest = json.loads((siglip_dir / "manifest.json").read_text())
    manifest["id"] = "tiny-siglip-hub"
    for part in ("image", "text", "tokenizer"):
        manifest[part]["url"] = f"https://huggingface.co/{REPO}/resolve/main/{manifest[part]['url']}"
    path = tmp_path / "tiny-siglip-hub.json"
    path.write_text(json.dumps(manifest))
    server = HubServer(root)
    yield server, path
    server.stop()


def _served(models_dir, model_id):
    listed = list_models(Settings(models_dir=models_dir))
    assert model_id not in {r.get("id") for r in listed.get("refused", [])}, listed.get("refused")
    return {m["id"]: m for m in listed["models"]}[model_id]


def test_pull_mirrors_the_tokenizer_file(tmp_path, siglip_hub, siglip_dir):
    hub, manifest_path = siglip_hub
    out = tmp_path / "models"
    assert run_cli("models", "pull", str(manifest_path), "--to", str(out), "--hub", hub.url) == 0
    folder = out / "tiny-siglip-hub"
    m = json.loads((folder / "manifest.json").read_text())
    assert m["tokenizer"]["url"] == "spiece.model"  # relative: served from the models folder
    assert m["tokenizer"]["sha256"] == sha256_file(siglip_dir / "spiece.model") == sha256_file(folder / "spiece.model")
    assert m["tokenizer"]["kind"] == "sentencepiece" and m["tokenizer"]["bytes"] == (folder / "spiece.model").stat().st_size
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, "manifest.json"])
    assert {path for path, _, _ in hub.requests} == {f"/{REPO}/resolve/main/{n}" for n in FILES}
    served = _served(out, "tiny-siglip-hub")
    assert served["tokenizer"]["url"] == "/models/tiny-siglip-hub/spiece.model"
    # A second pull verifies what is there instead of downloading it again.
    n = len(hub.requests)
    assert run_cli("models", "pull", str(manifest_path), "--to", str(out), "--hub", hub.url) == 0
    assert len(hub.requests) == n


def test_pull_refuses_a_tokenizer_file_that_is_not_the_manifests(tmp_path, siglip_hub, capsys):
    hub, manifest_path = siglip_hub
    manifest = json.loads(manifest_path.read_text())
    manifest["tokenizer"]["sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    out = tmp_path / "models"
    assert run_cli("models", "pull", str(manifest_path), "--to", str(out), "--hub", hub.url) != 0
    assert "spiece.model" in error_line(capsys.readouterr().err)
    assert not (out / "tiny-siglip-hub" / "spiece.model").exists()  # not kept


@pytest.mark.parametrize("command, suffix", [(["quantize", "--uint8"], "uint8"), (["fp16"], "fp16")])
def test_variants_carry_the_tokenizer_file(tmp_path, siglip_dir, command, suffix):
    source = tmp_path / "tiny-siglip"
    shutil.copytree(siglip_dir, source, ignore=shutil.ignore_patterns("checkpoint"))
    target = tmp_path / f"tiny-siglip-{suffix}"
    assert run_cli("models", *command, str(source), "--to", str(target)) == 0
    m = json.loads((target / "manifest.json").read_text())
    assert m["tokenizer"]["url"] == "spiece.model"
    assert sha256_file(target / "spiece.model") == m["tokenizer"]["sha256"] == sha256_file(siglip_dir / "spiece.model")
    assert {k: v for k, v in m["tokenizer"].items() if k not in ("sha256", "bytes")} == \
        {k: v for k, v in json.loads((source / "manifest.json").read_text())["tokenizer"].items() if k not in ("sha256", "bytes")}
    # The variant's folder alone, served: listed, not refused, its tokenizer under its own URL.
    alone = tmp_path / "served"
    alone.mkdir()
    shutil.copytree(target, alone / target.name)
    assert _served(alone, m["id"])["tokenizer"]["url"] == f"/models/{target.name}/spiece.model"


def test_a_missing_tokenizer_file_is_refused_before_anything_is_written(tmp_path, siglip_dir, capsys):
    source = tmp_path / "tiny-siglip"
    shutil.copytree(siglip_dir, source, ignore=shutil.ignore_patterns("checkpoint"))
    (source / "spiece.model").unlink()
    target = tmp_path / "tiny-siglip-uint8"
    assert run_cli("models", "quantize", "--uint8", str(source), "--to", str(target)) != 0
    line = error_line(capsys.readouterr().err)
    assert "spiece.model" in line and "missing" in line, line
    assert not target.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
