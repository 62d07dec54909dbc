// The search worker: owns the collection's embeddings (compact-vectors.js) and does every
// operation over all of them off the main thread: ranking a query, zero-shot sorting, reading
// index files and packs. The page sends raw embeddings in and gets back typed arrays of ids and
// scores (transferred, not copied), so a 100,000-image collection never runs a long task there.
//
// The raw float32 embeddings go to a file (exact-rows.js; memory where there is none), read back
// for what must be exact: the first places of a ranking, uncertain zero-shot rows, "more like
// this", the export and the cache.
//
// Reading an index is staged: parse() builds a new matrix beside the current one, and only
// commit() replaces it, so a file that is refused (damaged, foreign, another model's) loses nothing.

import { serve, withTransfer, emit, RpcError } from '../runtime/rpc.js';
import { CompactVectors, MAX_ROWS } from './compact-vectors.js';
import { readIndex, parseJson } from './index-file.js';
import { ExactRows } from './exact-rows.js';
import { SearchStore, cacheRecord } from './store.js';
import { ZeroShotHelper } from './zero-shot-helper.js';

const exactReady = ExactRows.open(); // on a file, or in memory where the browser has none
// A second thread for zero-shot sorts, which the page starts and hands over (attachHelper, its
// first message); null: none (one core, no shared memory). The vectors are kept in shared memory
// for it.
let helper = null;
let noHelper = 'not attached';
const newVectors = (n, d) => new CompactVectors(n, d, { shared: helper !== null });
let useHelper = true;
// Threads the next large zero-shot sort runs on.
const zeroShotThreads = () => (useHelper && helper?.available && vectors?.shared ? 2 : 1);
// Rows per write when an import's embeddings go to the exact file.
const WRITE_ROWS = 4096;
// Records per IndexedDB write when an import goes to the page's embedding cache.
const STORE_ROWS = 500;
// Between the paths parse() sends as one string (no path holds a NUL).
const SEPARATOR = '\u0000';

let vectors = null; // CompactVectors | null (nothing yet)
let capacity = 0;
let staged = null; // { vectors, raw: Float32Array, d, n, files } from parse(), until commit() / discard()
let raw = null; // the committed import's raw embeddings, until the page has stored them
let files = null; // the committed import's { paths, sizes, mtimes } by id, until cached
let generation = 0; // which collection the vectors and the exact file hold (reset/commit: +1)

function ensure(d) {
  if (!vectors || vectors.d !== d) vectors = newVectors(capacity, d);
  return vectors;
}

async function readSource({ text, blob, url, object }) {
  if (object) return object;
  if (blob) return parseJson(await blob.text());
  if (url) {
    let response;
    try {
      response = await fetch(url, { credentials: 'same-origin' });
    } catch (err) {
      throw new RpcError(`could not fetch ${url} (${err.message})`, 'fetch_failed');
    }
    if (!response.ok) throw new RpcError(`could not fetch ${url}: HTTP ${response.status}`, 'fetch_failed');
    return parseJson(await response.text());
  }
  return parseJson(text);
}

serve({
  // The page's first message: a port to the zero-shot thread it started (zero-shot-helper.js), or
  // why there is none. When this worker gives the thread up, the page is told to terminate it.
  attachHelper({ port, why }) {
    if (port) helper = new ZeroShotHelper(port, (reason) => emit('helperStopped', { why: reason }));
    else noHelper = why;
    return true;
  },

  // The page saw the thread fail to start.
  helperFailed({ why }) {
    helper?.stop(why);
    return true;
  },

  // A new collection of `capacity` images (ids 0..capacity-1): the old vectors are dropped.
  async reset({ capacity: n }) {
    capacity = n;
    vectors = null;
    raw = null;
    files = null;
    generation += 1;
    (await exactReady).reset(0, n);
    return true;
  },

  // ids: Uint32Array(m), data: Float32Array(m * d) raw embeddings.
  async put({ ids, data, d }) {
    if (!ids.length) return vectors?.count ?? 0;
    const v = ensure(d);
    for (let k = 0; k < ids.length; k++) v.set(ids[k], data.subarray(k * d, (k + 1) * d));
    (await exactReady).write(ids, data, d);
    helper?.prepareFor(v.count);
    return v.count;
  },

  // q: unit query (Float64Array) -> { ids, scores } of every vector, best first.
  // compact: skip the exact pass (what the tests compare the compact scores with).
  async rank({ q, compact = false }) {
    if (!vectors || !vectors.count) return { ids: new Uint32Array(0), scores: new Float32Array(0), refined: 0 };
    if (q.length !== vectors.d) throw new RpcError(`a query of ${q.length} values for embeddings of ${vectors.d}`, 'bad_query');
    const exact = compact ? null : await exactReady;
    const t0 = performance.now();
    const { ids, scores, refined, timing } = vectors.rank(q, exact);
    return withTransfer({ ids, scores, refined, timing, ms: performance.now() - t0 }, [ids.buffer, scores.buffer]);
  },

  // labels: unit label vectors -> { label: Uint16Array, prob: Float32Array } by id, and order:
  // the ids sorted by label, then the most confident first (ties by id), with orderProb beside it;
  // perLabel: how many rows each label got.
  async zeroShot({ labels, scoring, compact = false }) {
    if (!vectors || !vectors.count) {
      return { label: new Uint16Array(0), prob: new Float32Array(0), order: new Uint32Array(0), orderProb: new Float32Array(0), perLabel: new Uint32Array(labels.length), refined: 0 };
    }
    const exact = compact ? null : await exactReady;
    const t0 = performance.now();
    const { label, prob, order, orderProb, perLabel, refined, timing } = vectors.zeroShot(labels, scoring, exact, undefined, useHelper ? helper : null);
    return withTransfer({ label, prob, order, orderProb, perLabel, refined, timing, ms: performance.now() - t0 },
      [label.buffer, prob.buffer, order.buffer, orderProb.buffer, perLabel.buffer]);
  },

  // Threads for large zero-shot sorts: 1 keeps them on this worker alone (what benchmarks compare
  // the helper with), 2 uses the helper where there is one. -> the threads a sort will use.
  zeroShotThreads({ threads }) {
    useHelper = threads > 1;
    return zeroShotThreads();
  },

  // A row's raw embedding from the exact file (Float32Array) and its dequantised unit vector
  // (Float64Array); null when the id has none.
  async row({ id }) {
    if (!vectors?.has(id)) return null;
    const exact = await exactReady;
    return { raw: exact.read(id), unit: vectors.row(id) };
  },

  async stats() {
    return {
      count: vectors?.count ?? 0, bytes: vectors?.bytes ?? 0, simd: vectors?.simd ?? null, d: vectors?.d ?? null, capacity,
      exact: (await exactReady).kind, // where the exact rows are: 'file' or 'memory'
      // Threads a large zero-shot sort runs on, and why the second one was dropped, if it was.
      zeroShotThreads: zeroShotThreads(), zeroShotHelper: helper?.state ?? noHelper,
    };
  },

  // An index file (text, Blob, same-origin URL or parsed object) -> its head and rows; the
  // vectors wait, staged, for commit(). model: the loaded model's id (null: not known yet).
  async parse(source) {
    staged = null;
    const { head, rows, d, matrix } = readIndex(await readSource(source));
    if (source.model && head.model !== source.model) {
      throw new RpcError(`this index was made with the model "${head.model}", but "${source.model}" is loaded: choose that model first`, 'other_model');
    }
    if (rows.length > MAX_ROWS) throw new RpcError(`an index of ${rows.length} images is more than this page holds (${MAX_ROWS})`, 'too_big');
    // The page's ids follow path order (its ties rank by path): a pack in another order is sorted.
    const order = rows.map((_, k) => k);
    let sorted = true;
    for (let k = 1; k < rows.length; k++) if (!(rows[k - 1].path < rows[k].path)) sorted = false;
    if (rows.some((r) => r.path.includes(SEPARATOR))) throw new RpcError('a path in this index holds a NUL character (the file is damaged)', 'bad_index');
    if (!sorted) order.sort((a, b) => (rows[a].path < rows[b].path ? -1 : rows[a].path > rows[b].path ? 1 : a - b));
    const seen = new Set();
    const next = newVectors(rows.length, d || 1);
    const rawSorted = sorted ? matrix : new Float32Array(matrix.length);
    const out = { paths: [], sizes: new Float64Array(rows.length), mtimes: new Float64Array(rows.length), thumbnails: [] };
    order.forEach((src, id) => {
      const r = rows[src];
      if (seen.has(r.path)) throw new RpcError(`${r.path} is in the index twice (the file is damaged)`, 'bad_index');
      seen.add(r.path);
      const v = matrix.subarray(src * d, (src + 1) * d);
      if (!sorted) rawSorted.set(v, id * d);
      if (d) next.set(id, v);
      out.paths.push(r.path);
      out.sizes[id] = r.size;
      out.mtimes[id] = r.lastModified;
      out.thumbnails.push(r.thumbnail);
    });
    // Thumbnails are relative to the pack's own URL; an index read from a file has none to be
    // relative to, so only absolute ones are kept.
    const base = source.url ? new URL(source.url, self.location.href) : null;
    out.thumbnails = out.thumbnails.map((t) => {
      if (!t) return null;
      try {
        return new URL(t, base ?? undefined).href;
      } catch {
        return null;
      }
    });
    staged = { vectors: next, raw: rawSorted, d, n: rows.length, files: { paths: out.paths, sizes: out.sizes.slice(), mtimes: out.mtimes.slice() } };
    // Paths as one string: 100,000 separate strings take the page a long task to receive.
    const paths = out.paths.join(SEPARATOR);
    const thumbnails = out.thumbnails.some(Boolean) ? out.thumbnails.map((t) => t ?? '').join(SEPARATOR) : null;
    return withTransfer({ head, d, paths, thumbnails, sizes: out.sizes, mtimes: out.mtimes }, [out.sizes.buffer, out.mtimes.buffer]);
  },

  async commit() {
    if (!staged) throw new RpcError('nothing to commit', 'no_import');
    const { d, n } = staged;
    vectors = n ? staged.vectors : null;
    capacity = n;
    raw = staged.raw;
    files = staged.files;
    staged = null;
    generation += 1;
    helper?.prepareFor(n);
    const exact = await exactReady;
    exact.reset(d, n);
    for (let start = 0; start < n; start += WRITE_ROWS) {
      const count = Math.min(WRITE_ROWS, n - start);
      exact.write(Uint32Array.from({ length: count }, (_, k) => start + k), raw.subarray(start * d, (start + count) * d), d);
    }
    raw = null; // read back from the exact rows from now on
    return vectors?.count ?? 0;
  },

  discard() {
    staged = null;
    return true;
  },

  // The committed import's raw embeddings, start..start+count rows, for the page's store.
  async raw({ start, count }) {
    const exact = await exactReady;
    let out;
    if (exact && vectors) out = exact.readRange(start, count);
    else if (raw) {
      const d = raw.length / Math.max(1, capacity);
      out = raw.slice(start * d, (start + count) * d);
    } else throw new RpcError('the imported embeddings were released', 'released');
    return withTransfer(out, [out.buffer]);
  },

  releaseRaw() {
    raw = null;
    files = null;
    return true;
  },

  // The committed import into the page's embedding cache (IndexedDB, store.js), written here so
  // that its structured cloning (seconds at 100,000 records) never runs on the page's thread.
  // -> records written (0 where this worker has no IndexedDB).
  async cacheImport({ model }) {
    if (!files) throw new RpcError('the imported embeddings were released', 'released');
    const { paths, sizes, mtimes } = files;
    const n = paths.length;
    const mine = generation;
    const exact = vectors ? await exactReady : null;
    const store = await SearchStore.open();
    if (!store.persistent) return 0;
    try {
      for (let start = 0; start < n; start += STORE_ROWS) {
        // Another collection replaced this one meanwhile: its rows are not these paths' any more.
        if (generation !== mine) throw new RpcError('the imported collection was replaced before it was cached', 'replaced');
        const count = Math.min(STORE_ROWS, n - start);
        const d = exact ? exact.d : raw.length / n;
        const rows = exact ? exact.readRange(start, count) : raw.subarray(start * d, (start + count) * d);
        const records = [];
        for (let k = 0; k < count; k++) {
          const id = start + k;
          records.push(cacheRecord(model, paths[id], sizes[id], mtimes[id], { embedding: rows.slice(k * d, (k + 1) * d) }));
        }
        await store.putMany(records);
      }
    } finally {
      store.close();
      if (generation === mine) {
        raw = null;
        files = null;
      }
    }
    return n;
  },
});
