// The search page's embedding cache in IndexedDB, so reopening a folder embeds only new or
// changed files. One record per (model id, file path, size, last-modified): a changed file has
// another key, so a stale embedding is never used. Failures are cached too (same key), so a
// corrupt file is not decoded again on every visit, and is retried once it changes.
//
//   record = { model, path, size, mtime, root, embedding: Float32Array | null, error: string | null }
//
// Where IndexedDB is unavailable (storage disabled, some private modes) a MemoryStore stands in:
// the page still works, it just forgets on reload.

const DB_NAME = 'clip-web-search';
const DB_VERSION = 1;
const STORE = 'embeddings';
// Gets and puts go in chunks: one transaction per chunk keeps each structured-clone burst short,
// so the page never blocks for long on a 10,000-file folder.
const CHUNK = 250;

export function rootOf(path) {
  const i = path.indexOf('/');
  return i > 0 ? path.slice(0, i) : '';
}

export function recordKey(model, path, size, mtime) {
  return [model, path, size, mtime];
}

// A cache record: the embedding of a file, or why it could not be embedded.
export function cacheRecord(model, path, size, mtime, { embedding = null, error = null }) {
  return { model, path, size, mtime, root: rootOf(path), embedding, error };
}

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error('IndexedDB transaction aborted'));
  });
}

const yieldToPage = () => new Promise((r) => setTimeout(r, 0));

export class SearchStore {
  constructor(db) {
    this.db = db;
    this.persistent = true;
  }

  static async open() {
    if (typeof indexedDB === 'undefined') return new MemoryStore();
    try {
      const request = indexedDB.open(DB_NAME, DB_VERSION);
      request.onupgradeneeded = () => {
        const db = request.result;
        const store = db.createObjectStore(STORE, { keyPath: ['model', 'path', 'size', 'mtime'] });
        store.createIndex('root', 'root');
        store.createIndex('model-root', ['model', 'root']);
      };
      const db = await promised(request);
      // Another tab upgrading the schema asks us to let go; a closed db falls back to memory.
      db.onversionchange = () => db.close();
      return new SearchStore(db);
    } catch (err) {
      console.warn('IndexedDB unavailable; embeddings will not be cached', err);
      return new MemoryStore();
    }
  }

  close() {
    this.db.close();
  }

  // keys: [[model, path, size, mtime]] -> [record | undefined], same order.
  async getMany(keys) {
    const out = new Array(keys.length);
    for (let start = 0; start < keys.length; start += CHUNK) {
      const tx = this.db.transaction(STORE, 'readonly');
      const store = tx.objectStore(STORE);
      const slice = keys.slice(start, start + CHUNK);
      await Promise.all(slice.map((k, i) => promised(store.get(k)).then((r) => { out[start + i] = r; })));
      if (start + CHUNK < keys.length) await yieldToPage();
    }
    return out;
  }

  async putMany(records) {
    for (let start = 0; start < records.length; start += CHUNK) {
      const tx = this.db.transaction(STORE, 'readwrite');
      const store = tx.objectStore(STORE);
      for (const r of records.slice(start, start + CHUNK)) store.put(r);
      await done(tx);
    }
  }

  // Every record of a folder, all models: what "forget this folder" means. A chunk of keys per
  // transaction: deleting 10,000 records in one go blocks the page for a quarter of a second.
  async forgetRoot(root) {
    let removed = 0;
    for (;;) {
      const tx = this.db.transaction(STORE, 'readwrite');
      const store = tx.objectStore(STORE);
      const keys = await promised(store.index('root').getAllKeys(IDBKeyRange.only(root), CHUNK));
      for (const k of keys) store.delete(k);
      await done(tx);
      removed += keys.length;
      if (keys.length < CHUNK) return removed;
    }
  }

  // After a complete pass over a folder: drop this model's records for files that changed or
  // went away (their keys are not in keep), so the cache does not grow with every edit.
  async prune(model, root, keep) {
    const tx = this.db.transaction(STORE, 'readwrite');
    const store = tx.objectStore(STORE);
    const keys = await promised(store.index('model-root').getAllKeys(IDBKeyRange.only([model, root])));
    let removed = 0;
    for (const k of keys) {
      if (!keep.has(JSON.stringify(k))) {
        store.delete(k);
        removed += 1;
      }
    }
    await done(tx);
    return removed;
  }

  async count() {
    const tx = this.db.transaction(STORE, 'readonly');
    return promised(tx.objectStore(STORE).count());
  }
}

export class MemoryStore {
  constructor() {
    this.map = new Map();
    this.persistent = false;
  }

  async getMany(keys) {
    return keys.map((k) => this.map.get(JSON.stringify(k)));
  }

  async putMany(records) {
    for (const r of records) this.map.set(JSON.stringify(recordKey(r.model, r.path, r.size, r.mtime)), r);
  }

  async forgetRoot(root) {
    let n = 0;
    for (const [k, r] of this.map) {
      if (r.root === root) {
        this.map.delete(k);
        n += 1;
      }
    }
    return n;
  }

  async prune(model, root, keep) {
    let n = 0;
    for (const [k, r] of this.map) {
      if (r.model === model && r.root === root && !keep.has(k)) {
        this.map.delete(k);
        n += 1;
      }
    }
    return n;
  }

  async count() {
    return this.map.size;
  }
}
