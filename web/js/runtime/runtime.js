// The in-browser runtime, seen from the page: two module workers started in parallel, one for
// Pyodide + pyapp (py-worker.js), one for onnxruntime-web (ort-worker.js). Pyodide's boot and
// the model download + session creation overlap instead of running one after the other.
// The workers talk to each other over a MessageChannel: an image's bytes go to Python, its
// pixel values straight to the model, and only the embedding comes back to the page.
//
// runtime/ owns everything below the client API: the two workers (py-worker.js, ort-worker.js),
// their RPC (rpc.js), onnxruntime-web (ort-backend.js, the only module that imports it), model
// downloads and their cache (model-fetch.js), byte progress (progress-fetch.js), and batching
// tensors (tensors.js).
// May import: nothing outside runtime/ (it is the lowest layer).

import { WorkerClient, spawnWorker, RpcError } from './rpc.js';
import { stackTensors } from './tensors.js';

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

// Every runtime started on this page and not disposed: Runtime.diagnoseAll() asks them.
const live = new Set();

// onnxruntime's `new Worker()` for its thread pool takes ~2 ms; one that has not returned in this
// long never will (Firefox, ort-worker.js), so the onnxruntime worker is replaced, once.
const THREAD_START_LIMIT_MS = 5000;
const ONNX_RESTARTS = 1;

// call() once more if the first failed because the onnxruntime worker was replaced meanwhile.
function afterOnnxRestart(call) {
  return call().catch((err) => (err?.code === 'onnx_restarted' ? call() : Promise.reject(err)));
}

export class Runtime extends EventTarget {
  constructor({ base, runtimeConfig, backend, threads, direct = true }) {
    super();
    this.base = base;
    this.config = runtimeConfig;
    this.backend = backend;
    this.threads = threads;
    this.downloads = new Map(); // file -> { loaded, total, done, source }
    this.stages = new Map(); // model key -> the last stage of its load the onnxruntime worker reported
    this.timings = {};
    this.models = new Map(); // manifest id -> { manifest, image, text }
    this.parts = new Map(); // `${manifest id}:${part}` -> Promise of that encoder's load info
    this.loadedParts = new Map(); // the same keys, once loaded -> load info
    live.add(this);
    this.onEvent = (name, detail) => this.onWorkerEvent(name, detail);
    this.py = new WorkerClient(spawnWorker(new URL('js/runtime/py-worker.js', base), 'clip-web-python'), this.onEvent);
    // `direct: false` sends every tensor through the page (the old path), for the benchmarks' A/B.
    this.direct = direct;
    this.onnxRestarts = 0;
    this.ort = this.spawnOnnx();
  }

  // The onnxruntime worker, and (direct) its channel to the Python worker. Sent before init: each
  // worker handles its messages in order, so the port is in place before anything can use it.
  spawnOnnx() {
    const ort = new WorkerClient(spawnWorker(new URL('js/runtime/ort-worker.js', this.base), 'clip-web-onnxruntime'), this.onEvent);
    if (this.direct) {
      const { port1, port2 } = new MessageChannel();
      this.py.call('connectOnnx', { port: port1 }, [port1]).catch(() => {});
      ort.call('connectPython', { port: port2 }, [port2]).catch(() => {});
    }
    return ort;
  }

  // What an onnxruntime worker's init gets. faults (tests only): { stallThreadStart: n } hangs the
  // thread pool's start in the first n onnxruntime workers of this runtime.
  onnxInitParams() {
    return { ...this.ortInitParams, faults: { stallThreadStart: (this.faults?.stallThreadStart ?? 0) > this.onnxRestarts } };
  }

  // A wedged onnxruntime worker (see THREAD_START_LIMIT_MS) is replaced by a fresh one, once: its
  // loads start again there and the calls that were waiting on it are retried (afterOnnxRestart).
  // A second wedge fails them with an error that says so.
  restartOnnx() {
    const old = this.ort;
    if (this.onnxRestarts >= ONNX_RESTARTS) {
      old.terminate(new RpcError(`onnxruntime's worker stopped answering (its thread pool did not start, ${this.onnxRestarts + 1} times); reload the page`, 'onnx_wedged'));
      return;
    }
    this.onnxRestarts += 1;
    this.ort = this.spawnOnnx();
    this.ortReady = this.ort.call('init', this.onnxInitParams()).then((info) => (this.onnx = info));
    this.ortReady.catch(() => {});
    old.terminate(new RpcError('the onnxruntime worker was restarted', 'onnx_restarted'));
  }

  // Start both workers at once and return without waiting for them: `pyReady` and `ortReady`
  // settle when each is up, so a caller can start a model download beside Pyodide's boot.
  // `sequential: true` starts onnxruntime only after Python is ready: the naive order, kept so
  // the startup benchmark can measure what the overlap gains.
  // `python` options go to the Python worker's init (benchmarks use them to switch techniques off).
  // `session`: onnxruntime-web session options merged over ours (for the engine-settings A/B).
  // `download.store`: where unfinished downloads are kept ('opfs', the default, else 'indexeddb'
  // or 'memory'; partial-store.js).
  static async launch({ base = BASE_URL, backend = 'wasm', threads = 0, onProgress = null, sequential = false, direct = true, python = {}, session = {}, download = {}, faults = {} } = {}) {
    const t0 = performance.now();
    const runtimeConfig = await fetchJson('api/runtime', base);
    const runtime = new Runtime({ base, runtimeConfig, backend, threads, direct });
    runtime.t0 = t0;
    if (onProgress) runtime.addEventListener('progress', (e) => onProgress(e.detail));
    runtime.pyReady = runtime.py.call('init', { runtime: runtimeConfig, base, options: python }).then((info) => {
      runtime.python = info;
      runtime.timings.pyodide_ready_ms = performance.now() - t0;
      return info;
    });
    runtime.faults = faults;
    runtime.ortInitParams = { runtime: runtimeConfig, base, backend, threads, sessionOptions: session, downloadStore: download.store };
    runtime.ortReady = (sequential ? runtime.pyReady : Promise.resolve())
      .then(() => runtime.ort.call('init', runtime.onnxInitParams()))
      .then((info) => {
        runtime.onnx = info;
        runtime.timings.ort_ready_ms = performance.now() - t0;
        return info;
      });
    // Reported by whoever awaits them; a failure must not also surface as unhandled.
    runtime.pyReady.catch(() => {});
    runtime.ortReady.catch(() => {});
    return runtime;
  }

  // Start both workers and wait for them; load `model` (a manifest) at the same time when given.
  static async start({ model = null, ...options } = {}) {
    const runtime = await Runtime.launch(options);
    try {
      await Promise.all([runtime.pyReady, model ? runtime.loadModel(model) : runtime.ortReady]);
    } catch (err) {
      runtime.dispose();
      throw err;
    }
    runtime.timings.ready_ms = performance.now() - runtime.t0;
    runtime.snapshotWhenIdle();
    return runtime;
  }

  // Stop (true) or continue (false) the model downloads in flight; they resume from their last byte.
  pauseDownloads(paused) {
    return this.ort.call('pauseDownloads', { paused });
  }

  onWorkerEvent(name, detail) {
    if (name === 'threadStart') {
      clearTimeout(this.threadStartTimer);
      if (detail.phase === 'begin') this.threadStartTimer = setTimeout(() => this.restartOnnx(), THREAD_START_LIMIT_MS);
    }
    if (name === 'snapshotWanted') this.makeSnapshot(detail);
    if (name === 'stage') this.stages.set(detail.key, { stage: detail.stage, atMs: Math.round(performance.now() - this.t0) });
    if (name !== 'progress') return;
    this.downloads.set(detail.file, detail);
    this.dispatchEvent(new CustomEvent('progress', { detail: { ...detail, all: [...this.downloads.values()] } }));
  }

  // The Python worker asks for its memory snapshot to be made (py-worker.js scheduleSnapshot): in a
  // throwaway worker started here, not by the Python worker, whose thread a wedged `new Worker()`
  // would stop (Firefox). What it posts goes back to the Python worker.
  makeSnapshot(job) {
    const told = (made) => this.py.call('snapshotMade', made).catch(() => {});
    let worker;
    try {
      worker = spawnWorker(new URL('js/runtime/snapshot-worker.js', this.base), 'clip-web-python-snapshot');
    } catch (err) {
      told({ ok: false, error: String(err?.message ?? err) });
      return;
    }
    this.snapshotWorker = worker; // dispose() stops it with the runtime's own workers
    const done = (made) => {
      told(made);
      worker.terminate();
      if (this.snapshotWorker === worker) this.snapshotWorker = null;
    };
    worker.onmessage = (e) => done(e.data);
    worker.onerror = (e) => {
      e.preventDefault?.();
      done({ ok: false, error: e.message || 'the snapshot worker failed to start' });
    };
    worker.postMessage(job);
  }

  // One encoder of a model (part: 'image' | 'text'): downloaded and its session created once per
  // runtime; callers of a load in flight share it. Starts as soon as onnxruntime is up, whether
  // or not Python is. A failed load is forgotten, so a retry loads again.
  loadPart(manifest, part, backend = this.backend) {
    const key = `${manifest.id}:${part}`;
    let pending = this.parts.get(key);
    if (!pending) {
      const t0 = performance.now();
      const load = () =>
        this.ortReady.then(() =>
          this.ort.call('loadModel', {
            key,
            // Manifest URLs may be relative to this server; a worker started from a blob URL (on
            // another site's page) has no base to resolve them against, so resolve them here.
            spec: { ...manifest[part], url: new URL(manifest[part].url, this.base).href },
            backend,
          }),
        );
      pending = afterOnnxRestart(load)
        .then((info) => {
          this.timings[`${part}_model_ms`] = performance.now() - t0;
          this.loadedParts.set(key, info);
          return info;
        });
      this.parts.set(key, pending);
      pending.catch(() => this.parts.get(key) === pending && this.parts.delete(key));
    }
    return pending;
  }

  // Both encoders, loaded side by side -> { manifest, image, text } (also kept in this.models).
  async loadModel(manifest, backend = this.backend) {
    const t0 = performance.now();
    const [image, text] = await Promise.all(['image', 'text'].map((part) => this.loadPart(manifest, part, backend)));
    this.timings.model_load_ms = performance.now() - t0;
    const entry = { manifest, image, text };
    this.models.set(manifest.id, entry);
    return entry;
  }

  preprocess(bytes, manifest) {
    return this.py.call('preprocess', this.imageParams(bytes, manifest));
  }

  // { trim: true } adds `model`, the ids cut to the batch's real length, when the text encoder
  // takes a dynamic sequence (manifest text.dynamic_sequence); fixed-length encoders get 77.
  tokenize(texts, manifest, { trim = false } = {}) {
    return this.py.call('tokenize', { texts, ...this.textParams(manifest), trim: trim && manifest.text.dynamic_sequence === true });
  }

  tokenStrings(text, manifest) {
    return this.py.call('tokenStrings', { text, tokenizer: this.textParams(manifest).tokenizer });
  }

  // How the Python worker makes this model's ids: OpenAI's BPE (tokenizer null), or the family's
  // own file and rules (pyapp/pipeline.py TextRules), loaded there once per model.
  // Without a manifest (scripts asking for OpenAI's tokens), OpenAI's BPE at the Python worker's
  // default length (77).
  textParams(manifest) {
    const spec = manifest?.tokenizer;
    const contextLength = manifest?.context_length;
    const tokenizer = spec?.kind === 'sentencepiece'
      ? { key: manifest.id, url: spec.url, sha256: spec.sha256, bytes: spec.bytes, rules: JSON.stringify({ context_length: contextLength, tokenizer: spec }) }
      : null;
    return { contextLength, tokenizer };
  }

  cropPreview(pixelValues, manifest) {
    return this.py.call('cropPreview', { data: pixelValues.data, dims: pixelValues.dims, mean: manifest.mean, std: manifest.std });
  }

  // tensor: { data: Float32Array | Int32Array, dims } -> { data: Float32Array, dims, ms }.
  // A run of an encoder still loading waits for it.
  async run(manifestId, part, tensor) {
    const key = `${manifestId}:${part}`;
    if (this.parts.has(key)) await this.parts.get(key);
    return this.ort.call('run', { key, data: tensor.data, dims: tensor.dims });
  }

  // A call to the Python worker that runs `part` of the model there, through the workers'
  // channel. Preprocessing overlaps a load still in flight; the load's failure is reported at
  // once, not after Python's part. The load is asked for here: the onnxruntime worker holds a run
  // for a session that is not there until its loadModel arrives (in either order) and settles.
  async viaPython(manifest, part, method, params, transfer = []) {
    const key = `${manifest.id}:${part}`;
    const load = this.loadPart(manifest, part);
    const call = () => this.py.call(method, { ...params, key }, transfer);
    // A call whose buffers moved cannot be sent again.
    const python = transfer.length === 0 ? afterOnnxRestart(call) : call();
    const [, out] = await Promise.all([load, python]);
    return out;
  }

  // bytes -> { embeds: { data, dims (1, d), ms }, preprocessMs, decoder, pixelValues? }.
  async embedImage(bytes, manifest, { details = false } = {}) {
    if (this.direct) return this.viaPython(manifest, 'image', 'embedImage', { ...this.imageParams(bytes, manifest), details });
    const pixels = await this.preprocess(bytes, manifest); // (1, 3, 224, 224)
    const embeds = await this.run(manifest.id, 'image', pixels); // (1, 512)
    return { embeds, preprocessMs: pixels.ms, decoder: pixels.decoder, pixelValues: details ? pixels : null };
  }

  // texts -> { embeds: { data, dims (n, d), ms }, tokenizeMs, modelInputDims, inputIds? (n, 77) }.
  async embedText(texts, manifest, { details = false } = {}) {
    const trim = manifest.text.dynamic_sequence === true;
    if (this.direct) return this.viaPython(manifest, 'text', 'embedText', { texts, ...this.textParams(manifest), trim, details });
    const ids = await this.tokenize(texts, manifest, { trim: true }); // (n, 77)
    const model = ids.model ?? ids; // (n, length <= 77)
    const embeds = await this.run(manifest.id, 'text', model); // (n, 512)
    return { embeds, tokenizeMs: ids.ms, modelInputDims: model.dims, inputIds: details ? { data: ids.data, dims: ids.dims } : null };
  }

  // Batched image runs for indexing: prepareImage keeps the pixel values (in the Python worker,
  // or here on the old path) -> { handle, dims, ms }; embedPrepared runs a list of handles as one
  // batch -> { data, dims (n, d), ms }; dropPrepared forgets handles that will not run.
  async prepareImage(bytes, manifest) {
    if (this.direct) return this.py.call('prepareImage', this.imageParams(bytes, manifest));
    const pixels = await this.preprocess(bytes, manifest);
    return { handle: pixels, dims: pixels.dims, ms: pixels.ms, decoder: pixels.decoder };
  }

  async embedPrepared(manifest, handles) {
    if (this.direct) return this.viaPython(manifest, 'image', 'embedPrepared', { handles });
    return this.run(manifest.id, 'image', stackTensors(handles)); // (n, 3, 224, 224) in, (n, 512) out
  }

  dropPrepared(handles) {
    if (this.direct && handles.length) this.py.call('dropPrepared', { handles }).catch(() => {});
  }

  // The manifest's image rules, as pyapp/pipeline.py reads them (its own spelling: one JSON string,
  // parsed and checked once per model in the Python worker).
  imageParams(bytes, manifest) {
    const { image_size, mean, std, preprocess = {} } = manifest;
    return { bytes, rules: JSON.stringify({ image_size, mean, std, preprocess }) };
  }

  // Tell the Python worker the page is idle: a snapshot due after a normal boot is made now
  // (in a throwaway worker), not while models are still loading.
  snapshotWhenIdle() {
    if (this.snapshotAsked) return;
    this.snapshotAsked = true;
    this.py.call('makeSnapshot', {}).catch(() => {});
  }

  runPython(code) {
    return this.py.call('runPython', { code });
  }

  async info() {
    return {
      python: this.python,
      pythonStatus: await this.py.call('status'), // the snapshot being made, numpy/Pillow loading
      onnx: await this.ort.call('info'),
      crossOriginIsolated: self.crossOriginIsolated === true,
      timings: this.timings,
    };
  }

  // Where this runtime stands, for the report of a page that never got ready: the calls each
  // worker has not answered, and what each worker says of itself, or that it did not answer in
  // `waitMs` (its thread is busy or wedged).
  async diagnose(waitMs = 3000) {
    const pending = { python: this.py.pendingCalls(), onnx: this.ort.pendingCalls() };
    const ask = (client, method) => Promise.race([
      client.call(method).catch((err) => `(failed: ${err.message})`),
      new Promise((resolve) => setTimeout(() => resolve(`(no answer in ${waitMs} ms)`), waitMs)),
    ]);
    const [python, onnx] = await Promise.all([ask(this.py, 'stage'), ask(this.ort, 'stage')]);
    const downloads = [...this.downloads.values()].map(({ file, loaded, total, done }) => ({ file, loaded, total, done }));
    const reported = Object.fromEntries(this.stages);
    return { ageMs: Math.round(performance.now() - this.t0), pending, python, onnx, reported, downloads, timings: this.timings };
  }

  static diagnoseAll(waitMs) {
    return Promise.all([...live].map((runtime) => runtime.diagnose(waitMs)));
  }

  dispose() {
    live.delete(this);
    this.py.terminate();
    this.ort.terminate();
    this.snapshotWorker?.terminate();
  }
}
