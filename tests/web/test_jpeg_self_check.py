"""The JPEG self-check's expectations (web/js/runtime/jpeg-self-check.json) are what PyPI's Pillow
decodes today, and they cover the cases where decoders differ."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image, features

from jpeg_self_check import OUT, SAMPLES


def _load():
    return json.loads(OUT.read_text())


def test_expected_pixels_are_pillows_decode():
    assert features.check_feature("libjpeg_turbo")
    data = _load()
    assert [s["name"] for s in data["samples"]] == [name for name, *_ in SAMPLES]
    for s in data["samples"]:
        with Image.open(io.BytesIO(base64.b64decode(s["jpeg"]))) as im:
            assert im.size == (s["width"], s["height"])
            rgb = np.asarray(im.convert("RGB"))  # (h, w, 3)
        assert rgb.tobytes() == base64.b64decode(s["rgb"]), s["name"]


def test_samples_cover_subsampling_and_progressive():
    by_name = {s["name"]: Image.open(io.BytesIO(base64.b64decode(s["jpeg"]))) for s in _load()["samples"]}
    from PIL import JpegImagePlugin

    assert JpegImagePlugin.get_sampling(by_name["baseline-420"]) == 2
    assert JpegImagePlugin.get_sampling(by_name["baseline-444"]) == 0
    assert by_name["progressive-420"].info.get("progressive") == 1
    assert all(im.mode == "RGB" for im in by_name.values())
    assert any(im.size[0] % 2 for im in by_name.values())  # an odd width: edge upsampling


def test_a_decoder_with_plain_upsampling_would_fail_the_check():
    """The expected pixels are far from what a decoder without fancy chroma upsampling gives
    (simulated here: each 2x2 block's chroma repeated), so the check notices such a decoder. The
    browser test shows it notices a real one too: Pyodide's Pillow (another libjpeg)."""
    s = next(s for s in _load()["samples"] if s["name"] == "baseline-420")
    rgb = np.frombuffer(base64.b64decode(s["rgb"]), dtype=np.uint8).reshape(s["height"], s["width"], 3)  # (h, w, 3)
    with Image.open(io.BytesIO(base64.b64decode(s["jpeg"]))) as im:
        ycc = np.asarray(im.convert("YCbCr")).astype(np.int16)  # (h, w, 3)
    # Chroma taken from one pixel per 2x2 block (no interpolation), luma kept: another decoder's answer.
    blocky = ycc.copy()
    blocky[..., 1:] = ycc[::2, ::2, 1:].repeat(2, 0).repeat(2, 1)[: ycc.shape[0], : ycc.shape[1]]
    other = np.asarray(Image.fromarray(blocky.astype(np.uint8), "YCbCr").convert("RGB"))  # (h, w, 3)
    assert np.abs(other.astype(int) - rgb.astype(int)).max() > 8
