"""Tensors take the short way: the Python worker hands pixel values and token ids to the
onnxruntime worker over their MessageChannel, so the page sends bytes or texts and receives only
embeddings. Proved by recording every message between the page and its workers, in real
Chromium on the tiny reference model; the old path (`direct: false`) is recorded too, so the test
would see a tensor if one crossed."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pyapp"))
from image_corpus import generate_image_corpus  # noqa: E402

PIXELS = 3 * 224 * 224
EMBED_DIM = 512

# Records the typed arrays in each message between this page and any worker created afterwards:
# what the page posts, and what reaches the `onmessage` handlers it sets.
RECORDER = """() => {
  if (window.crossings) return;
  window.crossings = [];
  const arrays = (value, found = [], depth = 0) => {
    if (depth > 6 || value === null || typeof value !== 'object') return found;
    if (ArrayBuffer.isView(value)) found.push({ type: value.constructor.name, length: value.length });
    else if (value instanceof ArrayBuffer) found.push({ type: 'ArrayBuffer', length: value.byteLength });
    else for (const v of Object.values(value)) arrays(v, found, depth + 1);
    return found;
  };
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (msg, transfer) {
    crossings.push({ to: 'worker', method: msg?.method, arrays: arrays(msg?.params) });
    return post.call(this, msg, transfer);
  };
  const handler = Object.getOwnPropertyDescriptor(Worker.prototype, 'onmessage');
  Object.defineProperty(Worker.prototype, 'onmessage', {
    set(fn) {
      handler.set.call(this, (e) => {
        crossings.push({ to: 'page', event: e.data?.event, arrays: arrays(e.data?.result) });
        return fn(e);
      });
    },
    get() { return handler.get.call(this); },
  });
}"""

EMBED_BOTH = """async ([b64, direct]) => {
  const { createClip } = await import('/js/clip.js');
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const clip = await createClip({ model: 'tiny-reference', runtimeOptions: { direct } });
  crossings.length = 0;
  const image = await clip.embedImage(bytes.slice());
  const texts = await clip.embedText(['a photo of a cat', 'a much longer caption of a dog on a beach']);
  const index = clip.runtime;
  const prepared = await Promise.all([0, 1].map(() => index.prepareImage(bytes.slice(), clip.manifest)));
  const batch = await index.embedPrepared(clip.manifest, prepared.map((p) => p.handle));
  const seen = crossings.splice(0);
  clip.dispose();
  return { image: Array.from(image), texts: texts.map((t) => Array.from(t)),
           batch: { data: Array.from(batch.data), dims: batch.dims }, seen };
}"""


@pytest.fixture(scope="module")
def channel_page(page_session):
    page_session.open("/?model=tiny-reference")
    page_session.page.evaluate(RECORDER)
    return page_session


@pytest.fixture(scope="module")
def jpeg_b64():
    return base64.b64encode(dict(generate_image_corpus())["rgb_photo_1024x768.jpg"]).decode()


def _float_arrays(seen, to):
    return [a["length"] for c in seen if c["to"] == to for a in c["arrays"] if a["type"] == "Float32Array"]


def _int_arrays(seen):
    return [a for c in seen for a in c["arrays"] if a["type"] in ("Int32Array", "BigInt64Array")]


def test_only_bytes_and_embeddings_cross_the_page(channel_page, jpeg_b64):
    out = channel_page.page.evaluate(EMBED_BOTH, [jpeg_b64, True])
    seen = out["seen"]
    sent = [c["method"] for c in seen if c["to"] == "worker"]
    assert sent.count("embedImage") == 1 and sent.count("embedText") == 1
    assert "run" not in sent and "preprocess" not in sent and "tokenize" not in sent
    # Out: the image file's bytes; in: (1, 512), (2, 512) and the batch's (2, 512), nothing else.
    assert _float_arrays(seen, "worker") == []
    assert sorted(_float_arrays(seen, "page")) == [EMBED_DIM, 2 * EMBED_DIM, 2 * EMBED_DIM]
    assert _int_arrays(seen) == []
    assert out["batch"]["dims"] == [2, EMBED_DIM]


def test_the_old_path_carried_tensors_and_gives_the_same_embeddings(channel_page, jpeg_b64):
    direct = channel_page.page.evaluate(EMBED_BOTH, [jpeg_b64, True])
    through_page = channel_page.page.evaluate(EMBED_BOTH, [jpeg_b64, False])
    seen = through_page["seen"]
    # What the recorder sees when tensors do cross: pixels both ways, ids both ways.
    assert PIXELS in _float_arrays(seen, "page") and 2 * PIXELS in _float_arrays(seen, "worker")
    assert _int_arrays(seen)
    # Same bytes in, same numbers out: the channel changes the route, not the arithmetic.
    assert direct["image"] == through_page["image"]
    assert direct["texts"] == through_page["texts"]
    assert direct["batch"] == through_page["batch"]
    batch = np.asarray(direct["batch"]["data"], dtype=np.float32).reshape(2, EMBED_DIM)  # (2, 512)
    single = np.asarray(direct["image"], dtype=np.float32)  # (512,)
    assert np.abs(batch - single).max() <= 1e-4  # a batch of two copies: each equals the single run


def test_a_run_waits_for_its_encoder_and_a_failed_load_is_reported(channel_page, jpeg_b64):
    """Python may ask for a run before the onnxruntime worker has the session: the run waits for
    the load. A load that fails (a model URL that is not there) fails the embed with its error."""
    result = channel_page.page.evaluate(
        """async (b64) => {
          const { createClip, listModels } = await import('/js/clip.js');
          const listing = await listModels();
          const good = listing.models.find((m) => m.id === 'tiny-reference');
          const broken = { ...good, id: 'missing-model', image: { ...good.image, url: '/models/nowhere/image.onnx' } };
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const clip = await createClip({ model: good, encoders: ['text'] }); // image not loaded yet
          const waited = (await clip.embedImage(bytes.slice())).length;
          const other = await createClip({ model: broken, encoders: ['text'] });
          let error = null;
          try { await other.embedImage(bytes.slice()); } catch (err) { error = err.message; }
          const stillWorks = (await clip.embedText('still working')).length;
          clip.dispose(); other.dispose();
          return { waited, error, stillWorks };
        }""",
        jpeg_b64,
    )
    assert result["waited"] == EMBED_DIM
    assert result["error"] and "404" in result["error"]
    assert result["stillWorks"] == EMBED_DIM


def test_fixed_length_encoder_keeps_77_ids_for_the_page(channel_page):
    """A fixed-length text encoder runs the 77 ids themselves: the page's copy of them (details)
    must not be the buffer that moved to the onnxruntime worker."""
    out = channel_page.page.evaluate(
        """async () => {
          const { createClip, listModels } = await import('/js/clip.js');
          const good = (await listModels()).models.find((m) => m.id === 'tiny-reference');
          const fixed = { ...good, id: 'tiny-fixed-length', text: { ...good.text, dynamic_sequence: false } };
          const texts = ['a photo of a cat', 'a dog'];
          const [a, b] = [await createClip({ model: good }), await createClip({ model: fixed })];
          const dynamic = await a.embedText(texts, { details: true });
          const full = await b.embedText(texts, { details: true });
          a.dispose(); b.dispose();
          return { dims: [dynamic.modelInputDims, full.modelInputDims, full.inputIds.dims],
                   ids: Array.from(full.inputIds.data).slice(0, 8), same: Array.from(dynamic.inputIds.data).join() === Array.from(full.inputIds.data).join(),
                   diff: Math.max(...full.embeddings.map((e, i) => Math.max(...e.map((v, j) => Math.abs(v - dynamic.embeddings[i][j]))))) };
        }"""
    )
    assert out["dims"] == [[2, 7], [2, 77], [2, 77]]
    assert out["ids"][0] == 49406 and out["same"]
    assert out["diff"] <= 1e-4


def test_embed_images_batches_and_names_a_bad_file(channel_page):
    """embedImages(list): the same embeddings as embedImage one by one (batches of 2 here, so
    5 images take 3 runs), and a bad file fails the call with its position; the next call works."""
    corpus = dict(generate_image_corpus())
    names = ["rgb_photo_1024x768.jpg", "p_transparency_250x180.png", "gray_jpeg_L_350x260.jpg",
             "webp_lossless_260x190.webp", "size_225x301.png"]
    out = channel_page.page.evaluate(
        """async ([files, bad]) => {
          const { createClip } = await import('/js/clip.js');
          const clip = await createClip({ model: 'tiny-reference' });
          const decode = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          crossings.length = 0;
          const batched = (await clip.embedImages(files.map(decode), { batch: 2 })).map((e) => Array.from(e));
          const runs = crossings.filter((c) => c.method === 'embedPrepared').length;
          const single = [];
          for (const f of files) single.push(Array.from(await clip.embedImage(decode(f))));
          let error = null;
          try { await clip.embedImages([decode(files[0]), decode(bad), decode(files[1])]); } catch (err) { error = err.message; }
          const after = (await clip.embedImages([decode(files[2])])).length;
          const empty = (await clip.embedImages([])).length;
          clip.dispose();
          return { batched, single, runs, error, after, empty };
        }""",
        [[base64.b64encode(corpus[n]).decode() for n in names], base64.b64encode(b"not an image at all").decode()],
    )
    assert out["runs"] == 3
    batched = np.asarray(out["batched"], dtype=np.float32)  # (5, 512)
    single = np.asarray(out["single"], dtype=np.float32)  # (5, 512)
    assert batched.shape == (5, EMBED_DIM)
    assert np.abs(batched - single).max() <= 1e-4
    assert out["error"].startswith("image 2 of 3: ")
    assert out["after"] == 1 and out["empty"] == 0
