// The zero-shot helper's thread (zero-shot-helper.js): scores its rows of a sort over the search
// worker's shared memory and says so through the job's flag (1 done, 2 failed). The page sends it
// one message, the port the search worker talks to it through.
import { CompactVectors } from './compact-vectors.js';

function onJob({ data: { warmUp, parts, state, start, end, done } }) {
  if (warmUp) {
    CompactVectors.warmUp({ shared: true });
    return;
  }
  let status = 1;
  try {
    CompactVectors.view(parts).zeroShotRows(state, start, end, 1);
  } catch (err) {
    status = 2;
    console.error('clip-web search helper:', err);
  }
  Atomics.store(done, 0, status);
  Atomics.notify(done, 0);
}

self.onmessage = ({ data: { port } }) => {
  port.onmessage = onJob;
  port.postMessage('ready');
};
