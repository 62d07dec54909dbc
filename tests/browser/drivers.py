"""Firefox and WebKit, driven without Playwright (its builds cannot be downloaded here; Debian's
browsers are what users run): Firefox ESR over WebDriver BiDi (a WebSocket, no geckodriver),
WebKitGTK's MiniBrowser over classic WebDriver (WebKitWebDriver's HTTP API) on a virtual display.
See ../shared/notes/browsers.md.

Both give the one interface the cross-browser tests use:
    browser.goto(url); browser.evaluate("async (arg) => ...", arg) -> the JSON value it returns;
    browser.wait_state("ready"); browser.close()
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

from helpers import stop_process

FIREFOX = os.environ.get("CLIP_WEB_FIREFOX", "/usr/bin/firefox-esr")
WEBKIT_DRIVER = os.environ.get("CLIP_WEB_WEBKIT_DRIVER", "/usr/bin/WebKitWebDriver")
MINIBROWSER_CANDIDATES = [
    "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
    "/usr/lib/x86_64-linux-gnu/webkitgtk-6.0/MiniBrowser",
    "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.0/MiniBrowser",
]
XVFB = "/usr/bin/Xvfb"
BOOT_TIMEOUT_S = 180.0
CALL_TIMEOUT_S = 600.0
DIAGNOSE_TIMEOUT_S = 20.0

# Every runtime the page has started, asked where it is (runtime.js Runtime.diagnoseAll): the
# calls each worker has not answered, the downloads, the timings. For a page that never got ready.
DIAGNOSE = """async () => {
  const { Runtime } = await import('/js/runtime/runtime.js');
  return { state: document.body?.dataset.state ?? null, message: document.querySelector('#message')?.textContent ?? null,
           runtimes: await Runtime.diagnoseAll() };
}"""

# Prefs for a quiet, local-only Firefox: no first-run pages, updates or telemetry reaching out.
FIREFOX_PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "startup.homepage_welcome_url": "about:blank",
    "app.update.disabledForTesting": True,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "extensions.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "browser.newtabpage.enabled": False,
    "dom.disable_open_during_load": False,
}


class BrowserMissing(RuntimeError):
    pass


class PageStuck(AssertionError):
    """The page never left 'loading': it is waiting on something, not reporting an error."""


class BootRetried(UserWarning):
    """A browser's first boot got stuck and a fresh browser booted instead (see boot())."""


def _require(path: str, install: str) -> None:
    if not Path(path).exists():
        raise BrowserMissing(f"{path} is missing: install it with '{install}' (Debian); .ci/run does")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The function runs in the page; its result travels as a JSON string (both protocols carry
# strings as they are, whatever their own serialisation of objects).
def _wrapped(fn: str) -> str:
    return f"async (argJson) => JSON.stringify(await ({fn})(JSON.parse(argJson)) ?? null)"


class PageDriver:
    name = "browser"

    def evaluate(self, fn: str, arg=None, timeout: float = CALL_TIMEOUT_S):
        raise NotImplementedError

    def goto(self, url: str) -> None:
        raise NotImplementedError

    def wait_state(self, state: str = "ready", timeout: float = BOOT_TIMEOUT_S) -> None:
        deadline = time.time() + timeout
        actual = None
        while time.time() < deadline:
            actual = self.evaluate("async () => document.body ? document.body.dataset.state || null : null")
            if actual and actual != "loading":
                break
            time.sleep(0.25)
        if actual != state:
            message = self.evaluate("async () => document.querySelector('#message')?.textContent ?? null")
            error = PageStuck if actual in (None, "loading") else AssertionError
            raise error(f"{self.name}: page state {actual!r}, expected {state!r}: {message}\n{self.diagnose()}")

    def diagnose(self) -> str:
        """What the page's runtimes are waiting for, what the browser logged, its stderr: for a report."""
        try:
            where = json.dumps(self.evaluate(DIAGNOSE, timeout=DIAGNOSE_TIMEOUT_S), indent=1)[:12000]
        except Exception as err:  # noqa: BLE001 - a report of a page that may be wedged
            where = f"(the page did not say: {err})"
        return (f"--- {self.name}: the page's runtimes ---\n{where}\n"
                f"--- {self.name}: console (last entries) ---\n{self.console_text()}\n"
                f"--- {self.name}: browser stderr ---\n{self.log()}")

    def console_text(self) -> str:
        return "(this driver does not collect the console)"

    def log(self) -> str:
        return ""

    def open(self, url: str, state: str = "ready") -> None:
        self.goto(url)
        self.wait_state(state)


class FirefoxBiDi(PageDriver):
    name = "firefox"

    def __init__(self):
        from websockets.sync.client import connect

        _require(FIREFOX, "apt-get install -y firefox-esr")
        self.profile = Path(tempfile.mkdtemp(prefix="clip-web-firefox-"))
        (self.profile / "user.js").write_text(
            "".join(f'user_pref("{k}", {json.dumps(v)});\n' for k, v in FIREFOX_PREFS.items()))
        self.log_path = self.profile / "stderr.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--remote-debugging-port=0", "--profile", str(self.profile), "about:blank"],
            stdout=self._log, stderr=subprocess.STDOUT)
        url = self._wait_for_endpoint()
        self._connection = connect(url + "/session", max_size=None, open_timeout=30)
        self.ws = self._connection.__enter__()
        self.next_id = 1
        self.console = collections.deque(maxlen=80)
        self.command("session.new", {"capabilities": {}})
        self.command("session.subscribe", {"events": ["log.entryAdded"]})
        tree = self.command("browsingContext.getTree", {})
        self.context = tree["contexts"][0]["context"]

    def _wait_for_endpoint(self) -> str:
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"firefox exited with {self.proc.returncode}: {self.log()}")
            m = re.search(r"WebDriver BiDi listening on (ws://\S+)", self.log_path.read_text(errors="replace"))
            if m:
                return m.group(1).rstrip("/")
            time.sleep(0.1)
        raise RuntimeError(f"firefox did not open its WebDriver BiDi port: {self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def command(self, method: str, params: dict, timeout: float = CALL_TIMEOUT_S):
        msg_id = self.next_id
        self.next_id += 1
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError(f"firefox: {method} took over {timeout} s")
            msg = json.loads(self.ws.recv(timeout=left))
            if msg.get("id") != msg_id:
                if msg.get("method") == "log.entryAdded":
                    self.console.append(msg["params"])
                continue
            if msg.get("type") == "error" or "error" in msg and msg.get("type") != "success":
                raise RuntimeError(f"firefox: {method}: {msg.get('error')}: {msg.get('message')}")
            return msg["result"]

    def console_text(self) -> str:
        try:
            self.command("browsingContext.getTree", {}, timeout=DIAGNOSE_TIMEOUT_S)  # takes in the events sent so far
        except Exception:  # noqa: BLE001 - reporting what there is
            pass
        return "\n".join(f"{e.get('level')}: {str(e.get('text'))[:500]}" for e in self.console) or "(nothing logged)"

    def goto(self, url: str) -> None:
        self.command("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    def evaluate(self, fn: str, arg=None, timeout: float = CALL_TIMEOUT_S):
        result = self.command("script.callFunction", {
            "functionDeclaration": _wrapped(fn),
            "arguments": [{"type": "string", "value": json.dumps(arg)}],
            "target": {"context": self.context},
            "awaitPromise": True,
            "resultOwnership": "none",
        }, timeout=timeout)
        if result.get("type") == "exception":
            details = result["exceptionDetails"]
            raise RuntimeError(f"firefox: {details.get('text')}")
        return json.loads(result["result"]["value"])

    def close(self) -> None:
        try:
            self.command("session.end", {}, timeout=10)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self._connection.__exit__(None, None, None)
        finally:
            stop_process(self.proc)
            self._log.close()
            shutil.rmtree(self.profile, ignore_errors=True)


class WebKitGTK(PageDriver):
    name = "webkit"

    def __init__(self):
        _require(WEBKIT_DRIVER, "apt-get install -y webkit2gtk-driver")
        _require(XVFB, "apt-get install -y xvfb")
        binary = next((p for p in MINIBROWSER_CANDIDATES if Path(p).exists()), None)
        if binary is None:
            raise BrowserMissing(f"WebKitGTK's MiniBrowser is in none of {MINIBROWSER_CANDIDATES}: install webkit2gtk-driver")
        self.tmp = Path(tempfile.mkdtemp(prefix="clip-web-webkit-"))
        self._log = open(self.tmp / "stderr.log", "w")
        # MiniBrowser needs a display; headless mode hangs (browsers.md). A private Xvfb each time.
        self.display = f":{_free_display()}"
        self.xvfb = subprocess.Popen([XVFB, self.display, "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
                                     stdout=self._log, stderr=subprocess.STDOUT)
        env = {**os.environ, "DISPLAY": self.display}
        env.pop("WAYLAND_DISPLAY", None)
        port = _free_port()
        self.driver = subprocess.Popen([WEBKIT_DRIVER, f"--port={port}"], stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.base = f"http://127.0.0.1:{port}"
        self._wait_for_driver()
        caps = {"capabilities": {"alwaysMatch": {"webkitgtk:browserOptions": {"binary": binary, "args": ["--automation"]}}}}
        self.session = self._post("/session", caps)["sessionId"]
        self._post(f"/session/{self.session}/timeouts", {"script": int(CALL_TIMEOUT_S * 1000), "pageLoad": 120_000})

    def _wait_for_driver(self) -> None:
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.driver.poll() is not None:
                raise RuntimeError(f"WebKitWebDriver exited with {self.driver.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(self.base + "/status", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"WebKitWebDriver did not answer: {self.log()}")

    def log(self) -> str:
        self._log.flush()
        return (self.tmp / "stderr.log").read_text(errors="replace")[-3000:]

    def _request(self, method: str, path: str, body=None, timeout: float = CALL_TIMEOUT_S + 30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:1000]
            raise RuntimeError(f"webkit: {method} {path}: HTTP {exc.code}: {detail}") from None

    def _post(self, path: str, body: dict):
        return self._request("POST", path, body)

    def goto(self, url: str) -> None:
        self._post(f"/session/{self.session}/url", {"url": url})

    def evaluate(self, fn: str, arg=None, timeout: float = CALL_TIMEOUT_S):
        script = (
            "const done = arguments[arguments.length - 1];"
            f"({_wrapped(fn)})(arguments[0]).then((v) => done({{ok: v}}), (e) => done({{error: String(e && e.message || e)}}));"
        )
        out = self._request("POST", f"/session/{self.session}/execute/async", {"script": script, "args": [json.dumps(arg)]},
                            timeout=timeout + 30)
        if "error" in out:
            raise RuntimeError(f"webkit: {out['error']}")
        return json.loads(out["ok"])

    def close(self) -> None:
        try:
            self._request("DELETE", f"/session/{self.session}", timeout=20)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        for proc in (self.driver, self.xvfb):
            stop_process(proc)
        self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number between :90 and :199")


DRIVERS = {"firefox": FirefoxBiDi, "webkit": WebKitGTK}

# A first boot that is stuck gets this long before a fresh browser tries (a boot takes 2-5 s).
FIRST_BOOT_TIMEOUT_S = 90.0


def boot(name: str, url: str, state: str = "ready") -> PageDriver:
    """A fresh browser `name` with `url` open and in `state`.

    Firefox's boot got stuck about once in 25-50 boots here (2026-12-07): onnxruntime's `new
    Worker()` for its thread pool never returned. The runtime now replaces such a worker itself
    (test_onnx_watchdog.py), so this should not fire; it stays as a net for a stuck boot of another
    kind, which it reports as a BootRetried warning carrying the page's own diagnosis before one
    fresh browser tries again. A second stuck boot, or any error, fails.
    """
    driver = DRIVERS[name]()
    try:
        driver.goto(url)
        driver.wait_state(state, FIRST_BOOT_TIMEOUT_S)
        return driver
    except PageStuck as err:
        report = str(err)
        driver.close()
    except BaseException:
        driver.close()
        raise
    warnings.warn(BootRetried(f"{name}: the first boot of {url} got stuck; a fresh browser tries again.\n{report}"))
    driver = DRIVERS[name]()
    try:
        driver.open(url, state)
    except BaseException:
        driver.close()
        raise
    return driver
