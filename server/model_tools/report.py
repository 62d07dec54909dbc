"""Fidelity report: how far a model variant (uint8, int8, fp16, ...) is from its float32 source,
and optionally from torch, measured on a fixed probe set with onnxruntime on the CPU.

Probe set (deterministic, no downloads): 16 synthetic PNG images (smooth noise, stripes, discs,
odd sizes so resize and crop do real work) through pyapp.preprocess, the same code the browser
runs; 32 prompts (4 templates x 8 labels) through pyapp.tokenizer. Zero-shot top-1 agreement:
for each image, does the variant pick the same label ("a photo of a {label}") as the source?

Per model folder: report.json (everything) and a `report` summary in its manifest, which the
demo pages show beside the variant picker.

Graph-optimised variants (`clip-web models optimize`, manifest key `optimized`) are meant to give
the same numbers, so their report adds the largest absolute difference and a second comparison
run in onnxruntime-web's wasm build under Node (`vs_source_web`): the engine the browser uses,
whose kernels and fusions are not native onnxruntime's.
"""

from __future__ import annotations

import io
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from .common import (MANIFEST, PARTS, ToolError, local_file, need, read_manifest, replace_file,
                     write_manifest)

REPORT = "report.json"
SEED = 0
N_IMAGES = 16
LABELS = ["dog", "cat", "car", "tree", "house", "bicycle", "mountain", "beach"]
TEMPLATES = ["a photo of a {}", "a drawing of a {}", "a close-up photo of a {}", "a blurry photo of a {}"]


# --- probe set -------------------------------------------------------------------------------


def probe_images(n: int = N_IMAGES, seed: int = SEED) -> list[bytes]:
    """n PNG files with varied content and sizes, identical on every run and machine."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = []
    for i in range(n):
        h, w = int(rng.integers(160, 400)), int(rng.integers(160, 400))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)  # (h, w) each
        grid = rng.random((4, 4, 3)).astype(np.float32)  # (4, 4, 3) coarse colours
        smooth = np.asarray(Image.fromarray((grid * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR),
                            dtype=np.float32) / 255  # (h, w, 3)
        kind = i % 4
        if kind == 1:  # stripes at a random angle and frequency
            angle, freq = rng.random() * np.pi, 0.02 + 0.2 * rng.random()
            stripes = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy))  # (h, w)
            smooth = smooth * stripes[..., None]
        elif kind == 2:  # a disc of another colour
            cy, cx, r = rng.random() * h, rng.random() * w, 20 + rng.random() * 80
            disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r)[..., None]  # (h, w, 1)
            smooth = np.where(disc, rng.random(3).astype(np.float32), smooth)
        elif kind == 3:  # fine noise on top
            smooth = smooth + 0.25 * rng.standard_normal((h, w, 3)).astype(np.float32)
        pixels = (np.clip(smooth, 0, 1) * 255).round().astype(np.uint8)  # (h, w, 3)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="PNG")
        files.append(buf.getvalue())
    return files


def probe_texts() -> list[str]:
    return [t.format(label) for t in TEMPLATES for label in LABELS]  # 32; the first 8 are the labels


def probe_inputs(manifest: dict) -> tuple[np.ndarray, np.ndarray]:
    """(pixels (16, 3, S, S) float32, ids (32, L) int32) for a manifest's preprocessing."""
    from pyapp.errors import VocabError
    from pyapp.pipeline import image_rules, text_rules
    from pyapp.preprocess import preprocess_images
    from pyapp.tokenizer import tokenize

    kind = text_rules(manifest).kind
    if kind != "clip_bpe":  # a wrong tokenizer would report a broken model, not a broken tool
        raise ToolError(f"the model tools probe text with OpenAI's BPE; this model's tokenizer is {kind}, "
                        "which they do not handle yet")
    pixels = preprocess_images(probe_images(), rules=image_rules(manifest))  # (16, 3, S, S)
    try:
        ids = tokenize(probe_texts(), context_length=manifest["context_length"])  # (32, L) int32
    except VocabError as exc:
        raise ToolError(f"the BPE vocab is needed for the text probes: {exc} (run `clip-web assets`)") from exc
    return pixels, ids


# --- measuring -------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)  # (n, d)
    return x / np.sqrt((x * x).sum(-1, keepdims=True))  # (n, d)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine in float64; exactly 1.0 for identical rows (sqrt(s*s) == s in IEEE)."""
    a, b = a.astype(np.float64), b.astype(np.float64)  # (n, d)
    dot, aa, bb = (a * b).sum(-1), (a * a).sum(-1), (b * b).sum(-1)  # (n,)
    return np.clip(dot / np.sqrt(aa * bb), -1.0, 1.0)  # (n,)


def zero_shot_top1(image_embeds: np.ndarray, label_embeds: np.ndarray) -> np.ndarray:
    return (_unit(image_embeds) @ _unit(label_embeds).T).argmax(-1)  # (n_images,)


class Measured:
    """One model folder run over the probe set: embeddings, sizes, load and run times."""

    def __init__(self, folder: Path, threads: int = 0, runs: int = 10):
        ort = need("onnxruntime", feature="clip-web models report")
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        pixels, ids = probe_inputs(self.manifest)
        self.files = {part: local_file(self.folder, self.manifest, part) for part in PARTS}
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        sessions, self.load_ms = {}, {}
        for part in PARTS:
            t0 = time.perf_counter()
            try:
                sessions[part] = ort.InferenceSession(str(self.files[part]), options,
                                                      providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own types for invalid graphs
                raise ToolError(f"{self.files[part]}: onnxruntime cannot load it ({exc})") from exc
            self.load_ms[part] = (time.perf_counter() - t0) * 1e3
        spec = {part: self.manifest[part] for part in PARTS}
        ids = ids.astype(np.int64 if spec["text"]["input_dtype"] == "int64" else np.int32)  # (32, L)
        run = {part: (lambda x, p=part: sessions[p].run([spec[p]["output"]], {spec[p]["input"]: x})[0])
               for part in PARTS}
        self.image = run["image"](pixels)  # (16, D)
        self.text = run["text"](ids)  # (32, D)
        self.run_image = run["image"]
        self.run_image(pixels[:1])  # warm-up at batch 1
        times = [self.time_one_image(i, pixels) for i in range(runs)]
        self.ms_per_image = statistics.median(times) if times else None
        self.runs, self.threads = runs, threads
        self.bytes = {part: self.files[part].stat().st_size for part in PARTS}
        self.pixels, self.ids = pixels, ids

    def time_one_image(self, i: int, pixels: np.ndarray | None = None) -> float:
        """ms for one batch-1 image-encoder run on probe image i."""
        pixels = self.pixels if pixels is None else pixels
        x = pixels[i % len(pixels)][None]  # (1, 3, S, S)
        t0 = time.perf_counter()
        self.run_image(x)
        return (time.perf_counter() - t0) * 1e3


def torch_embeds(checkpoint: Path, pixels: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The checkpoint's own embeddings with OpenAI pooling (argmax of ids), as the export defines."""
    torch = need("torch", feature="report --checkpoint")
    from .export import load_checkpoint, wrappers

    image_enc, text_enc = wrappers(load_checkpoint(checkpoint))
    with torch.no_grad():
        image = image_enc(torch.from_numpy(pixels)).numpy()  # (16, D)
        text = text_enc(torch.from_numpy(ids.astype(np.int64))).numpy()  # (32, D)
    return image, text


def compare(image: np.ndarray, text: np.ndarray, ref_image: np.ndarray, ref_text: np.ndarray) -> dict:
    ci, ct = cosines(image, ref_image), cosines(text, ref_text)  # (16,), (32,)
    n_labels = len(LABELS)
    agree = zero_shot_top1(image, text[:n_labels]) == zero_shot_top1(ref_image, ref_text[:n_labels])  # (16,)
    diff = {k: float(np.abs(a.astype(np.float64) - b).max()) for k, a, b in
            (("image", image, ref_image), ("text", text, ref_text))}
    return {"image": {"cos_min": float(ci.min()), "cos_mean": float(ci.mean())},
            "text": {"cos_min": float(ct.min()), "cos_mean": float(ct.mean())},
            "zero_shot_top1_agreement": float(agree.mean()),
            "max_abs": diff}


def web_embeds(m: Measured, src: Measured, assets_dir: Path | None = None) -> dict:
    """The probe set through a model and its source in onnxruntime-web's wasm build (Node, one
    thread; one Node process per encoder, so two full-size files share a wasm heap, not four)."""
    from . import ort_web

    out = {}
    for part, x in (("image", m.pixels), ("text", m.ids)):
        spec = m.manifest[part]
        feeds = [ort_web.Feed(which, spec["input"], spec["output"], x) for which in ("model", "source")]
        res = ort_web.run({"model": m.files[part], "source": src.files[part]}, feeds, assets_dir=assets_dir)
        out[part], out[f"src_{part}"] = res["outputs"]
        out["onnxruntime_web"] = res["versions"].get("web")
    return out


# --- whole report ----------------------------------------------------------------------------


def _find_source(folder: Path, manifest: dict, candidates: list[Path]) -> Path:
    """The folder of the fp32 model this variant was made from (`source` names its id)."""
    source_id = manifest.get("source")
    if not isinstance(source_id, str) or source_id == manifest["id"]:
        return folder  # an fp32 model (or a mirror, whose `source` names a hub repo): itself
    seen = []
    for cand in [*candidates, *sorted(folder.resolve().parent.glob(f"*/{MANIFEST}"))]:
        cand = cand.parent if cand.name == MANIFEST else cand
        try:
            cid = json.loads((cand / MANIFEST).read_text()).get("id")
        except (OSError, ValueError):
            continue
        seen.append(cid)
        if cid == source_id:
            return cand
    raise ToolError(f"{folder}: its source model {source_id!r} is not beside it (found {sorted(set(seen))}); "
                    "name its folder with --source")


def report(folders: list[Path], checkpoint: Path | None = None, sources: list[Path] = (), threads: int = 0,
           runs: int = 10, assets_dir: Path | None = None, log=lambda msg: None) -> list[dict]:
    """Measure each folder against its source (and torch); write report.json + manifest summary."""
    ort = need("onnxruntime", feature="clip-web models report")
    folders = [Path(f) for f in folders]
    cache: dict[Path, Measured] = {}

    def measured(folder: Path) -> Measured:
        key = folder.resolve()
        if key not in cache:
            log(f"measuring {folder} ...")
            cache[key] = Measured(folder, threads=threads, runs=runs)
        return cache[key]

    references: dict[tuple, tuple] = {}  # torch embeddings per probe shape
    results = []
    for folder in folders:
        m = measured(folder)
        src = measured(_find_source(folder, m.manifest, [*sources, *folders]))
        if (m.pixels.shape != src.pixels.shape) or not np.array_equal(m.ids.astype(np.int64), src.ids.astype(np.int64)):
            raise ToolError(f"{folder}: its preprocessing or context length differs from its source's")
        result = {
            "model": m.manifest["id"],
            "variant": m.manifest["variant"],
            "source": src.manifest["id"],
            "probe": {"images": len(m.pixels), "texts": len(m.ids), "labels": len(LABELS), "seed": SEED},
            "bytes": {**m.bytes, "total": sum(m.bytes.values())},
            "vs_source": compare(m.image, m.text, src.image, src.text),
            "timing": {"load_ms": m.load_ms, "ms_per_image": m.ms_per_image, "runs": m.runs,
                       "threads": m.threads or "default", "engine": f"onnxruntime {ort.__version__} CPU",
                       "machine": platform.machine()},
        }
        if checkpoint is not None:
            key = (m.pixels.shape, m.ids.shape)
            if key not in references:
                log(f"running torch on {checkpoint} ...")
                references[key] = torch_embeds(checkpoint, m.pixels, m.ids)
            result["vs_torch"] = compare(m.image, m.text, *references[key])
        if "optimized" in m.manifest:
            log(f"running {folder} and its source in onnxruntime-web (wasm, Node) ...")
            web = web_embeds(m, src, assets_dir=assets_dir)
            result["vs_source_web"] = dict(compare(web["image"], web["text"], web["src_image"], web["src_text"]),
                                           engine=f"onnxruntime-web {web['onnxruntime_web']} wasm, Node, 1 thread")
        replace_file(folder / REPORT, (json.dumps(result, indent=2) + "\n").encode())
        manifest = read_manifest(folder)  # fresh: keep any edits made meanwhile
        manifest["report"] = summary(result)
        write_manifest(folder, manifest)
        results.append(result)
    return results


def summary(result: dict) -> dict:
    """The few numbers a variant picker shows (full detail stays in report.json). Key names are
    the ones web/js/ui/page-controls.js reads."""
    vs = result["vs_source"]
    out = {"reference": result["source"],
           "image_cosine_min": round(vs["image"]["cos_min"], 6),
           "image_cosine_mean": round(vs["image"]["cos_mean"], 6),
           "text_cosine_min": round(vs["text"]["cos_min"], 6),
           "text_cosine_mean": round(vs["text"]["cos_mean"], 6),
           "top1_agreement": vs["zero_shot_top1_agreement"],
           "bytes": result["bytes"]["total"],
           "load_ms": round(sum(result["timing"]["load_ms"].values()), 1),
           "ms_per_image": round(result["timing"]["ms_per_image"], 2)}
    if "vs_torch" in result:
        t = result["vs_torch"]
        out["torch_image_cosine_min"] = round(t["image"]["cos_min"], 6)
        out["torch_text_cosine_min"] = round(t["text"]["cos_min"], 6)
    if "vs_source_web" in result:
        w = result["vs_source_web"]
        out["max_abs"] = max(vs["max_abs"].values())
        out["web_image_cosine_min"] = round(w["image"]["cos_min"], 6)
        out["web_text_cosine_min"] = round(w["text"]["cos_min"], 6)
        out["web_max_abs"] = max(w["max_abs"].values())
    return out


def table(results: list[dict]) -> str:
    head = ["model", "variant", "vs", "MB", "img cos min", "img mean", "txt cos min", "txt mean", "top-1",
            "max abs", "load ms", "ms/img"]
    rows = []
    for r in results:
        s = summary(r)
        rows.append([r["model"], r["variant"], r["source"], f"{s['bytes'] / 1e6:.1f}",
                     f"{s['image_cosine_min']:.6f}", f"{s['image_cosine_mean']:.6f}",
                     f"{s['text_cosine_min']:.6f}", f"{s['text_cosine_mean']:.6f}",
                     f"{s['top1_agreement']:.3f}", _max_abs(r["vs_source"]), f"{s['load_ms']:.0f}",
                     f"{s['ms_per_image']:.1f}"])
        # second rows: the same variant against torch, and (graph-optimised variants) in onnxruntime-web
        for label, key in (("torch", "vs_torch"), ("ort-web", "vs_source_web")):
            if key in r:
                t = r[key]
                rows.append(["", "", label, "", f"{t['image']['cos_min']:.6f}", f"{t['image']['cos_mean']:.6f}",
                             f"{t['text']['cos_min']:.6f}", f"{t['text']['cos_mean']:.6f}",
                             f"{t['zero_shot_top1_agreement']:.3f}", _max_abs(t), "", ""])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*["-" * w for w in widths]), *(fmt.format(*r) for r in rows)])


def _max_abs(vs: dict) -> str:
    return f"{max(vs['max_abs'].values()):.2g}" if "max_abs" in vs else ""
