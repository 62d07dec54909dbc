// Benchmark page for transformers.js, used the way its documentation shows (AutoProcessor +
// RawImage + CLIPVisionModelWithProjection, AutoTokenizer + CLIPTextModelWithProjection), but with
// everything self-hosted: no hub, no CDN.
//   tjs.html?model=KIND&dtype=fp32|q8&threads=N&image=NAME[&first=text]

import { params, setState, installBench, runStartup } from './bench-common.js';

const LIB = new URL('../tjs/lib/', location.href).href;
const threads = Number(params.get('threads') || 0);
const dtype = params.get('dtype') || 'fp32';
const modelId = params.get('model');
let T = null; // the library
let processor;
let tokenizer;
let visionModel;
let textModel;

const adapter = {
  async embedImage(blob) {
    const t0 = performance.now();
    const image = await T.RawImage.fromBlob(blob);
    const inputs = await processor(image);
    const t1 = performance.now();
    const { image_embeds } = await visionModel(inputs);
    const t2 = performance.now();
    return { embedding: image_embeds.data, preprocess_ms: t1 - t0, inference_ms: t2 - t1 };
  },
  async embedText(text) {
    const t0 = performance.now();
    const inputs = tokenizer([text], { padding: true, truncation: true });
    const t1 = performance.now();
    const { text_embeds } = await textModel(inputs);
    return { embedding: text_embeds.data, tokenize_ms: t1 - t0, inference_ms: performance.now() - t1 };
  },
  async embedTexts(texts) {
    const inputs = tokenizer(texts, { padding: true, truncation: true });
    const { text_embeds } = await textModel(inputs);
    const [n, d] = text_embeds.dims;
    const embeddings = Array.from({ length: n }, (_, i) => text_embeds.data.slice(i * d, (i + 1) * d));
    // The 77 ids OpenAI's tokenize() would return, for token agreement (same call, padded to 77).
    const full = tokenizer(texts, { padding: 'max_length', max_length: 77, truncation: true });
    const [, L] = full.input_ids.dims;
    const ids = Array.from({ length: n }, (_, i) => Array.from(full.input_ids.data.slice(i * L, (i + 1) * L), Number));
    return { embeddings, ids };
  },
};

async function load() {
  const marks = { import_start: performance.now() };
  T = await import(LIB + 'transformers.min.js');
  marks.import_end = performance.now();
  const { env } = T;
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = new URL('../tjs/models/', location.href).pathname;
  env.backends.onnx.wasm.wasmPaths = {
    mjs: LIB + 'ort-wasm-simd-threaded.asyncify.mjs',
    wasm: LIB + 'ort-wasm-simd-threaded.asyncify.wasm',
  };
  if (threads > 0) env.backends.onnx.wasm.numThreads = threads;
  const files = {};
  const progress_callback = (p) => {
    if (p.status === 'done' && p.file) files[p.file] = performance.now();
  };
  const timed = async (name, promise) => {
    const t0 = performance.now();
    const value = await promise;
    marks[name] = [t0, performance.now()];
    return value;
  };
  const options = { dtype, device: 'wasm', progress_callback };
  if (params.get('first') === 'text') {
    // A text-only page loads what text needs, nothing else.
    [tokenizer, textModel] = await Promise.all([
      timed('tokenizer', T.AutoTokenizer.from_pretrained(modelId, { progress_callback })),
      timed('text_model', T.CLIPTextModelWithProjection.from_pretrained(modelId, options)),
    ]);
    return { marks, files };
  }
  [processor, tokenizer, visionModel, textModel] = await Promise.all([
    timed('processor', T.AutoProcessor.from_pretrained(modelId, { progress_callback })),
    timed('tokenizer', T.AutoTokenizer.from_pretrained(modelId, { progress_callback })),
    timed('vision_model', T.CLIPVisionModelWithProjection.from_pretrained(modelId, options)),
    timed('text_model', T.CLIPTextModelWithProjection.from_pretrained(modelId, options)),
  ]);
  return { marks, files };
}

async function details({ marks, files }) {
  const ort = T.env.backends.onnx;
  return {
    tjs: marks,
    files_done: files,
    threads: ort.wasm.numThreads,
    crossOriginIsolated: self.crossOriginIsolated === true,
    versions: { transformersjs: T.env.version, onnxruntimeWeb: ort.versions?.web ?? null },
  };
}

async function main() {
  const startup = await runStartup({
    load,
    firstImage: (blob) => adapter.embedImage(blob),
    firstText: (text) => adapter.embedText(text),
    details,
  });
  installBench(adapter, startup);
  setState('ready');
}

main().catch((err) => {
  console.error(err);
  setState('error', `Error: ${err?.message ?? err}`);
});
