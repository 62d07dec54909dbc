// Query math for the search page, kept free of DOM and workers so it reads like the numpy it is
// checked against (tests/browser/test_search_page.py does the same steps natively).
//
//   query vector q = mean(unit(positive_i)) - mean(unit(negative_j)), then q = unit(q)
//   score(image)   = unit(image) · q                  (a cosine, in [-1, 1])
//   zero-shot      = softmax over labels of 100 * cosine(image, label)
//
// Positives are text prompts and/or example images ("more like this"), all in CLIP's joint space.

export const LOGIT_SCALE = 100;

// "a cat; a kitten" or one prompt per line -> ['a cat', 'a kitten'].
export function splitPrompts(text) {
  if (!text) return [];
  const list = Array.isArray(text) ? text : String(text).split(/[\n;]/);
  return list.map((t) => String(t).trim()).filter((t) => t.length > 0);
}

// Unit vector, computed in float64 (a float32 sum of 512 squares loses digits we compare on).
export function unit(v) {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const n = Math.sqrt(s);
  const out = new Float64Array(v.length);
  if (n > 0) for (let i = 0; i < v.length; i++) out[i] = v[i] / n;
  return out;
}

function mean(vectors, d) {
  const out = new Float64Array(d);
  for (const v of vectors) for (let i = 0; i < d; i++) out[i] += v[i];
  for (let i = 0; i < d; i++) out[i] /= vectors.length;
  return out;
}

// positives, negatives: raw embeddings (any length-d arrays). -> unit query vector (Float64Array),
// all zeros when nothing is left (e.g. the same prompt as positive and negative).
export function combineQuery(positives, negatives = []) {
  const d = (positives[0] ?? negatives[0])?.length ?? 0;
  const q = new Float64Array(d);
  if (positives.length) {
    const p = mean(positives.map(unit), d);
    for (let i = 0; i < d; i++) q[i] += p[i];
  }
  if (negatives.length) {
    const n = mean(negatives.map(unit), d);
    for (let i = 0; i < d; i++) q[i] -= n[i];
  }
  return unit(q);
}

export function dot(a, b) {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

// Highest first; ties by path, so the order is the same in every browser and in the tests.
export function byScore(a, b) {
  return b.score - a.score || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

// items: [{ path, unit }] with unit = unit(image embedding) -> [{ item, score }] sorted.
export function rank(items, q) {
  const out = items.map((item) => ({ item, path: item.path, score: dot(item.unit, q) }));
  return out.sort(byScore);
}

// rank() a slice at a time, yielding to the page in between: 10,000 x 512 multiply-adds plus
// the sort take tens of milliseconds on a slow machine, too long for one main-thread task.
// -> [{ item, path, score }] sorted, or null when stale() turned true meanwhile.
export async function rankInSlices(items, q, stale = () => false, slice = 2000) {
  const scores = new Float64Array(items.length);
  for (let start = 0; start < items.length; start += slice) {
    const end = Math.min(items.length, start + slice);
    for (let k = start; k < end; k++) scores[k] = dot(items[k].unit, q);
    if (end < items.length) {
      await new Promise((r) => setTimeout(r, 0));
      if (stale()) return null;
    }
  }
  // Sorting indices by a typed array is several times faster than sorting objects.
  const order = Uint32Array.from(items.keys());
  order.sort((a, b) => scores[b] - scores[a] || (items[a].path < items[b].path ? -1 : items[a].path > items[b].path ? 1 : 0));
  return Array.from(order, (k) => ({ item: items[k], path: items[k].path, score: scores[k] }));
}

// items' unit vectors and raw label embeddings -> per item { label (index), prob, probs }.
export function zeroShot(items, labelEmbeddings) {
  const labels = labelEmbeddings.map(unit);
  return items.map((item) => {
    const logits = labels.map((l) => LOGIT_SCALE * dot(item.unit, l));
    const max = Math.max(...logits);
    const exps = logits.map((x) => Math.exp(x - max));
    const sum = exps.reduce((a, b) => a + b, 0);
    const probs = exps.map((e) => e / sum);
    let best = 0;
    for (let j = 1; j < probs.length; j++) if (probs[j] > probs[best]) best = j;
    return { label: best, prob: probs[best], probs };
  });
}

// Embeddings in an exported index: little-endian float32 bytes, base64 (every browser that runs
// this is little-endian; numpy reads it with np.frombuffer(..., '<f4')).
export function floatsToBase64(v) {
  const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function base64ToFloats(b64) {
  const s = atob(b64);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}
