"""What the service worker costs a warm start: the text and image pages reloaded in an on-disk
profile with the service worker allowed (it saves the app on the first visit and then handles every
page, module and runtime request) and with service workers blocked (the way before #15 item 3).

Each round makes one fresh profile per variant: a first visit (the worker installs and saves), then
WARM reloads per page, timed from navigation to `data-state=ready`. Variants alternate within a
round. Prints medians and their ratio; raw samples go to benchmarks/results/offline_ab.json.

    .venv/bin/python benchmarks/offline_ab.py [--rounds 3] [--warm 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers import PW, LiveServer  # noqa: E402

PAGES = ["text.html", "image.html"]
VARIANTS = {"service_worker": "allow", "no_service_worker": "block"}
READY = "document.body.dataset.state && document.body.dataset.state !== 'loading'"


def visit(page, url: str) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    page.wait_for_function(READY, timeout=PW.BOOT_TIMEOUT_MS)
    elapsed = (time.perf_counter() - t0) * 1000
    state = page.evaluate("document.body.dataset.state")
    if state != "ready":
        raise RuntimeError(f"{url}: {state}: {page.text_content('#message')}")
    return elapsed


def run_variant(playwright, server, mode: str, warm: int) -> dict:
    with tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS, headless=PW.HEADLESS,
            service_workers=mode)
        try:
            page = context.new_page()
            out = {}
            for name in PAGES:
                visit(page, server.url + name)  # first visit: models cached, snapshot made
            if mode == "allow":
                page.wait_for_function("document.body.dataset.offline === 'saved'", timeout=PW.BOOT_TIMEOUT_MS)
            page.wait_for_timeout(4000)  # the page's own Python snapshot is made after ready
            for name in PAGES:
                out[name] = [visit(page, server.url + name) for _ in range(warm)]
            out["controlled"] = page.evaluate("navigator.serviceWorker?.controller !== null && navigator.serviceWorker?.controller !== undefined")
            return out
        finally:
            context.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=4)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    samples = {v: {p: [] for p in PAGES} for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        server = LiveServer(Path(tmp), ROOT / ".cache" / "reference")
        try:
            for r in range(args.rounds):
                order = list(VARIANTS) if r % 2 == 0 else list(reversed(VARIANTS))
                for variant in order:
                    got = run_variant(playwright, server, VARIANTS[variant], args.warm)
                    assert got["controlled"] == (variant == "service_worker"), got
                    for p in PAGES:
                        samples[variant][p] += got[p]
                    print(f"round {r + 1} {variant}: " + ", ".join(f"{p} {statistics.median(got[p]):.0f} ms" for p in PAGES), flush=True)
        finally:
            server.stop()
    print("\nwarm reload to ready, medians (ms):")
    for p in PAGES:
        sw, base = (statistics.median(samples[v][p]) for v in VARIANTS)
        print(f"  {p:12s} service worker {sw:7.0f}   blocked {base:7.0f}   ratio {sw / base:.3f}x")
    out = ROOT / "benchmarks" / "results" / "offline_ab.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"rounds": args.rounds, "warm": args.warm, "samples_ms": samples}, indent=1))
    print(f"raw samples: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
