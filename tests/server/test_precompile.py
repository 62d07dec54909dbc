"""Precompiled Python (server/precompile.py): sourceless .pyc made by Pyodide's own CPython,
deterministic, consistent with the compiled lock, verified, and cheap to keep current."""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import shutil
import time
import zipfile

import brotli
import pytest

from helpers import REPO_ROOT
from server import pins
from server.assets import LOCK_NAME, STAMP_NAME, AssetError, pyodide_dir, vocab_path
from server.hashing import sha256_file
from server.precompile import (
    FOLDER,
    PYC_LOCK_NAME,
    STDLIB_NAME,
    compile_archives,
    current_outputs,
    ensure_precompiled,
    recipe_hash,
    verify,
)
from server.pyapp_wheel import build_pyapp_wheel

# CPython 3.12's .pyc magic: bytecode version 3531, then b"\r\n" (Lib/importlib/_bootstrap_external.py).
PY312_MAGIC = (3531).to_bytes(2, "little") + b"\r\n"
UNCHECKED_HASH_FLAGS = (1).to_bytes(4, "little")  # PEP 552: hash-based, source not checked


@pytest.fixture(scope="module")
def served(assets_dir):
    return pyodide_dir(assets_dir)


@pytest.fixture(scope="module")
def plain_lock(served):
    return json.loads((served / LOCK_NAME).read_text())


def _archives(served, plain_lock):
    """(plain archive, compiled archive) for the stdlib and every wheel of the lock."""
    names = [STDLIB_NAME] + [entry["file_name"] for entry in plain_lock["packages"].values()]
    return [(served / name, served / FOLDER / name) for name in names]


def test_every_module_is_a_sourceless_pyc_of_python_312(served, plain_lock):
    assert PY312_MAGIC.hex() == "cb0d0d0a"
    assert json.loads((served / FOLDER / STAMP_NAME).read_text())["magic"] == PY312_MAGIC.hex()
    for plain, compiled in _archives(served, plain_lock):
        wheel = plain.suffix == ".whl"
        with zipfile.ZipFile(plain) as a, zipfile.ZipFile(compiled) as b:
            old = {i.filename: i for i in a.infolist()}
            new = {i.filename: i for i in b.infolist()}
            modules = [n for n in old if n.endswith(".py") and not (wheel and ".dist-info/" in n)]
            assert modules, plain.name
            # Same entries, each module's .py replaced by its .pyc and nothing else.
            assert sorted(new) == sorted(n + "c" if n in modules else n for n in old), plain.name
            for name, info in new.items():
                assert info.date_time == (1980, 1, 1, 0, 0, 0), name
                data = b.read(name)
                if name.endswith(".pyc"):
                    assert data[:4] == PY312_MAGIC, (compiled.name, name)
                    assert data[4:8] == UNCHECKED_HASH_FLAGS, (compiled.name, name)
                elif not name.endswith("/RECORD"):
                    assert data == a.read(name), (compiled.name, name)  # .so, data, metadata untouched


def test_wheel_records_list_the_compiled_files(served, plain_lock):
    for entry in plain_lock["packages"].values():
        with zipfile.ZipFile(served / FOLDER / entry["file_name"]) as z:
            record_name = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
            rows = {row[0]: row[1:] for row in csv.reader(io.StringIO(z.read(record_name).decode()))}
            files = [i.filename for i in z.infolist() if not i.is_dir()]
            assert sorted(rows) == sorted(files), entry["name"]
            assert rows[record_name] == ["", ""]
            for name in files:
                if name != record_name:
                    data = z.read(name)
                    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                    assert rows[name] == [f"sha256={digest}", str(len(data))], name


def test_compiled_lock_is_the_plain_lock_pointing_at_the_compiled_files(served, plain_lock):
    lock = json.loads((served / PYC_LOCK_NAME).read_text())
    assert lock["info"] == plain_lock["info"]
    assert sorted(lock["packages"]) == sorted(plain_lock["packages"]) == ["ftfy", "numpy", "pillow", "pyapp", "wcwidth"]
    for key, entry in lock["packages"].items():
        plain = plain_lock["packages"][key]
        assert entry["file_name"] == f"{FOLDER}/{plain['file_name']}"
        # Pyodide resolves file_name against indexURL, the folder both locks are in.
        assert entry["sha256"] == sha256_file(served / entry["file_name"]) != plain["sha256"]
        assert {k: v for k, v in entry.items() if k not in ("file_name", "sha256")} == \
               {k: v for k, v in plain.items() if k not in ("file_name", "sha256")}
    stamp = json.loads((served / FOLDER / STAMP_NAME).read_text())
    assert stamp["lock_sha256"] == sha256_file(served / PYC_LOCK_NAME)
    assert stamp["recipe"] == recipe_hash() and stamp["python"] == "3.12.7"
    assert stamp["verified_modules"]["pyc"] > 200 and stamp["verified_modules"]["extension"] >= 3


def test_builds_are_deterministic(served, plain_lock, tmp_path):
    """Two separate builds, one of the stdlib, numpy and pyapp, one of pyapp's wheel alone, give
    the bytes the full build in the asset folder gave: the output depends on the input only,
    not on the run or on what else it compiled."""
    pyapp = plain_lock["packages"]["pyapp"]["file_name"]
    numpy = plain_lock["packages"]["numpy"]["file_name"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    info = compile_archives(served, [(served / STDLIB_NAME, tmp_path / "a" / STDLIB_NAME, "stdlib"),
                                     (served / numpy, tmp_path / "a" / numpy, "wheel"),
                                     (served / pyapp, tmp_path / "a" / pyapp, "wheel")])
    compile_archives(served, [(served / pyapp, tmp_path / "b" / pyapp, "wheel")])
    assert info["magic"] == PY312_MAGIC.hex() and info["python"] == "3.12.7"
    assert [job["kept_py"] for job in info["jobs"]] == [[], [], []]
    modules = [sum(n.endswith(".py") for n in zipfile.ZipFile(served / name).namelist()) for name in (STDLIB_NAME, numpy, pyapp)]
    assert [job["pyc"] for job in info["jobs"]] == modules and modules[0] == 511
    assert (tmp_path / "a" / pyapp).read_bytes() == (tmp_path / "b" / pyapp).read_bytes() \
        == (served / FOLDER / pyapp).read_bytes()
    for name in (STDLIB_NAME, numpy):
        assert sha256_file(tmp_path / "a" / name) == sha256_file(served / FOLDER / name), name


def test_verification_catches_a_module_compiled_from_source(served, assets_dir, tmp_path):
    """pyapp's compiled wheel with preprocess.pyc swapped back to preprocess.py must fail."""
    lock = json.loads((served / PYC_LOCK_NAME).read_text())
    entry = lock["packages"]["pyapp"]
    name = entry["file_name"].rsplit("/", 1)[-1]
    broken = tmp_path / name
    with zipfile.ZipFile(served / FOLDER / name) as good, zipfile.ZipFile(served / name) as plain, \
            zipfile.ZipFile(broken, "w", zipfile.ZIP_DEFLATED) as out:
        for item in good.infolist():
            if item.filename == "pyapp/preprocess.pyc":
                out.writestr("pyapp/preprocess.py", plain.read("pyapp/preprocess.py"))
            else:
                out.writestr(item, good.read(item))
    # An absolute file_name: Node's path.resolve(indexURL, file_name) takes it as it is.
    entry["file_name"] = str(broken)
    entry["sha256"] = sha256_file(broken)
    broken_lock = tmp_path / "broken-lock.json"
    broken_lock.write_text(json.dumps(lock))
    with pytest.raises(AssetError) as info:
        verify(served, broken_lock, served / FOLDER / STDLIB_NAME, vocab_path(assets_dir))
    message = str(info.value)
    assert "1 modules were compiled from source" in message
    assert "pyapp.preprocess (/lib/python3.12/site-packages/pyapp/preprocess.py)" in message


def test_plain_stdlib_fails_verification(served, assets_dir):
    """The npm stdlib with the compiled lock: its modules come from .py, and verification says so."""
    with pytest.raises(AssetError) as info:
        verify(served, served / PYC_LOCK_NAME, served / STDLIB_NAME, vocab_path(assets_dir))
    message = str(info.value)
    count = int(message.split("precompiled Python is incomplete: ")[1].split(" ")[0])
    listed = [line.strip() for line in message.splitlines()[1:11]]
    assert count > 100 and len(listed) == 10
    assert all(line.endswith(".py)") and "(/lib/python312.zip/" in line for line in listed), listed


def test_rerun_is_fast_and_quiet(served, assets_dir):
    lines = []
    before = {p.name: p.stat().st_mtime_ns for p in (served / FOLDER).iterdir()}
    start = time.perf_counter()
    assert ensure_precompiled(served, vocab_path(assets_dir), log=lines.append) == served / PYC_LOCK_NAME
    assert time.perf_counter() - start < 1.0
    assert lines == []
    assert {p.name: p.stat().st_mtime_ns for p in (served / FOLDER).iterdir()} == before


def test_what_is_kept_follows_recipe_inputs_and_files(served):
    folder = served / FOLDER
    stamp = json.loads((folder / STAMP_NAME).read_text())
    inputs = stamp["inputs"]
    assert current_outputs(folder, inputs, stamp["recipe"], stamp) == stamp["outputs"]
    # Another recipe (this module, the .mjs or the Python half changed): everything is rebuilt.
    assert current_outputs(folder, inputs, "0" * 64, stamp) == {}
    # A changed input (a new pin, pyapp's sources): that output only.
    changed = {**inputs, STDLIB_NAME: "0" * 64}
    assert sorted(current_outputs(folder, changed, stamp["recipe"], stamp)) == sorted(set(inputs) - {STDLIB_NAME})
    # An output changed on disk since it was made: that output only.
    tampered = {**stamp, "outputs": {**stamp["outputs"], STDLIB_NAME: "0" * 64}}
    assert STDLIB_NAME not in current_outputs(folder, inputs, stamp["recipe"], tampered)


def test_changed_pyapp_recompiles_its_wheel_only(served, plain_lock, assets_dir, tmp_path):
    """In a copy of the Pyodide folder: pyapp's sources change, its wheel is rebuilt (as
    write_lock does), and only its compiled copy is remade, verified and put in the lock."""
    copy = tmp_path / "pyodide"
    copy.mkdir()
    for name in (*pins.PYODIDE_CORE_FILES, LOCK_NAME, *(e["file_name"] for e in plain_lock["packages"].values())):
        shutil.copy2(served / name, copy / name)
    shutil.copytree(served / FOLDER, copy / FOLDER)
    shutil.copy2(served / PYC_LOCK_NAME, copy / PYC_LOCK_NAME)
    package = tmp_path / "pyapp"
    shutil.copytree(REPO_ROOT / "pyapp", package, ignore=shutil.ignore_patterns("__pycache__"))
    with open(package / "errors.py", "a") as f:
        f.write("\nCHANGED_FOR_A_TEST = True\n")
    wheel = build_pyapp_wheel(package, copy)
    lock = json.loads((copy / LOCK_NAME).read_text())
    lock["packages"]["pyapp"]["sha256"] = sha256_file(wheel.path)
    (copy / LOCK_NAME).write_text(json.dumps(lock, indent=1, sort_keys=True))
    before = {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in (copy / FOLDER).iterdir() if p.name != STAMP_NAME}

    lines = []
    ensure_precompiled(copy, vocab_path(assets_dir), log=lines.append)
    assert lines[0].startswith(f"precompiled {wheel.path.name} with Python 3.12.7 (magic cb0d0d0a)"), lines
    assert lines[1].startswith("verified precompiled Python"), lines
    after = {p.name: (p.stat().st_mtime_ns, sha256_file(p)) for p in (copy / FOLDER).iterdir() if p.name != STAMP_NAME}
    assert sorted(after) == sorted(before)
    assert [n for n in after if after[n] != before[n]] == [wheel.path.name]
    new_lock = json.loads((copy / PYC_LOCK_NAME).read_text())
    assert new_lock["packages"]["pyapp"]["sha256"] == after[wheel.path.name][1]
    with zipfile.ZipFile(copy / FOLDER / wheel.path.name) as z:
        assert "pyapp/errors.pyc" in z.namelist() and "pyapp/errors.py" not in z.namelist()


def test_served_at_the_urls_the_compiled_lock_names(live_server, served):
    """What a page fetches: the lock, then each file_name resolved against the index URL (as
    Pyodide's `new URL(file_name, indexURL)` does), checked like loadPackage's SRI. All are
    revalidated: their names stay when the recipe changes, and a stale cached wheel would fail.
    The archives are stored zips sent brotli- or gzip-encoded; each encoding decodes to the very
    bytes the lock's sha256 names, and a client that accepts neither gets those bytes as they are."""
    from test_http import PYODIDE, fetch

    status, headers, body = fetch(live_server, PYODIDE + PYC_LOCK_NAME)
    assert status == 200 and headers["cache-control"] == "no-cache"
    lock = json.loads(body)
    decoders = {"br": brotli.decompress, "gzip": gzip.decompress, None: lambda data: data}
    for entry in lock["packages"].values():
        for coding, decode in decoders.items():
            status, headers, body = fetch(live_server, PYODIDE + entry["file_name"], {"Accept-Encoding": coding or "identity"})
            assert status == 200 and headers["cache-control"] == "no-cache" and headers.get("content-encoding") == coding
            assert headers["vary"] == "Accept-Encoding"
            data = decode(body)
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], (entry["file_name"], coding)
            if coding == "br" and entry["file_name"].endswith("numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl"):
                assert len(body) < len(data) / 4  # stored entries: brotli compresses across files
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}, entry["file_name"]
    status, headers, body = fetch(live_server, PYODIDE + f"{FOLDER}/{STDLIB_NAME}", {"Accept-Encoding": "br"})
    assert status == 200 and headers["cache-control"] == "no-cache" and headers["content-encoding"] == "br"
    stdlib = brotli.decompress(body)
    assert stdlib[:4] == b"PK\x03\x04" and stdlib == (served / FOLDER / STDLIB_NAME).read_bytes()
    # The plain files keep their policy: versioned names, cached forever.
    assert fetch(live_server, PYODIDE + STDLIB_NAME, method="HEAD")[1]["cache-control"].endswith("immutable")


def test_missing_node_is_a_clear_error(served, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder with no `node` in it
    with pytest.raises(AssetError) as info:
        compile_archives(served, [])
    assert "`node` is not installed" in str(info.value) and "apt-get install -y nodejs" in str(info.value)
