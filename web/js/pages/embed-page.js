// /embed: the widget in an iframe, for sites that cannot run third-party modules.
//
// postMessage API (every message is an object with a `type`):
//   host -> iframe: {type: 'clip:embedText', id, text}
//                   {type: 'clip:embedImage', id, image: Blob | ArrayBuffer}
//                   {type: 'clip:classify', id, image, labels: string[]}
//   iframe -> host: {type: 'clip:ready', info}, {type: 'clip:result', id, result},
//                   {type: 'clip:error', id?, message}, {type: 'clip:embedding', embedding, source}
// Origins are checked both ways: the iframe only listens to, and only posts to, the origin named
// in ?origin= (and only its parent window). The host must check event.origin is this server's.

import '../widget/clip-widget.js';

const query = new URLSearchParams(location.search);
const widget = document.querySelector('clip-widget');
for (const name of ['mode', 'model', 'backend', 'theme', 'labels']) {
  if (query.has(name)) widget.setAttribute(name, query.get(name));
}

function parseOrigin(value) {
  try {
    const url = new URL(value);
    return url.origin === value.replace(/\/$/, '') ? url.origin : null;
  } catch {
    return null;
  }
}

const parentOrigin = query.get('origin') ? parseOrigin(query.get('origin')) : null;
const note = document.querySelector('#embed-note');
if (window.parent !== window && !parentOrigin) {
  note.hidden = false;
  note.textContent = 'postMessage API off: add ?origin=https://your.site to the iframe URL to use it.';
}

function post(message) {
  if (parentOrigin && window.parent !== window) window.parent.postMessage(message, parentOrigin);
}

let ignored = 0;
window.addEventListener('message', async (event) => {
  if (!parentOrigin || event.origin !== parentOrigin || event.source !== window.parent) {
    ignored += 1;
    document.body.dataset.ignoredMessages = String(ignored);
    return;
  }
  const { type, id } = event.data ?? {};
  try {
    let result;
    if (type === 'clip:embedText') result = await widget.embedText(event.data.text);
    else if (type === 'clip:embedImage') result = await widget.embedImage(new Blob([event.data.image]));
    else if (type === 'clip:classify') result = await widget.classify(new Blob([event.data.image]), event.data.labels ?? []);
    else throw new Error(`unknown message type "${type}"`);
    post({ type: 'clip:result', id, result });
  } catch (err) {
    post({ type: 'clip:error', id, message: err?.message ?? String(err) });
  }
});

widget.addEventListener('clip-ready', (e) => {
  document.body.dataset.state = 'ready';
  post({ type: 'clip:ready', info: e.detail });
});
widget.addEventListener('clip-error', (e) => {
  if (document.body.dataset.state === 'loading') document.body.dataset.state = 'error';
  post({ type: 'clip:error', message: e.detail.message });
});
widget.addEventListener('clip-embedding', (e) => post({ type: 'clip:embedding', embedding: e.detail.embedding, source: e.detail.source }));
