"""The Python snapshot's preparation (PREPARE_PY in web/js/runtime/python-snapshot.js) imports
everything preprocessing needs: after it, preprocessing every image of the corpus, every way the
worker calls it, imports no module of our wheels. That is what lets a restored interpreter take
its first image before numpy's and Pillow's files are written (py-worker.js, `guarded`).

Runs the preparation in a fresh CPython, so sys.modules is what it leaves behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from image_corpus import generate_image_corpus

from pyapp.tokenizer import default_vocab_path

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT_JS = ROOT / "web" / "js" / "runtime" / "python-snapshot.js"
# Modules of the wheels a snapshot holds; the stdlib is in Pyodide's zip from the start.
WHEEL_PACKAGES = ("numpy", "PIL", "pyapp", "ftfy", "wcwidth")

# The corpus is read from files: making it here would import Pillow's encoders first.
PROBE = """
import json, pathlib, sys
corpus = [(p.name, p.read_bytes()) for p in sorted(pathlib.Path({corpus_dir!r}).iterdir())]
exec(compile({prepare!r}, "PREPARE_PY", "exec"))
before = set(sys.modules)
from pyapp import preprocess as P
for name, data in corpus:
    for exif in (False, True):
        P.preprocess_image(data, exif_transpose=exif)
    plan = P.browser_jpeg_plan(data)
    if plan:
        w, h = plan["width"], plan["height"]
        if plan["orientation"] >= 5:
            w, h = h, w
        P.preprocess_decoded_rgba(bytes(w * h * 4), w, h, plan["orientation"], exif_transpose=True)
P.crop_preview_png(P.preprocess_image(corpus[0][1]))
print(json.dumps({{"new": sorted(set(sys.modules) - before), "images": len(corpus)}}))
"""


def prepare_py() -> str:
    match = re.search(r"export const PREPARE_PY = `(.*?)`;", SNAPSHOT_JS.read_text(), re.S)
    assert match, "PREPARE_PY not found in python-snapshot.js"
    return match.group(1).replace("/tmp/bpe_vocab.txt.gz", str(default_vocab_path()))


def test_preprocessing_imports_nothing_after_the_snapshot_preparation(tmp_path):
    for name, data in generate_image_corpus():
        (tmp_path / name).write_bytes(data)
    code = PROBE.format(corpus_dir=str(tmp_path), prepare=prepare_py())
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["images"] >= 40
    from_wheels = [m for m in out["new"] if m.split(".")[0] in WHEEL_PACKAGES]
    assert from_wheels == [], f"preprocessing imported {from_wheels}: import them in PREPARE_PY"


def test_the_preparation_registers_every_supported_format():
    code = prepare_py() + "\nimport json, PIL.Image\nprint(json.dumps([PIL.Image._initialized, pyapp.preprocess._registered_formats()]))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    initialized, formats = json.loads(run.stdout.strip().splitlines()[-1])
    assert initialized == 2
    assert formats == ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "PPM"]
