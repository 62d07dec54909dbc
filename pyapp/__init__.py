"""pyapp: CLIP's input pipeline in plain Python, identical to OpenAI CLIP's.

Runs in CPython and, unchanged, in Pyodide in the browser. Only `pyapp.js_bridge` touches the
browser (`js`, `pyodide.ffi`); it is imported by the web worker, never from here.
"""

__version__ = "0.1.0"

# Attributes resolve on first use (PEP 562), so `import pyapp.tokenizer` loads neither numpy nor
# Pillow: the browser snapshots the tokenizer before any compiled extension is loaded.
_EXPORTS = {
    "errors": ("ClipWebError", "ImageDecodeError", "ImageTooLargeError", "TextInputError", "VocabError"),
    "ops": ("cosine_similarity_matrix", "l2_normalize", "top_k", "zero_shot_probs"),
    "preprocess": ("preprocess_image", "preprocess_images", "tensor_to_rgb_uint8"),
    "tokenizer": ("decode", "get_tokenizer", "tokenize", "tokens"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'pyapp' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_WHERE])


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
