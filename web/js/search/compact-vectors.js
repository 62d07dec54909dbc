// The search page's embeddings as one contiguous, compact matrix: one row per image (addressed
// by the image's id in the collection), each row the image's unit vector scalar-quantised to int8
// with its own scale. 512 bytes a row instead of 2,048 (float32): 100,000 images are 51 MB.
// Why int8 and not float16: float16 halves float32 (102 MB at 100,000, over the page's 60 MB
// budget for vectors) and int8 ranks as well for this use (docs/search-index.md has the measured
// agreement: top-10 identical, scores within the tolerance below).
//
// Scoring runs in WebAssembly SIMD: the query is quantised to int16 (error ~1e-5 of a score, far
// below int8's), and each row's dot product is sixteen int8 x int16 multiply-adds per step
// (i32x4.dot_i16x8_s). 100,000 rows take a few milliseconds instead of ~50 in plain JavaScript.
// A JavaScript loop computes the same integers where WebAssembly SIMD is missing.
//
// No DOM, no workers: the search worker (vector-worker.js) owns one of these; tests run it in
// Node and in the page. Made with { shared: true }, its memory is shared, so a second thread
// (zero-shot-thread.js, through view()) can score part of the rows of a zero-shot sort.

// Every int8 score is within this of the float32 score (cosine units): the bound the tests assert.
// Measured worst cases are ~2x smaller (docs/search-index.md).
export const SCORE_TOLERANCE = 0.004;
// Where the exact rows are at hand (exact-rows.js), the first EXACT_TOP places of every ranking are
// exact: rows that could reach them given each row's error bound are scored again from their
// float32 embedding. 21 is the first three rows of cards; every row costs a read from disk (~50 us
// in an on-disk profile, ~1 ms in an off-the-record one), so the exact head stays short.
export const EXACT_TOP = 21;
// Collections up to this size are ranked exactly throughout (their rows are read in a few
// contiguous reads).
export const EXACT_ALL = 1000;
// A zero-shot sort of a collection up to this size is scored from float32 throughout (contiguous
// reads). Larger ones use the compact scores alone: their uncertain rows (whose best label could
// change within the error bound) are a large share of a big library, too many reads to be worth
// it (measured best-label agreement 99.3% at 100,000, docs/search-index.md).
export const ZERO_SHOT_EXACT_ROWS = 1000;
// Rounding outside the integer dot product (float32 factors, float32 scores): well under 1e-6.
const FLOAT_SLACK = 1e-6;
// How far a compact score may be from the float32 one, in standard deviations of its rounding
// error. A row's score error is the sum of d independent roundings (uniform, +-step/2) weighted by
// the query: its standard deviation is ||e|| / sqrt(d) for a row missing e (||e|| is what
// Cauchy-Schwarz allows in the worst case, sqrt(d) = 22.6 times more; a text query is not aligned
// with rounding noise). Past 6 deviations the chance is under 1e-9 per row (a sum of uniforms
// has thinner tails than a Gaussian); measured worst cases sit near 4 (docs/search-index.md).
const BOUND_SIGMAS = 6;

// A zero-shot sort scores up to GROUP labels in one pass over the matrix, BLOCK rows per kernel
// call (its scratch: GROUP int16 queries and BLOCK x GROUP int32 dots, 272 KB).
const GROUP = 16;
const BLOCK = 4096;
// A zero-shot sort of at least this many rows is split over two threads where a helper is at hand
// (below it, the message to the other thread costs more than the half it saves).
export const SPLIT_ROWS = 16384;
// Passes over warmUp()'s matrix (8,192 rows, 10 labels: ~10 ms a thread).
const WARM_UP_ROUNDS = 6;

const INT8_MAX = 127;
const INT16_MAX = 32767;
const LANES = 16; // int8 values per SIMD step: rows are padded to a multiple
const PAGE = 65536; // WebAssembly memory page

// ------------------------------------------------------------------------------------------------
// The kernels, assembled here (a few dozen bytes; no build step, no binary file to keep in sync).
//   dotsMany(matrix, rows, stride, queries, nq, out): out[k * nq + j] = sum_i matrix[k * stride + i]
//     * query_j[i] for nq queries (int16, one after another): each row is read from memory once
//     for all of them, so a zero-shot sort into 10 labels is one pass over the matrix, not 10; a
//     ranking is the same with nq = 1.
//   matrix int8, queries int16 (stride values each), out int32; stride a multiple of 16.
// ------------------------------------------------------------------------------------------------

const OP = {
  block: 0x02, loop: 0x03, end: 0x0b, brIf: 0x0d, get: 0x20, set: 0x21, tee: 0x22,
  i32Store: 0x36, i32Const: 0x41, i32Eqz: 0x45, i32LtU: 0x49, i32Add: 0x6a, i32Shl: 0x74, void: 0x40,
};
const SIMD = (code) => [0xfd, ...uleb(code)];
const V128_LOAD = (offset) => [...SIMD(0x00), 0, ...uleb(offset)];
const V128_ZERO = [...SIMD(0x0c), ...new Array(16).fill(0)];
const EXTEND_LOW = SIMD(0x87); // i16x8.extend_low_i8x16_s
const EXTEND_HIGH = SIMD(0x88); // i16x8.extend_high_i8x16_s
const DOT = SIMD(0xba); // i32x4.dot_i16x8_s
const ADD = SIMD(0xae); // i32x4.add
const LANE = (k) => [...SIMD(0x1b), k]; // i32x4.extract_lane
const I32 = 0x7f;
const V128 = 0x7b;

function uleb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

const section = (id, bytes) => [id, ...uleb(bytes.length), ...bytes];
const name = (s) => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
const g = (l) => [OP.get, l];
const s = (l) => [OP.set, l];
const c = (n) => [OP.i32Const, ...uleb(n)]; // small non-negative constants only (< 64)

// acc += row[i..i+16] . query[i..i+16] (row: locals R + I, query: int16 at Q + 2 I).
function dotStep({ R, I, Q, ACC, V }) {
  const queryAt = [...g(Q), ...g(I), ...c(1), OP.i32Shl, OP.i32Add];
  return [
    ...g(R), ...g(I), OP.i32Add, ...V128_LOAD(0), ...s(V),
    ...g(ACC),
    ...g(V), ...EXTEND_LOW, ...queryAt, ...V128_LOAD(0), ...DOT, ...ADD,
    ...g(V), ...EXTEND_HIGH, ...queryAt, ...V128_LOAD(16), ...DOT, ...ADD,
    ...s(ACC),
  ];
}

// One row against one query: acc = row . query over the stride, stored as int32 at O.
function rowDot(l) {
  const { I, S, O, ACC } = l;
  return [
    ...V128_ZERO, ...s(ACC), ...c(0), ...s(I),
    OP.loop, OP.void,
    ...dotStep(l),
    ...g(I), ...c(LANES), OP.i32Add, OP.tee, I, ...g(S), OP.i32LtU, OP.brIf, 0,
    OP.end,
    ...g(O),
    ...g(ACC), ...LANE(0), ...g(ACC), ...LANE(1), OP.i32Add, ...g(ACC), ...LANE(2), OP.i32Add,
    ...g(ACC), ...LANE(3), OP.i32Add,
    OP.i32Store, 2, 0,
  ];
}

function dotsManyBody() {
  // params 0 matrix, 1 rows, 2 stride, 3 queries, 4 nq, 5 out;
  // locals 6 k, 7 i, 8 row, 9 o, 10 j, 11 q, 12 acc, 13 v
  const l = { M: 0, N: 1, S: 2, QS: 3, NQ: 4, OUT: 5, K: 6, I: 7, R: 8, O: 9, J: 10, Q: 11, ACC: 12, V: 13 };
  return [
    2, 6, I32, 2, V128,
    ...g(l.M), ...s(l.R), ...g(l.OUT), ...s(l.O), ...c(0), ...s(l.K),
    OP.block, OP.void,
    ...g(l.N), OP.i32Eqz, OP.brIf, 0,
    ...g(l.NQ), OP.i32Eqz, OP.brIf, 0,
    OP.loop, OP.void, // rows
    ...g(l.QS), ...s(l.Q), ...c(0), ...s(l.J),
    OP.loop, OP.void, // queries: the row stays in the cache between them
    ...rowDot(l),
    ...g(l.O), ...c(4), OP.i32Add, ...s(l.O),
    ...g(l.Q), ...g(l.S), ...c(1), OP.i32Shl, OP.i32Add, ...s(l.Q),
    ...g(l.J), ...c(1), OP.i32Add, OP.tee, l.J, ...g(l.NQ), OP.i32LtU, OP.brIf, 0,
    OP.end,
    ...g(l.R), ...g(l.S), OP.i32Add, ...s(l.R),
    ...g(l.K), ...c(1), OP.i32Add, OP.tee, l.K, ...g(l.N), OP.i32LtU, OP.brIf, 0,
    OP.end,
    OP.end,
    OP.end,
  ];
}

// A shared memory must declare its largest size: 65536 pages is all of 32-bit memory (4 GiB).
const MAX_PAGES = 65536;

function kernelBytes(shared) {
  const body = dotsManyBody();
  const limits = shared ? [0x03, 0x01, ...uleb(MAX_PAGES)] : [0x00, 0x01];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 6, I32, I32, I32, I32, I32, I32, 0]),
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, ...limits]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name('dotsMany'), 0x00, 0]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

// shared -> WebAssembly.Module | null (no SIMD, or no shared memory); built on first use
const kernelModules = new Map();
function kernel(shared) {
  if (!kernelModules.has(shared)) {
    const bytes = kernelBytes(shared);
    kernelModules.set(shared, typeof WebAssembly !== 'undefined' && WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null);
  }
  return kernelModules.get(shared);
}

// Where things are in a matrix's WebAssembly memory: the codes (capacity x stride int8), one
// query (int16) and its scores (int32 per row) for rankings, then per thread a zero-shot lane:
// GROUP int16 queries and BLOCK x GROUP int32 dots.
function memoryLayout(capacity, stride, threads) {
  const matrixBytes = capacity * stride;
  const queryOffset = matrixBytes;
  const outOffset = queryOffset + stride * 2;
  const lanesAt = outOffset + capacity * 4;
  const laneBytes = GROUP * stride * 2 + BLOCK * GROUP * 4;
  const lanes = Array.from({ length: threads }, (_, t) => ({ queryAt: lanesAt + t * laneBytes, outAt: lanesAt + t * laneBytes + GROUP * stride * 2 }));
  return { matrixBytes, queryOffset, outOffset, lanes, bytes: lanesAt + threads * laneBytes };
}

// A typed array of n elements, over shared memory where asked.
function newArray(Type, n, shared) {
  return shared ? new Type(new SharedArrayBuffer(n * Type.BYTES_PER_ELEMENT)) : new Type(n);
}

// ------------------------------------------------------------------------------------------------
// Quantisation
// ------------------------------------------------------------------------------------------------

// Raw embedding (any length-d numbers) -> int8 codes (into `codes`, length >= d), the factor
// that turns codes back into the unit vector (unit ≈ codes * factor, as float32) and the length of
// what that misses, ||unit - codes * factor|| (what a row's error bound is made of, see bound()). The factor divides by the norm of the rounded codes,
// so a dequantised row has length 1 (a row scores 1 against itself).
export function quantiseRow(raw, codes) {
  const d = raw.length;
  let ss = 0;
  for (let i = 0; i < d; i++) ss += raw[i] * raw[i];
  const norm = Math.sqrt(ss);
  let max = 0;
  for (let i = 0; i < d; i++) max = Math.max(max, Math.abs(raw[i]));
  if (!(norm > 0) || !(max > 0)) {
    codes.fill(0, 0, d);
    return { factor: 0, error: 0 };
  }
  const step = max / INT8_MAX; // raw units per code
  let cc = 0;
  for (let i = 0; i < d; i++) {
    const v = Math.round(raw[i] / step);
    codes[i] = v;
    cc += v * v;
  }
  const factor = Math.fround(1 / Math.sqrt(cc));
  let ee = 0;
  for (let i = 0; i < d; i++) {
    const e = raw[i] / norm - codes[i] * factor;
    ee += e * e;
  }
  return { factor, error: Math.sqrt(ee) };
}

// A raw embedding -> its unit vector in float64 (the page's query math).
function unitOf(raw) {
  let ss = 0;
  for (let i = 0; i < raw.length; i++) ss += raw[i] * raw[i];
  const n = Math.sqrt(ss);
  const out = new Float64Array(raw.length);
  if (n > 0) for (let i = 0; i < raw.length; i++) out[i] = raw[i] / n;
  return out;
}

function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

// A unit query (Float64Array) -> int16 codes (length stride, zero-padded), its factor and the
// length of what the codes miss (the query's share of the error bound).
function quantiseQuery(q, stride) {
  const codes = new Int16Array(stride);
  let max = 0;
  for (let i = 0; i < q.length; i++) max = Math.max(max, Math.abs(q[i]));
  if (!(max > 0)) return { codes, factor: 0, error: 0 };
  const step = max / INT16_MAX;
  let ee = 0;
  for (let i = 0; i < q.length; i++) {
    codes[i] = Math.round(q[i] / step);
    ee += (q[i] - codes[i] * step) ** 2;
  }
  return { codes, factor: step, error: Math.sqrt(ee) };
}

// float16 (IEEE half) round trip, kept for the measurement that chose int8 (benchmarks and tests).
export function toFloat16Values(v) {
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const out = new Float64Array(v.length);
  for (let i = 0; i < v.length; i++) {
    f32[0] = v[i];
    const x = u32[0];
    const sign = x >>> 31 ? -1 : 1;
    const exp = ((x >>> 23) & 0xff) - 127;
    if (exp < -24) out[i] = 0;
    else if (exp < -14) out[i] = sign * Math.round(Math.abs(v[i]) * 2 ** 24) / 2 ** 24; // subnormal
    else out[i] = sign * Math.round(Math.abs(v[i]) / 2 ** (exp - 10)) * 2 ** (exp - 10);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// The matrix
// ------------------------------------------------------------------------------------------------

export class CompactVectors {
  // capacity rows of d values. Rows are set by id (0..capacity-1), in any order; only rows that
  // have been set take part in scoring.
  // shared: the memory, factors and presence are SharedArrayBuffers, so that view() can read
  // them on another thread (only with SIMD and where the browser allows shared memory).
  constructor(capacity, d, { shared = false } = {}) {
    this.d = d;
    this.stride = Math.ceil(d / LANES) * LANES;
    this.capacity = 0;
    this.count = 0;
    this.shared = Boolean(shared && typeof SharedArrayBuffer !== 'undefined' && kernel(true));
    this.module = kernel(this.shared);
    this.allocate(Math.max(1, capacity));
  }

  get simd() {
    return this.module !== null;
  }

  // Bytes held for the vectors: codes, factors and the presence mask (the WebAssembly memory's
  // scratch for a query and its scores is counted too).
  get bytes() {
    const side = this.factors.byteLength + this.errors.byteLength + this.present.byteLength;
    return (this.memory ? this.memory.buffer.byteLength : this.codes.byteLength) + side;
  }

  allocate(capacity) {
    const old = this.capacity ? { codes: this.codes, factors: this.factors, errors: this.errors, present: this.present, capacity: this.capacity } : null;
    const { matrixBytes, queryOffset, outOffset, lanes, bytes } = memoryLayout(capacity, this.stride, this.shared ? 2 : 1);
    if (this.module) {
      const pages = Math.ceil((bytes + LANES) / PAGE);
      this.memory = new WebAssembly.Memory(this.shared ? { initial: pages, maximum: pages, shared: true } : { initial: pages });
      this.dotsMany = new WebAssembly.Instance(this.module, { env: { memory: this.memory } }).exports.dotsMany;
      this.codes = new Int8Array(this.memory.buffer, 0, matrixBytes);
      Object.assign(this, { queryOffset, outOffset, lanes });
    } else {
      this.memory = null;
      this.codes = new Int8Array(matrixBytes);
      this.lanes = [{}];
    }
    this.factors = newArray(Float32Array, capacity, this.shared);
    this.errors = new Float32Array(capacity);
    this.present = newArray(Uint8Array, capacity, this.shared);
    if (old) {
      this.codes.set(old.codes.subarray(0, old.capacity * this.stride));
      this.factors.set(old.factors);
      this.errors.set(old.errors);
      this.present.set(old.present);
    }
    this.capacity = capacity;
  }

  // What view() needs on another thread (shared vectors only): nothing is copied.
  sharedParts() {
    return { memory: this.memory, factors: this.factors, present: this.present, d: this.d, capacity: this.capacity };
  }

  // Shared vectors' parts (sharedParts(), posted to another thread) -> a CompactVectors over the
  // same memory, for zeroShotRows() on its own scratch lane (1). Read-only: it never allocates.
  static view({ memory, factors, present, d, capacity }) {
    const v = Object.create(CompactVectors.prototype);
    Object.assign(v, { d, stride: Math.ceil(d / LANES) * LANES, capacity, shared: true, module: kernel(true), memory, factors, present });
    v.dotsMany = new WebAssembly.Instance(v.module, { env: { memory } }).exports.dotsMany;
    const { matrixBytes, lanes } = memoryLayout(capacity, v.stride, 2);
    v.codes = new Int8Array(memory.buffer, 0, matrixBytes);
    v.lanes = lanes;
    return v;
  }

  // id -> raw embedding (length d). Grows the matrix when id is past the end.
  set(id, raw) {
    if (raw.length !== this.d) throw new Error(`an embedding of ${raw.length} values in an index of ${this.d}`);
    if (id >= this.capacity) this.allocate(Math.max(id + 1, Math.ceil(this.capacity * 1.5)));
    const row = this.codes.subarray(id * this.stride, id * this.stride + this.d);
    const { factor, error } = quantiseRow(raw, row);
    this.factors[id] = factor;
    this.errors[id] = error;
    if (!this.present[id]) this.count += 1;
    this.present[id] = 1;
  }

  has(id) {
    return id < this.capacity && this.present[id] === 1;
  }

  // The dequantised unit vector of a row (what "more like this" falls back to without the raw one).
  row(id) {
    const out = new Float64Array(this.d);
    const f = this.factors[id];
    const base = id * this.stride;
    for (let i = 0; i < this.d; i++) out[i] = this.codes[base + i] * f;
    return out;
  }

  // Unit query q (length d) -> Float32Array(capacity) of cosines (rows not set: 0). Row k's is
  // within bound(k) of the float32 score (this.queryError is the query's share, set here).
  scores(q) {
    const query = quantiseQuery(q, this.stride);
    const { factor, error } = query;
    this.queryError = error;
    const n = this.capacity;
    const out = new Float32Array(n);
    const dots = this.groupDots([query], 0, n, { queryAt: this.queryOffset, outAt: this.outOffset });
    for (let k = 0; k < n; k++) out[k] = this.present[k] ? dots[k] * this.factors[k] * factor : 0;
    return out;
  }

  // Quantised queries (quantiseQuery) -> Int32Array(rows * m): row start + r against query j at
  // r * m + j. A view of the kernel's scratch (valid until the next call) where SIMD runs: by
  // default the zero-shot group's (GROUP queries, BLOCK rows); a ranking passes its own (one
  // query, every row).
  groupDots(group, start, rows, { queryAt = this.lanes[0].queryAt, outAt = this.lanes[0].outAt } = {}) {
    const m = group.length;
    const s = this.stride;
    if (this.module) {
      group.forEach((q, j) => new Int16Array(this.memory.buffer, queryAt + j * s * 2, s).set(q.codes));
      this.dotsMany(start * s, rows, s, queryAt, m, outAt);
      return new Int32Array(this.memory.buffer, outAt, rows * m);
    }
    const out = new Int32Array(rows * m);
    const c = this.codes;
    for (let r = 0; r < rows; r++) {
      const base = (start + r) * s;
      for (let j = 0; j < m; j++) {
        const qc = group[j].codes;
        let a = 0;
        for (let i = 0; i < s; i++) a += c[base + i] * qc[i];
        out[r * m + j] = a;
      }
    }
    return out;
  }

  // Row k's compact score is within this of its float32 score (BOUND_SIGMAS deviations, plus the
  // query's own rounding, bounded outright).
  bound(k) {
    return (BOUND_SIGMAS * this.errors[k]) / Math.sqrt(this.d) * (1 + this.queryError) + this.queryError + FLOAT_SLACK;
  }

  // -> { ids: Uint32Array, scores: Float32Array } of the rows set, best first; ties by id (the
  // collection's ids follow its path order, so this is the page's "ties by path").
  // exact (an ExactRows, or null): the first `top` places are then exact. Every row whose score
  // plus its bound reaches T, the top-th best of (score - bound), is scored again from float32:
  // the exact top rows are all among them, and every other row is below them all (as far as the
  // bound holds).
  rank(q, exact = null, top = EXACT_TOP) {
    const t0 = performance.now();
    const all = this.scores(q);
    let refined = 0;
    if (exact && this.count) {
      const k = this.count <= EXACT_ALL ? this.count : Math.min(top, this.count);
      const threshold = kthLargest(all, this.present, k, (r) => all[r] - this.bound(r));
      const todo = [];
      for (let r = 0; r < this.capacity; r++) if (this.present[r] && all[r] + this.bound(r) >= threshold) todo.push(r);
      this.timing = { compactMs: performance.now() - t0 };
      exact.readMany(todo, (r, raw) => {
        all[r] = dot(unitOf(raw), q);
        refined += 1;
      });
      this.timing.exactMs = performance.now() - t0 - this.timing.compactMs;
    }
    return { ...orderByScore(all, this.present, this.count), refined, timing: this.timing };
  }

  // Zero-shot over rows: unit label vectors -> { label: Uint16Array(capacity), prob:
  // Float32Array(capacity) }: the best label and its probability (rows not set: label 0, prob 0).
  // scoring: a logit scale (softmax over labels of scale * cosine, CLIP), or a manifest's scoring
  // object (pyapp/pipeline.py); with kind 'sigmoid' (SigLIP) the best label is the same and its
  // probability is its own sigmoid(scale * cosine + bias).
  // exact (an ExactRows, or null): a collection of at most `budget` rows is scored from float32.
  // helper (a ZeroShotHelper, or null): another thread that scores the second half of the rows
  // (shared vectors only); each row's numbers are the same whichever thread computes them.
  // -> also order: the ids by label, then the most confident first, ties by id; orderProb: their probs.
  zeroShot(labels, scoring, exact = null, budget = ZERO_SHOT_EXACT_ROWS, helper = null) {
    const t0 = performance.now();
    const n = this.capacity;
    const split = Boolean(helper?.available && this.shared && labels.length && n >= SPLIT_ROWS);
    let state = this.zeroShotState(labels, scoring, split);
    const timing = { threads: split ? 2 : 1 };
    if (split) {
      const mid = Math.ceil(n / 2 / BLOCK) * BLOCK;
      const job = helper.start(this.sharedParts(), state, mid, n);
      this.zeroShotRows(state, 0, mid);
      timing.rowsMs = performance.now() - t0;
      const done = helper.finish(job);
      timing.waitMs = performance.now() - t0 - timing.rowsMs;
      if (!done) {
        // The other thread failed or is stuck: everything again here, on arrays of our own (it
        // may still be writing to the shared ones).
        state = this.zeroShotState(labels, scoring, false);
        this.zeroShotRows(state, 0, n);
        timing.threads = 1;
      }
    } else {
      this.zeroShotRows(state, 0, n);
      timing.rowsMs = performance.now() - t0;
    }
    const t1 = performance.now();
    const out = this.zeroShotFinish(state, labels, exact, budget);
    timing.finishMs = performance.now() - t1;
    return { ...out, timing };
  }

  // Runs a zero-shot pass over a small matrix of its own a few times, so that the engine has
  // compiled this thread's code for it (kernel and loop) before the first real sort: measured in
  // the page, a new thread's first sorts of 100,000 rows took up to twice as long as its later ones.
  static warmUp({ shared = false } = {}) {
    const rows = 2 * BLOCK;
    const v = new CompactVectors(rows, 512, { shared });
    v.present.fill(1);
    v.count = rows;
    const labels = Array.from({ length: 10 }, (_, j) => Float64Array.from({ length: 512 }, (_, i) => ((i * 31 + j * 17) % 13) - 6));
    for (let round = 0; round < WARM_UP_ROUNDS; round++) v.zeroShotRows(v.zeroShotState(labels, 100, false), 0, rows);
  }

  // The labels quantised, and per row the online softmax's running state: the largest logit so
  // far (its first label wins ties), the sum of exp(logit - largest) and the best label so far.
  zeroShotState(labels, scoring, shared) {
    const { kind = 'softmax', logit_scale: logitScale = 100, logit_bias: bias = 0 } = typeof scoring === 'number' ? { logit_scale: scoring } : scoring;
    const n = this.capacity;
    const groups = [];
    for (let first = 0; first < labels.length; first += GROUP) {
      const group = labels.slice(first, first + GROUP).map((l) => quantiseQuery(l, this.stride));
      groups.push({ first, queries: group, factors: Float64Array.from(group, (q) => q.factor) });
    }
    const top = newArray(Float64Array, n, shared).fill(-Infinity);
    return { kind, logitScale, bias, groups, top, sum: newArray(Float64Array, n, shared), label: newArray(Uint16Array, n, shared) };
  }

  // The softmax over labels computed online for rows start..end-1, a group of labels per pass
  // over them. lane: which scratch of the shared memory this thread uses (0 here, 1 the helper).
  zeroShotRows(state, start, end, lane = 0) {
    const scratch = this.lanes[lane];
    for (const { first, queries, factors } of state.groups) {
      for (let at = start; at < end; at += BLOCK) {
        const rows = Math.min(BLOCK, end - at);
        const dots = this.groupDots(queries, at, rows, scratch); // (rows, m) int32
        softmaxBlock(state, dots, at, rows, first, factors, this.factors, this.present);
      }
    }
  }

  // Probabilities, the exact pass of a small collection, and the order.
  zeroShotFinish(state, labels, exact, budget) {
    const { kind, logitScale, bias, top, sum } = state;
    const probOf = kind === 'sigmoid' ? (bestLogit) => 1 / (1 + Math.exp(-(bestLogit + bias))) : null;
    const n = this.capacity;
    // Over shared memory the labels are copied out: a shared buffer cannot be transferred.
    const label = state.label.buffer instanceof ArrayBuffer ? state.label : state.label.slice();
    const prob = new Float32Array(n);
    if (labels.length) for (let k = 0; k < n; k++) if (this.present[k]) prob[k] = probOf ? probOf(top[k]) : 1 / sum[k];
    const logits = new Float64Array(labels.length);
    let refined = 0;
    if (exact && this.count && this.count <= budget) {
      const todo = [];
      for (let k = 0; k < n; k++) if (this.present[k]) todo.push(k);
      exact.readMany(todo, (k, raw) => {
        const u = unitOf(raw);
        for (let j = 0; j < labels.length; j++) logits[j] = logitScale * dot(u, labels[j]);
        const z = softmaxBest(logits);
        label[k] = z.best;
        prob[k] = probOf ? probOf(logits[z.best]) : z.prob;
        refined += 1;
      });
    }
    // By confidence (ties by id), then a stable counting sort by label.
    const byProb = orderByScore(prob, this.present, this.count).ids;
    const m = byProb.length;
    const counts = new Uint32Array(labels.length + 1);
    for (let r = 0; r < m; r++) counts[label[byProb[r]] + 1] += 1;
    const perLabel = counts.slice(1); // rows sorted into each label: the page's label chips
    for (let j = 1; j <= labels.length; j++) counts[j] += counts[j - 1];
    const order = new Uint32Array(m);
    const orderProb = new Float32Array(m); // prob of order[r]: what the page's rows show
    for (let r = 0; r < m; r++) {
      const id = byProb[r];
      const at = counts[label[id]]++;
      order[at] = id;
      orderProb[at] = prob[id];
    }
    return { label, prob, order, orderProb, perLabel, refined };
  }
}

// One block of a zero-shot pass: rows at..at+rows-1 against a group of labels (dots: (rows, m)
// int32, m = queryFactors.length), folded into the state's online softmax. A function of its own,
// called once per block, so that the engine optimises it after a few blocks rather than
// mid-loop: a new thread's first sorts took up to twice as long as its later ones.
function softmaxBlock({ logitScale, top, sum, label }, dots, at, rows, first, queryFactors, factors, present) {
  const m = queryFactors.length;
  for (let r = 0; r < rows; r++) {
    const k = at + r;
    if (!present[k]) continue;
    const f = factors[k];
    let best = top[k];
    let total = sum[k];
    let which = label[k];
    for (let j = 0; j < m; j++) {
      // The score as scores() gives it (float32), then the logit.
      const x = logitScale * Math.fround(dots[r * m + j] * f * queryFactors[j]);
      if (x > best) {
        total = total * Math.exp(best - x) + 1;
        best = x;
        which = first + j;
      } else total += Math.exp(x - best);
    }
    top[k] = best;
    sum[k] = total;
    label[k] = which;
  }
}

// logits -> { best (first of equals), prob: its softmax probability }.
function softmaxBest(logits) {
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) max = Math.max(max, logits[j]);
  let sum = 0;
  let best = 0;
  let bestExp = -1;
  for (let j = 0; j < logits.length; j++) {
    const e = Math.exp(logits[j] - max);
    sum += e;
    if (e > bestExp) {
      bestExp = e;
      best = j;
    }
  }
  return { best, prob: bestExp / sum };
}

// The k-th largest of value(r) over present rows (k >= 1), by keeping the k best seen so far
// (k is small: a full sort of 100,000 values would cost more than the scoring).
function kthLargest(scores, present, k, value) {
  const best = new Float64Array(k).fill(-Infinity); // ascending: best[0] is the k-th so far
  for (let r = 0; r < scores.length; r++) {
    if (!present[r]) continue;
    const v = value(r);
    if (v <= best[0]) continue;
    let j = 0;
    while (j + 1 < k && best[j + 1] < v) {
      best[j] = best[j + 1];
      j += 1;
    }
    best[j] = v;
  }
  return best[0];
}

export const MAX_ROWS = 2 ** 24; // ids fit a Uint32Array with room; the page never nears it
const RADIX = 256;

// Present rows by score, highest first, ties by id: a stable radix sort (four byte passes) on the
// float32 scores' bits made monotonic, over ids in ascending order. Several times faster than
// Array.prototype.sort with a comparator on 100,000 rows.
export function orderByScore(scores, present, count) {
  const bits = new Uint32Array(scores.buffer, scores.byteOffset, scores.length);
  const a = { keys: new Uint32Array(count), ids: new Uint32Array(count) };
  const b = { keys: new Uint32Array(count), ids: new Uint32Array(count) };
  let m = 0;
  for (let k = 0; k < scores.length; k++) {
    if (!present[k]) continue;
    const x = bits[k] === 0x80000000 ? 0 : bits[k]; // -0 ties with 0, as it compares
    // Ascending keys = descending scores: a positive float's bits inverted (bigger score, smaller
    // key, all below 2^31), a negative float's bits as they are (more negative, bigger key).
    a.keys[m] = x & 0x80000000 ? x : ~x & 0x7fffffff;
    a.ids[m] = k;
    m += 1;
  }
  const counts = new Uint32Array(RADIX);
  radixPass(a, b, m, 0, counts);
  radixPass(b, a, m, 8, counts);
  radixPass(a, b, m, 16, counts);
  radixPass(b, a, m, 24, counts);
  const ids = a.ids.length === m ? a.ids : a.ids.slice(0, m);
  const out = new Float32Array(m);
  for (let r = 0; r < m; r++) out[r] = scores[ids[r]];
  return { ids, scores: out };
}

function radixPass(from, to, m, shift, counts) {
  const fk = from.keys;
  const fi = from.ids;
  const tk = to.keys;
  const ti = to.ids;
  counts.fill(0);
  for (let i = 0; i < m; i++) counts[(fk[i] >>> shift) & 0xff] += 1;
  let sum = 0;
  for (let v = 0; v < RADIX; v++) {
    const c = counts[v];
    counts[v] = sum;
    sum += c;
  }
  for (let i = 0; i < m; i++) {
    const at = counts[(fk[i] >>> shift) & 0xff]++;
    tk[at] = fk[i];
    ti[at] = fi[i];
  }
}
