"""Browser settings shared by the tests and the benchmarks (Python Playwright + Debian Chromium).

Never `playwright install`: it downloads a browser, which this project does not need or allow.
"""

import os

# Debian's chromium package; override with CLIP_WEB_CHROMIUM for another build.
EXECUTABLE_PATH = os.environ.get("CLIP_WEB_CHROMIUM", "/usr/bin/chromium")

# As root in a container Chromium needs --no-sandbox; the rest stop it from phoning home (the
# machines here have no network besides loopback, and each refused connection costs time).
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]

# WebGPU runs on SwiftShader (CPU) with this flag: correct, slow; for correctness tests only.
WEBGPU_ARGS = ["--enable-unsafe-webgpu"]

HEADLESS = os.environ.get("CLIP_WEB_HEADED") != "1"

# Pyodide boots in 5-10 s cold on 2 cores; the full-size model takes longer to load.
BOOT_TIMEOUT_MS = 120_000
ACTION_TIMEOUT_MS = 60_000

VIEWPORT = {"width": 1280, "height": 900}
