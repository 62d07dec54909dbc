"""SigLIP's text pipeline (pyapp/spiece_tokenizer.py) against transformers 5.25's SiglipTokenizer.

The oracle is what a SigLIP user runs: `SiglipTokenizer(vocab_file=...)(texts, padding="max_length",
max_length=64, truncation=True)`, on a SentencePiece model trained here with SigLIP's settings
(unigram, nmt_nfkc, pad 0 / eos 1 / unk 2, no bos: golden/spiece_models.py) and on its 32,000-piece
grown copy, over the hard corpus plus strings aimed at each step (special tokens typed in the text,
"▁", punctuation, case, whitespace, truncation at 64).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest

from pyapp.errors import TextInputError
from pyapp.pipeline import PipelineError, TextRules, text_rules
from pyapp.spiece_tokenizer import SentencePieceTokenizer

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN_DIR))
import spiece_models as SM  # noqa: E402

HARD = json.loads((GOLDEN_DIR / "spiece_hard_strings.json").read_text(encoding="utf-8"))
AIMED = [
    "a photo of a cat", "A Photo Of A CAT!", "it's a dog's life...", "e-mail: x@y.z (maybe)", "¿Qué? ¡Sí! «quote» — dash",
    "</s>", "</s> a cat", "a cat </s>", "a </s> cat", "a</s>cat", "<unk>", "a <unk> cat", "<unk></s>", "</S> upper",
    "<pad>", "a <pad> cat", "▁", "▁▁a", "a▁b", " ▁ ", "tab\tand\nnewline", "   spaced   out   ", "", " ", "!!!", "...a...",
    "ＦＵＬＬ width", "ﬁne ligature", "東京タワー", "emoji 🙂🐈", "x " * 70, "longword" * 40,
    " ".join(f"w{i}" for i in range(80)), "a cat" + " </s>" * 70,
]
TEXTS = HARD + AIMED
RULES = TextRules(kind="sentencepiece", context_length=64, url="spiece.model", lowercase=True,
                  strip_punctuation=True, eos_id=1, pad_id=1)


def _model_file(tmp_path_factory, name: str, grown: bool) -> Path:
    data = SM.ensure_model(name)
    if grown:
        data = SM.grown(data)
    path = tmp_path_factory.mktemp("siglip-spiece") / "spiece.model"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module", params=[False, True], ids=["trained", "grown-32000"])
def pair(request, tmp_path_factory):
    from transformers import SiglipTokenizer

    path = _model_file(tmp_path_factory, "unigram_nmt_nfkc", request.param)
    reference = SiglipTokenizer(vocab_file=str(path))
    ours = SentencePieceTokenizer.from_bytes(path.read_bytes(), RULES)
    return ours, reference


def _reference_rows(reference, texts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "This sequence already has </s>": the case is in the corpus
        return reference(list(texts), padding="max_length", max_length=64, truncation=True)["input_ids"]


def test_ids_equal_transformers_siglip_tokenizer(pair):
    ours, reference = pair
    want = _reference_rows(reference, TEXTS)
    got = ours.rows(TEXTS)
    wrong = [(t, g, w) for t, g, w in zip(TEXTS, got, want) if g != w]
    assert not wrong, f"{len(wrong)} of {len(TEXTS)} differ, first: {wrong[0]}"
    assert all(len(row) == 64 for row in got)
    assert len(TEXTS) >= 150


def test_pieces_equal_transformers_tokenize(pair):
    ours, reference = pair
    for text in TEXTS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert ours.pieces(text) == reference.tokenize(text), repr(text)


def test_the_rules_are_what_changes_the_ids(tmp_path_factory):
    """Each rule changes ids where it should, so the parity above is not vacuous."""
    data = _model_file(tmp_path_factory, "unigram_nmt_nfkc", False).read_bytes()
    base = SentencePieceTokenizer.from_bytes(data, RULES)
    cased = SentencePieceTokenizer.from_bytes(data, TextRules(**{**RULES.__dict__, "lowercase": False}))
    punct = SentencePieceTokenizer.from_bytes(data, TextRules(**{**RULES.__dict__, "strip_punctuation": False}))
    padded0 = SentencePieceTokenizer.from_bytes(data, TextRules(**{**RULES.__dict__, "pad_id": 0}))
    assert base.ids("A Photo") != cased.ids("A Photo")
    assert base.ids("a cat!") != punct.ids("a cat!")
    assert base.ids("a cat")[-1] == 1 and padded0.ids("a cat")[-1] == 0
    row = base.ids("a cat")
    assert row[row.index(1)] == 1 and len(row) == 64


def test_manifest_rules_and_refusals():
    manifest = {"context_length": 64, "tokenizer": {"kind": "sentencepiece", "url": "spiece.model", "lowercase": True,
                                                    "strip_punctuation": True, "eos_id": 1, "pad_id": 1}}
    assert text_rules(manifest) == RULES
    assert text_rules({}) == TextRules()  # OpenAI's BPE at 77
    for bad, field in [
        ({"tokenizer": {"kind": "wordpiece"}}, "tokenizer.kind"),
        ({"tokenizer": {"kind": "sentencepiece"}}, "tokenizer.url"),
        ({"tokenizer": {"kind": "sentencepiece", "url": "s.model", "eos_id": -1}}, "tokenizer.eos_id"),
        ({"tokenizer": {"kind": "sentencepiece", "url": "s.model", "lowercase": "yes"}}, "tokenizer.lowercase"),
        ({"tokenizer": {"kind": "sentencepiece", "url": "s.model", "sha256": "abc"}}, "tokenizer.sha256"),
        ({"tokenizer": {"kind": "clip_bpe", "url": "x"}}, "tokenizer.url"),
        ({"tokenizer": {"kind": "sentencepiece", "url": "s.model", "merges": "x"}}, "tokenizer.merges"),
        ({"tokenizer": "spiece"}, "tokenizer"),
    ]:
        with pytest.raises(PipelineError) as err:
            text_rules(bad)
        assert err.value.field == field, (bad, err.value)


def test_ids_the_model_lacks_are_refused(tmp_path_factory):
    data = _model_file(tmp_path_factory, "unigram_nmt_nfkc", False).read_bytes()
    with pytest.raises(TextInputError, match="tokenizer.pad_id 5000 is not an id"):
        SentencePieceTokenizer.from_bytes(data, TextRules(**{**RULES.__dict__, "pad_id": 5000}))
    with pytest.raises(TextInputError, match="expected text"):
        SentencePieceTokenizer.from_bytes(data, RULES).ids(42)
