// Where the bytes of an unfinished model download live while it runs, so a dropped connection, a
// closed tab or a reload continues from the last byte stored instead of byte 0.
//
// The origin private file system (OPFS) with a synchronous access handle: only in a dedicated
// worker (the onnxruntime worker is one), in Chromium, Firefox and Safari/WebKit alike. Each chunk
// is written where it belongs as it arrives, so the download never holds its chunks in memory
// as well. Without OPFS, IndexedDB: one record per chunk (a reload resumes there too). Without
// either (storage disabled) the bytes stay in memory: retries within this visit still resume.
//
// One file per model file, named after the cache key (URL + sha256 + size), plus a small JSON
// sidecar with the server's validator (ETag or Last-Modified) the resumed bytes came from.

const FOLDER = 'clip-web-partial-v1';

async function nameFor(key) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(key));
  return Array.from(new Uint8Array(digest).slice(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function opfsFolder({ create = true } = {}) {
  try {
    if (!self.navigator?.storage?.getDirectory || typeof FileSystemFileHandle === 'undefined') return null;
    if (!('createSyncAccessHandle' in FileSystemFileHandle.prototype)) return null;
    const root = await navigator.storage.getDirectory();
    return await root.getDirectoryHandle(FOLDER, { create });
  } catch {
    return null; // e.g. private browsing, storage disabled
  }
}

class OpfsPartial {
  constructor(folder, name, handle, meta) {
    this.folder = folder;
    this.name = name;
    this.handle = handle;
    this.meta = meta;
    this.kind = 'opfs';
  }

  get size() {
    return this.handle.getSize();
  }

  write(chunk, at) {
    const written = this.handle.write(chunk, { at });
    if (written !== chunk.byteLength) throw new Error(`wrote ${written} of ${chunk.byteLength} bytes`);
  }

  truncate(size) {
    this.handle.truncate(size);
  }

  flush() {
    this.handle.flush();
  }

  async setMeta(meta) {
    this.meta = meta;
    const file = await this.folder.getFileHandle(`${this.name}.json`, { create: true });
    const writer = await file.createSyncAccessHandle();
    try {
      const bytes = new TextEncoder().encode(JSON.stringify(meta));
      writer.truncate(0);
      writer.write(bytes, { at: 0 });
      writer.flush();
    } finally {
      writer.close();
    }
  }

  // The whole file as one buffer (the caller checks the size first).
  readAll() {
    const buffer = new Uint8Array(this.handle.getSize());
    this.handle.read(buffer, { at: 0 });
    return buffer;
  }

  close() {
    try {
      this.handle.close();
    } catch {
      // already closed
    }
  }

  async remove() {
    this.close();
    for (const name of [this.name, `${this.name}.json`]) await this.folder.removeEntry(name).catch(() => {});
  }
}

class MemoryPartial {
  constructor() {
    this.chunks = []; // [offset, Uint8Array] in order
    this.meta = {};
    this.kind = 'memory';
  }

  get size() {
    const last = this.chunks[this.chunks.length - 1];
    return last ? last[0] + last[1].byteLength : 0;
  }

  write(chunk, at) {
    if (at !== this.size) throw new Error('memory downloads only append');
    this.chunks.push([at, chunk]);
  }

  truncate(size) {
    if (size !== 0) throw new Error('memory downloads only restart');
    this.chunks = [];
  }

  flush() {}

  async setMeta(meta) {
    this.meta = meta;
  }

  readAll() {
    const buffer = new Uint8Array(this.size);
    for (const [at, chunk] of this.chunks) buffer.set(chunk, at);
    this.chunks = [];
    return buffer;
  }

  close() {}

  async remove() {
    this.chunks = [];
  }
}

// IndexedDB: each chunk a record [key, offset, length] -> bytes (the lengths in the key, so
// resuming reads keys only), and the meta under [key, -1, 0].
const IDB_NAME = 'clip-web-partial-v1';

function idbRequest(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function openIdb() {
  try {
    if (!self.indexedDB) return null;
    const request = indexedDB.open(IDB_NAME, 1);
    request.onupgradeneeded = () => request.result.createObjectStore('chunks');
    return await idbRequest(request);
  } catch {
    return null;
  }
}

class IdbPartial {
  constructor(db, key, chunks, meta) {
    this.db = db;
    this.key = key;
    this.chunks = chunks; // [[offset, length]] of the stored records, in order
    this.meta = meta;
    this.kind = 'indexeddb';
    this.pending = []; // writes not yet known to have landed
  }

  static async open(db, key) {
    const store = db.transaction('chunks').objectStore('chunks');
    const keys = await idbRequest(store.getAllKeys(IDBKeyRange.bound([key, 0], [key, Infinity])));
    const meta = (await idbRequest(store.get([key, -1, 0]))) ?? {};
    const chunks = [];
    let end = 0;
    for (const [, offset, length] of keys) {
      if (offset !== end) break; // only the contiguous run from byte 0 counts
      chunks.push([offset, length]);
      end += length;
    }
    return new IdbPartial(db, key, chunks, meta);
  }

  get size() {
    const last = this.chunks[this.chunks.length - 1];
    return last ? last[0] + last[1] : 0;
  }

  write(chunk, at) {
    if (at !== this.size) throw new Error('IndexedDB downloads only append');
    const copy = chunk.slice(); // the stream may reuse its buffer
    this.chunks.push([at, copy.byteLength]);
    const tx = this.db.transaction('chunks', 'readwrite');
    tx.objectStore('chunks').put(copy, [this.key, at, copy.byteLength]);
    const done = new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = tx.onabort = () => reject(tx.error ?? new Error('IndexedDB write failed'));
    });
    done.catch(() => {});
    this.pending.push(done);
  }

  truncate(size) {
    if (size !== 0) throw new Error('IndexedDB downloads only restart');
    this.chunks = [];
    const tx = this.db.transaction('chunks', 'readwrite');
    tx.objectStore('chunks').delete(IDBKeyRange.bound([this.key, 0], [this.key, Infinity]));
  }

  // Writes are asynchronous here: a failed one (quota) surfaces at the next flush.
  async flush() {
    const pending = this.pending;
    this.pending = [];
    await Promise.all(pending);
  }

  async setMeta(meta) {
    this.meta = meta;
    const tx = this.db.transaction('chunks', 'readwrite');
    tx.objectStore('chunks').put(meta, [this.key, -1, 0]);
  }

  async readAll() {
    await this.flush();
    const buffer = new Uint8Array(this.size);
    // One chunk at a time (a transaction each: awaiting between requests may end one), so the
    // download's bytes are never held twice.
    for (const [offset, length] of this.chunks) {
      const store = this.db.transaction('chunks').objectStore('chunks');
      buffer.set(await idbRequest(store.get([this.key, offset, length])), offset);
    }
    return buffer;
  }

  close() {}

  async remove() {
    const tx = this.db.transaction('chunks', 'readwrite');
    tx.objectStore('chunks').delete(IDBKeyRange.bound([this.key, -1], [this.key, Infinity]));
    await new Promise((resolve) => (tx.oncomplete = tx.onerror = resolve));
  }
}

// Which store new downloads use: 'opfs' (then IndexedDB, then memory), or forced to
// 'indexeddb' / 'memory' (tests and the curious: `runtimeOptions.download.store`).
let preferred = 'opfs';
export function setPartialStore(kind) {
  preferred = kind || 'opfs';
}

// Only one download of a file at a time may hold its OPFS handle (a second open would fail).
const open = new Map(); // key -> Promise<partial>

// -> the partial download of `key`: its bytes so far (size), its meta, write/readAll/remove.
export function openPartial(key) {
  let partial = open.get(key);
  if (!partial) {
    partial = (async () => {
      const folder = preferred === 'opfs' ? await opfsFolder() : null;
      if (!folder) {
        const db = preferred !== 'memory' ? await openIdb() : null;
        return db ? IdbPartial.open(db, key) : new MemoryPartial();
      }
      const name = await nameFor(key);
      try {
        const file = await folder.getFileHandle(name, { create: true });
        const handle = await file.createSyncAccessHandle();
        let meta = {};
        try {
          const sidecar = await (await folder.getFileHandle(`${name}.json`)).getFile();
          meta = JSON.parse(await sidecar.text());
        } catch {
          // no sidecar yet
        }
        return new OpfsPartial(folder, name, handle, meta);
      } catch {
        return new MemoryPartial(); // another tab holds this file's handle: download in memory here
      }
    })();
    open.set(key, partial);
  }
  return partial;
}

// The download is over (done or given up for this visit): release the handle, keep the bytes.
export async function closePartial(key, { remove = false } = {}) {
  const partial = open.get(key);
  if (!partial) return;
  open.delete(key);
  const p = await partial;
  if (remove) await p.remove();
  else p.close();
}

// The file is in the model cache: drop whatever partial copy of it a tab left behind (one closed
// between keeping the file and dropping its partial). Creates nothing: no OPFS file is opened, and
// IndexedDB is opened only when this origin already has the database.
export async function discardPartial(key) {
  if (open.has(key)) return; // being downloaded right now: its download removes it when done
  const folder = await opfsFolder({ create: false });
  if (folder) {
    const name = await nameFor(key);
    for (const entry of [name, `${name}.json`]) await folder.removeEntry(entry).catch(() => {});
  }
  if (!self.indexedDB?.databases) return;
  const names = (await indexedDB.databases()).map((d) => d.name);
  if (!names.includes(IDB_NAME)) return;
  const db = await openIdb();
  if (!db) return;
  try {
    await new IdbPartial(db, key, [], {}).remove();
  } finally {
    db.close();
  }
}

// Bytes held by unfinished downloads (for the storage line in info()).
export async function partialBytes() {
  const folder = await opfsFolder();
  if (!folder) return 0;
  let total = 0;
  for await (const handle of folder.values()) {
    if (handle.kind !== 'file' || handle.name.endsWith('.json')) continue;
    try {
      total += (await handle.getFile()).size;
    } catch {
      // being written right now (its access handle is exclusive)
    }
  }
  return total;
}
