// Turning what a person gives the search page (a picked folder, an <input webkitdirectory>, a drop,
// or File objects from a script) into one sorted list of { path, size, lastModified, file }.
// Only names and metadata are touched here: file bytes are read later, one file at a time, by
// the indexer (a 10,000-photo folder is not loaded into memory).

export const IMAGE_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp', 'gif', 'bmp'];

export function extensionOf(path) {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(dot + 1).toLowerCase() : '';
}

export function isImagePath(path) {
  return IMAGE_EXTENSIONS.includes(extensionOf(path));
}

// Dotfiles (.DS_Store, ._IMG_1.jpg from macOS) are metadata, not photos: skipped quietly.
function hidden(path) {
  return path.split('/').some((part) => part.startsWith('.'));
}

function entry(file, path) {
  return { path, size: file.size, lastModified: file.lastModified, file };
}

// -> { images: [entry], skipped: [{ path, reason }] }, images sorted by path.
export function classify(entries) {
  const images = [];
  const skipped = [];
  for (const e of entries) {
    if (hidden(e.path)) continue;
    if (isImagePath(e.path)) images.push(e);
    else {
      const ext = extensionOf(e.path);
      skipped.push({ path: e.path, reason: ext ? `not an image (.${ext})` : 'not an image (no extension)' });
    }
  }
  const byPath = (a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  images.sort(byPath);
  skipped.sort(byPath);
  return { images, skipped };
}

// File objects from <input webkitdirectory> (webkitRelativePath), from a script (a `path`
// property), or { file, path } pairs.
export function entriesFromFiles(files) {
  return Array.from(files, (f) => {
    if (f && f.file instanceof Blob) return entry(f.file, String(f.path || f.file.name));
    const path = f.path || f.webkitRelativePath || f.name;
    return entry(f, String(path).replace(/^\/+/, ''));
  });
}

// File System Access API: a directory handle, walked recursively. getFile() gives a lazy File
// (metadata now, bytes on demand), which is what the cache key needs.
export async function entriesFromDirectoryHandle(dir, onCount = () => {}) {
  const out = [];
  async function walk(handle, prefix) {
    for await (const child of handle.values()) {
      const path = `${prefix}/${child.name}`;
      if (child.kind === 'directory') await walk(child, path);
      else {
        try {
          out.push(entry(await child.getFile(), path));
        } catch {
          // unreadable (permissions, vanished while listing): not part of the folder
        }
        if (out.length % 200 === 0) onCount(out.length);
      }
    }
  }
  await walk(dir, dir.name);
  return out;
}

// Drag and drop: DataTransferItem.webkitGetAsEntry() gives folders as FileSystemDirectoryEntry.
// Must be called synchronously in the drop handler (the items go away after it returns). A dropped
// file is taken with getAsFile() at once: WebKit's file entry for a File that has no path on disk
// never calls back from entry.file().
export function entriesFromDataTransfer(dataTransfer) {
  const roots = [];
  for (const item of dataTransfer.items ?? []) {
    if (item.kind !== 'file') continue;
    const e = item.webkitGetAsEntry?.();
    if (e?.isDirectory) roots.push(e);
    else {
      const f = item.getAsFile();
      if (f) roots.push({ isFile: true, fullPath: e?.fullPath ?? `/${f.name}`, file: (ok) => ok(f) });
    }
  }
  return (async () => {
    const out = [];
    async function walk(e) {
      if (e.isFile) {
        const file = await new Promise((resolve) => e.file(resolve, () => resolve(null)));
        if (file) out.push(entry(file, e.fullPath.replace(/^\/+/, '')));
        return;
      }
      const reader = e.createReader();
      // readEntries returns at most 100 entries per call: read until it returns none.
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child);
      }
    }
    for (const e of roots) await walk(e);
    return out;
  })();
}

// The name a collection is shown and forgotten under: the folder, when every path shares one.
export function collectionRoot(entries) {
  let root = null;
  for (const e of entries) {
    const i = e.path.indexOf('/');
    const r = i > 0 ? e.path.slice(0, i) : '';
    if (root === null) root = r;
    else if (root !== r) return '';
  }
  return root ?? '';
}
