// The one module that owns onnxruntime-web: which bundle loads, where its wasm comes from
// (our server, never a CDN), threads, backend fallback, and one run at a time per session
// (onnxruntime-web rejects concurrent runs on one session).

import { RpcError } from './rpc.js';

let ort = null;
let state = null;
let sessionExtras = {}; // session options on top of ours (benchmarks try engine settings with it)

// The plain wasm bundle loads ~1.7x faster; WebGPU and WebGL need the bundle with all backends.
const BUNDLES = { wasm: 'ort.wasm.min.mjs', webgpu: 'ort.all.min.mjs', webgl: 'ort.all.min.mjs' };

export async function initOrt({ ortBaseUrl, backend = 'wasm', threads = 0, sessionOptions = {} }) {
  sessionExtras = sessionOptions;
  if (!BUNDLES[backend]) throw new RpcError(`unknown backend "${backend}" (use wasm, webgpu or webgl)`, 'bad_backend');
  try {
    ort = await import(ortBaseUrl + BUNDLES[backend]);
  } catch (err) {
    throw new RpcError(`cannot load onnxruntime-web from ${ortBaseUrl}: ${err.message}`, 'asset_missing');
  }
  ort.env.wasm.wasmPaths = ortBaseUrl;
  ort.env.logLevel = 'error';
  // Threads need SharedArrayBuffer, which needs a cross-origin isolated context.
  const isolated = self.crossOriginIsolated === true;
  const cores = navigator.hardwareConcurrency || 1;
  ort.env.wasm.numThreads = isolated ? (threads > 0 ? Math.min(threads, cores) : cores) : 1;
  state = {
    requestedBackend: backend,
    threads: ort.env.wasm.numThreads,
    crossOriginIsolated: isolated,
    ortVersion: ort.env.versions?.web ?? ort.env.versions?.common ?? 'unknown',
    webgpuAvailable: typeof navigator.gpu !== 'undefined',
  };
  return state;
}

// An ONNX file is a protobuf ModelProto, and every exporter writes field 1 (ir_version, a varint)
// first: tag byte 0x08. onnxruntime-web's own error for a non-model file says nothing useful.
export function looksLikeOnnx(bytes) {
  return bytes.byteLength > 16 && bytes[0] === 0x08;
}

function describeCreateError(err, label, onnxLike) {
  const text = String(err?.message ?? err);
  if (!onnxLike || /protobuf|parse|Invalid model|invalid model|ModelProto|load model/i.test(text)) {
    return new RpcError(`${label} is not a valid ONNX model (onnxruntime: ${text.slice(0, 200)})`, 'invalid_model');
  }
  return new RpcError(`${label}: onnxruntime could not create a session: ${text.slice(0, 300)}`, 'session_failed');
}

export class SerialSession {
  constructor(session, backend) {
    this.session = session;
    this.backend = backend;
    this.tail = Promise.resolve();
  }

  get inputNames() {
    return this.session.inputNames;
  }

  get outputNames() {
    return this.session.outputNames;
  }

  run(feeds) {
    const result = this.tail.then(() => this.session.run(feeds));
    this.tail = result.catch(() => {});
    return result;
  }

  async release() {
    await this.tail;
    await this.session.release();
  }
}

// Try the requested backend; on failure fall back to wasm and say so (the page shows notices).
// model: { buffer } (the model's bytes). Its buffer is taken out of it for the last session this
// may create, so that nothing here holds the bytes once onnxruntime has its own copy: 351 MB less
// alive while a full-size session is built.
export async function createSession(model, { backend, label }) {
  if (!ort) throw new RpcError('onnxruntime-web is not initialised', 'not_ready');
  const onnxLike = looksLikeOnnx(model.buffer);
  if (!onnxLike) {
    throw new RpcError(`${label} is not a valid ONNX model (it does not start like an ONNX protobuf file)`, 'invalid_model');
  }
  const notices = [];
  let chosen = backend;
  if (backend === 'webgpu' && !state.webgpuAvailable) {
    notices.push('WebGPU is not available in this browser; using wasm instead.');
    chosen = 'wasm';
  }
  // 'extended', not 'all': the layout transforms 'all' adds make CLIP slower in the wasm build
  // (fp32 ViT-B/32 images: 0.88-0.97x the time of 'all' in four runs, tiny 0.94x; short texts and
  // uint8 a tie) with bit-identical embeddings (docs/engine-settings.md).
  const options = (provider) => ({ executionProviders: [provider], graphOptimizationLevel: 'extended', logSeverityLevel: 3, ...sessionExtras });
  // The bytes for one session: taken for good when no wasm fallback can follow.
  const bytesFor = (last) => {
    const bytes = model.buffer;
    if (last) model.buffer = null;
    return bytes;
  };
  try {
    const session = await ort.InferenceSession.create(bytesFor(chosen === 'wasm'), options(chosen));
    return { session: new SerialSession(session, chosen), backend: chosen, notices };
  } catch (err) {
    if (chosen === 'wasm') throw describeCreateError(err, label, onnxLike);
    notices.push(`The ${chosen} backend cannot run this model (${String(err?.message ?? err).slice(0, 160)}); using wasm instead.`);
    try {
      const session = await ort.InferenceSession.create(bytesFor(true), options('wasm'));
      return { session: new SerialSession(session, 'wasm'), backend: 'wasm', notices };
    } catch (err2) {
      throw describeCreateError(err2, label, onnxLike);
    }
  }
}

export function makeTensor(dtype, data, dims) {
  if (dtype === 'int64') {
    return new ort.Tensor('int64', BigInt64Array.from(data, (v) => BigInt(v)), dims);
  }
  return new ort.Tensor(dtype, data, dims);
}

export function ortState() {
  return state;
}
