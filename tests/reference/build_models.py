"""Build the reference CLIP models used by tests and benchmarks: random weights, no download.

    python tests/reference/build_models.py [--out DIR] [--full] [--kind KIND] [--force] [--check-determinism]

Writes DIR/tiny/ (and DIR/vit-b-32-random/ with --full), each holding
    checkpoint/     transformers `save_pretrained` (the torch oracle loads this)
    image.onnx      float32 [b,3,224,224] -> float32 [b,512]
    text.onnx       int32 [b,L<=77] -> float32 [b,512], pooled at the EOT position by an int32 ArgMax
    manifest.json   the project-wide model manifest (urls relative to it)
    build-stamp.txt hash of this script + library versions; a folder with a matching stamp is reused

Outputs are byte-identical across runs (fixed seed, deterministic export), so tests can pin them.

`--kind vit-b-16-random` (benchmarks/model_families.py) builds only that kind, by default into
.cache/reference-full/ (FULL_OUT), not .cache/reference/: that folder is served as every test's
models folder, where another model would change their default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pyapp import constants as C  # noqa: E402
from server.model_tools import export as model_export  # noqa: E402

DEFAULT_OUT = REPO / ".cache" / "reference"
FULL_OUT = REPO / ".cache" / "reference-full"  # kinds with "out": "full"; never served to tests
STAMP_NAME = "build-stamp.txt"
SEED = 20240229

# A 5x larger init spread: with transformers' default factor every image embeds almost alike
# (pairwise cosine ~0.99), which would let a broken preprocessing pass the equivalence tests.
INIT_FACTOR = 5.0

# Token ids as OpenAI's tokenizer emits them: SOT first, EOT last, zeros after. transformers
# pools at the first `eos_token_id` (or at argmax(ids) for legacy eos_token_id == 2), so eos must
# be EOT for the oracle to pool where OpenAI CLIP (and our ONNX graph) does.
_TOKEN_IDS = dict(bos_token_id=C.SOT_ID, eos_token_id=C.EOT_ID, pad_token_id=0)

KINDS = {
    "tiny": dict(
        id="tiny-reference",
        name="Tiny reference CLIP (random weights, for tests)",
        text=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2),
        vision=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2),
    ),
    # CLIPConfig() defaults are the ViT-B/32 architecture: realistic compute for benchmarks.
    "vit-b-32-random": dict(
        id="vit-b-32-random",
        name="ViT-B/32 architecture, random weights (benchmarks)",
        text={},
        vision={},
    ),
    # ViT-B/16: the ViT-B/32 defaults with 16-pixel patches (197 positions, ~4.4x the image compute).
    "vit-b-16-random": dict(
        id="vit-b-16-random",
        name="ViT-B/16 architecture, random weights (benchmarks)",
        text={},
        vision=dict(patch_size=16),
        out=FULL_OUT,
    ),
}


def _log(msg: str) -> None:
    print(f"[build_models] {msg}", flush=True)


def stamp() -> str:
    """Cache key: this script, the constants it bakes in, and the libraries that shape the bytes."""
    import onnx
    import torch
    import transformers

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(Path(model_export.__file__).read_bytes())
    consts = [C.OPENAI_DATASET_MEAN, C.OPENAI_DATASET_STD, C.IMAGE_SIZE, C.CONTEXT_LENGTH,
              C.SOT_ID, C.EOT_ID, C.VOCAB_SIZE, C.EMBED_DIM]
    h.update(repr(consts).encode())
    h.update(f"torch={torch.__version__} transformers={transformers.__version__} onnx={onnx.__version__}".encode())
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under folder (for determinism checks)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def make_model(kind: str):
    """A CLIPModel with seeded random weights and eager attention (sdpa would export differently)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    spec = KINDS[kind]
    common = dict(hidden_act="quick_gelu", initializer_factor=INIT_FACTOR)
    text = dict(vocab_size=C.VOCAB_SIZE, max_position_embeddings=C.CONTEXT_LENGTH,
                **_TOKEN_IDS, **common, **spec["text"])
    vision = {**dict(image_size=C.IMAGE_SIZE, patch_size=32, **common), **spec["vision"]}
    # transformers 5.x initialises each tower from its own sub-config's initializer_factor; the
    # top-level one alone changes nothing. Strict config types: the factor must be a float.
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=C.EMBED_DIM,
                        initializer_factor=INIT_FACTOR)
    config._attn_implementation = "eager"
    torch.manual_seed(SEED)
    model = CLIPModel(config).eval()
    if model.config.text_config.eos_token_id != C.EOT_ID:
        raise RuntimeError("transformers dropped eos_token_id; the oracle would pool elsewhere")
    return model


# The export core (wrappers, int32 EOT pooling, graph check) lives in the model tools, so
# `clip-web models export` and these reference models are the same code.
def export_onnx(model, folder: Path) -> None:
    model_export.export_onnx(model, folder, seed=SEED)


check_text_graph = model_export.check_text_graph


def write_manifest(kind: str, folder: Path) -> dict:
    spec = KINDS[kind]

    def entry(name: str, dtype: str) -> dict:
        p = folder / name
        extra = {"dynamic_sequence": True} if name == "text.onnx" else {}
        return {"url": name, "input": "input", "output": "output", "input_dtype": dtype, **extra,
                "sha256": sha256_file(p), "bytes": p.stat().st_size}

    manifest = {
        "id": spec["id"],
        "name": spec["name"],
        "variant": "fp32",
        "image": entry("image.onnx", "float32"),
        "text": entry("text.onnx", "int32"),
        "context_length": C.CONTEXT_LENGTH,
        "image_size": C.IMAGE_SIZE,
        "mean": list(C.OPENAI_DATASET_MEAN),
        "std": list(C.OPENAI_DATASET_STD),
        "embed_dim": C.EMBED_DIM,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def build_into(kind: str, folder: Path) -> None:
    """Build one model into an existing empty folder (no caching, no atomic install)."""
    import onnx
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Writing model shards" bar on every save
    folder = Path(folder)
    model = make_model(kind)
    model.save_pretrained(folder / "checkpoint")
    export_onnx(model, folder)
    onnx.checker.check_model(str(folder / "image.onnx"))
    onnx.checker.check_model(str(folder / "text.onnx"))
    check_text_graph(folder / "text.onnx")
    write_manifest(kind, folder)


def is_current(folder: Path, key: str | None = None) -> bool:
    s = Path(folder) / STAMP_NAME
    return s.is_file() and s.read_text().strip() == (key or stamp())


def _remove_stale_temps(out: Path, kind: str) -> None:
    # A killed build (SIGKILL, OOM) cannot clean up after itself; the full one leaves ~600 MB.
    for p in out.glob(f".tmp-{kind}-*"):
        if time.time() - p.stat().st_mtime > 3600:
            shutil.rmtree(p, ignore_errors=True)


def _make_readable(folder: Path) -> None:
    # mkdtemp makes the folder 0700 and safetensors writes 0600; a dev server run as another
    # user must still be able to serve the models.
    for p in [folder, *folder.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)


def install(out: Path, name: str, key: str, fill):
    """Build out/name with fill(tmp) in a temp folder beside it, stamp it with `key` and rename it
    into place, so a crash or a concurrent reader never sees a half-built model. -> fill's result."""
    target = out / name
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(out, name)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=out))
    try:
        result = fill(tmp)
        _make_readable(tmp)
        (tmp / STAMP_NAME).write_text(key + "\n")  # last: its presence means the build finished
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-old-", dir=out))
            os.replace(target, old / name)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process installed its build between our checks; keep theirs if it is current.
            if not is_current(target, key):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def build(kind: str = "tiny", out: Path | None = None, force: bool = False) -> Path:
    """Return out/kind, building it unless a folder with a current stamp is already there.

    Builds in a temp folder next to the target and renames it into place, so a crash or a
    concurrent reader never sees a half-built model.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {sorted(KINDS)}")
    out = Path(out or KINDS[kind].get("out", DEFAULT_OUT)).resolve()
    target = out / kind
    key = stamp()
    if not force and is_current(target, key):
        _log(f"{kind}: cached at {target}")
        return target

    t0 = time.perf_counter()
    install(out, kind, key, lambda tmp: build_into(kind, tmp))
    dt = time.perf_counter() - t0
    m = json.loads((target / "manifest.json").read_text())
    _log(f"{kind}: built in {dt:.1f} s -> {target} "
         f"(image.onnx {m['image']['bytes'] / 1e6:.1f} MB, text.onnx {m['text']['bytes'] / 1e6:.1f} MB)")
    return target


def check_determinism(kind: str) -> bool:
    """Build twice into fresh temp folders and compare every file's bytes."""
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        t0 = time.perf_counter()
        build_into(kind, Path(a))
        build_into(kind, Path(b))
        da, db = tree_digest(Path(a)), tree_digest(Path(b))
    same = da == db
    _log(f"{kind}: two builds {'identical' if same else 'DIFFER'} ({len(da)} files, "
         f"{time.perf_counter() - t0:.1f} s)")
    if not same:
        for name in sorted(set(da) | set(db)):
            if da.get(name) != db.get(name):
                _log(f"  differs: {name}")
    return same


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help=f"output folder (default {DEFAULT_OUT}; {FULL_OUT} for --kind vit-b-16-random)")
    ap.add_argument("--full", action="store_true", help="also build the ViT-B/32-size model (~600 MB)")
    ap.add_argument("--kind", choices=[k for k in KINDS if "out" in KINDS[k]],
                    help="build only this benchmark model (ViT-B/16 size, ~600 MB) into its own folder")
    ap.add_argument("--force", action="store_true", help="rebuild even if the cache is current")
    ap.add_argument("--check-determinism", action="store_true",
                    help="build each model twice in temp folders and compare bytes (no cache written)")
    args = ap.parse_args(argv)

    kinds = [args.kind] if args.kind else ["tiny"] + (["vit-b-32-random"] if args.full else [])
    if args.check_determinism:
        return 0 if all([check_determinism(k) for k in kinds]) else 1
    for k in kinds:
        build(k, args.out, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
