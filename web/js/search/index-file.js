// Reading an index file: what the page's "Export index" writes and `clip-web index` writes
// (docs/native-index.md), also a published pack of someone else's images (docs/search-index.md).
//
//   { format: 'clip-web-search-index', version: 1, model, embed_dim, name, root, created, count,
//     skipped: [{ path, reason }], items: [{ path, size, lastModified, embedding, thumbnail? }] }
//
// embedding: base64 of embed_dim little-endian float32 (the encoder's raw output). thumbnail (packs):
// a URL of a small picture of the image, relative to the index's own URL.
// Everything here is checked, so a damaged, truncated or foreign file is refused with a sentence
// saying what is wrong, before anything the page holds is replaced.

import { base64ToFloats } from './query.js';

export const INDEX_FORMAT = 'clip-web-search-index';
export const INDEX_VERSION = 1;
export const NOT_AN_INDEX = 'not a clip-web search index (expected the JSON that "Export index" or `clip-web index` writes)';

function decode(row, k) {
  if (typeof row?.embedding !== 'string') throw new Error(`item ${k + 1} (${row?.path ?? 'no path'}) has no embedding`);
  try {
    return base64ToFloats(row.embedding);
  } catch {
    throw new Error(`item ${k + 1} (${row.path}): its embedding is not base64 (the file is damaged)`);
  }
}

// text -> the parsed object, with JSON's own complaint made readable (a truncated download ends
// mid-string: "Unterminated string in JSON").
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`not valid JSON, the file may be truncated or damaged (${err.message})`);
  }
}

// A parsed index -> { head (everything but items), rows: [{ path, size, lastModified, thumbnail }],
// d, matrix: Float32Array(n * d) of raw embeddings }. Throws a readable Error on anything wrong.
export function readIndex(data) {
  if (!data || typeof data !== 'object' || data.format !== INDEX_FORMAT || !Array.isArray(data.items)) {
    throw new Error(NOT_AN_INDEX);
  }
  if (data.version !== undefined && data.version !== INDEX_VERSION) {
    throw new Error(`this index is version ${data.version} of the format; this page reads version ${INDEX_VERSION}`);
  }
  const items = data.items;
  const d = items.length ? decode(items[0], 0).length : Number(data.embed_dim) || 0;
  if (items.length && !(d > 0)) throw new Error('its first embedding is empty (the file is damaged)');
  if (data.embed_dim !== undefined && items.length && Number(data.embed_dim) !== d) {
    throw new Error(`it says embed_dim ${data.embed_dim}, but its embeddings have ${d} values (the file is damaged)`);
  }
  if (data.count !== undefined && Number(data.count) !== items.length) {
    throw new Error(`it says ${data.count} images but holds ${items.length} (the file is truncated or damaged)`);
  }
  const matrix = new Float32Array(items.length * d);
  const rows = new Array(items.length);
  for (let k = 0; k < items.length; k++) {
    const r = items[k];
    if (typeof r?.path !== 'string' || !r.path) throw new Error(`item ${k + 1} has no path`);
    const v = decode(r, k);
    if (v.length !== d) throw new Error(`${r.path}: its embedding has ${v.length} values, the others ${d}`);
    for (let i = 0; i < d; i++) {
      if (!Number.isFinite(v[i])) throw new Error(`${r.path}: its embedding holds ${v[i]} (the file is damaged)`);
    }
    matrix.set(v, k * d);
    rows[k] = {
      path: r.path,
      size: Number(r.size) || 0,
      lastModified: Number(r.lastModified) || 0,
      thumbnail: typeof r.thumbnail === 'string' ? r.thumbnail : null,
    };
  }
  const { items: _, ...head } = data;
  return { head, rows, d, matrix };
}
