"""`clip-web serve` refuses bad setups with a message a person can act on."""

from __future__ import annotations

import socket
import subprocess
import sys

import json
import urllib.request

from helpers import REPO_ROOT, LiveServer, free_port


def run_cli(*args, env=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_port_in_use(assets_dir):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run_cli("serve", "--port", str(port))
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr


def test_missing_assets(tmp_path):
    import os

    env = dict(os.environ, CLIP_WEB_ASSETS=str(tmp_path / "empty"))
    result = run_cli("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 2
    assert "runtime assets are missing" in result.stderr and "clip-web assets" in result.stderr


def test_missing_models_dir(assets_dir, tmp_path):
    result = run_cli("serve", "--port", str(free_port()), "--models-dir", str(tmp_path / "nope"))
    assert result.returncode == 2 and "no such folder" in result.stderr


def test_bad_manifest_in_models_dir_is_named_and_the_rest_served(assets_dir, tmp_path):
    models = tmp_path / "models"
    (models / "broken").mkdir(parents=True)
    (models / "broken" / "manifest.json").write_text('{"id": "x"}')
    server = LiveServer(tmp_path, models)
    try:
        with urllib.request.urlopen(server.url + "api/models", timeout=10) as r:
            listing = json.loads(r.read())
        assert listing["refused"] == [{"manifest": "/models/broken/manifest.json", "id": "x",
                                        "error": listing["refused"][0]["error"]}]
        assert "manifest lacks name" in listing["refused"][0]["error"]
        assert "xenova-vit-b-32-fp32" in [m["id"] for m in listing["models"]]
        warning = f"clip-web: warning: {models / 'broken' / 'manifest.json'}: manifest lacks name"
        assert warning in server.stderr_text()
    finally:
        server.stop()
