// Network throttle probe (benchmarks/network_start.py): fetches one file from the page, from a
// dedicated module worker made after the throttle was set (Pyodide and onnxruntime-web fetch from
// such workers in our page) and from a worker of that worker, then from the page and the worker at
// once, and times each, so the harness can check that its throttle slows every one of them alike
// and that they share one link.
//   netprobe.html, then  await probe.run(url)  ->  { page, worker, nested, concurrent: {page, worker} }
// each {ms, bytes, status}.

import { setState } from './bench-common.js';

async function timed(url) {
  const t0 = performance.now();
  const r = await fetch(url, { cache: 'no-store' });
  const bytes = (await r.arrayBuffer()).byteLength;
  return { ms: performance.now() - t0, bytes, status: r.status };
}

let seq = 0;
function ask(worker, url, nested = false) {
  const id = ++seq;
  return new Promise((resolve, reject) => {
    const onMessage = (e) => {
      if (e.data.id !== id) return;
      worker.removeEventListener('message', onMessage);
      if (e.data.error) reject(new Error(e.data.error));
      else resolve(e.data.result);
    };
    worker.addEventListener('message', onMessage);
    worker.postMessage({ id, url, nested });
  });
}

window.probe = {
  async run(url) {
    const u = (from) => new URL(`${url}${url.includes('?') ? '&' : '?'}from=${from}&n=${++seq}`, location.href).href;
    const worker = new Worker(new URL(`netprobe-worker.js?n=${++seq}`, import.meta.url), { type: 'module' });
    const out = {};
    out.page = await timed(u('page'));
    out.worker = await ask(worker, u('worker'));
    out.nested = await ask(worker, u('nested'), true);
    const [page, wk] = await Promise.all([timed(u('page-concurrent')), ask(worker, u('worker-concurrent'))]);
    out.concurrent = { page, worker: wk };
    worker.terminate();
    return out;
  },
};
setState('ready');
