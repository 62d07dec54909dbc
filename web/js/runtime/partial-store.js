// Where the bytes of an unfinished model download live while it runs, so a dropped connection, a
// closed tab or a reload continues from the last byte stored instead of byte 0.
//
// The origin private file system (OPFS) with a synchronous access handle: only in a dedicated
// worker (the onnxruntime worker is one), in Chromium, Firefox and Safari/WebKit alike. Each chunk
// is written where it belongs as it arrives, so the download never holds its chunks in memory
// as well. Without OPFS (older browsers, storage disabled) the bytes stay in memory: retries
// within this visit still resume; a reload starts again.
//
// One file per model file, named after the cache key (URL + sha256 + size), plus a small JSON
// sidecar with the server's validator (ETag or Last-Modified) the resumed bytes came from.

const FOLDER = 'clip-web-partial-v1';

async function nameFor(key) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(key));
  return Array.from(new Uint8Array(digest).slice(0, 16), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function opfsFolder() {
  try {
    if (!self.navigator?.storage?.getDirectory || typeof FileSystemFileHandle === 'undefined') return null;
    if (!('createSyncAccessHandle' in FileSystemFileHandle.prototype)) return null;
    const root = await navigator.storage.getDirectory();
    return await root.getDirectoryHandle(FOLDER, { create: true });
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

// Only one download of a file at a time may hold its OPFS handle (a second open would fail).
const open = new Map(); // key -> Promise<partial>

// -> the partial download of `key`: its bytes so far (size), its meta, write/readAll/remove.
export function openPartial(key) {
  let partial = open.get(key);
  if (!partial) {
    partial = (async () => {
      const folder = await opfsFolder();
      if (!folder) return new MemoryPartial();
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
