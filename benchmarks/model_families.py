"""Speed per model family: size, image and text latency in Chromium (clip-web's page) vs native
onnxruntime, on the same ONNX files (issue #16 item 5).

Models (random weights of the real architectures, built and cached by the reference builders):
  vit-b-32-random                  tests/reference/build_models.py (built here into .cache/reference-full)
  vit-b-16-random                  tests/reference/build_models.py --kind vit-b-16-random
  siglip-base-patch16-224-random   tests/reference/build_siglip.py --full
  mobileclip-{s1,s2,b}-random      open_clip's MobileCLIP configs, random weights, exported here
                                   (needs open_clip, timm and torchvision on --open-clip-path; skipped
                                   with the reason recorded when they do not import or export)
All go to .cache/reference-full/, never .cache/reference/ (served as every test's models folder).

For each model, medians (ms) of --runs timed runs after --warmup untimed ones:
  image    the bytes of a 640x480 JPEG -> embedding (browser: `clip.embedImage`, preprocessing in
           Pyodide + onnxruntime-web wasm; native: pyapp.preprocess_image with the manifest's rules +
           InferenceSession.run)
  text     "a photo of a cat" and a 20-word text -> embedding (browser: `clip.embedText`; native:
           the manifest's tokenizer in CPython, cut to the last end-of-text where the manifest says
           dynamic_sequence, as the page does, + InferenceSession.run)
Browser: headless Chromium, /text.html?model=<id>&threads=2 (wasm, 2 threads); native: onnxruntime
CPU, intra-op 2 threads. Before each browser block the script waits (up to --wait-busy s) until no
other chromium/firefox/WebKitWebDriver/pytest process runs, and records the load average at the
start and end of every block. Raw samples go to --out; a markdown table is printed.

    python benchmarks/model_families.py [--models ...] [--runs 12] [--warmup 3]
                                        [--open-clip-path /tmp/ocpkgs] [--out benchmarks/results/model_families.json]
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "reference"), str(ROOT / "tests" / "pyapp"),
                str(ROOT / "benchmarks")]

FULL_OUT = ROOT / ".cache" / "reference-full"
MODELS = ("vit-b-32-random", "vit-b-16-random", "siglip-base-patch16-224-random",
          "mobileclip-s1-random", "mobileclip-s2-random", "mobileclip-b-random")
MOBILECLIP = {"mobileclip-s1-random": "MobileCLIP-S1", "mobileclip-s2-random": "MobileCLIP-S2",
              "mobileclip-b-random": "MobileCLIP-B"}
SHORT_TEXT = "a photo of a cat"
LONG_TEXT = ("a photo of a small orange cat sleeping on a wooden table next to a window "
             "on a sunny afternoon")  # 20 words
BUSY_PATTERN = "chromium|firefox|WebKitWebDriver|pytest"
SEED = 20240229


def log(msg: str) -> None:
    print(f"[model_families] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# MobileCLIP: open_clip's configs with random weights, exported in our layout (int32 ids, 77
# positions: S1/S2's text towers have no causal mask, so padding is part of the input).

def _mobileclip_stamp(open_clip_path: str) -> str:
    import importlib.metadata as md

    src = Path(__file__).read_text()
    section = src[src.index("# MobileCLIP:"):src.index("# End of MobileCLIP.")]
    h = hashlib.sha256(section.encode())
    for lib in ("torch", "onnx"):
        h.update(f"{lib}={md.version(lib)}".encode())
    for dist in sorted(Path(open_clip_path).glob("*.dist-info")):
        h.update(dist.name.encode())
    return h.hexdigest()


def build_mobileclip_into(model_id: str, folder: Path, open_clip_path: str) -> None:
    """Runs in a child process (the open_clip stack is imported from open_clip_path only)."""
    sys.path.insert(0, open_clip_path)
    import warnings

    import onnx
    import open_clip
    import torch
    from timm.utils.model import reparameterize_model

    from build_models import sha256_file

    name = MOBILECLIP[model_id]
    torch.manual_seed(SEED)
    model = open_clip.create_model(name, pretrained=None).eval()
    model = reparameterize_model(model)  # MobileOne/FastViT branches folded, as Apple deploys them
    size = model.visual.preprocess_cfg["size"][0]
    causal = model.attn_mask is not None if hasattr(model, "attn_mask") else model.text.attn_mask is not None

    class ImageEncoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):  # (b, 3, S, S)
            return self.m.encode_image(pixel_values)  # (b, 512)

    class TextEncoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, ids):  # (b, 77) int32; open_clip pools at argmax(ids), the EOT
            return self.m.encode_text(ids)  # (b, 512)

    pixels = torch.rand(2, 3, size, size)
    ids = torch.zeros(2, 77, dtype=torch.int32)
    ids[:, 0] = 49406
    ids[0, 1:5] = torch.tensor([320, 1125, 539, 320])
    ids[0, 5] = 49407
    ids[1, 1:3] = torch.tensor([2368, 1929])
    ids[1, 3] = 49407
    common = dict(dynamo=False, opset_version=14, input_names=["input"], output_names=["output"],
                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    torch.backends.mha.set_fastpath_enabled(False)  # the fused MHA kernel has no ONNX export
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(ImageEncoder(model).eval(), (pixels,), str(folder / "image.onnx"), **common)
        torch.onnx.export(TextEncoder(model).eval(), (ids,), str(folder / "text.onnx"), **common)
        want_img = model.encode_image(pixels).numpy()
        want_txt = model.encode_text(ids).numpy()
    import numpy as np
    import onnxruntime as ort

    for part, feed, want in (("image", pixels.numpy(), want_img), ("text", ids.numpy(), want_txt)):
        onnx.checker.check_model(str(folder / f"{part}.onnx"))
        (got,) = ort.InferenceSession(str(folder / f"{part}.onnx"), providers=["CPUExecutionProvider"]).run(
            None, {"input": feed})
        cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
        if not cos.min() >= 0.9999:
            raise RuntimeError(f"{part}.onnx differs from open_clip: cosine {cos.min()}")

    def entry(file: str, dtype: str, **extra) -> dict:
        p = folder / file
        return {"url": file, "input": "input", "output": "output", "input_dtype": dtype, **extra,
                "sha256": sha256_file(p), "bytes": p.stat().st_size}

    manifest = {
        "id": model_id,
        "name": f"{name} architecture (open_clip {open_clip.__version__}), random weights (benchmarks)",
        "variant": "fp32",
        "image": entry("image.onnx", "float32"),
        "text": entry("text.onnx", "int32", dynamic_sequence=False),
        "context_length": 77,
        "image_size": size,
        "mean": None, "std": None,  # Apple's MobileCLIP: ToTensor only
        "preprocess": {"resize": "shortest_side", "interpolation": "bilinear",
                       "crop_rounding": "round_half_even", "convert_rgb": "after_crop"},
        "embed_dim": 512,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (folder / "causal.txt").write_text(f"text causal mask: {causal}\n")


def build_mobileclip(model_id: str, open_clip_path: str | None) -> tuple[Path | None, str | None]:
    """(folder, None) or (None, why not)."""
    if not open_clip_path or not Path(open_clip_path, "open_clip").is_dir():
        return None, f"open_clip not found on --open-clip-path ({open_clip_path})"
    target = FULL_OUT / model_id
    key = _mobileclip_stamp(open_clip_path)
    stamp = target / "build-stamp.txt"
    if stamp.is_file() and stamp.read_text().strip() == key:
        return target, None
    FULL_OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{model_id}-", dir=FULL_OUT))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--build-mobileclip", model_id, str(tmp),
                           "--open-clip-path", open_clip_path], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()][-3:]
        return None, f"{MOBILECLIP[model_id]} did not build/export: " + " | ".join(tail)
    (tmp / "build-stamp.txt").write_text(key + "\n")
    for p in [tmp, *tmp.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    log(f"{model_id}: built in {time.perf_counter() - t0:.1f} s")
    return target, None

# End of MobileCLIP.
# ---------------------------------------------------------------------------------------------


def model_folder(model_id: str, open_clip_path: str | None) -> tuple[Path | None, str | None]:
    try:
        if model_id in ("vit-b-32-random", "vit-b-16-random"):
            import build_models

            return build_models.build(model_id, FULL_OUT), None
        if model_id == "siglip-base-patch16-224-random":
            import build_siglip

            return build_siglip.build(FULL_OUT, full=True), None
        if model_id in MOBILECLIP:
            return build_mobileclip(model_id, open_clip_path)
    except Exception as exc:  # recorded as "not measured"
        traceback.print_exc()
        return None, f"{type(exc).__name__}: {exc}"
    return None, f"unknown model {model_id}"


def serve_folder(folders: dict[str, Path]) -> Path:
    """One models folder with hard links to every model's files (the server follows no symlinks
    out of its folder)."""
    root = Path(tempfile.mkdtemp(prefix="clip-web-families-"))
    for model_id, folder in folders.items():
        target = root / model_id
        target.mkdir()
        manifest = json.loads((folder / "manifest.json").read_text())
        files = ["manifest.json", manifest["image"]["url"], manifest["text"]["url"]]
        if "url" in manifest.get("tokenizer", {}):
            files.append(manifest["tokenizer"]["url"])
        for f in files:
            try:
                os.link(folder / f, target / f)
            except OSError:
                shutil.copy(folder / f, target / f)
    return root


def test_jpeg() -> bytes:
    from PIL import Image

    from image_corpus import _photo

    buf = io.BytesIO()
    Image.fromarray(_photo(640, 480, 7)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def busy_pids() -> set[int]:
    out = subprocess.run(["pgrep", "-f", BUSY_PATTERN], capture_output=True, text=True).stdout
    return {int(x) for x in out.split()}


def others_busy(ours: set[int] = frozenset()) -> list[str]:
    """Command lines of chromium/firefox/WebKitWebDriver/pytest processes that are not ours
    (`ours`: pids that appeared while we launched our browser, e.g. its crashpad handlers, which
    leave our process tree)."""
    out = subprocess.run(["pgrep", "-af", BUSY_PATTERN], capture_output=True, text=True).stdout
    mine = {os.getpid()}
    busy = []
    for line in out.splitlines():
        pid, _, cmd = line.partition(" ")
        if not pid.isdigit() or int(pid) in mine or int(pid) in ours:
            continue
        # our own chromium: a child (or grandchild) of this process
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            chain = {ppid}
            for _ in range(4):
                ppid = int(Path(f"/proc/{ppid}/stat").read_text().rsplit(")", 1)[1].split()[1])
                chain.add(ppid)
        except (OSError, ValueError, IndexError):
            chain = set()
        if chain & mine or "pgrep" in cmd:
            continue
        busy.append(f"{pid} {cmd[:100]}")
    return busy


def wait_quiet(max_wait: float, ours: set[int] = frozenset()) -> dict:
    t0 = time.time()
    busy = others_busy(ours)
    while busy and time.time() - t0 < max_wait:
        time.sleep(10)
        busy = others_busy(ours)
    waited = time.time() - t0
    if busy:
        log(f"machine still busy after {waited:.0f} s; measuring anyway: {busy[:3]}")
    elif waited > 1:
        log(f"waited {waited:.0f} s for other browser/test processes to finish")
    return {"waited_s": round(waited, 1), "busy_at_start": busy}


def median(xs):
    return statistics.median(xs)


def native_samples(folder: Path, jpeg: bytes, runs: int, warmup: int, threads: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    from pyapp import pipeline
    from pyapp.preprocess import preprocess_image
    from pyapp.spiece_tokenizer import SentencePieceTokenizer
    from pyapp.tokenizer import tokenize, trim_padding

    manifest = json.loads((folder / "manifest.json").read_text())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    image = ort.InferenceSession(str(folder / manifest["image"]["url"]), opts, providers=["CPUExecutionProvider"])
    text = ort.InferenceSession(str(folder / manifest["text"]["url"]), opts, providers=["CPUExecutionProvider"])
    rules = pipeline.image_rules(manifest)
    trules = pipeline.text_rules(manifest)
    dtype = {"int32": np.int32, "int64": np.int64}[manifest["text"]["input_dtype"]]
    dynamic = manifest["text"].get("dynamic_sequence", False)
    if trules.kind == "sentencepiece":
        sp = SentencePieceTokenizer.from_bytes((folder / trules.url).read_bytes(), trules)

        def ids_of(t):
            return np.asarray(sp.rows([t]), dtype=dtype)  # (1, 64)
    else:
        def ids_of(t):
            ids = tokenize([t], context_length=trules.context_length).astype(dtype)  # (1, 77)
            return trim_padding(ids) if dynamic else ids

    def embed_image():
        return image.run(None, {manifest["image"]["input"]: preprocess_image(jpeg, rules=rules)})[0]

    def embed_text(t):
        return text.run(None, {manifest["text"]["input"]: ids_of(t)})[0]

    def ms(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000

    def timed(fn) -> list[float]:  # every timed sample (ms), after `warmup` untimed calls
        [fn() for _ in range(warmup)]
        return [ms(fn) for _ in range(runs)]

    return {"image": timed(embed_image), "text_short": timed(lambda: embed_text(SHORT_TEXT)),
            "text_long": timed(lambda: embed_text(LONG_TEXT)),
            "text_positions": {"short": int(ids_of(SHORT_TEXT).shape[1]), "long": int(ids_of(LONG_TEXT).shape[1])}}


BROWSER_SAMPLES = """async ([jpegB64, short, long, runs, warmup]) => {
    const jpeg = Uint8Array.from(atob(jpegB64), c => c.charCodeAt(0));
    const t0 = performance.now();
    await clip.embedImage(jpeg.slice());
    const firstImage = performance.now() - t0;
    const t1 = performance.now();
    await clip.embedText(short);
    const firstText = performance.now() - t1;
    async function timed(fn) {
        for (let i = 0; i < warmup; i++) await fn();
        const out = [];
        for (let i = 0; i < runs; i++) { const s = performance.now(); await fn(); out.push(performance.now() - s); }
        return out;
    }
    const info = await clip.info();
    return {
        first_image_ms: firstImage, first_text_ms: firstText,
        image: await timed(() => clip.embedImage(jpeg.slice())),
        text_short: await timed(() => clip.embedText(short)),
        text_long: await timed(() => clip.embedText(long)),
        threads: info.threads, backend: info.backend, crossOriginIsolated: info.crossOriginIsolated,
    };
}"""


def browser_samples(browser, server_url: str, model_id: str, jpeg: bytes, runs: int, warmup: int, threads: int) -> dict:
    from helpers import PW

    context = browser.new_context(viewport=PW.VIEWPORT)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        t0 = time.perf_counter()
        page.goto(f"{server_url}text.html?model={model_id}&threads={threads}")
        page.wait_for_function("document.body.dataset.state && document.body.dataset.state !== 'loading'",
                               timeout=PW.BOOT_TIMEOUT_MS * 3)
        state = page.evaluate("document.body.dataset.state")
        if state != "ready":
            message = page.evaluate("document.querySelector('#message')?.textContent")
            raise RuntimeError(f"page state {state!r}: {message} {errors}")
        ready_s = time.perf_counter() - t0
        page.set_default_timeout(600_000)
        out = page.evaluate(BROWSER_SAMPLES, [base64.b64encode(jpeg).decode(), SHORT_TEXT, LONG_TEXT, runs, warmup])
        out["page_ready_s"] = round(ready_s, 2)
        return out
    finally:
        context.close()


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def mb(n: int) -> float:
    return n / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--wait-busy", type=float, default=600, help="seconds to wait for other browser/test runs")
    parser.add_argument("--open-clip-path", default=os.environ.get("OPEN_CLIP_PATH", "/tmp/ocpkgs"),
                        help="a folder holding open_clip, timm, torchvision (pip download + unzip; not in .venv)")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--build-mobileclip", nargs=2, metavar=("ID", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "model_families.json"))
    args = parser.parse_args()

    if args.build_mobileclip:
        build_mobileclip_into(args.build_mobileclip[0], Path(args.build_mobileclip[1]), args.open_clip_path)
        return 0

    folders, skipped = {}, {}
    for model_id in args.models:
        t0 = time.perf_counter()
        folder, why = model_folder(model_id, args.open_clip_path)
        if folder is None:
            skipped[model_id] = why
            log(f"{model_id}: skipped: {why}")
        else:
            folders[model_id] = folder
            log(f"{model_id}: {folder} ({time.perf_counter() - t0:.1f} s)")
    if args.build_only:
        return 0

    from playwright.sync_api import sync_playwright

    from helpers import PW, LiveServer

    jpeg = test_jpeg()
    models_root = serve_folder(folders)
    server = LiveServer(Path(tempfile.mkdtemp(prefix="clip-web-families-log-")), models_root)
    rows = []
    try:
        with sync_playwright() as p:
            wait_quiet(args.wait_busy)
            before = busy_pids()
            browser = p.chromium.launch(executable_path=PW.EXECUTABLE_PATH, args=PW.LAUNCH_ARGS)
            time.sleep(1)
            ours = busy_pids() - before  # our chromium and its crashpad handlers
            for model_id, folder in folders.items():
                manifest = json.loads((folder / "manifest.json").read_text())
                sizes = {part: manifest[part]["bytes"] for part in ("image", "text")}
                row = {"model": model_id, "bytes": sizes, "image_size": manifest.get("image_size", 224),
                       "context_length": manifest.get("context_length", 77),
                       "dynamic_sequence": manifest["text"].get("dynamic_sequence", False)}
                quiet = wait_quiet(args.wait_busy, ours)
                row["browser_block"] = {**quiet, "load_start": load()}
                try:
                    row["browser"] = browser_samples(browser, server.url, model_id, jpeg, args.runs, args.warmup,
                                                     args.threads)
                except Exception as exc:
                    row["browser_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                    log(f"{model_id}: browser failed: {row['browser_error']}")
                row["browser_block"]["load_end"] = load()
                row["native_block"] = {"load_start": load()}
                row["native"] = native_samples(folder, jpeg, args.runs, args.warmup, args.threads)
                row["native_block"]["load_end"] = load()
                rows.append(row)
                w, n = row.get("browser"), row["native"]
                if w:
                    log(f"{model_id}: image {median(w['image']):.0f} vs {median(n['image']):.0f} ms, "
                        f"text {median(w['text_short']):.0f} vs {median(n['text_short']):.0f} ms, "
                        f"long {median(w['text_long']):.0f} vs {median(n['text_long']):.0f} ms; load {load()}")
            browser.close()
    finally:
        server.stop()
        shutil.rmtree(models_root, ignore_errors=True)

    import onnxruntime

    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": {"cores": os.cpu_count(), "cpu": cpu_name(), "onnxruntime": onnxruntime.__version__,
                          "chromium": PW.EXECUTABLE_PATH},
              "runs": args.runs, "warmup": args.warmup, "threads": args.threads,
              "jpeg": {"width": 640, "height": 480, "bytes": len(jpeg)},
              "texts": {"short": SHORT_TEXT, "long": LONG_TEXT}, "rows": rows, "skipped": skipped}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(table(result))
    return 0


def table(result: dict) -> str:
    lines = [f"Median ms of {result['runs']} runs after {result['warmup']} warm-up runs; "
             f"{result['threads']} threads; browser = headless Chromium (wasm), native = onnxruntime CPU.", "",
             "| model | input | image MB | text MB | total MB | image web | image native | ratio | "
             "short text web | native | ratio | 20-word text web | native | ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        n, w = r["native"], r.get("browser")
        b = r["bytes"]
        cells = [r["model"], f"{r['image_size']}px, {'≤' if r['dynamic_sequence'] else ''}{r['context_length']} tok",
                 f"{mb(b['image']):.1f}", f"{mb(b['text']):.1f}", f"{mb(b['image'] + b['text']):.1f}"]
        for key in ("image", "text_short", "text_long"):
            nm = median(n[key])
            if w:
                wm = median(w[key])
                cells += [f"{wm:.1f}", f"{nm:.1f}", f"{wm / nm:.2f}x"]
            else:
                cells += ["–", f"{nm:.1f}", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    for model_id, why in result.get("skipped", {}).items():
        lines.append(f"\nNot measured: {model_id}: {why}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
