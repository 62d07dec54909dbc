"""Dynamic quantization of a model folder: 8-bit MatMul and Gather weights (~0.3x the bytes).

Only MatMul and Gather: that is where CLIP's weights are (projections, MLPs, the token table),
and their quantized forms (DynamicQuantizeLinear + MatMulInteger, Gather + DequantizeLinear) run
in onnxruntime-web's wasm build. Conv (the patch embedding) stays float32: ConvInteger coverage
in the web builds is patchier and the layer is small. Activations are always uint8 in dynamic
mode; the flag picks the MatMul weights' type (uint8: onnxruntime's usual choice for x86/wasm;
int8: symmetric weights, the ARM-friendly layout). onnxruntime stores the Gather tables (token and
position embeddings) as uint8 in both cases.
"""

from __future__ import annotations

from pathlib import Path

from .common import (PARTS, check_io, load_onnx, local_file, need, quiet_root_logger, read_manifest, require_fp32,
                     staged_folder, variant_manifest, tokenizer_file, write_manifest)

OP_TYPES = ["MatMul", "Gather"]
WEIGHT_TYPES = ("uint8", "int8")


def quantize_file(src: Path, dst: Path, weight_type: str = "uint8") -> None:
    q = need("onnxruntime.quantization", feature="clip-web models quantize")
    qtype = {"uint8": q.QuantType.QUInt8, "int8": q.QuantType.QInt8}[weight_type]
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    with quiet_root_logger():
        q.quantize_dynamic(str(src), str(dst), op_types_to_quantize=OP_TYPES, weight_type=qtype)


def quantize_folder(source_dir: Path, to: Path, weight_type: str = "uint8", force: bool = False,
                    log=lambda msg: None) -> dict:
    """Model folder -> `to` with quantized copies of both encoders and a `-uint8`/`-int8` manifest."""
    if weight_type not in WEIGHT_TYPES:
        raise ValueError(f"weight_type must be one of {WEIGHT_TYPES}")
    source_dir = Path(source_dir)
    source = read_manifest(source_dir)
    require_fp32(source_dir, source, "quantization")
    inputs = {part: local_file(source_dir, source, part) for part in PARTS}
    tokenizer_file(source_dir, source)  # a missing tokenizer file: refused before anything is written
    for part in PARTS:  # check everything before writing anything
        check_io(load_onnx(inputs[part]), inputs[part], source[part]["input"], source[part]["output"])
    with staged_folder(to, force=force) as tmp:
        for part in PARTS:
            quantize_file(inputs[part], tmp / source[part]["url"], weight_type)
            log(f"{part}: {inputs[part].stat().st_size / 1e6:.1f} MB -> "
                f"{(tmp / source[part]['url']).stat().st_size / 1e6:.1f} MB ({weight_type})")
        manifest = variant_manifest(source, weight_type, tmp, source_dir)
        write_manifest(tmp, manifest)
    return manifest
