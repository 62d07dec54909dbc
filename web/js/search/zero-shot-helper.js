// A second thread for the search worker's zero-shot sort: the sort's time is arithmetic over every
// row (ten dot products and a softmax a row), so on two cores two threads take about half of it.
// The matrix is not copied: the search worker's CompactVectors lives in shared memory, and the
// thread (zero-shot-thread.js) reads it through CompactVectors.view().
//
// The search worker waits for the other half with Atomics.wait, so a sort stays one synchronous
// step there (no other message runs in between). A thread that fails, or does not answer within
// WAIT_MS, is stopped and never used again; the sort is then done on one thread (compact-vectors.js).

import { CompactVectors, SPLIT_ROWS } from './compact-vectors.js';

const WAIT_MS = 5000;

export class ZeroShotHelper {
  // -> { helper, why }: a helper, or null and why not (no shared memory: a page that is not
  // cross-origin isolated; a single core to run on; no workers inside workers).
  static create() {
    if (!self.crossOriginIsolated || typeof SharedArrayBuffer === 'undefined') {
      return { helper: null, why: 'no shared memory here (the page is not cross-origin isolated)' };
    }
    if (typeof Atomics?.wait !== 'function') return { helper: null, why: 'this browser cannot wait on shared memory (Atomics.wait)' };
    if (!((navigator.hardwareConcurrency ?? 1) > 1)) return { helper: null, why: 'one core' };
    if (typeof Worker === 'undefined') return { helper: null, why: 'this browser starts no worker from a worker' };
    try {
      return { helper: new ZeroShotHelper(new Worker(new URL('./zero-shot-thread.js', import.meta.url), { type: 'module', name: 'clip-web-search-helper' })), why: null };
    } catch (err) {
      return { helper: null, why: `the helper thread could not start (${err.message})` };
    }
  }

  constructor(worker) {
    this.worker = worker;
    this.ready = false;
    this.broken = null; // why it is no longer used
    worker.onmessage = ({ data }) => {
      if (data === 'ready') this.ready = true;
    };
    worker.onerror = (event) => this.stop(`the helper thread failed to start (${event.message ?? 'error'})`);
  }

  get available() {
    return this.ready && !this.broken;
  }

  // For stats(): 'ready', 'starting', or why it is not used.
  get state() {
    return this.broken ?? (this.ready ? 'ready' : 'starting');
  }

  // A collection of `rows` has arrived: if it is large enough to split, both threads compile their
  // zero-shot code now (CompactVectors.warmUp), not during its first sorts. Once per helper.
  prepareFor(rows) {
    if (rows < SPLIT_ROWS || this.warmed || this.broken) return;
    this.warmed = true;
    this.worker.postMessage({ warmUp: true });
    CompactVectors.warmUp({ shared: true });
  }

  // Rows start..end-1 of a zero-shot sort (CompactVectors.zeroShotRows, state on shared memory)
  // on the other thread. -> the job, for finish().
  start(parts, state, start, end) {
    const done = new Int32Array(new SharedArrayBuffer(4));
    this.worker.postMessage({ parts, state, start, end, done });
    return done;
  }

  // Waits for a job. -> true when its rows are done, false when the thread failed or timed out.
  finish(done) {
    Atomics.wait(done, 0, 0, WAIT_MS);
    const status = Atomics.load(done, 0);
    if (status === 1) return true;
    this.stop(status === 0 ? `the helper thread did not answer within ${WAIT_MS} ms` : 'the helper thread failed');
    return false;
  }

  stop(why) {
    this.broken ??= why;
    this.worker.terminate();
  }
}
