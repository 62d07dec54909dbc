"""The Python snapshot `clip-web assets` builds under Node for first visits: named after its
inputs, served compressed and cached forever, offered by /api/runtime, switched off by
`--no-python-snapshot`, and optional (no Node: a clear line, no file, the server still starts)."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile

import brotli
import pytest

from helpers import REPO_ROOT, LiveServer
from server import pins
from server.assets import LOCK_NAME, pyodide_dir
from server.precompile import PYC_LOCK_NAME
from server.python_snapshot import PREFIX, current_snapshot, ensure_snapshot, inputs, snapshot_name
from test_http import fetch

PYODIDE = f"/assets/pyodide-{pins.PYODIDE_VERSION}/"
# Pyodide 0.27.7's snapshot header (src/js/snapshot.ts): this magic, then its BUILD_ID as 32-bit
# little-endian words (pyodide.mjs), then the JSON list of JS objects Python holds.
SNAPSHOT_MAGIC = b"\x00snp"
CLIP_WEB_MAGIC = b"CWS2"
BUILD_ID = "e94377f5ce7dcf67e0417b69a0016733c2cfb6b4622ee8c490a6f17eb58e863b"


def runtime(server) -> dict:
    return json.loads(fetch(server, "/api/runtime")[2])


def test_the_snapshot_is_built_and_offered(live_server, assets_dir):
    folder, lock, vocab, prepare = inputs(assets_dir, REPO_ROOT / "web")
    path = current_snapshot(folder, lock, vocab, prepare)
    assert path is not None and path.startswith("snapshots/" + PREFIX)
    offered = runtime(live_server)
    assert offered["python_snapshot"] == {"url": PYODIDE + path, "lock_url": PYODIDE + lock.name}
    # Made over the stdlib that goes with the lock pages load by default: the precompiled one.
    assert lock.name == PYC_LOCK_NAME and offered["pyodide_precompiled"]["lock_url"] == PYODIDE + PYC_LOCK_NAME
    data = (pyodide_dir(assets_dir) / path).read_bytes()
    assert len(data) > 20_000_000  # the wasm heap: tens of MB
    # Our header (web/js/runtime/python-snapshot.js packSnapshot): magic, the JSON's length, the
    # records of the compiled libraries the snapshot has loaded, zeros to 16 bytes.
    assert data[:4] == CLIP_WEB_MAGIC
    length = int.from_bytes(data[4:8], "little")
    meta = json.loads(data[8:8 + length])
    head = -(-(8 + length) // 16) * 16
    assert set(data[8 + length:head]) <= {0}
    assert meta["sitePackages"] == "/lib/python3.12/site-packages"
    names = [lib["name"].removeprefix(meta["sitePackages"] + "/") for lib in meta["libraries"]]
    # numpy's core and linalg (numpy imports it) and Pillow's core: what preprocessing needs.
    assert {"numpy/_core/_multiarray_umath.cpython-312-wasm32-emscripten.so",
            "numpy/linalg/_umath_linalg.cpython-312-wasm32-emscripten.so",
            "PIL/_imaging.cpython-312-wasm32-emscripten.so"} <= set(names), names
    # In load order, each right after the one before in the function table, the first right after
    # the boot's slots.
    libraries = meta["libraries"]
    assert libraries[0]["tableBase"] == meta["tableStart"]
    assert all(a["tableBase"] + a["tableSize"] <= b["tableBase"] for a, b in zip(libraries, libraries[1:]))
    assert meta["tableLength"] >= libraries[-1]["tableBase"] + libraries[-1]["tableSize"]
    pyodide_part = data[head:]
    assert pyodide_part[:4] == SNAPSHOT_MAGIC
    # Each library's file is in the snapshot's heap, where its record says, with its digest: a
    # restore instantiates it from there, before any wheel is fetched.
    heap = pyodide_part[int.from_bytes(pyodide_part[4:8], "little"):]
    wheel_files = {}
    for wheel in folder.glob("pyc/*.whl"):
        with zipfile.ZipFile(wheel) as z:
            wheel_files.update({meta["sitePackages"] + "/" + n: z.read(n) for n in z.namelist() if n.endswith(".so")})
    for lib in libraries:
        held = heap[lib["fileData"]:lib["fileData"] + lib["fileSize"]]
        assert held == wheel_files[lib["name"]] and hashlib.sha256(held).hexdigest() == lib["sha256"], lib["name"]
    build_id = b"".join(bytes.fromhex(BUILD_ID[i:i + 8])[::-1] for i in range(0, 64, 8))
    assert pyodide_part[16:48] == build_id  # made by the very Pyodide build the browser runs
    # No JS object is referenced from the heap (every one would have to be found again on restore).
    assert b'{"hiwireKeys":[null,null],"immortalKeys":[]}' in pyodide_part[48:160]


def test_the_snapshot_is_sent_as_brotli_and_cached_forever(live_server, assets_dir):
    path = current_snapshot(*inputs(assets_dir, REPO_ROOT / "web"))
    status, headers, body = fetch(live_server, PYODIDE + path, {"Accept-Encoding": "br, gzip"})
    assert status == 200
    assert headers["content-encoding"] == "br"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert brotli.decompress(body) == (pyodide_dir(assets_dir) / path).read_bytes()
    assert len(body) < len(brotli.decompress(body)) / 3


def test_no_python_snapshot_flag_offers_none(tmp_path, assets_dir, reference_models):
    server = LiveServer(tmp_path, reference_models, extra_args=["--no-python-snapshot"])
    try:
        assert runtime(server)["python_snapshot"] is None
    finally:
        server.stop()


def test_the_name_follows_every_input(tmp_path, assets_dir):
    folder, lock, vocab, prepare = inputs(assets_dir, REPO_ROOT / "web")
    copy = tmp_path / "pyodide"
    copy.mkdir()
    shutil.copyfile(folder / "pyodide.asm.wasm", copy / "pyodide.asm.wasm")
    shutil.copyfile(folder / LOCK_NAME, copy / LOCK_NAME)
    shutil.copyfile(folder / "python_stdlib.zip", copy / "python_stdlib.zip")  # the plain lock's stdlib
    shutil.copyfile(prepare, tmp_path / "prepare.js")
    name = snapshot_name(copy, copy / LOCK_NAME, vocab, tmp_path / "prepare.js")
    assert name == snapshot_name(folder, folder / LOCK_NAME, vocab, prepare)  # a function of the bytes, not the paths
    assert name != snapshot_name(folder, lock, vocab, prepare)  # the precompiled lock and stdlib: another snapshot
    (copy / "python_stdlib.zip").write_bytes((folder / "python_stdlib.zip").read_bytes() + b" ")
    assert snapshot_name(copy, copy / LOCK_NAME, vocab, tmp_path / "prepare.js") != name
    shutil.copyfile(folder / "python_stdlib.zip", copy / "python_stdlib.zip")
    (copy / LOCK_NAME).write_bytes((folder / LOCK_NAME).read_bytes() + b" ")
    assert snapshot_name(copy, copy / LOCK_NAME, vocab, tmp_path / "prepare.js") != name
    shutil.copyfile(folder / LOCK_NAME, copy / LOCK_NAME)
    (tmp_path / "prepare.js").write_text(prepare.read_text() + "\n// changed\n")
    assert snapshot_name(copy, copy / LOCK_NAME, vocab, tmp_path / "prepare.js") != name


def test_without_node_there_is_no_snapshot_and_a_clear_line(tmp_path, assets_dir, monkeypatch):
    folder, _, vocab, prepare = inputs(assets_dir, REPO_ROOT / "web")
    lock = folder / LOCK_NAME
    copy = tmp_path / "pyodide"
    copy.mkdir()
    shutil.copyfile(folder / "python_stdlib.zip", copy / "python_stdlib.zip")
    shutil.copyfile(folder / "pyodide.asm.wasm", copy / "pyodide.asm.wasm")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `node` anywhere on it
    lines = []
    assert ensure_snapshot(copy, lock, vocab, prepare, log=lines.append) is None
    assert lines == ["no Python snapshot for first visits: Node.js is not installed (pages boot Pyodide instead)"]
    assert not (copy / "snapshots").exists() or not any((copy / "snapshots").iterdir())
    assert current_snapshot(copy, lock, vocab, prepare) is None


def test_a_failed_build_leaves_no_partial_file(tmp_path, assets_dir):
    folder, _, vocab, prepare = inputs(assets_dir, REPO_ROOT / "web")
    lock = folder / LOCK_NAME
    copy = tmp_path / "pyodide"
    copy.mkdir()
    shutil.copyfile(folder / "python_stdlib.zip", copy / "python_stdlib.zip")
    shutil.copyfile(folder / "pyodide.asm.wasm", copy / "pyodide.asm.wasm")  # but no pyodide.mjs: Node fails
    lines = []
    assert ensure_snapshot(copy, lock, vocab, prepare, log=lines.append) is None
    assert len(lines) == 1 and lines[0].startswith("no Python snapshot for first visits: building it failed"), lines
    assert list((copy / "snapshots").iterdir()) == []
