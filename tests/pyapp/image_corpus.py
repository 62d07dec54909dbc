"""A deterministic corpus of image files for the preprocessing tests.

`generate_image_corpus()` returns [(name, file_bytes)], built in memory from numpy RandomState with
fixed seeds and encoded with Pillow: no files on disk, no network, only PIL + numpy, a couple of
seconds. The names say what each file exercises; the extension is its format.

The same bytes are meant to be fed to pyapp.preprocess under CPython and under Pyodide, so the corpus
is generated once (in CPython) and carried over as bytes.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Where OpenAI's preprocess under Pillow 10.2 (Pyodide's, this venv's) is not the reference under
# Pillow 13 (today's; tests/pyapp/pillow_oracle.py): "crashes" where 10.2 can't resize "I;16*"
# ("image has wrong mode") and 13 can; "differs" where 10.2 opens a 16-bit greyscale PNG as "I" and
# 13 as "I;16", whose resize clips to 0..65535 between its passes. Every other file gives the same
# tensor under both (the tests check both halves of that statement).
PILLOW_10_2_DIFFERS = {
    "i16_tiff_300x200.tif": "crashes",
    "i16b_tiff_big_endian_250x200.tif": "crashes",
    "i16_png_board_300x200.png": "differs",
    "i16_tiff_board_300x200.tif": "crashes",
    "i16_tiff_full_range_300x200.tif": "crashes",
    "i16b_tiff_full_range_300x200.tif": "crashes",
}
# The same for MODE_IMAGES (by mode). "La" is not here: both versions refuse it (no La -> RGB).
PILLOW_10_2_DIFFERS_MODES = {"I;16": "crashes", "I;16L": "crashes", "I;16B": "crashes", "I;16N": "crashes"}

# The file with an EXIF orientation tag, and the tag.
EXIF_ROTATED_NAME = "exif_orientation6_320x240.jpg"
EXIF_ORIENTATION = 6


def _encode(im: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def _photo(width: int, height: int, seed: int) -> np.ndarray:
    """A photo-like uint8 (height, width, 3) array: smooth gradients, soft blobs, a hard edge, noise."""
    rs = np.random.RandomState(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]  # (h, 1)
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]  # (1, w)
    phase = np.float32(rs.uniform(0, 2 * np.pi))
    # One contiguous (h, w) plane per channel: in-place work on planes is much faster than on the
    # strided channels of an (h, w, 3) array, which matters at 4000x3000.
    planes = [
        40 + 170 * (0.6 * x + 0.4 * y),
        128 + 90 * np.sin(2 * np.pi * (3 * x + 2 * y) + phase),
        230 - 180 * x * y,
    ]
    planes = [np.array(np.broadcast_to(p, (height, width)), dtype=np.float32) for p in planes]  # copies
    for _ in range(4):  # soft blobs, like objects in a scene
        cx, cy, r = rs.uniform(0.1, 0.9), rs.uniform(0.1, 0.9), rs.uniform(0.05, 0.25)
        # A Gaussian is separable: exp(-(dx^2 + dy^2) / r^2) = exp(-dx^2 / r^2) * exp(-dy^2 / r^2).
        gx = np.exp(-((x - cx) ** 2) / np.float32(r * r))  # (1, w)
        gy = np.exp(-((y - cy) ** 2) / np.float32(r * r))  # (h, 1)
        colour = rs.uniform(-90, 90, size=3).astype(np.float32)
        for plane, amount in zip(planes, colour):
            plane += gy * (gx * amount)  # (h, w)
    x0, y0 = int(width * rs.uniform(0.1, 0.5)), int(height * rs.uniform(0.1, 0.5))
    box = rs.uniform(0, 255, size=3)
    # Sensor-like noise from a small tile (full-size normals for 4000x3000 would take a second).
    tile = rs.normal(0.0, 10.0, size=(3, 97, 89)).astype(np.float32)  # odd sizes: no visible grid
    reps = (1, height // 97 + 1, width // 89 + 1)
    noise = np.tile(tile, reps)[:, :height, :width]  # (3, h, w)
    out = np.empty((height, width, 3), dtype=np.uint8)  # (h, w, 3)
    for c, plane in enumerate(planes):
        plane[y0 : y0 + height // 4, x0 : x0 + width // 4] = box[c]  # a hard-edged box
        plane += noise[c]
        out[..., c] = np.clip(plane, 0, 255)
    return out


def _checkerboard(width: int, height: int, square: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    board = ((yy // square + xx // square) % 2).astype(np.uint8) * 255  # (h, w)
    return np.stack([board, 255 - board, board // 2], axis=-1)  # (h, w, 3)


def _rgba_varying_alpha(width: int, height: int, seed: int) -> Image.Image:
    rgb = _photo(width, height, seed)
    alpha = np.linspace(0, 255, width, dtype=np.float32)[None, :].repeat(height, 0)  # (h, w)
    alpha[: height // 5] = 0  # fully transparent band, over bright colours: premultiplied resize shows
    alpha[-height // 5 :] = 255
    rgb[: height // 5] = (255, 0, 255)
    return Image.fromarray(np.dstack([rgb, alpha.astype(np.uint8)]), mode="RGBA")


def _palette_image(width: int, height: int, seed: int) -> Image.Image:
    return Image.fromarray(_photo(width, height, seed)).quantize(colors=64, method=Image.Quantize.MEDIANCUT)


def _animation_frames(width: int, height: int) -> list[Image.Image]:
    """Three frames that differ: the first one must be the one preprocessed."""
    return [
        Image.fromarray(_photo(width, height, 40)),
        Image.fromarray(_checkerboard(width, height, 10)),
        Image.fromarray(_photo(width, height, 41)[::-1].copy()),
    ]


def _exif_rotated_jpeg() -> bytes:
    # A scene whose top-left is marked, so a rotation changes the pixels and not just the layout.
    arr = _photo(320, 240, 50)
    arr[:60, :80] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = EXIF_ORIENTATION  # Orientation: "rotate 90 CW to display"
    return _encode(Image.fromarray(arr), "JPEG", quality=92, exif=exif.tobytes())


def generate_image_corpus() -> list[tuple[str, bytes]]:
    """[(name, bytes)] of >= 25 deterministic image files; see the module docstring."""
    corpus: list[tuple[str, bytes]] = []

    def add(name: str, im: Image.Image, fmt: str, **params) -> None:
        corpus.append((name, _encode(im, fmt, **params)))

    # --- everyday photos
    add("rgb_photo_1024x768.jpg", Image.fromarray(_photo(1024, 768, 1)), "JPEG", quality=90)
    add("rgb_photo_4000x3000.jpg", Image.fromarray(_photo(4000, 3000, 2)), "JPEG", quality=85)
    add("rgb_photo_640x480.png", Image.fromarray(_photo(640, 480, 3)), "PNG")
    add("rgb_photo_420x560_portrait.jpg", Image.fromarray(_photo(420, 560, 4)), "JPEG", quality=75)
    add("gray_jpeg_L_350x260.jpg", Image.fromarray(_photo(350, 260, 5)[..., 1]), "JPEG", quality=90)
    corpus.append((EXIF_ROTATED_NAME, _exif_rotated_jpeg()))

    # --- modes
    add("rgba_varying_alpha_300x200.png", _rgba_varying_alpha(300, 200, 6), "PNG")
    add("p_no_transparency_250x180.png", _palette_image(250, 180, 7), "PNG")
    p_trns = _palette_image(250, 180, 8)
    add("p_transparency_250x180.png", p_trns, "PNG", transparency=0)
    add("l_gray_320x240.png", Image.fromarray(_photo(320, 240, 9)[..., 0]), "PNG")
    alpha_ramp = np.linspace(0, 255, 300, dtype=np.float32).astype(np.uint8)[:, None].repeat(260, 1)  # (300, 260)
    la = np.dstack([_photo(260, 300, 10)[..., 2], alpha_ramp])  # (300, 260, 2)
    add("la_gray_alpha_260x300.png", Image.fromarray(la, mode="LA"), "PNG")
    add("bilevel_1_300x210.png", Image.fromarray(_photo(300, 210, 11)[..., 0] > 128), "PNG")
    rs = np.random.RandomState(12)
    gray16 = (np.linspace(0, 65535, 300)[None, :] * np.linspace(0.2, 1, 200)[:, None]).astype(np.uint16)
    gray16 ^= rs.randint(0, 64, size=gray16.shape).astype(np.uint16)
    add("i16_png_300x200.png", Image.fromarray(gray16), "PNG")  # 16-bit PNG: Pillow 10.2 opens it as "I"
    add("i16_tiff_300x200.tif", Image.fromarray(gray16), "TIFF")  # opens as "I;16"
    big_endian = (gray16[:, :250] // 100).astype(">u2")  # values 0..655, straddling 255
    add("i16b_tiff_big_endian_250x200.tif", Image.fromarray(np.ascontiguousarray(big_endian)), "TIFF")  # "I;16B"
    # Shorter side already 224: the reference skips the resize, so it copes with "I;16" here.
    low16 = (np.linspace(0, 300, 224)[None, :] + np.linspace(0, 200, 300)[:, None]).astype(np.uint16)  # (300, 224)
    add("i16_tiff_224x300.tif", Image.fromarray(low16), "TIFF")
    ints = (rs.randint(-2000, 70000, size=(300, 230))).astype(np.int32)  # beyond 0..255 both ways
    add("i32_tiff_230x300.tif", Image.fromarray(ints, mode="I"), "TIFF")
    floats = rs.uniform(-50.0, 400.0, size=(190, 280)).astype(np.float32)
    add("f32_tiff_280x190.tif", Image.fromarray(floats, mode="F"), "TIFF")
    cmyk = Image.fromarray(_photo(300, 200, 13)).convert("CMYK")
    add("cmyk_300x200.jpg", cmyk, "JPEG", quality=90)

    # --- formats
    frames = _animation_frames(200, 150)
    gif_frames = [f.quantize(colors=32) for f in frames]
    animation = {"save_all": True, "duration": 100}
    add("animated_3frames_200x150.gif", gif_frames[0], "GIF", append_images=gif_frames[1:], loop=0, **animation)
    add("animated_3frames_200x150.webp", frames[0], "WEBP", append_images=frames[1:], lossless=True, **animation)
    add("webp_lossless_260x190.webp", Image.fromarray(_photo(260, 190, 14)), "WEBP", lossless=True)
    add("webp_lossy_rgba_260x190.webp", _rgba_varying_alpha(260, 190, 15), "WEBP", quality=80)
    add("bmp_rgb_257x199.bmp", Image.fromarray(_photo(257, 199, 16)), "BMP")
    add("tiff_rgb_310x220.tif", Image.fromarray(_photo(310, 220, 17)), "TIFF")
    add("ppm_rgb_230x240.ppm", Image.fromarray(_photo(230, 240, 18)), "PPM")

    # --- sizes and rounding edges
    add("tiny_1x1.png", Image.new("RGB", (1, 1), (200, 30, 90)), "PNG")
    add("size_223x224.png", Image.fromarray(_photo(223, 224, 19)), "PNG")
    add("size_224x224.jpg", Image.fromarray(_photo(224, 224, 20)), "JPEG", quality=95)
    add("size_225x224.png", Image.fromarray(_photo(225, 224, 21)), "PNG")  # no resize; crop offset 0.5 -> 0
    add("size_227x224.png", Image.fromarray(_photo(227, 224, 22)), "PNG")  # no resize; crop offset 1.5 -> 2
    add("size_225x301.png", Image.fromarray(_photo(225, 301, 23)), "PNG")
    add("size_301x225.png", Image.fromarray(_photo(301, 225, 24)), "PNG")
    add("size_2000x40.png", Image.fromarray(_photo(2000, 40, 25)), "PNG")
    add("size_40x2000.png", Image.fromarray(_photo(40, 2000, 26)), "PNG")
    # int(224 * 330 / 220) = 336 but int(224 / 220 * 330) = 335: the order of operations matters.
    add("order_330x220.png", Image.fromarray(_photo(330, 220, 27)), "PNG")
    # 107x107: int(224 * 107 / 107) = 224 but int(224 / 107 * 107) = 223.
    add("order_107x107.png", Image.fromarray(_photo(107, 107, 28)), "PNG")
    add("checkerboard_500x375.png", Image.fromarray(_checkerboard(500, 375, 7)), "PNG")
    add("checkerboard_p_333x250.gif", Image.fromarray(_checkerboard(333, 250, 5)).quantize(colors=4), "GIF")

    # --- 16- and 32-bit values over their whole range (appended: earlier files keep their places)
    rs = np.random.RandomState(60)
    board = _grey16_board(300, 200, rs)
    # Pillow 10.2 opens this as "I"; Pillow 13 as "I;16", whose resize clips between its passes.
    add("i16_png_board_300x200.png", Image.fromarray(board), "PNG")
    add("i16_tiff_board_300x200.tif", Image.fromarray(board), "TIFF")  # "I;16"
    full = rs.randint(0, 65536, size=(200, 300)).astype(np.uint16)  # (200, 300)
    full[:, :60] //= 200  # a band of low values, so more than the clip at 255 shows
    # (TIFF, not PNG: the browser search test indexes every PNG of the corpus; one new one is enough.)
    add("i16_tiff_full_range_300x200.tif", Image.fromarray(full), "TIFF")  # "I;16"
    # Pillow 13 resamples "I;16B" with each pixel's bytes swapped (little-endian machines): pyapp too.
    add("i16b_tiff_full_range_300x200.tif", Image.frombytes("I;16B", (300, 200), full.astype(">u2").tobytes()), "TIFF")
    # A 16-bit PGM opens as "I" under both Pillows: resized as 32-bit, with no clip between passes.
    corpus.append(("pgm16_board_300x200.pgm", _pgm16(board)))
    # 32-bit integers over +-2**30 (the resize's overshoot stays inside int32, whose overflow is
    # undefined in Pillow's C) and floats over +-1e6, each with a band inside 0..255 to survive the clip.
    wide = rs.randint(-(2**30), 2**30, size=(200, 300)).astype(np.int32)  # (200, 300)
    wide[:, 100:160] = rs.randint(-20, 280, size=(200, 60))
    add("i32_tiff_wide_300x200.tif", Image.fromarray(wide, mode="I"), "TIFF")
    floats = rs.uniform(-1e6, 1e6, size=(200, 300)).astype(np.float32)  # (200, 300)
    floats[:, 100:160] = rs.uniform(-10.0, 265.0, size=(200, 60))
    add("f32_tiff_wide_300x200.tif", Image.fromarray(floats, mode="F"), "TIFF")
    return corpus


def _grey16_board(width: int, height: int, rs: np.random.RandomState) -> np.ndarray:
    """uint16 (height, width): stripes of a 0/65535 checkerboard (3 px squares) and of values 0..399.

    Bicubic overshoot at the board's edges leaves the 16-bit range after the horizontal pass, so a
    resize that clips between passes (Pillow 13's I;16) and one that doesn't ("I") part ways there.
    """
    yy, xx = np.mgrid[0:height, 0:width]  # (h, w) each
    board = np.where((yy // 3 + xx // 3) % 2 == 0, 65535, 0)
    low = rs.randint(0, 400, size=(height, width))
    return np.where((xx // 50) % 2 == 0, board, low).astype(np.uint16)


def _pgm16(values: np.ndarray) -> bytes:
    """A binary 16-bit PGM (P5, maxval 65535, big-endian samples), written by hand: Pillow 10.2 can't."""
    height, width = values.shape
    return b"P5\n%d %d\n65535\n" % (width, height) + values.astype(">u2").tobytes()


# --------------------------------------------------------------------------------------------------
# Images of every Pillow mode, made in memory (preprocess_image accepts PIL images, so every mode
# can reach it, not only those a file format opens as)
# --------------------------------------------------------------------------------------------------

MODE_IMAGE_SIZE = (300, 200)
MODE_IMAGE_MODES = (
    "1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "LA", "La", "PA", "RGBX", "RGBa",
    "I;16", "I;16L", "I;16B", "I;16N",
)
# A palette for "P" and "PA": three different ramps, so every index has its own colour.
_PALETTE = [v for i in range(256) for v in (i, 255 - i, (i * 7) % 256)]


def generate_mode_images() -> list[tuple[str, bytes]]:
    """[(mode, raw bytes)]: `mode_image(mode, raw)` makes the image, with any Pillow (frombytes and
    putpalette behave alike in all of them, so a Pillow 13 process builds the same image)."""
    rs = np.random.RandomState(70)
    width, height = MODE_IMAGE_SIZE
    out = []
    for mode in MODE_IMAGE_MODES:
        if mode == "1":
            raw = np.packbits(rs.randint(0, 2, size=(height, width)).astype(bool), axis=1).tobytes()
        elif mode == "I":
            raw = rs.randint(-500, 70000, size=(height, width)).astype("=i4").tobytes()
        elif mode == "F":
            raw = rs.uniform(-100.0, 400.0, size=(height, width)).astype("=f4").tobytes()
        elif mode.startswith("I;16"):
            # Half full-range, half 0..399: resampling and byte order both show.
            values = np.where(rs.rand(height, width) < 0.5, rs.randint(0, 65536, size=(height, width)),
                              rs.randint(0, 400, size=(height, width)))
            dtype = {"I;16B": ">u2", "I;16N": "=u2"}.get(mode, "<u2")
            raw = values.astype(dtype).tobytes()
        else:
            bands = Image.getmodebands(mode)
            raw = rs.randint(0, 256, size=(height, width * bands)).astype(np.uint8).tobytes()
        out.append((mode, raw))
    return out


def mode_image(mode: str, raw: bytes) -> Image.Image:
    im = Image.frombytes(mode, MODE_IMAGE_SIZE, raw)
    if mode in ("P", "PA"):
        im.putpalette(_PALETTE)
    return im


if __name__ == "__main__":  # a quick look: python tests/pyapp/image_corpus.py
    import time

    t0 = time.perf_counter()
    items = generate_image_corpus()
    for name, data in items:
        with Image.open(io.BytesIO(data)) as im:
            print(f"{name:36s} {len(data):>9,d} B  {im.format:5s} {im.mode:6s} {im.size}")
    print(f"{len(items)} files in {time.perf_counter() - t0:.2f} s")
