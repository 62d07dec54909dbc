"""pyapp.spiece against the `sentencepiece` library: same normalized text, ids, pieces and decoded
text, on models trained here (golden/spiece_models.py), for the hard corpus
(golden/spiece_hard_strings.json), random text, random ids, every normalizer flag and unused
pieces; and clear errors on damaged files.

Nothing skips: without `sentencepiece` (the test extras) every test here fails, saying how to fix it.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyapp.errors import TextInputError, VocabError
from pyapp.spiece import SentencePiece, SentencePieceModelError

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(GOLDEN_DIR))  # its training code, shared with the Pyodide test
import spiece_models as SM  # noqa: E402
from spiece_models import field as _field, varint as _varint  # noqa: E402

HARD = json.loads((GOLDEN_DIR / "spiece_hard_strings.json").read_text(encoding="utf-8"))
NAMES = list(SM.MODELS)


@pytest.fixture(scope="session")
def spm():
    try:
        return SM.oracle()
    except ImportError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def model_bytes(spm) -> dict[str, bytes]:
    return {name: SM.ensure_model(name) for name in NAMES}


@pytest.fixture(scope="session")
def pair(spm, model_bytes):
    """name -> (ours, the library's), loaded once."""
    return {name: (SentencePiece.from_bytes(data), spm.SentencePieceProcessor(model_proto=data))
            for name, data in model_bytes.items()}


# --- comparing ----------------------------------------------------------------------------------


def _library(ref, text: str) -> tuple:
    ids = ref.encode(text)
    return ref.normalize(text), ids, ref.encode(text, out_type=str), ref.decode(ids)


def _ours(sp: SentencePiece, text: str) -> tuple:
    ids = sp.encode(text)
    return sp.normalize(text), ids, sp.encode_as_pieces(text), sp.decode(ids)


def _assert_same(ours: SentencePiece, ref, texts: list[str], label: str) -> None:
    wrong = []
    for text in texts:
        expected, got = _library(ref, text), _ours(ours, text)
        if got != expected:
            wrong.append(f"{text!r}:\n    library {expected}\n    ours    {got}")
    assert not wrong, f"{label}: {len(wrong)} of {len(texts)} texts differ, e.g.\n" + "\n".join(wrong[:4])


def _random_text(rng: random.Random, pieces: list[str]) -> str:
    """Pieces of the vocab (as text), separators, accents, compatibility forms, any code point."""
    parts = []
    for _ in range(rng.randint(0, 12)):
        k = rng.random()
        if k < 0.35:
            parts.append(rng.choice(pieces).replace("\u2581", " "))
        elif k < 0.5:
            parts.append(rng.choice([" ", "  ", "\t", "\n", "\u3000", "\u00a0", "\u2581", "\u200b", "\r\n", "\x0b"]))
        elif k < 0.65:
            parts.append(chr(rng.randint(0x20, 0x2FF)))
        elif k < 0.75:
            lo, hi = rng.choice([(0x300, 0x36F), (0xFF00, 0xFFEF), (0x3000, 0x30FF), (0x1F300, 0x1FAFF),
                                 (0xFB00, 0xFB4F), (0x2460, 0x24FF), (0x1100, 0x11FF), (0xAC00, 0xD7A3)])
            parts.append(chr(rng.randint(lo, hi)))
        elif k < 0.85:
            cp = rng.randint(0, 0x10FFFF)
            parts.append(chr(cp) if not 0xD800 <= cp < 0xE000 else "x")
        else:
            parts.append(rng.choice(["e\u0301", "A\u030a", "ﬁ", "Ⅻ", "㍻", "ǅ", "ﷺ", "<s>", "</s>", "<unk>",
                                     "<sep>", "hello", "ab", "...", "!!", "12345", "|", "<ctl>"]))
    return "".join(parts)


# --- protobuf, written by hand so tests can derive variants of a model ---------------------------


def _read_fields(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """(number, the field's whole encoding, its payload if length-delimited) of each field."""
    out, pos = [], 0

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while pos < len(data):
        start = pos
        key = varint()
        wire, payload = key & 7, b""
        if wire == 0:
            varint()
        elif wire == 2:
            size = varint()
            payload = data[pos : pos + size]
            pos += size
        else:
            pos += 8 if wire == 1 else 4
        out.append((key >> 3, data[start:pos], payload))
    return out


def _with_piece_types(data: bytes, new_types: dict[int, int]) -> bytes:
    """The model with pieces[i].type set to new_types[i]; everything else byte for byte."""
    out, index = [], 0
    for number, raw, payload in _read_fields(data):
        if number == 1:
            if index in new_types:
                fields = [f for n, f, _ in _read_fields(payload) if n != 3] + [_field(3, new_types[index])]
                raw = _field(1, b"".join(fields))
            index += 1
        out.append(raw)
    return b"".join(out)


def _with_flags(data: bytes, add_dummy_prefix: bool, remove_extra_whitespaces: bool, escape_whitespaces: bool,
                treat_whitespace_as_suffix: bool) -> bytes:
    """The model with these flags, by appending sub-messages: a parser merges a repeated
    sub-message into the first and a scalar's last value wins (so this tests our merging too)."""
    normalizer = _field(3, int(add_dummy_prefix)) + _field(4, int(remove_extra_whitespaces)) + _field(
        5, int(escape_whitespaces))
    return data + _field(3, normalizer) + _field(2, _field(24, int(treat_whitespace_as_suffix)))


# --- the hard corpus and random text ------------------------------------------------------------


def test_hard_corpus_is_hard():
    assert len(HARD) >= 150 and len(set(HARD)) == len(HARD)
    for needle in ("", " ", "\t", "\u2581", "ﬁ", "e\u0301", "猫", "👨‍👩‍👧‍👦", "שלום עולם", "\x00", "</s>", "<pad>",
                   "<unk>", "a" * 300, "ＡＢＣ１２３"):
        assert needle in HARD, needle


@pytest.mark.parametrize("name", NAMES)
def test_hard_corpus_matches_library(pair, name):
    """Normalized text, ids, pieces and decoded text, string by string."""
    ours, ref = pair[name]
    _assert_same(ours, ref, HARD, name)
    # Decoding gives the text back wherever the library's does (it cannot for unknowns, NFKC...).
    round_trips = [t for t in HARD if ref.decode(ref.encode(t)) == t]
    assert all(ours.decode(ours.encode(t)) == t for t in round_trips)
    print(f"{name}: {len(round_trips)} of {len(HARD)} strings decode back to themselves")


@pytest.mark.parametrize("name", NAMES)
def test_training_text_and_random_text_match_library(pair, name):
    ours, ref = pair[name]
    rng = random.Random(name)
    pieces = [ref.id_to_piece(i) for i in range(ref.vocab_size())]
    texts = rng.sample(SM.training_corpus(), 300) + [_random_text(rng, pieces) for _ in range(1500)]
    _assert_same(ours, ref, texts, name)


@pytest.mark.parametrize("name", NAMES)
def test_decode_of_any_ids_matches_library(pair, name):
    """Random id sequences: control, unknown and byte pieces anywhere, bytes that are not UTF-8."""
    ours, ref = pair[name]
    rng = random.Random(name)
    n = ref.vocab_size()
    specials = [i for i in range(n) if ref.is_control(i) or ref.is_unknown(i) or ref.is_byte(i)]
    wrong = []
    for _ in range(1500):
        ids = [rng.choice(specials) if specials and rng.random() < 0.4 else rng.randrange(n)
               for _ in range(rng.randint(0, 10))]
        if ours.decode(ids) != ref.decode(ids):
            wrong.append((ids, ref.decode(ids), ours.decode(ids)))
    assert not wrong, f"{len(wrong)} id lists decode differently, e.g. {wrong[:3]}"


@pytest.mark.parametrize("name", NAMES)
def test_vocab_and_special_ids_match_library(pair, name):
    ours, ref = pair[name]
    assert ours.vocab_size == ref.vocab_size()
    assert (ours.unk_id, ours.bos_id, ours.eos_id, ours.pad_id) == (ref.unk_id(), ref.bos_id(), ref.eos_id(),
                                                                    ref.pad_id())
    assert ours.model_type == SM.MODELS[name]["model_type"]
    for i in range(ref.vocab_size()):
        piece = ref.id_to_piece(i)
        assert ours.id_to_piece(i) == piece
        assert ours.piece_to_id(piece) == ref.piece_to_id(piece) == i
    for text in ("", "not a piece at all", "<0x41>", "▁▁▁▁", "</s>", "<pad>"):
        assert ours.piece_to_id(text) == ref.piece_to_id(text), text


def test_siglip_layout(pair):
    ours, _ = pair["unigram_nmt_nfkc"]
    assert (ours.pad_id, ours.eos_id, ours.unk_id, ours.bos_id) == (0, 1, 2, -1)
    assert ours.decode(ours.encode("A photo of a cat.") + [ours.eos_id, ours.pad_id]) == "A photo of a cat."


def test_siglip_sized_vocab(spm, model_bytes):
    """32,000 pieces, as SigLIP's spiece.model: same ids, and how long loading takes."""
    data = SM.grown(model_bytes["unigram_nmt_nfkc"])
    start = time.perf_counter()
    ours = SentencePiece.from_bytes(data)
    load_ms = (time.perf_counter() - start) * 1e3
    ref = spm.SentencePieceProcessor(model_proto=data)
    assert ours.vocab_size == ref.vocab_size() == 32_000
    rng = random.Random(32)
    words = [ref.id_to_piece(rng.randrange(700, 32_000)).replace("\u2581", " ") for _ in range(3000)]
    texts = HARD + ["".join(rng.sample(words, rng.randint(1, 8))) for _ in range(500)]
    _assert_same(ours, ref, texts, "32,000 pieces")
    print(f"a 32,000-piece model ({len(data):,} bytes) loads in {load_ms:.0f} ms")
    assert load_ms < 3000


def test_user_symbols_win_and_are_not_normalized(pair):
    ours, ref = pair["unigram_user_symbols"]
    assert "ﬁ" in ours.encode_as_pieces("the ﬁnal") and ref.normalize("ﬁ") == "▁ﬁ"  # NFKC would give "fi"
    assert ours.encode_as_pieces("hellohello<sep>") == ["▁", "hello", "hello", "<sep>"]
    assert ours.encode("<ctl>|") == ref.encode("<ctl>|")  # control pieces typed in text are no pieces


# --- variants of the models ---------------------------------------------------------------------

FLAG_SETS = [(a, r, e, s) for a in (False, True) for r in (False, True) for e in (False, True) for s in (False, True)]


@pytest.mark.parametrize("name", ["unigram_nmt_nfkc", "bpe", "unigram_byte_fallback"])
@pytest.mark.parametrize("flags", FLAG_SETS, ids=lambda f: "".join("ARES"[i] if v else "-" for i, v in enumerate(f)))
def test_every_normalizer_flag_matches_library(spm, model_bytes, name, flags):
    """add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces, treat_whitespace_as_suffix."""
    data = _with_flags(model_bytes[name], *flags)
    ours, ref = SentencePiece.from_bytes(data), spm.SentencePieceProcessor(model_proto=data)
    add_dummy_prefix, _, escape, suffix = flags
    # The variant took effect in the library too, so this cannot pass by comparing two defaults.
    dummy = ("\u2581" if escape else " ") if add_dummy_prefix else ""
    assert ref.normalize("x") == ("x" + dummy if suffix else dummy + "x")
    rng = random.Random(repr(flags))
    pieces = [ref.id_to_piece(i) for i in range(ref.vocab_size())]
    _assert_same(ours, ref, HARD + [_random_text(rng, pieces) for _ in range(300)], f"{name} {flags}")


@pytest.mark.parametrize("name", ["bpe", "bpe_byte_fallback", "unigram_user_symbols", "char", "word"])
@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_unused_pieces_match_library(spm, model_bytes, name, fraction):
    """Pieces marked UNUSED: skipped by unigram, merged then split back by BPE, unknown when whole."""
    data = model_bytes[name]
    ref = spm.SentencePieceProcessor(model_proto=data)
    rng = random.Random(f"{name} {fraction}")
    unused = {i: 5 for i in range(ref.vocab_size()) if ref.id_to_piece(i) and not (
        ref.is_control(i) or ref.is_unknown(i) or ref.is_byte(i)) and rng.random() < fraction}
    unused = {i: t for i, t in unused.items() if ref.id_to_piece(i) not in SM.USER_SYMBOLS}
    data = _with_piece_types(data, unused)
    ours, ref = SentencePiece.from_bytes(data), spm.SentencePieceProcessor(model_proto=data)
    assert sum(ref.is_unused(i) for i in range(ref.vocab_size())) == len(unused) > 0
    pieces = [ref.id_to_piece(i) for i in range(ref.vocab_size())]
    _assert_same(ours, ref, HARD + [_random_text(rng, pieces) for _ in range(500)], f"{name} {fraction}")


# --- errors -------------------------------------------------------------------------------------


def _error(data) -> str:
    with pytest.raises(SentencePieceModelError) as info:
        SentencePiece.from_bytes(data)
    assert isinstance(info.value, VocabError) and info.value.to_dict()["code"] == "spiece_model_error"
    return str(info.value)


def test_truncated_models_fail_clearly_where_the_library_fails(spm, model_bytes):
    """Cut anywhere: a cut inside a field is an error naming it; a cut between fields leaves a
    smaller model, which loads only if the library loads it too."""
    data = model_bytes["unigram_nmt_nfkc"]
    cuts = list(range(1, 400)) + list(range(400, len(data), 1999)) + [len(data) - 1]
    for cut in cuts:
        part = data[:cut]
        try:
            spm.SentencePieceProcessor(model_proto=part)
            library_loads = True
        except Exception:
            library_loads = False
        try:
            SentencePiece.from_bytes(part)
            loads = True
        except SentencePieceModelError as exc:
            loads = False
            assert str(exc).startswith(f"not a usable SentencePiece model ({cut:,} bytes): "), exc
        assert loads == library_loads, (cut, loads)
    assert "truncated file?" in _error(data[:100])
    assert "field 3 (normalizer_spec) needs" in _error(data[: len(data) - 1])


def _piece(text: str, kind: int | None = None) -> bytes:
    return _field(1, _field(1, text.encode()) + (_field(3, kind) if kind else b""))


_UNK, _A = _piece("<unk>", 2), _piece("a")


@pytest.mark.parametrize("data, expected", [
    (b"", "empty (0 bytes)"),
    (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "not protobuf"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "not protobuf"),
    (b'{"vocab": ["a", "b"]}\n', "not protobuf"),
    (b"hello world, this is a text file\n", "not protobuf"),
    (bytes(range(256)) * 4, "not protobuf"),
    (_field(99, 1), "it has no pieces"),
    (_UNK, "it has no piece text can be cut into"),
    (_A + _piece("b"), "defines 0 unknown pieces"),
    (_UNK + _piece(""), "piece 1 is empty"),
    (_UNK + _A + _A, "piece 2 ('a') is defined twice"),
    (_UNK + _piece("a", 9), "piece 1 ('a') has type 9"),
    (_UNK + _A + _field(2, _field(3, 9)), "model_type is 9"),
    ((_UNK + _A + _field(2, _field(3, 9)))[:-1], "field 2 (trainer_spec) needs 2 bytes"),
    (_UNK + _A + _field(2, _field(3, b"")), "trainer_spec.model_type (field 3) is length-delimited"),
    (_field(1, _field(1, b"\xff")), "pieces[0].piece is not UTF-8 text"),
    (_UNK + _A + _piece("<0x41>", 6), "a byte piece, but byte_fallback is off"),
    (_UNK + _A + _piece("<0xZZ>", 6) + _field(2, _field(35, 1)), "a byte piece not written <0xNN>"),
    (_UNK + _A + _field(2, _field(35, 1)), "byte_fallback is on but piece <0x00> is missing"),
    (_UNK + _A + _field(3, _field(2, b"ab")), "precompiled_charsmap is 2 bytes, too short"),
    (_UNK + _A + _field(3, _field(2, struct.pack("<I", 255) + b"ab")), "says its trie is 255 bytes, but it holds 2"),
])
def test_damaged_or_foreign_files_name_the_problem(data, expected):
    message = _error(data)
    assert expected in message, message
    assert len(message) < 300


def test_unknown_fields_are_skipped(spm, model_bytes):
    """Fields a future library may add, of every wire type, at the top and inside the specs."""
    data = model_bytes["unigram_nmt_nfkc"]
    unknown = _field(77, 5) + _varint(78 << 3 | 1) + b"\1" * 8 + _varint(79 << 3 | 5) + b"\2" * 4 + _field(80, b"xyz")
    extended = unknown + data + _field(2, unknown) + _field(3, unknown) + _field(4, unknown) + unknown
    ours, ref = SentencePiece.from_bytes(extended), spm.SentencePieceProcessor(model_proto=extended)
    _assert_same(ours, ref, HARD, "with unknown fields")
    assert ours.encode(HARD[-1]) == SentencePiece.from_bytes(data).encode(HARD[-1])


def _with_charsmap(data: bytes, charsmap: bytes) -> bytes:
    return data + _field(3, _field(2, charsmap))


def test_charsmap_trie_pointing_outside_itself_fails_at_first_use(model_bytes):
    """A trie is not walked whole at load (60,000 units); a damaged one fails on the first text
    that leads outside it, with the same clear error."""
    data = model_bytes["unigram_nmt_nfkc"]
    # One unit: root offset 0xFF, so any byte leads to a unit past the end.
    damaged = SentencePiece.from_bytes(_with_charsmap(data, struct.pack("<II", 4, 0xFF << 10)))
    with pytest.raises(SentencePieceModelError, match="precompiled_charsmap: its trie points outside itself"):
        damaged.encode("a")
    # A well-formed trie that matches nothing keeps every character as it is: NFKC is off.
    no_rules = struct.pack("<I", 256 * 4) + struct.pack("<256I", 0, *[1 << 31] * 255)  # only leaves: no labels
    empty = SentencePiece.from_bytes(_with_charsmap(data, no_rules))
    assert empty.normalize("Ａ ﬁ") == "\u2581Ａ\u2581ﬁ"


def test_bad_text_and_ids(pair):
    ours, ref = pair["unigram_nmt_nfkc"]
    for bad in (None, b"bytes", 3, ["a list"]):
        with pytest.raises(TextInputError):
            ours.encode(bad)
    with pytest.raises(TextInputError, match="lone surrogate"):
        ours.encode("a\ud800b")
    with pytest.raises(Exception):
        ref.encode("a\ud800b")  # the library refuses it too
    for bad_ids in ([ours.vocab_size], [-1], [1.0], [True], "abc", None, 5):
        with pytest.raises(TextInputError):
            ours.decode(bad_ids)
    import numpy as np  # arrays of ids, as a model's output comes

    ids = ours.encode("a photo")
    assert ours.decode(np.asarray(ids, dtype=np.int64)) == ours.decode(tuple(ids)) == ref.decode(ids)
    with pytest.raises(TextInputError):
        ours.id_to_piece(ours.vocab_size)
    with pytest.raises(SentencePieceModelError, match="must be bytes"):
        SentencePiece.from_bytes("a str")


# --- Pyodide readiness and speed ----------------------------------------------------------------


def test_module_uses_the_standard_library_only(model_bytes, tmp_path):
    """Imports and runs in a fresh interpreter loading nothing outside the standard library and
    pyapp (no numpy, no protobuf): what lets it run unchanged in Pyodide."""
    model = tmp_path / "m.model"
    model.write_bytes(model_bytes["unigram_nmt_nfkc"])
    code = (
        "import sys; before = set(sys.modules)\n"
        "from pyapp.spiece import SentencePiece\n"
        f"sp = SentencePiece.from_bytes(open({str(model)!r}, 'rb').read())\n"
        "sp.decode(sp.encode('A photo of a cat, ﬁ ① 😀'))\n"
        "new = sorted(m.split('.')[0] for m in set(sys.modules) - before)\n"
        "print(' '.join(m for m in new if m not in sys.stdlib_module_names and m != 'pyapp'))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"pyapp.spiece loads non-stdlib modules: {run.stdout}"


def test_speed_of_short_prompts(pair):
    """Prints ms per prompt (CPython). The bound catches a pathological slowdown only."""
    ours, ref = pair["unigram_nmt_nfkc"]
    labels = ["cat", "dog", "golden retriever", "hot air balloon", "espresso", "Straße", "東京タワー", "🐱"]
    prompts = [f"a photo of a {labels[i % len(labels)]}, number {i}." for i in range(2000)]
    start = time.perf_counter()
    ids = [ours.encode(p) for p in prompts]
    ours_ms = (time.perf_counter() - start) * 1e3 / len(prompts)
    start = time.perf_counter()
    expected = [ref.encode(p) for p in prompts]
    library_ms = (time.perf_counter() - start) * 1e3 / len(prompts)
    assert ids == expected
    print(f"pyapp.spiece: {ours_ms:.3f} ms per short prompt; the sentencepiece library: {library_ms:.4f} ms")
    assert ours_ms < 2.0
