"""float16 weights, float32 inputs, outputs and compute: half the download, same accuracy class.

Design choice (why not a full fp16 graph): every large float32 initializer is stored as float16
and renamed `<name>__fp16`; a Cast(to=float32) node at the top of the graph recreates `<name>`, so
every consumer (subgraphs included) still sees the float32 tensor it expects and all arithmetic
stays float32. The file halves; the error is only the fp16 rounding of the weights. Engines
constant-fold the Casts at session creation, so run-time memory and speed are those of fp32.
A true fp16-compute graph (faster on WebGPU) needs per-op care (LayerNorm, Softmax overflow) and
is not what this does.

Not converted (kept float32): initializers that are also graph inputs (overridable), tiny ones
(scalars, epsilons: no size to gain), and any with a value outside float16's finite range
(e.g. a -3.4e38 attention mask would become -inf and turn `0 * mask` into NaN). Constant nodes
are left alone: exporters put weights in initializers, constants are small.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import (PARTS, check_io, load_onnx, local_file, need, read_manifest, require_fp32, save_onnx,
                     staged_folder, variant_manifest, tokenizer_file, write_manifest)

FP16_MAX = float(np.finfo(np.float16).max)  # 65504
MIN_ELEMENTS = 16  # smaller initializers stay float32: nothing to gain, and they are often epsilons
SUFFIX = "__fp16"


def convert_model(model):
    """Return (model, n_converted): float32 initializers stored as float16 + Cast nodes in front."""
    onnx = need("onnx", feature="clip-web models fp16")
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    graph_inputs = {i.name for i in graph.input}
    casts, converted = [], 0
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or init.name in graph_inputs:
            continue
        weights = numpy_helper.to_array(init)  # float32, any shape
        if weights.size < MIN_ELEMENTS or not np.all(np.abs(weights) <= FP16_MAX):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(weights.astype(np.float16), name + SUFFIX))
        casts.append(helper.make_node("Cast", [name + SUFFIX], [name], to=TensorProto.FLOAT,
                                      name=f"{name}{SUFFIX}_to_fp32"))
        converted += 1
    # Casts first: nodes must stay topologically sorted.
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    # Shape inference info for the renamed tensors is not needed; the checker validates the rest.
    onnx.checker.check_model(model)
    return model, converted


def fp16_folder(source_dir: Path, to: Path, force: bool = False, log=lambda msg: None) -> dict:
    """Model folder -> `to` with float16-weight copies of both encoders and a `-fp16` manifest."""
    source_dir = Path(source_dir)
    source = read_manifest(source_dir)
    require_fp32(source_dir, source, "fp16 conversion")
    inputs = {part: local_file(source_dir, source, part) for part in PARTS}
    tokenizer_file(source_dir, source)  # a missing tokenizer file: refused before anything is written
    models = {}
    for part in PARTS:  # check everything before writing anything
        models[part] = load_onnx(inputs[part])
        check_io(models[part], inputs[part], source[part]["input"], source[part]["output"])
    with staged_folder(to, force=force) as tmp:
        for part in PARTS:
            model, n = convert_model(models[part])
            save_onnx(model, tmp / source[part]["url"])
            log(f"{part}: {n} initializers stored as float16")
        manifest = variant_manifest(source, "fp16", tmp, source_dir)
        write_manifest(tmp, manifest)
    return manifest
