"""Startup benchmark: cold and warm (HTTP-cached) page loads of the start page, in headless Chromium.

For each run it records, from the page's own clock (ms since navigation start):
  pyodide_boot  loadPyodide()             packages  loadPackage(pyapp, numpy, Pillow, ftfy)
  ort_session   model download + session  pyodide_ready / ort_ready / ready
and compares our parallel start with the naive sequential one (`?sequential=1`), side by side in
one run. Prints medians as a table and writes every sample to JSON.

    python benchmarks/startup.py [--runs 3] [--model tiny-reference] [--out benchmarks/results/startup.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "reference"))

from helpers import PW, LiveServer  # noqa: E402


def one_load(browser, url, warm: bool) -> dict:
    context = browser.new_context()
    page = context.new_page()
    try:
        if warm:  # fill the HTTP cache first, then measure a second navigation
            page.goto(url)
            page.wait_for_function("document.body.dataset.state === 'ready'", timeout=PW.BOOT_TIMEOUT_MS)
        page.goto(url)
        page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=PW.BOOT_TIMEOUT_MS)
        state = page.evaluate("document.body.dataset.state")
        if state != "ready":
            raise RuntimeError(f"page ended in state {state}: {page.inner_text('#message')}")
        return page.evaluate(
            """async () => {
                const info = await runtime.info();
                const model = [...runtime.models.values()][0];
                const t = info.timings, py = info.python.timings;
                return {
                    pyodide_boot: py.pyodide_boot_ms, packages: py.packages_ms, pyapp_import: py.import_ms,
                    ort_session: model ? model.image.timings.session_ms + model.text.timings.session_ms : null,
                    model_download: model ? Math.max(model.image.timings.download_ms, model.text.timings.download_ms) : null,
                    pyodide_ready: t.pyodide_ready_ms, ort_ready: t.ort_ready_ms, ready: t.ready_ms,
                    ready_since_navigation: performance.now(),
                };
            }"""
        )
    finally:
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="tiny-reference")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "startup.json"))
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright
    from torch_reference import ensure_reference_models

    models_dir = ensure_reference_models("tiny").parent
    server = LiveServer(Path(tempfile.mkdtemp()), models_dir)
    samples: dict[str, list[dict]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS)
            for run in range(args.runs):  # interleave the variants so machine noise hits all alike
                for variant, query, warm in (
                    ("parallel cold", "", False),
                    ("sequential cold", "&sequential=1", False),
                    ("parallel warm", "", True),
                    ("sequential warm", "&sequential=1", True),
                ):
                    url = f"{server.url}?model={args.model}{query}"
                    samples.setdefault(variant, []).append(one_load(browser, url, warm))
                    print(f"run {run + 1} {variant}: ready {samples[variant][-1]['ready']:.0f} ms", file=sys.stderr)
            browser.close()
    finally:
        server.stop()

    keys = ["pyodide_boot", "packages", "pyapp_import", "model_download", "ort_session", "pyodide_ready", "ort_ready", "ready"]
    medians = {v: {k: statistics.median(s[k] for s in runs) for k in keys if runs[0][k] is not None} for v, runs in samples.items()}
    print(f"\nStartup, model {args.model}, median of {args.runs} runs (ms), {platform.processor() or platform.machine()}, "
          f"Chromium headless\n")
    print("| variant | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for variant, m in medians.items():
        print(f"| {variant} | " + " | ".join(f"{m.get(k, float('nan')):.0f}" for k in keys) + " |")
    for temp in ("cold", "warm"):
        par, seq = medians[f"parallel {temp}"], medians[f"sequential {temp}"]
        slower = max(par["pyodide_ready"], par["ort_ready"])
        print(f"\n{temp}: ready / slower of (pyodide ready, ort ready) = {par['ready'] / slower:.3f} (target <= 1.1); "
              f"parallel vs sequential ready = {par['ready'] / seq['ready']:.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "runs": args.runs, "machine": platform.uname()._asdict(),
                               "samples": samples, "medians": medians}, indent=1))
    print(f"\nraw samples: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
