// Download a model file with byte progress, and check its size and sha256 when the manifest
// gives them. Errors say what went wrong in words a person can act on.

import { RpcError } from './rpc.js';

export async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest('SHA-256', buffer);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
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
