"""`clip-web index DIR --model ID`: the search page's index, made natively.

On a generated folder (tests/pyapp/image_corpus.py, split over a subfolder, plus a damaged image, a
text file and a dotfile), against the tiny reference model:

- embeddings equal transformers' CLIP (torch) on pyapp's pixels and onnxruntime batch-1 runs;
- the file is exactly what the page's "Export index" writes, and the page's own import worker
  (web/js/search/import-worker.js, run under Node) reads it; paths, sizes and dates are the page's;
- skipped files are counted and listed like the page lists them;
- an interrupted run (SIGINT to the real CLI) and a --limit run resume, each image embedded once;
- foreign, damaged and other-model checkpoints are refused with what to do; a full disk never
  leaves a half-written index.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "tests" / "pyapp"))

from image_corpus import generate_image_corpus  # noqa: E402

from server import native_index as ni  # noqa: E402
from server.model_tools.common import ToolError  # noqa: E402

PAGE_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp", "gif", "bmp")  # web/js/search/folder-files.js
HEAD_KEYS = ["format", "version", "model", "embed_dim", "name", "root", "created", "count", "skipped", "items"]
BROKEN = "broken_truncated.png"


def run_cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "server.cli", "index", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def stats_of(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def floats(b64: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype="<f4")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("native") / "Holiday photos"
    (folder / "day 2").mkdir(parents=True)
    for k, (name, data) in enumerate(generate_image_corpus()):
        (folder / ("day 2" if k % 3 == 0 else "") / name).write_bytes(data)
    png = (folder / "rgb_photo_640x480.png").read_bytes()
    (folder / "day 2" / BROKEN).write_bytes(png[:200])  # a PNG cut short: a decode failure
    (folder / "notes.txt").write_text("not a photo\n")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: the page ignores it quietly
    (folder / ".thumbs").mkdir()
    (folder / ".thumbs" / "a.jpg").write_bytes(png)
    return folder


@pytest.fixture(scope="module")
def full_run(photos, tiny_model_dir, tmp_path_factory):
    """The real CLI, once: (index dict, raw text, stats, stderr)."""
    out = tmp_path_factory.mktemp("out") / "holiday.clip-index.json"
    result = run_cli(photos, "--model", tiny_model_dir, "--out", out, "--batch", "5", "--workers", "2")
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    return json.loads(text), text, stats_of(result.stdout), result.stderr


def expected_listing(folder: Path) -> tuple[list[Path], list[Path]]:
    images, others = [], []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        (images if file.suffix[1:].lower() in PAGE_IMAGE_EXTENSIONS else others).append(file)
    return images, others


def page_path(folder: Path, file: Path) -> str:
    return f"{folder.name}/{file.relative_to(folder).as_posix()}"


def test_embeddings_match_torch_and_onnxruntime(full_run, photos, tiny_model_dir):
    import onnxruntime as ort
    from torch_reference import TorchClip

    from pyapp.preprocess import preprocess_image

    index = full_run[0]
    manifest = json.loads((tiny_model_dir / "manifest.json").read_text())
    by_path = {row["path"]: floats(row["embedding"]) for row in index["items"]}
    files = {page_path(photos, f): f for f in expected_listing(photos)[0]}
    assert len(by_path) == len(files) - 1 >= 20  # all but the broken one
    torch_clip = TorchClip(tiny_model_dir / "checkpoint")
    session = ort.InferenceSession(str(tiny_model_dir / "image.onnx"), providers=["CPUExecutionProvider"])
    worst_torch, worst_ort = 1.0, 1.0
    for path, ours in by_path.items():
        pixels = preprocess_image(files[path].read_bytes(), size=manifest["image_size"], mean=manifest["mean"],
                                  std=manifest["std"])  # (1, 3, 224, 224), what the page's Python worker makes
        reference = torch_clip.image_embeds(pixels)[0]
        single = session.run([manifest["image"]["output"]], {manifest["image"]["input"]: pixels})[0][0]
        assert ours.shape == (manifest["embed_dim"],)
        worst_torch = min(worst_torch, cosine(ours, reference))
        worst_ort = min(worst_ort, cosine(ours, single))
        # raw encoder output, as the page stores and exports it (not unit-normalised)
        np.testing.assert_allclose(ours, single, rtol=1e-4, atol=1e-4 * float(np.abs(single).max()))
    assert worst_torch >= 0.99999, worst_torch
    assert worst_ort >= 0.99999, worst_ort
    assert any(abs(np.linalg.norm(v) - 1) > 1e-3 for v in by_path.values())


def test_file_is_the_pages_export_format(full_run, photos, tiny_model_dir):
    index, text, stats, _ = full_run
    assert list(index) == HEAD_KEYS  # JSON.stringify(head) then "items", in exportIndex's order
    assert text.startswith('{"format":"clip-web-search-index","version":1,"model":"tiny-reference","embed_dim":512,')
    assert "\n" not in text and '": ' not in text  # compact, as JSON.stringify writes it
    assert index["name"] == index["root"] == "Holiday photos"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", index["created"])  # Date.toISOString()
    assert index["count"] == len(index["items"]) == stats["count"]
    images, _ = expected_listing(photos)
    want = sorted(page_path(photos, f) for f in images if f.name != BROKEN)
    assert [row["path"] for row in index["items"]] == want  # sorted as the page sorts (ASCII here)
    for row in index["items"]:
        assert list(row) == ["path", "size", "lastModified", "embedding"]
        st = os.stat(photos / row["path"].split("/", 1)[1])
        assert row["size"] == st.st_size and isinstance(row["size"], int)
        assert row["lastModified"] == st.st_mtime_ns // 1_000_000 and isinstance(row["lastModified"], int)
        assert len(base64.b64decode(row["embedding"])) == 4 * index["embed_dim"]


def test_page_import_worker_reads_it(full_run, tmp_path):
    """The page's own parser (import-worker.js under Node, `self` stood in for)."""
    index, text, _, _ = full_run
    src = tmp_path / "index.json"
    src.write_text(text)
    worker = (REPO_ROOT / "web" / "js" / "search" / "import-worker.js").as_uri()
    script = tmp_path / "read.mjs"
    script.write_text(f"""
import {{ readFileSync }} from 'node:fs';
let answer;
globalThis.self = {{ postMessage: (m) => {{ answer = m; }} }};
await import({json.dumps(worker)});
await self.onmessage({{ data: {{ source: readFileSync({json.dumps(str(src))}, 'utf8'), format: 'clip-web-search-index' }} }});
if (!answer.ok) {{ console.log(JSON.stringify(answer)); process.exit(1); }}
const m = answer.matrix;
console.log(JSON.stringify({{ head: answer.head, items: answer.items, d: answer.d, sums: answer.items.map((_, k) => Array.from(m.subarray(k * answer.d, (k + 1) * answer.d)).reduce((a, b) => a + b, 0)) }}));
""")
    result = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    parsed = json.loads(result.stdout)
    assert parsed["d"] == index["embed_dim"] == 512
    assert parsed["head"]["model"] == "tiny-reference" and parsed["head"]["skipped"] == index["skipped"]
    assert parsed["items"] == [{k: r[k] for k in ("path", "size", "lastModified")} for r in index["items"]]
    sums = [float(floats(r["embedding"]).astype(np.float64).sum()) for r in index["items"]]
    np.testing.assert_allclose(parsed["sums"], sums, rtol=1e-9, atol=1e-9)
    # a file the page would refuse, refused by the same worker: the check is real
    src.write_text(json.dumps(dict(index, format="something-else")))
    bad = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "not a clip-web search index" in bad.stdout


def test_skipped_files_counted_and_listed(full_run, photos):
    index, _, stats, stderr = full_run
    _, others = expected_listing(photos)
    skipped = {s["path"]: s["reason"] for s in index["skipped"]}
    assert [s["path"] for s in index["skipped"]] == sorted(skipped)
    broken = f"Holiday photos/day 2/{BROKEN}"
    assert "damaged or truncated" in skipped[broken]
    assert skipped["Holiday photos/notes.txt"] == "not an image (.txt)"
    tifs = [p for p in others if p.suffix == ".tif"]
    assert tifs and all(skipped[page_path(photos, p)] == "not an image (.tif)" for p in tifs)
    assert set(skipped) == {page_path(photos, p) for p in others} | {broken}
    assert not any("/." in p or p.startswith(".") for p in [*skipped, *(r["path"] for r in index["items"])])
    assert stats["skipped"] == len(skipped) and stats["failed"] == 1
    assert stats["embedded"] == index["count"] and stats["reused"] == 0 and stats["complete"] is True
    assert re.search(rf"index: {stats['images']}/{stats['images']} images  [\d.]+ images/s  0s left  "
                     rf"\({len(skipped)} skipped\)", stderr), stderr
    assert f"{len(skipped)} skipped (1 unreadable)" in stderr


def test_paths_sort_like_javascript(tmp_path, tiny_model_dir):
    """UTF-16 code-unit order (JavaScript's `<`), not code points: U+1F600 sorts before U+FF01."""
    from PIL import Image

    folder = tmp_path / "ünïcode"
    folder.mkdir()
    names = ["\uff01.png", "\U0001F600.png", "é.png", "Z.png", "a.png"]
    for k, name in enumerate(names):
        Image.new("RGB", (40 + k, 30), (k * 40, 90, 200)).save(folder / name)
    out = tmp_path / "u.json"
    result = ni.build_index(folder, ni.resolve_model(str(tiny_model_dir)), out, workers=1, quiet=True)
    assert result.complete
    paths = [r["path"] for r in json.loads(out.read_text(encoding="utf-8"))["items"]]
    assert paths == [f"ünïcode/{n}" for n in ["Z.png", "a.png", "é.png", "\U0001F600.png", "\uff01.png"]]
    assert out.read_text(encoding="utf-8").count("\\u") == 0  # non-ASCII as is, as JSON.stringify writes it


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> Path:
    """400 small distinct images: enough work that a SIGINT lands mid-run."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("many") / "many"
    folder.mkdir()
    rs = np.random.RandomState(7)
    for k in range(400):
        Image.fromarray(rs.randint(0, 256, size=(48, 64, 3), dtype=np.uint8)).save(folder / f"img_{k:04d}.png")
    (folder / "zz_bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    return folder


def _checkpoint_rows(cp: Path) -> list[dict]:
    return [row for part in sorted(cp.glob("part-*.json")) for row in json.loads(part.read_text())["rows"]]


def test_interrupted_cli_resumes_embedding_each_image_once(many, tiny_model_dir, tmp_path):
    out = tmp_path / "many.json"
    cp = ni.checkpoint_path(out)
    args = [sys.executable, "-m", "server.cli", "index", str(many), "--model", str(tiny_model_dir), "--out",
            str(out), "--batch", "1", "--workers", "1", "--save-every", "1", "--threads", "1"]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (cp / "part-000003.json").exists():  # a few images in: then Ctrl-C
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == ni.EXIT_INTERRUPTED, stderr
    first = stats_of(stdout)
    assert first["complete"] is False and first["stopped"] == "interrupted"
    assert 3 <= first["embedded"] < 400, first
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))
    rows = _checkpoint_rows(cp)
    assert len(rows) == first["embedded"] == len({r["path"] for r in rows})  # every embedded image saved, once
    assert "rerun the same command to continue" in stderr

    second = run_cli(*args[4:])
    assert second.returncode == 0, second.stderr
    stats = stats_of(second.stdout)
    assert stats["reused"] == first["embedded"]
    assert stats["embedded"] + first["embedded"] == 400  # nothing embedded twice, nothing left out
    assert stats["runs"] == stats["embedded"]  # --batch 1: one onnxruntime run per image
    assert f"resuming from {cp}: {first['embedded']} of 401 images already done" in second.stderr
    index = json.loads(out.read_text())
    assert index["count"] == 400 and [r["path"] for r in index["items"]] == [f"many/img_{k:04d}.png" for k in range(400)]
    assert [s["path"] for s in index["skipped"]] == ["many/zz_bad.jpg"]
    assert not cp.exists()  # the checkpoint goes once the index is written


def test_limit_then_resume_equals_one_run(many, tiny_model_dir, tmp_path):
    model = ni.resolve_model(str(tiny_model_dir))
    out = tmp_path / "limited.json"
    a = ni.build_index(many, model, out, limit=50, batch=8, workers=2, save_every=16, quiet=True)
    assert not a.complete and a.stopped == "limit" and a.embedded == 50 and a.runs == 7 and not out.exists()
    b = ni.build_index(many, model, out, limit=1000, batch=8, workers=2, quiet=True)
    assert b.complete and b.reused == 50 and b.embedded == 350 and b.failed == 1
    c = ni.build_index(many, model, tmp_path / "whole.json", batch=8, workers=2, pool="process", quiet=True)
    assert c.complete and c.embedded == 400
    resumed, whole = (json.loads(p.read_text()) for p in (out, tmp_path / "whole.json"))
    assert [r["path"] for r in resumed["items"]] == [r["path"] for r in whole["items"]]
    for r, w in zip(resumed["items"], whole["items"]):
        assert cosine(floats(r["embedding"]), floats(w["embedding"])) >= 0.99999
    assert resumed["skipped"] == whole["skipped"]


def test_limit_exit_status_and_changed_files(photos, tiny_model_dir, tmp_path):
    folder = tmp_path / "Holiday photos"
    shutil.copytree(photos, folder)
    out = tmp_path / "h.json"
    first = run_cli(folder, "--model", tiny_model_dir, "--out", out, "--limit", "4", "--quiet")
    assert first.returncode == ni.EXIT_INCOMPLETE and "limit" in first.stderr
    done = _checkpoint_rows(ni.checkpoint_path(out))
    assert len(done) == 4
    changed = folder / done[0]["path"].split("/", 1)[1]
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 5_000_000_000))
    second = run_cli(folder, "--model", tiny_model_dir, "--out", out, "--quiet")
    assert second.returncode == 0, second.stderr
    stats = stats_of(second.stdout)
    assert stats["reused"] == 3  # a changed file (new lastModified) is embedded again, like the page's cache
    row = next(r for r in json.loads(out.read_text())["items"] if r["path"] == done[0]["path"])
    assert row["lastModified"] == changed.stat().st_mtime_ns // 1_000_000


def _start_checkpoint(folder, model_dir, out):
    result = run_cli(folder, "--model", model_dir, "--out", out, "--limit", "3", "--quiet")
    assert result.returncode == ni.EXIT_INCOMPLETE, result.stderr


def test_refuses_foreign_and_damaged_checkpoints(photos, tiny_model_dir, tmp_path):
    out = tmp_path / "x.json"
    cp = ni.checkpoint_path(out)
    cp.write_text("my notes")  # a file of that name
    r = run_cli(photos, "--model", tiny_model_dir, "--out", out)
    assert r.returncode == 2 and "is not a clip-web index checkpoint folder" in r.stderr
    cp.unlink()
    cp.mkdir()
    (cp / "holiday.doc").write_text("someone else's")  # a folder this command never wrote
    r = run_cli(photos, "--model", tiny_model_dir, "--out", out, "--restart")
    assert r.returncode == 2 and "is not a clip-web index checkpoint" in r.stderr and "holiday.doc" in r.stderr
    assert (cp / "holiday.doc").exists()  # --restart never deletes what is not ours
    shutil.rmtree(cp)

    _start_checkpoint(photos, tiny_model_dir, out)
    part = cp / "part-000001.json"
    part.write_bytes(part.read_bytes()[:-40])  # truncated
    r = run_cli(photos, "--model", tiny_model_dir, "--out", out)
    assert r.returncode == 2 and "the checkpoint is damaged (part-000001.json" in r.stderr
    assert "--restart" in r.stderr and "Delete it" in r.stderr and not out.exists()
    (cp / "checkpoint.json").write_text('{"format": "zip"}')
    r = run_cli(photos, "--model", tiny_model_dir, "--out", out)
    assert r.returncode == 2 and "not a clip-web index checkpoint" in r.stderr and "--restart" in r.stderr
    r = run_cli(photos, "--model", tiny_model_dir, "--out", out, "--restart", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "--restart: removed the checkpoint" in r.stderr and stats_of(r.stdout)["reused"] == 0


def test_refuses_another_models_checkpoint(photos, tiny_model_dir, tmp_path):
    import onnx

    other = tmp_path / "models" / "other"
    shutil.copytree(tiny_model_dir, other, ignore=shutil.ignore_patterns("checkpoint"))
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps(dict(manifest, id="tiny-other")))
    rebuilt = tmp_path / "models" / "rebuilt"  # same id, another image encoder file
    shutil.copytree(tiny_model_dir, rebuilt, ignore=shutil.ignore_patterns("checkpoint"))
    graph = onnx.load(str(rebuilt / "image.onnx"))
    graph.doc_string = "re-exported"
    (rebuilt / "image.onnx").unlink()
    onnx.save(graph, str(rebuilt / "image.onnx"))

    out = tmp_path / "o.json"
    _start_checkpoint(photos, tiny_model_dir, out)
    r = run_cli(photos, "--model", other, "--out", out)
    assert r.returncode == 2 and "made with the model 'tiny-reference', not 'tiny-other'" in r.stderr
    assert "--restart" in r.stderr and not out.exists()
    r = run_cli(photos, "--model", rebuilt, "--out", out)
    assert r.returncode == 2 and "another build of the model 'tiny-reference'" in r.stderr
    # and by id in a models folder, as `serve --models-dir` lists them
    r = run_cli(photos, "--model", "tiny-other", "--models-dir", tmp_path / "models", "--out", tmp_path / "p.json",
                "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "p.json").read_text())["model"] == "tiny-other"
    r = run_cli(photos, "--model", "no-such-model", "--out", tmp_path / "q.json")
    assert r.returncode == 2 and "not a model folder, a preset" in r.stderr


def test_full_disk_never_leaves_a_half_written_index(photos, tiny_model_dir, tmp_path, monkeypatch):
    model = ni.resolve_model(str(tiny_model_dir))
    out = tmp_path / "d.json"
    out.write_text('{"an": "older index"}')
    real = ni._write_chunk
    calls = []

    def full(f, data):
        calls.append(len(data))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, data)

    monkeypatch.setattr(ni, "_write_chunk", full)
    with pytest.raises(ToolError, match="no space left on device while writing .*checkpoint .* is kept"):
        ni.build_index(photos, model, out, batch=4, save_every=2, quiet=True)
    assert out.read_text() == '{"an": "older index"}'  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "d.json.checkpoint"]  # no temp file left
    monkeypatch.setattr(ni, "_write_chunk", real)
    again = ni.build_index(photos, model, out, quiet=True)
    assert again.complete and again.embedded == 0 and again.reused == again.images  # nothing embedded twice
    assert json.loads(out.read_text())["count"] == again.count > 20

    # A full disk while saving the checkpoint: the parts written stay whole, no temp file is left.
    out2 = tmp_path / "e.json"
    real_file = ni._write_file

    def full_later(path, data):
        if Path(path).name.startswith(".part-000002"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_file(path, data)

    monkeypatch.setattr(ni, "_write_file", full_later)
    with pytest.raises(ToolError, match="no space left on device"):
        ni.build_index(photos, model, out2, batch=2, save_every=2, quiet=True)
    cp = ni.checkpoint_path(out2)
    assert sorted(p.name for p in cp.iterdir()) == ["checkpoint.json", "part-000001.json"]
    assert not out2.exists()
    monkeypatch.setattr(ni, "_write_file", real_file)
    resumed = ni.build_index(photos, model, out2, quiet=True)
    assert resumed.complete and resumed.reused == 2 and resumed.embedded == resumed.count - 2
