"""The same numbers in Firefox ESR and WebKitGTK: the runtime boots cross-origin isolated,
pyapp in Pyodide is bit-identical to CPython (every image of the corpus, the golden tokens), the
client's embeddings equal torch's (images of every decoder path, hard texts), the JPEG self-check
trusts the browser's decoder, the widget works on another origin, and bad input gives a clear
error that leaves the page working. Each browser boots once for the module (drivers.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pyapp
from drivers import BOOT_TIMEOUT_S, DIAGNOSE_TIMEOUT_S, DRIVERS, boot
from test_demo_pages import GOLDEN_TOKENS, IMAGES, TEXTS, assert_matches_torch
from test_widget import HostSite, host_page

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pyapp"))
from image_corpus import generate_image_corpus  # noqa: E402

MANIFEST_ID = "tiny-reference"

CLIENT = """async () => {
  if (!window.testClip) {
    const { createClip } = await import('/js/clip.js');
    window.testClipProgress = [];  // the last events, for the report if it never settles
    const onProgress = (p) => { window.testClipProgress = window.testClipProgress.slice(-20).concat([JSON.stringify(p).slice(0, 300)]); };
    window.testClip = await createClip({ model: 'tiny-reference', onProgress });
  }
  return true;
}"""

# The test client's last progress events, for a client that never settled (the driver's diagnose()
# adds every runtime's state, the client's included).
STUCK_CLIENT = "async () => window.testClipProgress ?? null"


# The page's own Python snapshot (made in a throwaway worker, or the server's adopted) is stored
# once the page is idle: waited for, so that the test client restores it.
OWN_SNAPSHOT = """async () => {
  runtime.snapshotWhenIdle();
  for (let i = 0; i < 600; i++) {
    const made = (await runtime.info()).pythonStatus?.snapshot?.made;
    if (made && !made.pending) return made;
    await new Promise((r) => setTimeout(r, 200));
  }
  return null;
}"""


@pytest.fixture(scope="module", params=sorted(DRIVERS))
def other(request, live_server):
    driver = boot(request.param, live_server.url + f"?model={MANIFEST_ID}")
    try:
        made = driver.evaluate(OWN_SNAPSHOT)
        assert made and made["ok"] is True and made["stored"] is True, made
        try:
            driver.evaluate(CLIENT, timeout=BOOT_TIMEOUT_S)
        except TimeoutError as err:
            stuck = driver.evaluate(STUCK_CLIENT, timeout=DIAGNOSE_TIMEOUT_S)
            raise AssertionError(f"{request.param}: createClip did not settle; its progress: {stuck}\n{driver.diagnose()}") from err
        yield driver
    finally:
        driver.close()


@pytest.fixture(scope="module")
def corpus():
    return dict(generate_image_corpus())


@pytest.fixture(scope="module")
def torch_clip(tiny_model_dir):
    from torch_reference import TorchClip

    return TorchClip(tiny_model_dir / "checkpoint")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_boots_isolated_with_threads(other):
    info = other.evaluate("async () => { const i = await testClip.info(); return { i, ua: navigator.userAgent, iso: self.crossOriginIsolated }; }")
    assert info["iso"] is True, info["ua"]
    assert info["i"]["crossOriginIsolated"] is True and info["i"]["threads"] >= 1
    assert info["i"]["versions"]["pyodide"] == "0.27.7"
    engine = "Firefox/" if other.name == "firefox" else "AppleWebKit/"
    assert engine in info["ua"] and "Chrome/" not in info["ua"]
    # A first visit: the page's own runtime restored the snapshot the server built under Node,
    # over the precompiled stdlib, numpy and Pillow imported. WebKitGTK starts a module with other
    # function-table slots than Node and Firefox, so there the server's snapshot is refused before
    # it is used and the page boots normally.
    page = other.evaluate("async () => (await runtime.info()).python.snapshot")
    if other.name == "webkit":
        assert page["restored"] is False and "a fresh module's table has" in page["error"], page
        assert page["error"].endswith("started normally"), page
    else:
        assert page["restored"] is True and page["source"] == "server" and page["error"] is None, page
    # The test client started once the page had stored its own snapshot (made here, or the
    # server's adopted): it restores that, and every parity test below runs on it.
    python = other.evaluate("async () => { const i = await testClip.info(); return [i.python.snapshot, i.timings]; }")
    assert python[0]["restored"] is True and python[0]["source"] == "browser" and python[0]["error"] is None, python
    assert other.evaluate("async () => testClip.runtime.python.timings.precompiled") is True


def test_jpeg_self_check_trusts_this_decoder(other):
    """Firefox and WebKitGTK decode with libjpeg-turbo (browsers.md): they pass, so their colour
    JPEGs take the fast path. Safari's ImageIO would not, and would get Pillow."""
    verdict = other.evaluate("async () => (await testClip.info()).jpegDecoder")
    assert verdict["decoder"] == "browser", verdict


def test_preprocessing_is_bit_identical_to_cpython(other, corpus):
    """Every image of the corpus through the worker's preprocessing, as the pages run it: the same
    float32 bytes as CPython with PyPI's Pillow (or the same typed error)."""
    got = other.evaluate(
        """async (files) => {
          const hex = async (buf) => Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', buf)),
                                                (b) => b.toString(16).padStart(2, '0')).join('');
          const out = {};
          for (const [name, b64] of files) {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            try {
              const t = await testClip.runtime.preprocess(bytes, testClip.manifest);
              out[name] = { sha256: await hex(t.data.buffer), decoder: t.decoder };
            } catch (err) { out[name] = { error: err.code }; }
          }
          return out;
        }""",
        [[name, _b64(data)] for name, data in corpus.items()],
    )
    mismatches, checked = [], 0
    for name, data in corpus.items():
        try:
            native = pyapp.preprocess_image(data)  # (1, 3, 224, 224)
        except pyapp.ClipWebError as exc:
            assert got[name].get("error") == type(exc).__name__, (name, got[name])
            continue
        checked += 1
        colour_jpeg = name.endswith(".jpg") and Image.open(io.BytesIO(data)).mode == "RGB"
        assert got[name]["decoder"] == ("browser" if colour_jpeg else "pillow"), name
        if hashlib.sha256(native.tobytes()).hexdigest() != got[name]["sha256"]:
            mismatches.append(name)
    assert not mismatches, f"{other.name}: {len(mismatches)} images differ from CPython: {mismatches}"
    assert checked >= 25


def test_tokens_equal_openai_golden(other):
    golden = json.loads(GOLDEN_TOKENS.read_text())
    texts = [case["text"] for case in golden]
    ids = other.evaluate(
        """async (texts) => {
          const out = await testClip.runtime.tokenize(texts, testClip.manifest);
          return { dims: out.dims, data: Array.from(out.data) };
        }""",
        texts,
    )
    rows = np.asarray(ids["data"], dtype=np.int32).reshape(len(texts), 77)  # (n, 77)
    wrong = [t for t, r, case in zip(texts, rows, golden) if r.tolist() != case["ids"]]
    assert not wrong, f"{other.name}: {len(wrong)} of {len(texts)} strings tokenize differently: {wrong[:5]}"


def test_image_embeddings_equal_torch(other, corpus, torch_clip):
    embeds = other.evaluate(
        """async (files) => {
          const out = {};
          for (const [name, b64] of files) {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            out[name] = Array.from(await testClip.embedImage(bytes));
          }
          return out;
        }""",
        [[name, _b64(corpus[name])] for name in IMAGES],
    )
    for name in IMAGES:
        reference = torch_clip.image_embeds(pyapp.preprocess_image(corpus[name]))[0]  # (512,)
        assert_matches_torch(np.asarray(embeds[name], dtype=np.float32), reference, f"{other.name} {name}")


def test_text_embeddings_equal_torch(other, torch_clip):
    embeds = other.evaluate("async (texts) => (await testClip.embedText(texts)).map((e) => Array.from(e))", TEXTS)
    reference = torch_clip.text_embeds(pyapp.tokenize(TEXTS))  # (n, 512)
    for text, got, want in zip(TEXTS, embeds, reference):
        assert_matches_torch(np.asarray(got, dtype=np.float32), want, f"{other.name} {text[:30]!r}")


def test_bad_image_gives_a_clear_error_and_the_page_keeps_working(other, corpus):
    out = other.evaluate(
        """async (good) => {
          let error = null;
          try { await testClip.embedImage(new TextEncoder().encode('this is not an image')); }
          catch (err) { error = { code: err.code, message: err.message }; }
          const bytes = Uint8Array.from(atob(good), (c) => c.charCodeAt(0));
          return { error, after: (await testClip.embedImage(bytes)).length };
        }""",
        _b64(corpus["rgb_photo_640x480.png"]),
    )
    assert out["error"]["code"] == "ImageDecodeError", out
    assert "image" in out["error"]["message"].lower()
    assert out["after"] == 512


def test_widget_on_another_origin(other, live_server, torch_clip):
    """The module's last test: it leaves the browser on the host page (a reload of ours costs a boot)."""
    site = HostSite()
    try:
        url = site.add("/widget.html", host_page(live_server.url, f'<clip-widget id="w" mode="text" model="{MANIFEST_ID}"></clip-widget>'))
        other.goto(url)
        got = other.evaluate(
            """async () => {
              for (let i = 0; i < 600 && !window.events.some((e) => e.type === 'clip-ready' || e.type === 'clip-error'); i++) {
                await new Promise((r) => setTimeout(r, 200));
              }
              const w = document.querySelector('#w');
              return { events: window.events.map((e) => e.type), embedding: Array.from(await w.embedText('a diagram')) };
            }"""
        )
    finally:
        site.close()
    assert "clip-ready" in got["events"] and "clip-error" not in got["events"], got["events"]
    want = torch_clip.text_embeds(pyapp.tokenize("a diagram"))[0]
    assert_matches_torch(np.asarray(got["embedding"], dtype=np.float32), want, f"{other.name} widget")
    assert [m for m, *_ in site.log if m == "POST"] == []


def test_large_zero_shot_on_two_threads_equals_one_thread(other, live_server):
    """The search worker's zero-shot helper thread (shared memory, Atomics.wait) runs in Firefox too,
    bit-identical to one thread (test_compact_index.py has the same check in Chromium). WebKitGTK
    here has no SharedArrayBuffer even in a cross-origin-isolated page: the sort runs on one thread,
    says why, and gives the same numbers."""
    from test_compact_index import ZERO_SHOT_TWO_THREADS_JS

    other.open(live_server.url)  # our own origin again (the widget test leaves the browser on another site's page)
    got = other.evaluate(ZERO_SHOT_TWO_THREADS_JS, {"rows": 40000, "d": 512, "labels": 10, "seed": 15})
    if other.name == "webkit":
        assert got["threads"] == 1 and "no shared memory" in got["helper"], got
        assert other.evaluate("async () => [self.crossOriginIsolated, typeof SharedArrayBuffer]") == [True, "undefined"]
    else:
        assert got["helper"] == "ready" and got["threads"] == 2, got
    assert got["same"] == {"label": True, "prob": True, "order": True, "orderProb": True}, got


def test_a_wedged_onnxruntime_worker_is_replaced(other, live_server):
    """Firefox is where onnxruntime's thread pool sometimes never starts (test_onnx_watchdog.py):
    the same fault made on purpose there, once (replaced, the same embeddings) and twice (a clear
    error). WebKitGTK here has no SharedArrayBuffer, which the fault needs (Atomics.wait on shared
    memory), so there it cannot be made."""
    from test_onnx_watchdog import START

    other.open(live_server.url)
    if other.name == "webkit":
        assert other.evaluate("async () => [self.crossOriginIsolated, typeof SharedArrayBuffer]") == [True, "undefined"]
        return
    texts = ["a photo of a cat", "a diagram"]
    unharmed = other.evaluate(START, {"stalls": 0, "texts": texts})
    once = other.evaluate(START, {"stalls": 1, "texts": texts})
    twice = other.evaluate(START, {"stalls": 2, "texts": texts})
    assert unharmed["ok"] and unharmed["restarts"] == 0 and unharmed["threads"] == 2, unharmed
    assert once["ok"] and once["restarts"] == 1, once
    assert np.array_equal(np.float32(once["embeds"]), np.float32(unharmed["embeds"]))
    assert twice["ok"] is False and twice["code"] == "onnx_wedged", twice


# Files as the search page gets them from a folder (a `path` as <input webkitdirectory> gives
# webkitRelativePath; one modification time), handed to search.indexFiles.
INDEX_FILES = """async ({ payload, mtime }) => {
  const files = Object.entries(payload).map(([path, b64]) => {
    const f = new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], path.split('/').pop(), { lastModified: mtime });
    Object.defineProperty(f, 'path', { value: path });
    return f;
  });
  return search.indexFiles(files);
}"""

# A drop of loose files (synthetic: no driver here drags from the desktop), then its stats once done.
DROP_FILES = """async ({ payload, extra }) => {
  const dt = new DataTransfer();
  for (const [path, b64] of Object.entries(payload)) {
    dt.items.add(new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], path.split('/').pop()));
  }
  dt.items.add(new File(['hello'], extra));
  const opened = search.stats().opened;
  document.querySelector('#drop-zone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  for (let i = 0; i < 600; i++) {
    const s = search.stats();
    if (s.opened > opened && ['done', 'cancelled'].includes(s.state)) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  return search.stats();
}"""


@pytest.fixture(scope="module")
def search_folder(tmp_path_factory, tiny_model_dir):
    """A small folder (every image format, a corrupt file, a text file) and its native rankings."""
    from test_search_page import CORRUPT, FOLDER, NOT_IMAGES, Native, write_folder

    every = write_folder(tmp_path_factory.mktemp("search-other"))
    by_format = {}
    for path in sorted(every):
        by_format.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    picked = [p for paths in by_format.values() for p in paths[:3] if p not in CORRUPT | NOT_IMAGES]
    files = {p: every[p] for p in [*picked, f"{FOLDER}/broken.jpg", f"{FOLDER}/notes.txt"]}
    return files, Native(tiny_model_dir, files)


def test_search_page_indexes_and_ranks_like_native(other, live_server, search_folder):
    """The search page in this browser: files in (as a folder gives them, and dropped), every format
    through Python and the model, rankings equal to pyapp + onnxruntime CPU's, failures named, and
    the page's IndexedDB cache reused after a reload. (A real folder cannot be given to a driven
    Firefox or WebKitGTK here: BiDi's input.setFiles refuses a directory and WebKitWebDriver's file
    upload gives an empty list; the picker-less path, <input webkitdirectory>, is what their users get.)"""
    from test_search_page import FOLDER, TEXT_QUERIES, assert_same_ranking

    files, native = search_folder
    payload = {p: _b64(d) for p, d in files.items()}
    other.open(live_server.url + "search.html?model=tiny-reference")
    assert other.evaluate("async () => [typeof window.showDirectoryPicker, document.querySelector('#folder-input').webkitdirectory]") == ["undefined", True]

    stats = other.evaluate(INDEX_FILES, {"payload": payload, "mtime": 1700000000000})
    assert stats["state"] == "done" and stats["name"] == FOLDER, stats
    assert stats["indexed"] == len(native.paths) and stats["embedded"] == len(native.paths), stats
    assert {s["path"] for s in stats["skipped"]} == {f"{FOLDER}/broken.jpg", f"{FOLDER}/notes.txt"}, stats["skipped"]
    for spec in [*TEXT_QUERIES[:4], {"examplePath": native.paths[2]}, {"text": "a photo of a cat", "examplePath": native.paths[-1]}]:
        assert_same_ranking(other.evaluate("async (spec) => search.query(spec)", spec), native.query(spec), f"{other.name} {spec}")

    # After a reload, the same files come from this browser's cache: nothing is embedded again.
    other.open(live_server.url + "search.html?model=tiny-reference")
    again = other.evaluate(INDEX_FILES, {"payload": payload, "mtime": 1700000000000})
    assert again["embedded"] == 0 and again["cached"] == again["indexed"] == stats["indexed"], again
    spec = TEXT_QUERIES[1]
    assert_same_ranking(other.evaluate("async (spec) => search.query(spec)", spec), native.query(spec), f"{other.name} cached")

    dropped = dict(list(payload.items())[:3])
    got = other.evaluate(DROP_FILES, {"payload": dropped, "extra": "readme.md"})
    assert got["state"] == "done" and got["indexed"] == 3 and [s["path"] for s in got["skipped"]] == ["readme.md"], got
