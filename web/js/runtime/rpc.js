// Request/response over postMessage, with transferable buffers and out-of-band events.
//
// Page side: `new WorkerClient(worker, onEvent).call(method, params, transfer)` -> Promise.
// Worker side: `serve({method: async (params) => value})`; return `withTransfer(value, buffers)`
// to move ArrayBuffers instead of copying them; `emit(name, detail)` sends an event.
// Both ends also work over a MessagePort, so one worker can call another directly.

export class RpcError extends Error {
  constructor(message, code = 'error', detail = undefined) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.detail = detail;
  }
}

export class WorkerClient {
  // worker: a Worker, or a MessagePort whose other end is served by a worker.
  constructor(worker, onEvent = () => {}) {
    this.worker = worker;
    this.nextId = 1;
    this.pending = new Map();
    worker.onmessage = (e) => {
      const msg = e.data;
      if (msg && msg.event) return onEvent(msg.event, msg.detail);
      const waiter = this.pending.get(msg.id);
      if (!waiter) return;
      this.pending.delete(msg.id);
      if (msg.error) waiter.reject(new RpcError(msg.error.message, msg.error.code, msg.error.detail));
      else waiter.resolve(msg.result);
    };
    // A worker that fails to start (404, syntax error, CORS) only reports here: fail every call.
    worker.onerror = (e) => {
      e.preventDefault?.();
      this.failAll(new RpcError(`worker failed: ${e.message || 'could not load its script'}`, 'worker_error'));
    };
  }

  call(method, params = {}, transfer = []) {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method, since: performance.now() });
      this.worker.postMessage({ id, method, params }, transfer);
    });
  }

  // The calls not answered yet, oldest first -> [{ method, ms }]: for the report of a stuck page.
  pendingCalls() {
    const now = performance.now();
    return [...this.pending.values()].map(({ method, since }) => ({ method, ms: Math.round(now - since) }));
  }

  failAll(error) {
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }

  // error: what the calls in flight, and any later call, are rejected with.
  terminate(error = new RpcError('worker terminated', 'terminated')) {
    this.closedWith = error;
    this.failAll(error);
    if (this.worker.terminate) this.worker.terminate();
    else this.worker.close(); // a MessagePort
  }
}

const TRANSFER = Symbol('transfer');

export function withTransfer(value, buffers) {
  return { [TRANSFER]: buffers, value };
}

export function emit(event, detail) {
  self.postMessage({ event, detail });
}

// target: the worker's global scope, or a MessagePort another worker calls through.
export function serve(handlers, target = self) {
  target.onmessage = async (e) => {
    const { id, method, params } = e.data;
    try {
      const handler = handlers[method];
      if (!handler) throw new RpcError(`unknown method ${method}`, 'unknown_method');
      const out = await handler(params);
      if (out && out[TRANSFER]) target.postMessage({ id, result: out.value }, out[TRANSFER]);
      else target.postMessage({ id, result: out });
    } catch (err) {
      target.postMessage({
        id,
        error: { message: err?.message ?? String(err), code: err?.code ?? 'error', detail: err?.detail },
      });
    }
  };
}

// A module worker from a URL of another origin cannot be created directly; a same-origin blob
// that imports it can (the script must be served with CORS, which ours is).
export function spawnWorker(url, name) {
  const scriptUrl = new URL(url, location.href);
  if (scriptUrl.origin === location.origin) return new Worker(scriptUrl, { type: 'module', name });
  const shim = new Blob([`import ${JSON.stringify(scriptUrl.href)};`], { type: 'text/javascript' });
  return new Worker(URL.createObjectURL(shim), { type: 'module', name });
}
