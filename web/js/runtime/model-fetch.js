// Download a model file with byte progress, and check its size and sha256 when the manifest
// gives them. Errors say what went wrong in words a person can act on.

import { RpcError } from './rpc.js';

export async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

// Models are kept in the Cache API, keyed by URL + sha256 + size from the manifest, so a second
// visit does not download them again and a changed manifest never gets a stale file.
export const MODEL_CACHE = 'clip-web-models-v1';
const VERIFIED_HEADER = 'X-Clip-Web-Verified-Sha256';

function cacheKey(url, sha256, bytes) {
  const key = new URL('https://clip-web.invalid/model');
  key.searchParams.set('url', new URL(url, self.location.href).href);
  key.searchParams.set('sha256', sha256 || '');
  key.searchParams.set('bytes', bytes || '');
  return key.href;
}

async function openCache() {
  try {
    return self.caches ? await self.caches.open(MODEL_CACHE) : null;
  } catch {
    return null; // e.g. storage disabled: download every time
  }
}

// -> { buffer: Uint8Array, cached, hashed (whether its sha256 was computed now), remember() }. Call remember() once the bytes proved to
// be a working model, so a broken file is never kept.
export async function loadModelBytes(url, spec = {}, onProgress = () => {}) {
  const cache = await openCache();
  const key = cacheKey(url, spec.sha256, spec.bytes);
  if (cache) {
    const hit = await cache.match(key);
    if (hit) {
      const buffer = new Uint8Array(await hit.arrayBuffer());
      // An entry we stored after verifying it carries the digest it was verified against, so a
      // warm start does not hash hundreds of MB again; any other entry is hashed now.
      const verified = spec.sha256 && hit.headers.get(VERIFIED_HEADER) === `${spec.sha256}:${buffer.byteLength}`;
      const intact =
        (!spec.bytes || buffer.byteLength === spec.bytes) && (!spec.sha256 || verified || (await sha256Hex(buffer)) === spec.sha256);
      if (intact) {
        onProgress({ file: url.split('/').pop(), url, loaded: buffer.byteLength, total: buffer.byteLength, done: true, cached: true });
        return { buffer, cached: true, hashed: !!spec.sha256 && !verified, remember: async () => {} };
      }
      await cache.delete(key);
    }
  }
  const buffer = await downloadModel(url, spec, onProgress);
  const remember = async () => {
    if (!cache) return;
    try {
      const headers = { 'Content-Type': 'application/octet-stream' };
      if (spec.sha256) headers[VERIFIED_HEADER] = `${spec.sha256}:${buffer.byteLength}`; // downloadModel checked it
      await cache.put(key, new Response(buffer, { headers }));
    } catch {
      // Quota exceeded: the model still works, it just is not kept.
    }
  };
  return { buffer, cached: false, hashed: !!spec.sha256, remember };
}

export async function clearModelCache() {
  return self.caches ? self.caches.delete(MODEL_CACHE) : false;
}

export async function downloadModel(url, { sha256, bytes: expectedBytes } = {}, onProgress = () => {}) {
  let response;
  try {
    response = await fetch(url, { mode: 'cors', credentials: 'omit' });
  } catch (err) {
    throw new RpcError(
      `cannot download ${url}: the server is unreachable or refused a cross-origin request (CORS). (${err.message})`,
      'download_failed',
    );
  }
  if (!response.ok) {
    throw new RpcError(`cannot download ${url}: HTTP ${response.status} ${response.statusText}`, 'download_failed', {
      status: response.status,
    });
  }
  const total = Number(response.headers.get('Content-Length')) || expectedBytes || 0;
  const file = url.split('/').pop();
  const chunks = [];
  let loaded = 0;
  const reader = response.body.getReader();
  let last = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.byteLength;
      const now = performance.now();
      if (now - last > 100) {
        last = now;
        onProgress({ file, url, loaded, total, done: false });
      }
    }
  } catch (err) {
    throw new RpcError(`download of ${url} was interrupted after ${loaded} bytes: ${err.message}`, 'download_interrupted');
  }
  onProgress({ file, url, loaded, total, done: true });
  if ((total && loaded !== total) || (expectedBytes && loaded !== expectedBytes)) {
    throw new RpcError(
      `download of ${url} is incomplete: got ${loaded} bytes, expected ${expectedBytes || total}`,
      'download_interrupted',
    );
  }
  const buffer = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    buffer.set(chunk, offset);
    offset += chunk.byteLength;
  }
  if (sha256) {
    const actual = await sha256Hex(buffer);
    if (actual !== sha256) {
      throw new RpcError(`${file} does not match its manifest: sha256 ${actual}, expected ${sha256}`, 'hash_mismatch');
    }
  }
  return buffer;
}
