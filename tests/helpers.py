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
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO_ROOT / "test-artifacts"


def load_playwright_config():
    spec = importlib.util.spec_from_file_location("playwright_config", REPO_ROOT / "playwright.config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PW = load_playwright_config()


def _wait_for_function_without_eval():
    """Our pages' Content-Security-Policy (server/csp.py) has no 'unsafe-eval'. Playwright's
    wait_for_function evaluates a plain expression string with eval() on every poll after the first,
    in the page, so the page refuses it (and reports a violation); a function it evaluates once
    and then calls. So every expression becomes a function here that evaluates it, and calls it
    with `arg` if it is itself a function: the same semantics, no eval while polling. Patched once
    for the sync and async APIs, pages and frames (tests and benchmarks import this module)."""
    try:
        from playwright._impl.frame import Frame  # playwright >= 1.5x; older: _impl._frame
    except ImportError:
        try:
            from playwright._impl._frame import Frame
        except ImportError:  # playwright is a test dependency, not the app's
            return
    if getattr(Frame.wait_for_function, "_clip_web_no_eval", False):
        return
    original = Frame.wait_for_function

    async def wait_for_function(self, expression, *args, **kwargs):
        if isinstance(expression, str):
            expression = f"(arg) => {{ const v = (\n{expression}\n); return typeof v === 'function' ? v(arg) : v; }}"
        return await original(self, expression, *args, **kwargs)

    wait_for_function._clip_web_no_eval = True
    Frame.wait_for_function = wait_for_function


_wait_for_function_without_eval()


def stop_process(process: subprocess.Popen, timeout: float = 10) -> None:
    """Ask a child process to end; kill it if it has not within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """A real `clip-web serve` in a subprocess, on a free port."""

    def __init__(self, tmp: Path, models_dir: Path | None, extra_args=(), env: dict | None = None,
                 port: int | None = None):
        # `port`: the same origin again, for a test that stops the server and starts it anew.
        self.port = port or free_port()
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

    def recent_requests(self, n: int = 60) -> str:
        """The last `n` requests, one line each, for a failure report (which files a stuck page got)."""
        lines = []
        for r in self.requests()[-n:]:
            query = f"?{r['query']}" if r.get("query") else ""
            lines.append(f"{r.get('time', 0):.3f} {r['method']} {r['path']}{query} -> {r.get('status')}")
        return "\n".join(lines) or "(none)"

    def stop(self):
        stop_process(self.process)
        self.stderr.close()


class PageSession:
    """A Playwright page that records every request it makes and every error it logs."""

    def __init__(self, context, server):
        self.context = context
        self.server = server
        self.page = context.new_page()
        self.page.set_default_timeout(PW.ACTION_TIMEOUT_MS)
        self.requests: list[str] = []
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        # Context-level: catches worker requests too.
        context.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.page_errors.append(str(e)))

    def open(self, path: str, state: str = "ready"):
        self.page.goto(self.server.url + path.lstrip("/"))
        return self.wait_state(state)

    def wait_state(self, state: str = "ready"):
        self.page.wait_for_function(
            "document.body.dataset.state && document.body.dataset.state !== 'loading'",
            timeout=PW.BOOT_TIMEOUT_MS,
        )
        actual = self.page.evaluate("document.body.dataset.state")
        if actual != state:
            message = self.page.evaluate("document.querySelector('#message')?.textContent")
            raise AssertionError(f"page state {actual!r}, expected {state!r}: {message}\nconsole: {self.console_errors}")
        return self.page

    def foreign_requests(self) -> list[str]:
        """Requests that went anywhere but 127.0.0.1 (blob: and data: URLs never leave the page)."""
        out = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("blob", "data"):
                continue
            if parts.hostname != "127.0.0.1":
                out.append(url)
        return out

    def screenshot(self, name: str):
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / name), full_page=True)
