"""The search index's compact store, `clip-web index` files and published packs, in real Chromium on
the tiny reference CLIP (same generated folder as test_search_page.py).

- The compact (int8) scores agree with float32 (pyapp + onnxruntime CPU, numpy) within the stated
  SCORE_TOLERANCE (web/js/search/compact-vectors.js), and the page's rankings (compact, with the exact
  head) put the same images in the first ten places, in the same order, as float32 does.
- A file written by `clip-web index` (the real CLI on the same folder), imported through the page's
  "Import index" button, ranks every query exactly like pyapp + native onnxruntime.
- A pack (that file plus thumbnail URLs), served by a real `clip-web serve` from a URL, is searchable
  without indexing anything, thumbnails included; damaged, truncated, foreign, other-model and missing
  packs are refused with a clear message, and the collection on show stays as it was.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import PW, REPO_ROOT, LiveServer
from PIL import Image

import pyapp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_search_page import (CORRUPT, FOLDER, LABELS, TEXT_QUERIES, Native, assert_same_ranking,  # noqa: E402
                              combine, open_folder, split, unit, write_folder)

COMPACT_JS = (REPO_ROOT / "web" / "js" / "search" / "compact-vectors.js").read_text()
SCORE_TOLERANCE = float(re.search(r"export const SCORE_TOLERANCE = ([0-9.]+);", COMPACT_JS).group(1))
PACK_URL = "models/packs/holiday/pack.clip-index.json"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    base = tmp_path_factory.mktemp("compact")
    files = write_folder(base)
    return base / FOLDER, files


@pytest.fixture(scope="module")
def native(folder, tiny_model_dir):
    return Native(tiny_model_dir, folder[1])


@pytest.fixture(scope="module")
def index_file(folder, tiny_model_dir, tmp_path_factory) -> Path:
    """The real `clip-web index` on the folder."""
    out = tmp_path_factory.mktemp("index") / "holiday.clip-index.json"
    result = subprocess.run([sys.executable, "-m", "server.cli", "index", str(folder[0]), "--model", str(tiny_model_dir),
                             "--out", str(out), "--workers", "1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return out


def thumbnail(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 36), ((seed * 67) % 256, (seed * 131) % 256, (seed * 29) % 256)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def pack_server(tmp_path_factory, assets_dir, tiny_model_dir, index_file):
    """A clip-web server whose models folder holds the tiny model and a published pack: the
    `clip-web index` file with a thumbnail URL per image, and some damaged variants of it."""
    models = tmp_path_factory.mktemp("served-models")
    (models / "tiny").mkdir()
    for name in ("manifest.json", "image.onnx", "text.onnx"):
        shutil.copy2(tiny_model_dir / name, models / "tiny" / name)
    pack_dir = models / "packs" / "holiday"
    (pack_dir / "thumbs").mkdir(parents=True)
    data = json.loads(index_file.read_text())
    for k, item in enumerate(data["items"]):
        item["thumbnail"] = f"thumbs/{k:03d}.png"
        (pack_dir / "thumbs" / f"{k:03d}.png").write_bytes(thumbnail(k))
    text = json.dumps(data, separators=(",", ":"))
    (pack_dir / "pack.clip-index.json").write_text(text)
    (pack_dir / "truncated.clip-index.json").write_text(text[: len(text) * 6 // 10])
    (pack_dir / "foreign.clip-index.json").write_text(json.dumps({"format": "something-else", "items": []}))
    (pack_dir / "other-model.clip-index.json").write_text(json.dumps(dict(data, model="rocca-vit-b-32-fp32")))
    (pack_dir / "miscounted.clip-index.json").write_text(json.dumps(dict(data, count=data["count"] + 5)))
    damaged = json.loads(text)
    damaged["items"][3]["embedding"] = damaged["items"][3]["embedding"][:-12] + "!!!!"
    (pack_dir / "damaged.clip-index.json").write_text(json.dumps(damaged))
    server = LiveServer(tmp_path_factory.mktemp("pack-server"), models)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser, pack_server):
    context = browser.new_context(viewport=PW.VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(PW.ACTION_TIMEOUT_MS)
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(pack_server.url + "search.html?model=tiny-reference")
    page.wait_for_function("document.body.dataset.state && document.body.dataset.state !== 'loading'",
                           timeout=PW.BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "ready"
    page.errors = errors
    yield page
    context.close()


def load_pack(page, url: str) -> dict:
    """search.importPack(url), started and then waited for (see test_search_page's 10,000-image
    test: an awaited evaluation's promise was now and then reported collected by Chromium)."""
    page.evaluate("""url => {
        window.settled = null;
        search.importPack(url).then(
            (value) => { window.settled = { ok: true, value }; },
            (err) => { window.settled = { ok: false, message: String(err.message ?? err) }; });
    }""", url)
    page.wait_for_function("window.settled !== null", polling=20)
    return page.evaluate("window.settled")


def native_top(native: Native, q: np.ndarray, k: int = 10) -> list[tuple[str, float]]:
    return native.rank(q)[:k]


def query_vector(native: Native, spec: dict) -> np.ndarray:
    positives = native.text_embeds(split(spec.get("text")))
    if spec.get("examplePath"):
        positives.append(native.embeds[native.paths.index(spec["examplePath"])])
    return combine(positives, native.text_embeds(split(spec.get("negative"))))


# --------------------------------------------------------------------------------------------------

def test_compact_scores_agree_with_float32_and_top_ten_is_the_same(page, folder, native):
    stats = open_folder(page, folder[0])
    assert stats["indexed"] == len(native.paths)
    paths = page.evaluate("search.index.items.map((i) => i.path)")
    specs = TEXT_QUERIES + [{"examplePath": native.paths[k]} for k in (0, 7, 20)]
    worst = 0.0
    compact_top_same = 0
    for spec in specs:
        q = query_vector(native, spec)
        compact = page.evaluate("""q => search.index.rank(Float64Array.from(q), { compact: true })
                                   .then((r) => ({ ids: Array.from(r.ids), scores: Array.from(r.scores) }))""", q.tolist())
        assert len(compact["ids"]) == len(native.paths)
        exact = dict(native.rank(q))
        diffs = [abs(s - exact[paths[i]]) for i, s in zip(compact["ids"], compact["scores"])]
        assert max(diffs) <= SCORE_TOLERANCE, (spec, max(diffs))
        worst = max(worst, max(diffs))
        want = native_top(native, q)
        compact_top_same += [paths[i] for i in compact["ids"][:10]] == [p for p, _ in want]
        # What the page shows: the compact ranking with its exact head.
        got = page.evaluate("s => search.rank(s, 10)", spec)["top"]
        assert [r["path"] for r in got] == [p for p, _ in want], spec
        assert max(abs(r["score"] - s) for r, (_, s) in zip(got, want)) <= 1e-4, spec
    # Zero-shot: compact probabilities within what the score tolerance allows (100 x the cosine).
    labels = np.stack(native.text_embeds(LABELS))
    lab = unit(labels)
    compact = page.evaluate("""l => search.index.zeroShot(l.map((v) => Float64Array.from(v)), 100, { compact: true })
                               .then((z) => ({ label: Array.from(z.label), prob: Array.from(z.prob) }))""", lab.tolist())
    probs = pyapp.zero_shot_probs(native.embeds, labels)
    ids = {p: k for k, p in enumerate(paths)}
    prob_diff = max(abs(compact["prob"][ids[p]] - float(row.max())) for p, row in zip(native.paths, probs))
    agree = np.mean([compact["label"][ids[p]] == int(np.argmax(row)) for p, row in zip(native.paths, probs)])
    print(f"{len(specs)} queries on {len(native.paths)} images: compact scores within {worst:.5f} of float32 "
          f"(tolerance {SCORE_TOLERANCE}); compact top-10 alone in the same order for {compact_top_same}/{len(specs)}, "
          f"the page's for all; zero-shot compact: best label agrees for {agree:.3f}, prob within {prob_diff:.4f}")
    assert page.errors == []


def test_page_imports_a_clip_web_index_file_and_ranks_like_native(page, index_file, native):
    page.evaluate("search.forget()")
    before = page.evaluate("search.stats().opened")
    page.set_input_files("#import-input", str(index_file))  # the page's "Import index" button
    page.wait_for_function(f"search.stats().opened > {before} && search.stats().state === 'done'")
    stats = page.evaluate("search.stats()")
    assert stats["indexed"] == len(native.paths) and stats["name"] == FOLDER
    skipped = {s["path"]: s["reason"] for s in stats["skipped"]}
    for p in CORRUPT:
        assert skipped[p] == native.failed[p]
    for spec in TEXT_QUERIES + [{"examplePath": native.paths[5]}]:
        assert_same_ranking(page.evaluate("s => search.query(s)", spec), native.query(spec), json.dumps(spec))
    got = page.evaluate("labels => search.zeroShot(labels)", LABELS)
    probs = pyapp.zero_shot_probs(native.embeds, np.stack(native.text_embeds(LABELS)))
    expected = {p: (LABELS[int(np.argmax(row))], float(row.max())) for p, row in zip(native.paths, probs)}
    for r in got:
        assert r["label"] == expected[r["path"]][0] and abs(r["prob"] - expected[r["path"]][1]) < 1e-4, r
    page.evaluate("search.zeroShot([])")


def test_pack_from_a_url_is_searchable_with_thumbnails(page, pack_server, native):
    page.evaluate("search.forget()")
    page.fill("#pack-url", PACK_URL)
    page.click("#load-pack")  # the page's own form
    page.wait_for_function("search.stats().state === 'done' && search.stats().total > 0")
    stats = page.evaluate("search.stats()")
    assert stats["indexed"] == len(native.paths) and stats["name"] == FOLDER
    for spec in TEXT_QUERIES[:3]:
        assert_same_ranking(page.evaluate("s => search.query(s)", spec), native.query(spec), json.dumps(spec))
    # Thumbnails from the pack's own URLs, on show.
    page.wait_for_function("""[...document.querySelectorAll('#grid .card img')].length > 0 &&
                              [...document.querySelectorAll('#grid .card img')].slice(0, 7).every((i) => i.complete && i.naturalWidth === 48)""")
    src = page.evaluate("document.querySelector('#grid .card img').src")
    assert src.startswith(pack_server.url + "models/packs/holiday/thumbs/"), src
    # And through the API, with an example from the pack: nothing is embedded for the images.
    embedded = page.evaluate("search.stats().embedded")
    result = load_pack(page, PACK_URL)
    assert result["ok"], result
    ranking = page.evaluate("p => search.query({examplePath: p})", native.paths[4])
    assert_same_ranking(ranking, native.query({"examplePath": native.paths[4]}), "pack example")
    assert page.evaluate("search.stats().embedded") == embedded
    assert page.errors == []


@pytest.mark.parametrize("name, message", [
    ("missing.clip-index.json", "HTTP 404"),
    ("truncated.clip-index.json", "not valid JSON, the file may be truncated or damaged"),
    ("foreign.clip-index.json", "not a clip-web search index"),
    ("other-model.clip-index.json", 'made with the model "rocca-vit-b-32-fp32", but "tiny-reference" is loaded'),
    ("miscounted.clip-index.json", "truncated or damaged"),
    ("damaged.clip-index.json", "its embedding is not base64"),
])
def test_bad_packs_are_refused_and_nothing_is_lost(page, native, name, message):
    if page.evaluate("search.stats().total") != len(native.paths):
        assert load_pack(page, PACK_URL)["ok"]
    before = page.evaluate("search.stats()")
    result = load_pack(page, PACK_URL.replace("pack.clip-index.json", name))
    assert not result["ok"] and message in result["message"], result
    after = page.evaluate("search.stats()")
    assert (after["total"], after["indexed"], after["name"], after["opened"]) == \
        (before["total"], before["indexed"], before["name"], before["opened"])
    spec = TEXT_QUERIES[0]
    assert_same_ranking(page.evaluate("s => search.query(s)", spec), native.query(spec), f"after {name}")
    # The page says so too, through its form.
    page.fill("#pack-url", PACK_URL.replace("pack.clip-index.json", name))
    page.click("#load-pack")
    page.wait_for_function("m => document.querySelector('#search-error').textContent.includes(m)", arg=message)
    assert page.evaluate("search.stats().total") == before["total"]


ZERO_SHOT_PATHS_JS = """async ({ rows, d, labels, seed }) => {
    const { CompactVectors } = await import('/js/search/compact-vectors.js');
    let s = seed;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
    const simd = new CompactVectors(rows, d);
    const scalar = new CompactVectors(rows, d);
    scalar.module = null;  // the JavaScript loop, as where WebAssembly SIMD is missing
    const raw = new Float32Array(d);
    for (let k = 0; k < rows; k++) {
        if (k % 5 === 2) continue;  // rows never set take no part
        for (let i = 0; i < d; i++) raw[i] = rnd() + (k % 3) * 0.05;
        simd.set(k, raw);
        scalar.set(k, raw);
    }
    const unitQ = () => { const q = Float64Array.from({ length: d }, rnd); const n = Math.hypot(...q); return q.map((x) => x / n); };
    const ls = Array.from({ length: labels }, unitQ);
    const a = simd.zeroShot(ls, 100), b = scalar.zeroShot(ls, 100);
    // Label by label, as a ranking scores them: the reference for the grouped, online softmax.
    const per = ls.map((l) => Array.from(simd.scores(l)));
    return { simd: simd.simd, present: Array.from(simd.present), per,
             a: { label: Array.from(a.label), prob: Array.from(a.prob), order: Array.from(a.order) },
             b: { label: Array.from(b.label), prob: Array.from(b.prob), order: Array.from(b.order) } };
}"""


@pytest.mark.parametrize("labels", [1, 10, 37])
def test_zero_shot_in_one_pass_equals_label_by_label_scoring(page, labels):
    """The zero-shot kernel scores up to 16 labels per pass over the matrix, with the softmax
    computed online: equal to softmax(100 x each label's compact scores), the same with or without
    WebAssembly SIMD, the order by label then confidence."""
    got = page.evaluate(ZERO_SHOT_PATHS_JS, {"rows": 5000, "d": 512, "labels": labels, "seed": 11 + labels})
    assert got["simd"] is True
    assert got["a"] == got["b"]
    present = np.array(got["present"], dtype=bool)
    logits = 100 * np.array(got["per"], dtype=np.float64).T[present]  # (n, labels)
    e = np.exp(logits - logits.max(1, keepdims=True))
    probs = e / e.sum(1, keepdims=True)
    label = np.array(got["a"]["label"])[present]
    prob = np.array(got["a"]["prob"])[present]
    assert (label == probs.argmax(1)).all()
    assert np.abs(prob - probs.max(1)).max() < 1e-6
    order = got["a"]["order"]
    keys = [(got["a"]["label"][k], -got["a"]["prob"][k], k) for k in order]
    assert len(order) == present.sum() and keys == sorted(keys)


ZERO_SHOT_TWO_THREADS_JS = """async ({ rows, d, labels, seed }) => {
    // The search worker as the page uses it (vector-client.js): it splits a sort this large over its
    // helper thread. The reference: the same rows in a CompactVectors of this page, one thread.
    const { VectorClient } = await import('/js/search/vector-client.js');
    const { CompactVectors } = await import('/js/search/compact-vectors.js');
    let s = seed;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
    const client = new VectorClient();
    await client.reset(rows);
    const one = new CompactVectors(rows, d);
    for (let k = 0; k < rows; k++) {
        if (k % 7 === 3) continue;  // rows never set take no part
        const raw = Float32Array.from({ length: d }, () => rnd() + (k % 3) * 0.05);
        one.set(k, raw);
        client.put(k, raw);
    }
    const unitQ = () => { const q = Float64Array.from({ length: d }, rnd); const n = Math.hypot(...q); return q.map((x) => x / n); };
    const ls = Array.from({ length: labels }, unitQ);
    const z = await client.zeroShot(ls, 100, { compact: true });
    const stats = await client.stats();
    const ref = one.zeroShot(ls, 100);
    const same = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
    const out = { threads: stats.zeroShotThreads, helper: stats.zeroShotHelper, count: stats.count,
                  same: Object.fromEntries(['label', 'prob', 'order', 'orderProb'].map((k) => [k, same(z[k], ref[k])])) };
    client.client.terminate();
    return out;
}"""


@pytest.mark.parametrize("labels", [10, 37])
def test_large_zero_shot_on_two_threads_equals_one_thread(page, labels):
    """A zero-shot sort of a large collection runs on the search worker and its helper thread
    (shared memory, half the rows each; zero-shot-helper.js) and gives, bit for bit, the labels,
    probabilities and order of one thread. 37 labels: three groups, each adding to the shared
    softmax state."""
    got = page.evaluate(ZERO_SHOT_TWO_THREADS_JS, {"rows": 40000, "d": 512, "labels": labels, "seed": 5 + labels})
    assert got["helper"] == "ready" and got["threads"] == 2, got
    assert got["count"] == 40000 - len(range(3, 40000, 7))
    assert got["same"] == {"label": True, "prob": True, "order": True, "orderProb": True}, got
