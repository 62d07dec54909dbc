"""`clip-web index` speed: images/s on a folder of generated 1024x768 JPEG photos.

For each model (the tiny reference model; the full-size ViT-B/32, random weights, when
.cache/reference/full or .cache/reference/vit-b-32-random exists: `tests/reference/build_models.py
--full`) and each setting (decode workers x onnxruntime threads, thread or process pool), --runs
fresh runs (--restart each time); the rate is images embedded / time after setup (listing, session
creation), and the median is reported. Raw samples go to benchmarks/results/native_index.json.

    python benchmarks/native_index.py [--images 64] [--full-images 24] [--runs 3] [--batch 16]

Short on purpose (a shared 2-core machine): about a minute for the tiny model, two more for the
full-size one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "pyapp")]

# (workers, onnxruntime threads, pool)
SETTINGS = [(1, 1, "thread"), (2, 1, "thread"), (1, 2, "thread"), (2, 2, "thread"), (2, 2, "process")]


def make_folder(folder: Path, n: int) -> None:
    from PIL import Image

    from image_corpus import _photo

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        Image.fromarray(_photo(1024, 768, 100 + k)).save(folder / f"photo_{k:04d}.jpg", quality=88)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=64, help="photos for the tiny model")
    parser.add_argument("--full-images", type=int, default=24, help="photos for the full-size model")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "native_index.json"))
    args = parser.parse_args()

    import onnxruntime

    from server import native_index as ni

    models = [("tiny", ROOT / ".cache" / "reference" / "tiny", args.images)]
    for name in ("full", "vit-b-32-random"):
        if (ROOT / ".cache" / "reference" / name / "manifest.json").is_file():
            models.append(("full", ROOT / ".cache" / "reference" / name, args.full_images))
            break
    else:
        print("full-size model not built (tests/reference/build_models.py --full): tiny only", file=sys.stderr)

    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "onnxruntime": onnxruntime.__version__, "load_before": os.getloadavg()},
               "batch": args.batch, "runs": args.runs, "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for kind, model_dir, n in models:
            folder = tmp / f"photos-{n}"
            if not folder.exists():
                make_folder(folder, n)
            model = ni.resolve_model(str(model_dir))
            rows = []
            for workers, threads, pool in SETTINGS:
                samples = []
                for _ in range(args.runs):
                    r = ni.build_index(folder, model, tmp / "out.json", workers=workers, threads=threads,
                                       batch=args.batch, pool=pool, restart=True, quiet=True)
                    assert r.complete and r.embedded == n, r
                    samples.append(r.embedded / (r.seconds - r.setup_seconds))
                row = {"workers": workers, "threads": threads, "pool": pool, "images": n,
                       "median_images_per_s": statistics.median(samples), "samples": samples}
                rows.append(row)
                print(f"{kind:5s} workers={workers} threads={threads} pool={pool:7s} "
                      f"{row['median_images_per_s']:7.1f} images/s (median of {args.runs}: "
                      f"{', '.join(f'{s:.1f}' for s in samples)})", flush=True)
            results["models"][kind] = {"model": model.id, "rows": rows}
    results["machine"]["load_after"] = os.getloadavg()
    results["date"] = time.strftime("%Y-%m-%d %H:%M")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
