"""The half of the .pyc build that runs *inside* Pyodide (server/precompile.mjs runs it).

Only the standard library is imported: this file is executed by Pyodide's own CPython 3.12.7, so
every .pyc it writes carries exactly the magic number and bytecode the browser's interpreter
expects, whatever Python the machine has. server/precompile.py drives it and never imports it.

Each archive (the stdlib zip, a wheel) is copied entry by entry, in its own order, with every
importable ``.py`` replaced by a sourceless ``.pyc`` beside it (``json/__init__.py`` ->
``json/__init__.pyc``): zipimport and the path finder both load such a file directly, and it is
what ``pyodide py-compile`` ships. Everything else (.so files, data, metadata) is copied
unchanged. The .pyc are hash-based and unchecked (PEP 552): no mtime inside, and nothing to
check against a source that is no longer there. Zip entries get a fixed date and no compression
(the server sends the archive brotli-encoded), so the output's bytes are a function of the
input's bytes only.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import py_compile
import sys
import warnings
import zipfile

FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can record
SCRATCH = "/tmp/clip-web-pyc"  # in Pyodide's in-memory file system
HOST = "/host"  # where precompile.mjs mounts the host's root
UNCHECKED = py_compile.PycInvalidationMode.UNCHECKED_HASH


def _compile(source: bytes, dfile: str) -> bytes | None:
    """The .pyc of one module, or None when it does not compile (it then stays a .py).

    py_compile works on files, so the source goes through the in-memory /tmp. ``dfile`` is the
    path the module has once installed, so tracebacks name the same file as before."""
    src, dst = f"{SCRATCH}/module.py", f"{SCRATCH}/module.pyc"
    with open(src, "wb") as f:
        f.write(source)
    try:
        with warnings.catch_warnings():
            # SyntaxWarnings (invalid escapes in old code) would be printed on every visit too;
            # they are not ours to fix and would only bury real errors in the build's output.
            warnings.simplefilter("ignore")
            py_compile.compile(src, cfile=dst, dfile=dfile, doraise=True, invalidation_mode=UNCHECKED)
    except py_compile.PyCompileError:
        return None
    with open(dst, "rb") as f:
        return f.read()


def _is_module(name: str, wheel: bool) -> bool:
    if not name.endswith(".py"):
        return False
    # A wheel's metadata and its .data/ scripts are not imported from site-packages.
    top = name.split("/", 1)[0]
    return not (wheel and top.endswith((".dist-info", ".data")))


def _record(entries: list[tuple[zipfile.ZipInfo, bytes]], record_name: str) -> bytes:
    """A wheel's RECORD for its new contents (PEP 376/427: path, urlsafe-b64 sha256, size)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for info, data in entries:
        if info.is_dir() or info.filename == record_name:
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([info.filename, f"sha256={digest}", len(data)])
    writer.writerow([record_name, "", ""])
    return out.getvalue().encode()


def repack(src: str, dst: str, install_prefix: str, wheel: bool) -> dict:
    """Write ``dst``: ``src`` with its modules compiled. ``install_prefix`` is where the archive's
    paths live at run time (``/lib/python312.zip/`` or site-packages)."""
    entries: list[tuple[zipfile.ZipInfo, bytes]] = []
    kept: list[str] = []
    with zipfile.ZipFile(src) as zin:
        for old in zin.infolist():
            data = b"" if old.is_dir() else zin.read(old)
            name = old.filename
            if _is_module(name, wheel):
                compiled = _compile(data, install_prefix + name)
                if compiled is None:
                    kept.append(name)
                else:
                    name, data = name + "c", compiled
            info = zipfile.ZipInfo(name, FIXED_DATE)
            info.external_attr = old.external_attr
            info.compress_type = zipfile.ZIP_STORED  # sent brotli-encoded (server/precompile.py)
            entries.append((info, data))
    if wheel:
        records = [i for i, (info, _) in enumerate(entries) if info.filename.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            raise ValueError(f"{src}: expected one .dist-info/RECORD, found {len(records)}")
        info = entries[records[0]][0]
        entries[records[0]] = (info, _record(entries, info.filename))
    with zipfile.ZipFile(dst, "w") as zout:
        for info, data in entries:
            zout.writestr(info, data)
    return {
        "pyc": sum(info.filename.endswith(".pyc") for info, _ in entries),
        "kept_py": kept,
    }


def build(jobs_json: str) -> str:
    """Run the jobs ``[{src, dst, kind: 'stdlib' | 'wheel'}, ...]`` (host paths); answer JSON with per-job
    counts and the facts the host records (Python version, magic number, install paths)."""
    import importlib.util

    os.makedirs(SCRATCH, exist_ok=True)
    stdlib_zip = f"/lib/python{sys.version_info.major}{sys.version_info.minor}.zip"
    if stdlib_zip not in sys.path:
        raise RuntimeError(f"{stdlib_zip} is not on sys.path ({sys.path}): Pyodide mounts its stdlib elsewhere")
    site_packages = [p for p in sys.path if p.endswith("/site-packages")]
    if len(site_packages) != 1:
        raise RuntimeError(f"expected one site-packages on sys.path, found {site_packages}")
    prefixes = {"stdlib": stdlib_zip + "/", "wheel": site_packages[0] + "/"}
    results = []
    for job in json.loads(jobs_json):
        counts = repack(HOST + job["src"], HOST + job["dst"], prefixes[job["kind"]], job["kind"] == "wheel")
        results.append({"dst": job["dst"], **counts})
    return json.dumps({
        "python": sys.version.split()[0],
        "magic": importlib.util.MAGIC_NUMBER.hex(),
        "prefixes": prefixes,
        "jobs": results,
    })


def check_imports(names_json: str, vocab_path: str, expected_ids_json: str) -> str:
    """Import ``names`` in a Pyodide booted with the compiled stdlib and lock; answer JSON with
    every loaded module that was compiled from a source file (``from_source``: must be empty)."""
    import importlib

    for name in json.loads(names_json):
        importlib.import_module(name)
    from_source, kinds = [], {}
    for name, module in sorted(sys.modules.items()):
        spec = getattr(module, "__spec__", None)
        origin = getattr(spec, "origin", None)
        loader = type(getattr(spec, "loader", None)).__name__
        if origin in (None, "built-in", "frozen", "javascript"):
            kind = "builtin"  # C modules, frozen bootstrap modules, namespace packages, JS objects
        elif origin.endswith(".pyc") and loader in ("SourcelessFileLoader", "zipimporter"):
            kind = "pyc"
        elif origin.endswith(".so"):
            kind = "extension"
        else:
            kind = "source"
            from_source.append({"module": name, "origin": origin, "loader": loader})
        kinds[kind] = kinds.get(kind, 0) + 1
    ids = None
    if vocab_path:
        import pyapp.tokenizer as T

        ids = T.Tokenizer.from_path(vocab_path).encode("a photo of a cat")
        if ids != json.loads(expected_ids_json):
            raise RuntimeError(f"the compiled tokenizer gives {ids}, not {expected_ids_json}")
    return json.dumps({"from_source": from_source, "kinds": kinds, "ids": ids})
