// The dedicated worker half of netprobe.js: fetch a URL, report time and bytes; with `nested`, a
// worker of this worker does it (onnxruntime-web's threads are workers of our onnxruntime worker).
let child = null;
self.onmessage = async (e) => {
  const { id, url, nested } = e.data;
  if (nested) {
    child ??= new Worker(new URL(`netprobe-worker.js?nested=${id}`, self.location.href), { type: 'module' });
    child.onmessage = (m) => self.postMessage(m.data);
    child.postMessage({ id, url });
    return;
  }
  try {
    const t0 = performance.now();
    const r = await fetch(url, { cache: 'no-store' });
    const bytes = (await r.arrayBuffer()).byteLength;
    self.postMessage({ id, result: { ms: performance.now() - t0, bytes, status: r.status } });
  } catch (err) {
    self.postMessage({ id, error: String(err?.message ?? err) });
  }
};
