// The start page: boots the runtime, shows what it runs on, and (with ?model=ID) loads a model.
//
// pages/: one module per HTML page, the top layer: each may import any layer below (ui/, search/,
// widget/, clip.js, runtime/) and nothing imports a page.

import { Runtime, fetchJson } from '../runtime/runtime.js';
import { renderProgress } from '../ui/progress-view.js';

const params = new URLSearchParams(location.search);
const status = document.querySelector('#status');
const message = document.querySelector('#message');

function row(label, value) {
  const tr = document.createElement('tr');
  const th = document.createElement('th');
  const td = document.createElement('td');
  th.textContent = label;
  td.textContent = value;
  tr.append(th, td);
  return tr;
}

async function main() {
  document.body.dataset.state = 'loading';
  let model = null;
  if (params.get('model')) {
    const { models } = await fetchJson('api/models');
    model = models.find((m) => m.id === params.get('model'));
    if (!model) throw new Error(`unknown model "${params.get('model')}"; known: ${models.map((m) => m.id).join(', ')}`);
  }
  const runtime = await Runtime.start({
    backend: params.get('backend') || 'wasm',
    threads: Number(params.get('threads') || 0),
    model,
    sequential: params.get('sequential') === '1',
    // ?served_snapshot=0: boot Pyodide (or restore this browser's own snapshot), not the server's.
    python: params.get('served_snapshot') === '0' ? { servedSnapshot: false } : {},
    // ?partial_store=indexeddb|memory: where unfinished model downloads are kept (default OPFS).
    download: { store: params.get('partial_store') || undefined },
    onProgress: (p) => renderProgress(document.querySelector('#progress'), p.all),
  });
  window.runtime = runtime;
  const info = await runtime.info();
  const py = info.python.versions;
  status.replaceChildren(
    row('Pyodide', `${py.pyodide} (Python ${py.python}, numpy ${py.numpy}, Pillow ${py.pillow}, pyapp ${py.pyapp})`),
    row('onnxruntime-web', info.onnx.ortVersion),
    row('Backend', model ? Object.values(info.onnx.models).map((m) => m.backend).join(', ') : info.onnx.requestedBackend),
    row('Threads', String(info.onnx.threads)),
    row('Cross-origin isolated', info.crossOriginIsolated ? 'yes' : 'no (single-threaded wasm)'),
    row('Model', model ? `${model.name}` : 'none (add ?model=ID)'),
    row('Time to ready', `${Math.round(runtime.timings.ready_ms)} ms`),
  );
  message.textContent = 'Ready.';
  document.body.dataset.state = 'ready';
}

main().catch((err) => {
  console.error(err);
  message.textContent = `Error: ${err.message}`;
  message.classList.add('error');
  document.body.dataset.state = 'error';
});
