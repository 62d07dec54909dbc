"""Test helpers shared by every test folder (imported as `helpers`; tests/ is on sys.path)."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts"


def load_playwright_config():
    spec = importlib.util.spec_from_file_location("playwright_config", REPO_ROOT / "playwright.config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PW = load_playwright_config()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real `clip-web serve` in a subprocess, on a free port."""

    def __init__(self, tmp: Path, models_dir: Path | None, extra_args=(), env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.request_log = tmp / f"requests-{self.port}.jsonl"
        self.stderr_path = tmp / f"server-{self.port}.log"
        args = [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port),
                "--request-log", str(self.request_log), "--log-level", "warning", *extra_args]
        if models_dir is not None:
            args += ["--models-dir", str(models_dir)]
        self.stderr = open(self.stderr_path, "w")
        self.process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=self.stderr, stderr=subprocess.STDOUT,
                                        env=None if env is None else {**__import__('os').environ, **env})
        self._wait_ready()

    def _wait_ready(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"clip-web serve exited with {self.process.returncode}:\n{self.stderr_text()}")
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=1) as r:
                    if json.loads(r.read())["assets_ready"]:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"clip-web serve did not answer within {timeout}s:\n{self.stderr_text()}")

    def stderr_text(self) -> str:
        self.stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def requests(self) -> list[dict]:
        if not self.request_log.exists():
            return []
        return [json.loads(line) for line in self.request_log.read_text().splitlines() if line.strip()]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.stderr.close()


