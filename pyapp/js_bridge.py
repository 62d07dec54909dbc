"""The one module that talks to JavaScript. Imported only inside Pyodide (by web/js/runtime/py-worker.js).

JS hands us JsProxy objects (Uint8Array, arrays); we hand back numpy arrays, which the worker
reads zero-copy with `getBuffer()`, or plain Python values that it converts with `toJs()`.
Errors stay Python exceptions: the worker turns a `ClipWebError` into a message for the page.

Text needs neither numpy nor Pillow here: on a warm start the worker restores a memory snapshot
holding the parsed tokenizer and answers text at once, while numpy and Pillow load for images
(imported inside the image functions). Token ids leave as int32 memoryviews (n, L).
"""

from __future__ import annotations

import json
from array import array
from functools import lru_cache

from js import Object
from pyodide.ffi import JsProxy, to_js

from . import tokenizer
from .errors import ClipWebError, TextInputError


def _to_bytes(data) -> bytes:
    if isinstance(data, JsProxy):
        return data.to_bytes()
    return bytes(data)


def load_vocab(gz_bytes) -> None:
    """Install the BPE vocab fetched by the worker as the default tokenizer."""
    tokenizer.set_default_tokenizer(tokenizer.Tokenizer.from_bytes(_to_bytes(gz_bytes)))


def _floats(values) -> tuple[float, ...] | None:
    if values is None:  # JS null: a model without normalisation
        return None
    return tuple(float(v) for v in (values.to_py() if isinstance(values, JsProxy) else values))


def _manifest_rules(read, rules_json: str):
    """read (a pyapp.pipeline reader) of a manifest's part given as JSON; a refusal becomes an
    error the page shows (the server checks manifests too, but a page may be given its own)."""
    from .pipeline import PipelineError

    try:
        return read(json.loads(str(rules_json)))
    except PipelineError as exc:
        raise ClipWebError(f"The model's manifest can't be used: {exc}") from exc


@lru_cache(maxsize=8)
def _image_rules(rules_json: str):
    """A manifest's {image_size, mean, std, preprocess} as JSON -> pyapp.pipeline.ImageRules."""
    from .pipeline import image_rules

    return _manifest_rules(image_rules, rules_json)


def preprocess_image(data, rules: str, exif_transpose: bool = False):
    from . import preprocess

    return preprocess.preprocess_image(
        _to_bytes(data), rules=_image_rules(str(rules)), exif_transpose=bool(exif_transpose)
    )  # (1, 3, size, size)


def browser_jpeg_plan(data):
    """None, or a JS object {width, height, orientation}: decode this JPEG with the browser."""
    from . import preprocess

    plan = preprocess.browser_jpeg_plan(_to_bytes(data))
    return None if plan is None else to_js(plan, dict_converter=Object.fromEntries)


def preprocess_decoded_rgba(rgba, width, height, orientation, rules: str, exif_transpose=False):
    from . import preprocess

    return preprocess.preprocess_decoded_rgba(
        _to_bytes(rgba), int(width), int(height), int(orientation),
        rules=_image_rules(str(rules)), exif_transpose=bool(exif_transpose),
    )  # (1, 3, size, size)


def _texts(texts) -> list[str] | str:
    return texts.to_py() if isinstance(texts, JsProxy) else texts


def _int32_matrix(rows: list[list[int]], width: int) -> memoryview:
    """rows zero-padded (or cut) to width, as one C-contiguous int32 buffer of shape (n, width)."""
    flat = array("i", bytes(4 * len(rows) * width))  # C int: 32 bits on wasm32
    for r, ids in enumerate(rows):
        ids = ids[:width]
        flat[r * width: r * width + len(ids)] = array("i", ids)
    return memoryview(flat).cast("B").cast("i", (len(rows), width))


# Tokenizers of families with their own (SigLIP's SentencePiece), by the page's key for the model.
_text_tokenizers: dict = {}


def load_sentencepiece(key: str, data, rules_json: str) -> None:
    """Install a model's SentencePiece tokenizer: its file's bytes and the manifest's
    {context_length, tokenizer} as JSON (pyapp.pipeline.text_rules)."""
    from .pipeline import text_rules
    from .spiece_tokenizer import SentencePieceTokenizer

    rules = _manifest_rules(text_rules, rules_json)
    _text_tokenizers[str(key)] = SentencePieceTokenizer.from_bytes(_to_bytes(data), rules)


def tokenize(texts, context_length: int, tokenizer_key=None) -> memoryview:
    """(n, context_length) ids without numpy: OpenAI's (tokenizer.tokenize), or, given the key of a
    loaded SentencePiece tokenizer, that family's rows (already padded to its context length)."""
    if tokenizer_key is None:
        rows = tokenizer.get_tokenizer().token_rows(_texts(texts), int(context_length))
    else:
        rows = _text_tokenizers[str(tokenizer_key)].rows(_texts(texts))
    return _int32_matrix(rows, int(context_length))  # (n, 77)


def trim_padding(ids: memoryview) -> memoryview:
    """The model input for a text encoder with a dynamic sequence axis (see tokenizer.trim_padding)."""
    rows = ids.tolist()
    length = tokenizer.trimmed_length(rows)
    return ids if length is None else _int32_matrix(rows, length)  # (n, length)


def token_strings(text, tokenizer_key=None) -> list[str]:
    if not isinstance(text, str):
        raise TextInputError(f"expected text, got {type(text).__name__}")
    if tokenizer_key is not None:
        return _text_tokenizers[str(tokenizer_key)].pieces(text)
    return tokenizer.tokens(text)


def crop_preview(data, dims, mean, std):
    """uint8 RGBA (size, size, 4) of the exact crop the model sees, for an ImageData."""
    import numpy as np

    from . import preprocess

    dims = tuple(int(d) for d in (dims.to_py() if isinstance(dims, JsProxy) else dims))
    pixel_values = np.frombuffer(_to_bytes(data), dtype=np.float32).reshape(dims)  # (1, 3, size, size)
    rgb = preprocess.tensor_to_rgb_uint8(pixel_values, mean=_floats(mean), std=_floats(std))  # (size, size, 3)
    alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([rgb, alpha], axis=-1))  # (size, size, 4)


def describe_error(exc: BaseException) -> dict:
    if isinstance(exc, ClipWebError):
        return exc.to_dict()
    return {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
