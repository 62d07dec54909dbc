// The page's side of the search worker (vector-worker.js): embeddings go in as they arrive
// (buffered, sent a batch per message, transferred), rankings and zero-shot sorts come back as
// typed arrays. Messages are answered in order, so a rank() sent after put() sees those vectors.

import { WorkerClient } from '../runtime/rpc.js';

// Between the paths the worker sends as one string (vector-worker.js).
const SEPARATOR = '\u0000';
// Embeddings buffered before one message: ~1 MB of float32 at 512 values.
const FLUSH_ROWS = 512;

// The search worker's zero-shot thread (zero-shot-helper.js). -> { worker, port, why }: the thread
// and the port the search worker talks to it through, or nulls and why there is none (no shared
// memory: a page that is not cross-origin isolated; a single core to run on).
function startZeroShotThread() {
  const none = (why) => ({ worker: null, port: null, why });
  if (!self.crossOriginIsolated || typeof SharedArrayBuffer === 'undefined') {
    return none('no shared memory here (the page is not cross-origin isolated)');
  }
  if (typeof Atomics?.wait !== 'function') return none('this browser cannot wait on shared memory (Atomics.wait)');
  if (!((navigator.hardwareConcurrency ?? 1) > 1)) return none('one core');
  let worker;
  try {
    worker = new Worker(new URL('./zero-shot-thread.js', import.meta.url), { type: 'module', name: 'clip-web-search-helper' });
  } catch (err) {
    return none(`the helper thread could not start (${err.message})`);
  }
  const { port1, port2 } = new MessageChannel();
  worker.postMessage({ port: port1 }, [port1]);
  return { worker, port: port2, why: null };
}

export class VectorClient {
  constructor() {
    this.client = null;
    this.outIds = [];
    this.outData = [];
    this.d = 0;
  }

  // The search worker, and its zero-shot thread: both started here, since a worker that starts
  // another can wedge in Firefox (README, "Workers"). The port goes first: the worker handles
  // messages in order, so the helper is in place before any vectors arrive.
  get worker() {
    if (!this.client) {
      const worker = new Worker(new URL('./vector-worker.js', import.meta.url), { type: 'module', name: 'clip-web-search' });
      const helper = startZeroShotThread();
      this.helperWorker = helper.worker;
      this.client = new WorkerClient(worker, (name) => {
        if (name === 'helperStopped') helper.worker?.terminate();
      });
      if (helper.worker) {
        helper.worker.onerror = (e) => {
          e.preventDefault?.();
          this.client.call('helperFailed', { why: `the helper thread failed to start (${e.message || 'error'})` }).catch(() => {});
        };
      }
      this.client.call('attachHelper', { port: helper.port, why: helper.why }, helper.port ? [helper.port] : []).catch(() => {});
    }
    return this.client;
  }

  // Both threads stop; the next call starts new ones, empty.
  close() {
    this.client?.terminate();
    this.helperWorker?.terminate();
    this.client = null;
    this.helperWorker = null;
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
