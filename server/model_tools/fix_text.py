"""Repair CLIP text models whose EOT pooling argmaxes int64 ids. Older onnxruntime-web releases
have no int64 ArgMax kernel, so such a model failed to load in the browser (the original JS
port's bug). onnxruntime-web 1.30 (wasm, WebGPU) runs both forms (measured); the repaired model
runs on old and new runtimes alike, with identical outputs.

For each ArgMax on an int64 tensor:
  - if that tensor is Cast(to=int64) of an int32 tensor (an int32-input model that widens its ids),
    the ArgMax takes the int32 tensor directly;
  - otherwise a Cast(to=int32) is inserted in front of it (token ids are < 2^31, so it is exact,
    and argmax picks the same index: the EOT, the largest id).
The graph input keeps its type unless `int32_input=True`, which makes an int64 input int32 (with a
Cast back to int64 for the rest of the graph), so the browser can send an Int32Array.

The result is verified: both models run in onnxruntime on sample ids and must agree exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pyapp import constants as C

from .common import ToolError, load_onnx, need, save_onnx, staged_file

INT_TYPES = {6: "int32", 7: "int64"}  # onnx.TensorProto.INT32 / INT64


def _input_name(model, path: Path, wanted: str | None) -> str:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    names = [i.name for i in inputs]
    if wanted is None:
        if len(inputs) != 1:
            raise ToolError(f"{path}: expected one input (the token ids), found {names}; name it with --input")
        wanted = names[0]
    if wanted not in names:
        raise ToolError(f"{path}: no input named {wanted!r}; the model's inputs are {names}")
    elem = next(i for i in inputs if i.name == wanted).type.tensor_type.elem_type
    if elem not in INT_TYPES:
        raise ToolError(f"{path}: input {wanted!r} is not int32/int64 token ids (onnx type {elem}): "
                        "is this a text encoder?")
    return wanted


def _types(model) -> dict[str, int]:
    import onnx

    m = onnx.shape_inference.infer_shapes(model)
    return {v.name: v.type.tensor_type.elem_type for v in [*m.graph.input, *m.graph.value_info, *m.graph.output]}


def _widen_input(model, name: str) -> None:
    """int64 graph input -> int32 input + Cast(to=int64) feeding every former consumer."""
    from onnx import TensorProto, helper

    graph = model.graph
    wide = f"{name}__int64"
    for node in graph.node:
        node.input[:] = [wide if i == name else i for i in node.input]
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
            raise ToolError("the text model has subgraphs (If/Loop); --int32-input cannot rewrite them")
    next(i for i in graph.input if i.name == name).type.tensor_type.elem_type = TensorProto.INT32
    graph.node.insert(0, helper.make_node("Cast", [name], [wide], to=TensorProto.INT64, name=f"{name}_to_int64"))


def repair(model, input_name: str, int32_input: bool = False) -> list[str]:
    """Rewrite `model` in place; returns one line per change made."""
    from onnx import TensorProto, helper

    graph = model.graph
    changes = []
    if int32_input and _types(model)[input_name] == TensorProto.INT64:
        _widen_input(model, input_name)
        changes.append(f"input {input_name!r} is now int32 (Cast to int64 inside the graph)")
    types = _types(model)
    producers = {o: n for n in graph.node for o in n.output}
    argmaxes = [n for n in graph.node if n.op_type == "ArgMax"]
    if not argmaxes:
        raise ToolError("no ArgMax in the graph: not a CLIP text model with argmax (EOT) pooling")
    for node in argmaxes:
        src = node.input[0]
        kind = types.get(src, TensorProto.UNDEFINED)
        if kind == TensorProto.INT32:
            continue
        if kind != TensorProto.INT64:
            raise ToolError(f"ArgMax {node.name!r} takes {src!r} of onnx type {kind}, not int64 ids: "
                            "this tool only repairs int64 ArgMax on token ids")
        cast = producers.get(src)
        narrow = cast.input[0] if cast is not None and cast.op_type == "Cast" else None
        if narrow is not None and types.get(narrow) == TensorProto.INT32:
            node.input[0] = narrow
            changes.append(f"ArgMax {node.name!r} now reads the int32 {narrow!r} (was its int64 Cast)")
        else:
            cast_out = f"{src}__int32"
            at = list(graph.node).index(node)
            graph.node.insert(at, helper.make_node("Cast", [src], [cast_out], to=TensorProto.INT32,
                                                   name=f"{node.name or src}_ids_to_int32"))
            node.input[0] = cast_out
            changes.append(f"ArgMax {node.name!r}: Cast(to=int32) inserted on {src!r}")
    return changes


def sample_ids(batch: int = 6, length: int = C.CONTEXT_LENGTH, seed: int = 0) -> np.ndarray:
    """Tokenizer-shaped ids: SOT, ordinary ids, EOT at varied positions (first, middle, last)."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((batch, length), dtype=np.int64)  # (n, L)
    positions = np.linspace(1, length - 1, batch).astype(int)
    for row, pos in zip(ids, positions):
        row[0] = C.SOT_ID
        row[1:pos] = rng.integers(1, C.SOT_ID, size=pos - 1)
        row[pos] = C.EOT_ID
    return ids


def _run(path: Path, input_name: str, ids: np.ndarray) -> list[np.ndarray]:
    ort = need("onnxruntime", feature="clip-web models fix-text-model")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtype = {"tensor(int32)": np.int32, "tensor(int64)": np.int64}[
        next(i.type for i in sess.get_inputs() if i.name == input_name)]
    return sess.run(None, {input_name: ids.astype(dtype)})


def fix_text_model(src: Path, dst: Path, input_name: str | None = None, int32_input: bool = False) -> dict:
    """Repair src into dst (written only if the check passes); returns the check's report."""
    onnx = need("onnx", feature="clip-web models fix-text-model")
    from .export import argmax_input_types

    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ToolError("IN and OUT are the same file; write the repaired model elsewhere")
    model = load_onnx(src)
    name = _input_name(model, src, input_name)
    in_dtype = INT_TYPES[model.graph.input[[i.name for i in model.graph.input].index(name)].type.tensor_type.elem_type]
    changes = repair(model, name, int32_input)
    onnx.checker.check_model(model)
    left = [t for t in argmax_input_types(model) if t != onnx.TensorProto.INT32]
    if left:  # raise, not assert: the guarantee must hold under python -O
        raise ToolError(f"{src}: repair left {len(left)} ArgMax on non-int32 tensors")
    out_dtype = INT_TYPES[next(i for i in model.graph.input if i.name == name).type.tensor_type.elem_type]
    shape = next(i for i in model.graph.input if i.name == name).type.tensor_type.shape.dim
    length = shape[1].dim_value if len(shape) == 2 and shape[1].dim_value else C.CONTEXT_LENGTH
    ids = sample_ids(length=length)  # (6, L)
    with staged_file(dst) as tmp:
        save_onnx(model, tmp)
        want, got = _run(src, name, ids), _run(tmp, name, ids)
        diffs = [float(np.abs(w.astype(np.float64) - g).max()) for w, g in zip(want, got)]
        if len(want) != len(got) or max(diffs) > 0.0:
            raise ToolError(f"check failed: the repaired model differs from {src} by up to {max(diffs)}")
    return {"input": name, "input_dtype_before": in_dtype, "input_dtype_after": out_dtype, "changes": changes,
            "checked_samples": int(ids.shape[0]), "max_abs_diff": max(diffs), "int64_argmax_left": 0}
