// Warm starts from a Pyodide memory snapshot: the interpreter with pyapp's tokenizer imported and
// OpenAI's vocab parsed, taken before any compiled extension (numpy, Pillow) is loaded, because
// Pyodide 0.27 cannot restore those (pyodide#4720, #5195). Restoring it takes a fraction of a
// boot; numpy and Pillow are then loaded as usual, for images only.
//
// A snapshot lives in Cache Storage under a key made of everything that could make it stale: the
// Pyodide version, our lock file's bytes (every wheel's sha256, pyapp's included), the vocab URL
// (versioned by its sha256 on the server) and this file's FORMAT. Pyodide itself refuses a
// snapshot of another build (its header holds the build id). It is made in a throwaway worker
// (snapshot-worker.js), never in the interpreter that serves the page (pyodide#5729).
//
// These are Pyodide's private APIs (`_makeSnapshot`, `_loadSnapshot`, `makeMemorySnapshot`),
// pinned with Pyodide 0.27.7 in server/pins.py and tested in tests/browser/test_python_snapshot.py.

import { sha256Hex } from './model-fetch.js';

export const SNAPSHOT_CACHE = 'clip-web-python-v1';
const FORMAT = 1;

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

// What the snapshot maker imports before the snapshot (the wheels already installed).
export const PREPARE_PY = `
import array, html, json, gzip, re, unicodedata, ftfy, pyapp, pyapp.errors, pyapp.tokenizer as T
T.set_default_tokenizer(T.Tokenizer.from_path("/tmp/bpe_vocab.txt.gz"))
T.encode("warm the caches: a photo of a café")
`;

// Tokens of a fixed text, to check a restored tokenizer against (OpenAI's ids for it).
export const CHECK_TEXT = 'a photo of a cat';
export const CHECK_IDS = '[320, 1125, 539, 320, 2368]';
export const CHECK_PY = `
import sys, pyapp.tokenizer as T
assert "numpy" not in sys.modules and T._default is not None
str(T.encode(${JSON.stringify(CHECK_TEXT)}))
`;

// The pure-Python wheels a snapshot holds (and a restored interpreter needs on its file system,
// which a snapshot does not keep), fetched and checked against the lock's sha256 by hand:
// loadPackage would leave JS objects behind that a snapshot cannot hold.
export const SNAPSHOT_WHEELS = ['wcwidth', 'ftfy', 'pyapp'];

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
