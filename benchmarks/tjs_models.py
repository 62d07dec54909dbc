"""transformers.js for the side-by-side benchmark: the pinned library, fetched with `npm pack`, and our
reference weights exported in its model-folder layout. Nothing here is committed: everything lands in
the git-ignored `.cache/bench/`.

    python benchmarks/tjs_models.py [--kind tiny|vit-b-32-random] [--force]

Library (`ensure_library`): `npm pack @huggingface/transformers@TJS_VERSION` and of the onnxruntime-web
build that version pins; we keep `dist/transformers.min.js` (it bundles onnxruntime-web's JS) and the
`ort-wasm-simd-threaded.asyncify.{mjs,wasm}` pair, the files transformers.js itself picks by default in a
browser (it would fetch them from a CDN; the page points `env.backends.onnx.wasm.wasmPaths` here instead),
plus that build's `ort.webgpu.min.mjs` for the engine A/B figure (onnxruntime-web alone, same wasm).

Model folder (`ensure_model(kind)`), from the same checkpoint as our ONNX files
(`.cache/reference/<kind>/checkpoint`):
    config.json                      the CLIPModel config
    tokenizer.json, tokenizer_config.json, special_tokens_map.json
                                     transformers' CLIPTokenizer built offline from OpenAI's BPE file
    preprocessor_config.json         CLIPImageProcessor with CLIP's defaults
    onnx/vision_model.onnx           pixel_values float32 [b,3,224,224] -> image_embeds [b,512]
    onnx/text_model.onnx             input_ids int64 [b,seq] -> text_embeds [b,512]
    onnx/*_quantized.onnx            quantize_dynamic, MatMul+Gather, QUInt8 (transformers.js's "q8")
Exports: transformers' CLIPVisionModelWithProjection / CLIPTextModelWithProjection, torch.onnx
(dynamo=False, opset 14), dynamic batch (and sequence length for text), eager attention.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "tests" / "reference"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from pyapp import constants as C  # noqa: E402
from server.hashing import sha256_file  # noqa: E402

TJS_PACKAGE = "@huggingface/transformers"
TJS_VERSION = "4.3.2"  # `npm view @huggingface/transformers version` on 2026-11-28
CACHE = ROOT / ".cache" / "bench"
LIB_DIR = CACHE / "transformers-js" / TJS_VERSION
MODELS_DIR = CACHE / "tjs-models"
# Files the page loads: the library (with onnxruntime-web's JS bundled in) and the wasm pair that
# transformers.js selects by default in browsers (".asyncify", the WebGPU-capable build).
LIB_FILES = ("transformers.min.js",)
ORT_FILES = ("ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
# onnxruntime-web's own JS for that wasm pair (the engine A/B figure loads it without transformers.js)
ORT_API_FILES = ("ort.webgpu.min.mjs",)
OPSET = 14
QUANT_SUFFIX = "_quantized"  # transformers.js dtype "q8" (its default on wasm)


def _log(msg: str) -> None:
    print(f"[tjs_models] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------- library
def _npm_pack(spec: str, into: Path) -> Path:
    """`npm pack spec` into a temp folder (npm checks the registry's integrity hash), extract it."""
    into.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["npm", "pack", spec, "--json", "--pack-destination", str(into)],
                         check=True, capture_output=True, text=True, cwd=into)
    info = json.loads(out.stdout)[0]
    tgz = into / info["filename"]
    dest = into / "x"
    with tarfile.open(tgz) as tar:
        tar.extractall(dest, filter="data")
    return dest / "package", info


def ensure_library(force: bool = False) -> dict:
    """{'dir': Path, 'ort_version': str, 'files': {name: sha256}}; fetched once, then offline."""
    stamp = LIB_DIR / "stamp.json"
    if not force and stamp.is_file():
        info = json.loads(stamp.read_text())
        wanted = set(LIB_FILES + ORT_FILES + ORT_API_FILES)
        if wanted <= set(info["files"]) and all((LIB_DIR / n).is_file() for n in info["files"]):
            info["dir"] = LIB_DIR
            return info
    _log(f"npm pack {TJS_PACKAGE}@{TJS_VERSION} ...")
    with tempfile.TemporaryDirectory() as tmp:
        pkg, tjs_info = _npm_pack(f"{TJS_PACKAGE}@{TJS_VERSION}", Path(tmp) / "tjs")
        meta = json.loads((pkg / "package.json").read_text())
        if meta["version"] != TJS_VERSION:
            raise RuntimeError(f"npm gave {TJS_PACKAGE} {meta['version']}, expected {TJS_VERSION}")
        ort_version = meta["dependencies"]["onnxruntime-web"]
        _log(f"npm pack onnxruntime-web@{ort_version} (pinned by transformers.js {TJS_VERSION}) ...")
        ort_pkg, ort_info = _npm_pack(f"onnxruntime-web@{ort_version}", Path(tmp) / "ort")
        LIB_DIR.mkdir(parents=True, exist_ok=True)
        files = {}
        for name in LIB_FILES:
            shutil.copyfile(pkg / "dist" / name, LIB_DIR / name)
            files[name] = sha256_file(LIB_DIR / name)
        for name in ORT_FILES + ORT_API_FILES:
            shutil.copyfile(ort_pkg / "dist" / name, LIB_DIR / name)
            files[name] = sha256_file(LIB_DIR / name)
        (LIB_DIR / "LICENSE").write_bytes((pkg / "LICENSE").read_bytes())
    info = {"version": TJS_VERSION, "ort_version": ort_version, "files": files,
            "integrity": {TJS_PACKAGE: tjs_info.get("integrity"), "onnxruntime-web": ort_info.get("integrity")}}
    stamp.write_text(json.dumps(info, indent=1) + "\n")
    info["dir"] = LIB_DIR
    return info


# ------------------------------------------------------------------------------------- tokenizer
def bytes_to_unicode() -> dict[int, str]:
    """OpenAI's (and GPT-2's) byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def openai_vocab_and_merges(bpe_path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The vocabulary exactly as OpenAI's SimpleTokenizer builds it from the merges file."""
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    if len(vocab) != C.VOCAB_SIZE:
        raise RuntimeError(f"vocab has {len(vocab)} entries, expected {C.VOCAB_SIZE}")
    return {v: i for i, v in enumerate(vocab)}, merges


def write_tokenizer(folder: Path) -> None:
    from transformers import CLIPTokenizer

    vocab, merges = openai_vocab_and_merges(ROOT / ".assets" / "vocab" / C.BPE_VOCAB_FILENAME)
    # transformers' defaults for CLIP (as in openai/clip-vit-base-patch32): pad = unk = eos.
    tok = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=C.CONTEXT_LENGTH)
    tok.save_pretrained(str(folder))
    special = folder / "special_tokens_map.json"
    if not special.exists():  # transformers 5 keeps these in tokenizer_config.json only
        special.write_text(json.dumps({
            "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, indent=2) + "\n")
    # Sanity: the ids OpenAI's tokenizer gives (README of the reference notes).
    ids = tok("a portrait of an astronaut with the American flag")["input_ids"]
    want = [49406, 320, 5352, 539, 550, 18376, 593, 518, 2151, 4859, 49407]
    if ids != want:
        raise RuntimeError(f"built tokenizer gives {ids}, expected {want}")


def write_preprocessor(folder: Path) -> None:
    # CLIPImageProcessor's defaults are CLIP's: shortest edge 224 bicubic, centre crop 224, /255,
    # OpenAI mean/std, convert to RGB. Written as JSON directly (transformers 5 would pick a
    # torchvision/PIL backend class name that transformers.js does not need).
    cfg = {
        "crop_size": {"height": C.IMAGE_SIZE, "width": C.IMAGE_SIZE},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": list(C.OPENAI_DATASET_MEAN),
        "image_processor_type": "CLIPImageProcessor",
        "image_std": list(C.OPENAI_DATASET_STD),
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": C.IMAGE_SIZE},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(cfg, indent=2) + "\n")


# ----------------------------------------------------------------------------------------- export
def export_models(checkpoint: Path, folder: Path) -> None:
    import torch
    from transformers import CLIPTextModelWithProjection, CLIPVisionModelWithProjection
    from transformers.utils import logging as hf_logging

    from torch_reference import TorchClip

    hf_logging.set_verbosity_error()  # each tower "ignores" the other tower's weights: expected
    hf_logging.disable_progress_bar()
    onnx_dir = folder / "onnx"
    onnx_dir.mkdir(parents=True, exist_ok=True)
    vision = CLIPVisionModelWithProjection.from_pretrained(
        str(checkpoint), attn_implementation="eager", dtype=torch.float32).eval()
    text = CLIPTextModelWithProjection.from_pretrained(
        str(checkpoint), attn_implementation="eager", dtype=torch.float32).eval()

    class Vision(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):  # (b, 3, 224, 224)
            return self.m(pixel_values=pixel_values).image_embeds  # (b, 512)

    class Text(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):  # (b, seq) int64
            return self.m(input_ids=input_ids).text_embeds  # (b, 512)

    torch.manual_seed(0)
    pixels = torch.randn(2, 3, C.IMAGE_SIZE, C.IMAGE_SIZE)
    ids = torch.zeros(2, C.CONTEXT_LENGTH, dtype=torch.int64)
    ids[:, 0] = C.SOT_ID
    ids[0, 1:4] = torch.tensor([320, 1125, 539])
    ids[0, 4] = C.EOT_ID
    ids[1, 1:9] = torch.arange(400, 408)
    ids[1, 9] = C.EOT_ID
    import warnings

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Vision(vision), (pixels,), str(onnx_dir / "vision_model.onnx"), dynamo=False,
                          opset_version=OPSET, input_names=["pixel_values"], output_names=["image_embeds"],
                          dynamic_axes={"pixel_values": {0: "batch_size"}, "image_embeds": {0: "batch_size"}})
        torch.onnx.export(Text(text), (ids,), str(onnx_dir / "text_model.onnx"), dynamo=False,
                          opset_version=OPSET, input_names=["input_ids"], output_names=["text_embeds"],
                          dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                                        "text_embeds": {0: "batch_size"}})
    # Check against torch: full batch, and a short sequence (padding="longest" in transformers.js).
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    v = ort.InferenceSession(str(onnx_dir / "vision_model.onnx"), so, providers=["CPUExecutionProvider"])
    t = ort.InferenceSession(str(onnx_dir / "text_model.onnx"), so, providers=["CPUExecutionProvider"])
    # The oracle is the whole CLIPModel (as in the fidelity figures): this also proves that each
    # tower loaded every one of its weights from the CLIPModel checkpoint.
    oracle = TorchClip(checkpoint)
    want_v = oracle.image_embeds(pixels.numpy())
    want_t = oracle.text_embeds(ids.numpy())
    got_v = v.run(None, {"pixel_values": pixels.numpy()})[0]
    got_t = t.run(None, {"input_ids": ids.numpy()})[0]
    got_short = t.run(None, {"input_ids": ids[:, :12].numpy()})[0]
    for name, a, b in (("vision", got_v, want_v), ("text", got_t, want_t), ("text[:12]", got_short, want_t)):
        err = float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12))
        if err > 1e-4:
            raise RuntimeError(f"{name} export differs from torch (max rel err {err:.2e})")


def quantize(folder: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    try:
        for name in ("vision_model", "text_model"):
            quantize_dynamic(str(folder / "onnx" / f"{name}.onnx"), str(folder / "onnx" / f"{name}{QUANT_SUFFIX}.onnx"),
                             op_types_to_quantize=["MatMul", "Gather"], weight_type=QuantType.QUInt8)
    finally:
        logging.getLogger().setLevel(level)


def _model_stamp(source: Path) -> str:
    import onnxruntime
    import torch
    import transformers

    manifest = json.loads((source / "manifest.json").read_text())
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(manifest["image"]["sha256"].encode() + manifest["text"]["sha256"].encode())
    h.update(f"{torch.__version__} {transformers.__version__} {onnxruntime.__version__}".encode())
    return h.hexdigest()


def ensure_model(kind: str = "tiny", force: bool = False) -> Path:
    """The transformers.js model folder for a reference kind, built once (cached by a stamp)."""
    from torch_reference import ensure_reference_models

    source = ensure_reference_models(kind)
    target = MODELS_DIR / kind
    stamp = _model_stamp(source)
    stamp_file = target / "stamp.txt"
    if not force and stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        return target
    _log(f"building the transformers.js folder for {kind} ...")
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{kind}-", dir=MODELS_DIR))
    try:
        config = json.loads((source / "checkpoint" / "config.json").read_text())
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        write_tokenizer(tmp)
        write_preprocessor(tmp)
        export_models(source / "checkpoint", tmp)
        quantize(tmp)
        for p in [tmp, *tmp.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        (tmp / "stamp.txt").write_text(stamp + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    sizes = {p.name: p.stat().st_size for p in (target / "onnx").iterdir()}
    _log(f"{kind}: {target} " + ", ".join(f"{n} {s / 1e6:.1f} MB" for n, s in sorted(sizes.items())))
    return target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", nargs="+", default=["tiny"])
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    info = ensure_library(force=args.force)
    _log(f"library: {info['dir']} (onnxruntime-web {info['ort_version']})")
    for kind in args.kind:
        ensure_model(kind, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
