"""SentencePiece models for tests/pyapp/test_spiece.py (and the Pyodide check), trained here with
the `sentencepiece` library on a corpus made here: no download.

    python tests/pyapp/golden/spiece_models.py     # train what is missing, print the paths

Each model is cached as .cache/spiece/<name>-<key>.model, the key hashing its training
parameters, the corpus and the library's version; a change to any of them trains a new file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import struct
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CACHE_DIR = REPO / ".cache" / "spiece"  # not under .cache/reference: that folder is served as a models folder

# Words per script, so every kind of character the hard corpus holds is in training too, some of
# them rare enough (character_coverage < 1) to come out unknown.
WORDS = {
    "en": "the a photo of cat dog bird car truck airplane ship horse frog deer small large red green blue "
          "picture painting drawing close-up blurry bright dark sunny rainy mountain river city street house "
          "people person man woman child playing running eating sitting on in with and under near".split(),
    "fr": "le la les une photo d'un chat chien oiseau voiture été hiver crème brûlée café naïve "
          "garçon français où très élève fenêtre château forêt".split(),
    "de": "der die das ein Foto einer Katze Hund Straße Mädchen Größe schön über Bäume grün Fußball".split(),
    "es": "el la una foto de un gato perro niño año mañana corazón pingüino señor árbol".split(),
    "ru": "фото кошка собака дом улица красный большой маленький".split(),
    "el": "φωτογραφία γάτα σκύλος σπίτι".split(),
    "ja": "猫 犬 写真 東京 日本語 こんにちは ありがとう カメラ".split(),
    "zh": "一只 猫的 照片 中文 北京 汽车 红色".split(),
    "ko": "고양이 사진 강아지 서울".split(),
    "ar": "قطة صورة كلب".split(),
    "he": "חתול תמונה כלב".split(),
    "emoji": ["🐱", "🐶", "🚗", "❤️", "👍", "🎉", "😀"],
}
PUNCT = [".", ",", "!", "?", ":", ";", "...", "-", "(", ")", '"', "'", "/", "#", "%", "&"]


def training_corpus(n: int = 3000, seed: int = 16) -> list[str]:
    """Deterministic sentences: mostly English, some of every other script, digits, emoji,
    capitals, punctuation. CJK sentences have no spaces, as written."""
    rng = random.Random(seed)
    langs = list(WORDS)
    weights = [30 if k == "en" else 3 for k in langs]
    lines = []
    for _ in range(n):
        lang = rng.choices(langs, weights)[0]
        words = [rng.choice(WORDS[lang]) for _ in range(rng.randint(3, 12))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words) + 1), str(rng.randint(0, 10 ** rng.randint(1, 5))))
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS["emoji"]))
        if rng.random() < 0.4:
            words[0] = words[0].capitalize()
        sep = "" if lang in ("ja", "zh") else " "
        lines.append(sep.join(words) + rng.choice(PUNCT))
    return lines


USER_SYMBOLS = ["<sep>", "<mask>", "hello", "ab", "ﬁ", "東京", "🙂", "▁photo"]

# name -> SentencePieceTrainer options. Every model kind and normalizer the format has.
MODELS: dict[str, dict] = {
    # SigLIP's setup: unigram over nmt_nfkc, with T5's ids (pad 0, eos 1, unk 2, no bos).
    "unigram_nmt_nfkc": dict(model_type="unigram", vocab_size=700, normalization_rule_name="nmt_nfkc",
                             pad_id=0, eos_id=1, unk_id=2, bos_id=-1),
    "unigram_identity": dict(model_type="unigram", vocab_size=600, normalization_rule_name="identity"),
    "unigram_byte_fallback": dict(model_type="unigram", vocab_size=800, byte_fallback=True, character_coverage=0.99),
    "unigram_user_symbols": dict(model_type="unigram", vocab_size=700, normalization_rule_name="nmt_nfkc_cf",
                                 user_defined_symbols=USER_SYMBOLS, control_symbols=["<ctl>", "|"], pad_id=3),
    "unigram_nfkc_suffix": dict(model_type="unigram", vocab_size=600, normalization_rule_name="nfkc",
                                treat_whitespace_as_suffix=True, split_digits=True),
    "bpe": dict(model_type="bpe", vocab_size=600),
    "bpe_byte_fallback": dict(model_type="bpe", vocab_size=700, byte_fallback=True, character_coverage=0.995,
                              user_defined_symbols=USER_SYMBOLS),
    "bpe_identity_raw": dict(model_type="bpe", vocab_size=600, normalization_rule_name="identity",
                             add_dummy_prefix=False, remove_extra_whitespaces=False, control_symbols=["|"]),
    "char": dict(model_type="char", vocab_size=300, character_coverage=0.98, user_defined_symbols=["<sep>", "ﬁ"],
                 control_symbols=["|", "e"]),
    "word": dict(model_type="word", vocab_size=300),
}
COMMON = dict(num_threads=1, minloglevel=2)


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint (a negative int32 as its 64-bit two's complement)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    """One protobuf field: a varint for an int, length-delimited for bytes."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def grown(data: bytes, size: int = 32_000, seed: int = 32) -> bytes:
    """A trained model grown to `size` pieces (SigLIP's vocab has 32,000) with made-up words scored
    like rare learned pieces: for load times, and matching against a vocab of that size. Appended
    pieces join the repeated field, wherever they are in the message."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyzéüßñ"
    trained = oracle().SentencePieceProcessor(model_proto=data)
    seen = {trained.id_to_piece(i) for i in range(trained.vocab_size())}
    pieces = []
    while len(seen) < size:
        word = ("\u2581" if rng.random() < 0.6 else "") + "".join(rng.choice(letters) for _ in range(rng.randint(3, 10)))
        if word not in seen:
            seen.add(word)
            score = struct.pack("<f", -rng.uniform(12.0, 20.0))
            pieces.append(field(1, field(1, word.encode()) + varint(2 << 3 | 5) + score))
    return data + b"".join(pieces)


def oracle():
    """The `sentencepiece` module, or ImportError saying how to get it."""
    try:
        import sentencepiece
    except ImportError as exc:
        raise ImportError(
            "the `sentencepiece` library is the oracle for pyapp.spiece's tests: install the test extras "
            "(`.venv/bin/pip install -e '.[test]'`, or `.venv/bin/pip install sentencepiece`)") from exc
    return sentencepiece


def model_path(name: str) -> Path:
    spm = oracle()
    key = json.dumps({"params": MODELS[name], "common": COMMON, "sentencepiece": spm.__version__,
                      "corpus": hashlib.sha256("\n".join(training_corpus()).encode()).hexdigest()}, sort_keys=True)
    return CACHE_DIR / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.model"


def ensure_model(name: str) -> bytes:
    """The model's bytes, trained first if the cache lacks them."""
    path = model_path(name)
    if not path.exists():
        spm = oracle()
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(training_corpus()), model_writer=buf,
                                       **COMMON, **MODELS[name])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)  # atomic: a parallel run reads the old or the new file, whole
    return path.read_bytes()


if __name__ == "__main__":
    for model in MODELS:
        ensure_model(model)
        print(model_path(model))
