"""Helpers shared by the model-tool tests (a module, not conftest: test files import it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROCCA = "rocca/openai-clip-js"
ROCCA_IMAGE = "clip-image-vit-32-float32.onnx"
ROCCA_TEXT = "clip-text-vit-32-float32-int32.onnx"
VARIANTS = ("uint8", "int8", "fp16")


def run_cli(*args: str) -> int:
    """`clip-web ...` in-process (importing torch again per subprocess would cost seconds)."""
    from server.cli import main

    return main([str(a) for a in args])


def tiny_ids(n: int = 4, seed: int = 0) -> np.ndarray:
    """Tokenizer-shaped int32 ids: SOT, ordinary ids, EOT at varied positions, zero padding."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((n, 77), dtype=np.int32)  # (n, 77)
    for row, pos in zip(ids, np.linspace(1, 76, n).astype(int)):
        row[0], row[pos] = 49406, 49407
        row[1:pos] = rng.integers(1, 49406, size=pos - 1)
    return ids


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)  # (n, d)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)  # (n,)


def ort_run(path: Path, x: np.ndarray, input_name: str = "input") -> np.ndarray:
    import onnxruntime

    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {input_name: x})[0]


def no_temp_files(folder: Path) -> list[str]:
    """Names under folder that a crashed tool would leave: our temp prefixes and suffixes."""
    return [p.name for p in Path(folder).rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp")
            or ".tmp-" in p.name]


def error_line(stderr: str) -> str:
    """The CLI's error: exactly one `clip-web: error:` line, and the last one on stderr."""
    errors = [line for line in stderr.splitlines() if line.startswith("clip-web: error: ")]
    assert len(errors) == 1 and stderr.rstrip("\n").endswith(errors[0]), stderr
    return errors[0]
