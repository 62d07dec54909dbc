"""Token ids for SentencePiece families (SigLIP), as transformers' SiglipTokenizer gives them.

A manifest's `tokenizer` rules (pyapp.pipeline.TextRules) say what to do around the SentencePiece
model (pyapp.spiece); the order of the steps is transformers 5.25's (`SiglipTokenizer` called with
`padding="max_length", truncation=True`), the reference a SigLIP user's embeddings come from:

1. "▁" is put in front of the text, and every "▁" in it becomes a space.
2. The special tokens (the model's end-of-text and unknown pieces, "</s>" and "<unk>") are cut out
   where they are typed, and the whitespace beside them is dropped: they stay those ids.
3. Every other stretch: lowercased (rule `lowercase`), ASCII punctuation removed (rule
   `strip_punctuation`, Python's `string.punctuation`; other scripts' punctuation stays), runs of
   whitespace made one space, stripped. Then encoded with the unknown piece in front, whose pieces
   are dropped again: SentencePiece's dummy prefix then lands on that piece, not on the text.
4. A lone "▁" before a special token is dropped.
5. Cut to context_length - 1 ids, end-of-text appended (unless the ids already end with it), padded
   with pad_id to context_length. SigLIP's text tower reads the last position, so the padding is
   part of the model: these rows are never cut short.

Plain Python (no numpy): it runs in Pyodide before numpy has loaded.
"""

from __future__ import annotations

import re
import string
from typing import Sequence

from .errors import TextInputError
from .pipeline import TextRules
from .spiece import SentencePiece

__all__ = ["SentencePieceTokenizer"]

WORD_START = "\u2581"  # SentencePiece's whitespace mark
_PUNCTUATION = str.maketrans("", "", string.punctuation)
_WHITESPACE_RUN = re.compile(r"\s+")


class SentencePieceTokenizer:
    """A SentencePiece model and a manifest's rules -> (n, context_length) id rows."""

    def __init__(self, model: SentencePiece, rules: TextRules):
        if rules.kind != "sentencepiece":
            raise ValueError(f"rules for a {rules.kind} tokenizer, not sentencepiece")
        self.model = model
        self.rules = rules
        for name in ("eos_id", "pad_id"):
            value = getattr(rules, name)
            if not 0 <= value < model.vocab_size:
                raise TextInputError(f"tokenizer.{name} {value} is not an id of this {model.vocab_size}-piece model")
        self._unk = model.id_to_piece(model.unk_id)
        self._unk_pieces = len(model.encode_as_pieces(self._unk))
        # The typed special tokens, longest first so that one never cuts another short.
        specials = {model.id_to_piece(rules.eos_id): rules.eos_id, self._unk: model.unk_id}
        self._special_ids = specials
        self._special_split = re.compile(
            "(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")"
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, rules: TextRules) -> SentencePieceTokenizer:
        return cls(SentencePiece.from_bytes(data), rules)

    def _canonical(self, text: str) -> str:
        if self.rules.lowercase:
            text = text.lower()
        if self.rules.strip_punctuation:
            text = text.translate(_PUNCTUATION)
        return _WHITESPACE_RUN.sub(" ", text).strip()

    def _stretch(self, text: str) -> list[str]:
        pieces = self.model.encode_as_pieces(self._unk + self._canonical(text))
        return pieces[self._unk_pieces:] if len(pieces) >= self._unk_pieces else pieces

    def pieces(self, text: str) -> list[str]:
        """The text's pieces before ids, end-of-text and padding (steps 1-4)."""
        if not isinstance(text, str):
            raise TextInputError(f"expected text, got {type(text).__name__}")
        parts = self._special_split.split(WORD_START + text.replace(WORD_START, " "))
        # Special tokens take the whitespace on both sides with them.
        for i in range(1, len(parts), 2):
            parts[i - 1] = parts[i - 1].rstrip()
            parts[i + 1] = parts[i + 1].lstrip()
        out: list[str] = []
        for i, part in enumerate(parts):
            if i % 2:
                out.append(part)
            elif part:
                out.extend(self._stretch(part))
        if len(out) > 1 and out[0] == WORD_START and out[1] in self._special_ids:
            out = out[1:]
        return out

    def ids(self, text: str) -> list[int]:
        """One row: context_length ids, ending in end-of-text (or cut) and padded."""
        n = self.rules.context_length
        ids = [self._special_ids[p] if p in self._special_ids else self.model.piece_to_id(p)
               for p in self.pieces(text)][: n - 1]
        if not ids or ids[-1] != self.rules.eos_id:
            ids.append(self.rules.eos_id)
        return ids + [self.rules.pad_id] * (n - len(ids))

    def rows(self, texts: str | Sequence[str]) -> list[list[int]]:
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)):
            raise TextInputError(f"expected a text or a list of texts, got {type(texts).__name__}")
        return [self.ids(t) for t in texts]
