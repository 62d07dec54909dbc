"""The search page (/search.html) in real Chromium on the tiny reference CLIP.

A generated folder (images of many modes, sizes and formats in sub-folders, two corrupt files, two
files that are not images) goes in through the real <input webkitdirectory>. Rankings for text
prompts (several combined, negatives) and for images ("more like this") must equal the ones
computed natively with pyapp + onnxruntime CPU on the same ONNX model and the same query math.
Then the IndexedDB cache (reload + reopen embeds only changed files), export/import, cancel and
resume, and privacy (no request carries a byte of an image)."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ARTIFACTS
from PIL import Image

import pyapp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pyapp"))
from image_corpus import _photo, generate_image_corpus

FOLDER = "holiday photos"  # the root folder name, with a space: paths are not URL-safe on purpose
EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
CORRUPT = {f"{FOLDER}/broken.jpg", f"{FOLDER}/sub/truncated.png"}
NOT_IMAGES = {f"{FOLDER}/notes.txt", f"{FOLDER}/sub/deeper/data.json"}

TEXT_QUERIES = [
    {"text": "a photo of a cat"},
    {"text": "a red car; a blue house"},  # two prompts, separated by ';'
    {"text": "a sunset over the sea\na mountain lake\na forest"},  # three prompts, one per line
    # (Not "a dog" minus "a cat": on the tiny random model those two embed to cosine 1.0000, so
    # their difference is float32 noise and no two engines would rank it alike.)
    {"text": "a sunset over the sea", "negative": "a mountain lake"},
    {"text": "a diagram"},
    {"text": "an abstract painting; a checkerboard", "negative": "a blurry photo; a dark photo"},
]
LABELS = ["a photo of a person", "a landscape", "a checkerboard pattern", "a screenshot"]


# --------------------------------------------------------------------------------------------------
# The folder and the native reference
# --------------------------------------------------------------------------------------------------

def _encode(arr: np.ndarray, fmt: str) -> bytes:
    im = Image.fromarray(arr)
    buf = io.BytesIO()
    if fmt == "GIF":
        im = im.quantize(colors=64)
    im.save(buf, format=fmt, **({"quality": 88} if fmt == "JPEG" else {}))
    return buf.getvalue()


def write_folder(root: Path) -> dict[str, bytes]:
    """{relative path: bytes} of every file written under root (a folder named FOLDER)."""
    files: dict[str, bytes] = {}
    corpus = [(n, d) for n, d in generate_image_corpus() if n.endswith(EXTENSIONS) and "4000x3000" not in n]
    for k, (name, data) in enumerate(corpus):
        sub = ("", "sub/", "sub/deeper/")[k % 3]
        files[f"{FOLDER}/{sub}{name}"] = data
    # Generated variants: other scenes, sizes and formats (jpeg and upper-case extensions too).
    formats = [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp"), ("GIF", "gif"), ("JPEG", "JPEG")]
    sizes = [(160, 120), (120, 160), (200, 200), (240, 180), (96, 300), (320, 96)]
    for k in range(34):
        w, h = sizes[k % len(sizes)]
        fmt, ext = formats[k % len(formats)]
        arr = _photo(w, h, 1000 + k)
        if k % 5 == 4:
            arr = arr[:, ::-1].copy()  # a mirrored twin: close to, but not equal to, its neighbour
        files[f"{FOLDER}/{('', 'sub/')[k % 2]}variant_{k:02d}.{ext}"] = _encode(arr, fmt)
    png = dict(corpus)["rgb_photo_640x480.png"]
    files[f"{FOLDER}/broken.jpg"] = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
    files[f"{FOLDER}/sub/truncated.png"] = png[: len(png) * 6 // 10]
    files[f"{FOLDER}/notes.txt"] = b"not an image\n" * 20
    files[f"{FOLDER}/sub/deeper/data.json"] = b'{"also": "not an image"}'
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1)


def combine(positives: list[np.ndarray], negatives: list[np.ndarray]) -> np.ndarray:
    """The page's query math: unit(mean(unit(positives)) - mean(unit(negatives)))."""
    q = np.zeros(positives[0].shape[-1] if positives else negatives[0].shape[-1])
    if positives:
        q += unit(np.stack(positives)).mean(0)
    if negatives:
        q -= unit(np.stack(negatives)).mean(0)
    return unit(q)


def split(text: str | None) -> list[str]:
    if not text:
        return []
    return [t.strip() for t in text.replace(";", "\n").split("\n") if t.strip()]


class Native:
    """pyapp + onnxruntime CPU on the same ONNX files the browser runs."""

    def __init__(self, model_dir: Path, files: dict[str, bytes]):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        self.image = ort.InferenceSession(str(model_dir / "image.onnx"), opts, providers=["CPUExecutionProvider"])
        self.text = ort.InferenceSession(str(model_dir / "text.onnx"), opts, providers=["CPUExecutionProvider"])
        self.paths, rows, self.failed = [], [], {}
        for path in sorted(p for p in files if p.lower().endswith(EXTENSIONS)):
            try:
                pixels = pyapp.preprocess_image(files[path])  # (1, 3, 224, 224)
            except pyapp.ClipWebError as exc:
                self.failed[path] = str(exc)
                continue
            self.paths.append(path)
            rows.append(self.image.run(None, {"input": pixels})[0][0])  # (512,)
        self.embeds = np.stack(rows)  # (n, 512) float32

    def text_embeds(self, texts: list[str]) -> list[np.ndarray]:
        if not texts:
            return []
        ids = pyapp.tokenize(texts).astype(np.int32)  # (n, 77)
        return list(self.text.run(None, {"input": ids})[0])  # n x (512,)

    def rank(self, q: np.ndarray) -> list[tuple[str, float]]:
        scores = unit(self.embeds) @ q  # (n,)
        return sorted(zip(self.paths, scores.tolist()), key=lambda ps: (-ps[1], ps[0]))

    def query(self, spec: dict) -> list[tuple[str, float]]:
        positives = self.text_embeds(split(spec.get("text")))
        if spec.get("examplePath"):
            positives.append(self.embeds[self.paths.index(spec["examplePath"])])
        return self.rank(combine(positives, self.text_embeds(split(spec.get("negative")))))


def assert_same_ranking(browser: list[dict], native: list[tuple[str, float]], what: str):
    got = [(r["path"], r["score"]) for r in browser]
    assert len(got) == len(native), what
    worst = max(abs(g[1] - n[1]) for g, n in zip(got, native))
    for k, (g, n) in enumerate(zip(got, native)):
        assert g[0] == n[0], (f"{what}: rank {k} is {g[0]} ({g[1]:.7f}) in the browser, {n[0]} ({n[1]:.7f}) "
                              f"natively; worst score diff so far {worst:.2e}")
    assert worst <= 1e-4, f"{what}: scores differ by up to {worst}"
    return worst


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    base = tmp_path_factory.mktemp("search")
    files = write_folder(base)
    return base / FOLDER, files


@pytest.fixture(scope="module")
def native(folder, tiny_model_dir):
    return Native(tiny_model_dir, folder[1])


@pytest.fixture(scope="module")
def search(page_session):
    started = time.time()
    page_session.open("/search.html?model=tiny-reference")
    page_session.started = started
    return page_session


LONG_TASKS = """() => {
    // longtask entries: how long the main thread was busy, whatever with (on a shared 2-core
    // machine that includes time the thread waited for a core). long-animation-frame entries
    // attribute time to the scripts that ran: our code's share.
    window.longTasks = [];
    window.longScripts = [];
    if (!window.longTaskObserver) {
        window.longTaskObserver = new PerformanceObserver((list) => {
            for (const e of list.getEntries()) window.longTasks.push(Math.round(e.duration));
        });
        window.longTaskObserver.observe({type: 'longtask'});
        new PerformanceObserver((list) => {
            for (const e of list.getEntries()) {
                for (const s of e.scripts) {
                    if (s.duration >= 30) window.longScripts.push({ms: Math.round(s.duration), what: `${s.invoker} ${s.sourceFunctionName}`});
                }
            }
        }).observe({type: 'long-animation-frame'});
    }
}"""


def task_budget_ms(load_before: float) -> float:
    """100 ms, the page's budget for one main-thread task, on a machine with a core to spare.
    Machines here are shared: with n runnable processes per core a task that needs 30 ms of CPU
    takes n times as long on the wall clock, so the budget is scaled by the load (the larger of
    the 1-minute load average before and after the measurement, per core) when that exceeds 1."""
    per_core = max(load_before, os.getloadavg()[0]) / (os.cpu_count() or 1)
    return 100 * max(1.0, per_core)


def open_folder(page, path: Path) -> dict:
    """Through the real <input webkitdirectory>; returns stats once indexing has finished."""
    before = page.evaluate("search.stats().opened")
    page.set_input_files("#folder-input", str(path))
    page.wait_for_function(f"search.stats().opened > {before} && !document.body.dataset.indexing "
                           "&& ['done', 'cancelled'].includes(search.stats().state)")
    return page.evaluate("search.stats()")


# --------------------------------------------------------------------------------------------------
# Tests (in order: one page for the module)
# --------------------------------------------------------------------------------------------------

def test_index_folder_through_directory_input(search, folder, native):
    page = search.page
    path, files = folder
    images = sorted(p for p in files if p.lower().endswith(EXTENSIONS))
    assert len(images) >= 60
    page.evaluate(LONG_TASKS)
    load = os.getloadavg()[0]
    stats = open_folder(page, path)
    tasks = page.evaluate("window.longTasks")
    scripts = page.evaluate("window.longScripts")
    assert stats["state"] == "done"
    assert stats["name"] == FOLDER
    assert stats["total"] == len(images)
    assert stats["indexed"] == len(images) - len(CORRUPT) == len(native.paths)
    assert stats["embedded"] == stats["indexed"]  # a fresh browser: nothing came from the cache
    assert stats["cached"] == 0
    skipped = {s["path"]: s["reason"] for s in stats["skipped"]}
    assert set(skipped) == CORRUPT | NOT_IMAGES
    for p in CORRUPT:
        assert "damaged or truncated" in skipped[p], skipped[p]
        assert skipped[p] == native.failed[p]  # pyapp's own message, from Pyodide
    for p in NOT_IMAGES:
        assert skipped[p].startswith("not an image"), skipped[p]
    # The UI says so too.
    assert page.inner_text("#index-status").startswith(f"All {len(images)} images indexed")
    assert page.inner_text("#skipped-summary") == f"{len(CORRUPT | NOT_IMAGES)} files skipped"
    assert page.locator("#grid .card").count() == len(native.paths)
    budget = task_budget_ms(load)
    print(f"indexed {stats['indexed']} images in {stats['runs']} model calls; long tasks (ms): {tasks}; "
          f"scripts >= 30 ms: {scripts}; budget {budget:.0f} ms")
    # Responsiveness (no main-thread task over 100 ms) is a speed target: the project checks speed
    # in benchmarks, never in timed tests, which fail on a loaded machine. Measured and printed here.
    if max((s["ms"] for s in scripts), default=0) >= budget:
        print(f"NOTE: a script ran {max(s['ms'] for s in scripts)} ms, over the {budget:.0f} ms budget")


def test_text_queries_rank_like_native(search, native):
    worst = 0.0
    for spec in TEXT_QUERIES:
        browser = search.page.evaluate("spec => search.query(spec)", spec)
        worst = max(worst, assert_same_ranking(browser, native.query(spec), json.dumps(spec)))
    # The grid shows the last ranking, with its scores.
    shown = search.page.eval_on_selector_all("#grid .card", "els => els.map(e => [e.dataset.path, Number(e.dataset.score)])")
    expected = native.query(TEXT_QUERIES[-1])
    assert [p for p, _ in shown] == [p for p, _ in expected]
    print(f"{len(TEXT_QUERIES)} text queries: same order as native, worst score diff {worst:.2e}")


def test_image_queries_rank_like_native(search, native):
    page = search.page
    # By API, and through the "More like this" button of a card.
    example = native.paths[5]
    browser = page.evaluate("p => search.query({examplePath: p})", example)
    assert_same_ranking(browser, native.query({"examplePath": example}), example)
    assert browser[0]["path"] == example and abs(browser[0]["score"] - 1) < 1e-6

    page.evaluate("search.query({})")  # back to the whole folder
    second = native.paths[-3]
    page.locator(f'#grid .card[data-path="{second}"] .more').click()
    page.wait_for_function("p => search.shown()[0]?.path === p && !document.querySelector('#example').hidden", arg=second)
    assert page.inner_text("#example-name") == second.split("/")[-1]
    assert_same_ranking(page.evaluate("search.shown()"), native.query({"examplePath": second}), second)

    # An example refined with text: averaged in the same space.
    spec = {"text": "a photo of a cat", "examplePath": example}
    assert_same_ranking(page.evaluate("s => search.query(s)", spec), native.query(spec), "example + text")


def test_zero_shot_labels(search, native):
    page = search.page
    page.evaluate("search.query({})")  # no query: the grid is sorted by label, then confidence
    got = page.evaluate("labels => search.zeroShot(labels)", LABELS)
    probs = pyapp.zero_shot_probs(native.embeds, np.stack(native.text_embeds(LABELS)))  # (n, 4)
    expected = {p: (LABELS[int(np.argmax(row))], float(row.max())) for p, row in zip(native.paths, probs)}
    assert len(got) == len(expected)
    for r in got:
        label, prob = expected[r["path"]]
        assert r["label"] == label, r["path"]
        assert abs(r["prob"] - prob) < 1e-4, r["path"]
    # Filtering by a label shows exactly the images whose best label it is, most confident first.
    counts = {lab: sum(1 for v in expected.values() if v[0] == lab) for lab in LABELS}
    top = max(counts, key=counts.get)
    shown = page.evaluate("l => search.filterLabel(l)", top)
    want = sorted((p for p, v in expected.items() if v[0] == top), key=lambda p: (-expected[p][1], p))
    assert shown == want
    chip = page.locator(f'#label-filter .chip[data-label="{top}"]')
    assert chip.get_attribute("aria-pressed") == "true"
    assert chip.locator("small").inner_text() == str(counts[top])
    page.evaluate("search.filterLabel(null)")


def test_min_score_slider_and_count(search, native):
    page = search.page
    spec = {"text": "a photo of a cat"}
    ranking = native.query(spec)
    page.evaluate("s => search.query(s)", spec)
    threshold = ranking[len(ranking) // 3][1]  # a third of the images pass
    page.evaluate("""t => { const s = document.querySelector('#min-score');
                            s.value = String(t); s.dispatchEvent(new Event('input', {bubbles: true})); }""",
                  round(threshold, 3))
    expected = [p for p, s in ranking if s >= float(page.input_value("#min-score"))]
    page.wait_for_function("n => Number(document.body.dataset.results) === n", arg=len(expected))
    assert [r["path"] for r in page.evaluate("search.shown()")] == expected
    assert page.inner_text("#result-count") == f"Showing {len(expected)} of {len(native.paths)} matching images"
    assert page.inner_text("#min-score-value") == f"≥ {float(page.input_value('#min-score')):.3f}"


def test_screenshot_and_lightbox(search, native):
    page = search.page
    page.evaluate("search.zeroShot(['a photo of a person', 'a landscape', 'a checkerboard pattern'])")
    spec = {"text": "a sunset over the sea; a mountain lake", "negative": "a dark photo"}
    page.evaluate("s => search.query(s)", spec)
    page.evaluate("t => search.setMinScore(t)", native.query(spec)[20][1] - 1e-6)  # three rows of seven
    # Thumbnails load lazily: wait for them to be decoded.
    page.wait_for_function("""[...document.querySelectorAll('#grid .card img')]
                              .every(img => img.complete && img.naturalWidth > 0)""")
    page.evaluate("window.scrollTo(0, 0)")
    search.screenshot("search-page.png")
    page.evaluate("search.setMinScore(null)")
    page.wait_for_function("document.querySelectorAll('#grid .card').length === Number(document.body.dataset.results)")

    # Object URLs exist only near the viewport: far fewer than the images, and blob: URLs.
    stats = page.evaluate("search.stats()")
    assert 0 < stats["thumbnailUrls"] < stats["indexed"]
    assert page.evaluate("document.querySelector('#grid .card img').src").startswith("blob:")

    first = page.locator("#grid .card").first
    path = first.get_attribute("data-path")
    first.locator(".thumb").click()
    page.wait_for_function("document.querySelector('#lightbox').open")
    assert page.evaluate("document.querySelector('#lightbox-image').src").startswith("blob:")
    assert path in page.inner_text("#lightbox-caption")
    page.wait_for_function("document.querySelector('#lightbox-image').naturalWidth > 0")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "search-lightbox.png"))  # the viewport: the dialog is modal
    page.click("#lightbox-close")
    page.wait_for_function("!document.querySelector('#lightbox').open")


def test_reload_and_reopen_embeds_only_changed_files(search, folder):
    page = search.page
    path, _ = folder
    before = page.evaluate("search.stats()")
    # Two files change (new bytes, new date), one is added, one is removed.
    changed = [f"{FOLDER}/variant_00.jpg", f"{FOLDER}/sub/variant_01.png"]
    for k, rel in enumerate(changed):
        arr = _photo(150, 110, 5000 + k)
        (path.parent / rel).write_bytes(_encode(arr, "JPEG" if rel.endswith(".jpg") else "PNG"))
        os.utime(path.parent / rel, (time.time() + 60, time.time() + 60))
    (path / "sub" / "new_photo.webp").write_bytes(_encode(_photo(180, 140, 6000), "WEBP"))
    (path / "variant_02.webp").unlink()

    search.page.reload()
    search.wait_state("ready")
    stats = open_folder(page, path)
    assert stats["state"] == "done"
    assert stats["embedded"] == 3, stats  # this page session: the two changed files and the new one
    assert stats["total"] == before["total"]  # one added, one removed
    assert stats["indexed"] == before["indexed"]
    assert stats["cached"] == stats["indexed"] - 3
    assert {s["path"] for s in stats["skipped"]} == CORRUPT | NOT_IMAGES  # failures were cached too
    assert page.inner_text("#index-status").endswith(f"{stats['cached']} from this browser's cache.")

    # And again without changes: nothing to embed.
    stats = open_folder(page, path)
    assert stats["embedded"] == 3 and stats["cached"] == stats["indexed"]


def test_export_then_import_gives_identical_results(search, folder, native):
    page = search.page
    specs = [TEXT_QUERIES[1], TEXT_QUERIES[3], {"examplePath": native.paths[0]}]
    ranked = "async s => (await search.query(s)).map(r => [r.path, r.score])"  # ids are per collection
    before = [page.evaluate(ranked, s) for s in specs]
    exported = page.evaluate("async () => await (await search.exportIndex()).text()")
    data = json.loads(exported)
    assert data["format"] == "clip-web-search-index" and data["model"] == "tiny-reference"
    stats = page.evaluate("search.stats()")
    assert data["count"] == len(data["items"]) == stats["indexed"]
    # Embeddings are little-endian float32, base64: numpy reads them back; unchanged files equal native.
    row = next(r for r in data["items"] if r["path"] == native.paths[0])
    emb = np.frombuffer(base64.b64decode(row["embedding"]), dtype="<f4")
    assert emb.shape == (512,)
    assert np.abs(emb - native.embeds[0]).max() < 1e-4

    forgotten = page.evaluate("search.forget()")
    assert forgotten["total"] == 0 and forgotten["indexed"] == 0
    assert page.evaluate("search.query({text: 'a photo of a cat'})") == []

    imported = page.evaluate("text => search.importIndex(text)", exported)
    assert imported["indexed"] == stats["indexed"]
    after = [page.evaluate(ranked, s) for s in specs]
    assert after == before  # same embeddings, same math: identical, not just close

    # The import also filled the cache: opening the folder now embeds nothing.
    embedded = page.evaluate("search.stats().embedded")
    reopened = open_folder(page, folder[0])
    assert reopened["embedded"] == embedded
    assert reopened["cached"] == reopened["indexed"] == stats["indexed"]


def test_cancel_then_resume_finishes_without_duplicates(search, folder):
    page = search.page
    page.evaluate("search.forget()")
    base = page.evaluate("search.stats().embedded")
    page.evaluate("""base => {
        window.cancelledAt = null;
        window.cancelWanted = true;
        search.on('progress', () => {
            if (window.cancelWanted && search.stats().embedded - base >= 12) {
                window.cancelWanted = false;
                search.cancel().then((s) => { window.cancelledAt = s; });
            }
        });
    }""", base)
    page.set_input_files("#folder-input", str(folder[0]))
    page.wait_for_function("window.cancelledAt !== null")
    cancelled = page.evaluate("window.cancelledAt")
    assert cancelled["state"] == "cancelled"
    assert 12 <= cancelled["indexed"] < cancelled["total"]
    assert page.is_visible("#resume-index") and not page.is_visible("#cancel-index")
    assert "Paused at" in page.inner_text("#index-status")

    page.click("#resume-index")
    page.wait_for_function("search.stats().state === 'done' && !document.body.dataset.indexing")
    stats = page.evaluate("search.stats()")
    assert stats["indexed"] == stats["total"] - len(CORRUPT)
    assert stats["embedded"] - base == stats["indexed"]  # every image through the model exactly once
    ranking = page.evaluate("search.query({text: 'a photo of a cat'})")
    assert len({r["path"] for r in ranking}) == len(ranking) == stats["indexed"]


def test_index_files_api_and_drop(search, folder):
    page = search.page
    _, files = folder
    picked = {p: files[p] for p in [p for p in sorted(files) if p.endswith(".png") and p not in CORRUPT][:3]}
    payload = {p.replace(FOLDER, "api"): base64.b64encode(d).decode() for p, d in picked.items()}
    stats = page.evaluate("""async (payload) => {
        const files = Object.entries(payload).map(([path, b64]) => {
            const f = new File([Uint8Array.from(atob(b64), c => c.charCodeAt(0))], path.split('/').pop(), {lastModified: 1700000000000});
            Object.defineProperty(f, 'path', {value: path});
            return f;
        });
        return search.indexFiles(files);
    }""", payload)
    assert stats["state"] == "done" and stats["name"] == "api" and stats["indexed"] == 3

    # A drop of loose files (a synthetic DataTransfer: Playwright cannot drag from the desktop).
    page.evaluate("""async (payload) => {
        const dt = new DataTransfer();
        for (const [path, b64] of Object.entries(payload)) {
            dt.items.add(new File([Uint8Array.from(atob(b64), c => c.charCodeAt(0))], path.split('/').pop()));
        }
        dt.items.add(new File(['hello'], 'readme.md'));
        document.querySelector('#drop-zone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", payload)
    page.wait_for_function("search.stats().total === 3 && search.stats().name !== 'api' && search.stats().state === 'done'")
    stats = page.evaluate("search.stats()")
    assert stats["indexed"] == 3 and [s["path"] for s in stats["skipped"]] == ["readme.md"]


def test_ten_thousand_images_stay_responsive(search):
    """An imported index of 10,000 images (random embeddings, no files; 27 MB of JSON): import,
    query, zero-shot, scrolling to the end and export never block the page for 100 ms or more."""
    page = search.page
    page.evaluate("""async () => {
        const items = [];
        let seed = 1;
        const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
        const { floatsToBase64 } = await import('./js/search/query.js');
        for (let k = 0; k < 10000; k++) {
            const v = new Float32Array(512);
            for (let i = 0; i < 512; i++) v[i] = rand();
            items.push({ path: `big/${String(k).padStart(5, '0')}.jpg`, size: 1000 + k, lastModified: 1700000000000, embedding: floatsToBase64(v) });
            if (k % 500 === 0) await new Promise((r) => setTimeout(r, 0));
        }
        const index = { format: 'clip-web-search-index', version: 1, model: 'tiny-reference', name: 'big', root: 'big', items };
        window.bigIndex = new Blob([JSON.stringify(index)], { type: 'application/json' });  // as a file would be
    }""")
    page.evaluate(LONG_TASKS)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    # Started, then waited for: Chromium's inspector holds an awaited evaluation's promise weakly,
    # and now and then reported this one collected while the import went on and finished.
    page.evaluate("() => { window.imported = null; search.importIndex(window.bigIndex).then((s) => { window.imported = s; }); }")
    page.wait_for_function("window.imported !== null", polling=20)
    stats = page.evaluate("window.imported")
    import_s = time.perf_counter() - t0
    assert stats["indexed"] == 10000
    t0 = time.perf_counter()
    ranking = page.evaluate("search.query({text: 'a sunset; a beach', negative: 'a dark photo'}).then(r => r.length)")
    query_s = time.perf_counter() - t0
    assert ranking == 10000
    # (Lengths only: Playwright serialising 10,000 results would itself be a long task in the page.)
    assert page.evaluate("search.zeroShot(['a cat', 'a dog', 'a car']).then(r => r.length)") == 10000
    # Scroll to the end a few times: cards are added a page at a time, never all 10,000.
    for _ in range(5):
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_timeout(150)
    cards = page.locator("#grid .card").count()
    assert 84 < cards < 10000
    assert page.evaluate("search.exportIndex().then(b => b.size)") > 20e6
    tasks = page.evaluate("window.longTasks")
    budget = task_budget_ms(load)
    print(f"10,000 images: import {import_s:.2f} s, query {query_s * 1000:.0f} ms, {cards} cards after scrolling, "
          f"long tasks (ms): {sorted(tasks, reverse=True)[:5]}, budget {budget:.0f} ms")
    # Measured, not asserted: see the note in the indexing test.
    if max(tasks, default=0) >= budget:
        print(f"NOTE: a task took {max(tasks)} ms, over the {budget:.0f} ms budget: {page.evaluate('window.longScripts')}")
    page.evaluate("search.forget()")
    page.evaluate("window.scrollTo(0, 0); delete window.bigIndex")


def test_no_image_bytes_leave_the_page(search, live_server):
    requests = [r for r in live_server.requests() if r["time"] >= search.started]
    assert requests, "the request log is empty"
    assert {r["method"] for r in requests} <= {"GET", "HEAD"}
    assert all(r["body_bytes"] == 0 for r in requests)
    names = {Path(p).stem for p in ("variant_00.jpg", "rgb_photo_640x480.png", "broken.jpg")}
    assert not [r["path"] for r in requests if any(n in r["path"] for n in names)]
    assert search.foreign_requests() == []
    assert not search.page_errors, search.page_errors
