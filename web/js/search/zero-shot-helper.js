// A second thread for the search worker's zero-shot sort: the sort's time is arithmetic over every
// row (ten dot products and a softmax a row), so on two cores two threads take about half of it.
// The matrix is not copied: the search worker's CompactVectors lives in shared memory, and the
// thread (zero-shot-thread.js) reads it through CompactVectors.view().
//
// The page starts the thread (vector-client.js) and gives the search worker a MessagePort to it:
// no worker of ours starts another, because Firefox sometimes never returns from `new Worker()`
// called inside a worker (README, "Workers"), which would wedge the search worker for good.
//
// The search worker waits for the other half with Atomics.wait, so a sort stays one synchronous
// step there (no other message runs in between). A thread that fails, or does not answer within
// WAIT_MS, is given up (the page terminates it) and never used again; the sort is then done on one
// thread (compact-vectors.js).

import { CompactVectors, SPLIT_ROWS } from './compact-vectors.js';

const WAIT_MS = 5000;

// The thread, as the search worker sees it: through its port.
export class ZeroShotHelper {
  // onStop(why): the thread is given up; the page should terminate it.
  constructor(port, onStop) {
    this.port = port;
    this.onStop = onStop;
    this.ready = false;
    this.broken = null; // why it is no longer used
    port.onmessage = ({ data }) => {
      if (data === 'ready') this.ready = true;
    };
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
    this.port.postMessage({ warmUp: true });
    CompactVectors.warmUp({ shared: true });
  }

  // Rows start..end-1 of a zero-shot sort (CompactVectors.zeroShotRows, state on shared memory)
  // on the other thread. -> the job, for finish().
  start(parts, state, start, end) {
    const done = new Int32Array(new SharedArrayBuffer(4));
    this.port.postMessage({ parts, state, start, end, done });
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
    if (this.broken) return;
    this.broken = why;
    this.port.close();
    this.onStop(why);
  }
}
