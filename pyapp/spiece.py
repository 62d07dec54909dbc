"""SentencePiece tokenizer (SigLIP's spiece.model): same ids as `sentencepiece`'s
SentencePieceProcessor.encode(text) with default options (no sampling, no added bos/eos).

Standard library only, so it runs unchanged in Pyodide, where the `sentencepiece` wheel does not.
Written from the file format and from the library's observed behaviour, which
tests/pyapp/test_spiece.py checks string by string against the library itself.

References:
  [MP] sentencepiece_model.proto: ModelProto, SentencePiece, TrainerSpec, NormalizerSpec: field
       numbers, types and defaults.
  [DA] darts-clone's double array (the trie inside NormalizerSpec.precompiled_charsmap).

Pipeline: text -> normalize (charsmap, whitespace) -> model (unigram Viterbi, BPE merges, word or
char lookup) -> unknowns merged or spelled as bytes -> ids.

Public API: SentencePiece (.from_bytes, .encode, .encode_as_pieces, .decode, .normalize,
.piece_to_id, .id_to_piece, .vocab_size, .unk_id, .bos_id, .eos_id, .pad_id, .model_type),
SentencePieceModelError.
"""

from __future__ import annotations

import heapq
import operator
import struct
import sys
from array import array
from collections.abc import Iterable

from .errors import TextInputError, VocabError

SPACE = "\u2581"  # "▁": a space in pieces, once escaped by the normalizer


class SentencePieceModelError(VocabError):
    """The bytes are not a SentencePiece model this module can use (damaged, truncated, another
    file type, or a model kind it does not implement). The message names the problem."""

    code = "spiece_model_error"


# --- protobuf wire format ---------------------------------------------------------------------

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_WIRE_NAMES = {_VARINT: "varint", _FIXED64: "64-bit", _LENGTH: "length-delimited", _FIXED32: "32-bit"}


def _read_varint(data: bytes, pos: int, where: str) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise SentencePieceModelError(f"{where}: the data ends inside a number (truncated file?)")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise SentencePieceModelError(f"{where}: a number longer than 10 bytes at byte {pos} (not protobuf)")


class _Message:
    """The fields of one protobuf message, by number: what [MP] needs, nothing decoded eagerly.

    A field seen twice keeps its last value, and a sub-message seen twice is the merge of both, as
    protobuf parsers do (parsing the concatenated bytes is that merge)."""

    def __init__(self, data: bytes, where: str, names: dict[int, str] | None = None):
        self.where = where
        self.fields: dict[int, list[tuple[int, object]]] = {}
        pos, end = 0, len(data)
        while pos < end:
            key = data[pos]
            if key < 0x80:  # one-byte keys and lengths are most of a vocab: skip the call
                pos += 1
            else:
                key, pos = _read_varint(data, pos, where)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise SentencePieceModelError(f"{where}: field number 0 at byte {pos} (not protobuf)")
            if wire == _VARINT:
                value, pos = _read_varint(data, pos, where)
            elif wire in (_FIXED64, _FIXED32, _LENGTH):
                if wire == _FIXED32:
                    size = 4
                elif wire == _FIXED64:
                    size = 8
                elif pos < end and data[pos] < 0x80:
                    size = data[pos]
                    pos += 1
                else:
                    size, pos = _read_varint(data, pos, where)
                if pos + size > end:
                    field = f"field {number}" + (f" ({names[number]})" if names and number in names else "")
                    raise SentencePieceModelError(
                        f"{where}: {field} needs {size} bytes at byte {pos}, only {end - pos} left "
                        "(truncated file?)")
                value = data[pos : pos + size]
                pos += size
            else:  # 3 and 4 are groups, unused since proto2's early days; 6 and 7 do not exist
                raise SentencePieceModelError(f"{where}: wire type {wire} at byte {pos} (not protobuf)")
            self.fields.setdefault(number, []).append((wire, value))

    def _values(self, number: int, wire: int, name: str) -> list:
        values = self.fields.get(number, [])
        for got, _ in values:
            if got != wire:
                raise SentencePieceModelError(
                    f"{self.where}.{name} (field {number}) is {_WIRE_NAMES.get(got, got)}, expected "
                    f"{_WIRE_NAMES[wire]}: not a SentencePiece model, or a damaged one")
        return [value for _, value in values]

    def int32(self, number: int, name: str, default: int) -> int:
        values = self._values(number, _VARINT, name)
        if not values:
            return default
        value = values[-1] & 0xFFFFFFFF  # negative int32s are written as 10-byte varints
        return value - (1 << 32) if value >= 1 << 31 else value

    def bool(self, number: int, name: str, default: bool) -> bool:
        values = self._values(number, _VARINT, name)
        return bool(values[-1]) if values else default

    def float(self, number: int, name: str, default: float) -> float:
        values = self._values(number, _FIXED32, name)
        return _FLOAT.unpack(values[-1])[0] if values else default

    def bytes(self, number: int, name: str) -> bytes:
        values = self._values(number, _LENGTH, name)
        return values[-1] if values else b""

    def string(self, number: int, name: str, default: str = "") -> str:
        values = self._values(number, _LENGTH, name)
        return self._text(values[-1], name) if values else default

    def strings(self, number: int, name: str) -> list[str]:
        return [self._text(v, name) for v in self._values(number, _LENGTH, name)]

    def message(self, number: int, name: str) -> _Message:
        return _Message(b"".join(self._values(number, _LENGTH, name)), f"{self.where}.{name}")

    def messages(self, number: int, name: str) -> list[bytes]:
        return self._values(number, _LENGTH, name)

    def _text(self, raw: bytes, name: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SentencePieceModelError(f"{self.where}.{name} is not UTF-8 text: {exc}") from None


# --- model file -------------------------------------------------------------------------------

# [MP] SentencePiece.Type and TrainerSpec.ModelType
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}

_UNK_PENALTY = 10.0  # an unknown character costs this much more than the rarest piece
_FLOAT = struct.Struct("<f")


def _read_piece(raw: bytes, n: int) -> tuple[str, float, int]:
    """(piece, score, type) of one SentencePiece message."""
    # Fast path for the layout writers produce (piece, score, then type unless NORMAL): a 32,000
    # piece vocab loads 3x faster than through _Message. Anything else takes the general path.
    if len(raw) > 2 and raw[0] == 0x0A and raw[1] < 0x80:
        end = 2 + raw[1]
        tail = len(raw) - end
        if raw[end : end + 1] == b"\x15" and (tail == 5 or (tail == 7 and raw[end + 5] == 0x18 and raw[end + 6] < 0x80)):
            try:
                piece = raw[2:end].decode("utf-8")
            except UnicodeDecodeError:
                pass  # the general path says so
            else:
                return piece, _FLOAT.unpack_from(raw, end + 1)[0], raw[end + 6] if tail == 7 else NORMAL
    message = _Message(raw, f"ModelProto.pieces[{n}]", {1: "piece", 2: "score", 3: "type"})
    return message.string(1, "piece"), message.float(2, "score", 0.0), message.int32(3, "type", NORMAL)


_MODEL_FIELDS = {1: "pieces", 2: "trainer_spec", 3: "normalizer_spec", 4: "self_test_data", 5: "denormalizer_spec"}


class _Spec:
    """The ModelProto fields that change what encode() and decode() give."""

    def __init__(self, data: bytes):
        model = _Message(data, "ModelProto", _MODEL_FIELDS)
        self.pieces = [_read_piece(raw, n) for n, raw in enumerate(model.messages(1, "pieces"))]
        trainer = model.message(2, "trainer_spec")
        model_type = trainer.int32(3, "model_type", 1)
        if model_type not in _MODEL_TYPES:
            raise SentencePieceModelError(f"trainer_spec.model_type is {model_type}, not one of {_MODEL_TYPES}")
        self.model_type = _MODEL_TYPES[model_type]
        self.byte_fallback = trainer.bool(35, "byte_fallback", False)
        self.treat_whitespace_as_suffix = trainer.bool(24, "treat_whitespace_as_suffix", False)
        self.unk_surface = trainer.string(44, "unk_surface", " \u2047 ")
        self.special_pieces = {
            "bos": trainer.string(46, "bos_piece", "<s>"),
            "eos": trainer.string(47, "eos_piece", "</s>"),
            "pad": trainer.string(48, "pad_piece", "<pad>"),
        }
        normalizer = model.message(3, "normalizer_spec")
        self.charsmap = normalizer.bytes(2, "precompiled_charsmap")
        self.add_dummy_prefix = normalizer.bool(3, "add_dummy_prefix", True)
        self.remove_extra_whitespaces = normalizer.bool(4, "remove_extra_whitespaces", True)
        self.escape_whitespaces = normalizer.bool(5, "escape_whitespaces", True)


# --- normalizer -------------------------------------------------------------------------------

_UNIT = "I" if array("I").itemsize == 4 else "L"


def _utf8_length(lead: int) -> int:
    return 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


class _Charsmap:
    """NormalizerSpec.precompiled_charsmap: what `nmt_nfkc`, `nfkc` etc. compile to.

    Layout: uint32 LE trie size, the trie ([DA]: uint32 LE units, keys are UTF-8 byte strings),
    then the replacements, NUL-terminated UTF-8, each trie value an offset into them."""

    def __init__(self, blob: bytes):
        where = "normalizer_spec.precompiled_charsmap"
        if len(blob) < 4:
            raise SentencePieceModelError(f"{where} is {len(blob)} bytes, too short to hold its trie size")
        trie_size = int.from_bytes(blob[:4], "little")
        if trie_size % 4 or trie_size == 0 or 4 + trie_size > len(blob):
            raise SentencePieceModelError(
                f"{where} says its trie is {trie_size} bytes, but it holds {len(blob) - 4} (damaged model)")
        units = array(_UNIT, blob[4 : 4 + trie_size])
        if sys.byteorder == "big":
            units.byteswap()
        self.units = units.tolist()  # a list indexes faster than an array
        self.replacements = blob[4 + trie_size :]
        self.root = self._offset(self.units[0])
        self._replacement_cache: dict[int, bytes] = {}

    @staticmethod
    def _offset(unit: int) -> int:
        # [DA]: 21 bits of offset, scaled by 256 when bit 9 is set.
        return (unit >> 10) << ((unit & 0x200) >> 6)

    def longest_match(self, data: bytes, pos: int) -> tuple[int, bytes | None]:
        """(length, replacement) of the longest rule that `data[pos:]` starts with; (0, None) if none."""
        units = self.units
        node = self.root
        best_end, best_value = pos, -1
        try:
            for end in range(pos, len(data)):
                byte = data[end]
                node ^= byte
                unit = units[node]
                if unit & 0x800000FF != byte:  # the label, with the leaf bit so a leaf never matches
                    break
                node ^= (unit >> 10) << ((unit & 0x200) >> 6)
                if unit & 0x100:  # a key ends here; its value sits in the unit it points to
                    best_end, best_value = end + 1, units[node] & 0x7FFFFFFF
        except IndexError:
            raise SentencePieceModelError("normalizer_spec.precompiled_charsmap: its trie points outside itself "
                                          "(damaged model)") from None
        if best_value < 0:
            return 0, None
        return best_end - pos, self._replacement(best_value)

    def ascii_unit(self, byte: int) -> bytes | None:
        """What ASCII `byte` normalizes to when an ASCII byte or nothing follows it; None where a
        rule goes on from it with an ASCII byte (then only the walk knows)."""
        units = self.units
        node = self.root ^ byte
        if node >= len(units):
            return None  # a damaged trie: the walk raises
        if units[node] & 0x800000FF != byte:
            return bytes([byte])  # no rule starts with it
        unit = units[node]
        node ^= self._offset(unit)
        if any(node ^ c < len(units) and units[node ^ c] & 0x800000FF == c for c in range(0x80)):
            return None
        return self._replacement(units[node] & 0x7FFFFFFF) if unit & 0x100 else bytes([byte])

    def _replacement(self, offset: int) -> bytes:
        out = self._replacement_cache.get(offset)
        if out is None:
            end = self.replacements.find(b"\0", offset)
            if offset >= len(self.replacements) or end < 0:
                raise SentencePieceModelError(
                    f"normalizer_spec.precompiled_charsmap: replacement offset {offset} is outside its "
                    f"{len(self.replacements)} bytes (damaged model)")
            out = self._replacement_cache[offset] = self.replacements[offset:end]
        return out


class _Normalizer:
    def __init__(self, spec: _Spec, user_symbols: list[str]):
        self.charsmap = _Charsmap(spec.charsmap) if spec.charsmap else None
        self.add_dummy_prefix = spec.add_dummy_prefix
        self.remove_extra_whitespaces = spec.remove_extra_whitespaces
        self.space = SPACE.encode() if spec.escape_whitespaces else b" "
        self.whitespace_as_suffix = spec.treat_whitespace_as_suffix
        # User-defined symbols are copied as they are, never normalized; the longest one wins.
        self.user_symbols = {s.encode() for s in user_symbols}
        self.user_first_bytes = {s[0] for s in self.user_symbols}
        self.user_max = max(map(len, self.user_symbols), default=0)
        # Most text is ASCII: per ASCII byte, its normalized form when ASCII follows (the common
        # case), known without walking the trie; None where the general path must decide.
        self.ascii = [self.charsmap.ascii_unit(b) if self.charsmap else bytes([b]) for b in range(0x80)]
        for b in self.user_first_bytes:
            if b < 0x80:
                self.ascii[b] = None

    def _next(self, data: bytes, pos: int) -> tuple[bytes, int]:
        """(normalized text, bytes consumed) of the next unit of `data` at pos."""
        byte = data[pos]
        if byte < 0x80 and (pos + 1 == len(data) or data[pos + 1] < 0x80):
            unit = self.ascii[byte]
            if unit is not None:
                return unit, 1
        if self.user_symbols and data[pos] in self.user_first_bytes:
            for end in range(min(len(data), pos + self.user_max), pos, -1):
                if data[pos:end] in self.user_symbols:
                    return data[pos:end], end - pos
        if self.charsmap is not None:
            length, replacement = self.charsmap.longest_match(data, pos)
            if length:
                return replacement, length
        length = _utf8_length(data[pos])
        return data[pos : pos + length], length

    def normalize(self, text: str) -> str:
        data = _utf8(text)
        pos, end = 0, len(data)
        if self.remove_extra_whitespaces:
            # Leading units that normalize to exactly one space are dropped.
            while pos < end:
                piece, used = self._next(data, pos)
                if piece != b" ":
                    break
                pos += used
        if pos == end:
            return ""
        out = bytearray()
        space = self.space
        if self.add_dummy_prefix and not self.whitespace_as_suffix:
            out += space
        previous_space = self.remove_extra_whitespaces
        while pos < end:
            piece, used = self._next(data, pos)
            pos += used
            if previous_space:
                piece = piece.lstrip(b" ")
            if piece:
                out += piece.replace(b" ", space) if space != b" " else piece
                previous_space = self.remove_extra_whitespaces and piece.endswith(b" ")
        if self.remove_extra_whitespaces:
            while out.endswith(space):
                del out[-len(space) :]
        if self.add_dummy_prefix and self.whitespace_as_suffix:
            out += space
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError:
            raise SentencePieceModelError("normalizer_spec.precompiled_charsmap: a replacement is not UTF-8 "
                                          "(damaged model)") from None


# --- models -----------------------------------------------------------------------------------


class _Unigram:
    """Best-scoring segmentation (Viterbi) over every piece matching the text.

    The library sums scores in float32; so do we (rounding each sum), or ties and near-ties
    would break the other way (they are common: "..." is "." + ".." or ".." + "."). A
    user-defined piece scores 0.1 per UTF-8 byte beyond its first, found by fitting the library's
    choices (it beats any learned piece, whose scores are log-probabilities < 0); an unknown
    character scores the rarest piece's score minus 10."""

    def __init__(self, sp: SentencePiece):
        self.unk_id = sp.unk_id
        usable = {p: i for p, i in sp._in_text.items() if sp._types[i] != UNUSED}
        # Every piece and every prefix of one (-1), so the search from a position stops at the
        # first substring no piece starts with. (A dict of substrings builds 4x faster than a trie
        # of nested dicts, and matches as fast.)
        self.prefixes = dict.fromkeys({p[:k] for p in usable for k in range(1, len(p))}, -1)
        self.prefixes.update(usable)
        normal = [sp._scores[i] for i in range(len(sp._types)) if sp._types[i] == NORMAL]
        self.scores = sp._scores
        self.user_scores = {pid: len(piece.encode()) * 0.1 - 0.1
                            for piece, pid in usable.items() if sp._types[pid] == USER_DEFINED}
        self.unk_score = _f32(min(normal, default=3.4028234663852886e38) - _UNK_PENALTY)

    def encode(self, text: str) -> list[tuple[str, int]]:
        n = len(text)
        if not n:
            return []
        scores, user_scores, prefixes = self.scores, self.user_scores, self.prefixes
        f32 = _F32  # rounding inline: f32[0] = x; x = f32[0] (a call per candidate costs 10%)
        # For each end position: best path score, where its last piece starts, that piece's id.
        best = [0.0] * (n + 1)
        start_of = [-1] * (n + 1)
        id_of = [-1] * (n + 1)
        for i in range(n):
            base = best[i]
            has_single = False
            for end in range(i + 1, n + 1):
                pid = prefixes.get(text[i:end])
                if pid is None:
                    break
                if pid < 0:
                    continue
                f32[0] = (user_scores.get(pid, scores[pid]) if user_scores else scores[pid]) + base
                score = f32[0]
                # Strictly better only: on a tie the piece found first (the longest one) stays.
                if start_of[end] < 0 or score > best[end]:
                    best[end], start_of[end], id_of[end] = score, i, pid
                if end == i + 1:
                    has_single = True
            if not has_single:
                score = _f32(self.unk_score + base)
                if start_of[i + 1] < 0 or score > best[i + 1]:
                    best[i + 1], start_of[i + 1], id_of[i + 1] = score, i, self.unk_id
        out = []
        end = n
        while end > 0:
            begin = start_of[end]
            out.append((text[begin:end], id_of[end]))
            end = begin
        out.reverse()
        return out


class _Bpe:
    """Merges adjacent symbols, the highest-scoring merge (the earliest learned) first, the
    leftmost of equals first, until no merged pair is a piece. User-defined symbols are never
    merged. A symbol that ends as an UNUSED piece is split back, recursively, into the halves of
    the last pair pushed that made it."""

    def __init__(self, sp: SentencePiece):
        self.sp = sp
        self.scores = sp._scores

    def encode(self, text: str) -> list[tuple[str, int]]:
        sp = self.sp
        symbols = sp._split_user_symbols(text)
        frozen = [s in sp._user_symbols for s in symbols]
        n = len(symbols)
        if not n:
            return []
        pieces, types, scores = sp._in_text, sp._types, self.scores
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        heap: list[tuple[float, int, int, int]] = []
        unused_halves: dict[str, tuple[str, str]] = {}

        def push(left: int, right: int) -> None:
            if left < 0 or right < 0 or frozen[left] or frozen[right]:
                return
            merged = symbols[left] + symbols[right]
            pid = pieces.get(merged)
            if pid is None:
                return
            heapq.heappush(heap, (-scores[pid], left, right, len(merged)))
            if types[pid] == UNUSED:
                unused_halves[merged] = (symbols[left], symbols[right])

        for i in range(n - 1):
            push(i, i + 1)
        while heap:
            _, left, right, size = heapq.heappop(heap)
            # Stale entries: a side already merged away, or grown since the pair was pushed.
            if not symbols[left] or not symbols[right] or len(symbols[left]) + len(symbols[right]) != size:
                continue
            symbols[left] += symbols[right]
            symbols[right] = ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            push(prev[left], left)
            push(left, nxt[left])

        out: list[tuple[str, int]] = []
        unk = sp.unk_id

        def emit(symbol: str) -> None:
            pid = pieces.get(symbol, unk)
            halves = unused_halves.get(symbol) if types[pid] == UNUSED else None
            if halves is None:
                out.append((symbol, pid))
            else:
                emit(halves[0])
                emit(halves[1])

        i = 0
        while i >= 0:
            emit(symbols[i])
            i = nxt[i]
        return out


class _Word:
    """Words, each a piece or unknown. A word starts at each U+2581, even for a model trained with
    treat_whitespace_as_suffix (the library's encoder ignores that flag here)."""

    def __init__(self, sp: SentencePiece):
        self.sp = sp

    def encode(self, text: str) -> list[tuple[str, int]]:
        words = text.split(SPACE)
        out = [words[0]] if words[0] else []
        out += [SPACE + w for w in words[1:]]
        # Only pieces text can be cut into: a word "</s>" is unknown, not the control piece.
        pieces, unk = self.sp._in_text, self.sp.unk_id
        return [(w, pieces.get(w, unk)) for w in out]


class _Char:
    """One piece per character (or user-defined symbol)."""

    def __init__(self, sp: SentencePiece):
        self.sp = sp

    def encode(self, text: str) -> list[tuple[str, int]]:
        pieces, unk = self.sp._in_text, self.sp.unk_id
        return [(s, pieces.get(s, unk)) for s in self.sp._split_user_symbols(text)]


_MODELS = {"unigram": _Unigram, "bpe": _Bpe, "word": _Word, "char": _Char}

_F32 = array("f", [0.0])


def _f32(x: float) -> float:
    """x rounded to float32, as C++ stores a float. (Rounding the exact double sum of two floats
    gives the float sum: double has more than 2 x 24 + 2 bits.)"""
    _F32[0] = x
    return _F32[0]


# --- the tokenizer ----------------------------------------------------------------------------


class SentencePiece:
    """A loaded SentencePiece model. Build with from_bytes."""

    def __init__(self, spec: _Spec):
        self._spec = spec
        if not spec.pieces:
            raise SentencePieceModelError("it has no pieces (another kind of file, or an empty model)")
        self._pieces = [p for p, _, _ in spec.pieces]
        self._scores = [_f32(s) for _, s, _ in spec.pieces]
        self._types = [t for _, _, t in spec.pieces]
        self._in_text: dict[str, int] = {}  # pieces text can be cut into: normal, user-defined, unused
        self._reserved: dict[str, int] = {}  # pieces only ids make: unknown, control, byte
        self._byte_ids: list[int] = [-1] * 256
        unk_ids = []
        for i, (piece, _, kind) in enumerate(spec.pieces):
            if kind not in (NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE):
                raise SentencePieceModelError(f"piece {i} ({piece!r}) has type {kind}, not a SentencePiece type")
            if not piece:
                raise SentencePieceModelError(f"piece {i} is empty (damaged model)")
            table = self._in_text if kind in (NORMAL, USER_DEFINED, UNUSED) else self._reserved
            if piece in self._in_text or piece in self._reserved:
                raise SentencePieceModelError(f"piece {i} ({piece!r}) is defined twice (damaged model)")
            table[piece] = i
            if kind == UNKNOWN:
                unk_ids.append(i)
            elif kind == BYTE:
                if not spec.byte_fallback:
                    raise SentencePieceModelError(f"piece {i} ({piece!r}) is a byte piece, but byte_fallback is off")
                value = _byte_value(piece)
                if value is None:
                    raise SentencePieceModelError(f"piece {i} ({piece!r}) is a byte piece not written <0xNN>")
                self._byte_ids[value] = i
        if len(unk_ids) != 1:
            raise SentencePieceModelError(
                f"the model defines {len(unk_ids)} unknown pieces, expected exactly one (damaged model)")
        self._unk_id = unk_ids[0]
        if not self._in_text:
            raise SentencePieceModelError("it has no piece text can be cut into, only special ones (damaged model)")
        if spec.byte_fallback and -1 in self._byte_ids:
            missing = self._byte_ids.index(-1)
            raise SentencePieceModelError(f"byte_fallback is on but piece <0x{missing:02X}> is missing")
        self._user_symbols = {p for p, i in self._in_text.items() if self._types[i] == USER_DEFINED}
        self._user_max = max((len(s) for s in self._user_symbols), default=0)
        self._normalizer = _Normalizer(spec, sorted(self._user_symbols))
        self._model = _MODELS[spec.model_type](self)

    # construction

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> SentencePiece:
        """From a .model file's bytes (a serialized ModelProto), e.g. SigLIP's spiece.model."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise SentencePieceModelError(f"a SentencePiece model must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if not data:
            raise SentencePieceModelError("the SentencePiece model is empty (0 bytes)")
        try:
            return cls(_Spec(data))
        except SentencePieceModelError as exc:
            raise SentencePieceModelError(f"not a usable SentencePiece model ({len(data):,} bytes): {exc}") from None

    # properties

    @property
    def vocab_size(self) -> int:
        return len(self._pieces)

    @property
    def model_type(self) -> str:
        """'unigram', 'bpe', 'word' or 'char'."""
        return self._spec.model_type

    @property
    def unk_id(self) -> int:
        return self._unk_id

    @property
    def bos_id(self) -> int:
        """-1 when the model has none."""
        return self._control_id("bos")

    @property
    def eos_id(self) -> int:
        return self._control_id("eos")

    @property
    def pad_id(self) -> int:
        return self._control_id("pad")

    def _control_id(self, name: str) -> int:
        pid = self._reserved.get(self._spec.special_pieces[name], -1)
        return pid if pid >= 0 and self._types[pid] == CONTROL else -1

    # pieces

    def piece_to_id(self, piece: str) -> int:
        """The piece's id, or unk_id for a string that is no piece."""
        pid = self._reserved.get(piece)
        if pid is None:
            pid = self._in_text.get(piece, self._unk_id)
        return pid

    def id_to_piece(self, piece_id: int) -> str:
        return self._pieces[self._check_id(piece_id)]

    def _check_id(self, piece_id: object) -> int:
        try:
            value = operator.index(piece_id)  # ints, numpy's too; not floats
        except TypeError:
            value = None
        if isinstance(piece_id, bool) or value is None or not 0 <= value < len(self._pieces):
            raise TextInputError(f"piece id must be an int in [0, {len(self._pieces)}), got {piece_id!r}.")
        return value

    def _split_user_symbols(self, text: str) -> list[str]:
        """Characters, except that the longest user-defined symbol starting at a place is one."""
        if not self._user_symbols:
            return list(text)
        out, i, n = [], 0, len(text)
        while i < n:
            for end in range(min(n, i + self._user_max), i + 1, -1):
                if text[i:end] in self._user_symbols:
                    break
            else:
                end = i + 1
            out.append(text[i:end])
            i = end
        return out

    # encoding

    def normalize(self, text: str) -> str:
        """The text the model cuts into pieces (NFKC etc., spaces as U+2581), as the library's normalize()."""
        return self._normalizer.normalize(_check_text(text))

    def _encode(self, text: str) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        unk = self._unk_id
        previous_unk = False
        types = self._types
        for piece, pid in self._model.encode(self.normalize(text)):
            if types[pid] == UNUSED:
                pid = unk  # an unused piece left whole (a lone character) is unknown
            if pid == unk:
                if self._spec.byte_fallback:
                    # Spelled as its UTF-8 bytes, one <0xNN> piece each.
                    out.extend((f"<0x{b:02X}>", self._byte_ids[b]) for b in piece.encode())
                elif previous_unk:
                    out[-1] = (out[-1][0] + piece, unk)  # a run of unknowns is one unknown
                else:
                    out.append((piece, pid))
                previous_unk = True
            else:
                out.append((piece, pid))
                previous_unk = False
        return out

    def encode(self, text: str) -> list[int]:
        """Ids of one text, as SentencePieceProcessor.encode(text)."""
        return [pid for _, pid in self._encode(text)]

    def encode_as_pieces(self, text: str) -> list[str]:
        """Pieces of one text, as SentencePieceProcessor.encode(text, out_type=str): an unknown
        run shows as its normalized text."""
        return [piece for piece, _ in self._encode(text)]

    # decoding

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids, as SentencePieceProcessor.decode(ids): U+2581 back to spaces, the dummy
        prefix's space dropped, control ids silent, unknown ids as ' ⁇ ', runs of byte ids as the
        UTF-8 they spell (U+FFFD for each invalid byte)."""
        if isinstance(ids, (str, bytes, bytearray)) or not isinstance(ids, Iterable):
            raise TextInputError(f"ids must be a list of ints, got {type(ids).__name__}.")
        spec = self._spec
        # The library drops the leading U+2581 of the first piece, and of the next ones while
        # they leave the text empty if extra whitespace is removed; treat_whitespace_as_suffix
        # changes nothing here.
        at_start = spec.add_dummy_prefix or spec.remove_extra_whitespaces
        keep_stripping = spec.remove_extra_whitespaces
        parts: list[str] = []
        pending = bytearray()
        for piece_id in ids:
            pid = self._check_id(piece_id)
            kind = self._types[pid]
            if kind == BYTE:
                pending.append(_byte_value(self._pieces[pid]))
                continue
            if pending:
                parts.append(_decode_utf8(pending))
                pending.clear()
                at_start = False
            if kind == CONTROL:
                continue
            if kind == UNKNOWN:
                text = spec.unk_surface
            else:
                text = self._pieces[pid]
                if at_start and text.startswith(SPACE):
                    text = text[1:]
                text = text.replace(SPACE, " ")
            at_start = at_start and keep_stripping and not text
            parts.append(text)
        if pending:
            parts.append(_decode_utf8(pending))
        return "".join(parts)


def _decode_utf8(raw: bytes | bytearray) -> str:
    """UTF-8 text, each byte of an invalid sequence a U+FFFD of its own (as the library does;
    Python's errors="replace" gives one U+FFFD per maximal invalid run)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out, i = [], 0
    while i < len(raw):
        end = i + _utf8_length(raw[i])
        try:
            out.append(raw[i:end].decode("utf-8"))
            i = end
        except UnicodeDecodeError:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def _byte_value(piece: str) -> int | None:
    """N of a byte piece "<0xNN>" (upper-case hex, as the library writes them), else None."""
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        try:
            value = int(piece[3:5], 16)
        except ValueError:
            return None
        return value if piece == f"<0x{value:02X}>" else None
    return None


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        if isinstance(text, (bytes, bytearray, memoryview)):
            raise TextInputError(f"text must be a str, got {type(text).__name__}: decode it first.")
        raise TextInputError(f"text must be a str, got {type(text).__name__}.")
    return text


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # The library refuses these too (pybind11 cannot convert the str).
        raise TextInputError(
            f"text holds a lone surrogate (U+{ord(text[exc.start]):04X} at {exc.start}), which is not "
            "Unicode text; it cannot be tokenized.") from None
