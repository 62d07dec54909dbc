"""Search indexing speed: the search page's pipeline in Chromium vs the same pipeline natively,
on the full-size ViT-B/32 architecture (random weights: realistic compute), wasm, in one run.

For each model variant (fp32, and uint8 made by our own quantizer, see model_variants.prepare):
  - browser pipeline: /search.html indexes a folder of 1024x768 JPEGs through its real
    <input webkitdirectory> (read file -> Pyodide preprocess -> onnxruntime-web image encoder, the
    two workers overlapping, batches of what is ready). images/s from the folder's 'open' event
    to its 'done' event, on a fresh browser context (nothing cached).
  - browser pure inference: the same image encoder on pre-made pixel_values in a loop, same batch
    size, through the same runtime.run() call (so the worker round trip is in both).
  - native pipeline: pyapp.preprocess_image (PyPI Pillow) + onnxruntime CPU with the same number
    of threads, the same shape: one preprocessing thread feeding a bounded queue, batches of what
    is ready.
  - native pure inference, same batches.
Targets: browser pipeline / browser pure inference >= 0.9 (preprocessing hidden behind inference),
browser pipeline / native pipeline >= 1 / 2.5.

    python benchmarks/search_index.py [--images 200] [--variants fp32 uint8] [--threads 1 2]
                                      [--batch 4] [--queue 4] [--pure-images 48]

Quick run: --images 24 --pure-images 12 --variants fp32 --threads 1. Machines here are shared and noisy: the
browser and native runs of a variant are interleaved, and each figure is one run (the
per-variant wall time is minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "pyapp"), str(ROOT / "tests" / "reference"),
                str(ROOT / "benchmarks")]

from helpers import PW, LiveServer

CACHE = ROOT / ".cache" / "search-bench"
MODEL_IDS = {"fp32": "vit-b-32-random", "uint8": "vit-b-32-random-uint8"}


def log(*args):
    print(*args, flush=True)


# --------------------------------------------------------------------------------------------------
# Inputs: images and a models folder
# --------------------------------------------------------------------------------------------------

def make_images(n: int) -> Path:
    """n deterministic 1024x768 JPEGs (photo-like: gradients, blobs, edges, noise), cached."""
    import io

    from image_corpus import _photo
    from PIL import Image

    folder = CACHE / f"photos-{n}"
    stamp = folder / ".complete"
    if stamp.exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    log(f"making {n} 1024x768 JPEGs in {folder} ...")
    for k in range(n):
        buf = io.BytesIO()
        Image.fromarray(_photo(1024, 768, 10_000 + k)).save(buf, format="JPEG", quality=90)
        (folder / f"photo_{k:04d}.jpg").write_bytes(buf.getvalue())
    stamp.write_text("ok\n")
    return folder


def models_folder(variants) -> tuple[Path, dict[str, Path]]:
    """One folder to serve with --models-dir holding each variant (hard links: no 600 MB copies)."""
    from model_variants import prepare

    sources = prepare("vit-b-32-random", log=log) if any(v != "fp32" for v in variants) else None
    if sources is None:
        from torch_reference import ensure_reference_models

        sources = {"fp32": ensure_reference_models("vit-b-32-random")}
    root = CACHE / "models"
    out = {}
    for variant in variants:
        src = sources[variant]
        dst = root / variant
        dst.mkdir(parents=True, exist_ok=True)
        for name in ("manifest.json", "image.onnx", "text.onnx"):
            target = dst / name
            if target.exists() and target.stat().st_size == (src / name).stat().st_size and \
                    target.stat().st_mtime >= (src / name).stat().st_mtime:
                continue
            target.unlink(missing_ok=True)
            try:
                os.link(src / name, target)
            except OSError:
                shutil.copy2(src / name, target)
        manifest = json.loads((dst / "manifest.json").read_text())
        assert manifest["id"] == MODEL_IDS[variant], manifest["id"]
        out[variant] = dst
    return root, out


# --------------------------------------------------------------------------------------------------
# Native: pyapp + onnxruntime CPU
# --------------------------------------------------------------------------------------------------

def native_session(folder: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(folder / "image.onnx"), opts, providers=["CPUExecutionProvider"])


def native_pure(session, pixels, n: int, batch: int) -> float:
    import numpy as np

    x = np.concatenate([pixels] * batch)  # (batch, 3, 224, 224)
    session.run(None, {"input": x})  # warm
    t0 = time.perf_counter()
    done = 0
    while done < n:
        session.run(None, {"input": x})
        done += batch
    return done / (time.perf_counter() - t0)


def native_pipeline(session, paths: list[Path], batch: int, queue: int) -> float:
    """The page's pipeline shape: up to `queue` files read + preprocessed ahead by one thread
    while the model runs; each model call takes whatever is ready (1..batch)."""
    import numpy as np

    import pyapp

    def prepare(path):
        return pyapp.preprocess_image(path.read_bytes())  # (1, 3, 224, 224)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = deque()
        nxt = 0

        def fill():
            nonlocal nxt
            while nxt < len(paths) and len(pending) < queue:
                pending.append(pool.submit(prepare, paths[nxt]))
                nxt += 1

        fill()
        while pending:
            ready = [pending.popleft().result()]
            while pending and len(ready) < batch and pending[0].done():
                ready.append(pending.popleft().result())
            fill()
            session.run(None, {"input": np.concatenate(ready)})
    return len(paths) / (time.perf_counter() - t0)


# --------------------------------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------------------------------

PURE_JS = """async ([b64, n, batch]) => {
    const rt = clip.runtime, m = clip.manifest;
    const px = await rt.preprocess(Uint8Array.from(atob(b64), c => c.charCodeAt(0)), m);
    const data = new Float32Array(batch * px.data.length);
    for (let i = 0; i < batch; i++) data.set(px.data, i * px.data.length);
    const dims = [batch, ...px.dims.slice(1)];
    await rt.run(m.id, 'image', { data, dims }); // warm
    const t0 = performance.now();
    let done = 0;
    while (done < n) { await rt.run(m.id, 'image', { data, dims }); done += batch; }
    return done / ((performance.now() - t0) / 1000);
}"""


class BrowserPage:
    """/search.html on a fresh context (nothing cached), the model loaded."""

    def __init__(self, browser, server: LiveServer, model_id: str, threads: int, batch: int, queue: int):
        self.context = browser.new_context(viewport=PW.VIEWPORT)
        self.page = self.context.new_page()
        self.page.set_default_timeout(3_600_000)
        t0 = time.perf_counter()
        self.page.goto(server.url + f"search.html?model={model_id}&threads={threads}&batch={batch}&queue={queue}")
        self.page.wait_for_function("document.body.dataset.state && document.body.dataset.state !== 'loading'",
                                    timeout=900_000)
        state = self.page.evaluate("document.body.dataset.state")
        if state != "ready":
            raise RuntimeError(f"page state {state}: {self.page.evaluate('document.querySelector(`#message`).textContent')}")
        self.load_s = time.perf_counter() - t0
        self.info = self.page.evaluate(
            "clip.info().then(i => ({threads: i.threads, backend: i.backend, isolated: i.crossOriginIsolated}))")

    def pure(self, sample: bytes, n: int, batch: int) -> float:
        """The image encoder on pre-made pixel_values (one real image repeated), through the same
        runtime.run() the pipeline calls, so the worker round trip is in both."""
        import base64

        return self.page.evaluate(PURE_JS, [base64.b64encode(sample).decode(), n, batch])

    def pipeline(self, photos: Path) -> dict:
        """The page indexes the folder through its own <input webkitdirectory>: 'open' to 'done'."""
        self.page.evaluate("""() => {
            window.benchTimes = {};
            search.on('open', () => { window.benchTimes.open = performance.now(); });
            search.on('done', () => { window.benchTimes.done = performance.now(); });
        }""")
        self.page.set_input_files("#folder-input", str(photos))
        self.page.wait_for_function("window.benchTimes.done !== undefined && search.stats().state === 'done'",
                                    timeout=3_600_000)
        stats = self.page.evaluate("search.stats()")
        times = self.page.evaluate("window.benchTimes")
        seconds = (times["done"] - times["open"]) / 1000
        n = stats["embedded"]
        return {"images_per_s": n / seconds, "seconds": seconds, "images": n, "model_calls": stats["runs"],
                "skipped": len(stats["skipped"]), "preprocess_ms_per_image": stats["workerMs"]["preprocess"] / n,
                "inference_ms_per_image": stats["workerMs"]["inference"] / n}

    def close(self):
        self.context.close()


def measure_variant(browser, server, variant, folder, photos, paths, args, threads: int) -> dict:
    """Browser and native alternate, so that load from other processes on a shared machine falls
    on both alike: pure, pure, pipeline, pipeline, pure, pure; batch-1 pure last."""
    import pyapp

    page = BrowserPage(browser, server, MODEL_IDS[variant], threads, args.batch, args.queue)
    log(f"  browser: {MODEL_IDS[variant]} ready in {page.load_s:.0f} s {page.info}")
    try:
        session = native_session(folder, threads)
        sample = paths[0].read_bytes()
        pixels = pyapp.preprocess_image(sample)
        b_pure, n_pure = [], []

        def pures():
            b_pure.append(page.pure(sample, args.pure_images, args.batch))
            n_pure.append(native_pure(session, pixels, args.pure_images, args.batch))
            log(f"  pure inference, batch {args.batch}: browser {b_pure[-1]:.2f}, native {n_pure[-1]:.2f} images/s")

        pures()
        b_pipe = page.pipeline(photos)
        log(f"  browser pipeline: {b_pipe['images']} images in {b_pipe['seconds']:.1f} s = {b_pipe['images_per_s']:.2f} "
            f"images/s ({b_pipe['model_calls']} model calls; in the workers per image: preprocess "
            f"{b_pipe['preprocess_ms_per_image']:.0f} ms, inference {b_pipe['inference_ms_per_image']:.0f} ms)")
        n_pipe = native_pipeline(session, paths, args.batch, args.queue)
        log(f"  native pipeline: {n_pipe:.2f} images/s")
        pures()
        b1 = page.pure(sample, max(4, args.pure_images // 4), 1)
        n1 = native_pure(session, pixels, max(4, args.pure_images // 4), 1)
        log(f"  pure inference, batch 1: browser {b1:.2f}, native {n1:.2f} images/s")
    finally:
        page.close()
    browser_pure = statistics.median(b_pure)
    native_pure_rate = statistics.median(n_pure)
    return {
        "browser": {**b_pipe, "pure_images_per_s": browser_pure, "pure_runs": b_pure, "pure_batch1_images_per_s": b1,
                    "load_s": page.load_s, "info": page.info},
        "native": {"images_per_s": n_pipe, "pure_images_per_s": native_pure_rate, "pure_runs": n_pure,
                   "pure_batch1_images_per_s": n1},
        "browser_pipeline_over_pure": b_pipe["images_per_s"] / browser_pure,
        "native_pipeline_over_pure": n_pipe / native_pure_rate,
        "browser_over_native_pipeline": b_pipe["images_per_s"] / n_pipe,
        "browser_over_native_pure": browser_pure / native_pure_rate,
    }


# --------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--pure-images", type=int, default=48, help="images timed for pure inference (per run)")
    parser.add_argument("--variants", nargs="+", default=["fp32", "uint8"], choices=list(MODEL_IDS))
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1],
                        help="inference thread counts, browser and native alike (each one a full run)")
    parser.add_argument("--batch", type=int, default=4, help="largest batch per model call (the page's default)")
    parser.add_argument("--queue", type=int, default=4, help="preprocessing calls ahead of the model (the page's default)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_index.json"))
    args = parser.parse_args()

    import onnxruntime
    from playwright.sync_api import sync_playwright

    log(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs")
    photos = make_images(args.images)
    paths = sorted(photos.glob("*.jpg"))
    models_root, folders = models_folder(args.variants)
    results = {"images": args.images, "batch": args.batch, "queue": args.queue,
               "engine_native": f"onnxruntime {onnxruntime.__version__} CPU", "machine": platform.uname()._asdict(),
               "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "runs": []}
    server = LiveServer(Path(tempfile.mkdtemp()), models_root)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS)
            for threads in dict.fromkeys(args.threads):
                for variant in args.variants:
                    log(f"{variant}, {threads} thread(s):")
                    results["runs"].append({"variant": variant, "threads": threads, **measure_variant(
                        browser, server, variant, folders[variant], photos, paths, args, threads)})
            browser.close()
    finally:
        server.stop()

    log("")
    log(f"search indexing, {args.images} JPEGs 1024x768, ViT-B/32 (random weights), wasm, batch <= {args.batch}, "
        f"queue {args.queue}, {os.cpu_count()} CPUs (images/s)")
    log(f"{'variant':8s} {'threads':>7s} {'browser':>8s} {'pure':>6s} {'pipe/pure':>9s} {'native':>7s} {'pure':>6s} "
        f"{'pipe/pure':>9s} {'browser/native':>14s}")
    for r in results["runs"]:
        b, nat = r["browser"], r["native"]
        log(f"{r['variant']:8s} {r['threads']:7d} {b['images_per_s']:8.2f} {b['pure_images_per_s']:6.2f} "
            f"{r['browser_pipeline_over_pure']:9.2f} {nat['images_per_s']:7.2f} {nat['pure_images_per_s']:6.2f} "
            f"{r['native_pipeline_over_pure']:9.2f} {r['browser_over_native_pipeline']:14.2f}")
    log(f"load average now {os.getloadavg()}")
    log("targets: pipe/pure >= 0.9, browser/native >= 0.40 (1/2.5)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
