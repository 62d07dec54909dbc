"""pyapp.spiece in Pyodide (Chromium, the page's own Python worker) gives what it gives in CPython,
which is what the `sentencepiece` library gives: ids, pieces and decoded text of the hard corpus
(tests/pyapp/golden/spiece_hard_strings.json) on three of the models tests/pyapp/test_spiece.py
trains, SigLIP's kind (unigram, nmt_nfkc) first, and that one grown to SigLIP's 32,000 pieces.
Also prints its speed there."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from pyapp.spiece import SentencePiece

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "pyapp" / "golden"
MODELS = ["unigram_nmt_nfkc", "bpe_byte_fallback", "unigram_user_symbols"]
sys.path.insert(0, str(GOLDEN_DIR))  # its training code, shared with the Pyodide test
import spiece_models as SM  # noqa: E402

HARD = json.loads((GOLDEN_DIR / "spiece_hard_strings.json").read_text(encoding="utf-8"))

# Runs in the worker. The case comes in a file: the corpus holds every kind of character.
PYODIDE_RUN = """
import base64, json, time
from pyapp.spiece import SentencePiece
case = json.load(open("/tmp/spiece_case.json", encoding="utf-8"))
prompts = [f"a photo of a {w}, number {i}." for i, w in enumerate(["cat", "dog", "golden retriever"] * 200)]
out = {}
for name, b64 in case["models"].items():
    data = base64.b64decode(b64)
    t0 = time.perf_counter()
    sp = SentencePiece.from_bytes(data)
    t1 = time.perf_counter()
    for p in prompts:
        sp.encode(p)
    t2 = time.perf_counter()
    ids = [sp.encode(t) for t in case["texts"]]
    out[name] = {"ids": ids, "pieces": [sp.encode_as_pieces(t) for t in case["texts"]],
                 "decoded": [sp.decode(i) for i in ids], "load_ms": (t1 - t0) * 1e3,
                 "prompt_ms": (t2 - t1) * 1e3 / len(prompts)}
json.dumps(out)
"""


@pytest.fixture(scope="module")
def page(page_session):
    return page_session.open("/")


def test_spiece_in_pyodide_equals_cpython_and_library(page):
    spm = SM.oracle()
    models = {name: SM.ensure_model(name) for name in MODELS}
    models["unigram_nmt_nfkc grown to 32,000 pieces"] = SM.grown(models["unigram_nmt_nfkc"])  # SigLIP's size
    results = page.evaluate(
        """async ([models, texts, code]) => {
            const bytes = new TextEncoder().encode(JSON.stringify({models, texts}));
            await runtime.py.call('writeFile', {path: '/tmp/spiece_case.json', bytes});
            return JSON.parse(await runtime.runPython(code));
        }""",
        [{name: base64.b64encode(data).decode() for name, data in models.items()}, HARD, PYODIDE_RUN],
    )
    for name, data in models.items():
        ours, ref = SentencePiece.from_bytes(data), spm.SentencePieceProcessor(model_proto=data)
        got = results[name]
        wrong = []
        for k, text in enumerate(HARD):
            expected = (ours.encode(text), ours.encode_as_pieces(text), ours.decode(ours.encode(text)))
            assert expected[0] == ref.encode(text), text  # CPython is the library (tests/pyapp/test_spiece.py)
            if (got["ids"][k], got["pieces"][k], got["decoded"][k]) != expected:
                wrong.append((text, got["ids"][k], expected[0]))
        assert not wrong, f"{name}: {len(wrong)} of {len(HARD)} strings differ in Pyodide, e.g. {wrong[:3]}"
        print(f"Pyodide {name}: load {got['load_ms']:.1f} ms, {got['prompt_ms']:.3f} ms per short prompt")
