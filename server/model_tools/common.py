"""What every model tool shares: errors, lazy imports, manifests, and writing output safely.

Output folders are built in a hidden temp folder beside the target and renamed into place at the
end, so a crash, a full disk or Ctrl-C never leaves a half-written model that `serve` would pick up.
Every byte we write ourselves goes through `write_bytes`: one place to see (and, in tests, to fail)
the file-write boundary.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import importlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ..hashing import sha256_file  # noqa: F401  (re-exported for the tools)

from ..models import ManifestError, validate_manifest

MANIFEST = "manifest.json"
PARTS = ("image", "text")


class ToolError(Exception):
    """A problem the user can act on; the CLI prints it as `clip-web: error: ...` and exits 2."""


def need(*modules: str, feature: str = "this command"):
    """Import optional dependencies lazily: the server itself must not need torch or onnx."""
    loaded = []
    for name in modules:
        try:
            loaded.append(importlib.import_module(name))
        except ImportError as exc:
            raise ToolError(
                f"{feature} needs {', '.join(modules)} (missing: {name}: {exc}). "
                "Install the optional model tools: pip install 'clip-web[models]'"
            ) from exc
    return loaded[0] if len(loaded) == 1 else loaded


@contextlib.contextmanager
def quiet_root_logger():
    """onnxruntime's quantizer and transformer optimizer log chatter through the root logger
    (every fusion, "consider pre-processing" on every call): silenced below ERROR meanwhile."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def write_bytes(path: Path, data: bytes) -> None:
    """The one writer of model/manifest bytes (see module doc)."""
    with open(path, "wb") as f:
        f.write(data)


def describe_os_error(exc: OSError, doing: str) -> str:
    if exc.errno == errno.ENOSPC:
        return f"no space left on device while {doing}; partial output was removed"
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{doing} failed: {exc.strerror or exc}{where}"


# --- manifests -------------------------------------------------------------------------------


def read_manifest(folder: Path) -> dict:
    """The manifest.json of a model folder, validated (its URLs stay as written)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise ToolError(f"{folder}: no such model folder")
    if not path.is_file():
        raise ToolError(f"{folder}: no {MANIFEST} here (expected a model folder, e.g. one made by "
                        "`clip-web models export` or `pull`)")
    try:
        manifest = json.loads(path.read_text())
        return validate_manifest(manifest, str(path))
    except (ValueError, ManifestError) as exc:
        raise ToolError(f"{path}: not a valid model manifest ({exc})") from exc


def require_fp32(folder: Path, manifest: dict, doing: str) -> None:
    # Re-quantizing a quantized model (or quantizing fp16 Casts) compounds errors silently.
    if manifest["variant"] != "fp32":
        source = manifest.get("source")
        hint = f": {source}" if isinstance(source, str) else ""
        raise ToolError(f"{folder}: {doing} needs a float32 model, this one is {manifest['variant']!r} "
                        f"(use its source{hint})")


def is_remote(url: str) -> bool:
    return "://" in url or url.startswith("/")


def file_in_folder(folder: Path, url: str, whose: str, named: str) -> Path:
    """The file a manifest's relative `url` names, which must be inside the folder and present.
    whose: "the image encoder's"; named: "image encoder" (for the messages)."""
    if ".." in Path(url).parts:
        raise ToolError(f"{folder}/{MANIFEST}: {whose} url {url!r} leaves the model folder")
    path = Path(folder) / url
    if not path.is_file():
        raise ToolError(f"{path}: missing ({named} named in {MANIFEST})")
    return path


def local_file(folder: Path, manifest: dict, part: str) -> Path:
    """The ONNX file of one encoder; tools work on local files only (pull first)."""
    url = manifest[part]["url"]
    if is_remote(url):
        raise ToolError(f"{folder}/{MANIFEST}: the {part} encoder is at {url}, not a file in the folder "
                        "(run `clip-web models pull` first)")
    return file_in_folder(folder, url, f"the {part} encoder's", f"{part} encoder")


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=2) + "\n").encode()


def write_manifest(folder: Path, manifest: dict) -> None:
    """Atomic: a reader (the server) sees the old manifest or the new one, never half of one."""
    validate_manifest(manifest, str(folder))
    replace_file(Path(folder) / MANIFEST, manifest_bytes(manifest))


def replace_file(path: Path, data: bytes, write: Callable[[Path, bytes], None] | None = None) -> None:
    """path, whole or not at all: written beside it (by `write`, else write_bytes), then renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        (write or write_bytes)(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def describe_file(folder: Path, entry: dict) -> dict:
    """entry with sha256 and bytes of the file it names (relative URL) filled in."""
    path = Path(folder) / entry["url"]
    return dict(entry, sha256=sha256_file(path), bytes=path.stat().st_size)


def tokenizer_file(folder: Path, manifest: dict) -> Path | None:
    """The model's own tokenizer file (SigLIP's spiece.model) when it is a file in the folder; None
    when the model has none or names it by an absolute URL (a variant can name the same URL)."""
    url = manifest.get("tokenizer", {}).get("url")
    if not url or is_remote(url):
        return None
    return file_in_folder(folder, url, "the tokenizer's", "the tokenizer file")


def variant_manifest(source: dict, variant: str, folder: Path, source_dir: Path | None = None) -> dict:
    """The manifest of a derived model: same files names and I/O, new id, `source` = the fp32 id.
    A tokenizer file in the source folder (source_dir) is copied beside the new encoders: the
    variant's folder is served on its own."""
    out = copy.deepcopy(source)
    out.pop("report", None)  # the source's fidelity numbers are not ours
    out["id"] = f"{source['id']}-{variant}"
    out["name"] = f"{source['name']} [{variant}]"
    out["variant"] = variant
    out["source"] = source["id"]
    for part in PARTS:
        out[part] = describe_file(folder, {k: v for k, v in source[part].items() if k not in ("sha256", "bytes")})
    tokenizer = tokenizer_file(source_dir, source) if source_dir is not None else None
    if tokenizer is not None:
        shutil.copyfile(tokenizer, Path(folder) / source["tokenizer"]["url"])
        out["tokenizer"] = describe_file(folder, {k: v for k, v in source["tokenizer"].items() if k not in ("sha256", "bytes")})
    return out


# --- ONNX files ------------------------------------------------------------------------------


def load_onnx(path: Path):
    """onnx.ModelProto, or a ToolError saying the file is not an ONNX model."""
    onnx = need("onnx", feature="reading ONNX models")
    path = Path(path)
    if not path.is_file():
        raise ToolError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not a model
        raise ToolError(f"{path}: not an ONNX model ({type(exc).__name__}: {exc})") from exc
    if not model.graph.node:
        raise ToolError(f"{path}: not an ONNX model (no graph nodes)")
    return model


def check_io(model, path: Path, input_name: str, output_name: str) -> None:
    """The manifest's I/O names must be the graph's: the browser feeds tensors by these names."""
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    outputs = [o.name for o in model.graph.output]
    if input_name not in inputs or output_name not in outputs:
        raise ToolError(f"{path}: the model has inputs {inputs} and outputs {outputs}, but the manifest "
                        f"says input {input_name!r} and output {output_name!r}")


def save_onnx(model, path: Path) -> None:
    # Serialise then write through write_bytes (models here are < 2 GB, the protobuf limit).
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_bytes(Path(path), model.SerializeToString())


# --- output folders --------------------------------------------------------------------------


@contextlib.contextmanager
def staged_folder(target: Path, force: bool = False):
    """Yield a temp folder next to `target`; on success it becomes `target`, on error it vanishes."""
    target = Path(target).resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not force:
        raise ToolError(f"{target} already exists and is not empty (use --force to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a server run as another user must read it
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-old-", dir=target.parent))
            os.replace(target, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_file(target: Path):
    """Yield a temp path next to `target`; on success it replaces `target`, on error it vanishes."""
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
