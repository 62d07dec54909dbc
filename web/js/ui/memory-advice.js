// Will a model fit in this device's memory? A page's peak memory is about 450 MB (the browser,
// Pyodide, onnxruntime-web) plus 3x the model's ONNX files (the downloaded bytes, the session's copy
// and its optimised graph are alive at once while a session is created): measured in Chromium and
// Firefox, docs/memory.md. Only manifests that give their files' bytes can be judged.

export const PAGE_BASE_MB = 450;
export const MODEL_FILE_FACTOR = 3;

export function modelFilesMb(manifest) {
  const bytes = (manifest?.image?.bytes ?? 0) + (manifest?.text?.bytes ?? 0);
  return bytes > 0 ? bytes / 1e6 : null;
}

export function memoryNeededMb(manifest) {
  const files = modelFilesMb(manifest);
  return files === null ? null : Math.round(PAGE_BASE_MB + MODEL_FILE_FACTOR * files);
}

// Variants of one model share a family: a derived variant names its source model's id (followed
// to that model's own family), presets and pulled mirrors name their hub repository.
function family(manifest, models, seen = new Set()) {
  const source = manifest.source;
  if (typeof source === 'string') {
    const parent = models.find((m) => m.id === source);
    if (parent && !seen.has(parent.id)) return family(parent, models, seen.add(manifest.id));
    return source;
  }
  return source?.hub_repo ?? manifest.id;
}

// -> null when the model fits (or nothing is known), else { neededMb, deviceMb, smaller, text }:
// `smaller` is the variant of the same family that needs the least memory, if one needs less.
export function memoryAdvice(manifest, models, deviceMemoryGb) {
  const neededMb = memoryNeededMb(manifest);
  if (!deviceMemoryGb || neededMb === null) return null;
  const deviceMb = deviceMemoryGb * 1024;
  if (neededMb <= deviceMb) return null;
  const smaller = models
    .filter((m) => m.id !== manifest.id && family(m, models) === family(manifest, models) && (memoryNeededMb(m) ?? Infinity) < neededMb)
    .sort((a, b) => memoryNeededMb(a) - memoryNeededMb(b))[0] ?? null;
  const gb = (mb) => (mb / 1024).toFixed(1);
  const text =
    `This device reports ${deviceMemoryGb} GB of memory; ${manifest.name} needs about ${gb(neededMb)} GB in this page ` +
    `and may not load. ` +
    (smaller
      ? `The ${smaller.variant ?? smaller.id} variant needs about ${gb(memoryNeededMb(smaller))} GB.`
      : 'No smaller variant of it is offered here.');
  return { neededMb, deviceMb, smaller, text };
}

// A failed allocation, as onnxruntime-web, wasm or the browser word it.
export function looksLikeOutOfMemory(message) {
  return /out of memory|allocation failed|Aborted\(OOM\)|Cannot enlarge memory|RangeError: Array buffer|could not allocate/i.test(String(message));
}
