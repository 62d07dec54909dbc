// Benchmark page for this project, through the public client API (web/js/clip.js):
//   ours.html?model=ID&threads=N&image=NAME[&start=overlapped][&first=text][&encoders=text,image][&boot=after]
// start=overlapped boots through Runtime.start({ model }) (what the start page does: the model
// download overlaps Pyodide's boot) instead of createClip, to show what that order gains.
// first=text: a text-only page (the first embedding is a text's; no image is embedded at start).
// encoders=...: createClip's encoders option (which encoder loads first; default both).
// boot=after: pyapp's wheels load after Pyodide's boot instead of during it (the old order).
// images=wait: the first image after a snapshot restore waits for numpy's and Pillow's files.
// route=page: tensors travel through the page (Runtime's `direct: false`), not worker to worker.
// Works against older clip-web servers too (startup_ab.py runs it on a base revision): options an
// older createClip does not know are ignored there.

import { createClip, resolveModel, ClipClient } from '/js/clip.js';
import { params, setState, installBench, runStartup } from './bench-common.js';

const threads = Number(params.get('threads') || 0);
let clip = null;

function rows(tensor) {
  const [n, d] = tensor.dims;
  return Array.from({ length: n }, (_, i) => tensor.data.slice(i * d, (i + 1) * d));
}

const adapter = {
  async embedImage(blob) {
    const r = await clip.embedImage(blob, { details: true, pixels: false });
    return { embedding: r.embedding, preprocess_ms: r.timings.preprocess_ms, inference_ms: r.timings.inference_ms };
  },
  async embedText(text) {
    const r = await clip.embedText(text, { details: true });
    return { embedding: r.embeddings, tokenize_ms: r.timings.tokenize_ms, inference_ms: r.timings.inference_ms };
  },
  async embedTexts(texts) {
    const r = await clip.embedText(texts, { details: true });
    return { embeddings: r.embeddings, ids: rows(r.inputIds) };
  },
};

async function load() {
  const call = performance.now();
  if (params.get('start') === 'overlapped') {
    const { Runtime } = await import('/js/runtime/runtime.js');
    const manifest = await resolveModel(params.get('model'));
    const runtime = await Runtime.start({ backend: 'wasm', threads, model: manifest });
    clip = new ClipClient({ runtime, manifest, release: () => runtime.dispose() });
  } else {
    const encoders = params.get('encoders') ? params.get('encoders').split(',') : null;
    const runtimeOptions = params.get('boot') === 'after' ? { python: { packagesAtBoot: false } } : {};
    if (params.get('route') === 'page') runtimeOptions.direct = false;
    // snapshot=browser: no server snapshot (a cold visit boots Pyodide; a warm one restores its own).
    if (params.get('snapshot') === 'browser') runtimeOptions.python = { ...runtimeOptions.python, servedSnapshot: false };
    // python=plain: the plain stdlib and wheels, not the precompiled ones.
    if (params.get('python') === 'plain') runtimeOptions.python = { ...runtimeOptions.python, precompiled: false };
    // images=wait: after a snapshot restore, the first image waits for numpy's and Pillow's files.
    if (params.get('images') === 'wait') runtimeOptions.python = { ...runtimeOptions.python, imagesEarly: false };
    clip = await createClip({ model: params.get('model'), backend: 'wasm', threads, encoders, runtimeOptions });
  }
  return { call };
}

async function details({ call }) {
  const info = await clip.info();
  const rt = info.timings; // ms since Runtime.start (about `call`)
  const py = clip.runtime.python.timings; // durations inside the Python worker
  const model = rt.model;
  return {
    call,
    runtime: { pyodide_ready_ms: rt.pyodide_ready_ms, ort_ready_ms: rt.ort_ready_ms, ready_ms: rt.ready_ms, model_load_ms: rt.model_load_ms },
    python: py,
    model: {
      download_ms: Math.max(...Object.values(model).map((m) => m.download_ms)),
      session_ms: Math.max(...Object.values(model).map((m) => m.session_ms)),
      image: model.image ?? null,
      text: model.text ?? null,
    },
    cached: info.cached,
    threads: info.threads,
    backend: info.backend,
    crossOriginIsolated: info.crossOriginIsolated,
    versions: info.versions,
  };
}

async function main() {
  const startup = await runStartup({
    load,
    firstImage: (blob) => adapter.embedImage(blob),
    firstText: (text) => adapter.embedText(text),
    details,
  });
  const bench = installBench(adapter, startup);
  // Size of Pyodide's wasm heap (the Python worker's memory: CPython, numpy, Pillow, pyapp, images).
  // The Python snapshot this visit leaves for the next one (undefined on servers without them).
  bench.snapshotState = async () => (await clip.info()).python?.snapshot;
  bench.pythonStatus = () => clip.runtime.py.call('status');
  bench.pythonHeapMB = async () =>
    Number(await clip.runtime.runPython('import pyodide_js\nstr(pyodide_js._module.HEAPU8.length)')) / 1e6;
  setState('ready');
}

main().catch((err) => {
  console.error(err);
  setState('error', `Error: ${err?.message ?? err}`);
});
