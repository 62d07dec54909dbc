// The collection's raw float32 embeddings on disk, one fixed-size row per image id, in a file of
// the origin private file system read and written through a synchronous access handle (dedicated
// workers only; reads of a 2 KB row take microseconds). The search worker keeps only the compact
// int8 matrix in memory and reads exact rows from here for what must be exact: the head of every
// ranking, the uncertain rows of a zero-shot sort, "more like this", the export and the cache.
//
// One file per worker (per tab), named at random and emptied on reset; files left by tabs that
// closed are removed when a worker starts (a file another tab holds open is locked and skipped).
// Where the file system is missing (WebKitGTK, older Safari, some private modes) the rows are kept
// in this worker's memory instead (MemoryRows, same interface: 205 MB at 100,000 images of 512
// values), so scores are exact in every browser; `kind` says which.

const FOLDER = 'clip-web-search-vectors';
// Ids at most this far apart are read in one call (32 KB of rows at 512 values).
const COALESCE_ROWS = 16;

export class ExactRows {
  constructor(dir, name, handle) {
    this.dir = dir;
    this.name = name;
    this.handle = handle;
    this.d = 0;
    this.kind = 'file';
  }

  // -> ExactRows on a file, or MemoryRows where there is no file system for it.
  static async open() {
    return (await ExactRows.openFile()) ?? new MemoryRows();
  }

  static async openFile() {
    try {
      if (!self.navigator?.storage?.getDirectory || typeof FileSystemFileHandle === 'undefined') return null;
      if (!('createSyncAccessHandle' in FileSystemFileHandle.prototype)) return null;
      const root = await navigator.storage.getDirectory();
      const dir = await root.getDirectoryHandle(FOLDER, { create: true });
      for await (const [name] of dir.entries()) {
        await dir.removeEntry(name).catch(() => {}); // another tab's open file: locked, kept
      }
      const name = `rows-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}.f32`;
      const file = await dir.getFileHandle(name, { create: true });
      return new ExactRows(dir, name, await file.createSyncAccessHandle());
    } catch (err) {
      console.warn('no file for exact embeddings; keeping them in memory', err);
      return null;
    }
  }

  // rows: how many the collection will hold (a file grows as it is written; MemoryRows uses it).
  reset(d, rows = 0) {
    this.d = d;
    this.handle.truncate(0);
  }

  // rows: Float32Array(m * d) for ids[0..m-1]. Contiguous runs of ids go in one write.
  write(ids, rows, d) {
    if (this.d !== d) this.reset(d);
    const bytes = d * 4;
    let k = 0;
    while (k < ids.length) {
      let end = k + 1;
      while (end < ids.length && ids[end] === ids[end - 1] + 1) end += 1;
      const part = new Uint8Array(rows.buffer, rows.byteOffset + k * bytes, (end - k) * bytes);
      const written = this.handle.write(part, { at: ids[k] * bytes });
      if (written !== part.byteLength) throw new Error(`the exact-embeddings file took ${written} of ${part.byteLength} bytes (disk full?)`);
      k = end;
    }
  }

  // id -> Float32Array(d), or null when the row was never written.
  read(id) {
    const out = new Float32Array(this.d);
    const got = this.handle.read(new Uint8Array(out.buffer), { at: id * this.d * 4 });
    return got === out.byteLength ? out : null;
  }

  // ids (any order) -> each(id, Float32Array(d)) in id order. Ids close together share one read:
  // a read call costs far more than its bytes.
  readMany(ids, each) {
    const sorted = Uint32Array.from(ids).sort();
    const d = this.d;
    let k = 0;
    while (k < sorted.length) {
      let end = k + 1;
      while (end < sorted.length && sorted[end] - sorted[end - 1] <= COALESCE_ROWS) end += 1;
      const first = sorted[k];
      const block = this.readRange(first, sorted[end - 1] - first + 1);
      for (let j = k; j < end; j++) each(sorted[j], block.subarray((sorted[j] - first) * d, (sorted[j] - first + 1) * d));
      k = end;
    }
  }

  // Rows start..start+count-1 in one read (Float32Array(count * d)); rows never written (past
  // the end of the file) read as zeros.
  readRange(start, count) {
    const out = new Float32Array(count * this.d);
    this.handle.read(new Uint8Array(out.buffer), { at: start * this.d * 4 });
    return out;
  }
}

// The same rows in memory, for browsers without the origin private file system: a Float32Array
// of the collection's size (reset's `rows`), grown (doubling) past it if ids go beyond.
export class MemoryRows {
  constructor() {
    this.d = 0;
    this.rows = new Float32Array(0);
    this.count = 0; // rows 0..count-1 are within the written range
    this.reserved = 0; // rows the collection will hold
    this.kind = 'memory';
  }

  reset(d, rows = 0) {
    this.d = d;
    this.reserved = rows;
    this.rows = new Float32Array(0);
    this.count = 0;
  }

  write(ids, rows, d) {
    if (this.d !== d) this.reset(d, this.reserved);
    let last = -1;
    for (const id of ids) last = Math.max(last, id);
    if ((last + 1) * d > this.rows.length) {
      const grown = new Float32Array(Math.max((last + 1) * d, this.reserved * d, this.rows.length * 2));
      grown.set(this.rows);
      this.rows = grown;
    }
    this.count = Math.max(this.count, last + 1);
    for (let k = 0; k < ids.length; k++) this.rows.set(rows.subarray(k * d, (k + 1) * d), ids[k] * d);
  }

  read(id) {
    return id < this.count ? this.rows.slice(id * this.d, (id + 1) * this.d) : null;
  }

  readMany(ids, each) {
    for (const id of Uint32Array.from(ids).sort()) each(id, this.rows.subarray(id * this.d, (id + 1) * this.d));
  }

  // Rows never written read as zeros, as from the file.
  readRange(start, count) {
    const out = new Float32Array(count * this.d);
    const end = Math.min(start + count, this.count);
    if (end > start) out.set(this.rows.subarray(start * this.d, end * this.d));
    return out;
  }
}
