// Run ONNX models with onnxruntime-web's wasm build under Node: the same ort.wasm.min.mjs and
// ort-wasm-simd-threaded.wasm the browser loads (from .assets/ort-<version>/), so "it runs here"
// means the browser's wasm build has a kernel for every op in the file.
//
//   node ort_web_run.mjs JOB.json      (the Python side, ort_web.py, writes JOB.json)
//
// JOB.json: {
//   "ort_dir": ".../ort-1.30.0/", "threads": 1,
//   "session": {...},                        InferenceSession options (ours: graphOptimizationLevel 'extended')
//   "models": {"key": "model.onnx" | {"path": "model.onnx", "session": {...}}, ...},
//   "create_rounds": 0,                       timed create+release of every model per round (ABBA order)
//   "feeds": [{"model", "input", "output", "dtype", "dims", "data": "in.bin", "out": "out.bin" | null}],
//   "rounds": 0                               timed runs: every feed once per round, in the order given
// }
// Prints one JSON line on stdout: {"ok": true, "versions", "threads", "create_ms": {key: [..]},
// "outputs": [{"dims"}], "run_ms": [[...] per feed], "rounds_wall_ms", "rounds_cpu_ms"}, or
// {"ok": false, "error", "model"} and exit 3.
// Inputs and outputs are raw little-endian arrays (float32 / int32 / int64) in files.

import fs from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ARRAYS = { float32: Float32Array, int32: Int32Array, int64: BigInt64Array };

function allowThreadsInNode() {
  // With numThreads > 1 the browser bundle fetches its worker script (ort-wasm-simd-threaded.mjs)
  // and wraps it in a blob: URL when it looks cross-origin; Node can neither fetch file: URLs nor
  // import blob: URLs. So a file: fetch hands back a marker and the "blob URL" is the file itself:
  // the worker then imports the very file the browser would. Nothing else is changed.
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    const href = String(url);
    if (!href.startsWith('file:')) return realFetch(url, init);
    if (!fs.existsSync(fileURLToPath(href))) throw new Error(`no such file: ${href}`);
    return { ok: true, blob: async () => ({ fileHref: href }) };
  };
  const realCreate = URL.createObjectURL;
  URL.createObjectURL = (blob) => blob?.fileHref ?? realCreate(blob);
}

function readArray(path, dtype, dims) {
  const Type = ARRAYS[dtype];
  if (!Type) throw new Error(`unsupported input dtype ${dtype}`);
  const buf = fs.readFileSync(path);
  const n = dims.reduce((a, b) => a * b, 1);
  if (buf.byteLength !== n * Type.BYTES_PER_ELEMENT) {
    throw new Error(`${path}: ${buf.byteLength} bytes, expected ${n} ${dtype} for dims [${dims}]`);
  }
  // Copy into a fresh, aligned buffer (Buffer slices may share an unaligned pool).
  const out = new Type(n);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

async function main() {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const threads = job.threads ?? 1;
  if (threads > 1) allowThreadsInNode();
  const ortDir = job.ort_dir.endsWith('/') ? job.ort_dir : job.ort_dir + '/';
  const ort = await import(pathToFileURL(ortDir + 'ort.wasm.min.mjs').href);
  ort.env.wasm.wasmPaths = pathToFileURL(ortDir).href;
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = 'error';
  const options = { executionProviders: ['wasm'], ...(job.session ?? {}) };

  let current = null; // the model being worked on, for the error report
  const bytes = {};
  const sessionOptions = {}; // a model given as {path, session} gets its own options on top
  for (const [key, model] of Object.entries(job.models)) {
    const { path, session } = typeof model === 'string' ? { path: model, session: {} } : model;
    bytes[key] = fs.readFileSync(path);
    sessionOptions[key] = { ...options, ...session };
  }
  const create = async (key) => {
    current = key;
    return ort.InferenceSession.create(bytes[key], sessionOptions[key]);
  };
  const result = { ok: true, versions: ort.env.versions, threads: ort.env.wasm.numThreads, create_ms: {},
                   outputs: [], run_ms: [] };
  try {
    // The first session also instantiates the wasm module; time that apart, as "init".
    const keys = Object.keys(job.models);
    let t0 = performance.now();
    const sessions = {};
    sessions[keys[0]] = await create(keys[0]);
    result.first_create_ms = performance.now() - t0;
    for (const key of keys) result.create_ms[key] = [];
    for (let r = 0; r < (job.create_rounds ?? 0); r++) {
      // ABBA: every other round in reverse, so no model is always the one created first
      for (const key of r % 2 ? [...keys].reverse() : keys) {
        t0 = performance.now();
        const s = await create(key);
        result.create_ms[key].push(performance.now() - t0);
        await s.release();
      }
    }
    for (const key of keys) sessions[key] ??= await create(key);

    const feeds = job.feeds.map((f) => ({
      ...f, tensor: new ort.Tensor(f.dtype, readArray(f.data, f.dtype, f.dims), f.dims),
    }));
    const run = async (f) => {
      current = f.model;
      return (await sessions[f.model].run({ [f.input]: f.tensor }))[f.output];
    };
    for (const f of feeds) { // first run: the outputs (and the warm-up for timing)
      const out = await run(f);
      result.outputs.push({ dims: out.dims, type: out.type });
      if (f.out) fs.writeFileSync(f.out, new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength));
      result.run_ms.push([]);
    }
    // CPU time over wall time of the timed rounds: how many threads really worked (the process's
    // usage counts its worker threads too).
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    for (let r = 0; r < (job.rounds ?? 0); r++) {
      for (const [i, f] of feeds.entries()) {
        t0 = performance.now();
        await run(f);
        result.run_ms[i].push(performance.now() - t0);
      }
    }
    const cpu = process.cpuUsage(cpu0);
    result.rounds_wall_ms = performance.now() - wall0;
    result.rounds_cpu_ms = (cpu.user + cpu.system) / 1000;
    for (const s of Object.values(sessions)) await s.release();
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false, model: current, error: String(err?.message ?? err) }) + '\n');
    process.exit(3);
  }
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0); // the threaded build keeps worker threads alive otherwise
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({ ok: false, model: null, error: String(err?.stack ?? err) }) + '\n');
  process.exit(3);
});
