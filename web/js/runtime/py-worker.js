// Module worker that owns Pyodide and pyapp: image preprocessing and tokenization.
// The page never blocks on Python: everything here runs off the main thread.

import { serve, emit, withTransfer, RpcError } from './rpc.js';
import { trackFetchProgress } from './progress-fetch.js';

let pyodide = null;
let bridge = null;

trackFetchProgress((p) => emit('progress', { ...p, source: 'pyodide' }));

function pythonError(err) {
  // A PythonError's message is the whole traceback; the last line is "Type: message".
  if (err?.type) {
    const lines = String(err.message).trim().split('\n');
    const last = lines[lines.length - 1];
    // "pyapp.errors.ImageDecodeError: The file is empty" -> "The file is empty"
    const prefix = last.match(/^[\w.]*?(\w+): /);
    const message = prefix && prefix[1] === err.type ? last.slice(prefix[0].length) : last;
    return new RpcError(message, err.type);
  }
  return err;
}

async function guarded(fn) {
  if (!bridge) throw new RpcError('Python is not ready yet', 'not_ready');
  try {
    return await fn();
  } catch (err) {
    throw pythonError(err);
  }
}

function takeArray(proxy, type) {
  // Copy out of the wasm heap into a transferable buffer, then free the Python object.
  const buffer = proxy.getBuffer(type);
  try {
    return { data: buffer.data.slice(), dims: buffer.shape.slice() };
  } finally {
    buffer.release();
    proxy.destroy();
  }
}

// RGBA pixels as Chromium decodes the JPEG, or null if it cannot (Pillow then reports why).
async function decodeJpegInBrowser(bytes, plan) {
  try {
    const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/jpeg' }), {
      imageOrientation: 'from-image',
      colorSpaceConversion: 'none',
      premultiplyAlpha: 'none',
    });
    const { width, height } = bitmap;
    const rotated = plan.orientation >= 5 && plan.orientation <= 8;
    if (width !== (rotated ? plan.height : plan.width) || height !== (rotated ? plan.width : plan.height)) {
      bitmap.close();
      return null;
    }
    const ctx = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    const pixels = ctx.getImageData(0, 0, width, height).data;
    return { data: new Uint8Array(pixels.buffer), width, height };
  } catch {
    return null;
  }
}

serve({
  async init({ runtime, base }) {
    const url = (path) => new URL(path, base).href;
    const timings = {};
    const t0 = performance.now();
    // The vocab download overlaps Pyodide's boot.
    const vocab = fetch(url(runtime.vocab_url)).then(async (r) => {
      if (!r.ok) throw new RpcError(`BPE vocab: HTTP ${r.status} for ${r.url}`, 'asset_missing');
      return new Uint8Array(await r.arrayBuffer());
    });
    vocab.catch(() => {}); // reported when awaited below
    let loadPyodide;
    try {
      ({ loadPyodide } = await import(url(runtime.pyodide_index_url + 'pyodide.mjs')));
    } catch (err) {
      throw new RpcError(`cannot load Pyodide from ${url(runtime.pyodide_index_url)}: ${err.message}`, 'asset_missing');
    }
    try {
      pyodide = await loadPyodide({
        indexURL: url(runtime.pyodide_index_url),
        lockFileURL: url(runtime.pyodide_lock_url),
      });
    } catch (err) {
      throw new RpcError(`Pyodide failed to start: ${err.message}`, 'pyodide_boot_failed');
    }
    timings.pyodide_boot_ms = performance.now() - t0;
    const t1 = performance.now();
    const failures = [];
    await pyodide.loadPackage(['pyapp'], {
      messageCallback: () => {},
      errorCallback: (msg) => failures.push(msg),
      checkIntegrity: true,
    });
    timings.packages_ms = performance.now() - t1;
    const t2 = performance.now();
    try {
      bridge = pyodide.pyimport('pyapp.js_bridge');
    } catch (err) {
      throw new RpcError(`pyapp failed to import: ${pythonError(err).message}. ${failures.join(' ')}`, 'package_failed');
    }
    bridge.load_vocab(await vocab);
    timings.import_ms = performance.now() - t2;
    timings.ready_ms = performance.now() - t0;
    const versions = pyodide.runPython(
      'import sys, numpy, PIL, pyapp; f"{sys.version.split()[0]}|{numpy.__version__}|{PIL.__version__}|{pyapp.__version__}"',
    ).split('|');
    return {
      timings,
      versions: { pyodide: pyodide.version, python: versions[0], numpy: versions[1], pillow: versions[2], pyapp: versions[3] },
    };
  },

  // Colour JPEGs are decoded by the browser (libjpeg-turbo, like PyPI's Pillow; see
  // pyapp/preprocess.py), everything else by Pillow in Pyodide.
  async preprocess({ bytes, size = 224, mean, std, exifTranspose = false }) {
    return guarded(async () => {
      const t0 = performance.now();
      let proxy = null;
      let decoder = 'pillow';
      const plan = bridge.browser_jpeg_plan(bytes);
      if (plan) {
        const decoded = await decodeJpegInBrowser(bytes, plan);
        if (decoded) {
          proxy = bridge.preprocess_decoded_rgba(
            decoded.data, decoded.width, decoded.height, plan.orientation, size, mean, std, exifTranspose,
          );
          decoder = 'browser';
        }
      }
      if (!proxy) proxy = bridge.preprocess_image(bytes, size, mean, std, exifTranspose);
      const out = takeArray(proxy, 'f32');
      out.ms = performance.now() - t0;
      out.decoder = decoder;
      return withTransfer(out, [out.data.buffer]);
    });
  },

  // -> OpenAI's (n, contextLength) ids; with trim, also `model`: the same ids cut after the
  // batch's last end-of-text position, for encoders with a dynamic sequence axis.
  async tokenize({ texts, contextLength = 77, trim = false }) {
    return guarded(() => {
      const t0 = performance.now();
      const ids = bridge.tokenize(texts, contextLength);
      const model = trim ? takeArray(bridge.trim_padding(ids), 'i32') : null;
      const out = takeArray(ids, 'i32');
      out.ms = performance.now() - t0;
      if (!model) return withTransfer(out, [out.data.buffer]);
      out.model = model;
      return withTransfer(out, [out.data.buffer, model.data.buffer]);
    });
  },

  async tokenStrings({ text }) {
    return guarded(() => {
      const proxy = bridge.token_strings(text);
      try {
        return proxy.toJs();
      } finally {
        proxy.destroy();
      }
    });
  },

  async cropPreview({ data, dims, mean, std }) {
    return guarded(() => {
      const out = takeArray(bridge.crop_preview(data, dims, mean, std), 'u8');
      return withTransfer(out, [out.data.buffer]);
    });
  },

  // Tests and benchmarks run Python in the same interpreter the pages use; the result must be
  // JSON-serialisable (a JSON string comes back).
  async runPython({ code }) {
    return guarded(async () => {
      const result = await pyodide.runPythonAsync(code);
      return typeof result === 'string' ? result : JSON.stringify(result?.toJs?.() ?? result);
    });
  },

  async writeFile({ path, bytes }) {
    if (!pyodide) throw new RpcError('Python is not ready yet', 'not_ready');
    pyodide.FS.writeFile(path, bytes);
    return true;
  },
});
