// ui/: components the pages share. page-controls.js is the main one: the model / backend /
// threads controls (rendered here, kept in the URL query), model loading with progress, errors with
// a retry button, notices, and the page state that people and tests wait on
// (document.body.dataset.state = loading | ready | error). drop-zone.js takes files (input, drop,
// paste); progress-view.js draws download bars; memory-advice.js says when a model will not fit;
// offline.js registers the service worker once a page is ready and says whether it is saved.
// May import: clip.js and runtime/ (lower layers). Never pages/, search/ or widget/.

import { createClip, listModels, pauseModelDownloads, persistStorage } from '../clip.js';
import { renderProgress } from './progress-view.js';
import { MODEL_CACHE } from '../runtime/model-fetch.js';
import { memoryAdvice, looksLikeOutOfMemory } from './memory-advice.js';
import { enableOffline, onOfflineStatus, describeOffline } from './offline.js';

export const BACKENDS = ['wasm', 'webgpu', 'webgl'];

// The controls and status lines every model page shows, rendered into its #page-controls.
export function renderControls(slot = document.querySelector('#page-controls')) {
  const form = document.createElement('form');
  form.id = 'controls';
  form.className = 'controls';
  form.addEventListener('submit', (e) => e.preventDefault());
  const label = (text, control) => {
    const el = document.createElement('label');
    el.append(`${text} `, control);
    return el;
  };
  const model = Object.assign(document.createElement('select'), { id: 'model' });
  const backend = Object.assign(document.createElement('select'), { id: 'backend' });
  for (const b of BACKENDS) backend.add(new Option(b, b));
  const threads = Object.assign(document.createElement('input'), { id: 'threads', type: 'number', min: '0', max: '64', placeholder: 'auto' });
  const clear = Object.assign(document.createElement('button'), { id: 'clear-cache', type: 'button', textContent: 'Clear cached models' });
  const report = Object.assign(document.createElement('p'), { id: 'model-report', className: 'muted' });
  form.append(label('Model', model), label('Backend', backend), label('Threads', threads), clear, report);
  const message = Object.assign(document.createElement('p'), { id: 'message', textContent: 'Starting…' });
  message.setAttribute('role', 'status');
  const notices = Object.assign(document.createElement('div'), { id: 'notices' });
  const progress = Object.assign(document.createElement('div'), { id: 'progress' });
  const pause = Object.assign(document.createElement('button'), { id: 'pause-download', type: 'button', textContent: 'Pause download', hidden: true });
  pause.addEventListener('click', async () => {
    const paused = pause.dataset.paused !== 'true';
    pause.disabled = true;
    try {
      pause.dataset.paused = String(await pauseModelDownloads(paused));
      pause.textContent = pause.dataset.paused === 'true' ? 'Resume download' : 'Pause download';
    } finally {
      pause.disabled = false;
    }
  });
  const runtimeInfo = Object.assign(document.createElement('p'), { id: 'runtime-info', className: 'muted' });
  const offline = Object.assign(document.createElement('p'), { id: 'offline-status', className: 'muted', hidden: true });
  offline.setAttribute('role', 'status');
  slot.replaceChildren(form, message, notices, progress, pause, runtimeInfo, offline);
  onOfflineStatus((s) => {
    offline.textContent = describeOffline(s);
    offline.hidden = !offline.textContent;
    offline.classList.toggle('notice', s.state === 'offline' || s.state === 'updated');
  });
}

// The Pause button shows while a model file is being downloaded (not read from the cache). The
// first such download also asks the browser to keep stored models (persistent storage).
let askedPersist = false;
function showPause(files) {
  const pause = document.querySelector('#pause-download');
  if (!pause) return;
  const downloading = files.some((f) => f.source === 'model' && !f.done && !f.cached);
  pause.hidden = !downloading;
  if (downloading && !askedPersist) {
    askedPersist = true;
    persistStorage();
  }
}

// "Stored: 612 MB (models and the Python snapshot), kept when space runs short": what this site
// holds, as the clear button's title and the muted line under the model picker.
async function showStorage() {
  const clear = document.querySelector('#clear-cache');
  if (!clear || !navigator.storage?.estimate) return;
  try {
    const [{ usage }, persisted] = await Promise.all([navigator.storage.estimate(), navigator.storage.persisted?.() ?? false]);
    const text = `Stored by this site: ${(usage / 1e6).toFixed(usage < 1e7 ? 1 : 0)} MB (models and the Python snapshot)` +
      (persisted ? ', kept when disk space runs short' : '');
    clear.title = text;
    clear.dataset.storedBytes = String(usage);
    let line = document.querySelector('#storage-line');
    if (!line) {
      line = Object.assign(document.createElement('p'), { id: 'storage-line', className: 'muted' });
      clear.after(line);
    }
    line.textContent = text;
  } catch {
    // no estimate: nothing to show
  }
}

export function readSettings() {
  const q = new URLSearchParams(location.search);
  return {
    model: q.get('model') || '',
    backend: BACKENDS.includes(q.get('backend')) ? q.get('backend') : 'wasm',
    threads: Math.max(0, Number.parseInt(q.get('threads') || '0', 10) || 0),
  };
}

export function writeSettings({ model, backend, threads }) {
  const q = new URLSearchParams(location.search);
  q.set('model', model);
  q.set('backend', backend);
  if (threads) q.set('threads', String(threads));
  else q.delete('threads');
  history.replaceState(null, '', `${location.pathname}?${q}`);
}

export function setState(state) {
  document.body.dataset.state = state;
}

export function showMessage(text, { error = false, retry = null } = {}) {
  const el = document.querySelector('#message');
  el.replaceChildren(document.createTextNode(text));
  el.classList.toggle('error', error);
  if (retry) {
    const button = document.createElement('button');
    button.type = 'button';
    button.id = 'retry';
    button.textContent = 'Retry';
    button.addEventListener('click', retry);
    el.append(' ', button);
  }
}

export function showNotices(notices) {
  const el = document.querySelector('#notices');
  el.replaceChildren(
    ...notices.map((n) => {
      const p = document.createElement('p');
      p.className = 'notice';
      p.textContent = n;
      return p;
    }),
  );
}

// A notice that the model may not fit, with a button that switches to the smaller variant.
function showMemoryAdvice(advice, useModel) {
  const p = document.createElement('p');
  p.className = 'notice';
  p.id = 'memory-advice';
  p.textContent = advice.text;
  if (advice.smaller) {
    const button = Object.assign(document.createElement('button'), { type: 'button', id: 'use-smaller' });
    button.textContent = `Use ${advice.smaller.variant ?? advice.smaller.id}`;
    button.addEventListener('click', () => useModel(advice.smaller.id));
    p.append(' ', button);
  }
  document.querySelector('#notices').append(p);
}

// "name — variant, 215 MB, HuggingFace": the download size where the manifest gives both files' bytes.
function describeModel(m) {
  const origin = m.origin === 'local' ? 'local folder' : 'HuggingFace';
  const size = m.image?.bytes && m.text?.bytes ? `, ${Math.round((m.image.bytes + m.text.bytes) / 1e6)} MB` : '';
  return `${m.name} — ${m.variant}${size}, ${origin}`;
}

function renderReport(model) {
  const el = document.querySelector('#model-report');
  if (!el) return;
  const r = model?.report;
  el.textContent = r
    ? `Fidelity vs ${r.reference ?? 'float32'}: image cosine min ${r.image_cosine_min?.toFixed(5)}, ` +
      `text cosine min ${r.text_cosine_min?.toFixed(5)}, zero-shot top-1 agreement ${(100 * (r.top1_agreement ?? 0)).toFixed(1)}%`
    : '';
}

// Wires the controls; calls onLoad(clip) each time a model is ready. Returns { reload() }.
// encoders: what the page needs first (see createClip); the default loads both before ready.
export async function setupPage({ onLoad, onUnload = () => {}, encoders = null }) {
  if (!document.querySelector('#controls')) renderControls();
  const settings = readSettings();
  const modelSelect = document.querySelector('#model');
  const backendSelect = document.querySelector('#backend');
  const threadsInput = document.querySelector('#threads');
  let listing;
  let clip = null;
  let anchor = null; // the last client that loaded: keeps its runtime alive through failed loads
  let generation = 0;
  let advice = null; // memoryAdvice() for the model being loaded

  function useModel(id) {
    settings.model = id;
    modelSelect.value = id;
    load();
  }

  async function load() {
    const mine = ++generation;
    // The previous client is disposed only once a new one is ready, so switching or retrying a
    // model keeps the runtime (Pyodide, onnxruntime) warm instead of booting it again.
    if (clip) {
      onUnload(clip);
      clip = null;
      window.clip = undefined;
    }
    setState('loading');
    const notices = [];
    showNotices(notices);
    showMessage('Loading the model…');
    const progress = document.querySelector('#progress');
    progress.hidden = false;
    try {
      listing ??= await listModels();
      if (!modelSelect.options.length) {
        for (const m of listing.models) modelSelect.add(new Option(describeModel(m), m.id));
      }
      if (!settings.model || !listing.models.some((m) => m.id === settings.model)) {
        if (settings.model) notices.push(`Unknown model "${settings.model}"; using the default.`);
        settings.model = listing.default;
      }
      modelSelect.value = settings.model;
      backendSelect.value = settings.backend;
      threadsInput.value = String(settings.threads || '');
      writeSettings(settings);
      const chosen = listing.models.find((m) => m.id === settings.model);
      renderReport(chosen);
      advice = memoryAdvice(chosen, listing.models, navigator.deviceMemory);
      if (advice) showMemoryAdvice(advice, useModel);
      const next = await createClip({
        model: settings.model,
        backend: settings.backend,
        threads: settings.threads,
        encoders,
        onProgress: (p) => {
          const files = p.all ?? [p];
          renderProgress(progress, files);
          showPause(files);
        },
      });
      if (mine !== generation) return next.dispose();
      clip = next;
      (anchor && anchor !== clip ? anchor : null)?.dispose();
      anchor = clip;
      window.clip = clip;
      const info = await clip.info();
      showNotices([...notices, ...info.notices]);
      if (advice) showMemoryAdvice(advice, useModel);
      document.querySelector('#runtime-info').textContent =
        `${info.model.name} · ${info.backend} · ${info.threads} thread${info.threads === 1 ? '' : 's'}` +
        `${info.crossOriginIsolated ? '' : ' (not cross-origin isolated)'} · Pyodide ${info.versions.pyodide} · ` +
        `onnxruntime-web ${info.versions.onnxruntimeWeb}`;
      showMessage('Ready.');
      progress.hidden = true;
      document.querySelector('#pause-download').hidden = true;
      await onLoad(clip);
      setState('ready');
      enableOffline();
    } catch (err) {
      if (mine !== generation) return;
      console.error(err);
      document.querySelector('#pause-download').hidden = true;
      const smaller = advice?.smaller ?? null;
      const memory = looksLikeOutOfMemory(err.message)
        ? ` The model may be too large for this device's memory${smaller ? `: try the ${smaller.variant ?? smaller.id} variant` : ''}.`
        : '';
      showMessage(`Could not load the model: ${err.message}${memory}`, { error: true, retry: load });
      setState('error');
    }
  }

  for (const control of [modelSelect, backendSelect, threadsInput]) {
    control.addEventListener('change', () => {
      settings.model = modelSelect.value;
      settings.backend = backendSelect.value;
      settings.threads = Math.max(0, Number.parseInt(threadsInput.value || '0', 10) || 0);
      load();
    });
  }
  document.querySelector('#clear-cache')?.addEventListener('click', async () => {
    await caches.delete(MODEL_CACHE);
    showMessage('Cached models cleared; they will be downloaded again next time.');
    showStorage();
  });
  await load();
  showStorage();
  return { reload: load };
}

// Format helpers shared by the pages.
export function formatVector(v, n = 8) {
  return `[${Array.from(v.slice(0, n), (x) => x.toFixed(4)).join(', ')}${v.length > n ? ', …' : ''}]`;
}

export function l2norm(v) {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

// A .npy file (format 1.0) of float32 rows: what numpy.load reads back.
export function npyBytes(rows) {
  const n = rows.length;
  const d = rows[0]?.length ?? 0;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${n}, ${d}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = new Uint8Array(10 + header.length);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  head.set(new TextEncoder().encode(header), 10);
  const body = new Float32Array(n * d);
  rows.forEach((r, i) => body.set(r, i * d));
  return new Blob([head, body.buffer], { type: 'application/octet-stream' });
}

export function download(blob, filename) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

