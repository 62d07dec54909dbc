// Offline use, seen from a page: registers clip-web's service worker (/sw.js) once the page is
// ready, and turns its messages into one status line:
//   'offline'   the server could not be reached, so this page came from the copy in this browser;
//   'saved'     this version's copy is complete: the page will open without the server;
//   'updated'   a new version replaced the saved one (the page in front of you is already the new one);
//   'saving'    the copy is being made; 'unavailable' the browser offers no service workers.
// The state is also on <body data-offline="…"> and in `offlineStatus()`, for tests and other code.
// May import: runtime/ (for the server's base URL).

import { BASE_URL } from '../runtime/runtime.js';

const MESSAGE_TYPE = 'clip-web-sw';
const status = { state: 'unregistered', version: null, previous: null, error: null };
const listeners = new Set();
let registering = null;

function set(changes) {
  Object.assign(status, changes);
  if (document.body) document.body.dataset.offline = status.state;
  for (const listener of listeners) listener({ ...status });
}

export function offlineStatus() {
  return { ...status };
}

export function onOfflineStatus(listener) {
  listeners.add(listener);
  listener({ ...status });
  return () => listeners.delete(listener);
}

export function describeOffline(s) {
  switch (s.state) {
    case 'offline':
      return `Offline: the server cannot be reached, so this page runs from the copy saved in this browser (version ${s.version}).`;
    case 'updated':
      return `clip-web was updated to version ${s.version}${s.previous ? ` (from ${s.previous})` : ''}; the new version is saved for offline use.`;
    case 'saved':
      return `Saved in this browser: this page opens without the server (version ${s.version}).`;
    case 'saving':
      return 'Saving this version in the browser for offline use…';
    case 'failed':
      return `Could not save this page for offline use: ${s.error}`;
    default:
      return '';
  }
}

// A new version that finished installing while the old worker was busy (this page's own requests
// as it loads go through it) is left waiting by Chromium: its skipWaiting found the old worker at
// work, and activation is retried only once that worker stops (5 minutes later in our runs under
// Playwright: Chromium's time limit). Seen in 3 of 14 updates on a loaded 2-core machine. So the
// page asks the waiting worker to skip waiting again, every NUDGE_MS until it takes over or
// NUDGE_TRIES run out. The new version may be found by register() or, later, by the browser's own
// check after a navigation (docs/offline.md).
const NUDGE_MS = 1000;
const NUDGE_TRIES = 120;

function nudgeWaiting(registration, tries = NUDGE_TRIES) {
  const waiting = registration.waiting;
  if (!waiting || tries <= 0) return;
  waiting.postMessage({ type: MESSAGE_TYPE, event: 'skipWaiting' });
  setTimeout(() => nudgeWaiting(registration, tries - 1), NUDGE_MS);
}

function watchNewVersions(registration) {
  const watch = (worker) =>
    worker?.addEventListener('statechange', () => {
      if (worker.state === 'installed' && registration.active) setTimeout(() => nudgeWaiting(registration), NUDGE_MS);
    });
  watch(registration.installing);
  registration.addEventListener('updatefound', () => watch(registration.installing));
  nudgeWaiting(registration);
}

function askStatus(worker) {
  worker?.postMessage({ type: MESSAGE_TYPE, event: 'status' });
}

// The version this browser last had saved: a page that finds another one says it was updated,
// whether or not it was open when the new version took over.
const VERSION_KEY = 'clip-web-offline-version';
let activated = null; // the version a new worker announced while this page was open

function remembered() {
  try {
    return localStorage.getItem(VERSION_KEY);
  } catch {
    return null; // storage disabled: no update notice, nothing else lost
  }
}

function saved(version) {
  const previous = remembered();
  try {
    localStorage.setItem(VERSION_KEY, version);
  } catch {
    // as above
  }
  if (status.state === 'updated' && status.version === version) return;
  set(previous && previous !== version ? { state: 'updated', version, previous } : { state: 'saved', version });
}

// Listening starts when this module loads: a page served from the saved copy is told so while it
// is still loading (the browser holds the message until the document has been parsed).
if (typeof navigator !== 'undefined' && navigator.serviceWorker) {
  navigator.serviceWorker.addEventListener('message', (event) => {
    const data = event.data;
    if (data?.type !== MESSAGE_TYPE) return;
    if (data.event === 'activated') activated = data.version;
    if (data.event === 'offline') {
      set({ state: 'offline', version: data.version });
    } else if (status.state === 'offline' || (data.event === 'status' && activated && data.version !== activated)) {
      // Offline: what the page runs from matters more than what a worker did since. And the
      // previous worker answering after the new one took over says nothing about now.
    } else if (data.event === 'activated' || (data.event === 'status' && data.saved)) {
      saved(data.version);
    } else if (data.event === 'status') {
      set({ state: 'saving', version: data.version });
    }
  });
  // A new version that takes over after this page asked (it installs on the visit after a release).
  navigator.serviceWorker.addEventListener('controllerchange', () => askStatus(navigator.serviceWorker.controller));
}

// Register the service worker (once per page). Called when the page is ready, so that saving the
// files never competes with the page's own first downloads: most of them then come from the
// browser's HTTP cache.
export function enableOffline() {
  if (registering) return registering;
  if (!('serviceWorker' in navigator)) {
    set({ state: 'unavailable' });
    return (registering = Promise.resolve(offlineStatus()));
  }
  registering = (async () => {
    try {
      const registration = await navigator.serviceWorker.register(new URL('sw.js', BASE_URL), { scope: BASE_URL });
      if (status.state === 'unregistered') set({ state: registration.active ? status.state : 'saving' });
      const installing = registration.installing || registration.waiting;
      installing?.addEventListener('statechange', () => {
        if (installing.state === 'redundant' && status.state === 'saving') set({ state: 'failed', error: 'the files could not all be fetched; the next visit tries again' });
      });
      watchNewVersions(registration);
      await navigator.serviceWorker.ready;
      askStatus(navigator.serviceWorker.controller || registration.active);
    } catch (err) {
      if (status.state !== 'offline') set({ state: 'failed', error: err.message });
    }
    return offlineStatus();
  })();
  return registering;
}
