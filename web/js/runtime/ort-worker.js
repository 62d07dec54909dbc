// Module worker that runs the CLIP encoders with onnxruntime-web (see ort-backend.js).
// It downloads model files itself, so megabytes never cross the page's thread, and it takes
// `run` calls from the Python worker directly (a MessagePort the page hands it with
// `connectPython`), so pixel and token tensors never cross it either.

import { serve, emit, withTransfer, RpcError } from './rpc.js';
import { trackFetchProgress } from './progress-fetch.js';
import { initOrt, createSession, looksLikeOnnx, makeTensor, ortState } from './ort-backend.js';
import { loadModelBytes, clearModelCache, setDownloadsPaused } from './model-fetch.js';
import { partialBytes, setPartialStore } from './partial-store.js';

const sessions = new Map(); // key -> { session, spec }
// key -> { promise, resolve, reject } for a session that is loading, or that a run is waiting
// for: the Python worker may ask for a run before the page's loadModel for it arrives.
const loads = new Map();
// What this worker is doing, for a stuck page's report (the `stage` call): init, and each load.
let initStage = 'not asked';
const loadStages = new Map(); // key -> 'downloading' | 'creating the session' | 'keeping the file'

// Also told to the page as it happens: a worker whose thread is wedged cannot answer `stage`, but
// the page still knows the last stage it reported.
function setStage(key, stage) {
  if (stage) loadStages.set(key, stage);
  else loadStages.delete(key);
  emit('stage', { key, stage: stage ?? 'done' });
}

// Firefox sometimes never returns from the `new Worker()` onnxruntime makes for its thread pool
// (6 of ~300 first sessions here, none in 130 without threads; README, Architecture, "Workers"):
// this thread then answers nothing, ever. The page is told when each such call starts and ends, and
// replaces this worker when one has not ended in time (runtime.js). `faults.stallThreadStart`
// (tests only) makes the call hang like that.
let stallThreadStart = false;
{
  const NativeWorker = self.Worker;
  self.Worker = class extends NativeWorker {
    constructor(...args) {
      emit('threadStart', { phase: 'begin' });
      if (stallThreadStart) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      try {
        super(...args);
      } finally {
        emit('threadStart', { phase: 'end' }); // a constructor that throws is onnxruntime's error to report, not a wedge
      }
    }
  };
}

function loadOf(key) {
  let load = loads.get(key);
  if (!load) {
    load = {};
    load.promise = new Promise((resolve, reject) => Object.assign(load, { resolve, reject }));
    load.promise.catch(() => {}); // reported to the runs waiting on it
    loads.set(key, load);
  }
  return load;
}

async function sessionFor(key) {
  if (!sessions.has(key)) await loadOf(key).promise;
  return sessions.get(key);
}

// onnxruntime-web's own wasm download shows up as progress too.
trackFetchProgress((p) => emit('progress', { ...p, source: 'onnxruntime' }));

const handlers = {
  async init({ runtime, base, backend, threads, sessionOptions, downloadStore, faults = {} }) {
    const t0 = performance.now();
    setPartialStore(downloadStore);
    stallThreadStart = faults.stallThreadStart === true;
    initStage = 'importing onnxruntime-web';
    const info = await initOrt({ ortBaseUrl: new URL(runtime.ort_base_url, base).href, backend, threads, sessionOptions });
    initStage = 'ready';
    return { ...info, timings: { ort_import_ms: performance.now() - t0 } };
  },

  // spec: { url, input, output, input_dtype, sha256?, bytes? } from the model manifest.
  // Runs waiting for this key go on once it is loaded, or fail with its error.
  async loadModel({ key, spec, backend }) {
    const load = loadOf(key);
    try {
      const info = await loadSession({ key, spec, backend });
      load.resolve();
      return info;
    } catch (err) {
      load.reject(err);
      throw err;
    } finally {
      if (loads.get(key) === load) loads.delete(key);
    }
  },

  async run({ key, data, dims }) {
    const entry = await sessionFor(key);
    const t0 = performance.now();
    const feeds = { [entry.spec.input]: makeTensor(entry.spec.input_dtype, data, dims) };
    const results = await entry.session.run(feeds);
    const output = results[entry.spec.output];
    const out = { data: Float32Array.from(output.data), dims: output.dims.slice(), ms: performance.now() - t0 };
    for (const tensor of Object.values(results)) tensor.dispose?.();
    return withTransfer(out, [out.data.buffer]);
  },

  // The Python worker's end of a MessageChannel: it calls `run` through it.
  async connectPython({ port }) {
    serve({ run: handlers.run }, port);
    return true;
  },

  async stage() {
    return { init: initStage, loads: Object.fromEntries(loadStages), sessions: [...sessions.keys()] };
  },

  async info() {
    const models = {};
    for (const [key, { session, spec }] of sessions) models[key] = { backend: session.backend, url: spec.url };
    return { ...ortState(), models };
  },

  async clearModelCache() {
    return clearModelCache();
  },

  // Pause (true) or resume (false) every model download; -> whether downloads are paused.
  async pauseDownloads({ paused }) {
    return setDownloadsPaused(paused);
  },

  // What this site keeps: the browser's estimate, and the bytes of unfinished downloads.
  async storage() {
    const estimate = await navigator.storage?.estimate?.().catch(() => null);
    return { usage: estimate?.usage ?? null, quota: estimate?.quota ?? null, partialBytes: await partialBytes().catch(() => 0) };
  },

  async dispose({ key }) {
    const entry = sessions.get(key);
    if (entry) {
      sessions.delete(key);
      await entry.session.release();
    }
    return true;
  },
};

serve(handlers);

// Download (or read from the cache) one encoder's file and create its session, checking its
// I/O names against the manifest.
async function loadSession({ key, spec, backend }) {
  const t0 = performance.now();
  setStage(key, 'downloading');
  try {
    return await loadSessionStaged({ key, spec, backend, t0 });
  } finally {
    setStage(key, null);
  }
}

async function loadSessionStaged({ key, spec, backend, t0 }) {
  const loaded = await loadModelBytes(spec.url, spec, (p) => emit('progress', { ...p, source: 'model' }));
  const { cached, hashed, remember, discard } = loaded;
  const size = loaded.buffer.byteLength;
  const t1 = performance.now();
  const label = spec.url.split('/').pop();
  let session, used, notices;
  try {
    // A download is kept first, then its session made: the model's bytes are then needed only
    // until onnxruntime has copied them into its heap (createSession takes them out of `loaded`),
    // not beside the session's own copy of the weights while it is built. (A cache hit's
    // remember() only tidies up, after the session: model-fetch.js says why.)
    if (!cached && looksLikeOnnx(loaded.buffer)) {
      setStage(key, 'keeping the file');
      await remember();
    }
    setStage(key, 'creating the session');
    ({ session, backend: used, notices } = await createSession(loaded, { backend, label }));
    if (!session.inputNames.includes(spec.input) || !session.outputNames.includes(spec.output)) {
      await session.release();
      throw new RpcError(
        `${label} has inputs [${session.inputNames}] and outputs [${session.outputNames}], ` +
          `but its manifest says input "${spec.input}" and output "${spec.output}"`,
        'model_mismatch',
      );
    }
  } catch (err) {
    await discard().catch(() => {}); // a file that is no working model is not kept, not even in part
    throw err;
  }
  if (cached) await remember();
  const old = sessions.get(key);
  sessions.set(key, { session, spec });
  if (old) old.session.release();
  return {
    backend: used,
    notices,
    bytes: size,
    cached,
    hashed,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    timings: { download_ms: t1 - t0, session_ms: performance.now() - t1 },
  };
}
