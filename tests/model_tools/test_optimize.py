"""`clip-web models optimize`: fused graphs that onnxruntime-web's wasm build runs, with the same
embeddings as the source (native onnxruntime and onnxruntime-web under Node, real inputs)."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import onnx
import pytest
from PIL import Image

from mt_helpers import cos, error_line, no_temp_files, ort_run, run_cli
from server.model_tools import optimize, ort_web
from server.model_tools.common import sha256_file
from server.model_tools.report import probe_images
from server.models import list_models
from server.settings import Settings

FILES = ("image.onnx", "text.onnx", "manifest.json")
# The tiny reference model has 2 layers per encoder; these are the counts the tool makes of it
# (onnxruntime 1.32's transformer fusions), op by op.
FUSED = {
    "image": {"Attention": 2, "SkipLayerNormalization": 3, "LayerNormalization": 3, "QuickGelu": 2},
    "text": {"Attention": 2, "SkipLayerNormalization": 4, "LayerNormalization": 1, "QuickGelu": 2},
}
# What the fusions replace; none of it may be left.
UNFUSED = ("Softmax", "ReduceMean", "Pow", "Sqrt", "Sigmoid", "Div", "Sub", "LessOrEqual")


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("optimize")
    (root / "tiny").mkdir()
    for name in FILES:
        shutil.copy(tiny_model_dir / name, root / "tiny" / name)
    assert run_cli("models", "optimize", root / "tiny", root / "tiny-opt") == 0
    return root / "tiny", root / "tiny-opt"


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def _ops(path):
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _photo_jpeg() -> bytes:
    """A photo-like JPEG (gradient, a disc, noise), 4:2:0, odd size: resize and crop do real work."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:301, 0:389].astype(np.float32)  # (301, 389) each
    rgb = np.stack([xx / 389, yy / 301, 0.5 + 0.5 * np.sin(xx / 17)], -1)  # (301, 389, 3)
    rgb[(yy - 150) ** 2 + (xx - 200) ** 2 < 80 ** 2] = (0.9, 0.2, 0.1)
    rgb = np.clip(rgb + 0.05 * rng.standard_normal(rgb.shape), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def real_inputs():
    """pixel_values and input_ids as the pages make them (pyapp preprocessing and tokenizer)."""
    from pyapp.preprocess import preprocess_images
    from pyapp.tokenizer import tokenize, trim_padding

    pixels = preprocess_images([_photo_jpeg(), *probe_images(3)])  # (4, 3, 224, 224)
    long_text = " ".join(["a photo of a cat on a red chair next to a window"] * 10)
    ids = tokenize(["a photo of a cat", long_text, "<|endoftext|>", ""])  # (4, 77) int32
    assert (ids[1] != 0).all() and ids[1, -1] == 49407  # the long text fills all 77 positions
    assert ids[2, :4].tolist() == [49406, 49407, 49407, 0]  # the literal is text, pooled at position 1
    short = trim_padding(ids[[0, 2, 3]])  # (3, 7): "a photo of a cat" at its real length
    assert short.shape == (3, 7)
    return {"image": pixels, "text": ids, "text_real_length": short}


def test_ops_fused(folders):
    src, opt = folders
    info = _manifest(opt)["optimized"]
    for part in ("image", "text"):
        before, after = _ops(src / f"{part}.onnx"), _ops(opt / f"{part}.onnx")
        for op, n in FUSED[part].items():
            assert after.count(op) == n, (part, op, after.count(op))
        assert [op for op in after if op in UNFUSED] == []
        assert before.count("Softmax") == 2 and before.count("ReduceMean") >= 10  # what there was to fuse
        assert len(after) < 0.2 * len(before), (part, len(before), len(after))
        assert (info[part]["nodes_before"], info[part]["nodes_after"]) == (len(before), len(after))
        assert info[part]["ops_after"]["Attention"] == 2
        assert info[part]["attention"] == {"found": 2, "fused": 2, "heads": 2, "hidden_size": 64,
                                           "causal": part == "text"}
    # The text encoder's causal mask became the Attention's own (unidirectional); the image's has none.
    for part, want in (("image", 0), ("text", 1)):
        attention = [n for n in onnx.load(str(opt / f"{part}.onnx")).graph.node if n.op_type == "Attention"]
        flags = {onnx.helper.get_attribute_value(a) for n in attention for a in n.attribute if a.name == "unidirectional"}
        assert flags == ({want} if want else set()), (part, flags)


def test_io_and_manifest_kept(folders):
    src, opt = folders
    s, m = _manifest(src), _manifest(opt)
    assert (m["id"], m["variant"], m["source"]) == ("tiny-reference-opt", "fp32-opt", "tiny-reference")
    for key in ("context_length", "image_size", "mean", "std", "embed_dim"):
        assert m[key] == s[key]
    for part in ("image", "text"):
        keys = ("url", "input", "output", "input_dtype", "dynamic_sequence")
        assert {k: m[part].get(k) for k in keys} == {k: s[part].get(k) for k in keys}
        assert m[part]["sha256"] == sha256_file(opt / m[part]["url"])
        assert m[part]["bytes"] == (opt / m[part]["url"]).stat().st_size
        a, b = onnx.load(str(src / f"{part}.onnx")), onnx.load(str(opt / f"{part}.onnx"))
        io_of = lambda g: [(v.name, v.type.tensor_type.elem_type,  # noqa: E731
                            [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
                           for v in [*g.input, *g.output]]
        assert io_of(b.graph) == io_of(a.graph)  # names, dtypes, dynamic axes (batch, sequence)
        assert b.ir_version == a.ir_version
        assert {o.domain for o in b.opset_import} <= {"", "com.microsoft"}  # no nchwc or training domains
    assert m["optimized"]["fidelity"]["onnxruntime_web"] == "1.30.0"
    served = {x["id"] for x in list_models(Settings(models_dir=opt.parent))["models"]}
    assert {"tiny-reference", "tiny-reference-opt"} <= served


def test_same_embeddings_native(folders, real_inputs):
    src, opt = folders
    for key, x in real_inputs.items():
        part = key.split("_")[0]
        want = ort_run(src / f"{part}.onnx", x)  # (n, 512)
        got = ort_run(opt / f"{part}.onnx", x)  # (n, 512)
        c = cos(got, want)
        assert got.shape == want.shape and c.min() >= 0.99999, (key, c)
        assert np.abs(got - want).max() < 1e-3, key
    # at its real length the text embedding is the one at 77 positions, optimised too
    full, short = (ort_run(opt / "text.onnx", real_inputs[k]) for k in ("text", "text_real_length"))
    assert cos(short, full[[0, 2, 3]]).min() >= 0.99999


def test_runs_in_onnxruntime_web(folders, real_inputs):
    src, opt = folders
    for part, x in (("image", real_inputs["image"]), ("text", real_inputs["text"]),
                    ("text", real_inputs["text_real_length"])):
        res = ort_web.run({"opt": opt / f"{part}.onnx"}, [ort_web.Feed("opt", "input", "output", x)])
        got, want = res["outputs"][0], ort_run(src / f"{part}.onnx", x)  # web optimised vs native source
        assert res["versions"]["web"] == "1.30.0" and got.shape == want.shape == (len(x), 512)
        assert cos(got, want).min() >= 0.99999
    fid = _manifest(opt)["optimized"]["fidelity"]
    assert set(fid["web"]) == set(fid["native"]) == {"image", "text", "text_real_length"}
    for engine in ("web", "native"):
        for v in fid[engine].values():
            assert v["cos_min"] >= 0.99999 and 0.0 <= v["max_abs"] < 1e-3


def test_report_rows(folders, capsys):
    src, opt = folders
    assert run_cli("models", "report", src, opt, "--runs", "1") == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines() if "ort-web" in line] == ["ort-web"]
    r = json.loads((opt / "report.json").read_text())
    assert r["variant"] == "fp32-opt" and r["source"] == "tiny-reference"
    for key in ("vs_source", "vs_source_web"):
        vs = r[key]
        assert vs["image"]["cos_min"] >= 0.99999 and vs["text"]["cos_min"] >= 0.99999
        assert vs["zero_shot_top1_agreement"] == 1.0
        assert 0.0 <= vs["max_abs"]["image"] < 1e-3 and 0.0 <= vs["max_abs"]["text"] < 1e-3
    assert r["vs_source_web"]["engine"].startswith("onnxruntime-web 1.30.0 wasm")
    assert "vs_source_web" not in json.loads((src / "report.json").read_text())  # only for optimised variants
    summary = _manifest(opt)["report"]
    assert summary["web_image_cosine_min"] >= 0.99999 and summary["web_text_cosine_min"] >= 0.99999


def test_not_a_model_folder(tmp_path, capsys):
    bad = tmp_path / "photos"
    bad.mkdir()
    (bad / "cat.jpg").write_bytes(_photo_jpeg())
    for src in (bad, tmp_path / "missing"):
        assert run_cli("models", "optimize", src, tmp_path / "out") == 2
        line = error_line(capsys.readouterr().err)
        assert ("no manifest.json here" in line) if src == bad else ("no such model folder" in line), line
        assert not (tmp_path / "out").exists() and no_temp_files(tmp_path) == []


def test_refuses_an_op_the_wasm_build_lacks(folders, tmp_path, monkeypatch, capsys):
    """A graph with an op onnxruntime-web has no wasm kernel for (Rfft: a com.microsoft op with a
    schema, so only running it in the wasm build can tell) is refused, by name, leaving nothing."""
    src, _ = folders
    real_fuse = optimize.fuse

    def fuse_then_break(model, heads, hidden, causal):
        fused = real_fuse(model, heads, hidden, causal)
        gelu = next(n for n in fused.graph.node if n.op_type == "QuickGelu")
        gelu.op_type = "Rfft"
        del gelu.attribute[:]
        return fused

    monkeypatch.setattr(optimize, "fuse", fuse_then_break)
    dest = tmp_path / "broken-opt"
    assert run_cli("models", "optimize", src, dest) == 2
    line = error_line(capsys.readouterr().err)
    assert "onnxruntime-web 1.30.0's wasm build has no kernel for Rfft" in line and "nothing was written" in line
    assert not dest.exists() and no_temp_files(tmp_path) == []


def test_no_node(folders, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ort_web.shutil, "which", lambda name: None)
    assert run_cli("models", "optimize", folders[0], tmp_path / "out") == 2
    assert "needs Node.js (`node` on PATH)" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "out").exists() and no_temp_files(tmp_path) == []


def test_refuses_a_variant(folders, tmp_path, capsys):
    _, opt = folders
    assert run_cli("models", "optimize", opt, tmp_path / "again") == 2
    assert "needs a float32 model, this one is 'fp32-opt'" in error_line(capsys.readouterr().err)
    assert not (tmp_path / "again").exists()


def _one_node_model(op: str, domain: str, shape: list[int], weight: bool):
    from onnx import TensorProto, helper

    inits = [onnx.numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")] if weight else []
    node = helper.make_node(op, ["input", *(["w"] if weight else [])], ["output"], domain=domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, None)], inits)
    # IR 8: onnxruntime-web 1.30 reads IR <= 13, onnx 1.23 writes 14 by default
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14), helper.make_opsetid(domain, 1)],
                             ir_version=8)


@pytest.mark.parametrize("op, domain, shape, weight, web_says", [
    # a CUDA-only contrib op (what the fusions' Stable Diffusion options emit)
    ("NhwcConv", "com.microsoft", [1, 2, 2, 1], True, "wasm build has no kernel for NhwcConv"),
    # native CPU's NCHWc layout ops (what level 'all' writes on x86)
    ("ReorderInput", "com.microsoft.nchwc", [1, 8, 2, 2], False,
     "wasm build does not know the op com.microsoft.nchwc:ReorderInput"),
])
def test_native_only_ops_refused(tmp_path, op, domain, shape, weight, web_says):
    """Refused up front by name, before Node is asked; and onnxruntime-web itself refuses them too,
    with an error that names the op."""
    model = _one_node_model(op, domain, shape, weight)
    with pytest.raises(optimize.ToolError, match="which only native onnxruntime builds run") as caught:
        optimize.check_portable(model, tmp_path / "x.onnx")
    assert (domain if domain != "com.microsoft" else op) in str(caught.value)
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ort_web.OrtWebError, match=web_says) as caught:
        ort_web.run({"m": tmp_path / "m.onnx"}, [ort_web.Feed("m", "input", "output", np.ones(shape, np.float32))])
    assert (caught.value.op, caught.value.model) == (op, "m")
