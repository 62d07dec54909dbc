"""pyapp.preprocess against OpenAI CLIP's transform, file by file: under today's Pillow (13, in a
separate process: tests/pyapp/pillow_oracle.py), the reference; and under this venv's Pillow 10.2
(tests/pyapp/reference_transform.py, checked against real torchvision) wherever the two agree."""

from __future__ import annotations

import io
import struct
import time
import zlib
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image, ImageFile

from pyapp.constants import IMAGE_SIZE, MAX_IMAGE_PIXELS, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from pyapp.errors import ClipWebError, ImageDecodeError, ImageTooLargeError
from pyapp.preprocess import (
    _registered_formats,
    crop_preview_png,
    open_image,
    preprocess_image,
    preprocess_images,
    tensor_to_rgb_uint8,
)

try:  # a package when tests/ and tests/pyapp/ have __init__.py files, plain modules otherwise
    from . import image_corpus, pillow_oracle, reference_transform
except ImportError:
    import image_corpus
    import pillow_oracle
    import reference_transform

reference_preprocess = reference_transform.reference_preprocess

TOLERANCE = 1e-6  # the contract; in practice the results are bit-identical


@lru_cache(maxsize=1)
def corpus() -> dict[str, bytes]:
    return dict(image_corpus.generate_image_corpus())


@lru_cache(maxsize=1)
def mode_images() -> dict[str, bytes]:
    return dict(image_corpus.generate_mode_images())


# Files on which OpenAI's preprocess under Pillow 10.2 crashes, or differs from Pillow 13's.
PILLOW_10_2_CRASHES = [n for n, why in image_corpus.PILLOW_10_2_DIFFERS.items() if why == "crashes"]
PILLOW_VERSIONS_AGREE = [n for n in corpus() if n not in image_corpus.PILLOW_10_2_DIFFERS]


def opened(name: str) -> Image.Image:
    """The file as OpenAI's `preprocess(Image.open(f))` sees it: lazily opened, nothing converted."""
    return Image.open(io.BytesIO(corpus()[name]))


def assert_same(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    diff = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64))))
    assert diff <= TOLERANCE, f"max abs diff {diff:g}"
    assert np.array_equal(ours, ref), f"not bit-identical (max abs diff {diff:g})"


# --------------------------------------------------------------------------------------------------
# The corpus itself
# --------------------------------------------------------------------------------------------------


def test_corpus_is_large_deterministic_and_fast():
    t0 = time.perf_counter()
    items = image_corpus.generate_image_corpus()
    elapsed = time.perf_counter() - t0
    assert len(items) >= 25
    assert len({name for name, _ in items}) == len(items), "names must be unique"
    assert elapsed < 10, f"corpus took {elapsed:.1f} s"
    assert dict(items) == corpus(), "two generations must give the same bytes"


def test_corpus_covers_the_modes_and_formats():
    seen = {(im.format, im.mode) for im in map(opened, corpus())}
    for fmt_mode in [
        ("JPEG", "RGB"), ("JPEG", "L"), ("JPEG", "CMYK"), ("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "P"),
        ("PNG", "L"), ("PNG", "LA"), ("PNG", "1"), ("PNG", "I"), ("TIFF", "I;16"), ("TIFF", "I;16B"), ("TIFF", "I"),
        ("TIFF", "F"), ("TIFF", "RGB"), ("GIF", "P"), ("WEBP", "RGB"), ("BMP", "RGB"), ("PPM", "I"),
    ]:
        assert fmt_mode in seen, fmt_mode


@pytest.mark.parametrize("name", ["animated_3frames_200x150.gif", "animated_3frames_200x150.webp"])
def test_corpus_animations_have_differing_frames(name):
    im = opened(name)
    assert getattr(im, "n_frames", 1) == 3
    first = np.asarray(im.convert("RGB"), dtype=np.int16)
    im.seek(1)
    second = np.asarray(im.convert("RGB"), dtype=np.int16)
    assert np.abs(first - second).mean() > 20


# --------------------------------------------------------------------------------------------------
# Equality with the reference under today's Pillow (13), file by file and mode by mode
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pillow13():
    """OpenAI's preprocess under Pillow 13 of the whole corpus and every mode image. No skip: if the
    oracle can't run (no wheel, no network on the first run), every test using it fails with why."""
    from oracles import OracleError  # noqa: PLC0415

    try:
        return pillow_oracle.pillow13_reference(list(corpus().items()), list(mode_images().items()))
    except (OracleError, OSError) as exc:
        reason = str(exc)
    pytest.fail(f"the Pillow 13 oracle is unavailable: {reason}", pytrace=False)


def test_pillow13_oracle_runs_pillow_13_with_other_semantics(pillow13):
    from oracles import ORACLES_DIR, PILLOW_VERSION, TORCHVISION  # noqa: PLC0415

    assert pillow13.versions["pillow"] == PILLOW_VERSION == "13.0.0"
    assert pillow13.versions["pillow_file"].startswith(str(ORACLES_DIR / f"pillow-{PILLOW_VERSION}-"))
    assert pillow13.versions["torchvision"].split("+")[0] == TORCHVISION["version"]  # "0.28.0+cu130": its transforms
    # Proof that it is another Pillow: the same 16-bit PNG opens in another mode there.
    assert opened("i16_png_board_300x200.png").mode == "I"
    assert pillow13.opened_modes["i16_png_board_300x200.png"] == "I;16"


@pytest.mark.parametrize("name", list(corpus()))
def test_matches_pillow13_reference(pillow13, name):
    ours = preprocess_image(corpus()[name])
    assert ours.shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert ours.dtype == np.float32
    assert ours.flags["C_CONTIGUOUS"]
    assert name not in pillow13.errors, pillow13.errors.get(name)
    assert_same(ours[0], pillow13.pixel_values[name])


@pytest.mark.parametrize("mode", list(mode_images()))
def test_every_mode_matches_pillow13_reference(pillow13, mode):
    # PIL images in every mode Pillow has: preprocess_image accepts them, not only files.
    im = image_corpus.mode_image(mode, mode_images()[mode])
    case = pillow_oracle.mode_case_name(mode)
    assert pillow13.opened_modes[case] == im.mode == mode
    if case in pillow13.errors:  # where the reference raises, we refuse with a typed error
        with pytest.raises(ImageDecodeError, match="pixel mode"):
            preprocess_image(im)
        return
    assert_same(preprocess_image(im)[0], pillow13.pixel_values[case])


def test_pyapp_under_pillow13_gives_the_same_tensors(pillow13):
    # pyapp run by the oracle's process, under Pillow 13: the emulation uses only operations both
    # Pillows have, so it must not matter which one it runs on.
    cases = list(corpus()) + [pillow_oracle.mode_case_name(m) for m in mode_images()]
    for case in cases:
        if case in pillow13.errors:
            assert pillow13.pyapp_errors.get(case) == "ImageDecodeError", case
            continue
        assert case not in pillow13.pyapp_errors, (case, pillow13.pyapp_errors[case])
        assert_same(pillow13.pyapp_pixel_values[case], pillow13.pixel_values[case])
    assert len(pillow13.pyapp_pixel_values) == len(cases) - len(pillow13.errors) >= 60


def _reference_10_2_versus_13(pillow13, case: str, make) -> str:
    try:
        ref = reference_preprocess(make())
    except ValueError:
        return "same" if case in pillow13.errors else "crashes"
    if case in pillow13.errors:
        return "13 raises"
    return "same" if np.array_equal(ref, pillow13.pixel_values[case]) else "differs"


def test_pillow_10_2_differs_from_13_exactly_where_stated(pillow13):
    """The table image_corpus.PILLOW_10_2_DIFFERS states, measured: OpenAI's preprocess under this
    venv's Pillow 10.2 against Pillow 13's, file by file and mode by mode. Everything else is equal,
    which is why the tests against the 10.2 reference (below) keep every file but these."""
    files = {name: _reference_10_2_versus_13(pillow13, name, lambda name=name: opened(name)) for name in corpus()}
    assert {n: why for n, why in files.items() if why != "same"} == image_corpus.PILLOW_10_2_DIFFERS
    modes = {
        mode: _reference_10_2_versus_13(
            pillow13, pillow_oracle.mode_case_name(mode), lambda mode=mode, raw=raw: image_corpus.mode_image(mode, raw)
        )
        for mode, raw in mode_images().items()
    }
    assert {m: why for m, why in modes.items() if why != "same"} == image_corpus.PILLOW_10_2_DIFFERS_MODES


def test_pillow13_resamples_i16b_with_its_bytes_swapped(pillow13):
    # The same values as "I;16B" and as "I;16": Pillow 13's results differ, because on a little-endian
    # machine it resamples "I;16B" pixels byte-swapped. A Pillow quirk the reference has; if a Pillow
    # release fixes it, this fails and pyapp must follow.
    be, le = "i16b_tiff_full_range_300x200.tif", "i16_tiff_full_range_300x200.tif"
    assert np.array_equal(np.asarray(opened(be)).astype(np.int32), np.asarray(opened(le)).astype(np.int32))
    assert not np.array_equal(pillow13.pixel_values[be], pillow13.pixel_values[le])
    assert_same(preprocess_image(corpus()[be])[0], pillow13.pixel_values[be])


def test_16_bit_png_stays_16_bit_through_exif_transpose_and_pil_input(pillow13):
    # Pillow 10.2 opens it as "I": only its format says it is 16-bit, and a transposed copy forgets
    # its format, so pyapp decides before transposing.
    name = "i16_png_board_300x200.png"
    data = corpus()[name]
    expected = pillow13.pixel_values[name]
    assert_same(preprocess_image(data, exif_transpose=True)[0], expected)  # no EXIF: nothing to rotate
    assert_same(preprocess_image(Image.open(io.BytesIO(data)))[0], expected)
    # ... and a file that opens as "I" but is not a PNG keeps 32-bit semantics (as under Pillow 13).
    assert_same(preprocess_image(corpus()["pgm16_board_300x200.pgm"])[0], pillow13.pixel_values["pgm16_board_300x200.pgm"])


# --------------------------------------------------------------------------------------------------
# Equality with the reference under Pillow 10.2 (this venv's), where the two Pillows agree
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PILLOW_VERSIONS_AGREE)
def test_matches_reference(name):
    assert_same(preprocess_image(corpus()[name])[0], reference_preprocess(opened(name)))


@pytest.mark.parametrize("name", PILLOW_10_2_CRASHES)
def test_pillow_10_2_reference_crashes_on_16_bit_resize(name):
    # Pillow 10.2 refuses to bicubic-resize "I;16*": its reference raises, so pyapp emulates Pillow 13.
    assert opened(name).mode.startswith("I;16")
    with pytest.raises(ValueError, match="wrong mode"):
        reference_preprocess(opened(name))


def test_i16_without_resize_matches_reference_untouched():
    # Shorter side already 224: neither the reference nor we resize, so "I;16" goes through as is.
    name = "i16_tiff_224x300.tif"
    assert opened(name).mode == "I;16" and opened(name).width == IMAGE_SIZE
    assert_same(preprocess_image(corpus()[name])[0], reference_preprocess(opened(name)))


def test_every_uint8_level_normalises_like_torch():
    # ToTensor + Normalize depend only on (level, channel): an image holding all 256 levels in each
    # channel, already 224x224 (no resize), checks them all against torch's float32 arithmetic.
    levels = np.arange(IMAGE_SIZE * IMAGE_SIZE, dtype=np.int64).reshape(IMAGE_SIZE, IMAGE_SIZE) % 256
    arr = np.stack([levels, 255 - levels, (levels * 7) % 256], axis=-1).astype(np.uint8)  # (224, 224, 3)
    im = Image.fromarray(arr)
    assert_same(preprocess_image(im)[0], reference_preprocess(im))


@pytest.mark.parametrize("size", [32, 224, 336])
def test_other_sizes_match_reference(size):
    name = "rgb_photo_1024x768.jpg"
    assert_same(preprocess_image(corpus()[name], size=size)[0], reference_preprocess(opened(name), size=size))


def test_custom_mean_std_match_reference():
    name = "size_301x225.png"
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.5, 0.125)
    ours = preprocess_image(corpus()[name], mean=mean, std=std)
    assert_same(ours[0], reference_preprocess(opened(name), mean=mean, std=std))


# --------------------------------------------------------------------------------------------------
# Input forms, batches
# --------------------------------------------------------------------------------------------------


def test_bytes_bytearray_memoryview_and_pil_input_agree():
    data = corpus()["size_225x301.png"]
    expected = preprocess_image(data)
    for form in (bytearray(data), memoryview(data), Image.open(io.BytesIO(data)), open_image(data)):
        assert np.array_equal(preprocess_image(form), expected), type(form)


def test_batch_is_the_stack_of_singles():
    names = ["rgb_photo_1024x768.jpg", "p_transparency_250x180.png", "tiny_1x1.png", "size_40x2000.png"]
    batch = preprocess_images([corpus()[n] for n in names])
    assert batch.shape == (len(names), 3, IMAGE_SIZE, IMAGE_SIZE)
    assert batch.dtype == np.float32 and batch.flags["C_CONTIGUOUS"]
    for i, name in enumerate(names):
        assert np.array_equal(batch[i], preprocess_image(corpus()[name])[0])


def test_empty_batch():
    assert preprocess_images([]).shape == (0, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_batch_error_names_the_image():
    with pytest.raises(ImageDecodeError, match=r"Image 2 of 3: .*empty"):
        preprocess_images([corpus()["tiny_1x1.png"], b"", corpus()["tiny_1x1.png"]])


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"size": 2.5}, {"mean": (0.5, 0.5)}, {"std": (1.0, 0.0, 1.0)}])
def test_bad_parameters_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        preprocess_image(corpus()["tiny_1x1.png"], **kwargs)


# --------------------------------------------------------------------------------------------------
# EXIF orientation: ignored like the reference, unless asked
# --------------------------------------------------------------------------------------------------


def test_exif_orientation_ignored_by_default():
    name = image_corpus.EXIF_ROTATED_NAME
    assert opened(name).getexif().get(0x0112) == image_corpus.EXIF_ORIENTATION
    assert_same(preprocess_image(corpus()[name])[0], reference_preprocess(opened(name)))


def test_exif_transpose_opt_in_equals_a_manually_rotated_copy():
    data = corpus()[image_corpus.EXIF_ROTATED_NAME]
    upright = preprocess_image(data, exif_transpose=True)
    assert not np.array_equal(upright, preprocess_image(data))
    # Orientation 6 = "rotate 90 degrees clockwise to display" = Pillow's ROTATE_270 (counter-clockwise angles).
    rotated = Image.open(io.BytesIO(data)).transpose(Image.Transpose.ROTATE_270)
    assert rotated.size == (240, 320)
    assert np.array_equal(upright, preprocess_image(rotated))
    assert_same(upright[0], reference_preprocess(rotated))


def test_exif_transpose_without_exif_changes_nothing():
    data = corpus()["size_301x225.png"]
    assert np.array_equal(preprocess_image(data, exif_transpose=True), preprocess_image(data))


# --------------------------------------------------------------------------------------------------
# Pillow quirks the reference has, pinned so a change of Pillow shows up here
# --------------------------------------------------------------------------------------------------


def test_palette_images_resize_nearest_so_only_palette_colours_remain():
    data = corpus()["p_no_transparency_250x180.png"]
    palette_colours = set(map(tuple, np.asarray(opened("p_no_transparency_250x180.png").convert("RGB")).reshape(-1, 3)))
    crop = tensor_to_rgb_uint8(preprocess_image(data))
    assert set(map(tuple, crop.reshape(-1, 3))) <= palette_colours


def test_rgba_transparent_pixels_come_out_black():
    # The top fifth is fully transparent magenta. Pillow resizes RGBA premultiplied, so colour under
    # alpha 0 becomes 0; convert("RGB") then drops alpha with no background: black, not magenta.
    crop = tensor_to_rgb_uint8(preprocess_image(corpus()["rgba_varying_alpha_300x200.png"]))
    assert (crop[:40] == 0).all()


def test_wide_int_and_float_modes_are_clipped_not_rescaled():
    crop = tensor_to_rgb_uint8(preprocess_image(corpus()["i32_tiff_230x300.tif"]))
    assert (crop == 255).mean() > 0.9  # values spread over -2000..70000: almost all above 255


def test_animated_files_give_their_first_frame():
    for name in ("animated_3frames_200x150.gif", "animated_3frames_200x150.webp"):
        im = opened(name)
        first = preprocess_image(corpus()[name])
        im.seek(1)
        assert not np.array_equal(first, preprocess_image(im.convert("RGB"))), name


# --------------------------------------------------------------------------------------------------
# Bad input: typed errors with messages a person can read
# --------------------------------------------------------------------------------------------------


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height, with an empty IDAT: tiny, and a bomb if decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _gif_header_only(width: int, height: int) -> bytes:
    """A GIF whose screen and one frame declare width x height, with no pixel data."""
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x08\x00"  # LZW size 8, no data
    return b"GIF89a" + screen + frame + b";"


BAD_INPUTS = {
    "empty": (b"", ImageDecodeError, "empty"),
    "random": (np.random.RandomState(0).bytes(4096), ImageDecodeError, "isn't an image"),
    "text": ("Hello, this is a plain text file.\nNot an image at all. é\n".encode() * 20, ImageDecodeError, "text"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', ImageDecodeError, "SVG"),
    "svg_xml_prolog": (
        b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- drawn -->\n<svg xmlns="http://www.w3.org/2000/svg"/>',
        ImageDecodeError,
        "convert it to PNG",
    ),
    "eps_not_whitelisted": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", ImageDecodeError, "text"),
    "png_header_cut": (None, ImageDecodeError, "damaged"),
    "jpeg_truncated": (None, ImageDecodeError, "truncated"),
    "png_truncated": (None, ImageDecodeError, "truncated"),
}


def _bad_bytes(key: str) -> bytes:
    data = BAD_INPUTS[key][0]
    if data is not None:
        return data
    if key == "png_header_cut":
        return corpus()["rgb_photo_640x480.png"][:30]
    if key == "jpeg_truncated":
        full = corpus()["rgb_photo_1024x768.jpg"]
        return full[: len(full) // 2]
    full = corpus()["rgb_photo_640x480.png"]
    return full[: len(full) // 2]


@pytest.mark.parametrize("key", list(BAD_INPUTS))
def test_bad_input_raises_typed_error(key):
    _, error, fragment = BAD_INPUTS[key]
    with pytest.raises(error) as info:
        preprocess_image(_bad_bytes(key))
    assert fragment.lower() in str(info.value).lower()
    assert isinstance(info.value, ClipWebError)
    assert info.value.to_dict() == {"code": error.code, "message": str(info.value)}


@pytest.mark.parametrize("value", ["a string", 42, None, [1, 2, 3], np.zeros((4, 4, 3), np.uint8)])
def test_non_bytes_input_raises_image_decode_error(value):
    with pytest.raises(ImageDecodeError, match="Expected the image file's bytes"):
        preprocess_image(value)


class PixelsDecoded(BaseException):
    """A BaseException, so open_image's `except Exception` can't turn it into an ImageDecodeError."""


@pytest.fixture
def img_no_decoding(monkeypatch):
    """Makes any pixel decode fail the test: a refused bomb must never reach ImageFile.load."""

    def refuse(self, *args, **kwargs):
        raise PixelsDecoded("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize(
    "data, declared",
    [
        (_png_header_only(100_000, 100_000), "10,000,000,000"),  # past Pillow's own guard too
        (_png_header_only(8000, 8000), "8000x8000 = 64,000,000"),  # past ours only
        (_gif_header_only(65535, 65535), "4,294,836,225"),
    ],
)
def test_decompression_bomb_refused_before_decoding(img_no_decoding, data, declared):
    assert len(data) < 100
    _registered_formats()  # warm-up: Pillow imports its plugins once, which is not what we time
    t0 = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as info:
        preprocess_image(data)
    assert time.perf_counter() - t0 < 1.0  # header parsing only: milliseconds, with room for a busy CI
    message = str(info.value)
    assert declared in message and f"{MAX_IMAGE_PIXELS:,}" in message, message


def test_lazily_opened_pil_input_gets_the_same_checks(img_no_decoding):
    with pytest.raises(ImageTooLargeError, match="8000x8000"):
        preprocess_image(Image.open(io.BytesIO(_png_header_only(8000, 8000))))


def test_lazily_opened_truncated_pil_input_raises_image_decode_error():
    with pytest.raises(ImageDecodeError, match="truncated"):
        preprocess_image(Image.open(io.BytesIO(_bad_bytes("jpeg_truncated"))))


def test_no_decoding_fixture_does_catch_a_decode(img_no_decoding):
    with pytest.raises(PixelsDecoded):
        preprocess_image(_png_header_only(64, 64))


def test_just_under_the_limit_is_not_refused_for_size():
    # 7000x7000 = 49 Mpx <= 50 Mpx: the size check lets it through; the empty IDAT then fails to decode.
    with pytest.raises(ImageDecodeError):
        preprocess_image(_png_header_only(7000, 7000))


# --------------------------------------------------------------------------------------------------
# Preview of the crop the model sees
# --------------------------------------------------------------------------------------------------


def _reference_crop_uint8(name: str) -> np.ndarray:
    im = reference_transform.center_crop(reference_transform.resize(opened(name), IMAGE_SIZE), IMAGE_SIZE)
    return np.asarray(im.convert("RGB"))  # (224, 224, 3)


@pytest.mark.parametrize("name", ["rgb_photo_1024x768.jpg", "checkerboard_500x375.png", "cmyk_300x200.jpg"])
def test_tensor_to_rgb_uint8_round_trips(name):
    rgb = tensor_to_rgb_uint8(preprocess_image(corpus()[name]))
    assert rgb.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and rgb.dtype == np.uint8 and rgb.flags["C_CONTIGUOUS"]
    diff = np.abs(rgb.astype(np.int16) - _reference_crop_uint8(name)).max()
    assert diff <= 1
    assert diff == 0  # float32 recovers level / 255 to far better than half a level


def test_tensor_to_rgb_uint8_every_level_round_trips():
    levels = np.arange(256, dtype=np.uint8)
    arr = np.stack([np.resize(levels, (IMAGE_SIZE, IMAGE_SIZE))] * 3, axis=-1)  # (224, 224, 3)
    assert np.array_equal(tensor_to_rgb_uint8(preprocess_image(Image.fromarray(arr))), arr)
    assert np.array_equal(tensor_to_rgb_uint8(preprocess_image(Image.fromarray(arr))[0]), arr)  # (3, s, s) too


def test_tensor_to_rgb_uint8_rejects_batches():
    with pytest.raises(ValueError):
        tensor_to_rgb_uint8(np.zeros((2, 3, 8, 8), np.float32))


def test_crop_preview_png_decodes_to_the_crop():
    pixel_values = preprocess_image(corpus()["size_225x301.png"])
    png = crop_preview_png(pixel_values)
    assert png.startswith(b"\x89PNG")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), tensor_to_rgb_uint8(pixel_values))


def test_constants_are_openai_clip():
    assert OPENAI_DATASET_MEAN == reference_transform.OPENAI_MEAN
    assert OPENAI_DATASET_STD == reference_transform.OPENAI_STD


# --------------------------------------------------------------------------------------------------
# The oracle against real torchvision (pinned in tests/oracles.py; see reference_transform's docstring)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torchvision_T():
    """Real `torchvision.transforms`. No skip: if it can't be had, every test using it fails with why."""
    from oracles import OracleError  # noqa: PLC0415

    try:
        return reference_transform.load_torchvision_transforms()
    except (OracleError, OSError) as exc:
        reason = str(exc)
    pytest.fail(f"the torchvision oracle is unavailable: {reason}", pytrace=False)


@pytest.fixture(scope="module")
def torchvision_preprocess(torchvision_T):
    return reference_transform.clip_transform(torchvision_T, IMAGE_SIZE)


@pytest.mark.parametrize("name", [n for n in corpus() if n not in PILLOW_10_2_CRASHES])
def test_oracle_matches_torchvision(torchvision_preprocess, name):
    assert_same(reference_preprocess(opened(name)), torchvision_preprocess(opened(name)).numpy())


@pytest.mark.parametrize("name", PILLOW_10_2_CRASHES)
def test_torchvision_too_crashes_on_i16(torchvision_preprocess, name):
    with pytest.raises(ValueError, match="wrong mode"):
        torchvision_preprocess(opened(name))


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA"])
@pytest.mark.parametrize("wh", [(1, 1), (5, 300), (300, 7), (224, 100)])
def test_oracle_center_crop_padding_matches_torchvision(torchvision_T, mode, wh):
    # Unreachable after a shorter-side resize, but the oracle states it, so it is checked.
    rs = np.random.RandomState(sum(wh))
    im = Image.fromarray(rs.randint(0, 256, size=(wh[1], wh[0], 3), dtype=np.uint8)).convert(mode)
    ours = np.asarray(reference_transform.center_crop(im, IMAGE_SIZE).convert("RGB"))
    theirs = np.asarray(torchvision_T.functional.center_crop(im, [IMAGE_SIZE]).convert("RGB"))
    assert np.array_equal(ours, theirs)


# --- JPEGs decoded by the browser (pyapp.preprocess.preprocess_decoded_rgba) ----------------------


def _as_browser_decodes(data: bytes) -> tuple[bytes, int, int]:
    """RGBA as Chromium hands it over: EXIF orientation applied, alpha 255."""
    from PIL import ImageOps

    im = ImageOps.exif_transpose(Image.open(io.BytesIO(data)).convert("RGB"))
    alpha = np.full((im.size[1], im.size[0], 1), 255, dtype=np.uint8)  # (h, w, 1)
    return np.concatenate([np.asarray(im), alpha], axis=-1).tobytes(), im.size[0], im.size[1]


@pytest.mark.parametrize("exif_transpose", [False, True])
def test_browser_decoded_jpeg_equals_preprocess_image(exif_transpose):
    from pyapp.preprocess import browser_jpeg_plan, preprocess_decoded_rgba

    planned = 0
    for name, data in corpus().items():
        plan = browser_jpeg_plan(data)
        if plan is None:
            assert not name.endswith(".jpg") or Image.open(io.BytesIO(data)).mode != "RGB", name
            continue
        planned += 1
        rgba, width, height = _as_browser_decodes(data)
        got = preprocess_decoded_rgba(rgba, width, height, plan["orientation"], exif_transpose=exif_transpose)
        assert np.array_equal(got, preprocess_image(data, exif_transpose=exif_transpose)), name
    assert planned >= 4


def test_browser_jpeg_plan_refuses_bombs_and_non_jpegs():
    from pyapp.preprocess import browser_jpeg_plan

    assert browser_jpeg_plan(b"\x89PNG\r\n\x1a\n") is None
    assert browser_jpeg_plan(b"\xff\xd8\xff\xe0 truncated") is None  # the Pillow path reports it
    big = Image.new("RGB", (1, 1))
    buf = io.BytesIO()
    big.save(buf, format="JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = (8000).to_bytes(2, "big") + (8000).to_bytes(2, "big")  # height, width: 64 Mpx
    with pytest.raises(ImageTooLargeError):
        browser_jpeg_plan(bytes(data))
