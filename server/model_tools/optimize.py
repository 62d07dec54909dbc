"""`clip-web models optimize`: an offline-optimised copy of a model folder (both encoders), kept
only if onnxruntime-web's wasm build runs it and gives the same embeddings.

How a graph is made (each step, and why):

1. onnxruntime (native) at level *basic*, saved with `optimized_model_filepath`: constant folding
   and redundant-node removal, which turn the exporter's shape arithmetic (Shape, Gather,
   Unsqueeze, Concat) into constants. Basic only: its rewrites stay within standard ONNX ops and
   do not depend on the execution provider. 'extended' adds nothing here once step 3 has run
   (measured: one Add folded), and 'all' adds NCHWc layout ops that are specific to native CPU
   builds (and slower in the wasm build, docs/engine-settings.md).
2. Attention probe: the graph is run once (native onnxruntime, one or two input shapes) with
   every attention's scores, context and additive mask as extra outputs. The shapes give the
   number of heads and the hidden size (the fusion needs them; our exports' Reshapes say -1
   heads). A mask that is exactly causal (0 on and below the diagonal, <= -1e4 above) is taken
   out of the graph, and the fused Attention gets `unidirectional=1` instead: onnxruntime's CLIP
   matcher knows only the old (Stable Diffusion) causal-mask subgraph, not transformers 5's
   Range/LessOrEqual/Where one.
3. onnxruntime.transformers' fusions for model_type 'clip' (ClipOnnxModel: BERT's LayerNorm and
   SkipLayerNorm fusions plus a CLIP attention matcher; 'bert' and 'vit' fuse no attention and
   no QuickGelu in these graphs): Attention (packed Q/K/V weights, one GEMM), LayerNormalization,
   SkipLayerNormalization (residual Add + bias + LayerNorm in one op), QuickGelu. FusionOptions
   as 'clip' sets them, except: no EmbedLayerNormalization (BERT's word+position+segment layout,
   which CLIP's embeddings are not), no Gelu approximation (it changes the numbers), and none of
   the Stable Diffusion options (NhwcConv, GroupNorm, BiasSplitGelu, packed KV: CUDA kernels).
4. Portability: the file may import only the ONNX and com.microsoft domains (ORT writes a dozen
   opset imports; unused ones are dropped), and keeps the source's IR version, I/O names,
   dtypes and dynamic axes.
5. Checks before anything is kept: onnxruntime-web 1.30's wasm build under Node (the browser's
   files) creates a session and runs both encoders (an op without a wasm kernel is refused by
   name), and the embeddings of the optimised and the source model agree to cosine >= 0.99999,
   in onnxruntime-web and in native onnxruntime, on the report's probe images and texts (at 77
   positions and at their real length), a 77-token text and the literal "<|endoftext|>".
"""

from __future__ import annotations

import collections
import copy
import tempfile
from pathlib import Path

import numpy as np

from .common import (PARTS, ToolError, check_io, load_onnx, local_file, need, quiet_root_logger, read_manifest,
                     require_fp32, save_onnx, staged_folder, variant_manifest, tokenizer_file, write_manifest)

COS_MIN = 0.99999
ALLOWED_DOMAINS = ("", "ai.onnx", "com.microsoft")
# Ops the fusions can emit that only native builds have (CUDA or NCHWc layouts): refused before
# Node is even asked, with a reason that names them.
NATIVE_ONLY_OPS = {"NhwcConv", "GroupNorm", "SkipGroupNorm", "BiasSplitGelu", "BiasAdd", "ReorderInput",
                   "ReorderOutput"}
CAUSAL_MASKED = -1e4  # onnxruntime's Attention masks with mask_filter_value = -10000 when unidirectional
VARIANT = "fp32-opt"


def op_counts(model) -> dict[str, int]:
    """{'Attention': 12, ...} sorted by name (ONNX and com.microsoft op names do not clash here)."""
    return dict(sorted(collections.Counter(n.op_type for n in model.graph.node).items()))


# --- 1. native onnxruntime, level basic --------------------------------------------------------


def basic_pass(src: Path, work: Path):
    """The model after onnxruntime's portable 'basic' rewrites (constant folding etc.)."""
    ort, onnx = need("onnxruntime", "onnx", feature="clip-web models optimize")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(work)
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for invalid graphs
        raise ToolError(f"{src}: onnxruntime cannot load it ({exc})") from exc
    return onnx.load(str(work))


# --- 2. attention probe ----------------------------------------------------------------------


def probe_inputs(part: str, manifest: dict) -> list[np.ndarray]:
    """Input batches for the probe: text at two lengths (a causal mask is built from the length)."""
    from pyapp import constants as C

    if part == "image":
        s = manifest["image_size"]
        return [np.random.default_rng(0).standard_normal((1, 3, s, s)).astype(np.float32)]  # (1, 3, S, S)
    dtype = np.int64 if manifest["text"]["input_dtype"] == "int64" else np.int32
    lengths = (5, 11) if manifest["text"].get("dynamic_sequence") else (manifest["context_length"],)
    batches = []
    for n in lengths:
        ids = np.zeros((2, n), dtype=dtype)  # (2, n)
        ids[:, 0], ids[:, 1:n - 1], ids[:, n - 1] = C.SOT_ID, 320, C.EOT_ID
        batches.append(ids)
    return batches


def _attention_sites(model) -> list[dict]:
    """Per Softmax: its scores input, its context (the MatMul by V), and the additive mask when
    the scores come through Add(scores, mask)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    consumers = collections.defaultdict(list)
    for n in model.graph.node:
        for i in n.input:
            consumers[i].append(n)
    sites = []
    for n in model.graph.node:
        if n.op_type != "Softmax":
            continue
        context = [c for c in consumers[n.output[0]] if c.op_type == "MatMul" and c.input[0] == n.output[0]]
        site = {"softmax": n, "scores": n.input[0], "context": context[0].output[0] if len(context) == 1 else None,
                "add": None, "mask": None}
        add = producer.get(n.input[0])
        if add is not None and add.op_type == "Add":
            # The mask is the addend not computed from Q.K (a Mul/Div/MatMul of the scores).
            scores = [i for i in add.input if i in producer and producer[i].op_type in ("Mul", "Div", "MatMul")]
            masks = [i for i in add.input if i not in scores]
            if len(scores) == 1 and len(masks) == 1:
                site.update(add=add, scores=scores[0], mask=masks[0])
        sites.append(site)
    return sites


def _is_causal(mask: np.ndarray, length: int) -> bool:
    """mask broadcast to (..., L, L): exactly 0 where key <= query, masked (<= -1e4) above."""
    try:
        m = np.broadcast_to(mask, (*mask.shape[:-2], length, length))
    except ValueError:
        return False
    above = np.triu(np.ones((length, length), dtype=bool), k=1)  # (L, L)
    return bool(np.all(m[..., ~above] == 0) and np.all(m[..., above] <= CAUSAL_MASKED))


def probe_attention(model, part: str, manifest: dict) -> dict:
    """{'sites', 'heads', 'hidden', 'causal'}: what the fusion needs to know, measured."""
    ort, onnx = need("onnxruntime", "onnx", feature="clip-web models optimize")
    sites = _attention_sites(model)
    if not sites:
        return {"sites": [], "heads": 0, "hidden": 0, "causal": False}
    probe = copy.deepcopy(model)
    wanted = []
    for s in sites:
        wanted += [s["scores"], *([s["context"]] if s["context"] else []), *([s["mask"]] if s["mask"] else [])]
    wanted = list(dict.fromkeys(w for w in wanted if w not in {o.name for o in probe.graph.output}))
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(w, onnx.TensorProto.FLOAT, None) for w in wanted)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    heads, head_dims, causal = set(), set(), []
    for x in probe_inputs(part, manifest):
        values = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x})))
        length = x.shape[-1] if part == "text" else None
        for s in sites:
            scores = values[s["scores"]]  # (b, heads, L, L)
            heads.add(scores.shape[1] if scores.ndim == 4 else 0)
            if s["context"]:
                ctx = values[s["context"]]  # (b, heads, L, head_dim)
                head_dims.add(ctx.shape[-1] if ctx.ndim == 4 else 0)
            if s["mask"] is not None:
                causal.append(length is not None and _is_causal(values[s["mask"]], length))
    if len(heads) != 1 or len(head_dims) != 1 or 0 in heads | head_dims:
        return {"sites": sites, "heads": 0, "hidden": 0, "causal": False}
    n_heads, head_dim = heads.pop(), head_dims.pop()
    masked = [s for s in sites if s["mask"] is not None]
    return {"sites": sites, "heads": n_heads, "hidden": n_heads * head_dim,
            # every attention masked, every mask causal at every probed length: then (and only
            # then) the masks can become `unidirectional` (a mixed graph keeps its masks)
            "causal": bool(masked) and len(masked) == len(sites) and all(causal)}


def strip_causal_masks(model, sites: list[dict]) -> None:
    """Softmax(Add(scores, causal mask)) -> Softmax(scores); the fused Attention masks instead."""
    for s in sites:
        s["softmax"].input[0] = s["scores"]


# --- 3. fusions ------------------------------------------------------------------------------


def fusion_options():
    need("onnxruntime.transformers.optimizer", feature="clip-web models optimize")
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("clip")
    options.enable_embed_layer_norm = False  # BERT's embedding layout, not CLIP's
    options.enable_gelu_approximation = False  # exact numbers, not FastGelu's tanh approximation
    for sd_only in ("enable_nhwc_conv", "enable_group_norm", "enable_skip_group_norm", "enable_bias_splitgelu",
                    "enable_packed_kv", "enable_packed_qkv", "enable_bias_add"):
        setattr(options, sd_only, False)  # Stable Diffusion's CUDA-only fusions
    return options


def fuse(model, heads: int, hidden: int, causal: bool):
    """onnxruntime.transformers' CLIP fusions; with causal, every Attention made unidirectional."""
    need("onnxruntime.transformers.optimizer", feature="clip-web models optimize")
    from onnx import helper
    from onnxruntime.transformers.optimizer import optimize_by_fusion

    with quiet_root_logger():
        fused = optimize_by_fusion(model, model_type="clip", num_heads=heads, hidden_size=hidden,
                                   optimization_options=fusion_options()).model
    if causal:
        for node in fused.graph.node:
            if node.op_type == "Attention":
                node.attribute.append(helper.make_attribute("unidirectional", 1))
    return fused


def tidy(model, source) -> None:
    """Only the opset imports the nodes use; the source's IR version and producer."""
    used = {n.domain for n in model.graph.node}
    keep = [o for o in model.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    model.ir_version = source.ir_version


def check_portable(model, path: Path) -> None:
    bad_domains = sorted({n.domain for n in model.graph.node} - set(ALLOWED_DOMAINS))
    native = sorted({n.op_type for n in model.graph.node} & NATIVE_ONLY_OPS)
    if bad_domains or native:
        what = ", ".join([*(f"ops of domain {d!r}" for d in bad_domains), *native])
        raise ToolError(f"{path}: the optimised graph has {what}, which only native onnxruntime builds run; "
                        "nothing was written")


def _inputs_of(model) -> list:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def optimize_model_file(src: Path, part: str, manifest: dict, work_dir: Path) -> tuple[object, dict]:
    """(optimised ModelProto, what was done) for one encoder file."""
    source = load_onnx(src)
    check_io(source, src, manifest[part]["input"], manifest[part]["output"])
    basic = basic_pass(src, work_dir / f"{part}.basic.onnx")
    probe = probe_attention(basic, part, manifest)
    if probe["causal"]:
        strip_causal_masks(basic, probe["sites"])
    # The fusion needs heads and hidden size; without them (no attention found) it still fuses
    # LayerNorm, SkipLayerNorm and QuickGelu.
    model = fuse(basic, probe["heads"], probe["hidden"], probe["causal"])
    attention = sum(n.op_type == "Attention" for n in model.graph.node)
    if probe["causal"] and (attention != len(probe["sites"]) or any(n.op_type == "Softmax" for n in model.graph.node)):
        # Some masked attention did not fuse: its mask is gone, so this graph is wrong. Redo it
        # with the masks in place (those attentions stay unfused).
        basic = basic_pass(src, work_dir / f"{part}.basic.onnx")
        model = fuse(basic, probe["heads"], probe["hidden"], causal=False)
        attention = sum(n.op_type == "Attention" for n in model.graph.node)
        probe["causal"] = False
    tidy(model, source)
    if [(i.name, _dims(i)) for i in _inputs_of(model)] != [(i.name, _dims(i)) for i in _inputs_of(source)] or \
            [o.name for o in model.graph.output] != [o.name for o in source.graph.output]:
        raise ToolError(f"{src}: the optimised graph changed the inputs or outputs; nothing was written")
    info = {"nodes_before": len(source.graph.node), "nodes_after": len(model.graph.node),
            "ops_before": op_counts(source), "ops_after": op_counts(model),
            "attention": {"found": len(probe["sites"]), "fused": attention, "heads": probe["heads"],
                          "hidden_size": probe["hidden"], "causal": probe["causal"]}}
    return model, info


# --- 5. checks -------------------------------------------------------------------------------

LONG_TEXT = " ".join(["a very long caption about a photo of a cat sitting on a red chair"] * 8)
EOT_TEXT = "<|endoftext|>"


def check_inputs(manifest: dict) -> dict[str, np.ndarray]:
    """Real inputs: the report's probe images through pyapp.preprocess; its texts through pyapp's
    tokenizer at 77 positions and trimmed to their real length; a 77-token text and the literal
    '<|endoftext|>' (which pyapp tokenizes as text: SOT, EOT, EOT)."""
    from pyapp.tokenizer import tokenize, trim_padding

    from .report import probe_inputs as report_inputs

    pixels, ids = report_inputs(manifest)  # (16, 3, S, S), (32, 77) int32
    extra = tokenize([LONG_TEXT, EOT_TEXT], context_length=manifest["context_length"])  # (2, 77)
    dtype = np.int64 if manifest["text"]["input_dtype"] == "int64" else np.int32
    batches = {"image": pixels, "text": np.concatenate([ids, extra]).astype(dtype)}  # (34, 77)
    if manifest["text"].get("dynamic_sequence"):
        batches["text_real_length"] = trim_padding(ids).astype(dtype)  # (32, L)
    return batches


def compare(a: np.ndarray, b: np.ndarray) -> dict:
    from .report import cosines

    return {"cos_min": float(cosines(a, b).min()), "max_abs": float(np.abs(a.astype(np.float64) - b).max())}


def fidelity(source: dict[str, Path], optimised: dict[str, Path], manifest: dict, assets_dir=None,
             log=lambda msg: None) -> dict:
    """Optimised vs source embeddings in onnxruntime-web (Node) and native onnxruntime. Raises
    OrtWebError if the wasm build cannot run an optimised file."""
    ort = need("onnxruntime", feature="clip-web models optimize")
    from . import ort_web

    batches = check_inputs(manifest)
    out = {"web": {}, "native": {}}
    for part in PARTS:
        spec = manifest[part]
        keys = [k for k in batches if k.startswith(part)]
        log(f"{part}: running source and optimised in onnxruntime-web (wasm, Node) ...")
        feeds = [ort_web.Feed(which, spec["input"], spec["output"], batches[k])
                 for k in keys for which in ("source", "optimised")]
        res = ort_web.run({"source": source[part], "optimised": optimised[part]}, feeds, assets_dir=assets_dir)
        for i, k in enumerate(keys):
            out["web"][k] = compare(res["outputs"][2 * i + 1], res["outputs"][2 * i])
        out["onnxruntime_web"] = res["versions"].get("web")
        sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                    for p in (source[part], optimised[part])]
        for k in keys:
            want, got = (s.run([spec["output"]], {spec["input"]: batches[k]})[0] for s in sessions)
            out["native"][k] = compare(got, want)
        del sessions  # two full-size sessions are ~1.5 GB
    out["onnxruntime"] = ort.__version__
    out["cos_required"] = COS_MIN
    return out


def fidelity_failures(fid: dict) -> list[str]:
    return [f"{engine} {k}: cosine {v['cos_min']:.7f}" for engine in ("web", "native")
            for k, v in fid[engine].items() if not v["cos_min"] >= COS_MIN]


# --- the folder ------------------------------------------------------------------------------


def optimize_folder(source_dir: Path, to: Path, force: bool = False, assets_dir: Path | None = None,
                    log=lambda msg: None) -> dict:
    """Model folder -> `to` with optimised copies of both encoders and a `-opt` manifest."""
    from . import ort_web

    need("onnxruntime", "onnx", "onnxruntime.transformers.optimizer", feature="clip-web models optimize")
    source_dir = Path(source_dir)
    source = read_manifest(source_dir)
    require_fp32(source_dir, source, "graph optimisation")
    inputs = {part: local_file(source_dir, source, part) for part in PARTS}
    tokenizer_file(source_dir, source)  # a missing tokenizer file: refused before anything is written
    ort_web.node_binary(), ort_web.ort_web_dir(assets_dir)  # fail before the slow part, not after it
    with staged_folder(to, force=force) as tmp, tempfile.TemporaryDirectory(prefix="clip-web-opt-") as work:
        infos = {}
        for part in PARTS:
            log(f"{part}: optimising {inputs[part]} ...")
            model, infos[part] = optimize_model_file(inputs[part], part, source, Path(work))
            dst = tmp / source[part]["url"]
            check_portable(model, dst)
            save_onnx(model, dst)
            a = infos[part]["attention"]
            log(f"{part}: {infos[part]['nodes_before']} -> {infos[part]['nodes_after']} nodes; "
                f"attention {a['fused']}/{a['found']} fused{' (causal)' if a['causal'] else ''}")
        outputs = {part: tmp / source[part]["url"] for part in PARTS}
        try:
            fid = fidelity(inputs, outputs, source, assets_dir=assets_dir, log=log)
        except ort_web.OrtWebError as exc:
            raise ToolError(f"refusing to write {to}: {exc}; nothing was written") from exc
        bad = fidelity_failures(fid)
        if bad:
            raise ToolError(f"refusing to write {to}: the optimised model's embeddings differ from the source's "
                            f"({'; '.join(bad)}; need >= {COS_MIN}); nothing was written")
        ort = need("onnxruntime", feature="clip-web models optimize")
        manifest = variant_manifest(source, "opt", tmp, source_dir)
        manifest["variant"] = VARIANT
        manifest["name"] = f"{source['name']} [fp32, optimised graph]"
        manifest["optimized"] = {
            "by": "clip-web models optimize",
            "how": f"onnxruntime {ort.__version__} level basic, then onnxruntime.transformers fusions "
                   "(model_type clip; causal masks as unidirectional Attention)",
            **{part: infos[part] for part in PARTS},
            "fidelity": fid,
        }
        write_manifest(tmp, manifest)
    return manifest
