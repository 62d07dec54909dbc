// Engine A/B page: one onnxruntime-web build, one ONNX image encoder, model-only timing.
//   engine.html?ort=BASE_URL&bundle=ort.wasm.min.mjs&model=URL&input=NAME&threads=N
// Separates the inference engine (onnxruntime-web version and build) from everything else.

import { params, setState } from './bench-common.js';

async function main() {
  const base = new URL(params.get('ort'), location.href).href;
  const ort = await import(base + params.get('bundle'));
  ort.env.wasm.wasmPaths = base;
  ort.env.wasm.numThreads = Number(params.get('threads') || 1);
  const bytes = new Uint8Array(await (await fetch(params.get('model'))).arrayBuffer());
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const sessionMs = performance.now() - t0;
  const input = params.get('input') || session.inputNames[0];
  const data = new Float32Array(3 * 224 * 224);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.001);
  const feeds = { [input]: new ort.Tensor('float32', data, [1, 3, 224, 224]) };
  window.bench = {
    info: { sessionMs, version: ort.env.versions?.web, threads: ort.env.wasm.numThreads },
    async time(n, warmup = 1) {
      for (let i = 0; i < warmup; i++) await session.run(feeds);
      const out = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        const r = await session.run(feeds);
        out.push(performance.now() - t);
        for (const v of Object.values(r)) v.dispose?.();
      }
      return out;
    },
    async sha256(n = 1) {
      const out = [];
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await crypto.subtle.digest('SHA-256', bytes);
        out.push(performance.now() - t);
      }
      return { ms: out, bytes: bytes.byteLength };
    },
  };
  setState('ready');
}

main().catch((err) => {
  console.error(err);
  setState('error', `Error: ${err?.message ?? err}`);
});
