// Module worker that runs the CLIP encoders with onnxruntime-web (see ort-backend.js).
// It downloads model files itself, so megabytes never cross the page's thread.

import { serve, emit, withTransfer, RpcError } from './rpc.js';
import { trackFetchProgress } from './progress-fetch.js';
import { initOrt, createSession, makeTensor, ortState } from './ort-backend.js';
import { loadModelBytes, clearModelCache } from './model-fetch.js';

const sessions = new Map(); // key -> { session, spec }

// onnxruntime-web's own wasm download shows up as progress too.
trackFetchProgress((p) => emit('progress', { ...p, source: 'onnxruntime' }));

serve({
  async init({ runtime, base, backend, threads }) {
    const t0 = performance.now();
    const info = await initOrt({ ortBaseUrl: new URL(runtime.ort_base_url, base).href, backend, threads });
    return { ...info, timings: { ort_import_ms: performance.now() - t0 } };
  },

  // spec: { url, input, output, input_dtype, sha256?, bytes? } from the model manifest.
  async loadModel({ key, spec, backend }) {
    const t0 = performance.now();
    const { buffer: bytes, cached, hashed, remember } = await loadModelBytes(spec.url, spec, (p) => emit('progress', { ...p, source: 'model' }));
    const t1 = performance.now();
    const { session, backend: used, notices } = await createSession(bytes, { backend, label: spec.url.split('/').pop() });
    if (!session.inputNames.includes(spec.input) || !session.outputNames.includes(spec.output)) {
      await session.release();
      throw new RpcError(
        `${spec.url.split('/').pop()} has inputs [${session.inputNames}] and outputs [${session.outputNames}], ` +
          `but its manifest says input "${spec.input}" and output "${spec.output}"`,
        'model_mismatch',
      );
    }
    await remember();
    const old = sessions.get(key);
    sessions.set(key, { session, spec });
    if (old) old.session.release();
    return {
      backend: used,
      notices,
      bytes: bytes.byteLength,
      cached,
      hashed,
      inputNames: session.inputNames,
      outputNames: session.outputNames,
      timings: { download_ms: t1 - t0, session_ms: performance.now() - t1 },
    };
  },

  async run({ key, data, dims }) {
    const entry = sessions.get(key);
    if (!entry) throw new RpcError(`no model loaded for "${key}"`, 'not_ready');
    const t0 = performance.now();
    const feeds = { [entry.spec.input]: makeTensor(entry.spec.input_dtype, data, dims) };
    const results = await entry.session.run(feeds);
    const output = results[entry.spec.output];
    const out = { data: Float32Array.from(output.data), dims: output.dims.slice(), ms: performance.now() - t0 };
    for (const tensor of Object.values(results)) tensor.dispose?.();
    return withTransfer(out, [out.data.buffer]);
  },

  async info() {
    const models = {};
    for (const [key, { session, spec }] of sessions) models[key] = { backend: session.backend, url: spec.url };
    return { ...ortState(), models };
  },

  async clearModelCache() {
    return clearModelCache();
  },

  async dispose({ key }) {
    const entry = sessions.get(key);
    if (entry) {
      sessions.delete(key);
      await entry.session.release();
    }
    return true;
  },
});
