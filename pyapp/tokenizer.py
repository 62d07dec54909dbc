"""CLIP's byte-level BPE tokenizer: same ids as OpenAI's `clip.tokenize(texts, truncate=True)`.

References (github.com/openai/CLIP):
  [ST] clip/simple_tokenizer.py: basic_clean, whitespace_clean, the pre-token regex, bytes_to_unicode, bpe.
  [CT] clip/clip.py::tokenize: SOT + ids + EOT, zero padding, truncation.
  [CM] clip/model.py::encode_text: pooling at text.argmax(dim=-1), under a causal mask.

Our own implementation, with no `regex` dependency (Pyodide lacks it): the pre-token classes
\\p{L}, \\p{N} and \\s come from pyapp/unicode_tables.py, frozen from `regex` itself, so the result
does not depend on the Unicode version of the Python that runs us.

Public API: tokenize, trim_padding, trimmed_length, encode, tokens, decode, clean_text, get_tokenizer,
set_default_tokenizer, Tokenizer (.from_bytes, .from_path), default_vocab_path, benchmark_tokenizer.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import numbers
import os
import re
import sys
import time
import zlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

# numpy is imported where an array is made, not here: the browser keeps this module, its vocab
# already parsed, in a memory snapshot taken before any compiled extension is loaded.
from . import unicode_tables as ut
from .constants import (
    BPE_VOCAB_FILENAME,
    BPE_VOCAB_SHA256,
    CONTEXT_LENGTH,
    EOT_ID,
    EOT_TOKEN,
    SOT_ID,
    SOT_TOKEN,
    VOCAB_SIZE,
)
from .errors import TextInputError, VocabError

VOCAB_ENV_VAR = "CLIP_WEB_BPE_VOCAB"
WORD_END = "</w>"  # [ST] bpe(): marks the last symbol of every pre-token.

# [ST] SimpleTokenizer.__init__: merges = lines[1:49152-256-2+1]. Line 0 is a version header;
# 49152 - 256 byte tokens - 2 specials = 48894 merges, so the vocab is 2*256 + 48894 + 2 = 49408.
_N_MERGES = 49152 - 256 - 2

# The per-word BPE cache is unbounded in [ST]; we clear ours past this size so a long browser
# session fed arbitrary text cannot grow memory without limit. Clearing never changes results.
_CACHE_MAX = 100_000


# --- pre-tokenizer ----------------------------------------------------------------------------


def _cp(cp: int) -> str:
    # \U escapes keep the pattern source ASCII and are valid for every code point, surrogates too.
    return f"\\U{cp:08x}"


def _char_class(ranges: Iterable[tuple[int, int]]) -> str:
    return "[" + "".join(_cp(a) if a == b else f"{_cp(a)}-{_cp(b)}" for a, b in ranges) + "]"


def _literal(text: str) -> str:
    # [ST] compiles with regex.IGNORECASE: each literal char matches its case variants, e.g.
    # 's' also matches U+017F (long s), which survives .lower(); so "it'ſ" pre-tokenizes as "'ſ".
    out = []
    for ch in text:
        variants = ut.LITERAL_VARIANTS.get(ch, ch)
        out.append(re.escape(ch) if len(variants) == 1 else "[" + "".join(map(re.escape, variants)) + "]")
    return "".join(out)


def _class_pattern(ranges: Sequence[tuple[int, int]], repeat: bool) -> str:
    """`[ranges]` or `[ranges]+`, written so `re` matches it fast.

    `re` compiles the BMP part of a class to a bitmap (O(1) per char) but tests astral ranges one
    by one, hundreds per class: a space or a letter would pay for all of them. So the astral part
    gets its own class, behind a one-range lookahead that BMP chars fail at once. Same set, ~5x
    faster on prompts. (For `+`: runs of either part, repeated, is the same as runs of the union.)
    """
    bmp = [(a, min(b, 0xFFFF)) for a, b in ranges if a <= 0xFFFF]
    astral = [(max(a, 0x10000), b) for a, b in ranges if b >= 0x10000]
    plus = "+" if repeat else ""
    parts = []
    if bmp:
        parts.append(_char_class(bmp) + plus)
    if astral:
        parts.append("(?=[\\U00010000-\\U0010ffff])" + _char_class(astral) + plus)
    return "(?:" + "|".join(parts) + ")" + plus


def _pretoken_pattern() -> re.Pattern:
    # [ST]: <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
    # Same alternatives in the same order (leftmost alternative wins, as in `regex`); characters in
    # none of the classes (whitespace, U+0345) are skipped by findall, exactly as in `regex`.
    literals = [SOT_TOKEN, EOT_TOKEN, "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]
    alternatives = [_literal(s) for s in literals] + [
        _class_pattern(ut.LETTER_RANGES, repeat=True),
        _class_pattern(ut.NUMBER_RANGES, repeat=False),  # one digit per pre-token: "2024" is 4.
        _class_pattern(ut.OTHER_RANGES, repeat=True),
    ]
    return re.compile("|".join(alternatives))


_PRETOKEN_RE = _pretoken_pattern()
# [ST] whitespace_clean: regex.sub(r'\s+', ' ', text). `regex`'s \s is not Python's: U+001C..U+001F
# are str.isspace() but not regex \s, hence the frozen table.
_SPACE_RUN_RE = re.compile(_char_class(ut.SPACE_RANGES) + "+")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


# --- text cleaning ----------------------------------------------------------------------------

_ftfy_fix_text = None
# Slow-path results by raw text: a page re-tokenizes the same non-ASCII labels on every edit.
_clean_cache: dict[str, str] = {}


def _fix_text(text: str) -> str:
    # ftfy costs ~150 ms to import; do it on the first text that needs it.
    global _ftfy_fix_text
    if _ftfy_fix_text is None:
        import ftfy

        _ftfy_fix_text = ftfy.fix_text
    return _ftfy_fix_text(text)


def clean_text(text: str) -> str:
    """The text [ST] encode() pre-tokenizes: whitespace_clean(basic_clean(text)).lower()."""
    if not isinstance(text, str):
        raise TextInputError(_type_message(text, "text"))
    if text.isascii() and text.isprintable() and "&" not in text:
        # Fast path (ftfy costs ~50 us a call, the budget for a whole prompt). On printable ASCII
        # without '&', ftfy 6.3 is the identity: its fixers act only on '&' entities, ESC, CR,
        # control chars or non-ASCII, NFC keeps ASCII; html.unescape needs '&'. The only
        # whitespace left is ' ', so split/join == strip + sub(\s+, ' ') + strip.
        # test_tokenizer.py checks this path against the oracle's cleaning.
        return " ".join(text.split()).lower()
    cleaned = _clean_cache.get(text)
    if cleaned is None:
        cleaned = _fix_text(text)  # [ST] basic_clean
        cleaned = html.unescape(html.unescape(cleaned)).strip()  # [ST] basic_clean: twice, then str.strip
        cleaned = _SPACE_RUN_RE.sub(" ", cleaned).strip()  # [ST] whitespace_clean
        cleaned = cleaned.lower()  # [ST] encode: .lower() after cleaning (İ becomes 'i' + U+0307)
        if len(_clean_cache) >= _CACHE_MAX:
            _clean_cache.clear()
        _clean_cache[text] = cleaned
    return cleaned


# --- byte-level alphabet ----------------------------------------------------------------------


def _byte_alphabet() -> list[str]:
    """Char standing for each byte 0..255 ([ST] bytes_to_unicode, GPT-2's trick).

    Printable Latin-1 bytes stand for themselves; the 68 others (controls, space, NBSP, soft
    hyphen) get U+0100.. in byte order, so no BPE symbol is whitespace or a control char.
    """
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    kept = set(keep)
    out = [""] * 256
    extra = 0
    for b in range(256):
        if b in kept:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


_BYTE_CHARS = _byte_alphabet()
# bytes.decode("latin-1") maps byte b to chr(b); this table then maps chr(b) to its symbol.
_LATIN1_TO_SYMBOL = {b: c for b, c in enumerate(_BYTE_CHARS)}
_SYMBOL_TO_BYTE = {c: b for b, c in enumerate(_BYTE_CHARS)}


def _to_symbols(piece: str) -> str:
    try:
        raw = piece.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: [ST] would crash here. ftfy and html.unescape already replace them, so
        # this is a guard only; U+FFFD is in the same pre-token class, so the split is unchanged.
        raw = _SURROGATE_RE.sub("\ufffd", piece).encode("utf-8")
    return raw.decode("latin-1").translate(_LATIN1_TO_SYMBOL)


# --- vocab ------------------------------------------------------------------------------------


def default_vocab_path() -> Path:
    """$CLIP_WEB_BPE_VOCAB if set, else <repo>/.assets/vocab/bpe_simple_vocab_16e6.txt.gz."""
    env = os.environ.get(VOCAB_ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / ".assets" / "vocab" / BPE_VOCAB_FILENAME


def _parse_merges(gz_bytes: bytes) -> list[tuple[str, str]]:
    try:
        text = gzip.decompress(gz_bytes).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise VocabError(f"BPE vocab is not a gzipped UTF-8 merges file: {exc}") from exc
    # [ST]: skip the "#version" header line. maxsplit: the file has 262k lines and only the first
    # 48,894 are used; splitting all of them would leave a Python snapshot 20 MB of freed garbage.
    lines = text.split("\n", 1 + _N_MERGES)[1 : 1 + _N_MERGES]
    merges = []
    for n, line in enumerate(lines, start=2):
        pair = line.split()  # no symbol is whitespace (see _byte_alphabet), so split() is exact
        if len(pair) != 2:
            raise VocabError(f"BPE vocab line {n} is not a merge pair: {line!r}")
        merges.append((pair[0], pair[1]))
    if len(merges) != _N_MERGES:
        raise VocabError(f"BPE vocab has {len(merges)} merges, expected {_N_MERGES}")
    return merges


class Tokenizer:
    """A loaded BPE vocab. Build with from_bytes / from_path / get_tokenizer, not directly."""

    def __init__(self, merges: Sequence[tuple[str, str]]):
        # [ST] vocab order: the 256 byte symbols, the same with </w>, one per merge, the 2 specials.
        # The byte symbols come in bytes_to_unicode()'s dict order, not byte order: the 188
        # printable bytes first ("!" is id 0), then the 68 remapped ones (U+0100.. ids 188..255).
        symbols = sorted(_BYTE_CHARS)
        vocab = symbols + [s + WORD_END for s in symbols] + [a + b for a, b in merges] + [SOT_TOKEN, EOT_TOKEN]
        self.encoder: dict[str, int] = {s: i for i, s in enumerate(vocab)}
        self.decoder: list[str] = vocab
        if len(self.encoder) != VOCAB_SIZE or self.encoder[SOT_TOKEN] != SOT_ID or self.encoder[EOT_TOKEN] != EOT_ID:
            raise VocabError(f"BPE vocab gives {len(self.encoder)} distinct tokens, expected {VOCAB_SIZE}")
        self._ranks: dict[tuple[str, str], int] = {pair: r for r, pair in enumerate(merges)}
        # [ST] seeds its cache so the specials typed in the text map to their own ids.
        self._specials = {SOT_TOKEN: (SOT_ID,), EOT_TOKEN: (EOT_ID,)}
        self._cache: dict[str, tuple[int, ...]] = dict(self._specials)  # pre-token -> ids
        self._chunk_cache: dict[str, tuple[int, ...]] = {}  # space-free chunk of cleaned text -> ids

    # construction

    @classmethod
    def from_bytes(cls, gz_bytes: bytes, *, check_sha256: bool = True) -> Tokenizer:
        """From the .txt.gz file's bytes (the browser fetches them). Checks the sha256 once."""
        if not isinstance(gz_bytes, (bytes, bytearray, memoryview)):
            raise VocabError(f"BPE vocab must be bytes, got {type(gz_bytes).__name__}")
        gz_bytes = bytes(gz_bytes)
        if check_sha256:
            digest = hashlib.sha256(gz_bytes).hexdigest()
            if digest != BPE_VOCAB_SHA256:
                raise VocabError(
                    f"BPE vocab has sha256 {digest} ({len(gz_bytes)} bytes), expected {BPE_VOCAB_SHA256}: "
                    "wrong or corrupted file; run `clip-web assets` to fetch it again."
                )
        return cls(_parse_merges(gz_bytes))

    @classmethod
    def from_path(cls, path: str | os.PathLike) -> Tokenizer:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise VocabError(
                f"BPE vocab not found at {path}. Run `clip-web assets` to download it, "
                f"or set {VOCAB_ENV_VAR} to the path of {BPE_VOCAB_FILENAME}."
            ) from None
        except OSError as exc:
            raise VocabError(f"cannot read BPE vocab at {path}: {exc}") from exc
        try:
            return cls.from_bytes(data)
        except VocabError as exc:
            raise VocabError(f"{path}: {exc}") from None

    # BPE

    def _bpe(self, piece: str) -> tuple[int, ...]:
        """Ids of one pre-token, memoised. The merge rule is [ST] bpe()."""
        ids = self._cache.get(piece)
        if ids is not None:
            return ids
        word = list(_to_symbols(piece))
        word[-1] += WORD_END
        ranks = self._ranks
        while len(word) > 1:
            # The adjacent pair merged first in training (lowest rank) is merged next.
            best, best_rank = None, None
            for pair in zip(word, word[1:]):
                rank = ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = pair, rank
            if best is None:
                break
            # Merge every occurrence, left to right, non-overlapping (("a","a","a") -> ("aa","a")).
            first, second = best
            merged, i, n = [], 0, len(word)
            while i < n:
                if i + 1 < n and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        ids = tuple(self.encoder[s] for s in word)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
            self._cache.update(self._specials)
        self._cache[piece] = ids
        return ids

    # public

    def encode(self, text: str) -> list[int]:
        """BPE ids of one text, without SOT/EOT and without truncation ([ST] encode)."""
        if not isinstance(text, str):
            raise TextInputError(_type_message(text, "text"))
        out: list[int] = []
        cache = self._chunk_cache
        # No pre-token contains ' ' (it is in no class, nor in a literal), so findall over the
        # text equals findall over its ' '-separated chunks, concatenated. Caching per chunk
        # skips the regex for every word already seen: most of a prompt, most of the time.
        for chunk in clean_text(text).split(" "):
            ids = cache.get(chunk)
            if ids is None:
                ids = tuple(i for piece in _PRETOKEN_RE.findall(chunk) for i in self._bpe(piece))
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[chunk] = ids
            out.extend(ids)
        return out

    def tokenize(
        self, texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH, truncate: bool = True
    ) -> np.ndarray:
        """int32 array (n, context_length): SOT, ids, EOT, zeros ([CT] tokenize).

        Too long: with truncate=True keep the first context_length ids and force the last to EOT
        ([CT]); with truncate=False raise TextInputError (where [CT] raises RuntimeError).
        Unlike [CT], truncate defaults to True, as every CLIP page wants.
        """
        import numpy as np

        rows = self.token_rows(texts, context_length, truncate)
        context_length = _check_context_length(context_length)
        out = np.zeros((len(rows), context_length), dtype=np.int32)  # (n, context_length)
        for row, ids in enumerate(rows):
            out[row, : len(ids)] = ids  # (len(ids),)
        return out

    def token_rows(self, texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH,
                   truncate: bool = True) -> list[list[int]]:
        """tokenize()'s rows as lists, before the zero padding: SOT, ids, EOT (same truncation).
        Plain Python, so the browser can tokenize before numpy is loaded."""
        items = _as_text_list(texts)
        context_length = _check_context_length(context_length)
        rows = []
        for row, text in enumerate(items):
            ids = [SOT_ID, *self.encode(text), EOT_ID]
            if len(ids) > context_length:
                if not truncate:
                    raise TextInputError(
                        f"Text {row} ({_preview(text)}) is {len(ids)} tokens long counting the start and end "
                        f"markers, over the limit of {context_length}. Shorten it, or pass truncate=True "
                        f"to keep only its first {context_length - 2} tokens."
                    )
                ids = ids[:context_length]
                ids[-1] = EOT_ID  # [CT]: tokens[-1] = eot_token
            rows.append(ids)
        return rows

    def tokens(self, text: str, word_end: str = WORD_END) -> list[str]:
        """The BPE pieces of encode(text), readable: UTF-8 decoded, word ends marked by `word_end`.

        A piece holding part of a multi-byte character shows the undecodable bytes as \\xNN escapes
        (an emoji is often split over 2-3 pieces). A literal <|endoftext|> in the text shows as is.
        """
        return [self.piece_text(i, word_end) for i in self.encode(text)]

    def piece_text(self, token_id: int, word_end: str = WORD_END) -> str:
        """Readable text of one id (see tokens())."""
        token_id = _check_id(token_id)
        if token_id in (SOT_ID, EOT_ID):
            return self.decoder[token_id]
        sym = self.decoder[token_id]
        end = sym.endswith(WORD_END)
        if end:
            sym = sym[: -len(WORD_END)]
        raw = bytes(_SYMBOL_TO_BYTE[c] for c in sym)
        return raw.decode("utf-8", errors="backslashreplace") + (word_end if end else "")

    def decode(self, ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
        """Text of a row of ids, for display. Lossy: the text is as cleaned (lowercase, ftfy'd),
        and each word end becomes one space ("cat's" decodes as "cat 's").

        Zero padding after the last EOT is dropped (0 is also the id of "!", so zeros are padding
        only there). skip_special_tokens drops SOT/EOT ids; otherwise they show as <|...|>. Bytes
        that are not valid UTF-8 (a character cut by truncation) become U+FFFD, as in [ST] decode.
        The result is stripped of surrounding whitespace.
        """
        seq = _id_list(ids)
        if EOT_ID in seq:
            last = len(seq) - 1 - seq[::-1].index(EOT_ID)
            if not any(seq[last + 1 :]):
                seq = seq[: last + 1]
        raw = bytearray()
        for i in seq:
            if i in (SOT_ID, EOT_ID):
                if not skip_special_tokens:
                    raw += self.decoder[i].encode("ascii")
                continue
            sym = self.decoder[i]
            end = sym.endswith(WORD_END)
            raw += bytes(_SYMBOL_TO_BYTE[c] for c in (sym[: -len(WORD_END)] if end else sym))
            if end:
                raw += b" "
        return raw.decode("utf-8", errors="replace").strip()


# --- argument checks --------------------------------------------------------------------------


def _type_message(value: object, what: str) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{what} must be a str, got {type(value).__name__}: decode it first, e.g. data.decode('utf-8')."
    if value is None:
        return f"{what} must be a str, got None: pass '' for an empty text."
    return f"{what} must be a str, got {type(value).__name__} ({_preview(value)})."


def _preview(value: object, limit: int = 40) -> str:
    s = repr(value)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _as_text_list(texts: object) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (list, tuple)):
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TextInputError(_type_message(t, f"texts[{i}]"))
        return list(texts)
    if isinstance(texts, (bytes, bytearray, memoryview)) or texts is None:
        raise TextInputError(_type_message(texts, "texts"))
    raise TextInputError(f"texts must be a str or a list of str, got {type(texts).__name__} ({_preview(texts)}).")


def _check_context_length(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:  # numpy ints are Integral
        raise TextInputError(f"context_length must be an int >= 2 (room for SOT and EOT), got {n!r}.")
    return int(n)


def _id_list(ids: object) -> list[int]:
    np = sys.modules.get("numpy")  # without numpy imported, ids cannot be an array
    if np is not None and isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise TextInputError(f"decode() takes one row of ids, got an array of shape {ids.shape}.")
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple)):
        raise TextInputError(f"ids must be a list of ints or a 1-D array, got {type(ids).__name__}.")
    return [_check_id(i) for i in ids]


def _check_id(i: object) -> int:
    if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < VOCAB_SIZE:
        raise TextInputError(f"token id must be an int in [0, {VOCAB_SIZE}), got {i!r}.")
    return int(i)


# --- default tokenizer and module-level shortcuts ---------------------------------------------

_default: Tokenizer | None = None


@lru_cache(maxsize=4)
def _load(path: str) -> Tokenizer:
    return Tokenizer.from_path(path)


def get_tokenizer(vocab_path: str | os.PathLike | None = None) -> Tokenizer:
    """The tokenizer for vocab_path, loaded once per path.

    With no path: the one given to set_default_tokenizer() (the browser's), else the file at
    default_vocab_path(). Raises VocabError if the file is missing or not the expected one.
    """
    if vocab_path is None:
        if _default is not None:
            return _default
        vocab_path = default_vocab_path()
    return _load(str(Path(vocab_path).resolve()))


def set_default_tokenizer(tokenizer: Tokenizer | None) -> None:
    """Make `tokenizer` the one module-level functions use, e.g.
    set_default_tokenizer(Tokenizer.from_bytes(fetched_bytes)) in the browser. None resets."""
    global _default
    if tokenizer is not None and not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"expected a Tokenizer or None, got {type(tokenizer).__name__}")
    _default = tokenizer


def tokenize(texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH, truncate: bool = True) -> np.ndarray:
    """int32 (n, 77) ids, as OpenAI's clip.tokenize(texts, truncate=True). See Tokenizer.tokenize."""
    return get_tokenizer().tokenize(texts, context_length=context_length, truncate=truncate)


def trim_padding(ids: np.ndarray) -> np.ndarray:
    """ids (n, L) cut right after the batch's last pooling position; the model input of a text
    encoder with a dynamic sequence axis.

    CLIP pools the hidden state at argmax(ids) ([CM] clip/model.py encode_text: the first EOT, EOT
    being the largest id), and its causal mask keeps every position from seeing the ones after it,
    so the zero padding behind the batch's last pooled position cannot change any embedding: running
    "a photo of a cat" at 7 positions gives the same embedding as at 77, at a fraction of the work.
    A row without EOT (ids not made by tokenize) leaves the batch uncut.
    """
    import numpy as np

    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.shape[1] == 0:
        return ids
    length = trimmed_length(ids.tolist())
    return ids if length is None else np.ascontiguousarray(ids[:, :length])  # (n, length)


def trimmed_length(rows: Sequence[Sequence[int]]) -> int | None:
    """trim_padding's cut for rows of ids: 1 + the batch's last first-EOT position, or None when
    a row has no EOT. Plain Python (the browser's bridge uses it before numpy is loaded)."""
    ends = []
    for row in rows:
        row = list(row)
        if EOT_ID not in row:
            return None
        ends.append(row.index(EOT_ID))  # argmax(ids): EOT is the largest id, its first position
    return max(ends) + 1 if ends else None


def encode(text: str) -> list[int]:
    """BPE ids of one text, without SOT/EOT or truncation."""
    return get_tokenizer().encode(text)


def tokens(text: str, word_end: str = WORD_END) -> list[str]:
    """Readable BPE pieces of one text. See Tokenizer.tokens."""
    return get_tokenizer().tokens(text, word_end=word_end)


def decode(ids: Sequence[int] | np.ndarray, skip_special_tokens: bool = True) -> str:
    """Text of a row of ids. See Tokenizer.decode."""
    return get_tokenizer().decode(ids, skip_special_tokens=skip_special_tokens)


_BENCH_LABELS = (
    "cat dog bird car truck airplane ship horse frog deer tabby cat golden retriever "
    "red fox sports car fire truck hot air balloon sunflower espresso pizza mountain bike"
).split(" ")


def benchmark_tokenizer(n: int = 20_000, tokenizer: Tokenizer | None = None) -> dict[str, float]:
    """Prompts/s for n distinct zero-shot style prompts, caches warmed; prints and returns them.

    "ascii" prompts take the fast cleaning path; "accented" ones go through ftfy (~50 us each in
    CPython). Every prompt is distinct (a number in it), so the text cache never hits; words do.
    """
    tok = tokenizer or get_tokenizer()
    rates = {}
    for name, template in (("ascii", "a photo of a {}, number {}."), ("accented", "une photo d'un {} nº {}.")):
        prompts = [template.format(_BENCH_LABELS[i % len(_BENCH_LABELS)], i) for i in range(n)]
        tok.tokenize([template.format(w, "x") for w in _BENCH_LABELS])  # warm caches, import ftfy
        start = time.perf_counter()
        tok.tokenize(prompts)  # (n, 77)
        rates[name] = n / (time.perf_counter() - start)
        print(f"tokenize ({name}, {n} distinct prompts): {rates[name]:,.0f} prompts/s")
    return rates
