"""Asset verification: hashes are checked, corrupt files refused with an actionable message."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import time

import brotli
import pytest

from helpers import REPO_ROOT
from server import pins
from server.assets import _ENCODERS, STAMP_NAME, AssetError, encoded_dir, ensure_assets, ort_dir, pyodide_dir, sha256_file
from server.precompile import FOLDER as PYC_FOLDER, PYC_LOCK_NAME


@pytest.fixture
def offline_copy(tmp_path, assets_dir):
    """An asset cache holding only the raw downloads, so ensure_assets runs offline, and the
    compressed copies (minutes to remake at brotli 11; the layout reuses them, as their sources'
    hashes are the same). The precompiled Python too (20 s to remake; tested in test_precompile)."""
    dest = tmp_path / "assets"
    shutil.copytree(assets_dir / "downloads", dest / "downloads")
    shutil.copytree(assets_dir / "encoded", dest / "encoded")
    shutil.copytree(pyodide_dir(assets_dir) / PYC_FOLDER, pyodide_dir(dest) / PYC_FOLDER)
    shutil.copy2(pyodide_dir(assets_dir) / PYC_LOCK_NAME, pyodide_dir(dest) / PYC_LOCK_NAME)
    return dest


def logged(assets):
    lines = []
    ensure_assets(assets, REPO_ROOT, log=lines.append)
    return [line for line in lines if line.startswith("compressed ")]


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


def test_tampered_served_file_is_repaired(offline_copy, assets_dir):
    assert logged(offline_copy) == []  # a fresh layout of the same files keeps their copies
    wasm = pyodide_dir(offline_copy) / "pyodide.asm.wasm"
    good = sha256_file(wasm)
    wasm.write_bytes(b"not wasm")
    ort = encoded_dir(ort_dir(offline_copy))
    (ort / "ort-wasm-simd-threaded.mjs.br").unlink()
    (ort / "ort.wasm.min.mjs.gz").write_bytes(b"not gzip")
    remade = logged(offline_copy)
    assert sha256_file(wasm) == good
    # Only the two broken copies are made again, byte for byte as the first build made them.
    assert [line.split(" (")[0] for line in remade] == ["compressed ort-wasm-simd-threaded.mjs", "compressed ort.wasm.min.mjs"]
    for name in ("ort-wasm-simd-threaded.mjs.br", "ort.wasm.min.mjs.gz"):
        assert (ort / name).read_bytes() == (encoded_dir(ort_dir(assets_dir)) / name).read_bytes()
    # The repaired wasm's copies now carry its new mtime, so the server sends them again.
    for suffix in (".br", ".gz"):
        copy = encoded_dir(pyodide_dir(offline_copy)) / ("pyodide.asm.wasm" + suffix)
        assert copy.stat().st_mtime_ns == wasm.stat().st_mtime_ns


@pytest.mark.parametrize("folder", [pyodide_dir, ort_dir])
def test_compressed_copies_decode_to_their_sources(assets_dir, folder):
    served = folder(assets_dir)
    sources = json.loads((served / STAMP_NAME).read_text())
    copies = json.loads((encoded_dir(served) / STAMP_NAME).read_text())
    # Every JavaScript, wasm and JSON file has a brotli and a gzip copy; zip archives have none.
    wanted = sorted(f"{name}{suffix}" for name in sources if name.endswith((".js", ".mjs", ".wasm", ".json"))
                    for suffix in (".br", ".gz"))
    assert sorted(copies) == wanted and wanted
    decoders = {".br": brotli.decompress, ".gz": gzip.decompress}
    for name, entry in copies.items():
        source_name, suffix = name[:-3], name[-3:]
        copy, source = encoded_dir(served) / name, served / source_name
        data = copy.read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert entry["source_sha256"] == sources[source_name]
        assert hashlib.sha256(decoders[suffix](data)).hexdigest() == sources[source_name], name
        assert copy.stat().st_mtime_ns == source.stat().st_mtime_ns
        # Deterministic: compressing the source again gives the same bytes (small files only: fast).
        if source.stat().st_size < 200_000:
            coding = {".br": "br", ".gz": "gzip"}[suffix]
            assert _ENCODERS[coding][0] == entry["encoder"]
            assert _ENCODERS[coding][1](source.read_bytes()) == data, name
