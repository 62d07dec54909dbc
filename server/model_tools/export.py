"""Export a transformers CLIP checkpoint (save_pretrained folder) to our ONNX layout.

    image.onnx   float32 [b,3,S,S] -> float32 [b,D]    (input "input", output "output")
    text.onnx    int32   [b,L]     -> float32 [b,D]    pooled at argmax(ids), i.e. the EOT token
    manifest.json

The text graph has a dynamic sequence axis (L from 2 to the context length, 77), declared in the
manifest as `"dynamic_sequence": true`: the browser runs a batch only up to its last EOT, which
gives the same embedding as all 77 positions (causal mask, EOT pooling) in a fraction of the time.

Why int32 ids and our own pooling: onnxruntime-web lacked an int64 ArgMax kernel (the original JS
port failed on exactly that), so the graph argmaxes int32 ids. (onnxruntime-web 1.30, wasm and
WebGPU, runs the int64 form too, measured here; int32 costs nothing and works everywhere.)
`legacy_int64=True` exports the int64 layout on purpose (int64 ids, int64 ArgMax), to test
`fix-text-model`.

The same code builds the test reference models (tests/reference/build_models.py calls
`export_onnx` and `check_text_graph`), whose bytes are pinned: change the export, rebuild them.
torch, transformers and onnx are the optional `clip-web[models]` group, imported lazily.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from pyapp import constants as C

from .common import PARTS, ToolError, describe_file, need, staged_folder, write_manifest

IMAGE_FILE = "image.onnx"
TEXT_FILE = "text.onnx"
OPSET = 14


def _pooled(out):
    # transformers 5.x returns BaseModelOutputWithPooling from get_*_features; 4.x a tensor.
    return out.pooler_output if hasattr(out, "pooler_output") else out


def wrappers(model):
    """(image encoder, text encoder) torch modules with the I/O our manifests describe."""
    import torch

    class ImageEncoder(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, pixel_values):  # (b, 3, 224, 224) float32
            return _pooled(self.clip.get_image_features(pixel_values=pixel_values))  # (b, 512)

    class TextEncoder(torch.nn.Module):
        """OpenAI pooling: hidden state at argmax(ids), EOT being the largest id.

        The ArgMax runs on the int32 ids as given: onnxruntime-web has no int64 ArgMax kernel
        (the original JS port failed on exactly that). transformers' own pooling output is
        unused here, so the exporter drops it and ours is the graph's only ArgMax.
        """

        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, ids):  # (b, 77) int32
            hidden = self.clip.text_model(input_ids=ids).last_hidden_state  # (b, 77, width)
            eot = ids.argmax(dim=-1)  # (b,) int64 index from an int32 ArgMax
            pooled = hidden[torch.arange(hidden.shape[0]), eot]  # (b, width)
            return self.clip.text_projection(pooled)  # (b, 512)

    return ImageEncoder(model).eval(), TextEncoder(model).eval()


def example_ids(batch: int = 2, context_length: int = C.CONTEXT_LENGTH, dtype=None):
    """SOT, a few tokens, EOT, zero padding; EOT at a different position in each row."""
    import torch

    dtype = dtype or torch.int32
    ids = torch.zeros(batch, context_length, dtype=dtype)  # (b, 77)
    for i in range(batch):
        n = 3 + 4 * i
        ids[i, 0] = C.SOT_ID
        ids[i, 1:1 + n] = torch.arange(320, 320 + n, dtype=dtype)
        ids[i, 1 + n] = C.EOT_ID
    return ids


def export_onnx(model, folder: Path, *, seed: int, image_size: int = C.IMAGE_SIZE,
                context_length: int = C.CONTEXT_LENGTH, legacy_int64: bool = False,
                image_file: str = IMAGE_FILE, text_file: str = TEXT_FILE) -> None:
    """Write both encoders of a CLIPModel into folder (deterministic bytes for a given model)."""
    import torch

    image_enc, text_enc = wrappers(model)
    g = torch.Generator().manual_seed(seed)
    # Batch 2 at trace time, so no shape gets specialised to a batch of 1.
    pixels = torch.randn(2, 3, image_size, image_size, generator=g)  # (2, 3, S, S)
    ids = example_ids(2, context_length, torch.int64 if legacy_int64 else torch.int32)  # (2, L)
    common = dict(dynamo=False, opset_version=OPSET, input_names=["input"], output_names=["output"])
    batch = {"input": {0: "batch"}, "output": {0: "batch"}}
    batch_and_sequence = {"input": {0: "batch", 1: "sequence"}, "output": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        # Tracer warnings about Python bools on shapes; test_export checks every length runs right.
        warnings.simplefilter("ignore")
        torch.onnx.export(image_enc, (pixels,), str(Path(folder) / image_file), dynamic_axes=batch, **common)
        torch.onnx.export(text_enc, (ids,), str(Path(folder) / text_file), dynamic_axes=batch_and_sequence, **common)


def argmax_input_types(model) -> list[int]:
    """onnx elem types of every ArgMax's data input (shape inference fills in the types)."""
    import onnx

    m = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*m.graph.input, *m.graph.value_info]}
    return [types.get(n.input[0], onnx.TensorProto.UNDEFINED) for n in m.graph.node if n.op_type == "ArgMax"]


def sequence_is_dynamic(model) -> bool:
    """Whether a text graph's input takes any sequence length (a symbolic second dimension)."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return len(dims) == 2 and bool(dims[1].dim_param) and not dims[1].dim_value


def check_text_graph(path: Path) -> None:
    """Fail if the text graph takes anything but int32 ids or argmaxes an int64 tensor."""
    import onnx

    m = onnx.load(str(path))
    # Raise, not assert: these must hold under `python -O` too.
    if [i.type.tensor_type.elem_type for i in m.graph.input] != [onnx.TensorProto.INT32]:
        raise RuntimeError(f"{path}: text input must be int32")
    if argmax_input_types(m) != [onnx.TensorProto.INT32]:
        raise RuntimeError(f"{path}: expected exactly one ArgMax, on int32 ids")


# --- from a checkpoint folder ----------------------------------------------------------------


def load_checkpoint(checkpoint: Path):
    """CLIPModel in float32 with eager attention (sdpa exports a different, less portable graph)."""
    torch, transformers = need("torch", "transformers", feature="clip-web models export")
    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").is_file():
        raise ToolError(f"{checkpoint}: not a transformers checkpoint folder (no config.json; "
                        "expected the layout of CLIPModel.save_pretrained)")
    transformers.utils.logging.disable_progress_bar()  # a "Loading weights" bar per load otherwise
    try:
        model = transformers.CLIPModel.from_pretrained(
            str(checkpoint), attn_implementation="eager", dtype=torch.float32)
    except Exception as exc:  # transformers raises many types for a wrong folder
        raise ToolError(f"{checkpoint}: cannot load as a CLIP checkpoint ({type(exc).__name__}: {exc})") from exc
    return model.eval()


def _normalisation(checkpoint: Path) -> tuple[list[float], list[float]]:
    """mean/std from the checkpoint's preprocessor_config.json when present, else OpenAI's."""
    path = Path(checkpoint) / "preprocessor_config.json"
    if path.is_file():
        cfg = json.loads(path.read_text())
        if len(cfg.get("image_mean", [])) == 3 and len(cfg.get("image_std", [])) == 3:
            return [float(x) for x in cfg["image_mean"]], [float(x) for x in cfg["image_std"]]
    return list(C.OPENAI_DATASET_MEAN), list(C.OPENAI_DATASET_STD)


def export_checkpoint(checkpoint: Path, to: Path, *, model_id: str | None = None, name: str | None = None,
                      force: bool = False, legacy_int64: bool = False, seed: int = 0,
                      log=lambda msg: None) -> dict:
    """checkpoint folder -> `to`/{image.onnx, text.onnx, manifest.json}; returns the manifest."""
    onnx = need("onnx", feature="clip-web models export")
    checkpoint, to = Path(checkpoint), Path(to)
    model = load_checkpoint(checkpoint)
    vision, text = model.config.vision_config, model.config.text_config
    image_size, context_length = int(vision.image_size), int(text.max_position_embeddings)
    mean, std = _normalisation(checkpoint)
    model_id = model_id or to.name
    with staged_folder(to, force=force) as tmp:
        log(f"exporting {checkpoint} ({image_size} px, context {context_length}) ...")
        try:
            export_onnx(model, tmp, seed=seed, image_size=image_size, context_length=context_length,
                        legacy_int64=legacy_int64)
        except OSError:
            raise  # a full disk: the CLI says so, the staged folder is removed
        except Exception as exc:  # torch wraps tracing/export failures in many types
            raise ToolError(f"torch.onnx.export failed on {checkpoint}: {type(exc).__name__}: {exc}") from exc
        for f in (IMAGE_FILE, TEXT_FILE):
            onnx.checker.check_model(str(tmp / f))
        if not legacy_int64:
            check_text_graph(tmp / TEXT_FILE)
        entries = {"image": {"url": IMAGE_FILE, "input": "input", "output": "output", "input_dtype": "float32"},
                   "text": {"url": TEXT_FILE, "input": "input", "output": "output",
                            "input_dtype": "int64" if legacy_int64 else "int32", "dynamic_sequence": True}}
        manifest = {
            "id": model_id,
            "name": name or f"CLIP exported from {checkpoint.name}",
            "variant": "fp32",
            **{part: describe_file(tmp, entries[part]) for part in PARTS},
            "context_length": context_length,
            "image_size": image_size,
            "mean": mean,
            "std": std,
            "embed_dim": int(model.config.projection_dim),
        }
        write_manifest(tmp, manifest)
    return manifest
