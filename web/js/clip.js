// The client API that pages, the widget and tests all use.
//
//   const clip = await createClip({ model: 'tiny-reference', backend: 'wasm' });
//   const imageEmbeds = await clip.embedImage(file);          // Float32Array(512), raw model output
//   const many = await clip.embedImages([file1, file2, ...]);  // [Float32Array(512), ...], batched runs
//   const textEmbeds = await clip.embedText(['a cat', 'a dog']); // [Float32Array(512), ...]
//   clip.similarity(imageEmbeds, textEmbeds)                   // { cosine: [...], probs: [...] }
//
// Embeddings are the raw outputs, like PyTorch's get_image_features / get_text_features.
//
// Public URL /js/clip.js: other sites import it, so it stays here. Layer: the client, above
// runtime/. May import: runtime/ only.

import { Runtime, fetchJson, BASE_URL } from './runtime/runtime.js';
import { RpcError } from './runtime/rpc.js';

export const LOGIT_SCALE = 100; // CLIP's learned temperature sits at its clamp, ln(100)

export async function listModels(base = BASE_URL) {
  return fetchJson('api/models', base);
}

export async function resolveModel(model, base = BASE_URL) {
  if (model && typeof model === 'object') return model;
  const listing = await listModels(base);
  const id = model || listing.default;
  const found = listing.models.find((m) => m.id === id);
  const refused = (listing.refused ?? []).find((r) => r.id === id);
  if (refused) throw new RpcError(`model "${id}" can't be used: ${refused.error}`, 'bad_manifest');
  if (!found) {
    throw new RpcError(`unknown model "${id}"; this server offers: ${listing.models.map((m) => m.id).join(', ')}`, 'unknown_model');
  }
  return found;
}

// One runtime (two workers) per server and backend settings, shared by every client on the page.
const runtimes = new Map();

function sharedRuntime({ base, backend, threads, onProgress, runtimeOptions }) {
  const key = `${base}|${backend}|${threads}|${JSON.stringify(runtimeOptions)}`;
  let entry = runtimes.get(key);
  if (!entry) {
    const listeners = new Set();
    const promise = Runtime.launch({ ...runtimeOptions, base, backend, threads, onProgress: (p) => listeners.forEach((f) => f(p)) });
    entry = { promise, listeners, users: 0 };
    runtimes.set(key, entry);
    // A runtime whose Python or onnxruntime failed to start is not shared again: the next client
    // (a retry) starts a fresh one.
    const forget = () => runtimes.get(key) === entry && runtimes.delete(key);
    promise.then((r) => Promise.all([r.pyReady, r.ortReady])).catch(forget);
  }
  if (onProgress) entry.listeners.add(onProgress);
  entry.users += 1;
  return { entry, key };
}

// Pause (true) or resume (false) the model downloads of every runtime on this page; the page's
// Pause button. Downloads continue from their last byte.
export async function pauseModelDownloads(paused) {
  const all = await Promise.all([...runtimes.values()].map((e) => e.promise.then((r) => r.pauseDownloads(paused)).catch(() => null)));
  return all.some(Boolean);
}

// Ask the browser to keep stored models when it runs short of space (only pages may ask). -> granted?
export async function persistStorage() {
  try {
    return (await navigator.storage?.persisted?.()) || (await navigator.storage?.persist?.()) || false;
  } catch {
    return false;
  }
}

export const ENCODERS = ['image', 'text'];

// encoders: which encoders to load and in what order (default ['image', 'text']). createClip
// resolves as soon as the first one is ready; the rest load in the background after it, and a
// call that needs one waits for it. An encoder not listed loads when first used. The model download
// starts at once, beside Python's boot. (Loading both before resolving, the old default, made the
// first image of a full-size fp32 model 1.4x slower: both downloads and sessions at once on two
// cores; docs/startup-ab.md.)
// runtimeOptions: extra Runtime.launch options (benchmarks switch start-up techniques off with it).
export async function createClip({ model = null, backend = 'wasm', threads = 0, base = BASE_URL, onProgress = null, encoders = null, runtimeOptions = {} } = {}) {
  const order = encoders ?? ENCODERS;
  const unknown = order.filter((e) => !ENCODERS.includes(e));
  if (unknown.length || order.length === 0) {
    throw new RpcError(`encoders must list "image" and/or "text", got ${JSON.stringify(encoders)}`, 'bad_input');
  }
  const manifestPromise = resolveModel(model, base);
  const { entry, key } = sharedRuntime({ base, backend, threads, onProgress, runtimeOptions });
  try {
    const [manifest, runtime] = await Promise.all([manifestPromise, entry.promise]);
    const t0 = performance.now();
    // The first encoder alone (all of the bandwidth and cores), then the rest.
    const now = order.slice(0, 1);
    const ready = Promise.all(now.map((part) => runtime.loadPart(manifest, part, backend)));
    const later = ready.then(() => Promise.all(order.slice(now.length).map((part) => runtime.loadPart(manifest, part, backend))));
    later.catch(() => {}); // a background load's failure is reported to the call that needs it
    later.finally(() => runtime.snapshotWhenIdle()).catch(() => {});
    await Promise.all([runtime.pyReady, ready.then(() => {
      runtime.timings.model_load_ms ??= performance.now() - t0;
    })]);
    runtime.timings.ready_ms ??= performance.now() - runtime.t0;
    const client = new ClipClient({ runtime, manifest, backend, release: () => releaseRuntime(key, entry) });
    client.timings = { create_ms: performance.now() - t0, encoders: order };
    return client;
  } catch (err) {
    releaseRuntime(key, entry);
    throw err;
  }
}

function releaseRuntime(key, entry) {
  entry.users -= 1;
  if (entry.users <= 0) {
    if (runtimes.get(key) === entry) runtimes.delete(key);
    entry.promise.then((r) => r.dispose()).catch(() => {});
  }
}

async function toBytes(input) {
  if (input instanceof Uint8Array) return input;
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  if (typeof Blob !== 'undefined' && input instanceof Blob) return new Uint8Array(await input.arrayBuffer());
  if (input instanceof URL || typeof input === 'string') return fetchImage(String(input));
  throw new RpcError('embedImage takes a Blob/File, an ArrayBuffer, a Uint8Array or an image URL', 'bad_input');
}

export async function fetchImage(url) {
  let response;
  try {
    response = await fetch(url, { mode: 'cors', credentials: 'omit' });
  } catch (err) {
    throw new RpcError(
      `Could not fetch ${url}. Either the address is unreachable, or its server does not let other ` +
        `sites read the image (no CORS header). Download the image and choose the file instead.`,
      'fetch_failed',
    );
  }
  if (!response.ok) throw new RpcError(`Could not fetch ${url}: HTTP ${response.status} ${response.statusText}`, 'fetch_failed');
  return new Uint8Array(await response.arrayBuffer());
}

function norm(v) {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

export function cosine(a, b) {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i] * b[i];
  const n = norm(a) * norm(b);
  return n === 0 ? 0 : dot / n;
}

export function softmax(values) {
  const max = Math.max(...values);
  const exps = values.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

// A label's probability from cosines, by the manifest's scoring (pyapp/pipeline.py): softmax over
// the labels of scale * cosine (CLIP), or each label's own sigmoid(scale * cosine + bias) (SigLIP).
export function labelProbs(cosines, scoring = {}) {
  const { kind = 'softmax', logit_scale: scale = LOGIT_SCALE, logit_bias: bias = 0 } = scoring;
  if (kind === 'sigmoid') return cosines.map((c) => 1 / (1 + Math.exp(-(scale * c + bias))));
  return softmax(cosines.map((c) => scale * c));
}

function split(output) {
  const [n, d] = output.dims;
  return Array.from({ length: n }, (_, i) => output.data.slice(i * d, (i + 1) * d));
}

export class ClipClient {
  constructor({ runtime, manifest, backend = runtime.backend, release }) {
    this.runtime = runtime;
    this.manifest = manifest;
    this.backend = backend;
    this.release = release;
    this.disposed = false;
  }

  // The load info of one encoder, loading it first if nobody has yet.
  encoder(part) {
    return this.runtime.loadPart(this.manifest, part, this.backend);
  }

  check() {
    if (this.disposed) throw new RpcError('this CLIP client was disposed', 'disposed');
  }

  // -> Float32Array(embed_dim); with { details: true } also pixelValues, decoder and timings
  // ({ details: true, pixels: false }: without the pixel values, which cost a copy).
  // The image's bytes go to the Python worker, its pixels from there straight to the model.
  async embedImage(input, { details = false, pixels = true } = {}) {
    this.check();
    const bytes = await toBytes(input);
    this.encoder('image').catch(() => {}); // an image encoder not loaded yet starts now; the run waits for it
    const out = await this.runtime.embedImage(bytes, this.manifest, { details: details && pixels }); // embeds (1, 512)
    const embedding = out.embeds.data;
    if (!details) return embedding;
    return { embedding, pixelValues: out.pixelValues, decoder: out.decoder, timings: { preprocess_ms: out.preprocessMs, inference_ms: out.embeds.ms } };
  }

  // [image, ...] -> [Float32Array, ...], the same as embedImage on each, in fewer encoder runs:
  // each image is preprocessed in the Python worker, and `batch` of them run as one (n, 3, 224, 224)
  // tensor; the next batch is preprocessed while this one is in the model. A file that cannot be
  // read or decoded fails the call with its position in the list; nothing is left behind.
  async embedImages(inputs, { batch = 4 } = {}) {
    this.check();
    if (!Array.isArray(inputs)) throw new RpcError('embedImages takes a list of images', 'bad_input');
    if (inputs.length === 0) return [];
    this.encoder('image').catch(() => {});
    const prepare = async (start) => {
      const chunk = inputs.slice(start, start + batch);
      const settled = await Promise.allSettled(chunk.map(async (x) => this.runtime.prepareImage(await toBytes(x), this.manifest)));
      const failed = settled.findIndex((r) => r.status === 'rejected');
      if (failed >= 0) {
        this.runtime.dropPrepared(settled.filter((r) => r.status === 'fulfilled').map((r) => r.value.handle));
        const err = settled[failed].reason;
        throw new RpcError(`image ${start + failed + 1} of ${inputs.length}: ${err.message}`, err.code ?? 'bad_input');
      }
      return settled.map((r) => r.value.handle);
    };
    const embeddings = [];
    let next = prepare(0);
    for (let start = 0; start < inputs.length; start += batch) {
      const handles = await next;
      next = start + batch < inputs.length ? prepare(start + batch) : null;
      next?.catch(() => {}); // reported when awaited
      let output;
      try {
        output = await this.runtime.embedPrepared(this.manifest, handles); // (n, 512)
      } catch (err) {
        next?.then((h) => this.runtime.dropPrepared(h), () => {});
        throw err;
      }
      embeddings.push(...split(output));
    }
    return embeddings;
  }

  // string -> Float32Array; string[] -> Float32Array[] (one batched run). { details: true } adds ids.
  async embedText(text, { details = false } = {}) {
    this.check();
    const texts = Array.isArray(text) ? text : [text];
    if (texts.length === 0) return [];
    this.encoder('text').catch(() => {}); // as in embedImage: loading starts now, the run waits
    // A dynamic-sequence encoder runs only up to the batch's last end-of-text token: the same
    // embeddings (causal mask, pooling at EOT), a fraction of the work. Callers still see 77 ids.
    const out = await this.runtime.embedText(texts, this.manifest, { details }); // embeds (n, 512)
    const embeddings = split(out.embeds);
    const value = Array.isArray(text) ? embeddings : embeddings[0];
    if (!details) return value;
    const inputIds = { ...out.inputIds, ms: out.tokenizeMs }; // (n, 77)
    return { embeddings: value, inputIds, modelInputDims: out.modelInputDims, timings: { tokenize_ms: out.tokenizeMs, inference_ms: out.embeds.ms } };
  }

  async tokenize(text) {
    this.check();
    const [ids, tokens] = await Promise.all([this.runtime.tokenize([text], this.manifest), this.runtime.tokenStrings(text, this.manifest)]);
    return { ids: ids.data, tokens };
  }

  // Cosine of the image with each text, and zero-shot probabilities by the model's scoring
  // (CLIP: softmax(100 * cosine) over the texts).
  similarity(imageEmbeds, textEmbeds) {
    const list = Array.isArray(textEmbeds) ? textEmbeds : [textEmbeds];
    const cos = list.map((t) => cosine(imageEmbeds, t));
    return { cosine: cos, probs: labelProbs(cos, this.manifest.scoring) };
  }

  cropPreview(pixelValues) {
    return this.runtime.cropPreview(pixelValues, this.manifest);
  }

  // What is loaded and how: encoders still loading (or never asked for) are left out.
  async info() {
    const info = await this.runtime.info();
    const loaded = {};
    for (const part of ENCODERS) {
      const done = this.runtime.loadedParts.get(`${this.manifest.id}:${part}`);
      if (done) loaded[part] = done;
    }
    const parts = Object.values(loaded);
    return {
      model: { id: this.manifest.id, name: this.manifest.name, variant: this.manifest.variant },
      encoders: Object.keys(loaded),
      backend: (loaded.image ?? loaded.text)?.backend ?? this.backend,
      requestedBackend: this.runtime.backend,
      notices: [...new Set(parts.flatMap((p) => p.notices))],
      cached: parts.length > 0 && parts.every((p) => p.cached),
      threads: info.onnx.threads,
      // How Python started: restored from this browser's snapshot, or booted (and why).
      python: { snapshot: info.pythonStatus.snapshot, imagesReady: info.pythonStatus.imagesReady },
      // Who decodes colour JPEGs here, and why: the browser only where it passes the self-check.
      jpegDecoder: info.pythonStatus.jpegDecoder,
      crossOriginIsolated: info.crossOriginIsolated,
      versions: { ...info.python.versions, onnxruntimeWeb: info.onnx.ortVersion },
      timings: { ...info.timings, client: this.timings, model: Object.fromEntries(Object.entries(loaded).map(([k, v]) => [k, v.timings])) },
    };
  }

  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    this.release();
  }
}
