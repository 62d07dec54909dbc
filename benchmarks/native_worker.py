"""The native contender of benchmarks/compare.py: pyapp preprocessing + onnxruntime in CPython, the
same ONNX files and thread count as the browser. A subprocess, so that its start, memory and CPU
are its own; it speaks JSON lines on stdin/stdout.

    python benchmarks/native_worker.py --model-dir DIR --images-dir DIR --first-image NAME --threads N --t0 EPOCH

On start it runs the same startup sequence as the pages (load both sessions, embed one image, one
text) and prints {"startup": {...}} with marks in ms since --t0 (the parent's clock just before it
spawned us, so Python's own start is counted). Then it answers commands:
    {"cmd": "time_image", "name": ..., "n": 20, "warmup": 1}  and the others in COMMANDS.
"""

from __future__ import annotations

import time

_T_MAIN = time.time()  # before the heavy imports

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Native:
    def __init__(self, model_dir: Path, images_dir: Path, threads: int):
        import numpy as np
        import onnxruntime as ort

        import pyapp

        self.np, self.ort, self.pyapp = np, ort, pyapp
        self.images_dir = images_dir
        self.images: dict[str, bytes] = {}
        manifest = json.loads((model_dir / "manifest.json").read_text())
        self.manifest = manifest
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.sessions = {}
        self.session_ms = {}
        for part in ("image", "text"):
            t0 = time.perf_counter()
            self.sessions[part] = ort.InferenceSession(str(model_dir / manifest[part]["url"]), options,
                                                       providers=["CPUExecutionProvider"])
            self.session_ms[part] = (time.perf_counter() - t0) * 1000
        self.int_dtype = np.int64 if manifest["text"]["input_dtype"] == "int64" else np.int32

    def image_bytes(self, name: str) -> bytes:
        if name not in self.images:
            self.images[name] = (self.images_dir / name).read_bytes()
        return self.images[name]

    def embed_image(self, data: bytes) -> dict:
        t0 = time.perf_counter()
        pixels = self.pyapp.preprocess_image(data)  # (1, 3, 224, 224)
        t1 = time.perf_counter()
        spec = self.manifest["image"]
        out = self.sessions["image"].run([spec["output"]], {spec["input"]: pixels})[0]  # (1, 512)
        t2 = time.perf_counter()
        return {"embedding": out[0], "preprocess_ms": (t1 - t0) * 1000, "inference_ms": (t2 - t1) * 1000}

    def embed_texts(self, texts: list[str]) -> tuple:
        t0 = time.perf_counter()
        ids = self.pyapp.tokenize(texts).astype(self.int_dtype)  # (n, 77)
        t1 = time.perf_counter()
        spec = self.manifest["text"]
        out = self.sessions["text"].run([spec["output"]], {spec["input"]: ids})[0]  # (n, 512)
        t2 = time.perf_counter()
        return ids, out, (t1 - t0) * 1000, (t2 - t1) * 1000

    # --- commands (same names and shapes as window.bench in benchmarks/pages/bench-common.js)
    def load_images(self, names):
        for n in names:
            self.image_bytes(n)
        return len(self.images)

    def embed_images(self, names):
        out = []
        for name in names:
            try:
                out.append({"name": name, "embedding": self.embed_image(self.image_bytes(name))["embedding"].tolist()})
            except Exception as exc:  # noqa: BLE001 - reported, like the pages do
                out.append({"name": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        return out

    def time_image(self, name, n, warmup=1):
        data = self.image_bytes(name)
        for _ in range(warmup):
            self.embed_image(data)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = self.embed_image(data)
            samples.append({"total_ms": (time.perf_counter() - t0) * 1000,
                            "preprocess_ms": r["preprocess_ms"], "inference_ms": r["inference_ms"]})
        return samples

    def time_text(self, text, n, warmup=1):
        for _ in range(warmup):
            self.embed_texts([text])
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            _, _, tok, inf = self.embed_texts([text])
            samples.append({"total_ms": (time.perf_counter() - t0) * 1000, "tokenize_ms": tok, "inference_ms": inf})
        return samples

    def throughput(self, names):
        t0 = time.perf_counter()
        for name in names:
            self.embed_image(self.image_bytes(name))
        return (time.perf_counter() - t0) * 1000

    def texts(self, texts, chunk=16):
        ids, embeddings = [], []
        for i in range(0, len(texts), chunk):
            a, b, _, _ = self.embed_texts(texts[i:i + chunk])
            ids += a.tolist()
            embeddings += b.tolist()
        return {"ids": ids, "embeddings": embeddings}

    def memory(self):
        return {"peak_rss_mb": peak_rss_mb()}


COMMANDS = ("load_images", "embed_images", "time_image", "time_text", "throughput", "texts", "memory")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--images-dir", type=Path, required=True)
    ap.add_argument("--first-image", required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--t0", type=float, required=True, help="parent's time.time() just before spawning")
    args = ap.parse_args()

    def since(t: float) -> float:
        return (t - args.t0) * 1000

    marks = {"python": since(_T_MAIN)}
    import numpy  # noqa: F401
    import onnxruntime

    import pyapp  # noqa: F401

    pyapp.get_tokenizer()  # loads the BPE file, as the browser does during its start
    marks["imports"] = since(time.time())
    native = Native(args.model_dir, args.images_dir, args.threads)
    marks["ready"] = since(time.time())
    first = native.embed_image(native.image_bytes(args.first_image))
    marks["first_image"] = since(time.time())
    native.embed_texts(["a photo of a cat"])
    marks["first_text"] = since(time.time())
    startup = {"marks": marks, "session_ms": native.session_ms,
               "image": {"preprocess_ms": first["preprocess_ms"], "inference_ms": first["inference_ms"]},
               "threads": args.threads, "versions": {"onnxruntime": onnxruntime.__version__}}
    out = sys.stdout
    out.write(json.dumps({"startup": startup}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        cmd = msg.pop("cmd")
        if cmd == "quit":
            break
        try:
            if cmd not in COMMANDS:
                raise ValueError(f"unknown command {cmd}")
            reply = {"ok": getattr(native, cmd)(**msg)}
        except Exception as exc:  # noqa: BLE001 - the parent raises it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
