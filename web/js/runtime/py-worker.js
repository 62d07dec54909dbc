// Module worker that owns Pyodide and pyapp: image preprocessing and tokenization.
// The page never blocks on Python: everything here runs off the main thread. With the
// onnxruntime worker's port (`connectOnnx`), the embed* methods hand their tensors to the model
// directly: the page sends bytes or texts and gets embeddings back, never pixels or ids.

import { serve, emit, withTransfer, RpcError, WorkerClient } from './rpc.js';
import { trackFetchProgress } from './progress-fetch.js';
import { stackTensors } from './tensors.js';
import { snapshotKey, findSnapshot, storeSnapshot, deleteSnapshot, fetchWheels, unpackSnapshot, replayLibraries, libraryBytes, withoutTrampolineSlot, SNAPSHOT_WHEELS, IMAGE_WHEELS, CHECK_PY, CHECK_IDS } from './python-snapshot.js';
import { wheelFiles } from './wheel-files.js';
import { sha256Hex } from './model-fetch.js';

let pyodide = null;
let bridge = null;
let onnx = null; // WorkerClient over a MessagePort to ort-worker.js
const prepared = new Map(); // handle -> pixel_values kept for a later batched run (search indexing)
let nextHandle = 1;

trackFetchProgress((p) => emit('progress', { ...p, source: 'pyodide' }));

function pythonError(err) {
  // A PythonError's message is the whole traceback; the last line is "Type: message".
  if (err?.type) {
    const lines = String(err.message).trim().split('\n');
    const last = lines[lines.length - 1];
    // "pyapp.errors.ImageDecodeError: The file is empty" -> "The file is empty"
    const prefix = last.match(/^[\w.]*?(\w+): /);
    const message = prefix && prefix[1] === err.type ? last.slice(prefix[0].length) : last;
    return new RpcError(message, err.type);
  }
  return err;
}

// images: the call needs numpy and Pillow. After a snapshot restore their modules are in memory
// but their files are not written yet (see restoreSnapshot). 'wait' has them written first;
// true runs at once, since preprocessing imports nothing more once the snapshot is made
// (tests/pyapp/test_snapshot_imports.py), and should it fail, runs again once the files are
// there: only for calls that change nothing, so that running twice is harmless.
async function guarded(fn, { images = false } = {}) {
  if (!bridge) throw new RpcError('Python is not ready yet', 'not_ready');
  if (images === 'wait' || (images && !imagesEarly)) await imageFiles();
  if (images) imageCalls += 1;
  try {
    return await fn();
  } catch (err) {
    if (!images || state.imagesReady) throw pythonError(err);
    // In status(): calls that failed before the files were written (bad input included).
    state.imagesRetries = (state.imagesRetries ?? 0) + 1;
    try {
      await imageFiles();
    } catch (filesErr) {
      // Without the files the first failure stands (a bad image keeps its own message).
      const first = pythonError(err);
      first.message += ` (and ${filesErr.message})`;
      throw first;
    }
    try {
      return await fn();
    } catch (again) {
      throw pythonError(again);
    }
  } finally {
    if (images && --imageCalls === 0 && imageFilesDue) imageFiles().catch(() => {});
  }
}

// numpy's and Pillow's files after a restore: fetching, hashing, unzipping and writing them takes
// 300 ms of this worker's thread, which the first image should not wait behind. So they are
// written IMAGE_FILES_DELAY_MS after ready, or when the image calls then in flight end, or at once
// for a call that needs them.
const IMAGE_FILES_DELAY_MS = 3000;
let writeImageFiles = null; // () => Promise, set by restoreSnapshot
let imagesReady = null; // Promise: numpy's and Pillow's files written (a normal boot has them from the start)
let imageCalls = 0;
let imageFilesDue = false;

function imageFiles() {
  imagesReady ??= writeImageFiles();
  return imagesReady;
}

function scheduleImageFiles(delayMs) {
  setTimeout(() => {
    if (imageCalls) imageFilesDue = true;
    else imageFiles().catch(() => {});
  }, delayMs);
}

function takeArray(proxy, type) {
  // Copy out of the wasm heap into a transferable buffer, then free the Python object.
  const buffer = proxy.getBuffer(type);
  try {
    return { data: buffer.data.slice(), dims: buffer.shape.slice() };
  } finally {
    buffer.release();
    proxy.destroy();
  }
}

// RGBA pixels as Chromium decodes the JPEG, or null if it cannot (Pillow then reports why).
async function decodeJpegInBrowser(bytes, plan) {
  try {
    const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/jpeg' }), {
      imageOrientation: 'from-image',
      colorSpaceConversion: 'none',
      premultiplyAlpha: 'none',
    });
    const { width, height } = bitmap;
    const rotated = plan.orientation >= 5 && plan.orientation <= 8;
    if (width !== (rotated ? plan.height : plan.width) || height !== (rotated ? plan.width : plan.height)) {
      bitmap.close();
      return null;
    }
    const ctx = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    const pixels = ctx.getImageData(0, 0, width, height).data;
    return { data: new Uint8Array(pixels.buffer), width, height };
  } catch {
    return null;
  }
}

// What loadPackage('pyapp') brings (our lock's names).
const PYAPP_PACKAGES = ['pyapp', 'numpy', 'pillow', 'ftfy', 'wcwidth'];

// Where start-up stands, for info(): how Python started and what became of the snapshot.
const state = { stage: 'not asked', snapshot: { restored: false, source: null, made: null, error: null }, imagesReady: false };
let imagesEarly = true; // false: images wait for numpy's and Pillow's files, and the JPEG self-check for the first image (the A/B's old way)

async function importPyodide(url, runtime) {
  try {
    return (await import(url(runtime.pyodide_index_url + 'pyodide.mjs'))).loadPyodide;
  } catch (err) {
    throw new RpcError(`cannot load Pyodide from ${url(runtime.pyodide_index_url)}: ${err.message}`, 'asset_missing');
  }
}

// A fresh interpreter: pyapp and its wheels installed during the boot (`packages`; Pyodide checks
// each wheel's sha256 against our lock), then the vocab parsed. `packagesAtBoot: false` is the
// old order (loadPackage after the boot), kept so the startup benchmark can measure it.
async function bootNormally(loadPyodide, { indexURL, lockFileURL, stdLibURL, vocab, atBoot, timings }) {
  const t0 = performance.now();
  try {
    pyodide = await loadPyodide({ indexURL, lockFileURL, stdLibURL, packages: atBoot ? ['pyapp'] : [] });
  } catch (err) {
    throw new RpcError(`Pyodide failed to start: ${err.message}`, 'pyodide_boot_failed');
  }
  timings.pyodide_boot_ms = performance.now() - t0;
  const t1 = performance.now();
  const failures = [];
  // A boot-time install that failed only logs: what is missing is loaded again here, which
  // collects the reason (a wheel that fails its hash check, say) for the error message.
  const missing = () => {
    const loaded = new Set(Object.keys(pyodide.loadedPackages).map((k) => k.toLowerCase())); // the lock says "Pillow"
    return PYAPP_PACKAGES.filter((name) => !loaded.has(name));
  };
  if (missing().length) {
    await pyodide.loadPackage(atBoot ? missing() : ['pyapp'], { messageCallback: () => {}, errorCallback: (msg) => failures.push(msg), checkIntegrity: true });
  }
  timings.packages_ms = performance.now() - t1;
  if (missing().length) {
    throw new RpcError(`pyapp failed to import: ${missing().join(', ')} could not be loaded. ${failures.join(' ')}`, 'package_failed');
  }
  const t2 = performance.now();
  try {
    bridge = pyodide.pyimport('pyapp.js_bridge');
    pyodide.runPython('import numpy, PIL.Image');
  } catch (err) {
    throw new RpcError(`pyapp failed to import: ${pythonError(err).message}. ${failures.join(' ')}`, 'package_failed');
  }
  bridge.load_vocab(await vocab);
  timings.import_ms = performance.now() - t2;
  imagesReady = Promise.resolve();
  state.imagesReady = true;
}

// A warm start: the snapshot's interpreter already holds the parsed tokenizer and has numpy and
// Pillow imported. Their compiled libraries are instantiated again (from the bytes the snapshot's
// heap holds) at the places its heap expects; the pure-Python wheels' files are written before
// ready; numpy's and Pillow's other files (for later imports, which images do not make) a few
// seconds after (imageFiles). Throws if anything is off.
async function restoreSnapshot(loadPyodide, { indexURL, lockFileURL, stdLibURL, snapshot, lock, timings }) {
  const t0 = performance.now();
  const listed = (names) => {
    const files = fetchWheels(lock, indexURL, names).then(async (wheels) => (await Promise.all(wheels.map(([, bytes]) => wheelFiles(bytes)))).flat());
    files.catch(() => {});
    return files;
  };
  const pureFiles = listed(SNAPSHOT_WHEELS.filter((name) => !IMAGE_WHEELS.includes(name)));
  const [{ meta, pyodide: pyodideBytes }, pure] = await Promise.all([Promise.resolve(snapshot).then(unpackSnapshot), pureFiles, loadPyodideScript(indexURL)]);
  const libraries = await libraryBytes(meta, pyodideBytes);
  timings.snapshot_read_ms = performance.now() - t0;
  const createModule = globalThis._createPyodideModule;
  let replayMs = 0;
  globalThis._createPyodideModule = async (config) => {
    const Module = await createModule(config);
    const t = performance.now();
    replayLibraries(Module, meta, (path) => libraries.get(path));
    replayMs = performance.now() - t;
    return Module;
  };
  let restored;
  try {
    restored = await withoutTrampolineSlot(() => loadPyodide({ indexURL, lockFileURL, stdLibURL, _loadSnapshot: pyodideBytes }));
  } finally {
    globalThis._createPyodideModule = createModule;
  }
  timings.libraries_replay_ms = replayMs;
  timings.pyodide_boot_ms = performance.now() - t0;
  const t1 = performance.now();
  if (restored.runPython(CHECK_PY) !== CHECK_IDS) throw new Error('its tokenizer is not the expected one');
  const write = (entries) => {
    for (const [name, bytes] of entries) {
      const path = `${meta.sitePackages}/${name}`;
      if (libraries.has(path) || BUILD_ONLY.test(path)) continue; // in memory already; never imported
      restored.FS.mkdirTree(path.slice(0, path.lastIndexOf('/')));
      restored.FS.writeFile(path, bytes);
    }
    restored.runPython('import importlib\nimportlib.invalidate_caches()');
  };
  write(pure);
  restored.runPython('import sys\nif "random" in sys.modules: sys.modules["random"].seed()'); // pyodide#4652
  bridge = restored.pyimport('pyapp.js_bridge');
  pyodide = restored;
  timings.import_ms = performance.now() - t1;
  // Fetched later (imageFiles): decoding and hashing 16 MB of wheels beside the snapshot slowed
  // the restore, and beside the first image slowed that.
  writeImageFiles = () => listed(IMAGE_WHEELS)
    .then((entries) => {
      write(entries);
      state.imagesReadyMs = performance.now() - t0; // after init returned: reported by status()
      state.imagesReady = true;
    })
    .catch((err) => {
      // Images still work (their modules are in the snapshot); what needs these files fails so.
      state.imagesError = `numpy/Pillow failed to load: ${String(err?.message ?? err)}`;
      throw new RpcError(state.imagesError, 'package_failed');
    });
}

// Type stubs and C headers in the wheels: nothing imports them at run time.
const BUILD_ONLY = /\.(pyi|h|c|pxd|pyx)$/;

// pyodide.asm.js loaded as Pyodide would (it skips loading it when already there), so that a
// restore can wrap the module factory it defines.
async function loadPyodideScript(indexURL) {
  if (typeof globalThis._createPyodideModule === 'function') return;
  const url = indexURL + 'pyodide.asm.js';
  try {
    globalThis.importScripts(url);
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    await import(url); // module workers have no importScripts
  }
}

// The server's snapshot (see server/python_snapshot.py), fetched beside Pyodide's import.
async function fetchServedSnapshot(snapshotUrl) {
  const response = await fetch(snapshotUrl);
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${snapshotUrl}`);
  return new Uint8Array(await response.arrayBuffer());
}

// After a normal boot: make the snapshot for the next visit in a throwaway worker, when the page
// says it is idle (`makeSnapshot`, once its models are loaded), or after `fallbackMs` anyway. The
// page starts that worker (this one asks with a `snapshotWanted` event, and hears back through
// `snapshotMade`): no worker of ours starts another, as Firefox sometimes never returns from
// `new Worker()` inside a worker, which would wedge this one, and with it every Python call.
let snapshotJob = null;

function scheduleSnapshot({ indexURL, lockFileURL, stdLibURL, vocabUrl, key, lock, fallbackMs }) {
  state.snapshot.made = { pending: true };
  let started = false;
  snapshotJob = (delayMs) => setTimeout(() => {
    if (started) return;
    started = true;
    emit('snapshotWanted', { indexUrl: indexURL, lockUrl: lockFileURL, stdLibUrl: stdLibURL, vocabUrl, key, lock });
  }, delayMs);
  snapshotJob(fallbackMs);
}

// After restoring the server's snapshot: keep its bytes in Cache Storage as this browser's own, so
// the next visit reads them as they are instead of decoding 52 MB of brotli from the HTTP cache
// again. Done when the page is idle (or after fallbackMs), like making one.
function scheduleAdoption({ key, bytes, fallbackMs }) {
  state.snapshot.made = { pending: true };
  let held = bytes;
  snapshotJob = (delayMs) => setTimeout(async () => {
    if (!held) return;
    const stored = held;
    held = null;
    try {
      state.snapshot.made = { ok: true, stored: await storeSnapshot(key, stored), bytes: stored.byteLength, adopted: true };
    } catch (err) {
      state.snapshot.made = { ok: false, error: String(err?.message ?? err) };
    }
  }, delayMs);
  snapshotJob(fallbackMs);
}

// Does this browser decode JPEGs to the very pixels PyPI's Pillow (libjpeg-turbo) gives? Checked
// once, when Python is ready, against jpeg-self-check.json (small JPEGs: 4:2:0, 4:4:4, progressive).
// -> { decoder: 'browser' | 'pillow', reason }. Chromium, Firefox and WebKitGTK use libjpeg-turbo;
// Safari's ImageIO does not, and there colour JPEGs go to Pillow in Pyodide.
let jpegCheck = null;

function checkBrowserJpeg() {
  jpegCheck ??= (async () => {
    const t0 = performance.now();
    let samples;
    try {
      const response = await fetch(new URL('./jpeg-self-check.json', import.meta.url));
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      samples = (await response.json()).samples;
    } catch (err) {
      return { decoder: 'pillow', reason: `the JPEG self-check could not load its samples (${err.message})` };
    }
    for (const s of samples) {
      const bytes = Uint8Array.from(atob(s.jpeg), (c) => c.charCodeAt(0));
      const want = Uint8Array.from(atob(s.rgb), (c) => c.charCodeAt(0)); // (h, w, 3)
      const got = await decodeJpegInBrowser(bytes, { width: s.width, height: s.height, orientation: 1 }); // (h, w, 4)
      if (!got) return { decoder: 'pillow', reason: `this browser could not decode the ${s.name} sample` };
      let worst = 0;
      for (let i = 0, j = 0; i < want.length; i += 3, j += 4) {
        for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(want[i + c] - got.data[j + c]));
      }
      if (worst > 0) {
        return { decoder: 'pillow', reason: `this browser decodes the ${s.name} sample differently from libjpeg-turbo (up to ${worst} levels)` };
      }
    }
    return { decoder: 'browser', reason: `decodes ${samples.length} samples exactly as libjpeg-turbo`, ms: performance.now() - t0 };
  })();
  return jpegCheck;
}

// Colour JPEGs are decoded by the browser where it passes the self-check (see pyapp/preprocess.py
// for why), everything else by Pillow in Pyodide. -> { data, dims, ms, decoder }.
async function pixelValues({ bytes, rules, exifTranspose = false }) {
  const t0 = performance.now();
  let proxy = null;
  let decoder = 'pillow';
  const plan = bridge.browser_jpeg_plan(bytes);
  if (plan && (await checkBrowserJpeg()).decoder === 'browser') {
    const decoded = await decodeJpegInBrowser(bytes, plan);
    if (decoded) {
      proxy = bridge.preprocess_decoded_rgba(
        decoded.data, decoded.width, decoded.height, plan.orientation, rules, exifTranspose,
      );
      decoder = 'browser';
    }
  }
  if (!proxy) proxy = bridge.preprocess_image(bytes, rules, exifTranspose);
  const out = takeArray(proxy, 'f32'); // (1, 3, size, size)
  out.ms = performance.now() - t0;
  out.decoder = decoder;
  return out;
}

// A family's own tokenizer file (SigLIP's spiece.model), fetched and checked once per model:
// tokenizer = { key, url, sha256?, bytes?, rules } from the runtime (rules: the manifest's JSON).
const textTokenizers = new Map();
function ensureTextTokenizer(tokenizer) {
  if (!textTokenizers.has(tokenizer.key)) {
    const loading = (async () => {
      const response = await fetch(tokenizer.url);
      if (!response.ok) throw new RpcError(`tokenizer file: HTTP ${response.status} for ${tokenizer.url}`, 'asset_missing');
      const buffer = await response.arrayBuffer();
      if ((tokenizer.bytes && buffer.byteLength !== tokenizer.bytes) || (tokenizer.sha256 && (await sha256Hex(buffer)) !== tokenizer.sha256)) {
        throw new RpcError(`the tokenizer file ${tokenizer.url} does not match its manifest (size or sha256)`, 'hash_mismatch');
      }
      bridge.load_sentencepiece(tokenizer.key, new Uint8Array(buffer), tokenizer.rules);
    })();
    loading.catch(() => textTokenizers.delete(tokenizer.key)); // a later call tries again
    textTokenizers.set(tokenizer.key, loading);
  }
  return textTokenizers.get(tokenizer.key);
}

// (n, contextLength) ids: OpenAI's, or (tokenizer given) the family's own. With trim, also
// `model`: the same ids cut after the batch's last end-of-text position, for encoders with a
// dynamic sequence axis.
async function tokenIds({ texts, contextLength, trim, tokenizer = null }) {
  if (tokenizer) await ensureTextTokenizer(tokenizer);
  const t0 = performance.now();
  const ids = bridge.tokenize(texts, contextLength, tokenizer?.key);
  const model = trim ? takeArray(bridge.trim_padding(ids), 'i32') : null; // (n, length)
  const out = takeArray(ids, 'i32'); // (n, 77)
  out.ms = performance.now() - t0;
  if (model) out.model = model;
  return out;
}

// One encoder run in the onnxruntime worker; the tensor's buffer moves there (not copied).
function runModel(key, tensor) {
  if (!onnx) throw new RpcError('the onnxruntime worker is not connected', 'not_ready');
  return onnx.call('run', { key, data: tensor.data, dims: tensor.dims }, [tensor.data.buffer]);
}

serve({
  // options: { snapshot: false } never uses or makes a snapshot; { servedSnapshot: false } skips
  // the server's; { snapshotFallbackMs } when to make one after a normal boot if the page never
  // says it is idle; { packagesAtBoot: false }; { imagesEarly: false } (see guarded).
  async init({ runtime, base, options = {} }) {
    const url = (path) => new URL(path, base).href;
    imagesEarly = options.imagesEarly !== false;
    const timings = {};
    const t0 = performance.now();
    const indexURL = url(runtime.pyodide_index_url);
    // Precompiled stdlib and wheels when the server has them (0.58x the boot in one A/B);
    // { precompiled: false } loads the plain ones (for the benchmark's A/B).
    const precompiled = options.precompiled !== false ? runtime.pyodide_precompiled : null;
    const lockFileURL = url(precompiled ? precompiled.lock_url : runtime.pyodide_lock_url);
    const stdLibURL = precompiled ? url(precompiled.stdlib_url) : undefined;
    timings.precompiled = !!precompiled;
    const vocabUrl = url(runtime.vocab_url);
    // Snapshots, best first: this browser's own (made after a normal boot, in Cache Storage), the
    // server's (built by `clip-web assets`: what a first visit restores), else a normal boot.
    const useSnapshots = options.snapshot !== false;
    const canStore = useSnapshots && !!self.caches;
    // The server's snapshot holds zipimport's table of the stdlib it was made over: only a page
    // loading the same lock (and so the same stdlib) may restore it.
    const served = runtime.python_snapshot;
    const servedUrl = useSnapshots && options.servedSnapshot !== false && served && url(served.lock_url) === lockFileURL ? url(served.url) : null;
    // The key needs the lock's bytes; both overlap Pyodide's import.
    const keyed = useSnapshots
      ? snapshotKey({ lockUrl: lockFileURL, stdLibUrl: stdLibURL, vocabUrl, pyodideVersion: runtime.pyodide_version }).then(async (k) => ({ ...k, snapshot: canStore ? await findSnapshot(k.key) : null }))
      : Promise.resolve(null);
    keyed.catch(() => {});
    // The server's is downloaded only when this browser has none of its own (found in a few ms).
    const download = keyed.then((k) => (k && !k.snapshot && servedUrl ? fetchServedSnapshot(servedUrl) : null));
    download.catch(() => {});
    state.stage = 'importing Pyodide';
    const loadPyodide = await importPyodide(url, runtime);
    let found = null;
    state.stage = 'looking for a snapshot';
    try {
      found = await keyed;
    } catch (err) {
      state.snapshot.error = `could not look for a snapshot: ${err.message}`;
    }
    timings.lookup_ms = performance.now() - t0; // Pyodide's module imported, our lock read, Cache Storage asked
    const attempts = [];
    if (found?.snapshot) attempts.push(['browser', () => found.snapshot]);
    // Pyodide takes the download as a promise: its own script loads meanwhile.
    if (found && servedUrl) attempts.push(['server', async () => (await download) ?? fetchServedSnapshot(servedUrl)]);
    for (const [source, bytesOf] of attempts) {
      try {
        state.stage = `restoring the ${source}'s snapshot`;
        const snapshot = bytesOf();
        await restoreSnapshot(loadPyodide, { indexURL, lockFileURL, stdLibURL, snapshot, lock: found.lock, timings });
        const bytes = await snapshot;
        Object.assign(state.snapshot, { restored: true, source, bytes: bytes.byteLength });
        if (source === 'server' && canStore) scheduleAdoption({ key: found.key, bytes, fallbackMs: options.snapshotFallbackMs ?? 20000 });
        break;
      } catch (err) {
        // A corrupt or unusable snapshot: say so, try the next way to start; a bad browser
        // snapshot is forgotten (a new one is made or adopted after this start).
        const why = `the ${source}'s Python snapshot could not be restored (${String(err?.message ?? err).slice(0, 200)})`;
        state.snapshot.error = state.snapshot.error ? `${state.snapshot.error}; ${why}` : why;
        bridge = null;
        pyodide = null;
        if (source === 'browser') await deleteSnapshot(found.key).catch(() => {});
      }
    }
    if (!state.snapshot.restored) {
      if (state.snapshot.error) state.snapshot.error += '; started normally';
      const vocab = fetch(vocabUrl).then(async (r) => {
        if (!r.ok) throw new RpcError(`BPE vocab: HTTP ${r.status} for ${r.url}`, 'asset_missing');
        return new Uint8Array(await r.arrayBuffer());
      });
      vocab.catch(() => {}); // reported when awaited
      state.stage = 'booting normally';
      try {
        await bootNormally(loadPyodide, { indexURL, lockFileURL, stdLibURL, vocab, atBoot: options.packagesAtBoot !== false, timings });
      } catch (err) {
        // Both ways failed (a corrupt wheel fails both): say why the snapshot was refused too.
        if (state.snapshot.error && err instanceof RpcError) err.message += ` (before that, ${state.snapshot.error})`;
        throw err;
      }
      if (found && canStore) scheduleSnapshot({ indexURL, lockFileURL, stdLibURL, vocabUrl, key: found.key, lock: found.lock, fallbackMs: options.snapshotFallbackMs ?? 20000 });
    }
    timings.ready_ms = performance.now() - t0;
    state.stage = 'ready';
    if (imagesEarly) checkBrowserJpeg(); // now, while the page loads its model, rather than on the first image
    if (!state.imagesReady) {
      if (imagesEarly) scheduleImageFiles(IMAGE_FILES_DELAY_MS);
      else imageFiles().catch(() => {});
    }
    timings.packages_at_boot = options.packagesAtBoot !== false;
    const [python, pyappVersion] = pyodide.runPython('import sys, pyapp; f"{sys.version.split()[0]}|{pyapp.__version__}"').split('|');
    const lock = found?.lock ?? (await (await fetch(lockFileURL)).json());
    return {
      timings,
      snapshot: { restored: state.snapshot.restored, source: state.snapshot.source ?? null, error: state.snapshot.error },
      versions: { pyodide: pyodide.version, python, numpy: lock.packages.numpy?.version, pillow: lock.packages.pillow?.version, pyapp: pyappVersion },
    };
  },

  // The page is idle (its models loaded): make the snapshot, if one is due, after delayMs.
  async makeSnapshot({ delayMs = 1000 } = {}) {
    snapshotJob?.(delayMs);
    return state.snapshot.made;
  },

  // The page's snapshot worker has finished (what it posted), or could not start.
  async snapshotMade(made) {
    state.snapshot.made = made;
    return true;
  },

  // Start-up state that changes after init: the snapshot being made, numpy/Pillow loading, and
  // which decoder colour JPEGs get (the self-check runs now if no image has run it yet).
  async status() {
    return { ...state, jpegDecoder: await checkBrowserJpeg() };
  },

  // Where init is (and the snapshot's state), answered even before Python is up: for a stuck
  // page's report.
  async stage() {
    return state;
  },

  // -> pixel_values (1, 3, size, size) for the page (the old path; the image page's preview).
  async preprocess(params) {
    return guarded(async () => {
      const out = await pixelValues(params);
      return withTransfer(out, [out.data.buffer]);
    }, { images: true });
  },

  // bytes -> the image encoder's output, preprocessed here and run by the onnxruntime worker.
  // details: also the pixel values (a copy, for the page's crop preview).
  async embedImage({ key, details = false, ...params }) {
    const pixels = await guarded(() => pixelValues(params), { images: true }); // (1, 3, 224, 224)
    const kept = details ? { data: pixels.data.slice(), dims: pixels.dims } : null;
    const output = await runModel(key, pixels); // (1, 512)
    const out = { embeds: output, preprocessMs: pixels.ms, decoder: pixels.decoder, pixelValues: kept };
    return withTransfer(out, kept ? [output.data.buffer, kept.data.buffer] : [output.data.buffer]);
  },

  // Preprocess now, run later in a batch with others (embedPrepared): -> { handle, dims, ms }.
  async prepareImage(params) {
    const pixels = await guarded(() => pixelValues(params), { images: true });
    const handle = nextHandle++;
    prepared.set(handle, pixels);
    return { handle, dims: pixels.dims, ms: pixels.ms, decoder: pixels.decoder };
  },

  // Prepared images as one batch (n, 3, size, size) -> the encoder's (n, d) output. The handles
  // are used up, whether the run succeeds or not.
  async embedPrepared({ key, handles }) {
    const tensors = handles.map((h) => prepared.get(h));
    handles.forEach((h) => prepared.delete(h));
    if (tensors.some((t) => !t)) throw new RpcError('an image handle is unknown or was already used', 'bad_input');
    const output = await runModel(key, stackTensors(tensors)); // (n, 3, 224, 224) in, (n, 512) out
    return withTransfer(output, [output.data.buffer]);
  },

  // Prepared images nobody will run (an indexing run was cancelled).
  async dropPrepared({ handles }) {
    handles.forEach((h) => prepared.delete(h));
    return true;
  },

  // texts -> the text encoder's (n, d) output; ids cut to the batch's real length when the
  // encoder takes a dynamic sequence (trim). details: also OpenAI's (n, 77) ids.
  async embedText({ key, texts, contextLength = 77, trim = false, tokenizer = null, details = false }) {
    const ids = await guarded(() => tokenIds({ texts, contextLength, trim, tokenizer }));
    // The model's ids move to the other worker; the page's copy (details) must stay behind.
    const model = ids.model ?? (details ? { data: ids.data.slice(), dims: ids.dims } : ids); // (n, length <= 77)
    const output = await runModel(key, model); // (n, 512)
    const out = { embeds: output, tokenizeMs: ids.ms, modelInputDims: model.dims, inputIds: details ? { data: ids.data, dims: ids.dims } : null };
    return withTransfer(out, details ? [output.data.buffer, ids.data.buffer] : [output.data.buffer]);
  },

  // The page's end of this worker's channel to the onnxruntime worker.
  // Again after the page replaced a wedged onnxruntime worker: calls to the old one never return.
  async connectOnnx({ port }) {
    onnx?.failAll(new RpcError('the onnxruntime worker was restarted', 'onnx_restarted'));
    onnx = new WorkerClient(port);
    return true;
  },

  // -> OpenAI's (n, contextLength) ids; with trim, also `model`: the same ids cut after the
  // batch's last end-of-text position, for encoders with a dynamic sequence axis.
  async tokenize({ texts, contextLength = 77, trim = false, tokenizer = null }) {
    return guarded(async () => {
      const out = await tokenIds({ texts, contextLength, trim, tokenizer });
      return withTransfer(out, out.model ? [out.data.buffer, out.model.data.buffer] : [out.data.buffer]);
    });
  },

  async tokenStrings({ text, tokenizer = null }) {
    if (tokenizer) await guarded(() => ensureTextTokenizer(tokenizer));
    return guarded(() => {
      const proxy = bridge.token_strings(text, tokenizer?.key);
      try {
        return proxy.toJs();
      } finally {
        proxy.destroy();
      }
    });
  },

  async cropPreview({ data, dims, mean, std }) {
    return guarded(() => {
      const out = takeArray(bridge.crop_preview(data, dims, mean, std), 'u8');
      return withTransfer(out, [out.data.buffer]);
    }, { images: true });
  },

  // Tests and benchmarks run Python in the same interpreter the pages use; the result must be
  // JSON-serialisable (a JSON string comes back).
  async runPython({ code }) {
    return guarded(async () => {
      const result = await pyodide.runPythonAsync(code);
      return typeof result === 'string' ? result : JSON.stringify(result?.toJs?.() ?? result);
    }, { images: 'wait' });
  },

  async writeFile({ path, bytes }) {
    if (!pyodide) throw new RpcError('Python is not ready yet', 'not_ready');
    pyodide.FS.writeFile(path, bytes);
    return true;
  },
});
