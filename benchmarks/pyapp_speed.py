"""pyapp speed in CPython and in Pyodide (Chromium), same machine, same inputs, one run.

Preprocessing: ms per 1024x768 JPEG (decode + resize + crop + normalise), median of --runs.
  - CPython: pyapp.preprocess_image (PyPI Pillow).
  - Pyodide, page path: runtime.preprocess() from the page, i.e. what the demo pages do (the
    browser decodes the JPEG, Pyodide does the rest; includes the worker round trip).
  - Pyodide, Pillow only: pyapp.preprocess_image inside Pyodide (its own libjpeg decode).
Tokenizer: prompts/s over a realistic prompt set (distinct prompts, warm BPE cache as in use).

    python benchmarks/pyapp_speed.py [--runs 20] [--out benchmarks/results/pyapp_speed.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "pyapp")]

from helpers import PW, LiveServer  # noqa: E402

SUBJECTS = ["a cat", "a dog", "a red car", "two people", "a mountain lake", "a bowl of soup", "an old map",
            "a city street at night", "a child's drawing", "a bicycle", "a lighthouse", "a plate of sushi"]
STYLES = ["a photo of {}", "a painting of {}", "a blurry photo of {}", "a close-up photo of {}",
          "a black and white photo of {}", "a sketch of {}", "an illustration of {}", "a cropped photo of {}"]


def prompts(n: int) -> list[str]:
    out = []
    for i in range(n):
        out.append(STYLES[i % len(STYLES)].format(SUBJECTS[(i // len(STYLES)) % len(SUBJECTS)]) + f" #{i}")
    return out


def photo_jpeg() -> bytes:
    from image_corpus import generate_image_corpus

    return dict(generate_image_corpus())["rgb_photo_1024x768.jpg"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=5000)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "pyapp_speed.json"))
    args = parser.parse_args()

    import pyapp
    from playwright.sync_api import sync_playwright

    jpeg = photo_jpeg()
    texts = prompts(args.prompts)
    results = {}

    samples = []
    for _ in range(args.runs + 2):
        t0 = time.perf_counter()
        pyapp.preprocess_image(jpeg)
        samples.append((time.perf_counter() - t0) * 1000)
    results["cpython_preprocess_ms"] = statistics.median(samples[2:])
    pyapp.tokenize(texts[:50])
    t0 = time.perf_counter()
    pyapp.tokenize(texts)
    results["cpython_prompts_per_s"] = len(texts) / (time.perf_counter() - t0)

    server = LiveServer(Path(tempfile.mkdtemp()), None)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS)
            page = browser.new_page()
            page.goto(server.url)
            page.wait_for_function("document.body.dataset.state === 'ready'", timeout=PW.BOOT_TIMEOUT_MS)
            page_path = page.evaluate(
                """async ([b64, runs]) => {
                    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                    const m = {image_size: 224, mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711]};
                    const out = [];
                    for (let i = 0; i < runs + 2; i++) {
                        const t0 = performance.now();
                        const r = await runtime.preprocess(bytes.slice(), m);
                        out.push([performance.now() - t0, r.decoder]);
                    }
                    return out.slice(2);
                }""",
                [base64.b64encode(jpeg).decode(), args.runs],
            )
            results["pyodide_page_preprocess_ms"] = statistics.median(ms for ms, _ in page_path)
            results["pyodide_page_decoder"] = page_path[0][1]
            page.evaluate(
                "b64 => runtime.py.call('writeFile', {path: '/tmp/photo.jpg', bytes: Uint8Array.from(atob(b64), c => c.charCodeAt(0))})",
                base64.b64encode(jpeg).decode(),
            )
            pyodide = json.loads(page.evaluate(
                """([texts, runs]) => runtime.runPython(`
import json, statistics, time, pyapp
data = open("/tmp/photo.jpg", "rb").read()
ms = []
for _ in range(${runs} + 2):
    t0 = time.perf_counter(); pyapp.preprocess_image(data); ms.append((time.perf_counter() - t0) * 1000)
texts = json.loads(${JSON.stringify(JSON.stringify(texts))})
pyapp.tokenize(texts[:50])
t0 = time.perf_counter(); pyapp.tokenize(texts); dt = time.perf_counter() - t0
json.dumps({"preprocess_ms": statistics.median(ms[2:]), "prompts_per_s": len(texts) / dt})
`)""",
                [texts, args.runs],
            ))
            results["pyodide_pillow_preprocess_ms"] = pyodide["preprocess_ms"]
            results["pyodide_prompts_per_s"] = pyodide["prompts_per_s"]
            browser.close()
    finally:
        server.stop()

    r = results
    print(f"preprocess 1024x768 JPEG, median of {args.runs} (ms):")
    print(f"  CPython {r['cpython_preprocess_ms']:.1f} | Pyodide page path ({r['pyodide_page_decoder']} decode) "
          f"{r['pyodide_page_preprocess_ms']:.1f} ({r['pyodide_page_preprocess_ms'] / r['cpython_preprocess_ms']:.2f}x) | "
          f"Pyodide Pillow only {r['pyodide_pillow_preprocess_ms']:.1f} "
          f"({r['pyodide_pillow_preprocess_ms'] / r['cpython_preprocess_ms']:.2f}x)  [target <= 1.5x]")
    print(f"tokenizer, {len(texts)} distinct prompts (prompts/s): CPython {r['cpython_prompts_per_s']:,.0f} | "
          f"Pyodide {r['pyodide_prompts_per_s']:,.0f} ({r['cpython_prompts_per_s'] / r['pyodide_prompts_per_s']:.2f}x slower)"
          f"  [target <= 2x, >= 5,000/s]")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
