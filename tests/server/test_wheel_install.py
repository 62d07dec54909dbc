"""clip-web as a real package: the wheel built from this tree, installed into a fresh venv outside
the repository, serves every page from any directory, keeps its asset cache in the user's cache
folder (or $CLIP_WEB_ASSETS), says its version, and its start page reaches ready in Chromium.

Offline: the fresh venv gets no pip and no index. Its dependencies are this venv's installed
distributions (all but clip-web's own editable install), seen through a .pth file, so that
`pip install --no-index <wheel>` must find every declared dependency already installed and
installs clip-web itself from the wheel alone. The runtime assets are a hard-linked copy of the
checkout's (nothing is rebuilt; a server that wrote there would not touch the checkout's files).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import PW, REPO_ROOT, free_port
from server import pins

SOURCES = ("pyproject.toml", "README.md", "server", "pyapp", "web")
VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


def run(cmd, **kwargs):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kwargs)
    assert result.returncode == 0, f"{cmd}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def clean_env(venv: Path, **extra) -> dict:
    """This environment without anything that points into the checkout, the venv's bin/ first."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CLIP_WEB_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def hardlink_tree(src: Path, dst: Path) -> None:
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:  # another file system
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link, symlinks=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel-install")
    assert REPO_ROOT not in tmp.parents
    # Build from a copy of the sources: no build/ or *.egg-info in the checkout, no stale files.
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", tmp / "dist", src])
    (wheel,) = (tmp / "dist").glob("clip_web-*.whl")

    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    deps = tmp / "deps"
    deps.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        name = entry.name.lower()
        if name.startswith(("clip_web", "__editable__", "server", "pyapp")) or name.endswith(".pth") or name == "__pycache__":
            continue
        (deps / entry.name).symlink_to(entry)
    (site / "_clip_web_test_dependencies.pth").write_text(f"{deps}\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-input", "-q", wheel],
        env=clean_env(venv))
    yield {"tmp": tmp, "venv": venv, "python": python, "site": site, "wheel": wheel}


def test_the_wheel_holds_the_pages_presets_and_node_scripts(installed):
    import zipfile

    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    web = {p.relative_to(REPO_ROOT / "web").as_posix() for p in (REPO_ROOT / "web").rglob("*") if p.is_file()}
    assert {f"server/web/{n}" for n in web} <= names
    assert {f"server/presets/{p.name}" for p in (REPO_ROOT / "server" / "presets").glob("*.json")} <= names
    for script in ("server/make-python-snapshot.mjs", "server/precompile.mjs", "server/precompile_pyodide.py",
                   "server/model_tools/ort_web_run.mjs", "pyapp/tokenizer.py"):
        assert script in names


def test_installed_server_is_not_a_checkout(installed):
    out = run([installed["python"], "-c", "import json, server.settings as s; print(json.dumps("
               "[s.__file__, str(s.CHECKOUT), str(s.WEB_DIR), str(s.PRESETS_DIR), str(s.PYAPP_DIR)]))"],
              cwd=installed["tmp"], env=clean_env(installed["venv"])).stdout
    module, checkout, web, presets, pyapp_dir = json.loads(out)
    site = installed["site"]
    assert Path(module).parent == site / "server" and checkout == "None"
    assert (Path(web), Path(presets), Path(pyapp_dir)) == (site / "server" / "web", site / "server" / "presets", site / "pyapp")


def test_version(installed):
    out = run([installed["venv"] / "bin" / "clip-web", "--version"], cwd=installed["tmp"], env=clean_env(installed["venv"]))
    assert out.stdout.strip() == f"clip-web {VERSION} (Pyodide {pins.PYODIDE_VERSION}, onnxruntime-web {pins.ORT_WEB_VERSION})"


def test_the_asset_cache_is_in_the_user_cache_dir(installed):
    """Not a checkout: ~/.cache/clip-web/assets by XDG rules (platformdirs), $CLIP_WEB_ASSETS first."""
    xdg = installed["tmp"] / "xdg-cache"
    env = clean_env(installed["venv"], XDG_CACHE_HOME=str(xdg))
    clip_web = installed["venv"] / "bin" / "clip-web"
    result = subprocess.run([clip_web, "serve", "--port", str(free_port())], cwd=installed["tmp"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"runtime assets are missing from {xdg / 'clip-web' / 'assets'}" in result.stderr
    shown = "".join(run([clip_web, "assets", "--help"], cwd=installed["tmp"], env=env).stdout.split())  # unwrapped
    assert f"(default:{xdg / 'clip-web' / 'assets'};" in shown
    elsewhere = installed["tmp"] / "elsewhere"
    result = subprocess.run([clip_web, "serve", "--port", str(free_port())], cwd=installed["tmp"],
                            env={**env, "CLIP_WEB_ASSETS": str(elsewhere)}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and f"missing from {elsewhere}" in result.stderr


def test_assets_without_npm_says_what_to_install(installed):
    """`clip-web assets` fetches Pyodide and onnxruntime-web with `npm pack` (found on PATH, as
    `node` is for the snapshot and precompiled Python): without it, a sentence saying so."""
    env = clean_env(installed["venv"])
    env["PATH"] = str(installed["venv"] / "bin")  # no npm, no node
    result = subprocess.run([installed["venv"] / "bin" / "clip-web", "assets", "--assets-dir", installed["tmp"] / "new-assets"],
                            cwd=installed["tmp"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "`npm` is not installed" in result.stderr and "Install Node.js and npm" in result.stderr


@pytest.fixture(scope="module")
def installed_server(installed, assets_dir):
    assets = installed["tmp"] / "assets"
    hardlink_tree(assets_dir, assets)
    port = free_port()
    log = open(installed["tmp"] / "serve.log", "w")
    process = subprocess.Popen(
        [installed["venv"] / "bin" / "clip-web", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=installed["tmp"], env=clean_env(installed["venv"], CLIP_WEB_ASSETS=str(assets)),
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"clip-web serve exited with {process.returncode}:\n{(installed['tmp'] / 'serve.log').read_text()}")
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as r:
                    if json.loads(r.read())["assets_ready"]:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"clip-web serve did not answer:\n{(installed['tmp'] / 'serve.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers, r.read()


def test_installed_server_serves_the_pages_from_the_package(installed_server):
    for path, marker in (("", b"<title>clip-web"), ("text.html", b'id="texts"'), ("widget-demo.html", b"<clip-widget")):
        status, headers, body = get(installed_server + path)
        assert status == 200 and headers.get_content_type() == "text/html", path
        assert marker in body and body.lstrip().lower().startswith(b"<!doctype html>"), path
        assert headers["Content-Security-Policy"].startswith("default-src 'none'; "), path
    assert get(installed_server + "text.html")[2] == (REPO_ROOT / "web" / "text.html").read_bytes()
    status, _, body = get(installed_server + "api/runtime")
    runtime = json.loads(body)
    assert status == 200 and runtime["pyodide_version"] == pins.PYODIDE_VERSION
    assert get(installed_server + runtime["pyodide_lock_url"].lstrip("/"))[0] == 200
    models = json.loads(get(installed_server + "api/models")[2])
    assert {m["id"] for m in models["models"]} == {p.stem for p in (REPO_ROOT / "server" / "presets").glob("*.json")}


def test_installed_start_page_reaches_ready_in_chromium(installed_server, browser):
    context = browser.new_context(viewport=PW.VIEWPORT)
    requests = []
    context.on("request", lambda r: requests.append(r.url))
    try:
        page = context.new_page()
        page.goto(installed_server)
        page.wait_for_function("document.body.dataset.state && document.body.dataset.state !== 'loading'",
                               timeout=PW.BOOT_TIMEOUT_MS)
        state = page.evaluate("document.body.dataset.state")
        assert state == "ready", page.evaluate("document.querySelector('#message')?.textContent")
        assert "Pyodide" in page.inner_text("#status")
    finally:
        context.close()
    assert [u for u in requests if not u.startswith(installed_server) and not u.startswith(("blob:", "data:"))] == []


# The same in the checkout: today's paths, exactly (the Makefile and the tests rely on them).

def test_a_checkout_keeps_its_own_paths():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLIP_WEB_")}
    out = run([sys.executable, "-c", "import json, server.settings as s; print(json.dumps("
               "[str(s.CHECKOUT), str(s.WEB_DIR), str(s.PRESETS_DIR), str(s.PYAPP_DIR), str(s.Settings().assets_dir)]))"],
              cwd=REPO_ROOT, env=env).stdout
    assert json.loads(out) == [str(REPO_ROOT), str(REPO_ROOT / "web"), str(REPO_ROOT / "server" / "presets"),
                               str(REPO_ROOT / "pyapp"), str(REPO_ROOT / ".assets")]
    version = run([sys.executable, "-m", "server.cli", "--version"], cwd=REPO_ROOT, env=env).stdout.strip()
    assert version == f"clip-web {VERSION} (Pyodide {pins.PYODIDE_VERSION}, onnxruntime-web {pins.ORT_WEB_VERSION})"
