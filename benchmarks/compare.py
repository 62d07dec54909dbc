"""Side-by-side benchmark: clip-web vs transformers.js vs native onnxruntime, same weights.

    python benchmarks/compare.py            # tiny + full-size ViT-B/32 (random weights), fp32 + uint8
    python benchmarks/compare.py --quick    # tiny model only, fewer samples (< 3 min)

Writes docs/benchmarks.md (tables, method, where we are behind), docs/benchmarks.json (every raw
sample) and docs/img/*.png (matplotlib). Contenders, all on the same weights and thread count:

  ours    this project through its client API (web/js/clip.js createClip): Pyodide + pyapp for
          preprocessing and tokens, onnxruntime-web 1.30 (plain wasm build) in a module worker
  tjs     transformers.js (pinned, `npm pack`, self-hosted; see benchmarks/tjs_models.py) with its
          own preprocessing and tokenizer, in the page, the way its documentation shows
  native  pyapp + onnxruntime in CPython (benchmarks/native_worker.py): the machine's ceiling

Everything runs against one `clip-web serve` (tests/helpers.LiveServer); the transformers.js files,
the benchmark pages (benchmarks/pages/) and the images are served from its `--models-dir` (a folder
of hard links under .cache/bench/site/), so both pages get the same server, headers and caching.
Contenders are interleaved round by round so that noise from other processes falls on all alike;
ratios are taken within one run. Needs Chromium, npm (first run) and the test venv + matplotlib.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT, ROOT / "tests", ROOT / "tests" / "reference", ROOT / "tests" / "pyapp", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from helpers import PW, LiveServer  # noqa: E402

import tjs_models  # noqa: E402

SITE = ROOT / ".cache" / "bench" / "site"
DOCS = ROOT / "docs"
CONTENDERS = ("ours", "tjs", "native")
PAGE_CONTENDERS = ("ours", "tjs")
KINDS = ("tiny", "vit-b-32-random")
DTYPES = ("fp32", "uint8")
TJS_DTYPE = {"fp32": "fp32", "uint8": "q8"}  # transformers.js's name for *_quantized.onnx
LATENCY_IMAGE = "rgb_photo_1024x768.jpg"  # from tests/pyapp/image_corpus.py
LATENCY_TEXT = "a photo of a cat"
PAGE_TIMEOUT_MS = 600_000


def log(msg: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ settings
def settings(quick: bool, kinds=None) -> dict:
    threads = os.cpu_count() or 1
    if quick:
        # Startup rounds for fp32 only; every run still gets one cold sample per contender from
        # the cold load of its work pages.
        return dict(quick=True, kinds=list(kinds or ["tiny"]), dtypes=list(DTYPES), threads=threads,
                    startup_rounds=1, startup_dtypes=["fp32"], startup_variants=["ours", "tjs", "native"],
                    latency_rounds=4, latency_per_round=5, throughput_images=20, throughput_chunks=2,
                    engine_kinds=[], engine_rounds=0)
    return dict(quick=False, kinds=list(kinds or KINDS), dtypes=list(DTYPES), threads=threads,
                startup_rounds=3, startup_dtypes=list(DTYPES),
                startup_variants=["ours", "ours_overlapped", "tjs", "native"],
                latency_rounds=6, latency_per_round=6, throughput_images=100, throughput_chunks=4,
                engine_kinds=["vit-b-32-random"], engine_rounds=6)


def machine_info() -> dict:
    cpu, simd = "unknown", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not simd:
                simd = [f for f in line.split(":", 1)[1].split() if f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")]
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu": cpu, "simd": simd, "cores": os.cpu_count(), "memory_gb": mem_gb, "os": platform.platform(),
            "python": platform.python_version(), "loadavg_at_start": load}


# ---------------------------------------------------------------------------------------- site
def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _link_tree(src: Path, dst: Path, skip=("stamp.txt", "stamp.json", ".stamp")) -> None:
    for p in sorted(src.rglob("*")):
        if p.is_file() and p.name not in skip:
            _link(p, dst / p.relative_to(src))


def throughput_set(count: int) -> list[tuple[str, bytes]]:
    """`count` distinct photo-like JPEGs at common camera/web sizes (deterministic)."""
    from image_corpus import _encode, _photo
    from PIL import Image

    sizes = [(640, 480), (800, 600), (1024, 768), (1280, 960), (1600, 1200), (480, 640), (768, 1024),
             (1200, 800), (500, 500), (1920, 1080)]
    out = []
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        out.append((f"tp_{i:03d}_{w}x{h}.jpg", _encode(Image.fromarray(_photo(w, h, 1000 + i)), "JPEG", quality=88)))
    return out


def build_site(cfg: dict) -> dict:
    """Model folders (ours, both dtypes), transformers.js (library + model folders), pages, images."""
    import model_variants
    from image_corpus import generate_image_corpus

    if SITE.exists():
        shutil.rmtree(SITE)
    SITE.mkdir(parents=True)
    lib = tjs_models.ensure_library()
    _link_tree(lib["dir"], SITE / "tjs" / "lib")
    ours = {}
    for kind in cfg["kinds"]:
        folders = model_variants.prepare(kind, log=log)
        for dtype in cfg["dtypes"]:
            folder = folders[dtype]
            manifest = json.loads((folder / "manifest.json").read_text())
            for name in ("manifest.json", manifest["image"]["url"], manifest["text"]["url"]):
                _link(folder / name, SITE / manifest["id"] / name)
            ours[f"{kind}/{dtype}"] = {"id": manifest["id"], "folder": str(folder),
                                       "bytes": manifest["image"]["bytes"] + manifest["text"]["bytes"]}
        _link_tree(tjs_models.ensure_model(kind), SITE / "tjs" / "models" / kind)
    (SITE / "pages").mkdir()
    for p in (ROOT / "benchmarks" / "pages").iterdir():
        if p.is_file():
            shutil.copyfile(p, SITE / "pages" / p.name)
    (SITE / "images").mkdir()
    corpus = generate_image_corpus()
    tput = throughput_set(min(cfg["throughput_images"], 25))
    for name, data in corpus + tput:
        (SITE / "images" / name).write_bytes(data)
    tput_names = [tput[i % len(tput)][0] for i in range(cfg["throughput_images"])]
    return {"ours": ours, "library": {k: v for k, v in lib.items() if k != "dir"},
            "corpus": [n for n, _ in corpus], "corpus_bytes": {n: d for n, d in corpus},
            "throughput": tput_names}


# -------------------------------------------------------------------------------------- oracle
def golden_texts() -> list[dict]:
    return json.loads((ROOT / "tests" / "pyapp" / "golden" / "tokens.json").read_text())


def oracle(kind: str, corpus_bytes: dict, golden: list[dict]) -> dict:
    """torch CLIPModel embeddings: images through pyapp.preprocess_image (OpenAI's preprocess,
    verified identical), texts from OpenAI's own token ids. Cached in .cache/bench/oracle/, keyed by
    the checkpoint's build stamp, pyapp's code, the corpus and the golden file."""
    import hashlib

    import numpy as np
    from torch_reference import ensure_reference_models

    folder = ensure_reference_models(kind)
    h = hashlib.sha256((folder / "build-stamp.txt").read_bytes())
    h.update((folder / "manifest.json").read_bytes())
    for f in sorted((ROOT / "pyapp").glob("*.py")):
        h.update(f.read_bytes())
    for name in sorted(corpus_bytes):
        h.update(name.encode() + hashlib.sha256(corpus_bytes[name]).digest())
    h.update(json.dumps([g["ids"] for g in golden]).encode())
    cache = ROOT / ".cache" / "bench" / "oracle" / f"{kind}-{h.hexdigest()[:20]}.npz"
    names = sorted(corpus_bytes)
    if cache.is_file():
        data = np.load(cache)
        return {"images": dict(zip(names, data["images"])), "texts": data["texts"]}

    from torch_reference import TorchClip

    import pyapp

    clip = TorchClip(folder / "checkpoint")
    images = np.stack([clip.image_embeds(pyapp.preprocess_image(corpus_bytes[n]))[0] for n in names])
    ids = np.array([g["ids"] for g in golden], dtype=np.int64)
    texts = np.concatenate([clip.text_embeds(ids[i:i + 64]) for i in range(0, len(ids), 64)])
    del clip
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=images, texts=texts)
    return {"images": dict(zip(names, images)), "texts": texts}


# ----------------------------------------------------------------------------------- processes
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d.name))
    return kids


def renderer_pids() -> set[int]:
    """Chromium renderer processes descending from this process (not other people's browsers)."""
    kids = _children()
    todo, found = [os.getpid()], set()
    while todo:
        pid = todo.pop()
        for k in kids.get(pid, []):
            todo.append(k)
            try:
                if b"--type=renderer" in Path(f"/proc/{k}/cmdline").read_bytes():
                    found.add(k)
            except OSError:
                pass
    return found


def renderer_hwm() -> dict[int, float]:
    """{pid: VmHWM MB} of our renderer processes, now."""
    out = {}
    for pid in renderer_pids():
        v = vmhwm_mb(pid)
        if v is not None:
            out[pid] = v
    return out


def vmhwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---------------------------------------------------------------------------------- contenders
class PageContender:
    """One benchmark page in its own browser context (own HTTP cache, own renderer process)."""

    CAMEL = {"load_images": "loadImages", "embed_images": "embedImages", "time_image": "timeImage",
             "time_text": "timeText", "throughput": "throughput", "texts": "texts"}

    def __init__(self, browser, url: str, external: list, console: list):
        before = renderer_pids()
        self.context = browser.new_context(viewport=PW.VIEWPORT)
        self.context.set_default_timeout(PAGE_TIMEOUT_MS)
        self.page = self.context.new_page()
        self._watch(self.page, external, console)
        self.startup = load_page(self.page, url)
        self.renderers = renderer_pids() - before

    @staticmethod
    def _watch(page, external, console):
        def on_request(req):
            u = req.url
            if not (u.startswith("http://127.0.0.1:") or u.startswith("blob:") or u.startswith("data:")):
                external.append(u)

        page.on("request", on_request)
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"[:500]) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: console.append(f"pageerror: {e}"[:500]))

    def call(self, method: str, *args):
        return self.page.evaluate("([m, args]) => window.bench[m](...args)", [self.CAMEL[method], list(args)])

    def close(self):
        try:
            self.context.close()
        except Exception:  # noqa: BLE001 - the browser may already be gone
            pass

    def close_and_identify(self, timeout: float = 15.0) -> set[int]:
        """Close the context and return the renderer pids that went away with it: Chromium gives
        every browser context its own renderer processes, and the page (with its workers) lives in
        one of them. (Which new process serves a page cannot be told reliably while it is open:
        spare renderers are started ahead of need.)"""
        alive = renderer_pids()
        self.close()
        deadline = time.time() + timeout
        gone: set[int] = set()
        while time.time() < deadline:
            now_gone = alive - renderer_pids()
            if now_gone and now_gone == gone:
                break
            gone = now_gone
            time.sleep(0.3)
        return gone or self.renderers


class NativeContender:
    def __init__(self, model_dir: str, threads: int, first_image: str):
        t0 = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "native_worker.py"), "--model-dir", model_dir,
             "--images-dir", str(SITE / "images"), "--first-image", first_image, "--threads", str(threads),
             "--t0", repr(t0)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"native worker exited with {self.proc.wait()}")
        self.startup = json.loads(line)["startup"]

    def call(self, method: str, *args):
        names = {"load_images": ["names"], "embed_images": ["names"], "time_image": ["name", "n", "warmup"],
                 "time_text": ["text", "n", "warmup"], "throughput": ["names"], "texts": ["texts"]}[method]
        self.proc.stdin.write(json.dumps({"cmd": method, **dict(zip(names, args))}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(f"native {method}: {reply['error']}")
        return reply["ok"]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def serve_and_run(kinds, dtypes, measure, prefix="clip-bench-") -> tuple[dict, list]:
    """each_run against a live server of the built site: measure(browser, base_url, kind, dtype,
    external, console) per model; fails if any request left 127.0.0.1. -> (runs, console lines)."""
    external, console = [], []
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    server = LiveServer(tmp, SITE)
    try:
        runs = each_run(kinds, dtypes, lambda browser, kind, dtype: measure(browser, server.url, kind, dtype, external, console))
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if external:
        raise SystemExit(f"requests left 127.0.0.1: {external[:5]}")
    return runs, console


def each_run(kinds, dtypes, measure) -> dict:
    """{"kind/dtype": measure(browser, kind, dtype)} with one headless Chromium for all runs."""
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS, headless=True)
        try:
            for kind in kinds:
                for dtype in dtypes:
                    log(f"== {kind}/{dtype}")
                    out[f"{kind}/{dtype}"] = measure(browser, kind, dtype)
        finally:
            browser.close()
    return out


def load_page(page, url: str) -> dict:
    page.goto(url)
    page.wait_for_function("document.body && document.body.dataset.state !== 'loading'", timeout=PAGE_TIMEOUT_MS,
                           polling=100)
    state = page.evaluate("document.body.dataset.state")
    if state != "ready":
        raise RuntimeError(f"{url}: page ended in state {state}: {page.inner_text('#message')}")
    return page.evaluate("window.bench.startup")


def page_url(base: str, contender: str, kind: str, dtype: str, site: dict, threads: int) -> str:
    q = f"threads={threads}&image={LATENCY_IMAGE}"
    if contender in ("ours", "ours_overlapped"):
        extra = "&start=overlapped" if contender == "ours_overlapped" else ""
        return f"{base}models/pages/ours.html?model={site['ours'][f'{kind}/{dtype}']['id']}&{q}{extra}"
    return f"{base}models/pages/tjs.html?model={kind}&dtype={TJS_DTYPE[dtype]}&{q}"


# ------------------------------------------------------------------------------------ measuring
def run_startup(browser, base, kind, dtype, site, cfg, external, console) -> dict:
    """Cold (fresh context: empty HTTP cache and Cache Storage) then warm (same context, again)."""
    out = {v: [] for v in cfg["startup_variants"]}
    variants = cfg["startup_variants"]
    for r in range(cfg["startup_rounds"] if dtype in cfg["startup_dtypes"] else 0):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            if v == "native":
                n = NativeContender(site["ours"][f"{kind}/{dtype}"]["folder"], cfg["threads"], LATENCY_IMAGE)
                n.close()
                out[v].append({"cold": n.startup})
                log(f"  startup {kind}/{dtype} {v}: first image {n.startup['marks']['first_image']:.0f} ms")
                continue
            url = page_url(base, v, kind, dtype, site, cfg["threads"])
            context = browser.new_context(viewport=PW.VIEWPORT)
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            try:
                page = context.new_page()
                PageContender._watch(page, external, console)
                cold = load_page(page, url)
                warm = load_page(page, url)
            finally:
                context.close()
            out[v].append({"cold": cold, "warm": warm})
            log(f"  startup {kind}/{dtype} {v}: first image cold {cold['marks']['first_image']:.0f} ms, "
                f"warm {warm['marks']['first_image']:.0f} ms")
    return out


def cosine(a, b) -> float:
    import numpy as np

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def token_agreement(golden: list[dict], ids: list[list[int]]) -> dict:
    """exact: all 77 ids equal. content: equal up to and including the first EOT (padding after the
    EOT cannot change CLIP's output, which pools at the EOT under a causal mask)."""
    from pyapp import constants as C

    exact = content = long_n = long_eot_missing = 0
    mismatches, content_ok = [], []
    for g, got in zip(golden, ids):
        want = g["ids"]
        upto = want.index(C.EOT_ID) + 1
        same_content = list(got[:upto]) == want[:upto]
        exact += list(got) == want
        content += same_content
        content_ok.append(same_content)
        if want[C.CONTEXT_LENGTH - 1] == C.EOT_ID:  # cut to the context length by OpenAI's truncate=True
            long_n += 1
            long_eot_missing += C.EOT_ID not in list(got)
        if not same_content and len(mismatches) < 12:
            try:
                got_upto = list(got).index(C.EOT_ID) + 1
            except ValueError:
                got_upto = len(got)
            mismatches.append({"text": g["text"], "want": want[:upto], "got": list(got[:got_upto])})
    n = len(golden)
    return {"n": n, "exact": exact, "content": content, "exact_pct": 100 * exact / n,
            "content_pct": 100 * content / n, "mismatches": mismatches, "content_ok": content_ok,
            "long_n": long_n, "long_eot_missing": long_eot_missing}


def run_work(browser, base, kind, dtype, site, cfg, orc, golden, external, console) -> dict:
    """Latency, throughput, memory, fidelity and tokens with all three contenders loaded at once."""
    res = {"latency_image": {}, "latency_text": {}, "throughput": {}, "memory": {}, "fidelity_image": {},
           "fidelity_text": {}, "tokens": {}, "work_page_startup": {}}
    contenders = {}
    try:
        for c in PAGE_CONTENDERS:
            contenders[c] = PageContender(browser, page_url(base, c, kind, dtype, site, cfg["threads"]), external, console)
            res["work_page_startup"][c] = contenders[c].startup
        contenders["native"] = NativeContender(site["ours"][f"{kind}/{dtype}"]["folder"], cfg["threads"], LATENCY_IMAGE)
        res["work_page_startup"]["native"] = contenders["native"].startup
        all_names = sorted(set(site["corpus"]) | set(site["throughput"]))
        for c in contenders.values():
            c.call("load_images", all_names)

        def rounds(n_rounds):
            for r in range(n_rounds):
                yield r, CONTENDERS[r % 3:] + CONTENDERS[:r % 3]

        log(f"  latency {kind}/{dtype} ...")
        for key in ("latency_image", "latency_text"):
            res[key] = {c: [] for c in CONTENDERS}
        for r, order in rounds(cfg["latency_rounds"]):
            for c in order:
                res["latency_image"][c] += contenders[c].call("time_image", LATENCY_IMAGE, cfg["latency_per_round"], 1)
            for c in order:
                res["latency_text"][c] += contenders[c].call("time_text", LATENCY_TEXT, cfg["latency_per_round"], 1)

        log(f"  throughput {kind}/{dtype} ({cfg['throughput_images']} images) ...")
        names = site["throughput"]
        k = cfg["throughput_chunks"]
        chunks = [names[i * len(names) // k:(i + 1) * len(names) // k] for i in range(k)]
        res["throughput"] = {c: {"images": len(names), "chunks_ms": []} for c in CONTENDERS}
        for r, order in rounds(k):
            for c in order:
                res["throughput"][c]["chunks_ms"].append(contenders[c].call("throughput", chunks[r]))
        snapshots = {"after_throughput_mb": renderer_hwm()}
        native_mem = {"after_throughput_mb": vmhwm_mb(contenders["native"].proc.pid)}

        log(f"  fidelity {kind}/{dtype} ({len(site['corpus'])} images, {len(golden)} texts) ...")
        for c in CONTENDERS:
            rows = contenders[c].call("embed_images", site["corpus"])
            res["fidelity_image"][c] = [
                {"name": row["name"], "error": row["error"]} if "error" in row else
                {"name": row["name"], "cos": cosine(row["embedding"], orc["images"][row["name"]])} for row in rows]
        snapshots["after_fidelity_mb"] = renderer_hwm()
        native_mem["after_fidelity_mb"] = vmhwm_mb(contenders["native"].proc.pid)
        texts = [g["text"] for g in golden]
        for c in CONTENDERS:
            got = contenders[c].call("texts", texts)
            res["tokens"][c] = token_agreement(golden, got["ids"])
            res["fidelity_text"][c] = [cosine(e, o) for e, o in zip(got["embeddings"], orc["texts"])]
        snapshots["peak_mb"] = renderer_hwm()
        python_heap = contenders["ours"].page.evaluate("window.bench.pythonHeapMB()")
        native_mem["peak_mb"] = vmhwm_mb(contenders["native"].proc.pid)
        res["memory"]["native"] = native_mem
        for c in PAGE_CONTENDERS:
            pids = contenders.pop(c).close_and_identify()
            res["memory"][c] = {k: max((snap[p] for p in pids if p in snap), default=None) for k, snap in snapshots.items()}
            res["memory"][c]["renderer_pids"] = sorted(pids)
        res["memory"]["ours"]["python_heap_mb"] = python_heap
    finally:
        for c in contenders.values():
            c.close()
    return res


# Engine A/B: the same random input through one image encoder, model-only, per onnxruntime-web build.
ENGINES = {
    # label: (onnxruntime-web folder, its bundle, whose ONNX graph)
    "ours": ("ort130", "ort.wasm.min.mjs", "ours"),          # clip-web's engine and graph
    "tjs_engine": ("tjs", "ort.webgpu.min.mjs", "ours"),     # transformers.js's engine, our graph
    "tjs": ("tjs", "ort.webgpu.min.mjs", "tjs"),             # transformers.js's engine and graph
}


def run_engines(browser, base, kind, dtype, site, cfg, external, console) -> dict:
    import urllib.request

    with urllib.request.urlopen(base + "api/runtime") as r:
        ort130 = json.loads(r.read())["ort_base_url"]
    folders = {"ort130": ort130, "tjs": "/models/tjs/lib/"}
    models = {"ours": f"/models/{site['ours'][f'{kind}/{dtype}']['id']}/image.onnx",
              "tjs": f"/models/tjs/models/{kind}/onnx/vision_model{'' if dtype == 'fp32' else tjs_models.QUANT_SUFFIX}.onnx"}
    inputs = {"ours": "input", "tjs": "pixel_values"}
    out = {"samples": {}, "info": {}}
    pages = {}
    try:
        for label, (folder, bundle, graph) in ENGINES.items():
            context = browser.new_context(viewport=PW.VIEWPORT)
            context.set_default_timeout(PAGE_TIMEOUT_MS)
            page = context.new_page()
            PageContender._watch(page, external, console)
            url = (f"{base}models/pages/engine.html?ort={folders[folder]}&bundle={bundle}&model={models[graph]}"
                   f"&input={inputs[graph]}&threads={cfg['threads']}")
            page.goto(url)
            page.wait_for_function("document.body && document.body.dataset.state !== 'loading'", timeout=PAGE_TIMEOUT_MS)
            if page.evaluate("document.body.dataset.state") != "ready":
                raise RuntimeError(f"{url}: {page.inner_text('#message')}")
            pages[label] = (context, page)
            out["info"][label] = page.evaluate("window.bench.info")
            out["samples"][label] = []
        labels = list(ENGINES)
        for r in range(cfg["engine_rounds"]):
            for label in labels[r % 3:] + labels[:r % 3]:
                out["samples"][label] += pages[label][1].evaluate("() => bench.time(5, 1)")
        # What the model cache's integrity check costs on each warm start (web/js/runtime/model-fetch.js).
        out["sha256"] = pages["ours"][1].evaluate("() => bench.sha256(3)")
    finally:
        for context, _ in pages.values():
            context.close()
    return out


# ------------------------------------------------------------------------------------- summary
def _med(xs):
    return statistics.median(xs) if xs else None


def _p90(xs):
    if not xs:
        return None
    s = sorted(xs)
    i = (len(s) - 1) * 0.9
    lo, hi = int(i), min(int(i) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (i - lo)


def summarize_run(run: dict) -> dict:
    s = {"startup": {}, "latency_image": {}, "latency_text": {}, "throughput": {}, "memory": {},
         "fidelity_image": {}, "fidelity_text": {}, "tokens": {}}
    for v, samples in run["startup"].items():
        entry = {}
        for temp in ("cold", "warm"):
            xs = [smp[temp]["marks"]["first_image"] for smp in samples if temp in smp]
            if xs:
                entry[temp] = {"first_image_ms": _med(xs), "n": len(xs),
                               "ready_ms": _med([smp[temp]["marks"]["ready"] for smp in samples if temp in smp])}
        s["startup"][v] = entry
    for key in ("latency_image", "latency_text"):
        for c, samples in run[key].items():
            tot = [x["total_ms"] for x in samples]
            part = "preprocess_ms" if key == "latency_image" else "tokenize_ms"
            s[key][c] = {"median_ms": _med(tot), "p90_ms": _p90(tot), "min_ms": min(tot), "n": len(tot),
                         "prep_median_ms": _med([x[part] for x in samples if x.get(part) is not None]),
                         "inference_median_ms": _med([x["inference_ms"] for x in samples if x.get("inference_ms") is not None])}
    for c, t in run["throughput"].items():
        total = sum(t["chunks_ms"])
        s["throughput"][c] = {"images_per_s": t["images"] / (total / 1000), "total_ms": total, "images": t["images"]}
    s["memory"] = run["memory"]
    for c, rows in run["fidelity_image"].items():
        cos = [r["cos"] for r in rows if "cos" in r]
        s["fidelity_image"][c] = {"min": min(cos) if cos else None, "mean": statistics.fmean(cos) if cos else None,
                                  "n": len(rows), "ok": len(cos), "failed": [r["name"] for r in rows if "error" in r],
                                  "worst": sorted((r for r in rows if "cos" in r), key=lambda r: r["cos"])[:3]}
    for c, cos in run["fidelity_text"].items():
        same = [x for x, ok in zip(cos, run["tokens"][c]["content_ok"]) if ok]
        # min over the texts whose ids agree with OpenAI's isolates the text model from the tokenizer
        s["fidelity_text"][c] = {"min": min(cos), "mean": statistics.fmean(cos), "n": len(cos),
                                 "min_same_tokens": min(same) if same else None, "n_same_tokens": len(same)}
    for c, t in run["tokens"].items():
        s["tokens"][c] = {k: t[k] for k in ("n", "exact", "content", "exact_pct", "content_pct")}
    if "engine" in run:
        e = run["engine"]
        s["engine"] = {k: {"median_ms": _med(v), "p90_ms": _p90(v), "min_ms": min(v), "n": len(v),
                           "session_ms": e["info"][k]["sessionMs"], "version": e["info"][k]["version"]}
                       for k, v in e["samples"].items()}
        s["sha256"] = {"mb": e["sha256"]["bytes"] / 1e6, "median_ms": _med(e["sha256"]["ms"])}
    return s


# ---------------------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny model only, fewer samples (< 3 minutes)")
    ap.add_argument("--kinds", nargs="+", choices=KINDS, help="override the model kinds")
    ap.add_argument("--docs", type=Path, default=DOCS, help="where benchmarks.md/.json and img/ go")
    args = ap.parse_args()

    # SIGTERM (e.g. make interrupted, timeout) must still run the cleanup below.
    def on_sigterm(*_):
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, on_sigterm)
    cfg = settings(args.quick, args.kinds)
    t_start = time.time()
    log(f"settings: {cfg}")
    site = build_site(cfg)
    golden = golden_texts()
    oracles = {}
    for kind in cfg["kinds"]:
        log(f"torch oracle for {kind} ...")
        oracles[kind] = oracle(kind, site["corpus_bytes"], golden)

    from playwright.sync_api import sync_playwright

    results = {"generated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "settings": cfg, "machine": machine_info(), "library": site["library"],
               "models": site["ours"], "corpus": site["corpus"], "runs": {}}
    tmp = Path(tempfile.mkdtemp(prefix="clip-bench-"))
    server = None
    external: list[str] = []
    console: list[str] = []
    try:
        server = LiveServer(tmp, SITE)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS, headless=PW.HEADLESS)
            try:
                results["machine"]["browser"] = f"Chromium {browser.version} (headless)"
                for kind in cfg["kinds"]:
                    for dtype in cfg["dtypes"]:
                        key = f"{kind}/{dtype}"
                        log(f"== {key}")
                        load = {"start": os.getloadavg()}
                        run = {"startup": run_startup(browser, server.url, kind, dtype, site, cfg, external, console)}
                        run.update(run_work(browser, server.url, kind, dtype, site, cfg, oracles[kind], golden,
                                            external, console))
                        # The work pages were cold loads too (fresh context, empty caches): one
                        # more cold sample per contender.
                        for c, startup in run["work_page_startup"].items():
                            run["startup"].setdefault(c, []).append({"cold": startup, "source": "work page"})
                        load["end"] = os.getloadavg()
                        run["loadavg"] = load
                        if kind in cfg["engine_kinds"]:
                            log(f"  engine A/B {key} ...")
                            run["engine"] = run_engines(browser, server.url, kind, dtype, site, cfg, external, console)
                        run["summary"] = summarize_run(run)
                        results["runs"][key] = run
            finally:
                browser.close()
        statuses = {}
        for r in server.requests():
            statuses.setdefault(str(r.get("status")), set()).add(r["path"])
        results["server"] = {"requests": len(server.requests()),
                             "not_ok": {s: sorted(p)[:20] for s, p in statuses.items() if s not in ("200", "304", "206")}}
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results["external_requests"] = external
    results["console"] = console[:200]
    results["duration_s"] = time.time() - t_start
    if external:
        log(f"WARNING: {len(external)} requests left 127.0.0.1: {external[:5]}")

    import compare_report

    compare_report.write(results, args.docs)
    log(f"done in {results['duration_s']:.0f} s: {args.docs / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
