"""The Python memory snapshot that a first visit restores instead of booting Pyodide.

A browser that has no snapshot of its own yet (every first visit) would spend 3-4 s booting the
interpreter, importing the stdlib and parsing OpenAI's vocab. The snapshot made here, by Pyodide
itself under Node with the exact files the browser gets, restores in about 0.5 s. It holds the same
state the browser's own snapshot worker makes (web/js/runtime/python-snapshot.js: tokenizer
imported, vocab parsed, no compiled extension loaded).

Its name is a digest of everything that goes into it (Pyodide's version, our lock, the vocab, the
prepare step and the script), so a URL never changes meaning and can be cached forever; a change
to any input makes a new file and removes the old one. It is optional: when it is missing (no
Node, a failed build) the server says so, the pages boot normally and make their own.
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
from .hashing import sha256_file

FOLDER = "snapshots"  # under the Pyodide folder, served with it
PREFIX = "python-snapshot-"
SCRIPT = Path(__file__).with_name("make-python-snapshot.mjs")
# Brotli 5 and gzip 6, not the runtime's 11 and 9: the file is remade whenever pyapp changes,
# and for its 52 MB the top levels take minutes to gain 3% (measured: 13.6 MB at q5 in 1.6 s,
# 13.1 MB at q9 in 6.2 s; gzip 6 15.4 MB in 2.4 s).
_COPIES = {".br": lambda data: brotli.compress(data, quality=5), ".gz": lambda data: gzip.compress(data, 6, mtime=0)}


def inputs(assets_dir: Path, web_dir: Path) -> tuple[Path, Path, Path, Path]:
    """(Pyodide folder, the lock pages load by default, the vocab, the JS module with the prepare
    step) for a server. The lock is the precompiled one when `clip-web assets` built it; the stdlib
    zip that goes with a lock is fixed (see stdlib_for), so the lock stands for both."""
    from .assets import LOCK_NAME, pyodide_dir, vocab_path
    from .precompile import PYC_LOCK_NAME

    folder = pyodide_dir(assets_dir)
    lock = folder / PYC_LOCK_NAME if (folder / PYC_LOCK_NAME).exists() else folder / LOCK_NAME
    return folder, lock, vocab_path(assets_dir), web_dir / "js" / "runtime" / "python-snapshot.js"


def stdlib_for(pyodide_dir: Path, lock_path: Path) -> Path:
    """The stdlib zip a lock is served with. A snapshot holds zipimport's table of that zip's
    entries, so it must only ever be restored over the same zip."""
    from .precompile import FOLDER as PYC_FOLDER, PYC_LOCK_NAME, STDLIB_NAME

    return pyodide_dir / PYC_FOLDER / STDLIB_NAME if lock_path.name == PYC_LOCK_NAME else pyodide_dir / STDLIB_NAME


def snapshot_name(pyodide_dir: Path, lock_path: Path, vocab_path: Path, prepare_module: Path) -> str:
    digest = hashlib.sha256()
    for part in (pins.PYODIDE_VERSION, sha256_file(lock_path), sha256_file(stdlib_for(pyodide_dir, lock_path)), sha256_file(vocab_path),
                 sha256_file(prepare_module), sha256_file(SCRIPT), sha256_file(pyodide_dir / "pyodide.asm.wasm")):
        digest.update(part.encode() + b"\0")
    return f"{PREFIX}{digest.hexdigest()[:16]}.bin"


def current_snapshot(pyodide_dir: Path, lock_path: Path, vocab_path: Path, prepare_module: Path) -> str | None:
    """The snapshot's path relative to the Pyodide folder, if the one for these inputs exists."""
    try:
        name = snapshot_name(pyodide_dir, lock_path, vocab_path, prepare_module)
    except OSError:
        return None
    return f"{FOLDER}/{name}" if (pyodide_dir / FOLDER / name).exists() else None


def ensure_snapshot(pyodide_dir: Path, lock_path: Path, vocab_path: Path, prepare_module: Path,
                    log: Callable[[str], None] = print) -> Path | None:
    """Build the snapshot for the current inputs unless it exists. Returns its path, or None
    (with the reason logged) when it cannot be built: the pages then work without it."""
    name = snapshot_name(pyodide_dir, lock_path, vocab_path, prepare_module)
    folder = pyodide_dir / FOLDER
    target = folder / name
    from .assets import encoded_dir

    copies = encoded_dir(pyodide_dir) / FOLDER  # beside the runtime's other precompressed copies
    if target.exists() and all((copies / (name + s)).exists() for s in _COPIES):
        return target
    node = shutil.which("node")
    if node is None:
        log("no Python snapshot for first visits: Node.js is not installed (pages boot Pyodide instead)")
        return None
    folder.mkdir(parents=True, exist_ok=True)
    copies.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    start = time.perf_counter()
    try:
        result = subprocess.run(
            [node, str(SCRIPT), str(pyodide_dir), str(lock_path), str(stdlib_for(pyodide_dir, lock_path)), str(vocab_path),
             str(prepare_module), str(partial)],
            capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            log("no Python snapshot for first visits: building it failed: " + " / ".join(tail))
            return None
        data = partial.read_bytes()
        for suffix, compress in _COPIES.items():
            copy = copies / (name + suffix)
            tmp = copy.with_name(copy.name + ".part")
            tmp.write_bytes(compress(data))
            tmp.replace(copy)
        partial.replace(target)
        # The server sends a copy only while its mtime equals the file's (server.app).
        st = target.stat()
        for suffix in _COPIES:
            os.utime(copies / (name + suffix), ns=(st.st_atime_ns, st.st_mtime_ns))
    except (OSError, subprocess.TimeoutExpired) as exc:
        log(f"no Python snapshot for first visits: {exc}")
        return None
    finally:
        partial.unlink(missing_ok=True)
    for old in folder.glob(PREFIX + "*"):
        if old.name != name:
            old.unlink(missing_ok=True)
    for old in copies.glob(PREFIX + "*"):
        if not old.name.startswith(name):
            old.unlink(missing_ok=True)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    log(f"built the Python snapshot for first visits: {info['bytes']} bytes in {time.perf_counter() - start:.1f}s")
    return target
