"""Writes web/js/runtime/jpeg-self-check.json: small JPEGs and the pixels PyPI's Pillow decodes them
to (libjpeg-turbo, the decoder PyTorch users' OpenAI `preprocess` runs on). The Python worker decodes
the same files with the browser before it lets the browser decode colour JPEGs; a browser whose
pixels differ (Safari's ImageIO, say) gets Pillow instead.

    python tests/web/jpeg_self_check.py          # regenerate (tests/web/test_jpeg_self_check.py checks it)

The samples cover the paths where decoders differ: chroma subsampling 4:2:0 (fancy upsampling)
and 4:4:4, baseline and progressive, odd sizes (edge blocks), saturated colour edges.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, features

OUT = Path(__file__).resolve().parents[2] / "web" / "js" / "runtime" / "jpeg-self-check.json"

# (name, width, height, Pillow save options)
SAMPLES = [
    ("baseline-420", 17, 13, {"subsampling": 2}),
    ("baseline-444", 15, 11, {"subsampling": 0}),
    ("progressive-420", 19, 14, {"subsampling": 2, "progressive": True}),
]


def _pattern(width: int, height: int, seed: int) -> np.ndarray:
    """Colour ramps with hard red/blue edges: chroma upsampling shows on the edges."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([(x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1), ((x + y + seed) % 4) * 85], axis=-1)
    rgb[(x // 3 + y // 3) % 2 == 0] = (255, 0, 40)  # (h, w, 3) checkerboard of saturated red
    return rgb.astype(np.uint8)  # (h, w, 3)


def build() -> dict:
    if not features.check_feature("libjpeg_turbo"):
        raise SystemExit("this Pillow is not built with libjpeg-turbo: the expectations must come from PyPI's Pillow")
    samples = []
    for i, (name, width, height, options) in enumerate(SAMPLES):
        buf = io.BytesIO()
        Image.fromarray(_pattern(width, height, i)).save(buf, "JPEG", quality=90, **options)
        data = buf.getvalue()
        with Image.open(io.BytesIO(data)) as im:
            rgb = np.asarray(im.convert("RGB"))  # (h, w, 3)
        samples.append({"name": name, "width": width, "height": height,
                        "jpeg": base64.b64encode(data).decode(), "rgb": base64.b64encode(rgb.tobytes()).decode()})
    return {"generated_by": "tests/web/jpeg_self_check.py",
            "decoder": f"Pillow {Image.__version__}, libjpeg-turbo {features.version('libjpeg_turbo')}",
            "samples": samples}


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
