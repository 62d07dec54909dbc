"""Fixtures shared by every test folder: the asset cache, the tiny reference models, a live
server on a free port, and Debian Chromium driven by Playwright.

Nothing here is mocked. If Chromium, the assets or the models are missing, tests fail loudly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from helpers import PW, REPO_ROOT, LiveServer

sys.path.insert(0, str(REPO_ROOT / "tests" / "reference"))


@pytest.fixture(scope="session")
def assets_dir() -> Path:
    from server.assets import ensure_assets

    path = Path(os.environ.get("CLIP_WEB_ASSETS", REPO_ROOT / ".assets")).resolve()
    ensure_assets(path, REPO_ROOT, log=lambda message: None)
    return path


@pytest.fixture(scope="session")
def reference_models() -> Path:
    """The folder holding tiny/ (built once, then cached in .cache/reference)."""
    from torch_reference import ensure_reference_models

    return ensure_reference_models("tiny").parent


@pytest.fixture(scope="session")
def tiny_model_dir(reference_models) -> Path:
    return reference_models / "tiny"


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, assets_dir, reference_models):
    server = LiveServer(tmp_path_factory.mktemp("server"), reference_models)
    yield server
    server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and "live_server" in getattr(item, "fixturenames", ()):
        server = item.funcargs.get("live_server")
        if server is not None:
            report.sections.append(("clip-web server stderr", server.stderr_text()[-8000:]))
            report.sections.append(("clip-web server: the last requests answered", server.recent_requests()))


@pytest.fixture(scope="session")
def playwright_instance():
    from playwright.sync_api import sync_playwright

    if not Path(PW.EXECUTABLE_PATH).exists():
        pytest.fail(f"Chromium not found at {PW.EXECUTABLE_PATH}: install it with `apt-get install -y chromium`")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance):
    browser = playwright_instance.chromium.launch(
        executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS, headless=PW.HEADLESS
    )
    yield browser
    browser.close()
