"""`clip-web models report`: real measurements of each variant vs its fp32 source and torch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mt_helpers import VARIANTS, error_line, run_cli
from server.model_tools import report as report_mod
from server.models import list_models
from server.settings import Settings

FOLDERS = ["tiny", *(f"tiny-{v}" for v in VARIANTS)]


@pytest.fixture(scope="module")
def reported(models_dir, tiny_model_dir):
    code = run_cli("models", "report", *(models_dir / f for f in FOLDERS),
                   "--checkpoint", tiny_model_dir / "checkpoint", "--runs", "3")
    assert code == 0
    return {f: json.loads((models_dir / f / "report.json").read_text()) for f in FOLDERS}


def _numbers(result):
    for key in ("vs_source", "vs_torch"):
        r = result[key]
        yield from (r["image"]["cos_min"], r["image"]["cos_mean"], r["text"]["cos_min"], r["text"]["cos_mean"],
                    r["zero_shot_top1_agreement"])


def test_fp32_against_itself_is_exactly_one(reported):
    r = reported["tiny"]
    assert (r["model"], r["source"], r["variant"]) == ("tiny-reference", "tiny-reference", "fp32")
    vs = r["vs_source"]
    assert vs["image"] == {"cos_min": 1.0, "cos_mean": 1.0} and vs["text"] == {"cos_min": 1.0, "cos_mean": 1.0}
    assert vs["zero_shot_top1_agreement"] == 1.0
    # and the fp32 ONNX model against torch on the same weights
    assert r["vs_torch"]["image"]["cos_min"] >= 0.99999 and r["vs_torch"]["text"]["cos_min"] >= 0.99999


@pytest.mark.parametrize("folder", FOLDERS[1:])
def test_variant_numbers_are_real(reported, models_dir, folder):
    r = reported[folder]
    assert r["source"] == "tiny-reference" and r["probe"] == {"images": 16, "texts": 32, "labels": 8, "seed": 0}
    assert all(0.0 <= x <= 1.0 for x in _numbers(r))
    vs = r["vs_source"]
    floor = 0.9999 if folder.endswith("fp16") else 0.98
    assert floor <= vs["image"]["cos_min"] <= vs["image"]["cos_mean"] < 1.0
    assert floor <= vs["text"]["cos_min"] <= vs["text"]["cos_mean"] < 1.0
    assert r["bytes"]["image"] == (models_dir / folder / "image.onnx").stat().st_size
    assert r["bytes"]["total"] < reported["tiny"]["bytes"]["total"]
    t = r["timing"]
    assert t["ms_per_image"] > 0 and t["load_ms"]["image"] > 0 and t["load_ms"]["text"] > 0 and t["runs"] == 3
    # vs torch is (nearly) vs fp32, since fp32 equals torch
    assert abs(r["vs_torch"]["image"]["cos_min"] - vs["image"]["cos_min"]) < 1e-4


def test_manifest_gains_summary_and_still_validates(reported, models_dir):
    for folder in FOLDERS:
        m = json.loads((models_dir / folder / "manifest.json").read_text())
        s = m["report"]
        r = reported[folder]
        assert s["reference"] == "tiny-reference" and s["bytes"] == r["bytes"]["total"]
        assert s["image_cosine_min"] == round(r["vs_source"]["image"]["cos_min"], 6)
        assert s["text_cosine_min"] == round(r["vs_source"]["text"]["cos_min"], 6)
        assert s["top1_agreement"] == r["vs_source"]["zero_shot_top1_agreement"]
    served = {m["id"]: m for m in list_models(Settings(models_dir=models_dir))["models"]}
    assert served["tiny-reference-uint8"]["report"]["reference"] == "tiny-reference"


def test_table_printed(models_dir, capsys):
    assert run_cli("models", "report", models_dir / "tiny-fp16", "--runs", "1") == 0  # finds tiny/ beside it
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["model", "variant", "vs"]
    assert "tiny-reference-fp16" in out and "tiny-reference " in out


def test_probe_set_is_deterministic():
    a, b = report_mod.probe_images(), report_mod.probe_images()
    assert a == b and len(a) == 16 and len(set(a)) == 16
    texts = report_mod.probe_texts()
    assert len(texts) == 32 and texts[:8] == [f"a photo of a {x}" for x in report_mod.LABELS]


def test_cosine_is_exact_on_identical_rows():
    x = np.random.default_rng(0).standard_normal((50, 512)).astype(np.float32) * 100  # (50, 512)
    assert (report_mod.cosines(x, x) == 1.0).all()


def test_source_not_found(models_dir, tmp_path, capsys):
    lonely = tmp_path / "lonely"
    shutil.copytree(models_dir / "tiny-int8", lonely)
    assert run_cli("models", "report", lonely) == 2
    assert "its source model 'tiny-reference' is not beside it" in error_line(capsys.readouterr().err)
    assert run_cli("models", "report", lonely, "--source", models_dir / "tiny", "--runs", "1") == 0


def test_a_sentencepiece_model_is_refused_not_misreported():
    """The probes tokenize with OpenAI's BPE: a SigLIP manifest is refused by name rather than
    reported with ids its model never sees."""
    from server.model_tools.common import ToolError

    manifest = {"context_length": 64, "image_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3,
                "tokenizer": {"kind": "sentencepiece", "url": "spiece.model", "eos_id": 1, "pad_id": 1}}
    with pytest.raises(ToolError, match="this model's tokenizer is sentencepiece"):
        report_mod.probe_inputs(manifest)
