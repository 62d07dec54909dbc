// Download a model file with byte progress, and check its size and sha256 when the manifest
// gives them. Errors say what went wrong in words a person can act on.

import { RpcError } from './rpc.js';
import { openPartial, closePartial, discardPartial } from './partial-store.js';

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

// -> { buffer: Uint8Array, cached, hashed (whether its sha256 was computed now), remember(), discard() }.
// remember() keeps a downloaded file in the model cache (before its session is made, so that the
// bytes are not needed after onnxruntime has its copy); discard() drops every stored copy of a file
// that turned out to be no working model (the cache entry remember() made, and the partial one).
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
        // Its session made, a partial copy a closed tab left behind can go: not awaited, and not
        // beside the session's creation (a Firefox full run once hung creating a cached model's
        // session while this ran at the cache hit; not shown to be the cause).
        const remember = async () => {
          discardPartial(key).catch(() => {});
        };
        return { buffer, cached: true, hashed: !!spec.sha256 && !verified, remember, discard: async () => {} };
      }
      await cache.delete(key);
    }
  }
  const buffer = await downloadModel(url, spec, onProgress);
  // remember()'s own reference, let go once stored: discard() lives as long as the session's
  // creation and shares remember's scope, which must not keep the bytes alive.
  let toKeep = buffer;
  let kept = false;
  const remember = async () => {
    const bytes = toKeep;
    toKeep = null;
    if (cache && bytes) {
      try {
        const headers = { 'Content-Type': 'application/octet-stream' };
        if (spec.sha256) headers[VERIFIED_HEADER] = `${spec.sha256}:${bytes.byteLength}`; // downloadModel checked it
        await cache.put(key, new Response(bytes, { headers }));
        kept = true;
      } catch {
        // Quota exceeded: the model still works, it just is not kept.
      }
    }
    await dropPartial(url, spec); // kept in the model cache now (or never will be)
  };
  const discard = async () => {
    if (kept) await cache.delete(key).catch(() => {});
    await dropPartial(url, spec);
  };
  return { buffer, cached: false, hashed: !!spec.sha256, remember, discard };
}

export async function clearModelCache() {
  return self.caches ? self.caches.delete(MODEL_CACHE) : false;
}

// Retries after a network error: 1, 2, 4, ... s, reset whenever bytes arrived since the last
// error (so a flaky network that keeps delivering never runs out), and given up after this many
// failures in a row without a byte.
const RETRY_DELAYS_S = [1, 2, 4, 8, 16, 30];

// Pausing (the page's Pause button) stops every download's request and holds it until resumed.
let paused = null; // { promise, resolve } while paused
const active = new Set(); // AbortControllers of the requests in flight

export function setDownloadsPaused(pause) {
  if (pause && !paused) {
    let resolve;
    const promise = new Promise((r) => (resolve = r));
    paused = { promise, resolve };
    for (const controller of active) controller.abort(new DOMException('paused', 'AbortError'));
  } else if (!pause && paused) {
    paused.resolve();
    paused = null;
  }
  return !!paused;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const megabytes = (n) => `${Math.ceil(n / 1e6)} MB`;

// Is there room for `needed` more bytes? Browsers report what this origin may still use; a model
// that cannot fit fails before a byte is fetched, with the sizes in the message.
async function checkQuota(url, needed) {
  let estimate;
  try {
    estimate = await navigator.storage?.estimate?.();
  } catch {
    return; // no estimate: try, and let a write fail if it must
  }
  if (!estimate?.quota) return;
  const free = estimate.quota - (estimate.usage || 0);
  if (needed > free) {
    throw new RpcError(
      `not enough browser storage for ${url.split('/').pop()}: it needs ${megabytes(needed)} more, and this site may use only ` +
        `${megabytes(Math.max(0, free))} more (${megabytes(estimate.usage || 0)} used of ${megabytes(estimate.quota)}). ` +
        'Free disk space, clear this site\'s stored models, or choose a smaller model.',
      'quota_exceeded',
      { needed, free },
    );
  }
}

// The browser refused to store more (QuotaExceededError, or a short write): say how much the file
// needs, and what the browser reports this site may use.
async function storageFull(url, total, stored, err) {
  let room = '';
  try {
    const e = await navigator.storage?.estimate?.();
    if (e?.quota) room = ` (the browser reports ${megabytes(e.usage || 0)} used of ${megabytes(e.quota)})`;
  } catch {
    // no estimate
  }
  return new RpcError(
    `not enough browser storage for ${url.split('/').pop()}: it needs ${megabytes(total)}, and the browser refused to store more ` +
      `after ${megabytes(stored)}${room}: ${err.message}. Free disk space, clear this site's stored models, or choose a smaller model.`,
    'quota_exceeded',
    { needed: total, stored },
  );
}

// Download one model file with HTTP Range: the bytes so far are kept (partial-store.js), so a
// dropped connection continues from the last byte after a short wait, and a reload or a new visit
// continues from the bytes stored. A server that ignores Range (200, not 206) sends the whole file
// again, and the progress says so. Once complete: size and sha256 checked, then the bytes.
export async function downloadModel(url, spec = {}, onProgress = () => {}) {
  const { sha256, bytes: expectedBytes } = spec;
  const key = cacheKey(url, sha256, expectedBytes);
  const file = url.split('/').pop();
  const partial = await openPartial(key);
  let finished = false;
  try {
    let offset = partial.size;
    // Bytes from another version of the file (another size or validator) are no use.
    if (offset && ((expectedBytes && offset > expectedBytes) || (partial.meta.url && partial.meta.url !== url))) {
      partial.truncate(0);
      offset = 0;
    }
    const resumedFrom = offset;
    let total = expectedBytes || partial.meta.total || 0;
    // Asked once per size still to come: again only when an answer changed the total or offset.
    let quotaAskedFor = null;
    const ensureRoom = async () => {
      if (!total || quotaAskedFor === total - offset) return;
      quotaAskedFor = total - offset;
      await checkQuota(url, total - offset);
    };
    await ensureRoom();
    let failures = 0;
    let rangeIgnored = false;
    let restartedFor416 = false;
    let everReceived = offset > 0; // a first request that cannot connect is an error at once (offline, CORS)
    let lastError = null;
    const started = performance.now();
    let last = 0;
    const report = (extra = {}) => {
      const seconds = (performance.now() - started) / 1000;
      const rate = seconds > 0.5 ? (offset - resumedFrom) / seconds : 0;
      onProgress({
        file, url, loaded: offset, total, done: false, resumedFrom, rangeIgnored, paused: !!paused,
        rate, etaS: rate > 0 && total ? (total - offset) / rate : null, ...extra,
      });
    };
    while (!total || offset < total) {
      if (paused) {
        report();
        await paused.promise;
      }
      const controller = new AbortController();
      active.add(controller);
      let gotBytes = false;
      try {
        const headers = {};
        if (offset > 0) {
          headers.Range = `bytes=${offset}-`;
          // Range safelisted for CORS (no preflight) only without other headers, so the validator
          // is checked on the answer instead of sent as If-Range.
        }
        let response;
        try {
          response = await fetch(url, { mode: 'cors', credentials: 'omit', headers, signal: controller.signal, cache: 'no-store' });
        } catch (err) {
          if (controller.signal.aborted) throw err;
          throw Object.assign(new Error(`the server is unreachable or refused a cross-origin request (CORS) (${err.message})`), { network: true });
        }
        if (response.status === 416 && offset > 0 && !restartedFor416) {
          // We hold more than the file has now: it changed. Start again (once).
          restartedFor416 = true;
          partial.truncate(0);
          offset = 0;
          continue;
        }
        if (!response.ok) {
          throw new RpcError(`cannot download ${url}: HTTP ${response.status} ${response.statusText}`, 'download_failed', {
            status: response.status,
          });
        }
        everReceived = true; // it answered: from here on, a lost connection is retried
        const validator = response.headers.get('ETag') || response.headers.get('Last-Modified') || null;
        let fileLength = 0;
        if (response.status === 206) {
          // A cross-origin server that does not expose Content-Range: a 206 to `bytes=N-` starts at N.
          const contentRange = response.headers.get('Content-Range');
          const range = contentRange
            ? /^bytes (\d+)-\d+\/(\d+)$/.exec(contentRange)
            : [null, String(offset), String(offset + Number(response.headers.get('Content-Length') || 0))];
          const changed = partial.meta.validator && validator && partial.meta.validator !== validator;
          if (!range || Number(range[1]) !== offset || changed) {
            // Not the bytes we asked for, or from another version of the file: start again.
            await response.body?.cancel();
            partial.truncate(0);
            offset = 0;
            await partial.setMeta({ url, total, validator: null });
            continue;
          }
          fileLength = Number(range[2]);
          total = total || fileLength;
        } else {
          if (offset > 0) rangeIgnored = true; // the whole file again: what we held is dropped
          partial.truncate(0);
          offset = 0;
          fileLength = Number(response.headers.get('Content-Length')) || 0;
          total = total || fileLength;
        }
        // The file's own length, as this answer states it: a server file shorter or longer than
        // the manifest says is an error now, not something to retry.
        if (expectedBytes && fileLength && fileLength !== expectedBytes) {
          await response.body?.cancel();
          throw new RpcError(
            `download of ${url} is incomplete: the server has ${fileLength} bytes, the manifest says ${expectedBytes}`,
            'download_interrupted',
          );
        }
        if (!partial.meta.total || partial.meta.validator !== validator) {
          await ensureRoom();
          await partial.setMeta({ url, total, validator });
        }
        const reader = response.body.getReader();
        let sinceFlush = 0;
        for (;;) {
          let chunk;
          try {
            chunk = await reader.read();
          } catch (err) {
            if (controller.signal.aborted) throw err;
            throw Object.assign(new Error(err.message), { network: true });
          }
          if (chunk.done) break;
          try {
            partial.write(chunk.value, offset);
          } catch (err) {
            await reader.cancel().catch(() => {});
            throw await storageFull(url, total, offset, err);
          }
          offset += chunk.value.byteLength;
          sinceFlush += chunk.value.byteLength;
          gotBytes = true;
          everReceived = true;
          if (sinceFlush > 8 << 20) {
            try {
              await partial.flush(); // what a reload finds: at most 8 MB behind
            } catch (err) {
              throw await storageFull(url, total, offset, err);
            }
            sinceFlush = 0;
          }
          const now = performance.now();
          if (now - last > 100) {
            last = now;
            report();
          }
        }
        try {
          await partial.flush();
        } catch (err) {
          throw await storageFull(url, total, offset, err);
        }
        if (!total) total = offset; // no length anywhere: the body's end is the file's end
        if (offset < total) throw Object.assign(new Error(`the connection closed after ${offset} of ${total} bytes`), { network: true });
      } catch (err) {
        if (err instanceof RpcError) throw err;
        if (controller.signal.aborted && paused) continue; // paused: wait at the top of the loop
        if (!err.network && !(err instanceof TypeError)) throw err;
        if (!everReceived) {
          throw new RpcError(`cannot download ${url}: ${err.message}`, 'download_failed');
        }
        lastError = err;
        failures = gotBytes ? 1 : failures + 1;
        if (failures > RETRY_DELAYS_S.length) break;
        const delay = RETRY_DELAYS_S[failures - 1];
        for (let left = delay; left > 0; left--) {
          report({ retryInS: left, error: err.message });
          await sleep(1000);
        }
      } finally {
        active.delete(controller);
      }
    }
    if (total && offset < total) {
      throw new RpcError(
        `download of ${url} was interrupted after ${offset} of ${total} bytes (${lastError?.message}); ` +
          'the bytes so far are kept: Retry (or reloading the page) continues from there',
        'download_interrupted',
        { loaded: offset, total },
      );
    }
    if (expectedBytes && offset !== expectedBytes) {
      await closePartial(key, { remove: true });
      finished = true;
      throw new RpcError(`download of ${url} is incomplete: got ${offset} bytes, expected ${expectedBytes}`, 'download_interrupted');
    }
    onProgress({ file, url, loaded: offset, total: offset, done: true, resumedFrom, rangeIgnored });
    const buffer = await partial.readAll();
    if (sha256) {
      const actual = await sha256Hex(buffer);
      if (actual !== sha256) {
        await closePartial(key, { remove: true }); // never resume from bytes that make a wrong file
        finished = true;
        throw new RpcError(`${file} does not match its manifest: sha256 ${actual}, expected ${sha256}`, 'hash_mismatch');
      }
    }
    return buffer;
  } finally {
    if (!finished) await closePartial(key);
  }
}

// The finished file is in the model cache now: its partial copy can go.
export async function dropPartial(url, spec = {}) {
  const key = cacheKey(url, spec.sha256, spec.bytes);
  await openPartial(key);
  await closePartial(key, { remove: true });
}
