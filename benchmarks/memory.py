"""Peak memory per page, model variant and browser: Chromium, Firefox ESR and WebKitGTK.

    python benchmarks/memory.py                       # tiny, ViT-B/32 fp32 and uint8; image and text pages
    python benchmarks/memory.py --browsers chromium --models tiny-reference

Each measurement starts a fresh browser (so the peak is this page's alone), opens the demo page with
the model, waits for ready, embeds the 1024x768 JPEG and a short text through `window.clip`, and
reads the peak resident memory (VmHWM) of the browser's content processes: the renderer (Chromium),
the content process (Firefox), WebKitWebProcess (WebKit). Workers are threads of that process, so
Pyodide's heap, onnxruntime-web's heap and both models are in it. Also read: Pyodide's wasm heap
size. The full-size models need `tests/reference/build_models.py --full` and
`benchmarks/model_variants.py` (for uint8) to have run.

Writes benchmarks/results/memory.json and prints a Markdown table (docs/memory.md).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests", ROOT / "tests" / "pyapp", ROOT / "tests" / "browser", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from helpers import PW, LiveServer  # noqa: E402

MODELS = {  # id -> folder holding its manifest.json
    "tiny-reference": ROOT / ".cache" / "reference" / "tiny",
    "vit-b-32-random": ROOT / ".cache" / "reference" / "vit-b-32-random",
    "vit-b-32-random-uint8": ROOT / ".cache" / "model-variants" / "vit-b-32-random" / "uint8",
}
PAGES = {"image": "image.html", "text": "text.html"}
CONTENT_PROCESS = {"chromium": "--type=renderer", "firefox": "-contentproc", "webkit": "WebKitWebProcess"}
RESULTS = ROOT / "benchmarks" / "results" / "memory.json"

WORK = """async ([b64, withImage]) => {
  for (let i = 0; i < 600 && !window.clip; i++) await new Promise((r) => setTimeout(r, 200));
  const clip = window.clip;
  if (withImage) await clip.embedImage(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
  await clip.embedText('a photo of a cat');
  const heap = Number(await clip.runtime.runPython('import pyodide_js\\nstr(pyodide_js._module.HEAPU8.length)'));
  await new Promise((r) => setTimeout(r, 1000));
  return { python_heap_mb: heap / 1e6, encoders: (await clip.info()).encoders };
}"""


def _descendants(root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(pid))
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def _peak_mb(root: int, marker: str) -> float:
    """The largest VmHWM among root's descendants whose command line has `marker`."""
    from compare import vmhwm_mb

    best = 0.0
    for pid in _descendants(root):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd:
            best = max(best, vmhwm_mb(pid) or 0.0)
    return best


def measure_chromium(url: str, b64: str, with_image: bool) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.set_default_timeout(900_000)
            page.goto(url)
            page.wait_for_function("document.body.dataset.state === 'ready' || document.body.dataset.state === 'error'", timeout=900_000)
            out = page.evaluate(WORK, [b64, with_image])
            out["peak_mb"] = _peak_mb(os.getpid(), CONTENT_PROCESS["chromium"])
        finally:
            browser.close()
    return out


def measure_driver(name: str, url: str, b64: str, with_image: bool) -> dict:
    from drivers import DRIVERS

    driver = DRIVERS[name]()
    try:
        driver.goto(url)
        driver.wait_state("ready", timeout=900)
        out = driver.evaluate(WORK, [b64, with_image])
        root = driver.proc.pid if name == "firefox" else driver.driver.pid
        out["peak_mb"] = _peak_mb(root, CONTENT_PROCESS[name])
    finally:
        driver.close()
    return out


def main() -> int:
    from image_corpus import generate_image_corpus

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--browsers", nargs="+", default=["chromium", "firefox", "webkit"], choices=list(CONTENT_PROCESS))
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--pages", nargs="+", default=list(PAGES), choices=list(PAGES))
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "memory.md", help="the Markdown report ('' for none)")
    args = ap.parse_args()
    missing = [m for m in args.models if not (MODELS[m] / "manifest.json").exists()]
    if missing:
        raise SystemExit(f"models not built: {missing} (tests/reference/build_models.py --full; benchmarks/model_variants.py)")

    from compare import _link_tree

    site = Path(tempfile.mkdtemp(prefix="clip-memory-site-"))
    for model in args.models:
        _link_tree(MODELS[model], site / model)  # hard links: the server serves no symlinks
    b64 = base64.b64encode(dict(generate_image_corpus())["rgb_photo_1024x768.jpg"]).decode()
    rows = []
    logs = Path(tempfile.mkdtemp(prefix="clip-memory-logs-"))
    server = LiveServer(logs, site)
    try:
        for browser in args.browsers:
            for model in args.models:
                for page in args.pages:
                    url = f"{server.url}{PAGES[page]}?model={model}"
                    t0 = time.time()
                    out = (measure_chromium(url, b64, page == "image") if browser == "chromium"
                           else measure_driver(browser, url, b64, page == "image"))
                    row = {"browser": browser, "model": model, "page": page, **out, "seconds": time.time() - t0}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        server.stop()
        shutil.rmtree(site, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    sizes = {m: sum((MODELS[m] / json.loads((MODELS[m] / "manifest.json").read_text())[p]["url"]).stat().st_size
                    for p in ("image", "text")) / 1e6 for m in args.models}
    lines = ["| browser | model (both ONNX files) | page | peak content process MB | Pyodide heap MB |",
             "| --- | --- | --- | --: | --: |"]
    for r in rows:
        lines.append(f"| {r['browser']} | {r['model']} ({sizes[r['model']]:.0f} MB) | {r['page']} | {r['peak_mb']:.0f} | "
                     f"{r['python_heap_mb']:.0f} |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.docs and str(args.docs) not in ("", "."):
        args.docs.write_text(DOC.format(table=table))
        print(f"wrote {args.docs}")
    return 0


DOC = """# Peak memory per page, model and browser

Written by `python benchmarks/memory.py` (raw: benchmarks/results/memory.json). A fresh browser per
row; the demo page loads the model (both encoders: the image page loads the text encoder too, for
labels), embeds one 1024x768 JPEG (image page) and one short text; the figure is the peak resident
memory (VmHWM) of the browser's content process, which holds the page and its workers (Pyodide,
onnxruntime-web and the models). Headless Chromium, headless Firefox ESR, WebKitGTK's MiniBrowser
on Xvfb; this 2-core Linux machine.

{table}
"""


if __name__ == "__main__":
    raise SystemExit(main())
