// The page's side of the search worker (vector-worker.js): embeddings go in as they arrive
// (buffered, sent a batch per message, transferred), rankings and zero-shot sorts come back as
// typed arrays. Messages are answered in order, so a rank() sent after put() sees those vectors.

import { WorkerClient } from '../runtime/rpc.js';

// Between the paths the worker sends as one string (vector-worker.js).
const SEPARATOR = '\u0000';
// Embeddings buffered before one message: ~1 MB of float32 at 512 values.
const FLUSH_ROWS = 512;

export class VectorClient {
  constructor() {
    this.client = null;
    this.outIds = [];
    this.outData = [];
    this.d = 0;
  }

  get worker() {
    if (!this.client) {
      const worker = new Worker(new URL('./vector-worker.js', import.meta.url), { type: 'module', name: 'clip-web-search' });
      this.client = new WorkerClient(worker);
    }
    return this.client;
  }

  reset(capacity) {
    this.outIds = [];
    this.outData = [];
    return this.worker.call('reset', { capacity });
  }

  // id, raw embedding (Float32Array): buffered; flush() (or any query) sends them.
  put(id, embedding) {
    if (this.d && embedding.length !== this.d) this.flush();
    this.d = embedding.length;
    this.outIds.push(id);
    this.outData.push(embedding);
    if (this.outIds.length >= FLUSH_ROWS) this.flush();
  }

  flush() {
    if (!this.outIds.length) return Promise.resolve();
    const d = this.d;
    const ids = Uint32Array.from(this.outIds);
    const data = new Float32Array(ids.length * d);
    this.outData.forEach((v, k) => data.set(v, k * d));
    this.outIds = [];
    this.outData = [];
    return this.worker.call('put', { ids, data, d }, [ids.buffer, data.buffer]);
  }

  // compact: the int8 scores alone, without the exact pass over the first places.
  rank(q, { compact = false } = {}) {
    this.flush();
    return this.worker.call('rank', { q, compact });
  }

  zeroShot(labels, scoring, { compact = false } = {}) {
    this.flush();
    return this.worker.call('zeroShot', { labels, scoring, compact });
  }

  row(id) {
    this.flush();
    return this.worker.call('row', { id });
  }

  stats() {
    this.flush();
    return this.worker.call('stats');
  }

  // source: { text | blob | url | object, model } -> { head, d, paths, sizes, mtimes, thumbnails }
  // (paths and thumbnails arrive as one string each, split here).
  async parse(source) {
    const out = await this.worker.call('parse', source);
    const n = out.sizes.length;
    out.paths = n ? out.paths.split(SEPARATOR) : [];
    out.thumbnails = out.thumbnails === null ? new Array(n).fill(null) : out.thumbnails.split(SEPARATOR).map((t) => t || null);
    return out;
  }

  // (Embeddings still buffered belong to the collection being replaced: dropped.)
  commit() {
    this.outIds = [];
    this.outData = [];
    return this.worker.call('commit');
  }

  discard() {
    return this.worker.call('discard');
  }

  raw(start, count) {
    return this.worker.call('raw', { start, count });
  }

  releaseRaw() {
    return this.worker.call('releaseRaw');
  }

  // The committed import into the embedding cache, written by the worker -> records written.
  cacheImport(model) {
    return this.worker.call('cacheImport', { model });
  }
}
