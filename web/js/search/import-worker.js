// Parses an exported search index off the main thread: JSON.parse of a 10,000-image index
// (27 MB) takes longer than a frame, and so does decoding its base64. What comes back is cheap to
// receive: the file's header, one small object per image, and every embedding in one transferred
// Float32Array (n x d).

import { base64ToFloats } from './query.js';

self.onmessage = async (e) => {
  try {
    const { source, format } = e.data;
    const data = JSON.parse(typeof source === 'string' ? source : await source.text());
    if (!data || data.format !== format || !Array.isArray(data.items)) {
      throw new Error('not a clip-web search index (expected the JSON that "Export index" writes)');
    }
    const rows = data.items;
    const d = rows.length ? base64ToFloats(rows[0].embedding).length : 0;
    const matrix = new Float32Array(rows.length * d);
    const items = rows.map((r, k) => {
      const v = base64ToFloats(r.embedding);
      if (v.length !== d) throw new Error(`${r.path}: its embedding has ${v.length} values, the others ${d}`);
      matrix.set(v, k * d);
      return { path: String(r.path), size: Number(r.size), lastModified: Number(r.lastModified) };
    });
    delete data.items;
    self.postMessage({ ok: true, head: data, items, d, matrix }, [matrix.buffer]);
  } catch (err) {
    self.postMessage({ ok: false, message: err instanceof SyntaxError ? `not valid JSON (${err.message})` : err.message });
  }
};
