// Shared by the benchmark pages (ours.html, tjs.html): the same measuring code drives both
// contenders through a small adapter, so only the library calls differ.
//
// adapter: {
//   embedImage(blob)   -> { embedding: Float32Array, preprocess_ms, inference_ms }
//   embedTexts(texts)  -> { embeddings: Float32Array[], ids: number[][] (77 ids each, for agreement) }
//   embedText(text)    -> { embedding: Float32Array, tokenize_ms, inference_ms }
// }
// The harness (benchmarks/compare.py) calls window.bench.* with page.evaluate; every time below is
// taken inside the page with performance.now(), so Playwright's round trips are not in the figures.

export const params = new URLSearchParams(location.search);

export function setState(state, detail = '') {
  document.body.dataset.state = state;
  const el = document.querySelector('#message');
  if (el) el.textContent = detail || state;
}

export async function fetchBlob(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`HTTP ${r.status} for ${url}`);
  return r.blob();
}

function quantile(sorted, q) {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  const hi = Math.ceil(i);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
}

export function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  return { median: quantile(s, 0.5), p90: quantile(s, 0.9), min: s[0], max: s[s.length - 1], n: s.length };
}

export function installBench(adapter, startup) {
  const images = new Map(); // name -> Blob
  const bench = {
    startup,
    async loadImages(names) {
      await Promise.all(names.map(async (n) => images.set(n, await fetchBlob(`../images/${encodeURIComponent(n)}`))));
      return images.size;
    },
    // Fidelity: one embedding (or the error) per image.
    async embedImages(names) {
      const out = [];
      for (const name of names) {
        try {
          const r = await adapter.embedImage(images.get(name));
          out.push({ name, embedding: Array.from(r.embedding) });
        } catch (err) {
          out.push({ name, error: String(err?.message ?? err).slice(0, 300) });
        }
      }
      return out;
    },
    // Latency: `warmup` untimed runs, then n timed ones, blob in -> embedding out.
    async timeImage(name, n, warmup = 1) {
      const blob = images.get(name);
      for (let i = 0; i < warmup; i++) await adapter.embedImage(blob);
      const samples = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const r = await adapter.embedImage(blob);
        samples.push({ total_ms: performance.now() - t0, preprocess_ms: r.preprocess_ms, inference_ms: r.inference_ms });
      }
      return samples;
    },
    async timeText(text, n, warmup = 1) {
      for (let i = 0; i < warmup; i++) await adapter.embedText(text);
      const samples = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        const r = await adapter.embedText(text);
        samples.push({ total_ms: performance.now() - t0, tokenize_ms: r.tokenize_ms, inference_ms: r.inference_ms });
      }
      return samples;
    },
    // Throughput: the images one after another, as an app embedding a folder would.
    async throughput(names) {
      const t0 = performance.now();
      for (const name of names) await adapter.embedImage(images.get(name));
      return performance.now() - t0;
    },
    async texts(texts, chunk = 16) {
      const ids = [];
      const embeddings = [];
      for (let i = 0; i < texts.length; i += chunk) {
        const r = await adapter.embedTexts(texts.slice(i, i + chunk));
        ids.push(...r.ids.map((row) => Array.from(row, Number)));
        embeddings.push(...r.embeddings.map((e) => Array.from(e)));
      }
      return { ids, embeddings };
    },
  };
  window.bench = bench;
  return bench;
}

// Runs the startup sequence shared by both pages and records a timeline in ms since navigation:
//   load(): library / runtime + both models ready   firstImage(): one image embedding   firstText()
// With ?first=text the page is a text-only one: ready, then one text embedding, and no image.
export async function runStartup({ load, firstImage, firstText, details }) {
  const t = { script: performance.now() };
  const textOnly = params.get('first') === 'text';
  const blob = textOnly ? null : fetchBlob(`../images/${encodeURIComponent(params.get('image'))}`);
  const extra = await load();
  t.ready = performance.now();
  let image = {};
  if (!textOnly) {
    image = await firstImage(await blob);
    t.first_image = performance.now();
  }
  await firstText('a photo of a cat');
  t.first_text = performance.now();
  const result = { marks: t, image: { preprocess_ms: image.preprocess_ms, inference_ms: image.inference_ms }, ...(await details(extra)) };
  return result;
}
