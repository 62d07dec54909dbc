// Byte-level download progress for every large file a worker fetches, including the ones that
// Pyodide and onnxruntime-web fetch themselves: we wrap `fetch` before they load.

const MIN_TRACKED_BYTES = 256 * 1024;
const REPORT_EVERY_MS = 100;

export function trackFetchProgress(report) {
  const originalFetch = globalThis.fetch.bind(globalThis);
  globalThis.fetch = async (input, init) => {
    const response = await originalFetch(input, init);
    const wire = Number(response.headers.get('Content-Length')) || 0; // compressed size, if encoded
    if (!response.ok || !response.body || wire < MIN_TRACKED_BYTES) return response;
    // A wrapped Response has no URL, so Chromium could neither stream-compile nor code-cache the
    // wasm in it: a warm start would recompile ~25 MB of wasm. Pass wasm through; report its size.
    if ((response.headers.get('Content-Type') || '').startsWith('application/wasm')) {
      report({ file: response.url.split('/').pop(), url: response.url, loaded: wire, total: wire, done: true });
      return response;
    }
    // The body's chunks are decoded bytes; a compressed response's decoded size is not known ahead.
    const total = response.headers.get('Content-Encoding') ? 0 : wire;
    return new Response(countBytes(response, total, report), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  };
  return originalFetch;
}

export function countBytes(response, total, report) {
  const file = response.url.split('/').pop();
  let loaded = 0;
  let lastReport = 0;
  report({ file, url: response.url, loaded, total, done: false });
  return response.body.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        loaded += chunk.byteLength;
        const now = performance.now();
        if (now - lastReport > REPORT_EVERY_MS) {
          lastReport = now;
          report({ file, url: response.url, loaded, total, done: false });
        }
        controller.enqueue(chunk);
      },
      flush() {
        report({ file, url: response.url, loaded, total, done: true });
      },
    }),
  );
}
