// clip-web's service worker: the pages keep working when the server cannot be reached.
//
// The server fills in BUILD (server/offline.py): this version's name and the URLs a page needs to
// start (pages, modules, the JSON answers, Pyodide, the wheels, the stdlib, onnxruntime-web).
// They are saved once, at install, under a cache named after the version; a new version installs
// beside it and deletes it only once its own copy is complete, so a page never mixes two versions.
//
// Online, requests go to the network as if there were no service worker (the browser's HTTP cache
// and the server's revalidation still apply): a new version is used at once. Only when the network
// fails does a page get the saved copy, and the page is told (a 'clip-web-sw' message). Files the
// server calls immutable (versioned names: Pyodide's and onnxruntime-web's wasm) come from the
// saved copy first.
// Model files are left alone: the pages keep their own verified copies (runtime/model-fetch.js).
// Range requests, other origins and other methods are never touched.

const BUILD = null;

if (!BUILD) throw new Error('sw.js must be served by clip-web, which fills in its build (server/offline.py)');

const CACHE_PREFIX = 'clip-web-app-';
const CACHE = CACHE_PREFIX + BUILD.version;
// Runtime files a page may fetch beyond the saved list (WebGPU's onnxruntime build): kept when
// fetched, as their names change with their versions.
const ASSETS_PATH = '/assets/';
const MESSAGE_TYPE = 'clip-web-sw';

const urlOf = (path) => new URL(path, self.location.origin).href;
const saved = new Set(BUILD.files.map(urlOf));
const immutable = new Set(BUILD.immutable.map(urlOf));

self.addEventListener('install', (event) => {
  // A new version takes over as soon as its copy is complete, not when every tab of the old one
  // has closed: online, pages already come from the network, so nothing is mixed.
  self.skipWaiting();
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      try {
        // The HTTP cache's current copies serve most of these: the page has just fetched them.
        await cache.addAll(BUILD.files);
      } catch (err) {
        // Incomplete: the previous version (if any) stays in charge, and the next visit tries again.
        await caches.delete(CACHE);
        throw err;
      }
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const old = (await caches.keys()).filter((name) => name.startsWith(CACHE_PREFIX) && name !== CACHE);
      await Promise.all(old.map((name) => caches.delete(name)));
      // No clients.claim(): Firefox ESR 153's claim of a cross-origin isolated page with workers
      // never settles, and a worker left "activating" holds every fetch of the pages it controls
      // (a model file's download then failed with a NetworkError; not awaiting the claim left the
      // page's own downloads waiting). A first visit's page is controlled from its next load on,
      // which is when offline use begins anyway; pages of an older version switch to this one by
      // skipWaiting alone.
      const previous = old.map((name) => name.slice(CACHE_PREFIX.length));
      for (const client of await self.clients.matchAll({ type: 'window', includeUncontrolled: true })) {
        client.postMessage({ type: MESSAGE_TYPE, event: 'activated', version: BUILD.version, previous });
      }
    })(),
  );
});

self.addEventListener('message', (event) => {
  if (event.data?.type !== MESSAGE_TYPE) return;
  // Asked again by a page that sees this version still waiting (ui/offline.js): Chromium gives up
  // a skipWaiting whose activation found the old worker busy, and leaves this one parked until the
  // old one stops (5 minutes later in our runs). Each call tries the activation again.
  if (event.data.event === 'skipWaiting') return void self.skipWaiting();
  if (event.data.event !== 'status') return;
  event.waitUntil(
    (async () => {
      // caches.open would create the cache: an old worker still answering after the new one deleted
      // its copy must not bring an empty one back.
      const have = new Set((await caches.has(CACHE)) ? (await (await caches.open(CACHE)).keys()).map((r) => r.url) : []);
      const missing = [...saved].filter((url) => !have.has(url));
      event.source?.postMessage({ type: MESSAGE_TYPE, event: 'status', version: BUILD.version, saved: missing.length === 0, missing: missing.length });
    })(),
  );
});

// The saved entry a request would use: pages by path alone (their query strings are settings).
function savedKey(request, url) {
  if (request.mode === 'navigate') return url.origin + url.pathname;
  return url.search ? null : url.href;
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || request.headers.has('range')) return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const key = savedKey(request, url);
  const listed = key !== null && saved.has(key);
  const asset = key !== null && url.pathname.startsWith(ASSETS_PATH);
  if (!listed && !asset) return; // models, benchmarks, anything else: the browser's own way
  event.respondWith(immutable.has(key) ? savedFirst(event, request, key) : networkFirst(event, request, key, listed));
});

// A versioned file (Pyodide's wasm, onnxruntime-web's): the saved copy is the same bytes.
async function savedFirst(event, request, key) {
  return (await caches.match(key, { cacheName: CACHE, ignoreVary: true })) || networkFirst(event, request, key, true);
}

async function networkFirst(event, request, key, listed) {
  let response;
  try {
    response = await fetch(request);
  } catch (err) {
    const cached = await caches.match(key, { cacheName: CACHE, ignoreVary: true });
    if (!cached) throw err;
    tellOffline(event.clientId);
    return cached;
  }
  if (!listed && response.status === 200 && response.type === 'basic') event.waitUntil(keep(key, response.clone()));
  return response;
}

async function keep(key, response) {
  if (!(await caches.has(CACHE))) return; // a newer version took over meanwhile
  const cache = await caches.open(CACHE);
  if (!(await cache.match(key, { ignoreVary: true }))) await cache.put(key, response);
}

// Told by the page's own requests (its modules, /api/runtime), not by the navigation: the page that
// a navigation creates is not a client yet, and waiting for it would keep this worker busy, which
// holds back the next version's activation.
function tellOffline(clientId) {
  if (!clientId) return;
  self.clients.get(clientId).then((client) => client?.postMessage({ type: MESSAGE_TYPE, event: 'offline', version: BUILD.version }), () => {});
}
