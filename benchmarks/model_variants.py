"""Model variants benchmark: size, fidelity and native speed of fp32, uint8, int8 and fp16 on the
full-size ViT-B/32 architecture (random weights: realistic compute, fidelity says little about
trained CLIP), made with our own tools (`clip-web models quantize` / `fp16`).

Native numbers: onnxruntime CPU, batch-1 image encoder, median ms over rounds x runs (variants
interleaved), per thread count; also the minimum, the least disturbed by other processes.
Fidelity: cosine min/mean of each variant's embeddings vs fp32 on the report's probe set.

    python benchmarks/model_variants.py [--kind vit-b-32-random] [--threads 1 2] [--runs 10] [--rounds 3]

For browser numbers (to be added): `prepare(kind)` returns {variant: model folder}, each with a
manifest (ids `<kind>`, `<kind>-uint8`, ...); serve their parent folder with
`clip-web serve --models-dir` and time `runtime.run(id, 'image', ...)` in the page.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "reference"))

from server.model_tools.common import sha256_file  # noqa: E402

VARIANTS = ("fp32", "uint8", "int8", "fp16")
CACHE = ROOT / ".cache" / "model-variants"


def _tools_stamp(source: Path) -> str:
    """Rebuild the variants when the source model or our tool code changes."""
    tools = ROOT / "server" / "model_tools"
    parts = [json.loads((source / "manifest.json").read_text())["image"]["sha256"]]
    parts += [sha256_file(tools / f) for f in ("quantize.py", "fp16.py", "common.py")]
    return "\n".join(parts) + "\n"


def prepare(kind: str = "vit-b-32-random", log=print) -> dict[str, Path]:
    """{variant: folder}; the fp32 folder is the reference build, the others are made (cached)."""
    from server.model_tools.fp16 import fp16_folder
    from server.model_tools.quantize import quantize_folder
    from torch_reference import ensure_reference_models

    source = ensure_reference_models(kind)
    out = CACHE / kind
    stamp = _tools_stamp(source)
    folders = {"fp32": source}
    for variant in VARIANTS[1:]:
        folder = out / variant
        stamp_file = folder / ".stamp"
        folders[variant] = folder
        if stamp_file.is_file() and stamp_file.read_text() == stamp:
            continue
        log(f"making {kind} {variant} ...")
        if variant == "fp16":
            fp16_folder(source, folder, force=True)
        else:
            quantize_folder(source, folder, variant, force=True)
        stamp_file.write_text(stamp)
    return folders


def native(folders: dict[str, Path], threads=(1, 2), runs: int = 20, rounds: int = 3, log=print) -> list[dict]:
    """One row per variant: MB, cosine vs fp32 on the probe set, load ms and ms/image per thread count.

    Timing is interleaved (rounds x variants x runs) so that load from other processes on a
    shared machine falls on every variant alike; the figure is the median of all rounds."""
    import statistics

    from server.model_tools.report import Measured, compare

    rows = {v: {"variant": v} for v in folders}
    for n in threads:
        measured = {}
        for variant, folder in folders.items():
            log(f"loading {variant} with {n} thread(s) ...")
            measured[variant] = Measured(folder, threads=n, runs=1)
        fp32 = measured["fp32"]
        times = {v: [] for v in folders}
        for r in range(rounds):
            log(f"timing round {r + 1} of {rounds} ({n} thread(s)) ...")
            for variant, m in measured.items():
                times[variant] += [m.time_one_image(i) for i in range(runs)]
        for variant, m in measured.items():
            row = rows[variant]
            row.setdefault("mb", sum(m.bytes.values()) / 1e6)
            row.setdefault("vs_fp32", compare(m.image, m.text, fp32.image, fp32.text))
            row[f"ms_per_image_{n}t"] = statistics.median(times[variant])
            row[f"ms_per_image_{n}t_min"] = min(times[variant])
            row[f"load_ms_{n}t"] = sum(m.load_ms.values())
        del measured, fp32  # free the sessions before the next thread count
    return list(rows.values())


def table(rows: list[dict], threads) -> str:
    head = ["variant", "MB", "img cos min", "img mean", "txt cos min", "txt mean", "top-1",
            *(f"ms/img {n}t med (min)" for n in threads), *(f"load ms {n}t" for n in threads)]
    lines = []
    for r in rows:
        v = r["vs_fp32"]
        lines.append([r["variant"], f"{r['mb']:.1f}", f"{v['image']['cos_min']:.6f}", f"{v['image']['cos_mean']:.6f}",
                      f"{v['text']['cos_min']:.6f}", f"{v['text']['cos_mean']:.6f}",
                      f"{v['zero_shot_top1_agreement']:.3f}",
                      *(f"{r[f'ms_per_image_{n}t']:.1f} ({r[f'ms_per_image_{n}t_min']:.1f})" for n in threads),
                      *(f"{r[f'load_ms_{n}t']:.0f}" for n in threads)])
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), *(fmt.format(*line) for line in lines)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="vit-b-32-random", help="reference model kind (tiny for a dry run)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=10, help="timed images per variant per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "model_variants.json"))
    args = parser.parse_args()

    import onnxruntime

    folders = prepare(args.kind)
    rows = native(folders, threads=args.threads, runs=args.runs, rounds=args.rounds)
    print(table(rows, args.threads))
    Path(args.out).write_text(json.dumps({
        "kind": args.kind, "runs": args.runs, "rounds": args.rounds, "threads": args.threads,
        "engine": f"onnxruntime {onnxruntime.__version__} CPU", "machine": platform.uname()._asdict(),
        "rows": rows,
    }, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
