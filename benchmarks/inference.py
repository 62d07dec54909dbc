"""Inference latency in the browser (onnxruntime-web wasm, in our worker) next to native
onnxruntime in CPython, on the same ONNX files and thread counts, in one run.

For each model kind (the tiny reference CLIP, and the full-size ViT-B/32 architecture with random
weights: realistic compute), each variant (fp32, uint8, int8) and each thread count:
  image ms   one image, batch 1, the image encoder alone (`runtime.run` from the page: includes
             the worker round trip; native: `InferenceSession.run`)
  text ms    one prompt, batch 1, the text encoder alone
  e2e ms     (fp32 only) a 1024x768 JPEG's bytes -> embedding: preprocessing + image encoder
Each figure is the median of --runs runs after --warmup runs; browser and native alternate per
setting so machine noise hits both alike. Ratios are browser / native.

    python benchmarks/inference.py [--kinds tiny vit-b-32-random] [--variants fp32 uint8 int8]
                                   [--threads 1 2] [--runs 20] [--out benchmarks/results/inference.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "reference"), str(ROOT / "tests" / "pyapp"),
                str(ROOT / "benchmarks")]

from helpers import PW, LiveServer  # noqa: E402


def model_folders(kinds, variants) -> dict[str, Path]:
    """{model id: folder with manifest.json} for every kind x variant, built and cached as needed."""
    from model_variants import prepare

    out = {}
    for kind in kinds:
        folders = prepare(kind, log=lambda m: print(m, file=sys.stderr))
        for variant in variants:
            manifest = json.loads((folders[variant] / "manifest.json").read_text())
            out[manifest["id"]] = folders[variant]
    return out


def serve_folder(folders: dict[str, Path]) -> Path:
    """One models folder holding every variant (hard links: no copies, and not symlinks, which the
    server refuses to follow out of its folder)."""
    root = Path(tempfile.mkdtemp(prefix="clip-web-bench-models-"))
    for model_id, folder in folders.items():
        target = root / model_id
        target.mkdir()
        for f in ("manifest.json", "image.onnx", "text.onnx"):
            try:
                os.link(folder / f, target / f)
            except OSError:
                shutil.copy(folder / f, target / f)
    return root


def median(xs):
    return statistics.median(xs)


def native_times(folder: Path, threads: int, pixel_values, input_ids, jpeg: bytes, runs: int, warmup: int, e2e: bool):
    import onnxruntime as ort

    import pyapp

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    manifest = json.loads((folder / "manifest.json").read_text())
    image = ort.InferenceSession(str(folder / "image.onnx"), opts, providers=["CPUExecutionProvider"])
    text = ort.InferenceSession(str(folder / "text.onnx"), opts, providers=["CPUExecutionProvider"])

    def timed(fn):
        for _ in range(warmup):
            fn()
        out = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000)
        return median(out)

    result = {
        "image_ms": timed(lambda: image.run(None, {manifest["image"]["input"]: pixel_values})),
        "text_ms": timed(lambda: text.run(None, {manifest["text"]["input"]: input_ids})),
    }
    if e2e:
        result["e2e_ms"] = timed(lambda: image.run(None, {manifest["image"]["input"]: pyapp.preprocess_image(jpeg)}))
    return result


BROWSER_TIMES = """async ([id, pixels, ids, jpegB64, runs, warmup, e2e]) => {
    const { models } = await (await fetch('/api/models')).json();
    const manifest = models.find(m => m.id === id);
    await runtime.loadModel(manifest);
    const px = { data: new Float32Array(pixels), dims: [1, 3, 224, 224] };
    const tx = { data: new Int32Array(ids), dims: [1, 77] };
    const jpeg = Uint8Array.from(atob(jpegB64), c => c.charCodeAt(0));
    async function timed(fn) {
        for (let i = 0; i < warmup; i++) await fn();
        const out = [];
        for (let i = 0; i < runs; i++) { const t0 = performance.now(); await fn(); out.push(performance.now() - t0); }
        out.sort((a, b) => a - b);
        return out.length % 2 ? out[(out.length - 1) / 2] : (out[out.length / 2 - 1] + out[out.length / 2]) / 2;
    }
    const result = {
        image_ms: await timed(() => runtime.run(id, 'image', { data: px.data.slice(), dims: px.dims })),
        text_ms: await timed(() => runtime.run(id, 'text', { data: tx.data.slice(), dims: tx.dims })),
    };
    if (e2e) result.e2e_ms = await timed(async () => runtime.run(id, 'image', await runtime.preprocess(jpeg.slice(), manifest)));
    result.session_ms = runtime.models.get(id).image.timings.session_ms;
    for (const part of ['image', 'text']) await runtime.ort.call('dispose', { key: `${id}:${part}` });
    runtime.models.delete(id);
    return result;
}"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=["tiny", "vit-b-32-random"])
    parser.add_argument("--variants", nargs="+", default=["fp32", "uint8", "int8"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inference.json"))
    args = parser.parse_args()

    import numpy as np
    from playwright.sync_api import sync_playwright

    import pyapp
    from image_corpus import generate_image_corpus

    jpeg = dict(generate_image_corpus())["rgb_photo_1024x768.jpg"]
    pixel_values = pyapp.preprocess_image(jpeg)  # (1, 3, 224, 224)
    input_ids = pyapp.tokenize("a portrait of an astronaut with the American flag")  # (1, 77)
    folders = model_folders(args.kinds, args.variants)
    models_root = serve_folder(folders)
    server = LiveServer(Path(tempfile.mkdtemp()), models_root)
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS)
            for threads in args.threads:
                page = browser.new_page()
                page.goto(f"{server.url}?threads={threads}")
                page.wait_for_function("document.body.dataset.state === 'ready'", timeout=PW.BOOT_TIMEOUT_MS)
                actual_threads = page.evaluate("runtime.info().then(i => i.onnx.threads)")
                for model_id, folder in folders.items():
                    e2e = model_id in args.kinds or model_id == "tiny-reference"
                    args_js = [model_id, pixel_values.ravel().tolist(), input_ids.ravel().tolist(),
                               base64.b64encode(jpeg).decode(), args.runs, args.warmup, e2e]
                    web = page.evaluate(BROWSER_TIMES, args_js)
                    native = native_times(folder, threads, pixel_values, input_ids.astype(np.int32) if
                                          json.loads((folder / "manifest.json").read_text())["text"]["input_dtype"] == "int32"
                                          else input_ids.astype(np.int64), jpeg, args.runs, args.warmup, e2e)
                    row = {"model": model_id, "threads": threads, "browser_threads": actual_threads,
                           "browser": web, "native": native}
                    rows.append(row)
                    print(f"{model_id:28s} t={threads} image {web['image_ms']:8.1f} ms vs native {native['image_ms']:7.1f} "
                          f"({web['image_ms'] / native['image_ms']:.2f}x) | text {web['text_ms']:7.1f} vs "
                          f"{native['text_ms']:6.1f} ({web['text_ms'] / native['text_ms']:.2f}x)", file=sys.stderr, flush=True)
                page.close()
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(models_root, ignore_errors=True)

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    print(f"\nInference latency, median of {args.runs} after {args.warmup} warm-up runs (ms); {os.cpu_count()} cores, {cpu}; "
          f"headless Chromium, onnxruntime-web wasm vs native onnxruntime\n")
    print("| model | threads | image web | image native | ratio | text web | text native | ratio | e2e web | e2e native |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        w, n = r["browser"], r["native"]
        e2e = f"{w['e2e_ms']:.1f} | {n['e2e_ms']:.1f}" if "e2e_ms" in w else "– | –"
        print(f"| {r['model']} | {r['threads']} | {w['image_ms']:.1f} | {n['image_ms']:.1f} | {w['image_ms'] / n['image_ms']:.2f}x | "
              f"{w['text_ms']:.1f} | {n['text_ms']:.1f} | {w['text_ms'] / n['text_ms']:.2f}x | {e2e} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": {"cores": os.cpu_count(), "cpu": cpu}, "runs": args.runs, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
