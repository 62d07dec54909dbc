// Parses an exported search index off the main thread: JSON.parse of a 10,000-image index
// (27 MB) takes longer than a frame, and so does decoding its base64. What comes back is cheap to
// receive: the file's header, one small object per image, and every embedding in one transferred
// Float32Array (n x d). (The search page itself reads index files in vector-worker.js, which keeps
// the embeddings; this standalone parser is what other scripts and the Node tests run.)

import { readIndex, parseJson } from './index-file.js';

self.onmessage = async (e) => {
  try {
    const { source } = e.data;
    const { head, rows, d, matrix } = readIndex(parseJson(typeof source === 'string' ? source : await source.text()));
    const items = rows.map((r) => ({ path: r.path, size: r.size, lastModified: r.lastModified }));
    self.postMessage({ ok: true, head, items, d, matrix }, [matrix.buffer]);
  } catch (err) {
    self.postMessage({ ok: false, message: err.message });
  }
};
