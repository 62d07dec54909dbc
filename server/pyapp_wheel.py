"""Build a pure-Python wheel of ``pyapp`` for Pyodide, deterministically.

A wheel is a zip with three metadata files (PEP 427); writing it here keeps the server free of a
build backend at run time and makes the bytes a function of the sources only (fixed timestamps,
sorted entries), so the sha256 in our lock changes exactly when pyapp's code does.
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

# Must equal what pyapp imports in the browser; the lock's `depends` uses lock keys.
REQUIRES = ("numpy", "pillow", "ftfy")
FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can record


@dataclass(frozen=True)
class BuiltWheel:
    path: Path
    version: str


def _pyapp_version(package_dir: Path) -> str:
    match = re.search(r'^__version__ = "([^"]+)"', (package_dir / "__init__.py").read_text(), re.M)
    if not match:
        raise RuntimeError(f"{package_dir / '__init__.py'} defines no __version__")
    return match.group(1)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_pyapp_wheel(package_dir: Path, out_dir: Path) -> BuiltWheel:
    version = _pyapp_version(package_dir)
    dist_info = f"pyapp-{version}.dist-info"
    files: dict[str, bytes] = {}
    for path in sorted(package_dir.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
            files["pyapp/" + path.relative_to(package_dir).as_posix()] = path.read_bytes()
    metadata = "Metadata-Version: 2.1\nName: pyapp\nVersion: {}\n{}".format(
        version, "".join(f"Requires-Dist: {r}\n" for r in REQUIRES)
    )
    files[f"{dist_info}/METADATA"] = metadata.encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: clip-web\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist_info}/top_level.txt"] = b"pyapp\n"
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"pyapp-{version}-py3-none-any.whl"
    tmp = target.with_name(target.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    if target.exists() and target.read_bytes() == tmp.read_bytes():
        tmp.unlink()  # unchanged: keep the old file (and its mtime, so ETags stay valid)
    else:
        tmp.replace(target)
    return BuiltWheel(target, version)
