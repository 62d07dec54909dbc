// Warm starts from a Pyodide memory snapshot: the interpreter with pyapp imported, OpenAI's vocab
// parsed, and numpy and Pillow imported too. Pyodide 0.27 cannot restore a snapshot taken after
// compiled extensions were loaded (pyodide#4720, #5195): their code lives outside the wasm heap.
// So, as Cloudflare's workerd does, we record where each library's memory and table slots were
// (`loadedLibraries`), and before Pyodide copies the heap back we instantiate each library again
// at those very places (`replayLibraries`); the heap copy then restores their state. A snapshot
// is our header (those records) followed by Pyodide's own bytes (`packSnapshot`).
//
// A snapshot lives in Cache Storage under a key made of everything that could make it stale: the
// Pyodide version, our lock file's bytes (every wheel's sha256, pyapp's included), the vocab URL
// (versioned by its sha256 on the server) and this file's FORMAT. Pyodide itself refuses a
// snapshot of another build (its header holds the build id). It is made in a throwaway worker
// (snapshot-worker.js) or by the server under Node, never in the interpreter that serves the
// page (pyodide#5729).
//
// These are Pyodide's and emscripten's private APIs (`_makeSnapshot`, `_loadSnapshot`,
// `makeMemorySnapshot`, `loadDynamicLibrary`, `LDSO`), pinned with Pyodide 0.27.7 in
// server/pins.py and tested in tests/browser/test_python_snapshot.py.

import { sha256Hex } from './model-fetch.js';

export const SNAPSHOT_CACHE = 'clip-web-python-v1';
const FORMAT = 3; // 2: numpy and Pillow imported, libraries replayed; 3: every Pillow plugin imported

// -> { key, lock }: the cache key, and the parsed lock file (for wheel names and hashes).
export async function snapshotKey({ lockUrl, stdLibUrl, vocabUrl, pyodideVersion }) {
  const response = await fetch(lockUrl);
  if (!response.ok) throw new Error(`HTTP ${response.status} for ${lockUrl}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const key = new URL('https://clip-web.invalid/python-snapshot');
  key.searchParams.set('format', String(FORMAT));
  key.searchParams.set('pyodide', pyodideVersion);
  key.searchParams.set('lock', await sha256Hex(bytes));
  key.searchParams.set('vocab', new URL(vocabUrl).pathname);
  // A snapshot holds zipimport's table of the stdlib zip it was made over (plain or precompiled).
  key.searchParams.set('stdlib', stdLibUrl ? new URL(stdLibUrl).pathname : 'python_stdlib.zip');
  return { key: key.href, lock: JSON.parse(new TextDecoder().decode(bytes)) };
}

async function openCache() {
  try {
    return self.caches ? await self.caches.open(SNAPSHOT_CACHE) : null;
  } catch {
    return null; // storage disabled: every start is a normal boot
  }
}

// null when there is none, else a promise of its bytes (reading 52 MB takes a while: Pyodide
// takes the promise and loads its own script meanwhile). Rejects if the entry is cut short.
export async function findSnapshot(key) {
  const cache = await openCache();
  const hit = cache && (await cache.match(key));
  if (!hit) return null;
  const expected = Number(hit.headers.get('X-Clip-Web-Bytes'));
  const bytes = hit.arrayBuffer().then((buffer) => {
    if (buffer.byteLength !== expected) throw new Error(`the stored snapshot has ${buffer.byteLength} bytes, not ${expected}`);
    return new Uint8Array(buffer);
  });
  bytes.catch(() => {});
  return bytes;
}

export async function storeSnapshot(key, bytes) {
  const cache = await openCache();
  if (!cache) return false;
  // Snapshots of older locks are stale forever: keep one.
  for (const old of await cache.keys()) await cache.delete(old);
  await cache.put(key, new Response(bytes, { headers: { 'Content-Type': 'application/octet-stream', 'X-Clip-Web-Bytes': String(bytes.byteLength) } }));
  return true;
}

export async function deleteSnapshot(key) {
  const cache = await openCache();
  return cache ? cache.delete(key) : false;
}

// What the snapshot maker imports before the snapshot (the wheels already installed). Pillow's
// init() imports every plugin (TIFF and WebP included), so that preprocessing an image imports
// nothing more (tests/pyapp/test_snapshot_imports.py): a restored interpreter can then take its
// first image before numpy's and Pillow's files are written. It must run here, not later: an
// init() that ran before those files existed would drop the missing plugins silently, for good.
export const PREPARE_PY = `
import array, html, json, gzip, re, unicodedata, ftfy, pyapp, pyapp.errors, pyapp.tokenizer as T
T.set_default_tokenizer(T.Tokenizer.from_path("/tmp/bpe_vocab.txt.gz"))
T.encode("warm the caches: a photo of a café")
import numpy, PIL.Image, pyapp.preprocess
pyapp.preprocess._registered_formats()
`;

// Tokens of a fixed text, to check a restored tokenizer against (OpenAI's ids for it).
export const CHECK_TEXT = 'a photo of a cat';
export const CHECK_IDS = '[320, 1125, 539, 320, 2368]';
export const CHECK_PY = `
import sys, pyapp.tokenizer as T
import PIL.Image
assert "numpy" in sys.modules and PIL.Image._initialized == 2 and T._default is not None
str(T.encode(${JSON.stringify(CHECK_TEXT)}))
`;

// The wheels a snapshot holds (and a restored interpreter needs on its file system, which a
// snapshot does not keep), fetched and checked against the lock's sha256 by hand: loadPackage
// would leave JS objects behind that a snapshot cannot hold.
export const SNAPSHOT_WHEELS = ['wcwidth', 'ftfy', 'pyapp', 'numpy', 'pillow'];
// Of those, the ones whose libraries the snapshot holds: their other files are only needed by
// later imports (numpy.random, Pillow's other plugins), so a restore writes them after it is ready.
export const IMAGE_WHEELS = ['numpy', 'pillow'];

// -> [[path, bytes], ...] to write into Pyodide's file system.
export async function fetchWheels(lock, indexUrl, names = SNAPSHOT_WHEELS) {
  return Promise.all(
    names.map(async (name) => {
      const entry = lock.packages[name];
      const r = await fetch(new URL(entry.file_name, indexUrl));
      if (!r.ok) throw new Error(`HTTP ${r.status} for ${entry.file_name}`);
      const bytes = new Uint8Array(await r.arrayBuffer());
      if ((await sha256Hex(bytes)) !== entry.sha256) throw new Error(`${entry.file_name} does not match the lock's sha256`);
      return [`/tmp/${name}.whl`, bytes];
    }),
  );
}

export const installWheelsPy = (names = SNAPSHOT_WHEELS) => `
import importlib, os, sysconfig, zipfile
for _name in ${JSON.stringify(names)}:
    with zipfile.ZipFile(f"/tmp/{_name}.whl") as _z:
        _z.extractall(sysconfig.get_paths()["purelib"])
    os.unlink(f"/tmp/{_name}.whl")
importlib.invalidate_caches()
del _name, _z
`;

// emscripten's `struct dso` (system/lib/libc/dynlink.c, as Pyodide 0.27.7 builds it): the fields
// loadWebAssemblyModule reads. A handle whose mem_allocated is set gets its memory and table
// slots from the record instead of allocating new ones: that is how a library lands where the
// snapshot's heap expects it.
const DSO = { memAllocated: 8, memAddr: 12, memSize: 16, tableAddr: 20, tableSize: 24, fileData: 28, fileDataSize: 32 };

// In the interpreter about to be snapshotted: every library dlopen loaded, in load order, with
// where its memory and table slots are. Each library takes its table slots at the end of the
// table when it loads, so table order is load order (a library without slots could not be
// ordered: refused).
export function loadedLibraries(Module) {
  const u32 = new Uint32Array(Module.HEAP8.buffer);
  const libraries = Object.entries(Module.LDSO.loadedLibsByHandle)
    .filter(([handle]) => Number(handle) !== 0)
    .map(([h, dso]) => {
      const handle = Number(h);
      return {
        handle,
        name: dso.name,
        global: !!dso.global,
        memoryBase: u32[(handle + DSO.memAddr) >> 2],
        memorySize: u32[(handle + DSO.memSize) >> 2],
        tableBase: u32[(handle + DSO.tableAddr) >> 2],
        tableSize: u32[(handle + DSO.tableSize) >> 2],
        // dlopen read the file into the heap and keeps it there: the snapshot holds the bytes.
        fileData: u32[(handle + DSO.fileData) >> 2],
        fileSize: u32[(handle + DSO.fileDataSize) >> 2],
      };
    });
  for (const lib of libraries) if (!lib.tableSize) throw new Error(`${lib.name} has no table slots: its load order is unknown`);
  libraries.sort((a, b) => a.tableBase - b.tableBase);
  return { libraries, tableLength: Module.wasmTable.length };
}

// In a fresh Pyodide module, before the snapshot's heap is copied in: load each library again,
// in the same order, into the same memory and table slots. What their initialisers write now is
// overwritten by the heap copy. `bytesOf(path)` -> the library's bytes (from its wheel).
export function replayLibraries(Module, { libraries, tableLength, tableStart }, bytesOf) {
  if (Module.wasmTable.length !== tableStart) throw new Error(`a fresh module's table has ${Module.wasmTable.length} slots, the snapshot's had ${tableStart}`);
  for (const lib of libraries) {
    const data = bytesOf(lib.name);
    if (!data) throw new Error(`${lib.name} is in none of the wheels`);
    const handle = Module._calloc(64, 1);
    const u32 = new Uint32Array(Module.HEAP8.buffer);
    Module.HEAP8[handle + DSO.memAllocated] = 1;
    u32[(handle + DSO.memAddr) >> 2] = lib.memoryBase;
    u32[(handle + DSO.memSize) >> 2] = lib.memorySize;
    u32[(handle + DSO.tableAddr) >> 2] = lib.tableBase;
    u32[(handle + DSO.tableSize) >> 2] = lib.tableSize;
    const fs = { findObject: () => true, readFile: () => data };
    Module.loadDynamicLibrary(lib.name, { global: lib.global, nodelete: true, loadAsync: false, fs }, lib.global ? null : {}, handle);
    // dlsym finds a library by the handle the snapshot's C side holds.
    Module.LDSO.loadedLibsByHandle[lib.handle] = Module.LDSO.loadedLibsByHandle[handle];
    delete Module.LDSO.loadedLibsByHandle[handle];
  }
  if (Module.wasmTable.length !== tableLength) throw new Error(`the libraries took ${Module.wasmTable.length} table slots, the snapshot's ${tableLength}`);
}

// Our header, then Pyodide's snapshot: magic, the JSON's length, the JSON, zeros to 16 bytes
// (Pyodide reads its part as 32-bit words).
const MAGIC = 0x32535743; // "CWS2"

export function packSnapshot(pyodideBytes, meta) {
  const json = new TextEncoder().encode(JSON.stringify(meta));
  const head = Math.ceil((8 + json.length) / 16) * 16;
  const out = new Uint8Array(head + pyodideBytes.byteLength);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, json.length, true);
  out.set(json, 8);
  out.set(pyodideBytes, head);
  return out;
}

// -> { meta, pyodide }: our records and Pyodide's part (a view, not a copy).
export function unpackSnapshot(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 16 || view.getUint32(0, true) !== MAGIC) throw new Error('not a clip-web Python snapshot of this format');
  const length = view.getUint32(4, true);
  const head = Math.ceil((8 + length) / 16) * 16;
  if (head > bytes.byteLength) throw new Error('the snapshot is cut short');
  const meta = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)));
  return { meta, pyodide: bytes.subarray(head) };
}

// Make a snapshot of an interpreter booted with `_makeSnapshot` whose SNAPSHOT_WHEELS were
// installed by installWheelsPy and PREPARE_PY run: Pyodide's bytes with our records in front.
export async function makeSnapshot(pyodide, tableStart) {
  const Module = pyodide._module;
  // sysconfig says "//lib/python3.12/site-packages"; the libraries' names are normalised.
  const sitePackages = pyodide.runPython('import sysconfig; sysconfig.get_paths()["purelib"]').replace(/^\/+/, '/');
  const meta = { ...loadedLibraries(Module), tableStart, sitePackages };
  // Nothing may have taken table slots between the boot and the first library: a fresh module
  // (the restore's) has exactly tableStart.
  const first = meta.libraries.find((lib) => lib.tableSize);
  if (first && first.tableBase !== tableStart) throw new Error(`the first library's table slots start at ${first.tableBase}, not at the boot's ${tableStart}`);
  // A restore takes each library's bytes from the snapshot's heap (no wheel needed before it
  // starts): they must be the file's, and their digest goes with the records.
  for (const lib of meta.libraries) {
    const file = pyodide.FS.readFile(lib.name);
    const held = Module.HEAPU8.subarray(lib.fileData, lib.fileData + lib.fileSize);
    if (!lib.fileData || held.length !== file.length || !held.every((b, i) => b === file[i])) {
      throw new Error(`${lib.name}: the heap does not hold the library's file`);
    }
    lib.sha256 = await sha256Hex(file);
  }
  return packSnapshot(pyodide.makeMemorySnapshot(), meta);
}

// -> Map(path -> bytes) of the snapshot's libraries, read from its heap (views, not copies) and
// checked against the digests taken when it was made.
export async function libraryBytes(meta, pyodideBytes) {
  const heapStart = new DataView(pyodideBytes.buffer, pyodideBytes.byteOffset).getUint32(4, true); // Pyodide's header: [magic, heap offset, ...]
  const heap = pyodideBytes.subarray(heapStart);
  const out = new Map();
  await Promise.all(
    meta.libraries.map(async (lib) => {
      const bytes = heap.subarray(lib.fileData, lib.fileData + lib.fileSize);
      if (bytes.length !== lib.fileSize || (await sha256Hex(bytes)) !== lib.sha256) throw new Error(`${lib.name} in the snapshot is damaged`);
      out.set(lib.name, bytes);
    }),
  );
  return out;
}

// CPython's Emscripten trampoline takes one table slot while the module starts where the engine
// has wasm GC (Chromium, Firefox), and none where it has not (Node 20, which makes the server's
// snapshot). A snapshot's libraries sit right after the boot's slots, so whoever makes or restores
// one must take the same number: none. Pyodide 0.27.7 skips that slot on iOS (it tests
// navigator.platform), so we say "iPhone" while a module starts; CPython then calls through its
// JS trampoline, as every restored snapshot did before. If this stops working, replayLibraries'
// table check refuses the snapshot and the page boots normally.
export async function withoutTrampolineSlot(start) {
  const nav = globalThis.navigator;
  let patched = false;
  if (nav) {
    try {
      Object.defineProperty(nav, 'platform', { value: 'iPhone', configurable: true });
      patched = true;
    } catch {
      // a navigator that cannot be patched: the table check decides
    }
  }
  try {
    return await start();
  } finally {
    if (patched) delete nav.platform;
  }
}
