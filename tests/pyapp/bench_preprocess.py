"""Benchmark (not a test): milliseconds to preprocess one 1024x768 JPEG, as JSON on stdout.

    python tests/pyapp/bench_preprocess.py [--runs 20]

Times `preprocess_image(jpeg_bytes)` end to end (decode + resize + crop + RGB + normalise), median of
`--runs` runs after one warm-up, plus the median of each stage alone to show where the time goes.
Only needs PIL + numpy + pyapp, so it runs under Pyodide as well.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # image_corpus beside this file
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))  # pyapp

import numpy as np  # noqa: E402
import PIL  # noqa: E402
from image_corpus import _encode, _photo  # noqa: E402
from PIL import Image  # noqa: E402

from pyapp import preprocess as P  # noqa: E402
from pyapp.constants import IMAGE_SIZE, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD  # noqa: E402


def _median_ms(fn, runs: int) -> float:
    fn()  # warm-up: plugin registration, LUT cache
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()

    jpeg = _encode(Image.fromarray(_photo(1024, 768, 1)), "JPEG", quality=90)
    decoded = P.open_image(jpeg)
    resized = P._resize_shorter_side(decoded, IMAGE_SIZE)
    cropped = P._center_crop(resized, IMAGE_SIZE)
    rgb = P._to_rgb_array(cropped)

    stages = {
        "decode": lambda: P.open_image(jpeg),
        "resize": lambda: P._resize_shorter_side(decoded, IMAGE_SIZE),
        "crop_rgb": lambda: P._to_rgb_array(P._center_crop(resized, IMAGE_SIZE)),
        "normalise": lambda: P._normalise(rgb, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD),
    }
    result = {
        "image": "1024x768 JPEG q90",
        "jpeg_bytes": len(jpeg),
        "runs": args.runs,
        "ms_per_image_median": _median_ms(lambda: P.preprocess_image(jpeg), args.runs),
        "stages_ms_median": {name: _median_ms(fn, args.runs) for name, fn in stages.items()},
        "python": platform.python_version(),
        "platform": sys.platform,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
