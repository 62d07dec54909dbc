// <clip-widget>: client-side CLIP for any site, with one script tag and one element.
//
//   <script type="module" src="https://CLIP-WEB-HOST/widget.js"></script>
//   <clip-widget mode="image|text|match" model="PRESET" backend="wasm|webgpu|webgl"></clip-widget>
//
// Everything (Pyodide, onnxruntime-web, models) loads from the server this script came from; images
// never leave the visitor's browser. All widgets on a page share one runtime (one Python worker,
// one onnxruntime worker) and one session per model.
//
// widget/ owns <clip-widget>; /widget.js re-exports it at its public URL.
// May import: ui/, clip.js and runtime/ (lower layers). Never pages/ or search/.

import { createClip } from '../clip.js';
import { wireDropZone } from '../ui/drop-zone.js';

const MODES = ['image', 'text', 'match'];
const BACKENDS = ['wasm', 'webgpu', 'webgl'];
const DEFAULT_LABELS = 'a photo of a cat\na photo of a dog\na diagram';

const STYLE = `
:host {
  --clip-widget-bg: #ffffff;
  --clip-widget-fg: #1d1d24;
  --clip-widget-muted: #5d5d6b;
  --clip-widget-accent: #3b5bdb;
  --clip-widget-accent-soft: #dbe4ff;
  --clip-widget-border: #dcdce4;
  --clip-widget-error: #c92a2a;
  --clip-widget-radius: 10px;
  --clip-widget-font: system-ui, -apple-system, "Segoe UI", sans-serif;
  display: block;
  max-width: 100%;
  min-width: 0;
  font-family: var(--clip-widget-font);
  color: var(--clip-widget-fg);
}
:host([theme="dark"]) {
  --clip-widget-bg: #1f2128;
  --clip-widget-fg: #eceef4;
  --clip-widget-muted: #a3a7b5;
  --clip-widget-accent: #91a7ff;
  --clip-widget-accent-soft: #364fc7;
  --clip-widget-border: #3a3d48;
  --clip-widget-error: #ff8787;
}
.box { background: var(--clip-widget-bg); border: 1px solid var(--clip-widget-border);
  border-radius: var(--clip-widget-radius); padding: 0.75rem; box-sizing: border-box; font-size: 0.92rem; }
.title { font-weight: 600; margin: 0 0 0.5rem; }
.status { color: var(--clip-widget-muted); font-size: 0.82rem; margin: 0.4rem 0 0; min-height: 1.1em; }
.status.error { color: var(--clip-widget-error); }
.drop { display: block; border: 2px dashed var(--clip-widget-border); border-radius: 8px; padding: 0.8rem;
  text-align: center; cursor: pointer; margin-bottom: 0.5rem; }
.drop.over { border-color: var(--clip-widget-accent); background: var(--clip-widget-accent-soft); }
.drop input { display: none; }
textarea, input[type=text] { width: 100%; box-sizing: border-box; font: inherit; color: inherit;
  background: transparent; border: 1px solid var(--clip-widget-border); border-radius: 6px; padding: 0.35rem; }
button { font: inherit; border: 1px solid var(--clip-widget-accent); color: var(--clip-widget-accent);
  background: transparent; border-radius: 6px; padding: 0.25rem 0.7rem; cursor: pointer; margin-top: 0.4rem; }
.vector { font-family: ui-monospace, monospace; font-size: 0.78rem; word-break: break-all; margin: 0.4rem 0 0; }
ol { list-style: none; padding: 0; margin: 0.5rem 0 0; }
li { position: relative; margin: 0.25rem 0; border-radius: 4px; background: var(--clip-widget-accent-soft); overflow: hidden; }
li .bar { position: absolute; inset: 0 auto 0 0; background: var(--clip-widget-accent); opacity: 0.35; }
li span.label { position: relative; display: block; padding: 0.15rem 0.45rem; font-size: 0.85rem; }
`;

// The CSS as a constructed stylesheet, one for every widget on the page: a Content-Security-Policy's
// style-src (ours, or a host site's that allows no inline styles) governs <style> elements, not
// constructed sheets. A browser without them gets a <style> element.
let sheet = null;
function styleFor(root) {
  if ('adoptedStyleSheets' in root && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
    }
    root.adoptedStyleSheets = [sheet];
    return [];
  }
  return [el('style', { text: STYLE })];
}

function escapeText(node, text) {
  node.textContent = text;
  return node;
}

function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function l2(v) {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

export class ClipWidget extends HTMLElement {
  static observedAttributes = ['mode', 'model', 'backend', 'server', 'theme', 'labels'];

  constructor() {
    super();
    this.attachShadow({ mode: 'open' });
    this.client = null;
    this.generation = 0;
    this._ready = null;
    this.rendered = null;
  }

  connectedCallback() {
    this.render();
    this.reload();
  }

  disconnectedCallback() {
    this.client?.dispose();
    this.client = null;
  }

  attributeChangedCallback(name, oldValue, newValue) {
    if (!this.isConnected || oldValue === newValue) return;
    if (name === 'mode' || name === 'labels') this.render();
    if (name === 'model' || name === 'backend' || name === 'server') this.reload();
  }

  // Resolves to the element once its model is loaded; rejects with the reason (also sent as clip-error).
  get ready() {
    return this._ready;
  }

  get mode() {
    return this.getAttribute('mode') || 'image';
  }

  get base() {
    const server = this.getAttribute('server');
    return server ? new URL(server.endsWith('/') ? server : `${server}/`, location.href).href : new URL('../../', import.meta.url).href;
  }

  reload() {
    const mine = ++this.generation;
    const previous = this.client;
    this.client = null;
    this.setStatus('Loading CLIP…');
    const backend = this.getAttribute('backend') || 'wasm';
    this._ready = (async () => {
      if (!MODES.includes(this.mode)) throw new Error(`unknown mode "${this.mode}": use image, text or match`);
      if (!BACKENDS.includes(backend)) throw new Error(`unknown backend "${backend}": use wasm, webgpu or webgl`);
      const encoders = { image: ['image'], text: ['text'], match: ['image', 'text'] }[this.mode];
      const client = await createClip({ model: this.getAttribute('model') || null, backend, base: this.base, encoders });
      if (mine !== this.generation) {
        client.dispose();
        throw new Error('superseded by a newer setting');
      }
      previous?.dispose();
      this.client = client;
      const info = await client.info();
      this.setStatus(`Ready · ${info.model.name} · ${info.backend}${info.notices.length ? ` · ${info.notices.join(' ')}` : ''}`);
      this.dispatchEvent(new CustomEvent('clip-ready', { detail: info, bubbles: true, composed: true }));
      return this;
    })();
    this._ready.catch((err) => {
      if (mine === this.generation) this.fail(err);
    });
  }

  fail(err) {
    const message = err?.message ?? String(err);
    this.setStatus(message, true);
    this.dispatchEvent(new CustomEvent('clip-error', { detail: { message, code: err?.code ?? 'error' }, bubbles: true, composed: true }));
  }

  setStatus(text, error = false) {
    const status = this.shadowRoot.querySelector('.status');
    if (!status) return;
    status.textContent = text;
    status.classList.toggle('error', error);
  }

  async client_() {
    await this._ready;
    if (!this.client) throw new Error('the widget is not ready');
    return this.client;
  }

  // Public API ---------------------------------------------------------------------------------

  async embedImage(blob) {
    const client = await this.client_();
    const embedding = await client.embedImage(blob);
    this.dispatchEvent(
      new CustomEvent('clip-embedding', { detail: { embedding, source: 'image', name: blob?.name ?? null }, bubbles: true, composed: true }),
    );
    return embedding;
  }

  async embedText(text) {
    const client = await this.client_();
    const embedding = await client.embedText(String(text));
    this.dispatchEvent(new CustomEvent('clip-embedding', { detail: { embedding, source: 'text', text: String(text) }, bubbles: true, composed: true }));
    return embedding;
  }

  // -> [{ label, prob, cosine }] sorted by probability
  async classify(blob, labels) {
    const client = await this.client_();
    const list = labels.map((l) => String(l).trim()).filter(Boolean);
    if (list.length === 0) throw new Error('give at least one label');
    const image = await this.embedImage(blob);
    const texts = await client.embedText(list);
    const { probs, cosine } = client.similarity(image, texts);
    return list.map((label, i) => ({ label, prob: probs[i], cosine: cosine[i] })).sort((a, b) => b.prob - a.prob);
  }

  async info() {
    return (await this.client_()).info();
  }

  // UI -----------------------------------------------------------------------------------------

  render() {
    const root = this.shadowRoot;
    const mode = this.mode;
    const box = el('div', { class: 'box', part: 'box' });
    const titles = { image: 'Image → CLIP embedding', text: 'Text → CLIP embedding', match: 'Image ↔ labels (zero-shot)' };
    box.append(el('p', { class: 'title', part: 'title', text: titles[mode] ?? 'CLIP' }));
    if (mode === 'image' || mode === 'match') box.append(this.dropZone());
    if (mode === 'match') {
      const labels = el('textarea', { rows: '3', class: 'labels', 'aria-label': 'labels, one per line' });
      labels.value = this.getAttribute('labels')?.split('|').join('\n') || DEFAULT_LABELS;
      box.append(labels);
    }
    if (mode === 'text') {
      const form = el('form', {}, [el('input', { type: 'text', class: 'text', 'aria-label': 'text to embed', placeholder: 'a photo of a cat' }), el('button', { type: 'submit', text: 'Embed' })]);
      form.addEventListener('submit', (e) => {
        e.preventDefault();
        this.run(() => this.showEmbedding(this.embedText(form.querySelector('input').value)));
      });
      box.append(form);
    }
    box.append(el('div', { class: 'output', part: 'output' }), el('p', { class: 'status', part: 'status', role: 'status' }));
    const previousStatus = root.querySelector('.status');
    root.replaceChildren(...styleFor(root), box);
    if (previousStatus) this.setStatus(previousStatus.textContent, previousStatus.classList.contains('error'));
    if (!MODES.includes(mode)) this.setStatus(`unknown mode "${mode}": use image, text or match`, true);
  }

  dropZone() {
    const input = el('input', { type: 'file', accept: 'image/*' });
    const zone = el('label', { class: 'drop', part: 'drop' }, [el('span', { text: 'Drop an image or click to choose' }), input]);
    const use = (file) => {
      if (!file) return;
      if (this.mode === 'match') this.run(() => this.showProbs(file));
      else this.run(() => this.showEmbedding(this.embedImage(file)));
    };
    wireDropZone(zone, { input, onFiles: ([file]) => use(file) });
    return zone;
  }

  // Runs a UI action; a failure shows in the widget and fires clip-error, never escapes to the host.
  async run(action) {
    try {
      await action();
    } catch (err) {
      this.fail(err);
    }
  }

  async showEmbedding(promise) {
    const embedding = await promise;
    const out = this.shadowRoot.querySelector('.output');
    out.replaceChildren(
      el('p', { class: 'vector', text: `${embedding.length} values · norm ${l2(embedding).toFixed(3)}` }),
      el('p', { class: 'vector', text: `[${Array.from(embedding.slice(0, 6), (x) => x.toFixed(3)).join(', ')}, …]` }),
    );
    this.setStatus('Embedded in your browser: nothing was uploaded.');
  }

  async showProbs(file) {
    const labels = this.shadowRoot.querySelector('.labels').value.split('\n');
    const ranked = await this.classify(file, labels);
    const out = this.shadowRoot.querySelector('.output');
    out.replaceChildren(
      el(
        'ol',
        {},
        ranked.map((r) => {
          const bar = el('span', { class: 'bar' });
          bar.style.width = `${(100 * r.prob).toFixed(1)}%`;
          return el('li', { 'data-label': r.label, 'data-prob': String(r.prob) }, [bar, escapeText(el('span', { class: 'label' }), `${r.label} · ${(100 * r.prob).toFixed(1)}%`)]);
        }),
      ),
    );
    this.setStatus('Classified in your browser: nothing was uploaded.');
  }
}

if (!customElements.get('clip-widget')) customElements.define('clip-widget', ClipWidget);
