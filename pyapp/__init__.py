"""pyapp: CLIP's input pipeline in plain Python, identical to OpenAI CLIP's.

Runs in CPython and, unchanged, in Pyodide in the browser. Only `pyapp.js_bridge` touches the
browser (`js`, `pyodide.ffi`); it is imported by the web worker, never from here.
"""

__version__ = "0.1.0"

from .errors import ClipWebError, ImageDecodeError, ImageTooLargeError, TextInputError, VocabError
from .ops import cosine_similarity_matrix, l2_normalize, top_k, zero_shot_probs
from .preprocess import preprocess_image, preprocess_images, tensor_to_rgb_uint8
from .tokenizer import decode, get_tokenizer, tokenize, tokens

__all__ = [
    "ClipWebError",
    "ImageDecodeError",
    "ImageTooLargeError",
    "TextInputError",
    "VocabError",
    "cosine_similarity_matrix",
    "decode",
    "get_tokenizer",
    "l2_normalize",
    "preprocess_image",
    "preprocess_images",
    "tensor_to_rgb_uint8",
    "tokenize",
    "tokens",
    "top_k",
    "zero_shot_probs",
]
