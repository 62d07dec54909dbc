"""web/js keeps its layers: a module imports from its own folder or from a layer below, never above.

    runtime/   the workers, RPC, onnxruntime-web, model downloads        (lowest)
    clip.js    the public client API
    ui/        components the pages share   |  search/  the search page's data
    widget/    <clip-widget>
    pages/     one module per HTML page; web/widget.js, the public entry (top)

ui/ and search/ share a rank: neither may import the other. Every module under web/ must sit in a
layer, so a new file has to be placed before this passes.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"

# (path prefix relative to web/, layer name, rank); the first prefix that matches wins.
LAYERS = [
    ("js/runtime/", "runtime", 0),
    ("js/clip.js", "client", 1),
    ("js/ui/", "ui", 2),
    ("js/search/", "search", 2),
    ("js/widget/", "widget", 3),
    ("js/pages/", "pages", 4),
    ("widget.js", "entry", 5),
    ("sw.js", "service worker", 5),  # imports nothing: the server fills in its build (server/offline.py)
]

# Static imports and re-exports, literal dynamic imports, and module URLs built from import.meta.url
# or from the server base (how runtime.js names its workers).
IMPORT_PATTERNS = [
    re.compile(r"""^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]""", re.M),
    re.compile(r"""^\s*import\s*['"]([^'"]+)['"]""", re.M),
    re.compile(r"""\bimport\(\s*['"]([^'"]+)['"]\s*\)"""),
    re.compile(r"""new URL\(\s*['"]([^'"]+\.js)['"]\s*,\s*import\.meta\.url\s*\)"""),
    re.compile(r"""new URL\(\s*['"](js/[^'"]+\.js)['"]\s*,\s*(?:this\.)?base\s*\)"""),
]


def layer_of(path: str):
    for prefix, name, rank in LAYERS:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return name, rank
    return None


def imports_of(path: str, source: str) -> list[str]:
    """Targets as paths relative to web/ ('js/runtime/rpc.js'), for one module's source."""
    out = []
    for pattern in IMPORT_PATTERNS:
        for spec in pattern.findall(source):
            if spec.startswith("js/"):  # relative to the server base
                out.append(spec)
            elif spec.startswith("/"):
                out.append(spec.lstrip("/"))
            elif spec.startswith("."):
                parts = []
                for part in (PurePosixPath(path).parent / spec).parts:
                    if part == "..":
                        parts.pop()
                    elif part != ".":
                        parts.append(part)
                out.append("/".join(parts))
            # anything else (an absolute URL built at run time) is not ours
    return out


def violations(graph: dict[str, list[str]]) -> list[str]:
    found = []
    for source, targets in sorted(graph.items()):
        src = layer_of(source)
        if src is None:
            found.append(f"{source} is in no layer (place it in one of {[p for p, _, _ in LAYERS]})")
            continue
        for target in targets:
            dst = layer_of(target)
            if dst is None:
                found.append(f"{source} imports {target}, which is in no layer")
            elif dst[0] != src[0] and dst[1] >= src[1]:
                found.append(f"{source} ({src[0]}) imports {target} ({dst[0]}): not a lower layer")
    return found


def web_graph() -> dict[str, list[str]]:
    graph = {}
    for file in sorted(WEB.rglob("*.js")):
        rel = file.relative_to(WEB).as_posix()
        graph[rel] = imports_of(rel, file.read_text(encoding="utf-8"))
    return graph


def test_web_modules_import_only_lower_layers():
    graph = web_graph()
    assert len(graph) > 20  # the walk found the modules
    assert "js/runtime/rpc.js" in graph["js/clip.js"]
    assert "js/runtime/py-worker.js" in graph["js/runtime/runtime.js"]  # worker URLs count too
    assert violations(graph) == []


def test_every_import_target_exists():
    for source, targets in web_graph().items():
        for target in targets:
            assert (WEB / target).is_file(), f"{source} imports {target}, which does not exist"


@pytest.mark.parametrize(
    "source, code, problem",
    [
        ("js/runtime/rpc.js", "import { createClip } from '../clip.js';", "not a lower layer"),
        ("js/ui/page-controls.js", "import { SearchIndex } from '../search/image-index.js';", "not a lower layer"),
        ("js/clip.js", "const m = await import('./pages/image-page.js');", "not a lower layer"),
        ("js/search/store.js", "new Worker(new URL('../widget/clip-widget.js', import.meta.url));", "not a lower layer"),
        ("js/helpers.js", "", "in no layer"),
    ],
)
def test_the_check_catches_an_upward_import(source, code, problem):
    graph = {source: imports_of(source, code)}
    found = violations(graph)
    assert len(found) == 1 and problem in found[0]


def test_public_entry_points_are_where_other_sites_find_them():
    assert (WEB / "js" / "clip.js").is_file()
    assert "js/widget/clip-widget.js" in web_graph()["widget.js"]
