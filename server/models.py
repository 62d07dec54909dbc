"""Model manifests: one JSON shape describes a model, so a new model is data, not code.

    {"id", "name", "variant",
     "image": {"url", "input", "output", "input_dtype", ["sha256"], ["bytes"]},
     "text":  {... same ..., ["dynamic_sequence"]},   true: takes [b, L] for any L <= context_length
     "context_length", "image_size", "mean", "std", "embed_dim", ["source"], ["report"],
     ["preprocess"], ["scoring"], ["tokenizer"]}

mean/std may be null (no normalisation). "preprocess", "scoring" and "tokenizer" state how the
family prepares images, scores labels and turns texts into ids (pyapp/pipeline.py); without them a manifest describes OpenAI CLIP.

URLs are absolute, or relative to the manifest. Presets live in server/presets/; a local models
folder holds one subfolder per model, each with its own manifest.json (or a manifest.json at top).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

from pyapp.pipeline import PipelineError, image_rules, scoring, text_rules

from .settings import Settings

REQUIRED_KEYS = ("id", "name", "variant", "image", "text", "context_length", "image_size", "mean", "std", "embed_dim")
ENCODER_KEYS = ("url", "input", "output", "input_dtype")
INPUT_DTYPES = {"image": ("float32", "float16"), "text": ("int32", "int64")}


class ManifestError(ValueError):
    pass


# The model a page loads when nobody names one (and the server has no local folder). Chosen by
# measurement among the presets that are exact to PyTorch (float32 weights): Xenova's and rocca's
# ViT-B/32 fp32 files are the same size and run images equally fast (one engine, one graph size:
# docs/benchmarks.md), but Xenova's text model takes the batch's real length, where rocca's is fixed
# at 77 positions: a short prompt in 0.14x the time (full size, docs/text-latency.md).
DEFAULT_PRESET = "xenova-vit-b-32-fp32"


def validate_manifest(manifest: dict, where: str) -> dict:
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ManifestError(f"{where}: manifest lacks {', '.join(missing)}")
    for part in ("image", "text"):
        encoder = manifest[part]
        lacking = [k for k in ENCODER_KEYS if k not in encoder]
        if lacking:
            raise ManifestError(f"{where}: manifest's {part} encoder lacks {', '.join(lacking)}")
        if encoder["input_dtype"] not in INPUT_DTYPES[part]:
            raise ManifestError(
                f"{where}: {part} input_dtype {encoder['input_dtype']!r} is not one of {INPUT_DTYPES[part]}"
            )
    if not isinstance(manifest["text"].get("dynamic_sequence", False), bool):
        raise ManifestError(f"{where}: text dynamic_sequence must be true or false")
    try:
        image_rules(manifest)
        scoring(manifest)
        text_rules(manifest)
    except PipelineError as exc:
        raise ManifestError(f"{where}: {exc}") from exc
    return manifest


def load_manifest(path: Path, base_url: str) -> dict:
    """Read and validate a manifest; resolve its file URLs against base_url (the URL of its folder)."""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: not a readable JSON manifest ({exc})") from exc
    validate_manifest(manifest, str(path))
    for part in ("image", "text"):
        manifest[part] = dict(manifest[part], url=urljoin(base_url, manifest[part]["url"]))
    if manifest.get("tokenizer", {}).get("url"):  # a family's own tokenizer file (SigLIP's spiece.model)
        manifest["tokenizer"] = dict(manifest["tokenizer"], url=urljoin(base_url, manifest["tokenizer"]["url"]))
    return manifest


def local_manifest_paths(models_dir: Path) -> list[Path]:
    top = models_dir / "manifest.json"
    return ([top] if top.exists() else []) + sorted(models_dir.glob("*/manifest.json"))


def _id_of(path: Path) -> dict:
    """{"id": ...} of a refused manifest, when it has one: the page names what it can't load."""
    try:
        found = json.loads(path.read_text()).get("id")
    except (OSError, ValueError, AttributeError):
        return {}
    return {"id": found} if isinstance(found, str) else {}


def list_models(settings: Settings) -> dict:
    """Presets and the local folder's models. A local manifest that can't be used is listed under
    "refused" with the reason (naming the field), and the rest are served; a bad preset is our bug
    and fails the whole answer."""
    models, refused = [], []
    if settings.models_dir is not None:
        for path in local_manifest_paths(settings.models_dir):
            folder = path.parent.relative_to(settings.models_dir).as_posix()
            base = "/models/" + ("" if folder == "." else folder + "/")
            try:
                models.append(dict(load_manifest(path, base), origin="local"))
            except ManifestError as exc:
                where = f"{base}manifest.json"
                refused.append({"manifest": where, "error": str(exc).replace(str(path), where, 1), **_id_of(path)})
    for path in sorted(settings.presets_dir.glob("*.json")):
        models.append(dict(load_manifest(path, ""), origin="preset"))
    ids = [m["id"] for m in models]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ManifestError(f"two manifests share the id {', '.join(duplicates)}")
    # A local folder, when given, is what the user wants.
    local = [m for m in models if m["origin"] == "local"]
    default = local[0]["id"] if local else DEFAULT_PRESET
    return {"default": default, "models": models, **({"refused": refused} if refused else {})}
