"""Build the tiny SigLIP reference model used by tests: random weights, no download.

    python tests/reference/build_siglip.py [--out DIR] [--full] [--force] [--check-determinism]

Writes DIR/tiny-siglip/ (default .cache/siglip/tiny-siglip; not under .cache/reference, which is
served as every other test's models folder, where a second model would change their default):
    checkpoint/     transformers `SiglipModel.save_pretrained` (the torch oracle loads this)
    spiece.model    SentencePiece unigram over nmt_nfkc, SigLIP's ids (pad 0, eos 1, unk 2, no bos),
                    trained by tests/pyapp/golden/spiece_models.py ("unigram_nmt_nfkc")
    text.onnx       int64 input_ids [b, 64] -> float32 pooler_output [b, 64] (get_text_features)
    image.onnx      float32 pixel_values [b, 3, 224, 224] -> float32 pooler_output [b, 64]
    manifest.json   the project-wide model manifest, with SigLIP's preprocess, tokenizer, scoring
    build-stamp.txt hash of this script, the tokenizer model and library versions

`--full` builds the SigLIP base patch16 224 architecture instead (SiglipConfig's defaults: text and
vision 12 layers x 768, patch 16 at 224, vocab 32,000; transformers' own init, no spreads), with the
tokenizer grown to 32,000 pieces (spiece_models.grown), into .cache/reference-full/
siglip-base-patch16-224-random (~800 MB): for benchmarks/model_families.py, never served to tests.

The text length is fixed at 64: SigLIP pools the hidden state at the last position, which for a
short text is a pad token, so padding to 64 is part of what the model computes.
Outputs are byte-identical across runs (fixed seed, deterministic export).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_HERE = Path(__file__).resolve().parent
for _p in (REPO, _HERE, REPO / "tests" / "pyapp" / "golden"):  # golden: the tokenizer's training code
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import build_models  # noqa: E402  (file helpers shared with the CLIP reference models)
import spiece_models  # noqa: E402
from server.model_tools import export as model_export  # noqa: E402

DEFAULT_OUT = REPO / ".cache" / "siglip"
FULL_OUT = REPO / ".cache" / "reference-full"  # with build_models' vit-b-16-random; not served to tests
NAME = "tiny-siglip"
FULL_NAME = "siglip-base-patch16-224-random"
STAMP_NAME = build_models.STAMP_NAME
SEED = 20240229
SPIECE = "unigram_nmt_nfkc"  # spiece_models' entry with SigLIP's trainer settings

CONTEXT_LENGTH = 64
IMAGE_SIZE = 224
PATCH_SIZE = 16
WIDTH = 64
ARCH = dict(hidden_size=WIDTH, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2)
FULL_WIDTH = 768  # SiglipConfig's defaults: google/siglip-base-patch16-224's shape
FULL_ARCH = dict(hidden_size=FULL_WIDTH, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
FULL_VOCAB = 32_000
MEAN = STD = [0.5, 0.5, 0.5]  # SiglipImageProcessorPil's defaults (SigLIP base 224)
PAD_ID = EOS_ID = 1  # SiglipTokenizer pads with "</s>", the eos
LOGIT_SCALE_LOG = math.log(10.0)  # not transformers' init (0, 0): scoring must be testable
LOGIT_BIAS = -2.5

# Spread of the random init. transformers' SigLIP init ignores initializer_factor, and with it:
# - vision: distinct images embed at cosine ~0.997 and pixel noise of 2.5/255 moves an embedding by
#   ~1e-5.5 in cosine, below the equivalence tests' tolerance. Every vision weight matrix x4:
#   distinct images at <= ~0.96 across seeds, the same noise at ~1e-3.5.
# - text: the pooled last position is a pad that attends about evenly to ~60 other pads, so a
#   one-token text embeds like the empty one (cosine 0.9998). Keys are the negated queries
#   (q.k = -|q|^2 for alike states: every position looks away from states like its own), and the
#   token embeddings x2 so the pads are alike: the pad reads the text, not the other pads.
#   Distinct texts <= ~0.94, a one-token edit moves an embedding by ~1e-1.5 (median).
VISION_SPREAD = 4.0
TOKEN_EMBED_SPREAD = 2.0

MANIFEST_PREPROCESS = {"resize": "squash", "interpolation": "bicubic", "convert_rgb": "first_over_white",
                       "crop_rounding": "floor"}

# Native onnxruntime against torch, in the build itself (the tests repeat it on real inputs).
COS_MIN = 0.99999
MAX_IR_VERSION = 10  # onnxruntime-web 1.30 reads IR <= 13; opset 14 (the CLIP export's) exports IR 7
LIBRARIES = ("torch", "transformers", "onnx", "sentencepiece")  # their versions are in the stamp


def _log(msg: str) -> None:
    print(f"[build_siglip] {msg}", flush=True)


def spiece_bytes(full: bool = False) -> bytes:
    """The tokenizer model (trained once, cached in .cache/spiece); full: grown to 32,000 pieces."""
    data = spiece_models.ensure_model(SPIECE)
    return spiece_models.grown(data, FULL_VOCAB) if full else data


def stamp(full: bool = False) -> str:
    """Cache key: this script, the export code, the tokenizer model and the libraries shaping the bytes.
    Versions come from package metadata: a cache hit imports no torch (about 0.1 s, not 3)."""
    from importlib.metadata import version

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(Path(model_export.__file__).read_bytes())
    h.update(hashlib.sha256(spiece_bytes(full)).digest())
    h.update(b"full" if full else b"")
    h.update(" ".join(f"{lib}={version(lib)}" for lib in LIBRARIES).encode())
    return h.hexdigest()


@contextlib.contextmanager
def quiet_config_warnings():
    """Saving or loading the checkpoint builds a default SiglipTextConfig, whose CLIP-like bos/eos
    ids (49406, 49407) lie outside its own 32,000-token vocab: transformers warns about its own
    defaults, not about ours. Silence transformers' warnings for the duration."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def make_model(vocab_size: int, full: bool = False):
    """A SiglipModel with seeded random weights, widened as VISION_SPREAD/TOKEN_EMBED_SPREAD say
    (full: the base architecture with transformers' init, for timing only)."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    text = dict(vocab_size=vocab_size, max_position_embeddings=CONTEXT_LENGTH,
                pad_token_id=PAD_ID, eos_token_id=EOS_ID, bos_token_id=None, **(FULL_ARCH if full else ARCH))
    vision = dict(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, **(FULL_ARCH if full else ARCH))
    config = SiglipConfig(text_config=text, vision_config=vision)
    config._attn_implementation = "eager"  # sdpa would export a different graph
    torch.manual_seed(SEED)
    model = SiglipModel(config).eval()
    with torch.no_grad():
        for p in model.vision_model.parameters() if not full else ():
            if p.dim() >= 2:  # matrices, conv kernels, the pooling head's probe; not norms or biases
                p.mul_(VISION_SPREAD)
        if not full:
            model.text_model.embeddings.token_embedding.weight.mul_(TOKEN_EMBED_SPREAD)
            for layer in model.text_model.encoder.layers:
                layer.self_attn.k_proj.weight.copy_(-layer.self_attn.q_proj.weight)
        model.logit_scale.fill_(LOGIT_SCALE_LOG)
        model.logit_bias.fill_(LOGIT_BIAS)
    return model


def wrappers(model):
    """(image encoder, text encoder): the pooled features with the I/O the manifest names."""
    import torch

    class ImageEncoder(torch.nn.Module):
        def __init__(self, siglip):
            super().__init__()
            self.siglip = siglip

        def forward(self, pixel_values):  # (b, 3, 224, 224) float32
            return self.siglip.get_image_features(pixel_values=pixel_values).pooler_output  # (b, 64)

    class TextEncoder(torch.nn.Module):
        """No attention mask: SigLIP attends to its pads (they are eos tokens), as it was trained."""

        def __init__(self, siglip):
            super().__init__()
            self.siglip = siglip

        def forward(self, input_ids):  # (b, 64) int64
            return self.siglip.get_text_features(input_ids=input_ids).pooler_output  # (b, 64)

    return ImageEncoder(model).eval(), TextEncoder(model).eval()


def example_inputs(batch: int, vocab_size: int, seed: int):
    """(pixel_values, input_ids): random pixels in [-1, 1]; tokenizer-shaped ids (text, eos, pads)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g) * 2 - 1  # (b, 3, 224, 224)
    ids = torch.full((batch, CONTEXT_LENGTH), PAD_ID, dtype=torch.int64)  # (b, 64)
    for i in range(batch):
        n = (5 + 17 * i) % (CONTEXT_LENGTH - 1)
        ids[i, :n] = torch.randint(3, vocab_size, (n,), generator=g)
        ids[i, n] = EOS_ID
    return pixels, ids


def export_onnx(model, folder: Path) -> None:
    import torch

    image_enc, text_enc = wrappers(model)
    # Batch 2 at trace time, so no shape gets specialised to a batch of 1.
    pixels, ids = example_inputs(2, model.config.text_config.vocab_size, SEED)
    common = dict(dynamo=False, opset_version=model_export.OPSET, output_names=["pooler_output"])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python values on shapes
        torch.onnx.export(image_enc, (pixels,), str(folder / "image.onnx"), input_names=["pixel_values"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "pooler_output": {0: "batch"}}, **common)
        torch.onnx.export(text_enc, (ids,), str(folder / "text.onnx"), input_names=["input_ids"],
                          dynamic_axes={"input_ids": {0: "batch"}, "pooler_output": {0: "batch"}}, **common)


def check_graph(path: Path, name: str, elem_type: int, dims: list, width: int = WIDTH) -> None:
    """Checker, IR version, and the one input/output with the manifest's names, types and shapes."""
    import onnx

    onnx.checker.check_model(str(path))
    m = onnx.load(str(path))
    if m.ir_version > MAX_IR_VERSION:
        raise RuntimeError(f"{path}: IR version {m.ir_version} > {MAX_IR_VERSION}")

    def sig(v):
        t = v.type.tensor_type
        return v.name, t.elem_type, [d.dim_param or d.dim_value for d in t.shape.dim]

    got = ([sig(v) for v in m.graph.input], [sig(v) for v in m.graph.output])
    want = ([(name, elem_type, ["batch", *dims])], [("pooler_output", onnx.TensorProto.FLOAT, ["batch", width])])
    if got != want:
        raise RuntimeError(f"{path}: inputs/outputs {got}, expected {want}")


def cosines(a, b):
    """Row-wise cosine of two (n, d) arrays."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)  # (n,)


def check_against_torch(model, folder: Path) -> dict:
    """Run both graphs in native onnxruntime on a batch of 3 (not the trace's 2) against torch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    pixels, ids = example_inputs(3, model.config.text_config.vocab_size, SEED + 1)
    with torch.no_grad():
        want = {"image": model.get_image_features(pixel_values=pixels).pooler_output.numpy(),
                "text": model.get_text_features(input_ids=ids).pooler_output.numpy()}
    feeds = {"image": {"pixel_values": pixels.numpy()}, "text": {"input_ids": ids.numpy()}}
    report = {}
    for part in ("image", "text"):
        sess = ort.InferenceSession(str(folder / f"{part}.onnx"), providers=["CPUExecutionProvider"])
        (got,) = sess.run(None, feeds[part])
        cos = float(cosines(got, want[part]).min())
        report[part] = (cos, float(np.abs(got - want[part]).max()), float(np.abs(want[part]).max()))
        if not cos >= COS_MIN:
            raise RuntimeError(f"{part}.onnx differs from torch: cosine {cos}")
    return report


def write_manifest(model, folder: Path, full: bool = False) -> dict:
    def entry(name: str, input_name: str, dtype: str, **extra) -> dict:
        p = folder / name
        return {"url": name, "input": input_name, "output": "pooler_output", "input_dtype": dtype, **extra,
                "sha256": build_models.sha256_file(p), "bytes": p.stat().st_size}

    spm = folder / "spiece.model"
    manifest = {
        "id": FULL_NAME if full else NAME,
        "name": ("SigLIP base patch16 224 architecture, random weights (benchmarks)" if full
                 else "Tiny SigLIP (random weights, for tests)"),
        "variant": "fp32",
        "image": entry("image.onnx", "pixel_values", "float32"),
        "text": entry("text.onnx", "input_ids", "int64", dynamic_sequence=False),
        "context_length": CONTEXT_LENGTH,
        "image_size": IMAGE_SIZE,
        "mean": list(MEAN),
        "std": list(STD),
        "preprocess": dict(MANIFEST_PREPROCESS),
        "tokenizer": {"kind": "sentencepiece", "url": spm.name, "sha256": build_models.sha256_file(spm),
                      "bytes": spm.stat().st_size, "lowercase": True, "strip_punctuation": True,
                      "eos_id": EOS_ID, "pad_id": PAD_ID},
        # exp of the float32 parameter, in double: the scale the model's forward applies.
        "scoring": {"kind": "sigmoid", "logit_scale": math.exp(float(model.logit_scale.item())),
                    "logit_bias": float(model.logit_bias.item())},
        "embed_dim": FULL_WIDTH if full else WIDTH,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def build_into(folder: Path, full: bool = False) -> dict:
    """Build into an existing empty folder (no caching); returns the ONNX-vs-torch check."""
    import onnx
    import sentencepiece
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bar on every save
    folder = Path(folder)
    data = spiece_bytes(full)
    sp = sentencepiece.SentencePieceProcessor(model_proto=data)
    if (sp.pad_id(), sp.eos_id(), sp.unk_id(), sp.bos_id()) != (0, EOS_ID, 2, -1):
        raise RuntimeError("the tokenizer model lacks SigLIP's ids (pad 0, eos 1, unk 2, no bos)")
    (folder / "spiece.model").write_bytes(data)
    model = make_model(sp.vocab_size(), full)
    with quiet_config_warnings():
        model.save_pretrained(folder / "checkpoint")
    export_onnx(model, folder)
    width = FULL_WIDTH if full else WIDTH
    check_graph(folder / "image.onnx", "pixel_values", onnx.TensorProto.FLOAT, [3, IMAGE_SIZE, IMAGE_SIZE], width)
    check_graph(folder / "text.onnx", "input_ids", onnx.TensorProto.INT64, [CONTEXT_LENGTH], width)
    report = check_against_torch(model, folder)
    write_manifest(model, folder, full)
    return report


def build(out: Path | None = None, force: bool = False, full: bool = False) -> Path:
    """Return out/tiny-siglip (full: out/siglip-base-patch16-224-random), building it unless a
    folder with a current stamp is already there.

    Built in a temp folder next to the target and renamed into place, so a crash or a concurrent
    reader never sees a half-built model.
    """
    name = FULL_NAME if full else NAME
    out = Path(out or (FULL_OUT if full else DEFAULT_OUT)).resolve()
    target = out / name
    key = stamp(full)
    if not force and build_models.is_current(target, key):
        return target

    t0 = time.perf_counter()
    report = build_models.install(out, name, key, lambda tmp: build_into(tmp, full))
    checks = ", ".join(f"{part} cosine {cos:.7f} max abs {diff:.2e} (of {scale:.1f})"
                       for part, (cos, diff, scale) in report.items())
    _log(f"built in {time.perf_counter() - t0:.1f} s -> {target}; onnxruntime vs torch: {checks}")
    return target


def check_determinism(full: bool = False) -> bool:
    """Build twice into fresh temp folders and compare every file's bytes."""
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        build_into(Path(a), full)
        build_into(Path(b), full)
        da, db = build_models.tree_digest(Path(a)), build_models.tree_digest(Path(b))
    differ = sorted(n for n in set(da) | set(db) if da.get(n) != db.get(n))
    _log(f"two builds {'DIFFER: ' + ', '.join(differ) if differ else 'identical'} ({len(da)} files)")
    return not differ


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help=f"output folder (default {DEFAULT_OUT}; {FULL_OUT} with --full)")
    ap.add_argument("--full", action="store_true",
                    help="the SigLIP base patch16 224 architecture (~800 MB) instead of the tiny model")
    ap.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    ap.add_argument("--check-determinism", action="store_true",
                    help="build twice in temp folders and compare bytes (no cache written)")
    args = ap.parse_args(argv)
    if args.check_determinism:
        return 0 if check_determinism(args.full) else 1
    target = build(args.out, force=args.force, full=args.full)
    _log(f"current at {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
