"""No worker of ours starts another: the page starts them all (README, Architecture, "Workers").

Firefox sometimes never returns from `new Worker()` called inside a worker, which wedges the
calling worker for good; onnxruntime-web's thread pool is the one nested start left, and the
runtime watches it (tests/browser/test_onnx_watchdog.py). So no module that a worker script loads,
through its static imports, may start a worker: no `new Worker(`, no call of rpc.js's
`spawnWorker` (its definition is the one allowed `new Worker(` there).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

import pytest

from test_import_layers import IMPORT_PATTERNS, WEB, imports_of

STATIC_IMPORTS = IMPORT_PATTERNS[:3]
# A worker URL: the worker scripts the page modules name (runtime.js from the server base,
# the search page's from import.meta.url).
WORKER_URLS = IMPORT_PATTERNS[3:]
SPAWN_DEFINITION = re.compile(r"export function spawnWorker\(.*?\n\}\n", re.S)
STARTS = re.compile(r"new Worker\(|\bspawnWorker\(")
COMMENTS = re.compile(r"^\s*//.*$", re.M)


def sources() -> dict[str, str]:
    return {f.relative_to(WEB).as_posix(): f.read_text(encoding="utf-8") for f in sorted(WEB.rglob("*.js"))}


def worker_scripts(src: dict[str, str]) -> set[str]:
    found = set()
    for path, code in src.items():
        for pattern in WORKER_URLS:
            if pattern.search(code):
                found.update(imports_of(path, "\n".join(m.group(0) for m in pattern.finditer(code))))
    return found


def static_closure(entry: str, src: dict[str, str]) -> set[str]:
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        if path in seen or path not in src:
            continue
        seen.add(path)
        code = src[path]
        spec_only = "\n".join(m.group(0) for p in STATIC_IMPORTS for m in p.finditer(code))
        todo.extend(imports_of(path, spec_only))
    return seen


def starts_in(code: str) -> list[str]:
    return STARTS.findall(SPAWN_DEFINITION.sub("", COMMENTS.sub("", code)))


def nested_starts(src: dict[str, str]) -> list[str]:
    found = []
    for entry in sorted(worker_scripts(src)):
        for module in sorted(static_closure(entry, src)):
            if starts_in(src[module]):
                found.append(f"{module} (loaded by the worker {entry}) starts a worker")
    return found


def test_no_worker_of_ours_starts_another():
    src = sources()
    workers = worker_scripts(src)
    # The check sees every worker we start, and the modules they load.
    assert {"js/runtime/py-worker.js", "js/runtime/ort-worker.js", "js/runtime/snapshot-worker.js",
            "js/search/vector-worker.js", "js/search/zero-shot-thread.js"} <= workers, workers
    assert "js/runtime/rpc.js" in static_closure("js/runtime/py-worker.js", src)
    assert "js/search/zero-shot-helper.js" in static_closure("js/search/vector-worker.js", src)
    # The starts are in page modules.
    assert starts_in(src["js/runtime/runtime.js"]) and starts_in(src["js/search/vector-client.js"])
    assert nested_starts(src) == []


@pytest.mark.parametrize(
    "module, code",
    [
        # What the search worker did before: its zero-shot thread started from inside it.
        ("js/search/zero-shot-helper.js",
         "const w = new Worker(new URL('./zero-shot-thread.js', import.meta.url), { type: 'module' });"),
        # What the Python worker did before: its snapshot worker started from inside it.
        ("js/runtime/py-worker.js", "worker = spawnWorker(new URL('./snapshot-worker.js', import.meta.url), 'x');"),
    ],
)
def test_the_check_catches_a_nested_start(module, code):
    src = sources()
    src[module] += "\n" + code + "\n"
    found = nested_starts(src)
    assert found and all(module in line for line in found), found
