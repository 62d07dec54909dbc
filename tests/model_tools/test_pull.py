"""`clip-web models pull`: mirror a preset from a (local stand-in) hub, resume, verify, serve offline."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import pytest

from helpers import REPO_ROOT
from mt_helpers import ROCCA, ROCCA_IMAGE, ROCCA_TEXT, error_line, no_temp_files, run_cli
from server.model_tools import pull as pull_mod
from server.model_tools.common import sha256_file
from server.models import list_models
from server.settings import Settings

PRESET = "rocca-vit-b-32-fp32"


def _pull(to, hub, *extra):
    return run_cli("models", "pull", PRESET, "--to", to, "--hub", hub.url, *extra)


def _ranges(hub, name):
    return [(rng, status) for path, rng, status in hub.requests if path.endswith(name)]


def test_pull_mirrors_preset_and_serves_offline(tmp_path, hub, hub_root, capsys):
    assert _pull(tmp_path, hub) == 0
    folder = tmp_path / PRESET
    m = json.loads((folder / "manifest.json").read_text())
    # Another id than the preset's: the server refuses two manifests with one id.
    assert m["id"] == f"{PRESET}-local" and m["mirror_of"] == PRESET and m["variant"] == "fp32"
    for part, name in [("image", ROCCA_IMAGE), ("text", ROCCA_TEXT)]:
        assert m[part]["url"] == name  # relative: served from the models folder
        assert m[part]["sha256"] == sha256_file(hub_root / ROCCA / name) == sha256_file(folder / name)
        assert m[part]["bytes"] == (folder / name).stat().st_size
    assert sorted(p.name for p in folder.iterdir()) == sorted([ROCCA_IMAGE, ROCCA_TEXT, "manifest.json"])
    # Every request went to the stand-in hub, at rocca's repo path.
    assert {path for path, _, _ in hub.requests} == {f"/{ROCCA}/resolve/main/{n}" for n in (ROCCA_IMAGE, ROCCA_TEXT)}
    err = capsys.readouterr().err
    assert f"{ROCCA_IMAGE}  100.0%" in err  # the progress bar's last line
    # What `serve --models-dir` lists: the local copy, with URLs under /models/, beside the presets.
    listed = {x["id"]: x for x in list_models(Settings(models_dir=tmp_path))["models"]}
    assert listed[f"{PRESET}-local"]["image"]["url"] == f"/models/{PRESET}/{ROCCA_IMAGE}"
    assert listed[PRESET]["origin"] == "preset"


def test_second_pull_verifies_instead_of_downloading(tmp_path, hub):
    assert _pull(tmp_path, hub) == 0
    n = len(hub.requests)
    assert _pull(tmp_path, hub) == 0
    assert len(hub.requests) == n  # hashes of the earlier pull vouch for the files


def test_dropped_connection_keeps_part_and_next_run_resumes(tmp_path, hub, hub_root, capsys):
    size = (hub_root / ROCCA / ROCCA_TEXT).stat().st_size
    hub.drop_once = {ROCCA_TEXT}
    assert _pull(tmp_path, hub, "--retries", "0", "--quiet") == 2
    err = error_line(capsys.readouterr().err)
    assert err.startswith("clip-web: error: download of") and "run the same command again to resume" in err
    part = tmp_path / PRESET / (ROCCA_TEXT + ".part")
    assert part.stat().st_size == size // 2  # exactly what arrived, kept on purpose
    assert not (tmp_path / PRESET / "manifest.json").exists()

    assert _pull(tmp_path, hub, "--quiet") == 0
    assert _ranges(hub, ROCCA_TEXT) == [(None, 200), (f"bytes={size // 2}-", 206)]
    assert sha256_file(tmp_path / PRESET / ROCCA_TEXT) == sha256_file(hub_root / ROCCA / ROCCA_TEXT)
    assert not part.exists()


def test_retries_resume_within_one_run(tmp_path, hub, hub_root):
    hub.drop_once = {ROCCA_IMAGE, ROCCA_TEXT}
    assert _pull(tmp_path, hub, "--quiet") == 0
    for name in (ROCCA_IMAGE, ROCCA_TEXT):
        half = (hub_root / ROCCA / name).stat().st_size // 2
        assert _ranges(hub, name) == [(None, 200), (f"bytes={half}-", 206)]
        assert sha256_file(tmp_path / PRESET / name) == sha256_file(hub_root / ROCCA / name)


def test_server_ignoring_range_restarts_the_file(tmp_path, hub, hub_root):
    """A 200 answer to a Range request is the whole file: appending it would corrupt the .part."""
    folder = tmp_path / PRESET
    folder.mkdir()
    (folder / (ROCCA_IMAGE + ".part")).write_bytes(b"\xff" * 1000)  # stale bytes from elsewhere
    hub.honor_range = False
    assert _pull(tmp_path, hub, "--quiet") == 0
    assert _ranges(hub, ROCCA_IMAGE) == [("bytes=1000-", 200)]
    assert sha256_file(folder / ROCCA_IMAGE) == sha256_file(hub_root / ROCCA / ROCCA_IMAGE)


def _custom_manifest(tmp_path, hub, **image_patch):
    m = json.loads((REPO_ROOT / "server" / "presets" / f"{PRESET}.json").read_text())
    m["id"] = "custom-tiny"
    m["image"] = dict(m["image"], url=f"{hub.url}{ROCCA}/resolve/main/{ROCCA_IMAGE}", **image_patch)
    m["text"]["url"] = f"{hub.url}{ROCCA}/resolve/main/{ROCCA_TEXT}"
    path = tmp_path / "custom.json"
    path.write_text(json.dumps(m))
    return path


def test_manifest_path_with_hashes_is_verified(tmp_path, hub, hub_root):
    want = sha256_file(hub_root / ROCCA / ROCCA_IMAGE)
    src = _custom_manifest(tmp_path, hub, sha256=want, bytes=(hub_root / ROCCA / ROCCA_IMAGE).stat().st_size)
    assert run_cli("models", "pull", src, "--to", tmp_path / "out", "--quiet") == 0
    m = json.loads((tmp_path / "out" / "custom-tiny" / "manifest.json").read_text())
    assert m["id"] == "custom-tiny" and m["image"]["sha256"] == want  # not a preset id: kept


def test_wrong_sha256_is_rejected_and_deleted(tmp_path, hub, capsys):
    src = _custom_manifest(tmp_path, hub, sha256="0" * 64)
    assert run_cli("models", "pull", src, "--to", tmp_path / "out", "--quiet") == 2
    assert "does not match the manifest's 0000" in error_line(capsys.readouterr().err)
    assert list((tmp_path / "out").iterdir()) == []  # no file, no .part, no manifest, no folder


def test_wrong_size_is_rejected(tmp_path, hub, capsys):
    src = _custom_manifest(tmp_path, hub, bytes=12345)
    assert run_cli("models", "pull", src, "--to", tmp_path / "out", "--quiet", "--retries", "0") == 2
    assert "the manifest says 12345" in error_line(capsys.readouterr().err)
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_file_on_hub(tmp_path, hub, capsys):
    src = _custom_manifest(tmp_path, hub)
    m = json.loads(src.read_text())
    m["image"]["url"] = f"{hub.url}{ROCCA}/resolve/main/nope.onnx"
    src.write_text(json.dumps(m))
    assert run_cli("models", "pull", src, "--to", tmp_path / "out", "--quiet") == 2
    assert "HTTP 404" in error_line(capsys.readouterr().err)


def test_full_disk_keeps_the_resumable_part(tmp_path, hub, hub_root, monkeypatch, capsys):
    calls = {"n": 0}
    real = pull_mod._append

    def append_then_full(f, chunk):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, chunk)

    monkeypatch.setattr(pull_mod, "_append", append_then_full)
    assert _pull(tmp_path, hub, "--quiet") == 2
    err = error_line(capsys.readouterr().err)
    assert err.startswith("clip-web: error: no space left on device while downloading")
    part = tmp_path / PRESET / (ROCCA_IMAGE + ".part")
    assert part.stat().st_size == 3 * pull_mod.CHUNK  # kept: free space, run again, it resumes
    monkeypatch.setattr(pull_mod, "_append", real)
    assert _pull(tmp_path, hub, "--quiet") == 0
    assert (f"bytes={3 * pull_mod.CHUNK}-", 206) in _ranges(hub, ROCCA_IMAGE)
    assert sha256_file(tmp_path / PRESET / ROCCA_IMAGE) == sha256_file(hub_root / ROCCA / ROCCA_IMAGE)
    assert no_temp_files(tmp_path) == []


def test_unknown_preset_real_cli(tmp_path):
    """The installed entry point's contract: exit status 2, one `clip-web: error:` line."""
    result = subprocess.run([sys.executable, "-m", "server.cli", "models", "pull", "no-such-preset",
                             "--to", str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("clip-web: error: unknown preset 'no-such-preset'")
    assert PRESET in result.stderr  # the message lists what exists
    assert list(tmp_path.iterdir()) == []


HF_FILE = "https://huggingface.co/a/b/resolve/main/f.onnx"


@pytest.mark.parametrize("url, hub_url, want", [
    (HF_FILE, "http://127.0.0.1:9/", "http://127.0.0.1:9/a/b/resolve/main/f.onnx"),
    (HF_FILE, "http://m.example/hf", "http://m.example/hf/a/b/resolve/main/f.onnx"),
    ("https://example.org/f.onnx", "http://127.0.0.1:9/", "https://example.org/f.onnx"),
])
def test_hub_rewrite(url, hub_url, want):
    assert pull_mod.with_hub(url, hub_url) == want
