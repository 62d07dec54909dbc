"""Asset verification: hashes are checked, corrupt files refused with an actionable message."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from helpers import REPO_ROOT
from server import pins
from server.assets import AssetError, ensure_assets, pyodide_dir, sha256_file


@pytest.fixture
def offline_copy(tmp_path, assets_dir):
    """An asset cache holding only the raw downloads, so ensure_assets runs offline."""
    dest = tmp_path / "assets"
    shutil.copytree(assets_dir / "downloads", dest / "downloads")
    return dest


def test_second_run_is_fast_and_complete(assets_dir):
    start = time.perf_counter()
    ensure_assets(assets_dir, REPO_ROOT, log=lambda m: None)
    assert time.perf_counter() - start < 5  # hashing only; generous for a loaded 2-core machine
    lock = json.loads((pyodide_dir(assets_dir) / "clip-web-lock.json").read_text())
    for entry in lock["packages"].values():
        assert sha256_file(pyodide_dir(assets_dir) / entry["file_name"]) == entry["sha256"]


def test_lays_out_from_downloads_offline(offline_copy):
    ensure_assets(offline_copy, REPO_ROOT, log=lambda m: None)
    official = json.loads((pyodide_dir(offline_copy) / "pyodide-lock.json").read_text())
    numpy = official["packages"]["numpy"]
    assert sha256_file(pyodide_dir(offline_copy) / numpy["file_name"]) == numpy["sha256"]


def test_corrupt_download_is_refused(offline_copy):
    tgz = offline_copy / "downloads" / f"onnxruntime-web-{pins.ORT_WEB_VERSION}.tgz"
    data = bytearray(tgz.read_bytes())
    data[1000] ^= 0xFF
    tgz.write_bytes(bytes(data))
    with pytest.raises(AssetError) as info:
        ensure_assets(offline_copy, REPO_ROOT, log=lambda m: None)
    message = str(info.value)
    assert str(tgz) in message
    assert pins.NPM_PACKAGES["onnxruntime-web"]["sha256"] in message
    assert sha256_file(tgz) in message
    assert "Delete it and run `clip-web assets` again" in message


def test_tampered_served_file_is_repaired(offline_copy):
    ensure_assets(offline_copy, REPO_ROOT, log=lambda m: None)
    wasm = pyodide_dir(offline_copy) / "pyodide.asm.wasm"
    good = sha256_file(wasm)
    wasm.write_bytes(b"not wasm")
    ensure_assets(offline_copy, REPO_ROOT, log=lambda m: None)
    assert sha256_file(wasm) == good
