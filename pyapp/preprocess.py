"""CLIP image preprocessing, bit-identical to OpenAI CLIP's `preprocess(Image.open(f))` (ViT-B/32).

OpenAI's transform (clip/clip.py `_transform`) is, in order, on the PIL image *as opened*:

    Resize(224, BICUBIC)   shorter side to 224, in the image's own mode (before any RGB conversion)
    CenterCrop(224)
    convert("RGB")
    ToTensor()             uint8 -> float32, / 255
    Normalize(mean, std)   (x - mean) / std, in float32

We make the same Pillow calls on the same mode, in the same order, so every Pillow quirk the reference
has, we have too (palette and bilevel images resized NEAREST, RGBA/LA resized premultiplied then the
alpha dropped without a background, 16/32-bit and float modes clipped to 0..255 by convert("RGB"),
EXIF orientation ignored, CMYK converted without a colour profile, animated files: first frame).

The reference is that transform under today's Pillow (13.0, what `pip install torch torchvision
pillow` gives a PyTorch user), while Pyodide ships Pillow 10.2. The two agree on every mode except
16-bit greyscale, whose resize we therefore emulate with Pillow 10.2 operations (`_resize_16_bit`):

- Pillow 13 resizes "I;16", "I;16L", "I;16B" and "I;16N" natively (since 11.0), clipping to 0..65535
  after each pass (horizontal, then vertical); Pillow 10.2 refuses ("image has wrong mode").
- Pillow 13 opens a 16-bit greyscale PNG as "I;16" (since 10.3); Pillow 10.2 opens it as 32-bit
  "I", whose resize does not clip between the passes: up to 3.83 apart in a normalised pixel.
- On a little-endian machine (every PyTorch user's x86-64 or ARM, and WebAssembly), Pillow 13's
  16-bit resampler reads "I;16B" and "I;16N" pixels with their two bytes swapped, and writes them
  back swapped: a Pillow quirk, which the reference has, so we have it too.

Runs unchanged in CPython and in Pyodide (Pillow 10.2, numpy 2.0): plain Pillow + numpy, no threads.
Under Pillow 13 too, with the same results (the emulation uses only operations both versions share).
"""

from __future__ import annotations

import io
import re
import warnings
from functools import lru_cache
from typing import Iterable, Sequence, Union

import numpy as np
from PIL import Image, ImageOps

from pyapp.constants import IMAGE_SIZE, MAX_IMAGE_PIXELS, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from pyapp.errors import ClipWebError, ImageDecodeError, ImageTooLargeError
from pyapp.pipeline import ImageRules

__all__ = [
    "SUPPORTED_FORMATS",
    "open_image",
    "preprocess_image",
    "preprocess_images",
    "tensor_to_rgb_uint8",
    "crop_preview_png",
]

ImageInput = Union[bytes, bytearray, memoryview, Image.Image]

# Formats we let Pillow open. A whitelist, not Pillow's full registry: EPS would shell out to
# Ghostscript; ICO is left out because an icon's directory can declare 256x256 over an embedded PNG
# of any size, which Pillow decodes at load time checked only against its own, larger, limit. Every
# format here states its real size in the header, so our check before decoding holds.
# (Multi-picture camera JPEGs come in through "JPEG": Pillow's JPEG opener returns an MPO image.)
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "PPM")

_SUPPORTED_FOR_PEOPLE = "JPEG, PNG, GIF, WebP, BMP or TIFF"


# --------------------------------------------------------------------------------------------------
# Opening and validating
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _registered_formats() -> tuple[str, ...]:
    # Image.open(formats=...) raises KeyError for a format no plugin registered, so ask Pillow which
    # of ours it has. (Pillow 10.2 registers all of them even when a codec is missing: WebP without
    # libwebp is then refused with "support not installed", handled in open_image.)
    Image.init()
    return tuple(fmt for fmt in SUPPORTED_FORMATS if fmt in Image.OPEN)


# File signatures, to tell "a damaged PNG" from "not an image" when Pillow can't open the file.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def _sniff_format(head: bytes) -> str | None:
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _SIGNATURES if head.startswith(magic)), None)


def _looks_like_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith(b"<svg") or (text.startswith((b"<?xml", b"<!doctype svg", b"<!--")) and b"<svg" in text)


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of `head` is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def _too_large(width: int, height: int) -> ImageTooLargeError:
    return ImageTooLargeError(
        f"The image is {width}x{height} = {width * height:,} pixels; the limit is "
        f"{MAX_IMAGE_PIXELS:,} pixels. Please scale it down and try again."
    )


def _check_pixel_count(im: Image.Image) -> None:
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"The image has no pixels ({width}x{height}).")
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_large(width, height)


def _as_bytes(data: object) -> bytes | bytearray | memoryview:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return data
    raise ImageDecodeError(
        f"Expected the image file's bytes (bytes, bytearray or memoryview), got {type(data).__name__}."
    )


def open_image(data: bytes | bytearray | memoryview) -> Image.Image:
    """Open and fully decode an image file's bytes, or raise a typed error a page can show.

    Pillow's `Image.open` is lazy: it reads only the header. We check the declared size against
    MAX_IMAGE_PIXELS *before* decoding (an 8000x8000 PNG of one colour is ~200 KB and
    decodes to 192 MB), then force the decode inside a try so a truncated file fails here, not later
    in a resize. Animated files give their first frame, as `Image.open` does.
    """
    data = _as_bytes(data)
    if len(data) == 0:
        raise ImageDecodeError("The file is empty (0 bytes).")
    head = bytes(data[:1024])
    if _looks_like_svg(head):
        raise ImageDecodeError("SVG images aren't supported. Please convert it to PNG and try again.")

    try:
        with warnings.catch_warnings():
            # Pillow warns above its own ~89 Mpx guard; ours (MAX_IMAGE_PIXELS) is the one that counts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=_registered_formats())
    except Image.DecompressionBombError as exc:
        # Pillow's own guard (2x its MAX_IMAGE_PIXELS) fires inside Image.open, before we see the
        # size; its message carries the pixel count, which is all a person needs.
        match = re.search(r"\((\d+) pixels\)", str(exc))
        declared = f"{int(match.group(1)):,} pixels" if match else "more pixels than Pillow allows"
        raise ImageTooLargeError(
            f"The image is {declared}; the limit is {MAX_IMAGE_PIXELS:,} pixels. "
            "Please scale it down and try again."
        ) from exc
    except Image.UnidentifiedImageError as exc:
        if "support not installed" in str(exc):  # e.g. a Pillow built without libwebp
            raise ImageDecodeError(f"This image format isn't available here ({exc}).") from exc
        sniffed = _sniff_format(head)
        if sniffed:
            raise ImageDecodeError(
                f"This looks like a {sniffed} file, but it is damaged or truncated and can't be opened."
            ) from exc
        if _looks_like_text(head):
            raise ImageDecodeError(
                f"This file is text, not an image. Please choose a {_SUPPORTED_FOR_PEOPLE} image."
            ) from exc
        raise ImageDecodeError(
            f"This file isn't an image we can read. Please choose a {_SUPPORTED_FOR_PEOPLE} image."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises OSError/SyntaxError/ValueError/... on bad headers
        raise ImageDecodeError(f"The image's header is damaged ({type(exc).__name__}: {exc}).") from exc

    return _checked_and_loaded(im)


def _checked_and_loaded(im: Image.Image) -> Image.Image:
    """Refuse by declared size, then decode now, turning Pillow's late errors into ours."""
    _check_pixel_count(im)  # declared size: for a lazily opened file, nothing is decoded yet
    try:
        im.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"The image is too large to decode ({exc}).") from exc
    except Exception as exc:  # noqa: BLE001 - truncated data: OSError, SyntaxError, EOFError, zlib.error...
        raise ImageDecodeError(
            f"The {im.format or 'image'} file is damaged or truncated and can't be decoded "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    _check_pixel_count(im)  # belt and braces: no whitelisted format changes size on load
    return im


# --------------------------------------------------------------------------------------------------
# The transform
# --------------------------------------------------------------------------------------------------


def _resized_size(width: int, height: int, size: int, resize: str = "shortest_side") -> tuple[int, int]:
    """(new_width, new_height): the shorter side `size`, or (with resize "squash") both sides.

    torchvision `_compute_resized_output_size` and transformers' `get_resize_output_image_size`
    agree: new_long = int(size * long / short), in exactly that order: `int(size / short * long)`
    can round 336 down to 335. Ties (square) take the `w <= h` branch.
    """
    if resize == "squash":
        return (size, size)
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    return (size, new_long) if width <= height else (new_long, size)


_RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


# Pillow's 16-bit greyscale modes: "I;16" and "I;16L" little-endian, "I;16B" big-endian, "I;16N" the
# machine's own byte order.
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})

# Pillow 13's 16-bit resampler (Resample.c, `bigendian`) takes "I;16N" as big-endian, and "I;16B" as
# big-endian only when Pillow is compiled for a big-endian CPU. On the little-endian machines that
# run PyTorch and Pyodide both therefore resample their pixels with the two bytes swapped (measured
# on the 13.0.0 wheel: tests/pyapp/test_preprocess.py, the Pillow 13 oracle).
_SWAPPED_WHEN_RESAMPLED = frozenset({"I;16B", "I;16N"})


def _is_16_bit_grey(im: Image.Image) -> bool:
    """Whether Pillow 13 would hold this image as "I;16*" and resize it with its 16-bit resampler.

    Pillow 10.3 and later open a 16-bit greyscale PNG as "I;16"; Pillow 10.2 opens the same file as
    "I" holding the same values (0..65535). So under 10.2 a PNG opened as "I" is 16-bit. Ask before
    anything makes a new image from it: a transposed or copied image no longer knows its format.
    """
    return im.mode in _SIXTEEN_BIT_MODES or (im.mode == "I" and im.format == "PNG")


def _widened_16_bit(im: Image.Image) -> Image.Image:
    """An "I" image of the values Pillow 13's 16-bit resampler reads from this one."""
    if im.mode == "I":  # a 16-bit PNG as Pillow 10.2 opens it (see _is_16_bit_grey): 0..65535
        return im
    if im.mode in _SWAPPED_WHEN_RESAMPLED:
        # The same bytes read in the other byte order: "I;16B"'s as little-endian "I;16", and
        # "I;16N"'s (little-endian on such a machine) as "I;16B". Pillow's C does it, at full size.
        im = Image.frombytes("I;16" if im.mode == "I;16B" else "I;16B", im.size, im.tobytes())
    return im.convert("I")  # lossless: every 16-bit value fits


def _as_i(values: np.ndarray) -> Image.Image:
    # Mode "I" is native-order 32-bit signed: built from raw bytes, so no Pillow version infers a mode.
    values = np.ascontiguousarray(values, dtype=np.int32)  # (h, w)
    return Image.frombytes("I", (values.shape[1], values.shape[0]), values.tobytes())


def _resample_pass_16_bit(im: Image.Image, new_size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    # One pass of Pillow 13's 16-bit resampler: the same double-precision sums of (value x weight)
    # in the same order, rounded half away from zero (ROUND_UP), as Pillow's 32-bit "I" resampler
    # computes them; then clipped to 0..65535 (CLIP16), which "I" does not do. A resize that changes
    # only one dimension runs only that pass in Pillow, with the weights of a full resize.
    resized = np.asarray(im.resize(new_size, resample), dtype=np.int32)  # (new_h, new_w)
    return _as_i(np.clip(resized, 0, 65535))


def _resize_16_bit(im: Image.Image, new_size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    """Resize of 16-bit greyscale exactly as Pillow 13 does it, with Pillow 10.2 operations.

    Returns an "I" image of the values Pillow 13's "I;16*" result holds (0..65535): convert("RGB")
    then clips them to 0..255, as Pillow 13's I;16 -> RGB conversions do.
    """
    width, height = im.size
    new_width, new_height = new_size
    out = _widened_16_bit(im)
    # Pillow resizes horizontally first, then vertically (ImagingResampleInner), each pass only if
    # that dimension changes; the 16-bit intermediate is clipped, so the two passes are run apart.
    if new_width != width:
        out = _resample_pass_16_bit(out, (new_width, height), resample)
    if new_height != height:
        out = _resample_pass_16_bit(out, (new_width, new_height), resample)
    if im.mode in _SWAPPED_WHEN_RESAMPLED:
        # Written back in the same swapped order: the value is the result with its bytes swapped.
        values = np.asarray(out, dtype=np.int32)  # (new_h, new_w), 0..65535
        out = _as_i(((values & 0xFF) << 8) | (values >> 8))
    return out


def _resize(im: Image.Image, rules: ImageRules, sixteen_bit: bool = False) -> Image.Image:
    """Resize(resize_size, interpolation). `sixteen_bit`: _is_16_bit_grey of the image as opened."""
    new_size = _resized_size(im.width, im.height, rules.resize_size, rules.resize)
    if new_size == im.size:
        # torchvision's resize returns the image untouched when it already has the output size
        # (Pillow, which transformers calls, makes a copy; the pixels are the same either way).
        return im
    resample = _RESAMPLING[rules.interpolation]
    if sixteen_bit:
        return _resize_16_bit(im, new_size, resample)
    # Pillow itself swaps BICUBIC/BILINEAR for NEAREST on "1"/"P", and resizes "LA"/"RGBA"
    # premultiplied: calling the same method on the same mode reproduces both.
    return im.resize(new_size, resample)


def _center_crop(im: Image.Image, size: int, rounding: str = "round_half_even") -> Image.Image:
    """Crop the central size x size square.

    torchvision `center_crop` (OpenAI, open_clip): top = int(round((h - size) / 2.0)), same for
    left; Python's round() is round-half-to-even, so an odd excess of 3 gives 1.5 -> 2 and 1 gives
    0.5 -> 0. transformers' `center_crop` floors: top = (h - size) // 2, so 3 gives 1.
    Both pad when the image is smaller than the crop; after a shorter-side resize to at least
    `size` (ImageRules refuses a smaller resize_size) both sides are >= size, so that branch can't
    be reached from here.
    """
    width, height = im.size
    if width < size or height < size:  # pragma: no cover - unreachable, see above
        raise AssertionError(f"center crop of {width}x{height} to {size}: resize should prevent this")
    if rounding == "floor":
        top, left = (height - size) // 2, (width - size) // 2
    else:
        top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def _rgb_over_white(im: Image.Image) -> Image.Image:
    """transformers' `convert_to_rgb` on a PIL image: transparency composited onto opaque white.

    An image has transparency when it has an alpha band or a `transparency` entry (palette, L, RGB);
    OpenAI's order instead drops alpha after the resize, leaving transparent pixels' own colour.
    """
    try:
        if "A" in im.getbands() or im.info.get("transparency") is not None:
            rgba = im.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return im if im.mode == "RGB" else im.convert("RGB")
    except ValueError as exc:  # a mode Pillow has no RGB conversion for
        raise ImageDecodeError(f"Images with pixel mode {im.mode!r} aren't supported.") from exc


def _transform(im: Image.Image, rules: ImageRules, sixteen_bit: bool = False) -> np.ndarray:
    """An opened image -> float32 (3, size, size), by the rules, in the reference's order."""
    if rules.convert_rgb == "first_over_white":
        im = _rgb_over_white(im)
        sixteen_bit = False  # now 8-bit RGB
    im = _resize(im, rules, sixteen_bit)
    if rules.center_crop:
        im = _center_crop(im, rules.size, rules.crop_rounding)
    return _normalise(_to_rgb_array(im), rules)


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    try:
        rgb = im if im.mode == "RGB" else im.convert("RGB")
    except ValueError as exc:  # a mode Pillow has no RGB conversion for
        raise ImageDecodeError(f"Images with pixel mode {im.mode!r} aren't supported.") from exc
    return np.asarray(rgb, dtype=np.uint8)  # (size, size, 3)


@lru_cache(maxsize=8)
def _normalise_lut(rules: ImageRules) -> np.ndarray:
    """(3, 256) float32: the model's value of every uint8 level, per channel.

    Bit-identical to the references by doing their float32 operations in their order: torchvision's
    ToTensor is `uint8.to(float32).div(255)` and Normalize `sub_(mean).div_(std)` with mean/std cast
    to float32; transformers' `(x - mean) / std` on float32 arrays is the same. (Its rescale,
    `float64(level) * (1/255)` cast to float32, equals level / 255 in float32 for all 256 levels.)
    Without mean/std the rescaled level is the value. A lookup table turns the per-pixel work into
    one gather.
    """
    scaled = np.arange(256, dtype=np.float32) / np.float32(255)  # (256,)
    if rules.normalises:
        mean32 = np.asarray(rules.mean, dtype=np.float32)[:, None]  # (3, 1)
        std32 = np.asarray(rules.std, dtype=np.float32)[:, None]  # (3, 1)
        lut = (scaled[None, :] - mean32) / std32  # (3, 256)
    else:
        lut = np.repeat(scaled[None, :], 3, axis=0)  # (3, 256)
    lut.setflags(write=False)
    return lut


def _normalise(rgb: np.ndarray, rules: ImageRules) -> np.ndarray:
    lut = _normalise_lut(rules)  # (3, 256)
    out = np.empty((3,) + rgb.shape[:2], dtype=np.float32)  # (3, size, size), C-contiguous (CHW)
    for c in range(3):
        np.take(lut[c], rgb[:, :, c], out=out[c])  # (size, size) gather of uint8 levels
    return out


def _rules(size: int, mean: Sequence[float] | None, std: Sequence[float] | None, rules: ImageRules | None) -> ImageRules:
    """The rules to apply: `rules` when given, else OpenAI CLIP's with this size, mean and std."""
    if rules is not None:
        if not isinstance(rules, ImageRules):
            raise TypeError(f"rules must be pyapp.pipeline.ImageRules, got {type(rules).__name__}")
        return rules
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    # ImageRules checks mean and std (PipelineError is a ValueError).
    return ImageRules(size=int(size), resize_size=int(size),
                      mean=None if mean is None else tuple(float(m) for m in mean),
                      std=None if std is None else tuple(float(s) for s in std))


def _preprocess_one(data: ImageInput, rules: ImageRules, exif_transpose: bool) -> np.ndarray:
    # A PIL image may come straight from Image.open, lazy: it gets the same checks as bytes.
    im = _checked_and_loaded(data) if isinstance(data, Image.Image) else open_image(data)
    sixteen_bit = _is_16_bit_grey(im)  # before exif_transpose, whose new image forgets its format
    if exif_transpose:
        # Opt-in: OpenAI's preprocess ignores EXIF orientation, so a phone photo tagged "rotate 90"
        # reaches the model sideways. Turning this on makes it upright but no longer matches the reference.
        try:
            im = ImageOps.exif_transpose(im)
        except Exception as exc:  # noqa: BLE001 - malformed EXIF
            raise ImageDecodeError(f"The image's EXIF orientation can't be read ({exc}).") from exc
    return _transform(im, rules, sixteen_bit)  # (3, size, size)


def preprocess_image(
    data: ImageInput,
    *,
    size: int = IMAGE_SIZE,
    mean: Sequence[float] | None = OPENAI_DATASET_MEAN,
    std: Sequence[float] | None = OPENAI_DATASET_STD,
    exif_transpose: bool = False,
    rules: ImageRules | None = None,
) -> np.ndarray:
    """One image (file bytes or a PIL image) -> float32 pixel values, shape (1, 3, size, size).

    Identical to OpenAI CLIP's `preprocess(Image.open(f)).unsqueeze(0)`, or, given `rules` (a
    manifest's, pyapp.pipeline.image_rules), to that family's reference processor. Raises
    ImageDecodeError or ImageTooLargeError (pyapp.errors) on bad input, with a message a page can
    show as is. `exif_transpose=True` applies the EXIF orientation first (the references do not).
    """
    rules = _rules(size, mean, std, rules)
    return _preprocess_one(data, rules, exif_transpose)[None]  # (1, 3, size, size)


def preprocess_images(
    images: Iterable[ImageInput],
    *,
    size: int = IMAGE_SIZE,
    mean: Sequence[float] | None = OPENAI_DATASET_MEAN,
    std: Sequence[float] | None = OPENAI_DATASET_STD,
    exif_transpose: bool = False,
    rules: ImageRules | None = None,
) -> np.ndarray:
    """Several images -> float32 (n, 3, size, size). An error names which image (1-based) failed."""
    rules = _rules(size, mean, std, rules)
    images = list(images)
    out = np.empty((len(images), 3, rules.size, rules.size), dtype=np.float32)  # (n, 3, size, size)
    for i, data in enumerate(images):
        try:
            out[i] = _preprocess_one(data, rules, exif_transpose)
        except ClipWebError as exc:
            raise type(exc)(f"Image {i + 1} of {len(images)}: {exc}") from exc
    return out


# --------------------------------------------------------------------------------------------------
# JPEGs decoded by the browser
# --------------------------------------------------------------------------------------------------
#
# PyPI's Pillow decodes JPEG with libjpeg-turbo; Pyodide's Pillow is built against another libjpeg
# whose chroma upsampling differs (measured: mean 0.5 levels, max 75 levels on colour photos).
# Chromium decodes with libjpeg-turbo too, bit-identical to PyPI's Pillow on YCbCr JPEGs. So in
# the browser a colour JPEG is decoded by the browser and everything after decoding is ours, and
# the pixels match what a PyTorch user's Pillow sees. Greyscale and CMYK JPEGs stay with Pillow
# (greyscale already matches; CMYK conversion is Pillow's own and the browser's differs).

# Chromium applies the EXIF orientation when it decodes (imageOrientation "none" is now an alias of
# "from-image"); Image.open does not. These transposes take displayed pixels back to stored order.
_UNDO_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
EXIF_ORIENTATION_TAG = 0x0112


def browser_jpeg_plan(data: bytes | bytearray | memoryview) -> dict | None:
    """If the browser should decode these bytes (a YCbCr JPEG), the header facts needed to use its
    pixels: {"width", "height", "orientation"}; else None. Reads the header only (no decode), and
    refuses oversized images before anything is decoded."""
    data = _as_bytes(data)
    if bytes(data[:3]) != b"\xff\xd8\xff":
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=("JPEG", "MPO"))
    except Exception:  # noqa: BLE001 - let the Pillow path produce the proper error message
        return None
    if im.mode != "RGB":
        return None
    _check_pixel_count(im)
    try:
        orientation = int(im.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - malformed EXIF: the browser ignores it as well
        orientation = 1
    return {"width": im.size[0], "height": im.size[1], "orientation": orientation}


def preprocess_decoded_rgba(
    rgba: bytes | bytearray | memoryview,
    width: int,
    height: int,
    orientation: int = 1,
    *,
    size: int = IMAGE_SIZE,
    mean: Sequence[float] | None = OPENAI_DATASET_MEAN,
    std: Sequence[float] | None = OPENAI_DATASET_STD,
    exif_transpose: bool = False,
    rules: ImageRules | None = None,
) -> np.ndarray:
    """RGBA pixels of a JPEG as the browser decoded it (orientation applied, width x height as
    displayed) -> float32 (1, 3, size, size), equal to `preprocess_image` of the JPEG's bytes."""
    rules = _rules(size, mean, std, rules)
    if width * height > MAX_IMAGE_PIXELS:
        raise _too_large(width, height)
    if len(rgba) != width * height * 4:
        raise ImageDecodeError(f"Decoded image has {len(rgba)} bytes, expected {width}x{height} RGBA.")
    # Pillow's RGBA->RGB drops the (opaque) alpha in C: ~10x faster than a numpy slice + copy.
    im = Image.frombuffer("RGBA", (width, height), bytes(rgba), "raw", "RGBA", 0, 1).convert("RGB")
    if orientation in _UNDO_ORIENTATION and not exif_transpose:
        # Back to stored order, as Image.open gives it; with exif_transpose the browser's upright
        # pixels are already what ImageOps.exif_transpose would give.
        im = im.transpose(_UNDO_ORIENTATION[orientation])
    return _transform(im, rules)[None]  # (1, 3, size, size): an RGB JPEG, so both RGB orders agree


# --------------------------------------------------------------------------------------------------
# Preview: the exact crop the model sees
# --------------------------------------------------------------------------------------------------


def tensor_to_rgb_uint8(
    pixel_values: np.ndarray,
    *,
    mean: Sequence[float] | None = OPENAI_DATASET_MEAN,
    std: Sequence[float] | None = OPENAI_DATASET_STD,
) -> np.ndarray:
    """Undo the normalisation (None: the model takes level / 255 as it is): (1, 3, s, s) or (3, s, s) float -> (s, s, 3) uint8 RGB.

    Exact inverse on our own output (x * std + mean recovers level / 255 to well under half a level).
    """
    x = np.asarray(pixel_values, dtype=np.float32)
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {x.shape[0]}")
        x = x[0]  # (3, s, s)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected shape (1, 3, s, s) or (3, s, s), got {np.shape(pixel_values)}")
    mean32 = np.asarray((0.0,) * 3 if mean is None else mean, dtype=np.float32)[:, None, None]  # (3, 1, 1)
    std32 = np.asarray((1.0,) * 3 if std is None else std, dtype=np.float32)[:, None, None]  # (3, 1, 1)
    levels = np.rint((x * std32 + mean32) * np.float32(255))  # (3, s, s)
    return np.ascontiguousarray(np.clip(levels, 0, 255).astype(np.uint8).transpose(1, 2, 0))  # (s, s, 3)


def crop_preview_png(pixel_values: np.ndarray, **kwargs) -> bytes:
    """PNG bytes of `tensor_to_rgb_uint8(pixel_values)`, for an <img> on the page."""
    buf = io.BytesIO()
    Image.fromarray(tensor_to_rgb_uint8(pixel_values, **kwargs), mode="RGB").save(buf, format="PNG")
    return buf.getvalue()
