"""Precompiled Python for the browser: the stdlib and every wheel of our lock, with .pyc.

Pyodide's npm ``python_stdlib.zip`` and the wheels hold ``.py`` sources only, so every visit
compiles each module it imports. This step makes, once per input, copies whose modules are
sourceless ``.pyc`` (see server/precompile_pyodide.py for how an archive is repacked), under the
Pyodide folder:

    pyc/python_stdlib.zip              loadPyodide({stdLibURL: indexURL + "pyc/python_stdlib.zip"})
    pyc/<wheel file name>              one per wheel of clip-web-lock.json, same name
    clip-web-lock-pyc.json             clip-web-lock.json with file_name "pyc/<name>" and the
                                       compiled wheels' sha256 (loadPyodide({lockFileURL}))
    pyc/.verified.json                 the stamp: inputs' and outputs' hashes, the recipe's hash

Every archive is written uncompressed (ZIP_STORED) and sent brotli- or gzip-encoded from copies
beside the runtime's others (encoded/pyodide-<v>/pyc/): brotli over the whole archive compresses
across files, so the wire carries less than per-file deflate (numpy 3.6 -> 2.6 MB, the stdlib
4.0 -> 2.9 MB), and the browser gets entries it reads in place instead of inflating each file:
zipimport reads the stdlib without zlib, and a restored snapshot writes a wheel's files without
a DecompressionStream per file (web/js/runtime/wheel-files.js).

The .pyc are made by Pyodide 0.27.7 itself, run by Node from the very files we serve
(server/precompile.mjs), so their bytecode is the browser's CPython 3.12.7's and the machine
needs no Python 3.12. Each build is then verified by booting Pyodide as a page would, with the
compiled stdlib and lock, importing what pyapp needs and failing if any of it was compiled from
a source file. The plain files and clip-web-lock.json are not touched: the browser chooses.

A rerun with the stamp current hashes ~17 MB (tens of ms). A changed input (a pin, pyapp's
sources, which change its wheel) recompiles that archive only; a changed recipe (this file,
the .mjs or the Python half) recompiles everything. Bytes are a function of the inputs.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

import brotli

from . import pins
from .assets import LOCK_NAME, STAMP_NAME, AssetError, encoded_dir
from .hashing import sha256_file

FOLDER = "pyc"
PYC_LOCK_NAME = "clip-web-lock-pyc.json"
STDLIB_NAME = "python_stdlib.zip"
SCRIPT = Path(__file__).with_name("precompile.mjs")
INNER = Path(__file__).with_name("precompile_pyodide.py")
# What a page imports, and what the verification imports under the compiled files.
VERIFY_IMPORTS = ("numpy", "PIL.Image", "pyapp", "pyapp.tokenizer", "pyapp.preprocess")
# OpenAI's ids for "a photo of a cat": the compiled tokenizer must still give them.
EXPECTED_IDS = [320, 1125, 539, 320, 2368]
# Pyodide boots take 3-6 s each on a loaded 2-core machine; a full build is about 30 s.
_TIMEOUT_S = 600


def recipe_hash() -> str:
    """The hash of everything that decides how an input becomes its compiled copy."""
    digest = hashlib.sha256(pins.PYODIDE_VERSION.encode() + b"\0")
    for path in (Path(__file__), SCRIPT, INNER):
        digest.update(sha256_file(path).encode() + b"\0")
    return digest.hexdigest()


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise AssetError(
            "cannot precompile Python for the browser: `node` is not installed. Pyodide runs under "
            "Node.js to compile its own modules. Install Node.js 18+ (Debian: `apt-get install -y "
            "nodejs npm`), then run `clip-web assets` again."
        )
    return node


def run_node(mode: str, pyodide_dir: Path, *args: str) -> dict:
    """Run one mode of precompile.mjs; its last stdout line is the JSON answer."""
    cmd = [_node(), str(SCRIPT), mode, str(pyodide_dir), *args]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AssetError(f"precompiling Python: `node precompile.mjs {mode}` took over {_TIMEOUT_S} s")
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tail = "\n    ".join((result.stderr or result.stdout).strip().splitlines()[-8:])
        raise AssetError(f"precompiling Python: `node precompile.mjs {mode}` failed (exit {result.returncode}):\n    {tail}")
    return json.loads(lines[-1])


def compile_archives(pyodide_dir: Path, jobs: list[tuple[Path, Path, str]]) -> dict:
    """Repack each (source archive, destination, 'stdlib' | 'wheel') with .pyc, in one Pyodide."""
    spec = [{"src": str(src.resolve()), "dst": str(dst.resolve()), "kind": kind} for src, dst, kind in jobs]
    return run_node("build", pyodide_dir, str(INNER), json.dumps(spec))


def verify(pyodide_dir: Path, lock_path: Path, stdlib_path: Path, vocab_path: Path) -> dict:
    """Boot Pyodide with this stdlib and lock (pyapp at boot, as the pages do), import
    VERIFY_IMPORTS, tokenize with the vocab; AssetError if any module came from a source file."""
    report = run_node("verify", pyodide_dir, str(INNER), str(lock_path.resolve()), str(stdlib_path.resolve()),
                      json.dumps(VERIFY_IMPORTS), str(vocab_path.resolve()), json.dumps(EXPECTED_IDS))
    if report["from_source"]:
        shown = "\n    ".join(f"{m['module']} ({m['origin']})" for m in report["from_source"][:10])
        raise AssetError(
            f"precompiled Python is incomplete: {len(report['from_source'])} modules were compiled "
            f"from source under {lock_path.name}:\n    {shown}\n"
            f"  Delete {lock_path.parent / FOLDER} and run `clip-web assets` again."
        )
    return report


def pyc_lock(plain_lock: dict, outputs: dict[str, str]) -> bytes:
    """clip-web-lock.json with each wheel pointed at its compiled copy (``pyc/<name>``, resolved
    against indexURL by Pyodide, like every file_name) and that copy's sha256."""
    lock = json.loads(json.dumps(plain_lock))
    for entry in lock["packages"].values():
        name = entry["file_name"]
        entry["file_name"] = f"{FOLDER}/{name}"
        entry["sha256"] = outputs[name]
    return json.dumps(lock, indent=1, sort_keys=True).encode()


def _inputs(pyodide_dir: Path, plain_lock: dict) -> dict[str, tuple[Path, str]]:
    """Output name -> (input file, kind) for the stdlib and every wheel of the lock."""
    wanted = {STDLIB_NAME: (pyodide_dir / STDLIB_NAME, "stdlib")}
    for entry in plain_lock["packages"].values():
        if not entry["file_name"].endswith(".whl"):
            raise AssetError(f"{LOCK_NAME}: {entry['name']} is not a wheel ({entry['file_name']}); cannot precompile it")
        wanted[entry["file_name"]] = (pyodide_dir / entry["file_name"], "wheel")
    return wanted


def _read_stamp(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def current_outputs(folder: Path, inputs: dict[str, str], recipe: str, stamp: dict) -> dict[str, str]:
    """The outputs (name -> sha256) that can be kept: made by this recipe from the same input
    bytes, and still intact on disk. Every other wanted output is (re)compiled."""
    if stamp.get("recipe") != recipe:
        return {}
    recorded, made_from = stamp.get("outputs", {}), stamp.get("inputs", {})
    return {name: recorded[name] for name in inputs
            if name in recorded and made_from.get(name) == inputs[name]
            and (folder / name).exists() and sha256_file(folder / name) == recorded[name]}


def ensure_precompiled(pyodide_dir: Path, vocab_path: Path, log: Callable[[str], None] = print) -> Path:
    """Make the compiled stdlib, wheels and lock current and verified; returns the lock's path."""
    folder = pyodide_dir / FOLDER
    stamp_path = folder / STAMP_NAME
    lock_path = pyodide_dir / PYC_LOCK_NAME
    plain_lock = json.loads((pyodide_dir / LOCK_NAME).read_text())
    wanted = _inputs(pyodide_dir, plain_lock)
    inputs = {name: sha256_file(src) for name, (src, _) in wanted.items()}
    recipe = recipe_hash()
    stamp = _read_stamp(stamp_path)
    current = current_outputs(folder, inputs, recipe, stamp)
    if len(current) == len(wanted) and lock_path.exists() and lock_path.read_bytes() == pyc_lock(plain_lock, current):
        encode_outputs(pyodide_dir, list(current), log)
        return lock_path

    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    # Until the new set is verified, no lock points into it: a page then finds no compiled lock,
    # never one whose sha256s belong to files being replaced. The stamp stays: it describes
    # outputs by their hashes, so what is still intact is reused if this run is cut short.
    lock_path.unlink(missing_ok=True)
    todo = [name for name in wanted if name not in current]
    made_by = {k: stamp.get(k) for k in ("python", "magic")} if current else {}
    if todo:
        jobs = [(wanted[name][0], folder / (name + ".part"), wanted[name][1]) for name in todo]
        info = compile_archives(pyodide_dir, jobs)
        for name in todo:
            part = folder / (name + ".part")
            digest = sha256_file(part)
            if (folder / name).exists() and sha256_file(folder / name) == digest:
                part.unlink()  # same bytes: keep the file and its mtime (ETags stay valid)
            else:
                part.replace(folder / name)
            current[name] = digest
        made_by = {"python": info["python"], "magic": info["magic"]}
        kept = [py for job in info["jobs"] for py in job["kept_py"]]
        log(f"precompiled {', '.join(todo)} with Python {info['python']} (magic {info['magic']})"
            + (f"; {len(kept)} files do not compile and stay .py: {kept[:5]}" if kept else ""))
    lock_data = pyc_lock(plain_lock, current)
    part_lock = lock_path.with_name(lock_path.name + ".part")
    part_lock.write_bytes(lock_data)
    try:
        report = verify(pyodide_dir, part_lock, folder / STDLIB_NAME, vocab_path)
    except AssetError:
        part_lock.unlink(missing_ok=True)
        raise
    part_lock.replace(lock_path)
    for stale in folder.iterdir():
        if stale.name not in wanted and stale.name != STAMP_NAME:
            stale.unlink()
    _write_atomic(stamp_path, json.dumps({
        "recipe": recipe,
        "pyodide": pins.PYODIDE_VERSION,
        **made_by,  # the Python that compiled them, as it reports itself, and its .pyc magic
        "inputs": inputs,
        "outputs": current,
        "lock_sha256": hashlib.sha256(lock_data).hexdigest(),
        "verified_modules": report["kinds"],
    }, indent=1, sort_keys=True).encode())
    log(f"verified precompiled Python ({report['kinds']}) in {time.perf_counter() - start:.1f}s: {lock_path.name}")
    encode_outputs(pyodide_dir, list(current), log)
    return lock_path


# Brotli at quality 9, not the runtime's 11: 1.2 s instead of 23 s for numpy's wheel, for 14% more
# bytes; these archives are rebuilt whenever pyapp's sources change.
_COPIES = {".br": lambda data: brotli.compress(data, quality=9), ".gz": lambda data: gzip.compress(data, 6, mtime=0)}


def encode_outputs(pyodide_dir: Path, names: list[str], log: Callable[[str], None] = print) -> None:
    """The compressed copies of each archive, remade when missing or older than it. A copy carries
    its source's mtime: the server sends a copy only while the two match (server.app)."""
    folder = pyodide_dir / FOLDER
    copies = encoded_dir(pyodide_dir) / FOLDER
    copies.mkdir(parents=True, exist_ok=True)
    for name in names:
        source = folder / name
        st = source.stat()
        data = None
        for suffix, compress in _COPIES.items():
            copy = copies / (name + suffix)
            if copy.exists() and copy.stat().st_mtime_ns == st.st_mtime_ns:
                continue
            data = source.read_bytes() if data is None else data
            _write_atomic(copy, compress(data))
            os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
            log(f"compressed {FOLDER}/{name} ({suffix[1:]}): {len(data)} -> {copy.stat().st_size} bytes")
    wanted = {name + suffix for name in names for suffix in _COPIES}
    for old in copies.iterdir():
        if old.name not in wanted:
            old.unlink()


def measure(pyodide_dir: Path, vocab_path: Path, rounds: int = 5) -> dict:
    """Under Node: boot + import numpy, PIL.Image, pyapp.tokenizer + parse the vocab, plain
    against precompiled, alternating; medians in ms."""
    return run_node("measure", pyodide_dir, str((pyodide_dir / LOCK_NAME).resolve()),
                    str((pyodide_dir / PYC_LOCK_NAME).resolve()), str((pyodide_dir / FOLDER / STDLIB_NAME).resolve()),
                    str(vocab_path.resolve()), str(rounds))


if __name__ == "__main__":
    import argparse

    from .assets import pyodide_dir as _pyodide_dir, vocab_path as _vocab_path
    from .settings import Settings

    parser = argparse.ArgumentParser(description="Time plain against precompiled Python under Node.")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    assets = Settings().assets_dir
    print(json.dumps(measure(_pyodide_dir(assets), _vocab_path(assets), args.rounds)["median"], indent=1))
