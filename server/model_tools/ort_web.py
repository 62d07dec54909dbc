"""Run models in onnxruntime-web's wasm build under Node (ort_web_run.mjs), from Python.

Why Node and not native onnxruntime: the question is whether the *browser's* build has a kernel for
every op in a file, and what it computes. Native onnxruntime has more kernels (and other fusions)
than the wasm build, so a file it runs may still fail in the page. Node runs the same
ort.wasm.min.mjs + ort-wasm-simd-threaded.wasm that `clip-web assets` fetched and `serve` sends.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import ToolError

SCRIPT = Path(__file__).with_name("ort_web_run.mjs")
# What the pages pass to InferenceSession.create (web/js/runtime/ort-backend.js): runs here must
# see the graph the browser sees after its own session-time optimisation.
BROWSER_SESSION = {"graphOptimizationLevel": "extended", "logSeverityLevel": 3}
DTYPES = {"float32": np.float32, "int32": np.int32, "int64": np.int64}


class OrtWebError(ToolError):
    """onnxruntime-web refused or failed a model; `model` is the job's key for it, `op` the op it
    has no kernel for (when that is the reason)."""

    def __init__(self, message: str, model: str | None = None, op: str | None = None):
        super().__init__(message)
        self.model, self.op = model, op


@dataclass
class Feed:
    model: str  # key in the job's models
    input: str
    output: str
    array: np.ndarray


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise ToolError("checking a model in onnxruntime-web needs Node.js (`node` on PATH), which runs "
                        "the browser's wasm build; install it (e.g. apt-get install nodejs) and retry")
    return node


def ort_web_dir(assets_dir: Path | None = None) -> Path:
    """The onnxruntime-web dist folder `clip-web assets` fills (what the browser is served)."""
    from ..assets import ort_dir
    from ..settings import Settings

    folder = ort_dir(Path(assets_dir) if assets_dir else Settings().assets_dir)
    for name in ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"):
        if not (folder / name).is_file():
            raise ToolError(f"{folder / name}: missing (onnxruntime-web's wasm build; run `clip-web assets`)")
    return folder


def _model_entry(model) -> dict:
    """A model path, or (path, session options on top of the job's) for A/Bs of session settings."""
    path, session = (model, {}) if isinstance(model, (str, Path)) else model
    return {"path": str(Path(path).resolve()), "session": dict(session)}


_NO_KERNEL = re.compile(r"Could not find an implementation for (\w+)\((\d+)\) node with name '([^']*)'")
# An op whose domain or schema the build does not know at all (e.g. native CPU's NCHWc ops).
_NO_SCHEMA = re.compile(r"([\w.]+:)?(\w+)\((-?\d+)\) is not a registered function/op")


def run(models: dict[str, Path], feeds: list[Feed], *, threads: int = 1, rounds: int = 0, create_rounds: int = 0,
        session: dict | None = None, assets_dir: Path | None = None, timeout_s: float = 1800) -> dict:
    """Run every feed once (outputs), then `rounds` timed rounds of all feeds in order; returns the
    script's JSON with `outputs` replaced by numpy arrays (float32, as the models give).

    models: {key: path} or {key: (path, {session options on top of `session`})}."""
    node, ort_dir = node_binary(), ort_web_dir(assets_dir)
    with tempfile.TemporaryDirectory(prefix="clip-web-ort-web-") as tmp:
        tmp = Path(tmp)
        spec = []
        for i, f in enumerate(feeds):
            x = np.ascontiguousarray(f.array)
            dtype = next((k for k, v in DTYPES.items() if x.dtype == v), None)
            if dtype is None:
                raise ValueError(f"feed {i}: unsupported dtype {x.dtype}")
            (tmp / f"in{i}.bin").write_bytes(x.astype(x.dtype.newbyteorder("<")).tobytes())
            spec.append({"model": f.model, "input": f.input, "output": f.output, "dtype": dtype,
                         "dims": list(x.shape), "data": str(tmp / f"in{i}.bin"), "out": str(tmp / f"out{i}.bin")})
        job = {"ort_dir": str(ort_dir), "threads": threads, "session": session or BROWSER_SESSION,
               "models": {k: _model_entry(v) for k, v in models.items()}, "create_rounds": create_rounds,
               "feeds": spec, "rounds": rounds}
        (tmp / "job.json").write_text(json.dumps(job))
        try:
            proc = subprocess.run([node, str(SCRIPT), str(tmp / "job.json")], capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise ToolError(f"onnxruntime-web under Node took over {timeout_s:.0f} s") from exc
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        try:
            result = json.loads(lines[-1])
        except (IndexError, ValueError):
            tail = (proc.stderr or proc.stdout).strip()[-1500:]
            raise ToolError(f"onnxruntime-web under Node failed (exit {proc.returncode}): {tail}") from None
        if not result.get("ok"):
            key, message = result.get("model"), result.get("error", "")
            hit = _NO_KERNEL.search(message)
            where = f"{_model_entry(models[key])['path']}" if key in models else "onnxruntime-web"
            if hit:
                op, version, node_name = hit.groups()
                raise OrtWebError(f"{where}: onnxruntime-web {ort_dir.name.removeprefix('ort-')}'s wasm build has "
                                  f"no kernel for {op} (opset {version}, node {node_name!r})", model=key, op=op)
            hit = _NO_SCHEMA.search(message)
            if hit:
                domain, op = (hit.group(1) or "").rstrip(":"), hit.group(2)
                raise OrtWebError(f"{where}: onnxruntime-web {ort_dir.name.removeprefix('ort-')}'s wasm build does "
                                  f"not know the op {domain + ':' if domain else ''}{op}", model=key, op=op)
            raise OrtWebError(f"{where}: onnxruntime-web failed: {message[:600]}", model=key)
        outputs = []
        for i, (f, meta) in enumerate(zip(spec, result["outputs"])):
            if meta["type"] != "float32":
                path = _model_entry(models[f["model"]])["path"]
                raise ToolError(f"{path}: output {f['output']!r} is {meta['type']}, expected float32")
            data = np.fromfile(tmp / f"out{i}.bin", dtype="<f4")
            outputs.append(data.reshape(meta["dims"]))
        result["outputs"] = outputs
        return result
