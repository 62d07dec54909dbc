"""Graph optimisation A/B: plain fp32 vs `clip-web models optimize`d fp32, same weights.

onnxruntime-web 1.30 wasm under Node (the browser's ort.wasm.min.mjs + ort-wasm-simd-threaded.wasm,
session options as the pages set them: graphOptimizationLevel 'extended'), in one process per
encoder and thread count, plain and optimised alternating ABBA within every round:

- image: batch 1, pyapp-preprocessed probe image
- text: "a photo of a cat" at its real length (7 positions) and at 77
- session creation (create + release, ABBA), after a first session has instantiated the wasm

and the same with native onnxruntime (CPU, level 'extended', intra-op threads 1 and 2) for context.
Also the op counts the browser ends up running: each file after native onnxruntime's 'extended'
pass (what the page's session does at creation; native 1.32 stands in for web 1.30 here).

    python benchmarks/graph_optimisation.py [--kinds tiny vit-b-32-random] [--threads 1 2] [--rounds 20]

Model folders (made once, kept; an in-browser A/B serves one of these with `clip-web serve
--models-dir .cache/graph-opt/<kind>`: ids `<kind-id>` and `<kind-id>-opt`):

    .cache/graph-opt/<kind>/fp32/   the reference build's files (hard links) + its manifest
    .cache/graph-opt/<kind>/opt/    clip-web models optimize of fp32/
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "reference"))

from server.model_tools.common import sha256_file  # noqa: E402

CACHE = ROOT / ".cache" / "graph-opt"
TEXT = "a photo of a cat"
TOOLS = ("optimize.py", "ort_web.py", "ort_web_run.mjs", "common.py")


def _stamp(source: Path) -> str:
    """Rebuild the optimised folder when the source model or the tool changes."""
    tools = ROOT / "server" / "model_tools"
    m = json.loads((source / "manifest.json").read_text())
    return "\n".join([m["image"]["sha256"], m["text"]["sha256"], *(sha256_file(tools / f) for f in TOOLS)]) + "\n"


def prepare(kind: str, log=print) -> dict[str, Path]:
    """{'fp32': folder, 'opt': folder} side by side under .cache/graph-opt/<kind>/."""
    from server.model_tools.optimize import optimize_folder
    from torch_reference import ensure_reference_models

    source = ensure_reference_models(kind)
    out = CACHE / kind
    folders = {"fp32": out / "fp32", "opt": out / "opt"}
    stamp = _stamp(source)
    stamp_file = out / ".stamp"
    if stamp_file.is_file() and stamp_file.read_text() == stamp and all(f.is_dir() for f in folders.values()):
        return folders
    shutil.rmtree(out, ignore_errors=True)
    folders["fp32"].mkdir(parents=True)
    for name in ("image.onnx", "text.onnx", "manifest.json"):
        try:
            os.link(source / name, folders["fp32"] / name)  # no second copy of 600 MB
        except OSError:
            shutil.copy2(source / name, folders["fp32"] / name)
    log(f"optimising {kind} ...")
    optimize_folder(folders["fp32"], folders["opt"], log=lambda msg: log(f"  {msg}"))
    stamp_file.write_text(stamp)
    return folders


def inputs(manifest: dict) -> dict[str, np.ndarray]:
    from pyapp.preprocess import preprocess_images
    from pyapp.tokenizer import tokenize, trim_padding
    from server.model_tools.report import probe_images

    ids = tokenize([TEXT], context_length=manifest["context_length"])  # (1, 77) int32
    pixels = preprocess_images(probe_images(1), size=manifest["image_size"], mean=manifest["mean"],
                               std=manifest["std"])  # (1, 3, S, S)
    return {"image": pixels, f"text_{trim_padding(ids).shape[1]}": trim_padding(ids), "text_77": ids}


def _median(xs):
    return statistics.median(xs) if xs else None


def web(folders: dict[str, Path], threads: int, rounds: int, create_rounds: int, log=print) -> dict:
    from server.model_tools import ort_web

    manifest = json.loads((folders["fp32"] / "manifest.json").read_text())
    xs = inputs(manifest)
    out = {}
    for part in ("image", "text"):
        spec = manifest[part]
        cases = [k for k in xs if k.startswith(part)]
        feeds, labels = [], []
        for case in cases:  # ABBA within every round
            for which in ("fp32", "opt", "opt", "fp32"):
                feeds.append(ort_web.Feed(which, spec["input"], spec["output"], xs[case]))
                labels.append((case, which))
        log(f"  web {part}, {threads} thread(s): {rounds} rounds ...")
        res = ort_web.run({w: folders[w] / spec["url"] for w in ("fp32", "opt")}, feeds, threads=threads,
                          rounds=rounds, create_rounds=create_rounds, timeout_s=3600)
        times = collections.defaultdict(list)
        for (case, which), ms in zip(labels, res["run_ms"]):
            times[(case, which)] += ms
        for case in cases:
            plain, opt = _median(times[(case, "fp32")]), _median(times[(case, "opt")])
            a = res["outputs"][labels.index((case, "fp32"))]
            b = res["outputs"][labels.index((case, "opt"))]
            out[case] = {"fp32_ms": plain, "opt_ms": opt, "ratio": opt / plain,
                         "fp32_min_ms": min(times[(case, "fp32")]), "opt_min_ms": min(times[(case, "opt")]),
                         "n": len(times[(case, "fp32")]), "max_abs": float(np.abs(a - b).max())}
        c = res["create_ms"]
        out[f"{part}_create"] = {"fp32_ms": _median(c["fp32"]), "opt_ms": _median(c["opt"]),
                                 "ratio": _median(c["opt"]) / _median(c["fp32"]), "n": len(c["fp32"])}
        out["threads_granted"] = res["threads"]
        # > 1 only if the worker threads really ran (process CPU time / wall time of the rounds)
        out[f"{part}_cpu_per_wall"] = res["rounds_cpu_ms"] / res["rounds_wall_ms"] if res["rounds_wall_ms"] else None
        out["versions"] = res["versions"]
    return out


def native(folders: dict[str, Path], threads: int, rounds: int, create_rounds: int, log=print) -> dict:
    import onnxruntime as ort

    manifest = json.loads((folders["fp32"] / "manifest.json").read_text())
    xs = inputs(manifest)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # as the pages ask
    out = {}
    for part in ("image", "text"):
        spec = manifest[part]
        paths = {w: str(folders[w] / spec["url"]) for w in ("fp32", "opt")}
        create = collections.defaultdict(list)
        for r in range(create_rounds):
            for w in (("fp32", "opt") if r % 2 == 0 else ("opt", "fp32")):
                t0 = time.perf_counter()
                ort.InferenceSession(paths[w], options, providers=["CPUExecutionProvider"])
                create[w].append((time.perf_counter() - t0) * 1e3)
        sessions = {w: ort.InferenceSession(p, options, providers=["CPUExecutionProvider"]) for w, p in paths.items()}
        log(f"  native {part}, {threads} thread(s): {rounds} rounds ...")
        for case in (k for k in xs if k.startswith(part)):
            feed = {spec["input"]: xs[case]}
            times = collections.defaultdict(list)
            for w in sessions:
                sessions[w].run(None, feed)  # warm-up
            for _ in range(rounds):
                for w in ("fp32", "opt", "opt", "fp32"):
                    t0 = time.perf_counter()
                    sessions[w].run(None, feed)
                    times[w].append((time.perf_counter() - t0) * 1e3)
            out[case] = {"fp32_ms": _median(times["fp32"]), "opt_ms": _median(times["opt"]),
                         "ratio": _median(times["opt"]) / _median(times["fp32"]), "n": len(times["fp32"])}
        out[f"{part}_create"] = {"fp32_ms": _median(create["fp32"]), "opt_ms": _median(create["opt"]),
                                 "ratio": _median(create["opt"]) / _median(create["fp32"]), "n": create_rounds}
        del sessions
    return out


def graph_counts(folders: dict[str, Path]) -> dict:
    """Nodes and ops of each file as written, and after onnxruntime's 'extended' pass (the browser's)."""
    import onnx
    import onnxruntime as ort

    out = {}
    manifest = json.loads((folders["fp32"] / "manifest.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        for part in ("image", "text"):
            for w in ("fp32", "opt"):
                path = folders[w] / manifest[part]["url"]
                options = ort.SessionOptions()
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
                options.optimized_model_filepath = str(Path(tmp) / "x.onnx")
                ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                written = onnx.load(str(path), load_external_data=False)
                extended = onnx.load(str(Path(tmp) / "x.onnx"), load_external_data=False)
                out[f"{part}_{w}"] = {
                    "nodes": len(written.graph.node),
                    "ops": dict(collections.Counter(n.op_type for n in written.graph.node).most_common()),
                    "nodes_after_extended": len(extended.graph.node),
                    "ops_after_extended": dict(collections.Counter(n.op_type for n in extended.graph.node).most_common()),
                    "bytes": path.stat().st_size}
    return out


def table(kind: str, engine: str, rows: dict) -> str:
    lines = [f"{kind}, {engine}:", "  case           threads  fp32 ms   opt ms   opt/fp32"]
    for threads, r in rows.items():
        for case, v in r.items():
            if isinstance(v, dict) and "ratio" in v:
                lines.append(f"  {case:<14} {threads:>7}  {v['fp32_ms']:>7.2f}  {v['opt_ms']:>7.2f}  {v['ratio']:>8.3f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=["tiny", "vit-b-32-random"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=20, help="ABBA rounds of timed runs")
    parser.add_argument("--create-rounds", type=int, default=6, help="timed session creations per model")
    parser.add_argument("--no-native", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "graph_optimisation.json"))
    args = parser.parse_args()

    import onnxruntime

    results = {"machine": platform.uname()._asdict(), "cpus": os.cpu_count(), "rounds": args.rounds,
               "create_rounds": args.create_rounds, "onnxruntime": onnxruntime.__version__, "kinds": {}}
    for kind in args.kinds:
        folders = prepare(kind)
        r = {"folders": {k: str(v.relative_to(ROOT)) for k, v in folders.items()},
             "optimized": json.loads((folders["opt"] / "manifest.json").read_text())["optimized"],
             "graphs": graph_counts(folders), "load_before": os.getloadavg(), "web": {}, "native": {}}
        for n in args.threads:
            r["web"][n] = web(folders, n, args.rounds, args.create_rounds)
        if not args.no_native:
            for n in args.threads:
                r["native"][n] = native(folders, n, args.rounds, args.create_rounds)
        r["load_after"] = os.getloadavg()
        results["kinds"][kind] = r
        print(table(kind, "onnxruntime-web wasm (Node)", r["web"]))
        if r["native"]:
            print(table(kind, f"onnxruntime {onnxruntime.__version__} native", r["native"]))
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
