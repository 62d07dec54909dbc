"""The reference under today's Pillow: OpenAI CLIP's preprocess (real torchvision transforms) run
under Pillow 13 in a separate process, on the same file bytes and in-memory images as our tests.

    from pillow_oracle import pillow13_reference
    ref = pillow13_reference(files, mode_images)   # -> OracleRun
    ref.pixel_values["i16_png_board_300x200.png"]   # float32 (3, 224, 224), or ref.errors[name]

    python tests/pyapp/pillow_oracle.py             # a table: Pillow 10.2 (this venv) vs Pillow 13

This venv holds Pillow 10.2 (Pyodide's), and one process can import only one Pillow, so the pinned
Pillow 13 wheel (tests/oracles.py `pillow_dir`, fetched on first use) is put first on sys.path of a
child process: this file, run with `--child`. That process uses this venv's torch and the pinned
torchvision's transforms (tests/pyapp/reference_transform.py `clip_transform`: OpenAI's
`_transform(224)`), on images opened from the bytes by Pillow 13 itself, so decoders are Pillow 13's too.
Beside the reference, and kept apart from it, the same process runs pyapp's preprocess_image: pyapp
must give the same tensors under Pillow 13 as under Pyodide's 10.2.

The child's answers are kept under .cache/oracles/, keyed by the sha256 of everything that can change
them (inputs, this file, reference_transform.py, image_corpus.py, pyapp's sources, the wheels' hashes,
the Python version), so a rerun costs no second process. OracleError (tests/oracles.py) says what failed and how to fix it.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
_CHILD_TIMEOUT_S = 600  # the 4000x3000 JPEG and torch's import on a busy 2-core machine: ~15 s measured


@dataclass
class OracleRun:
    """What the Pillow 13 process computed, by case name (files by name, mode images as "mode:<mode>")."""

    versions: dict  # {"pillow": ..., "pillow_file": ..., "torch": ..., "torchvision": ...}
    opened_modes: dict  # name -> the mode Pillow 13 opened it as (or built it in)
    pixel_values: dict  # name -> float32 (3, 224, 224)
    errors: dict  # name -> "ExceptionType: message", where the reference raised
    pyapp_pixel_values: dict  # name -> float32 (3, 224, 224): pyapp.preprocess_image under Pillow 13
    pyapp_errors: dict  # name -> the ClipWebError subclass's name, where pyapp refused


def mode_case_name(mode: str) -> str:
    return f"mode:{mode}"


# --------------------------------------------------------------------------------------------------
# Parent side (the test process, Pillow 10.2): never imports PIL here
# --------------------------------------------------------------------------------------------------


def _source_digest() -> str:
    h = hashlib.sha256()
    pyapp_sources = sorted((HERE.parent.parent / "pyapp").glob("*.py"))
    for path in [Path(__file__), HERE / "reference_transform.py", HERE / "image_corpus.py", *pyapp_sources]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _cache_key(files: list[tuple[str, bytes]], mode_images: list[tuple[str, bytes]], wheels: list[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"sources": _source_digest(), "wheels": wheels, "python": list(sys.version_info[:2])}).encode())
    for kind, items in (("file", files), ("mode", mode_images)):
        for name, data in items:
            h.update(f"\0{kind}\0{name}\0{len(data)}\0".encode())
            h.update(data)
    return h.hexdigest()


def _load(path: Path) -> OracleRun:
    import numpy as np  # noqa: PLC0415

    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        def arrays(prefix: str) -> dict:
            return {name: npz[f"{prefix}_{i}"] for i, name in enumerate(meta["names"]) if f"{prefix}_{i}" in npz.files}

        return OracleRun(meta["versions"], meta["opened_modes"], arrays("pv"), meta["errors"],
                         arrays("pyapp"), meta["pyapp_errors"])


def pillow13_reference(files: list[tuple[str, bytes]], mode_images: list[tuple[str, bytes]]) -> OracleRun:
    """OpenAI's preprocess under Pillow 13 of each file's bytes and of each (mode, raw) in-memory
    image (image_corpus.mode_image). Runs the child process unless its answer is cached."""
    from oracles import ORACLES_DIR, OracleError, PILLOW_VERSION, TORCHVISION, pillow_dir, pillow_spec  # noqa: PLC0415
    from reference_transform import TORCHVISION_DIR_ENV_VAR  # noqa: PLC0415

    pillow_root = pillow_dir()
    torchvision_root = os.environ.get(TORCHVISION_DIR_ENV_VAR)
    if not torchvision_root:
        from oracles import torchvision_dir  # noqa: PLC0415

        torchvision_root = str(torchvision_dir())
    wheels = [pillow_spec()["sha256"], TORCHVISION["sha256"], os.path.abspath(torchvision_root)]
    cache = ORACLES_DIR / f"pillow-{PILLOW_VERSION}-results" / f"{_cache_key(files, mode_images, wheels)}.npz"
    if cache.is_file():
        try:
            return _load(cache)
        except (OSError, ValueError, KeyError):  # a damaged cache file: compute again
            cache.unlink(missing_ok=True)

    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pillow-oracle-", dir=cache.parent) as tmp:
        inputs = Path(tmp) / "inputs"
        inputs.mkdir()
        manifest = []
        for kind, items in (("file", files), ("mode", mode_images)):
            for name, data in items:
                blob = f"{len(manifest)}.bin"
                (inputs / blob).write_bytes(data)
                manifest.append({"kind": kind, "name": name, "blob": blob})
        (inputs / "manifest.json").write_text(json.dumps(manifest))
        out = Path(tmp) / "out.npz"
        cmd = [sys.executable, str(Path(__file__)), "--child", "--pillow", str(pillow_root),
               "--torchvision", str(torchvision_root), "--inputs", str(inputs), "--out", str(out)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing ahead of Pillow 13
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(HERE.parent), str(HERE.parent.parent)])
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=_CHILD_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            raise OracleError(f"the Pillow {PILLOW_VERSION} oracle took over {_CHILD_TIMEOUT_S} s: {' '.join(cmd)}") from None
        if result.returncode != 0 or not out.is_file():
            tail = "\n    ".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            raise OracleError(f"the Pillow {PILLOW_VERSION} oracle failed (exit {result.returncode}): {' '.join(cmd)}\n    {tail}")
        run = _load(out)
        if run.versions.get("pillow") != PILLOW_VERSION:
            raise OracleError(f"the oracle process ran Pillow {run.versions.get('pillow')}, not {PILLOW_VERSION}")
        os.replace(out, cache)  # same file system: atomic, so a half-written cache is never read
    for stale in cache.parent.glob("*.npz"):  # ~80 MB each: keep only the answer for today's sources
        if stale != cache:
            stale.unlink(missing_ok=True)
    return run


# --------------------------------------------------------------------------------------------------
# Child side (Pillow 13 first on sys.path)
# --------------------------------------------------------------------------------------------------


def _child(args: argparse.Namespace) -> int:
    sys.path.insert(0, args.pillow)  # before anything imports PIL
    import numpy as np  # noqa: PLC0415
    import PIL  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    pillow_file = os.path.abspath(PIL.__file__)
    if not pillow_file.startswith(os.path.abspath(args.pillow) + os.sep):
        print(f"PIL came from {pillow_file}, not from {args.pillow}", file=sys.stderr)
        return 2

    import torch  # noqa: PLC0415

    import image_corpus  # noqa: PLC0415 - PYTHONPATH holds tests/pyapp
    import reference_transform  # noqa: PLC0415
    from pyapp.errors import ClipWebError  # noqa: PLC0415 - PYTHONPATH holds the repository
    from pyapp.preprocess import preprocess_image  # noqa: PLC0415

    T = reference_transform.load_torchvision_transforms(args.torchvision)
    preprocess = reference_transform.clip_transform(T, 224)  # OpenAI's _transform(224), genuine torchvision
    version_file = Path(args.torchvision) / "torchvision" / "version.py"
    torchvision_version = None
    for line in version_file.read_text().splitlines() if version_file.is_file() else []:
        if line.startswith("__version__"):
            torchvision_version = line.split("=", 1)[1].strip().strip("'\"")

    inputs = Path(args.inputs)
    manifest = json.loads((inputs / "manifest.json").read_text())
    names, opened_modes, errors, pyapp_errors, arrays = [], {}, {}, {}, {}
    for i, case in enumerate(manifest):
        data = (inputs / case["blob"]).read_bytes()
        name = case["name"] if case["kind"] == "file" else mode_case_name(case["name"])
        names.append(name)

        def make():
            if case["kind"] == "file":
                return Image.open(io.BytesIO(data))  # as OpenAI's preprocess(Image.open(f)) sees it
            return image_corpus.mode_image(case["name"], data)

        try:
            opened_modes[name] = make().mode
        except Exception as exc:  # noqa: BLE001 - recorded, the test decides
            errors[name] = f"{type(exc).__name__}: {exc}"
            continue
        try:
            arrays[f"pv_{i}"] = preprocess(make()).numpy().astype(np.float32, copy=False)  # (3, 224, 224)
        except Exception as exc:  # noqa: BLE001
            errors[name] = f"{type(exc).__name__}: {exc}"
        try:  # the code under test, on a fresh image: nothing the reference did can leak into it
            arrays[f"pyapp_{i}"] = preprocess_image(make())[0]  # (3, 224, 224)
        except ClipWebError as exc:
            pyapp_errors[name] = type(exc).__name__

    versions = {"pillow": PIL.__version__, "pillow_file": pillow_file, "torch": torch.__version__,
                "torchvision": torchvision_version}
    meta = {"names": names, "versions": versions, "opened_modes": opened_modes, "errors": errors,
            "pyapp_errors": pyapp_errors}
    np.savez(args.out, meta=np.array(json.dumps(meta)), **arrays)
    return 0


# --------------------------------------------------------------------------------------------------
# A look at the differences: python tests/pyapp/pillow_oracle.py
# --------------------------------------------------------------------------------------------------


def _table() -> int:
    for path in (HERE, HERE.parent, HERE.parent.parent):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import numpy as np  # noqa: PLC0415
    import PIL  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    import image_corpus  # noqa: PLC0415
    import reference_transform  # noqa: PLC0415
    from pyapp.preprocess import preprocess_image  # noqa: PLC0415

    files = image_corpus.generate_image_corpus()
    modes = image_corpus.generate_mode_images()
    ref13 = pillow13_reference(files, modes)
    T = reference_transform.load_torchvision_transforms()
    preprocess = reference_transform.clip_transform(T, 224)
    print(f"OpenAI preprocess: Pillow {PIL.__version__} (this venv) vs Pillow {ref13.versions['pillow']}; "
          f"pyapp (on Pillow {PIL.__version__}) vs Pillow {ref13.versions['pillow']}")
    print(f"{'case':36s} {'mode 10.2':9s} {'mode 13':9s} {'10.2 vs 13':28s} pyapp vs 13")
    cases = [(name, data, None) for name, data in files] + [(mode_case_name(m), raw, m) for m, raw in modes]
    for name, data, mode in cases:
        def make():
            return image_corpus.mode_image(mode, data) if mode else Image.open(io.BytesIO(data))

        def versus(compute):
            try:
                ours = compute()
            except Exception as exc:  # noqa: BLE001
                return f"raises {type(exc).__name__}" + (" (both)" if name in ref13.errors else "")
            if name in ref13.errors:
                return "13 raises"
            diff = float(np.abs(ours.astype(np.float64) - ref13.pixel_values[name]).max())
            return "identical" if np.array_equal(ours, ref13.pixel_values[name]) else f"max abs diff {diff:.4f}"

        print(f"{name:36s} {make().mode:9s} {ref13.opened_modes.get(name, '-'):9s} "
              f"{versus(lambda: preprocess(make()).numpy()):28s} {versus(lambda: preprocess_image(make())[0])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", action="store_true", help="run as the Pillow 13 process (internal)")
    parser.add_argument("--pillow")
    parser.add_argument("--torchvision")
    parser.add_argument("--inputs")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    return _child(args) if args.child else _table()


if __name__ == "__main__":
    sys.exit(main())
