// The in-browser runtime, seen from the page: two module workers started in parallel, one for
// Pyodide + pyapp (py-worker.js), one for onnxruntime-web (ort-worker.js). Pyodide's boot and
// the model download + session creation overlap instead of running one after the other.
//
// runtime/ owns everything below the client API: the two workers (py-worker.js, ort-worker.js),
// their RPC (rpc.js), onnxruntime-web (ort-backend.js, the only module that imports it), model
// downloads and their cache (model-fetch.js), and byte progress (progress-fetch.js).
// May import: nothing outside runtime/ (it is the lowest layer).

import { WorkerClient, spawnWorker, RpcError } from './rpc.js';

// Where this copy of clip-web is served from (works when a page on another origin imports us).
export const BASE_URL = new URL('../../', import.meta.url).href;

export async function fetchJson(path, base = BASE_URL) {
  const url = new URL(path, base).href;
  let response;
  try {
    response = await fetch(url);
  } catch (err) {
    throw new RpcError(`the clip-web server at ${new URL(base).origin} is unreachable (${err.message})`, 'server_unreachable');
  }
  if (!response.ok) throw new RpcError(`HTTP ${response.status} for ${url}`, 'server_error');
  return response.json();
}

export class Runtime extends EventTarget {
  constructor({ base, runtimeConfig, backend, threads }) {
    super();
    this.base = base;
    this.config = runtimeConfig;
    this.backend = backend;
    this.threads = threads;
    this.downloads = new Map(); // file -> { loaded, total, done, source }
    this.timings = {};
    this.models = new Map(); // manifest id -> { manifest, image, text }
    const onEvent = (name, detail) => this.onWorkerEvent(name, detail);
    this.py = new WorkerClient(spawnWorker(new URL('js/runtime/py-worker.js', base), 'clip-web-python'), onEvent);
    this.ort = new WorkerClient(spawnWorker(new URL('js/runtime/ort-worker.js', base), 'clip-web-onnxruntime'), onEvent);
  }

  // Start both workers; load `model` (a manifest) at the same time when given.
  // `sequential: true` starts onnxruntime only after Python is ready: the naive order, kept so
  // the startup benchmark can measure what the overlap gains.
  static async start({ base = BASE_URL, backend = 'wasm', threads = 0, model = null, onProgress = null, sequential = false } = {}) {
    const t0 = performance.now();
    const runtimeConfig = await fetchJson('api/runtime', base);
    const runtime = new Runtime({ base, runtimeConfig, backend, threads });
    if (onProgress) runtime.addEventListener('progress', (e) => onProgress(e.detail));
    const pyReady = runtime.py.call('init', { runtime: runtimeConfig, base }).then((info) => {
      runtime.python = info;
      runtime.timings.pyodide_ready_ms = performance.now() - t0;
      return info;
    });
    const ortReady = (sequential ? pyReady : Promise.resolve())
      .then(() => runtime.ort.call('init', { runtime: runtimeConfig, base, backend, threads }))
      .then(async (info) => {
        runtime.onnx = info;
        if (model) await runtime.loadModel(model);
        runtime.timings.ort_ready_ms = performance.now() - t0;
      });
    try {
      await Promise.all([pyReady, ortReady]);
    } catch (err) {
      runtime.dispose();
      throw err;
    }
    runtime.timings.ready_ms = performance.now() - t0;
    return runtime;
  }

  onWorkerEvent(name, detail) {
    if (name !== 'progress') return;
    this.downloads.set(detail.file, detail);
    this.dispatchEvent(new CustomEvent('progress', { detail: { ...detail, all: [...this.downloads.values()] } }));
  }

  async loadModel(manifest, backend = this.backend) {
    const t0 = performance.now();
    const [image, text] = await Promise.all(
      ['image', 'text'].map((part) =>
        this.ort.call('loadModel', {
          key: `${manifest.id}:${part}`,
          // Manifest URLs may be relative to this server; a worker started from a blob URL (on
          // another site's page) has no base to resolve them against, so resolve them here.
          spec: { ...manifest[part], url: new URL(manifest[part].url, this.base).href },
          backend,
        }),
      ),
    );
    this.timings.model_load_ms = performance.now() - t0;
    const entry = { manifest, image, text };
    this.models.set(manifest.id, entry);
    return entry;
  }

  preprocess(bytes, manifest) {
    return this.py.call('preprocess', { bytes, size: manifest.image_size, mean: manifest.mean, std: manifest.std });
  }

  // { trim: true } adds `model`, the ids cut to the batch's real length, when the text encoder
  // takes a dynamic sequence (manifest text.dynamic_sequence); fixed-length encoders get 77.
  tokenize(texts, manifest, { trim = false } = {}) {
    return this.py.call('tokenize', { texts, contextLength: manifest.context_length, trim: trim && manifest.text.dynamic_sequence === true });
  }

  tokenStrings(text) {
    return this.py.call('tokenStrings', { text });
  }

  cropPreview(pixelValues, manifest) {
    return this.py.call('cropPreview', { data: pixelValues.data, dims: pixelValues.dims, mean: manifest.mean, std: manifest.std });
  }

  // tensor: { data: Float32Array | Int32Array, dims } -> { data: Float32Array, dims, ms }
  run(manifestId, part, tensor) {
    return this.ort.call('run', { key: `${manifestId}:${part}`, data: tensor.data, dims: tensor.dims });
  }

  runPython(code) {
    return this.py.call('runPython', { code });
  }

  async info() {
    return {
      python: this.python,
      onnx: await this.ort.call('info'),
      crossOriginIsolated: self.crossOriginIsolated === true,
      timings: this.timings,
    };
  }

  dispose() {
    this.py.terminate();
    this.ort.terminate();
  }
}
