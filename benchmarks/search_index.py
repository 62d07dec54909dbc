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

With --scale N [N ...] [--rounds 5] it measures the search index itself instead (docs/search-index.md):
N synthetic 512-d embeddings (clustered like a photo library) imported through the page's "Import
index" button, then import time, the vectors' memory, query latency (text, by example, zero-shot
into 10 labels), main-thread long tasks, and the compact scores' agreement with float32.

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
# --scale: the search index at 10,000 / 100,000 images (synthetic embeddings, no model calls for
# images): import, memory, query latency, main-thread long tasks, agreement with float32
# --------------------------------------------------------------------------------------------------

SCALE_MODEL = "tiny-reference"  # its text encoder embeds the prompts (512-d, like ViT-B/32)
SCALE_LABELS = ["a photo of a person", "a landscape", "a city street", "an animal", "food on a plate",
                "a document", "a car", "a beach", "a building at night", "a flower"]
SCALE_DIM = 512
SCALE_CLUSTERS = 1000  # photo libraries are clumpy: many near-duplicates, a dense head of close scores


def synthetic_embeddings(n: int, seed: int = 14):
    """n raw 512-d embeddings shaped like CLIP image embeddings: a shared direction (CLIP's
    embeddings sit in a cone), one of 1,000 cluster directions, noise, norms around 10."""
    import numpy as np

    rng = np.random.default_rng(seed)
    common = rng.standard_normal(SCALE_DIM)
    common /= np.linalg.norm(common)
    centres = rng.standard_normal((SCALE_CLUSTERS, SCALE_DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((n, SCALE_DIM)) / np.sqrt(SCALE_DIM)
    v = 0.55 * common + 0.6 * centres[rng.integers(0, SCALE_CLUSTERS, n)] + 0.55 * noise
    v *= rng.uniform(8, 12, (n, 1))
    return v.astype(np.float32)


def synthetic_index_file(n: int) -> tuple[Path, "np.ndarray"]:
    """The page's export format, written once per size into the cache."""
    import base64

    import numpy as np

    emb = synthetic_embeddings(n)
    path = CACHE / f"synthetic-{n}.clip-index.json"
    if not path.exists():
        log(f"writing {path} ...")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            head = {"format": "clip-web-search-index", "version": 1, "model": SCALE_MODEL, "embed_dim": SCALE_DIM,
                    "name": f"synthetic {n}", "root": "synthetic", "created": "2026-12-02T00:00:00.000Z", "count": n,
                    "skipped": []}
            f.write(json.dumps(head, separators=(",", ":"))[:-1] + ',"items":[')
            for k in range(n):
                row = {"path": f"synthetic/{k:06d}.jpg", "size": 100_000 + k, "lastModified": 1_700_000_000_000 + k,
                       "embedding": base64.b64encode(emb[k].astype("<f4").tobytes()).decode()}
                f.write(("," if k else "") + json.dumps(row, separators=(",", ":")))
            f.write("]}")
        tmp.rename(path)
    return path, emb


# longtask entries (>= 50 ms of main-thread work, whatever it was) and, to say whose, the scripts of
# long animation frames that ran 30 ms or more.
OBSERVE_JS = """() => {
    window.benchLong = [];
    window.benchScripts = [];
    if (!window.benchObserver) {
        window.benchObserver = new PerformanceObserver((list) => {
            for (const e of list.getEntries()) window.benchLong.push(Math.round(e.duration));
        });
        window.benchObserver.observe({type: 'longtask'});
        new PerformanceObserver((list) => {
            for (const e of list.getEntries()) for (const s of e.scripts) {
                if (s.duration >= 30) window.benchScripts.push(`${Math.round(s.duration)} ms ${s.invoker} ${s.sourceFunctionName} ${s.sourceURL.split('/').pop()}:${s.sourceCharPosition}`);
            }
        }).observe({type: 'long-animation-frame'});
    }
}"""

TIMED_JS = """async ([what, arg]) => {
    const t0 = performance.now();
    const out = what === 'sort' ? await search.sort(arg) : await search.rank(arg, 10);
    return { ms: performance.now() - t0, count: out.count, top: out.top ? out.top.map((r) => r.path) : null };
}"""

# The search worker's own time for one ranking (a query near the data), and the rows it read back.
WORKER_RANK_JS = """async () => {
    const i = await search.index.vectors.row(12345 % search.stats().total);
    const q = Float64Array.from(i.unit, (x, k) => x + ((k * 7919) % 13 - 6) / 400);
    let s = 0; for (const x of q) s += x * x; for (let k = 0; k < q.length; k++) q[k] /= Math.sqrt(s);
    const r = await search.index.rank(q);
    return { ms: r.ms, refined: r.refined, timing: r.timing };
}"""

# The search worker's own time for a zero-shot sort into 10 labels (rows of the library as labels).
WORKER_ZERO_SHOT_JS = """async () => {
    const total = search.stats().total;
    const labels = [];
    for (let j = 0; j < 10; j++) labels.push((await search.index.vectors.row((j * 9973) % total)).unit);
    return (await search.index.zeroShot(labels, 100)).ms;
}"""

# One zero-shot sort through the page (search.sort: label embeddings cached, the search worker's
# sort, the grid) with the search worker's sort on `threads` threads (1: without its helper), ->
# the page's ms and the worker's own.
ZERO_SHOT_THREADS_JS = """async ([threads, labels]) => {
    await search.index.vectors.worker.call('zeroShotThreads', { threads });
    const idx = search.index;
    if (!idx.timedZeroShot) {
        const plain = idx.zeroShot.bind(idx);
        idx.timedZeroShot = true;
        idx.zeroShot = async (...args) => { const r = await plain(...args); window.lastZeroShot = r; return r; };
    }
    const t0 = performance.now();
    await search.sort(labels);
    const ms = performance.now() - t0;
    return { ms, worker: window.lastZeroShot.ms, threads: window.lastZeroShot.timing.threads };
}"""
# Sorts per thread count in the A/B, alternating (after one of each to warm up).
ZERO_SHOT_AB_SORTS = 8

MEMORY_JS = """async () => {
    const vectors = await search.index.vectors.stats();
    let total = null;
    if (self.crossOriginIsolated && performance.measureUserAgentSpecificMemory) {
        try { total = (await performance.measureUserAgentSpecificMemory()).bytes; } catch (e) { total = String(e); }
    }
    return { vectors, total, heap: performance.memory ? performance.memory.usedJSHeapSize : null };
}"""

# The page's compact scores (no exact pass) and its default ranking, for a query vector given here.
AGREE_JS = """async ([q, labels]) => {
    const Q = Float64Array.from(q);
    const compact = await search.index.rank(Q, { compact: true });
    const exact = await search.index.rank(Q);
    const scores = new Float32Array(compact.scores.length);
    compact.ids.forEach((id, k) => { scores[id] = compact.scores[k]; });
    const L = labels.map((l) => Float64Array.from(l));
    const zc = await search.index.zeroShot(L, 100, { compact: true });
    const ze = await search.index.zeroShot(L, 100);
    return { scores: Array.from(scores), compactTop: Array.from(compact.ids.subarray(0, 10)),
             exactTop: Array.from(exact.ids.subarray(0, 10)), exactTopScores: Array.from(exact.scores.subarray(0, 10)),
             refined: exact.refined, zsCompact: Array.from(zc.label), zsExact: Array.from(ze.label),
             zsProbCompact: Array.from(zc.prob), zsRefined: ze.refined };
}"""


def agreement(page, emb, rounds: int, rng) -> dict:
    """Compact (int8) and float16 against float32, on queries near the data (a cluster's direction
    plus noise: a dense head of close scores, the hard case for top-10 agreement)."""
    import numpy as np

    unit = emb.astype(np.float64) / np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True)
    f16 = unit.astype(np.float16).astype(np.float64)
    out = {"int8_max_abs": [], "float16_max_abs": [], "int8_top10_same_order": 0, "int8_top10_overlap": [],
           "float16_top10_same_order": 0, "page_top10_same_order": 0, "page_top10_max_abs": [], "refined": [],
           "zs_label_agree_compact": [], "zs_label_agree_page": [], "zs_prob_max_abs_compact": [], "zs_refined": [],
           "queries": rounds}
    for _ in range(rounds):
        q = unit[rng.integers(0, len(unit))] + 0.5 * rng.standard_normal(SCALE_DIM) / np.sqrt(SCALE_DIM)
        q /= np.linalg.norm(q)
        labels = unit[rng.integers(0, len(unit), len(SCALE_LABELS))] + 0.8 * rng.standard_normal((len(SCALE_LABELS), SCALE_DIM)) / np.sqrt(SCALE_DIM)
        labels /= np.linalg.norm(labels, axis=1, keepdims=True)
        got = page.evaluate(AGREE_JS, [q.tolist(), labels.tolist()])
        exact = unit @ q
        order = sorted(range(len(exact)), key=lambda k: (-exact[k], k))[:10]
        s8 = np.asarray(got["scores"], np.float64)
        out["int8_max_abs"].append(float(np.abs(s8 - exact).max()))
        out["int8_top10_same_order"] += got["compactTop"] == order
        out["int8_top10_overlap"].append(len(set(got["compactTop"]) & set(order)))
        s16 = f16 @ q
        out["float16_max_abs"].append(float(np.abs(s16 - exact).max()))
        out["float16_top10_same_order"] += sorted(range(len(s16)), key=lambda k: (-s16[k], k))[:10] == order
        out["page_top10_same_order"] += got["exactTop"] == order
        out["page_top10_max_abs"].append(float(np.abs(np.asarray(got["exactTopScores"]) - exact[order]).max()))
        out["refined"].append(got["refined"])
        logits = 100 * unit @ labels.T
        best = logits.argmax(1)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p = (p / p.sum(1, keepdims=True)).max(1)
        out["zs_label_agree_compact"].append(float((np.asarray(got["zsCompact"]) == best).mean()))
        out["zs_label_agree_page"].append(float((np.asarray(got["zsExact"]) == best).mean()))
        out["zs_prob_max_abs_compact"].append(float(np.abs(np.asarray(got["zsProbCompact"]) - p).max()))
        out["zs_refined"].append(got["zsRefined"])
    return out


def scale_page(playwright, server):
    """/search.html in a fresh on-disk profile, as a person's browser has (off-the-record contexts
    keep the origin's files in memory behind a slower path: a read of one exact row takes ~1 ms
    there, ~50 us here), the model ready."""
    profile = tempfile.mkdtemp(prefix="search-scale-")
    context = playwright.chromium.launch_persistent_context(profile, viewport=PW.VIEWPORT,
                                                            executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS)
    context.profile_dir = profile  # ~0.6 GB after an import of 100,000 (IndexedDB): close_scale_page removes it
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(900_000)
    page.goto(server.url + f"search.html?model={SCALE_MODEL}")
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=300_000)
    return context, page


def close_scale_page(context) -> None:
    context.close()
    shutil.rmtree(context.profile_dir, ignore_errors=True)


def measure_scale(playwright, server, n: int, rounds: int) -> dict:
    import numpy as np

    path, emb = synthetic_index_file(n)
    result = {"n": n, "file_bytes": path.stat().st_size, "import_s": [], "cache_write_s": [], "import_long_tasks": [],
              "memory": [], "text_cold_ms": [], "text_ms": [], "example_ms": [], "zero_shot_ms": [],
              "zero_shot_cold_ms": [], "query_long_tasks": [], "worker_rank_ms": [], "worker_rank_refined": [],
              "worker_zero_shot_ms": [],
              "import_long_scripts": [], "query_long_scripts": [],
              "zero_shot_ab": {str(t): {"ms": [], "worker_ms": []} for t in (1, 2)}}
    for r in range(rounds):
        context, page = scale_page(playwright, server)  # a fresh profile each round: nothing cached
        try:
            page.evaluate(OBSERVE_JS)
            t0 = time.perf_counter()
            page.set_input_files("#import-input", str(path))  # the page's own "Import index" button
            # (search.index's own fields: search.stats() walks every item, and polling it every 20 ms
            # would be main-thread work of the benchmark's own.)
            page.wait_for_function("search.index.opened > 0 && search.index.state === 'done'", polling=20)
            result["import_s"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            page.wait_for_function("(() => { if (!window.cacheWritten) { window.cacheWritten = 'no'; "
                                   "search.index.writing.then(() => { window.cacheWritten = 'yes'; }); } "
                                   "return window.cacheWritten === 'yes'; })()", polling=100)
            result["cache_write_s"].append(time.perf_counter() - t0)  # after searchable: IndexedDB, for reopening
            result["import_long_tasks"].append(page.evaluate("window.benchLong"))
            result["import_long_scripts"].append(page.evaluate("window.benchScripts"))
            result["memory"].append(page.evaluate(MEMORY_JS))
            page.evaluate(OBSERVE_JS)
            prompt = {"text": f"a sunset over the sea {r}; a beach", "negative": "a dark photo"}  # new text: cold
            result["text_cold_ms"].append(page.evaluate(TIMED_JS, ["rank", prompt])["ms"])
            result["text_ms"].append(page.evaluate(TIMED_JS, ["rank", prompt])["ms"])  # text embeddings cached
            result["example_ms"].append(page.evaluate(TIMED_JS, ["rank", {"examplePath": f"synthetic/{(r * 7919) % n:06d}.jpg"}])["ms"])
            labels = [f"{label} {r}" for label in SCALE_LABELS]
            result["zero_shot_cold_ms"].append(page.evaluate(TIMED_JS, ["sort", labels])["ms"])
            result["zero_shot_ms"].append(page.evaluate(TIMED_JS, ["sort", labels])["ms"])
            page.evaluate("search.query({}); search.zeroShot([])")
            result["query_long_tasks"].append(page.evaluate("window.benchLong"))
            result["query_long_scripts"].append(page.evaluate("window.benchScripts"))
            worker = page.evaluate(WORKER_RANK_JS)
            result["worker_rank_ms"].append(worker["ms"])
            result["worker_rank_refined"].append(worker["refined"])
            result["worker_zero_shot_ms"].append(page.evaluate(WORKER_ZERO_SHOT_JS))
            # The search worker's sort on one thread vs with its helper: the same page, alternating.
            for k in range(2 * ZERO_SHOT_AB_SORTS + 2):
                threads = 1 + (k + r) % 2
                got = page.evaluate(ZERO_SHOT_THREADS_JS, [threads, labels])
                if k >= 2:
                    result["zero_shot_ab"][str(got["threads"])]["ms"].append(got["ms"])
                    result["zero_shot_ab"][str(got["threads"])]["worker_ms"].append(got["worker"])
            page.evaluate("search.index.vectors.worker.call('zeroShotThreads', { threads: 2 }).then(() => search.zeroShot([]))")
            log(f"  {n}: import {result['import_s'][-1]:.2f} s (cache written {result['cache_write_s'][-1]:.1f} s "
                f"after), text {result['text_ms'][-1]:.1f} ms (cold {result['text_cold_ms'][-1]:.1f}), example "
                f"{result['example_ms'][-1]:.1f} ms, zero-shot {result['zero_shot_ms'][-1]:.1f} ms (worker "
                f"{result['worker_zero_shot_ms'][-1]:.1f}), long tasks import "
                f"{result['import_long_tasks'][-1]} queries {result['query_long_tasks'][-1]} "
                f"{result['import_long_scripts'][-1] + result['query_long_scripts'][-1]}, "
                f"vectors {result['memory'][-1]['vectors']['bytes'] / 1e6:.1f} MB")
            if r == rounds - 1:
                result["agreement"] = agreement(page, emb, 5, np.random.default_rng(1))
        finally:
            close_scale_page(context)
    med = statistics.median
    result["median"] = {k: med(result[k]) for k in ("import_s", "cache_write_s", "text_cold_ms", "text_ms", "example_ms",
                                                     "zero_shot_ms", "zero_shot_cold_ms", "worker_rank_ms",
                                                     "worker_zero_shot_ms")}
    result["median"]["vector_mb"] = med(m["vectors"]["bytes"] for m in result["memory"]) / 1e6
    for t, ab in result["zero_shot_ab"].items():
        result["median"][f"zero_shot_threads_{t}_ms"] = med(ab["ms"]) if ab["ms"] else None
        result["median"][f"worker_zero_shot_threads_{t}_ms"] = med(ab["worker_ms"]) if ab["worker_ms"] else None
    result["median"]["longest_main_thread_task_ms"] = max(
        [t for ts in result["import_long_tasks"] + result["query_long_tasks"] for t in ts], default=0)
    return result


def main_scale(args) -> int:
    from playwright.sync_api import sync_playwright

    from torch_reference import ensure_reference_models

    log(f"load average {os.getloadavg()} on {os.cpu_count()} CPUs")
    results = {"machine": platform.uname()._asdict(), "cpus": os.cpu_count(), "rounds": args.rounds,
               "load_average_at_start": os.getloadavg(), "sizes": []}
    server = LiveServer(Path(tempfile.mkdtemp()), ensure_reference_models("tiny").parent)
    try:
        with sync_playwright() as p:
            for n in args.scale:
                results["sizes"].append(measure_scale(p, server, n, args.rounds))
    finally:
        server.stop()
    results["load_average_at_end"] = os.getloadavg()
    log("")
    log(f"search index, synthetic 512-d embeddings, Chromium, medians of {args.rounds}")
    log(f"{'images':>8s} {'import s':>8s} {'vectors MB':>10s} {'text ms':>8s} {'cold':>6s} {'example':>8s} "
        f"{'0-shot 10':>9s} {'cold':>6s} {'worker rank':>11s} {'worker 0-shot':>13s} {'longest task':>12s} {'cache write s':>13s}")
    for r in results["sizes"]:
        m = r["median"]
        log(f"{r['n']:8d} {m['import_s']:8.2f} {m['vector_mb']:10.1f} {m['text_ms']:8.1f} {m['text_cold_ms']:6.1f} "
            f"{m['example_ms']:8.1f} {m['zero_shot_ms']:9.1f} {m['zero_shot_cold_ms']:6.1f} {m['worker_rank_ms']:11.1f} "
            f"{m['worker_zero_shot_ms']:13.1f} "
            f"{m['longest_main_thread_task_ms']:12d} {m['cache_write_s']:13.1f}")
        if m["zero_shot_threads_1_ms"] is not None and m["zero_shot_threads_2_ms"] is not None:
            log(f"         zero-shot A/B, same pages, {ZERO_SHOT_AB_SORTS} sorts per round each: one thread "
                f"{m['zero_shot_threads_1_ms']:.1f} ms (worker {m['worker_zero_shot_threads_1_ms']:.1f}), with the helper "
                f"{m['zero_shot_threads_2_ms']:.1f} ms (worker {m['worker_zero_shot_threads_2_ms']:.1f}): "
                f"{m['zero_shot_threads_2_ms'] / m['zero_shot_threads_1_ms']:.2f}x end to end, "
                f"{m['worker_zero_shot_threads_2_ms'] / m['worker_zero_shot_threads_1_ms']:.2f}x in the worker")
        a = r["agreement"]
        log(f"         agreement over {a['queries']} queries: int8 max |d score| {max(a['int8_max_abs']):.5f}, "
            f"float16 {max(a['float16_max_abs']):.6f}; top-10 same order: int8 alone {a['int8_top10_same_order']}, "
            f"float16 {a['float16_top10_same_order']}, page (int8 + exact head) {a['page_top10_same_order']}; "
            f"zero-shot labels: int8 alone {min(a['zs_label_agree_compact']):.4f}, page {min(a['zs_label_agree_page']):.4f}")
    log(f"load average now {os.getloadavg()}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    log(f"wrote {args.out}")
    return 0


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
    parser.add_argument("--out", default=None, help="results file (default: results/search_index.json, "
                        "results/search_scale.json with --scale)")
    parser.add_argument("--scale", type=int, nargs="+", default=None, metavar="N",
                        help="instead: the search index at N synthetic embeddings (e.g. 10000 100000)")
    parser.add_argument("--rounds", type=int, default=5, help="with --scale: fresh imports (and queries) per size")
    args = parser.parse_args()
    if args.scale:
        args.out = args.out or str(ROOT / "benchmarks" / "results" / "search_scale.json")
        return main_scale(args)
    args.out = args.out or str(ROOT / "benchmarks" / "results" / "search_index.json")

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
