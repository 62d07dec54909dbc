// The search page's index: a collection of image files, their embeddings, and the pipeline that
// makes them. No DOM here: the page listens to 'progress' / 'open' / 'done' events.
//
// Pipeline. Preprocessing runs in the Pyodide worker, inference in the onnxruntime worker, so the
// two overlap when both have work: while one batch is in the model, the next files are read and
// decoded. A small bounded queue (queueSize preprocess calls in flight or waiting) keeps the model
// fed without reading a large folder into memory; whatever is ready when the model frees up goes
// in as one batch (up to maxBatch; the models have a dynamic batch axis).
//
// Cache. Every embedding (and every decode failure) goes to IndexedDB under model id + path +
// size + last-modified (store.js), so reopening a folder embeds only new or changed files.
//
// Vectors. The page keeps no embeddings: each one goes to the search worker (vector-client.js),
// which holds the collection as one compact matrix and ranks it. The raw float32 embeddings stay
// in IndexedDB only (what Export index and "more like this" read back).
//
// search/ owns the search page's data: the index and its pipeline (this file), the IndexedDB
// store, folder listing, query math, the result grid and the index-import worker.
// May import: clip.js and runtime/ (lower layers). Never ui/, widget/ or pages/.

import { SearchStore, recordKey, cacheRecord } from './store.js';
import { classify, collectionRoot } from './folder-files.js';
import { floatsToBase64 } from './query.js';
import { INDEX_FORMAT, INDEX_VERSION } from './index-file.js';
import { VectorClient } from './vector-client.js';

export { INDEX_FORMAT };

// Cache records looked up per step when a folder opens: a step's embeddings go to the worker
// before the next is read, so a 100,000-image folder never has them all in the page at once.
const LOOKUP_STEP = 2000;
// Rows per step when an import is written to the cache, and per step of the export file.
const STORE_STEP = 500;
const EXPORT_STEP = 500;
// Items made per step when an index is imported (a few milliseconds each).
const ITEM_STEP = 2000;

// Failures that say something about the file (Python's exception types), worth caching; anything
// else (a worker restarting, a model switch) is retried next time.
const FILE_ERROR = /Error$/;

const yieldToPage = () => new Promise((r) => setTimeout(r, 0));

function keyString(model, item) {
  return JSON.stringify(recordKey(model, item.path, item.size, item.lastModified));
}

export class SearchIndex extends EventTarget {
  constructor({ store = null, queueSize = 4, maxBatch = 4 } = {}) {
    super();
    this.storePromise = store ? Promise.resolve(store) : SearchStore.open();
    this.queueSize = queueSize;
    this.maxBatch = maxBatch;
    this.clip = null;
    this.model = null; // the id of the model the embeddings in items come from
    this.items = []; // { id, path, size, lastModified, file, status, embedding, unit, reason, source }
    this.skipped = []; // files that are not images: { path, reason }
    this.root = '';
    this.name = '';
    this.state = 'empty'; // empty | waiting (no model yet) | indexing | cancelled | done
    this.opened = 0; // collections opened this session
    this.embedded = 0; // images through the image encoder this session
    this.runs = 0; // image-encoder calls (batches) this session
    this.busy = { preprocess: 0, inference: 0 }; // ms inside the workers this session
    this.token = null;
    this.task = Promise.resolve();
    this.writing = Promise.resolve();
    this.textCache = new Map();
    this.rate = { times: [], start: 0, startEmbedded: 0 };
    this.vectors = new VectorClient();
    this.source = null; // { kind: 'folder' | 'file' | 'pack', url? }: where the collection came from
  }

  get modelId() {
    return this.clip?.manifest.id ?? null;
  }

  emit(name, detail = {}) {
    this.dispatchEvent(new CustomEvent(name, { detail }));
  }

  // A model is ready (first load or a switch): embeddings of another model no longer apply.
  async attach(clip) {
    await this.stop();
    // (Compared with the last model attached, not this.clip: a reload detaches first.)
    const changed = this.model !== clip.manifest.id;
    this.clip = clip;
    this.model = clip.manifest.id;
    if (changed) {
      this.textCache.clear();
      // An imported index belongs to its model: items without a file cannot be embedded again.
      this.items = this.items.filter((i) => i.file);
      this.items.forEach((item, id) => {
        item.id = id;
        this.reset(item);
      });
      await this.vectors.reset(this.items.length);
    }
    if (this.items.length) this.start();
  }

  async detach() {
    await this.stop();
    this.clip = null;
    if (this.items.length) this.setState('waiting');
  }

  reset(item) {
    item.status = 'pending';
    item.reason = null;
    item.source = null;
  }

  setState(state) {
    this.state = state;
    this.emit('progress', this.progress());
  }

  // entries: from folder-files.js. Replaces the collection and starts indexing it.
  async open(entries, { name = null } = {}) {
    await this.stop();
    await this.writing; // an import still being cached finishes first: its rows go with the reset
    const { images, skipped } = classify(entries);
    await this.vectors.reset(images.length); // before the new items show: no window where they are counted but not queued
    this.root = collectionRoot(entries);
    this.name = name ?? (this.root || `${images.length} files`);
    this.items = images.map((e, id) => ({ id, path: e.path, size: e.size, lastModified: e.lastModified, file: e.file }));
    this.items.forEach((item) => this.reset(item));
    this.skipped = skipped;
    this.source = { kind: 'folder' };
    this.opened += 1;
    this.emit('open', { name: this.name });
    if (this.clip) this.start();
    else this.setState('waiting');
    return this.task;
  }

  start() {
    if (!this.clip) return this.task;
    const token = { cancelled: false };
    this.token = token;
    const previous = this.task;
    this.task = previous.then(() => this.run(token)).catch((err) => {
      console.error(err);
      this.emit('error', { message: err.message });
      if (this.token === token) this.setState('cancelled');
    });
    return this.task;
  }

  // Stops after the batch in the model (it cannot be interrupted); decoded images not yet in
  // the model are dropped and stay pending, so resume() picks them up, each exactly once.
  cancel() {
    if (this.token) this.token.cancelled = true;
    return this.task;
  }

  resume() {
    if (this.state === 'indexing') return this.task;
    return this.start();
  }

  async stop() {
    await this.cancel();
    await this.writing;
  }

  async run(token) {
    const clip = this.clip;
    const model = clip.manifest.id;
    const store = await this.storePromise;
    this.setState('indexing');
    this.rate = { times: [], start: performance.now(), startEmbedded: this.embedded };

    // 1. The cache: everything already embedded (or known to fail) for this model.
    const lookup = this.items.filter((i) => i.status === 'pending' && i.source !== 'checked');
    for (let start = 0; start < lookup.length; start += LOOKUP_STEP) {
      const step = lookup.slice(start, start + LOOKUP_STEP);
      const records = await store.getMany(step.map((i) => recordKey(model, i.path, i.size, i.lastModified)));
      if (token.cancelled) return this.finish(token);
      step.forEach((item, k) => {
        const r = records[k];
        if (r?.embedding) this.setEmbedding(item, r.embedding, 'cache');
        else if (r?.error) this.fail(item, r.error, { source: 'cache', quiet: true });
        else item.source = 'checked';
      });
      this.vectors.flush();
    }
    this.emit('progress', this.progress());

    // 2. The pipeline over the rest.
    const todo = this.items.filter((i) => i.status === 'pending');
    await this.pipeline(todo, token, clip, store);
    return this.finish(token, store, model);
  }

  async pipeline(todo, token, clip, store) {
    const { runtime, manifest } = clip;
    const ready = []; // { item, tensor }
    let inflight = 0;
    let next = 0;
    let wake = null;
    const notify = () => {
      const w = wake;
      wake = null;
      w?.();
    };
    const fill = () => {
      while (!token.cancelled && next < todo.length && inflight + ready.length < this.queueSize) {
        const item = todo[next++];
        inflight += 1;
        this.prepare(item, runtime, manifest)
          .then(
            (tensor) => ready.push({ item, tensor }),
            (err) => this.fail(item, err.message, FILE_ERROR.test(err.code ?? '') ? { store, model: manifest.id } : {}),
          )
          .finally(() => {
            inflight -= 1;
            notify();
          });
      }
    };
    for (;;) {
      fill();
      if (token.cancelled) break;
      if (ready.length === 0) {
        if (inflight === 0 && next >= todo.length) break;
        await new Promise((r) => (wake = r));
        continue;
      }
      const batch = ready.splice(0, this.maxBatch);
      fill(); // the next files decode while this batch is in the model
      await this.infer(batch, runtime, manifest, store);
    }
    // Cancelled: let the decodes in flight settle (their results are dropped) so a resume does
    // not race them.
    while (inflight > 0) await new Promise((r) => (wake = r));
    runtime.dropPrepared(ready.splice(0).map((r) => r.tensor.handle));
  }

  async prepare(item, runtime, manifest) {
    let bytes;
    try {
      bytes = new Uint8Array(await item.file.arrayBuffer());
    } catch (err) {
      throw Object.assign(new Error(`could not read the file (${err.name || err.message})`), { code: 'read_failed' });
    }
    const tensor = await runtime.prepareImage(bytes, manifest); // pixel values stay in the Python worker
    this.busy.preprocess += tensor.ms;
    return tensor;
  }

  async infer(batch, runtime, manifest, store) {
    const n = batch.length;
    const model = manifest.id;
    let out;
    try {
      out = await runtime.embedPrepared(manifest, batch.map((b) => b.tensor.handle)); // (n, 512)
    } catch (err) {
      for (const { item } of batch) this.fail(item, `the model failed on it: ${err.message}`);
      return;
    }
    this.runs += 1;
    this.embedded += n;
    this.busy.inference += out.ms;
    const d = out.dims[1];
    const records = [];
    const now = performance.now();
    batch.forEach(({ item }, i) => {
      const embedding = out.data.slice(i * d, (i + 1) * d);
      if (this.modelId === model) this.setEmbedding(item, embedding, 'model');
      this.rate.times.push(now);
      records.push(cacheRecord(model, item.path, item.size, item.lastModified, { embedding }));
    });
    this.rate.times = this.rate.times.slice(-64);
    this.vectors.flush();
    this.persist(store, records);
    this.emit('progress', this.progress());
  }

  // IndexedDB writes are queued, not awaited: the next batch does not wait on the disk.
  persist(store, records) {
    this.writing = this.writing.then(() => store.putMany(records)).catch((err) => console.warn('cache write failed', err));
  }

  // The embedding goes to the search worker; the item only records that it has one.
  setEmbedding(item, embedding, source) {
    this.vectors.put(item.id, embedding);
    item.status = 'done';
    item.reason = null;
    item.source = source;
  }

  // store + model: remember the failure (the file itself is bad). quiet: no event (the cache
  // lookup reports once for thousands of items).
  fail(item, reason, { source = null, store = null, model = null, quiet = false } = {}) {
    item.status = 'failed';
    item.reason = reason;
    item.source = source;
    if (store) {
      this.persist(store, [cacheRecord(model, item.path, item.size, item.lastModified, { error: reason })]);
    }
    if (!quiet) this.emit('progress', this.progress());
  }

  async finish(token, store = null, model = null) {
    if (this.token !== token) return; // superseded: the newer run reports
    const complete = !token.cancelled && this.items.every((i) => i.status !== 'pending');
    this.setState(complete ? 'done' : 'cancelled');
    this.emit('done', this.progress());
    // A complete pass over a folder: drop cached entries of files that changed or went away.
    if (complete && store && this.root && this.items.every((i) => i.file)) {
      const keep = new Set(this.items.map((i) => keyString(model, i)));
      this.writing = this.writing.then(() => store.prune(model, this.root, keep)).catch(() => {});
    }
  }

  // One pass over the items (a 100,000-image collection: the page calls this on every progress).
  progress() {
    const total = this.items.length;
    let done = 0;
    let failed = 0;
    let cached = 0;
    let indexed = 0;
    for (const i of this.items) {
      if (i.status === 'pending') continue;
      done += 1;
      if (i.status === 'failed') failed += 1;
      else if (i.status === 'done') {
        indexed += 1;
        if (i.source === 'cache') cached += 1;
      }
    }
    // Images per second over the last few dozen images: follows the current speed, not the start.
    // (A batch's images share one time: the images finished after the window's first time, over
    // the time since then.)
    const t = this.rate.times;
    let rate = 0;
    const after = t.length - t.filter((x) => x === t[0]).length;
    if (after > 0) rate = after / ((t[t.length - 1] - t[0]) / 1000);
    else if (t.length > 0 && t[0] > this.rate.start) rate = t.length / ((t[0] - this.rate.start) / 1000);
    const left = total - done;
    return { state: this.state, total, done, failed, cached, indexed, left, rate, eta: rate > 0 && left > 0 ? left / rate : null };
  }

  // p: this.progress(), when the caller has it already.
  stats(p = this.progress()) {
    const failed = p.failed ? this.items.filter((i) => i.status === 'failed').map((i) => ({ path: i.path, reason: i.reason })) : [];
    return {
      state: this.state,
      name: this.name,
      root: this.root,
      model: this.modelId,
      opened: this.opened,
      total: p.total,
      indexed: p.indexed,
      pending: p.left,
      cached: p.cached,
      embedded: this.embedded,
      runs: this.runs,
      workerMs: { ...this.busy },
      skipped: [...this.skipped, ...failed].sort((a, b) => (a.path < b.path ? -1 : 1)),
      rate: p.rate,
    };
  }

  // Text prompts -> raw embeddings, one batched model call for the prompts not seen before.
  async embedTexts(texts) {
    const model = this.modelId;
    const missing = [...new Set(texts.filter((t) => !this.textCache.has(`${model}\n${t}`)))];
    if (missing.length) {
      const embeds = await this.clip.embedText(missing);
      missing.forEach((t, i) => this.textCache.set(`${model}\n${t}`, embeds[i]));
    }
    return texts.map((t) => this.textCache.get(`${model}\n${t}`));
  }

  async forget() {
    await this.stop();
    const store = await this.storePromise;
    const removed = this.items.length || this.skipped.length ? await store.forgetRoot(this.root) : 0;
    this.items = [];
    this.skipped = [];
    this.root = '';
    this.name = '';
    this.source = null;
    await this.vectors.reset(0);
    this.setState('empty');
    this.emit('open', { name: '' });
    return removed;
  }

  // The raw embedding of a done item (Float32Array): from the search worker's exact file, else
  // the cache, else (a browser without either) the worker's unit vector.
  async embeddingOf(item) {
    const row = await this.vectors.row(item.id);
    if (row?.raw) return row.raw;
    const store = await this.storePromise;
    const [record] = await store.getMany([recordKey(this.model, item.path, item.size, item.lastModified)]);
    if (record?.embedding) return record.embedding;
    return row ? Float32Array.from(row.unit) : null;
  }

  // Unit query (Float64Array) -> { ids: Uint32Array, scores: Float32Array } over the done items,
  // best first, ties by id (= path order).
  rank(q, options) {
    return this.vectors.rank(q, options);
  }

  // Unit label vectors -> { label, prob } by id and the ids in label, then confidence, order.
  zeroShot(labels, scoring, options) {
    return this.vectors.zeroShot(labels, scoring, options);
  }

  // -> Blob of JSON: { format, version, model, embed_dim, root, items: [{ path, size,
  // lastModified, embedding: base64 little-endian float32 }], skipped }. The embeddings are read
  // back from the cache a step at a time (the page holds none).
  async exportIndex() {
    const done = this.items.filter((i) => i.status === 'done');
    const store = await this.storePromise;
    await this.writing;
    const { d, exact } = await this.vectors.stats();
    const head = {
      format: INDEX_FORMAT, version: INDEX_VERSION, model: this.modelId, embed_dim: done.length ? d : 0,
      name: this.name, root: this.root, created: new Date().toISOString(), count: done.length,
      skipped: this.stats().skipped,
    };
    // Built as a Blob of Blobs, EXPORT_STEP rows each: one Blob of 20,000 strings (27 MB for
    // 10,000 images) is encoded in a single long task.
    const blobs = [new Blob([JSON.stringify(head).slice(0, -1), ',"items":['])];
    for (let start = 0; start < done.length; start += EXPORT_STEP) {
      const step = done.slice(start, start + EXPORT_STEP);
      const first = step[0].id;
      // The exact file holds rows by id: one read for the step's ids. Without it, the cache.
      const block = exact ? await this.vectors.raw(first, step[step.length - 1].id - first + 1) : null;
      const records = exact ? [] : await store.getMany(step.map((i) => recordKey(this.model, i.path, i.size, i.lastModified)));
      const parts = [];
      for (let k = 0; k < step.length; k++) {
        const i = step[k];
        let embedding = block ? block.subarray((i.id - first) * d, (i.id - first + 1) * d) : records[k]?.embedding;
        if (!embedding) embedding = await this.embeddingOf(i);
        const row = { path: i.path, size: i.size, lastModified: i.lastModified, embedding: floatsToBase64(embedding) };
        parts.push((start + k ? ',' : '') + JSON.stringify(row));
      }
      blobs.push(new Blob(parts));
      await yieldToPage();
    }
    blobs.push(new Blob([']}']));
    return new Blob(blobs, { type: 'application/json' });
  }

  // Blob/File/string/object from exportIndex or `clip-web index`. The imported items become the
  // collection; files of the open folder with the same path, size and date are kept, so
  // thumbnails still show. The embeddings also go to the cache, so opening the folder
  // afterwards embeds nothing. Resolves once the collection is searchable; the cache is written
  // after (this.writing).
  async importIndex(source) {
    let spec;
    if (typeof source === 'string') spec = { text: source };
    else if (source instanceof Blob) spec = { blob: source };
    else spec = { object: source };
    return this.load(spec, { kind: 'file', cache: true });
  }

  // A published index of someone else's images (same format; items may name a thumbnail URL,
  // relative to the pack's URL), fetched from a same-origin URL and searched as is: nothing is
  // embedded and nothing is written to the cache.
  async importPack(url) {
    const href = new URL(url, location.href).href;
    return this.load({ url: href }, { kind: 'pack', url: href, cache: false });
  }

  async load(spec, { kind, url = null, cache }) {
    const parsed = await this.vectors.parse({ ...spec, model: this.modelId });
    const { head, paths, sizes, mtimes, thumbnails } = parsed;
    await this.stop();
    const model = this.modelId ?? head.model;
    if (this.modelId && head.model !== this.modelId) {
      // The model changed while the file was read.
      await this.vectors.discard();
      throw new Error(`this index was made with the model "${head.model}", but "${this.modelId}" is loaded: choose that model first`);
    }
    const files = new Map(this.items.filter((i) => i.file).map((i) => [`${i.path}\n${i.size}\n${i.lastModified}`, i.file]));
    const items = new Array(paths.length);
    for (let k = 0; k < paths.length; k++) {
      const item = { id: k, path: paths[k], size: sizes[k], lastModified: mtimes[k], status: 'done', reason: null, source: 'import' };
      item.file = files.get(`${item.path}\n${item.size}\n${item.lastModified}`) ?? null;
      item.thumbnail = thumbnails[k];
      items[k] = item;
      if (k % ITEM_STEP === ITEM_STEP - 1) await yieldToPage();
    }
    await this.vectors.commit();
    this.items = items;
    const listed = Array.isArray(head.skipped) ? head.skipped.filter((s) => s && typeof s.path === 'string') : [];
    const present = listed.length ? new Set(paths) : null;
    this.skipped = listed.filter((s) => !present.has(s.path));
    this.root = typeof head.root === 'string' ? head.root : collectionRoot(items);
    this.name = head.name || this.root || (kind === 'pack' ? 'pack' : 'imported index');
    this.source = { kind, url };
    this.opened += 1;
    if (cache) this.cacheImport(model, items);
    else this.vectors.releaseRaw();
    this.emit('open', { name: this.name, imported: true, pack: kind === 'pack' });
    await yieldToPage(); // the page draws the new collection in one task, its 'done' work in the next
    this.setState('done');
    this.emit('done', this.progress());
    return this.stats();
  }

  // The imported embeddings into the cache. The search worker writes them to IndexedDB itself
  // (seconds of structured cloning at 100,000 records, off the page's thread); where IndexedDB is
  // missing the page's in-memory store takes them, a step at a time, read back from the worker.
  cacheImport(model, items) {
    const vectors = this.vectors;
    this.writing = this.writing.then(async () => {
      const store = await this.storePromise;
      if (store.persistent && (await vectors.cacheImport(model))) return;
      for (let start = 0; start < items.length; start += STORE_STEP) {
        const step = items.slice(start, start + STORE_STEP);
        const raw = await vectors.raw(start, step.length);
        const d = raw.length / step.length;
        await store.putMany(step.map((i, k) => cacheRecord(model, i.path, i.size, i.lastModified, { embedding: raw.slice(k * d, (k + 1) * d) })));
      }
    }).catch((err) => console.warn('cache write failed', err)).finally(() => vectors.releaseRaw().catch(() => {}));
  }
}
