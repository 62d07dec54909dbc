"""`clip-web serve` refuses bad setups with a message a person can act on."""

from __future__ import annotations

import socket
import subprocess
import sys

from helpers import REPO_ROOT, free_port


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


def test_bad_manifest_in_models_dir(assets_dir, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text('{"id": "x"}')
    result = run_cli("serve", "--port", str(free_port()), "--models-dir", str(tmp_path))
    assert result.returncode == 2 and "manifest lacks" in result.stderr
