// The image demo: an image in (file, drop, paste, URL), its embedding out, zero-shot labels.

import { setupPage, formatVector, l2norm, npyBytes, download, setState } from '../ui/page-controls.js';
import { wireDropZone } from '../ui/drop-zone.js';
import { fetchImage } from '../clip.js';

let clip = null;
let current = null; // { embedding, name }
let labelsTimer = null;

const $ = (sel) => document.querySelector(sel);

function showImageError(message) {
  $('#image-error').textContent = message;
}

async function drawCrop(pixelValues) {
  const rgba = await clip.cropPreview(pixelValues); // (224, 224, 4) uint8
  const [h, w] = rgba.dims;
  const canvas = $('#crop');
  canvas.width = w;
  canvas.height = h;
  canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(rgba.data.buffer), w, h), 0, 0);
}

let waiting = null; // [source, name] given while the model loads: embedded as soon as it is ready

async function embed(source, name) {
  if (!clip) {
    waiting = [source, name];
    showImageError('');
    $('#timings').textContent = `${name}: waiting for the model to finish loading, then it is embedded.`;
    document.body.dataset.waiting = 'true';
    return;
  }
  showImageError('');
  document.body.dataset.busy = 'true';
  try {
    const bytes = source instanceof Uint8Array ? source : new Uint8Array(await source.arrayBuffer());
    const result = await clip.embedImage(bytes, { details: true });
    current = { embedding: result.embedding, name };
    window.lastImageEmbedding = result.embedding;
    await drawCrop(result.pixelValues);
    $('#result').hidden = false;
    $('#embedding-dims').textContent = `${result.embedding.length} values`;
    $('#embedding-norm').textContent = l2norm(result.embedding).toFixed(4);
    $('#embedding-values').textContent = formatVector(result.embedding, 10);
    $('#timings').textContent =
      `${name} · decoded by ${result.decoder === 'browser' ? 'the browser (libjpeg-turbo)' : 'Pillow'} · ` +
      `preprocess ${result.timings.preprocess_ms.toFixed(1)} ms · inference ${result.timings.inference_ms.toFixed(1)} ms`;
    await updateLabels();
    document.body.dataset.embedded = String(Number(document.body.dataset.embedded || 0) + 1);
  } catch (err) {
    console.warn(err);
    showImageError(err.message);
    document.body.dataset.imageError = String(Number(document.body.dataset.imageError || 0) + 1);
  } finally {
    delete document.body.dataset.busy;
  }
}

async function updateLabels() {
  const list = $('#probs');
  const labels = $('#labels').value.split('\n').map((l) => l.trim()).filter(Boolean);
  if (!clip || !current || labels.length === 0) {
    list.replaceChildren();
    return;
  }
  const textEmbeds = await clip.embedText(labels);
  const { probs, cosine } = clip.similarity(current.embedding, textEmbeds);
  window.lastProbs = { labels, probs, cosine };
  const order = probs.map((p, i) => i).sort((a, b) => probs[b] - probs[a]);
  list.replaceChildren(
    ...order.map((i) => {
      const li = document.createElement('li');
      li.dataset.label = labels[i];
      li.dataset.prob = String(probs[i]);
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${(100 * probs[i]).toFixed(1)}%`;
      const text = document.createElement('span');
      text.className = 'bar-label';
      text.textContent = `${labels[i]}: ${(100 * probs[i]).toFixed(1)}% (cosine ${cosine[i].toFixed(3)})`;
      li.append(bar, text);
      return li;
    }),
  );
}

function wireInputs() {
  wireDropZone($('#drop-zone'), {
    input: $('#file'),
    pasteTarget: document,
    onFiles: ([file], how) => embed(file, how === 'paste' ? 'pasted image' : file.name),
    onNothing: () => showImageError('Nothing to use in what was dropped: drop an image file.'),
  });
  $('#url-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const url = $('#url').value.trim();
    if (!url) return;
    try {
      embed(await fetchImage(url), url);
    } catch (err) {
      showImageError(err.message);
      document.body.dataset.imageError = String(Number(document.body.dataset.imageError || 0) + 1);
    }
  });
  $('#labels').addEventListener('input', () => {
    clearTimeout(labelsTimer);
    labelsTimer = setTimeout(() => updateLabels().catch((err) => showImageError(err.message)), 250);
  });
  $('#copy-json').addEventListener('click', () => navigator.clipboard?.writeText(JSON.stringify(Array.from(current.embedding))));
  $('#download-json').addEventListener('click', () =>
    download(new Blob([JSON.stringify({ source: current.name, image_embeds: Array.from(current.embedding) })], { type: 'application/json' }), 'image_embeds.json'),
  );
  $('#download-npy').addEventListener('click', () => download(npyBytes([current.embedding]), 'image_embeds.npy'));
}

wireInputs();
document.body.dataset.inputs = 'wired'; // files are taken from here on, even while loading
setupPage({
  encoders: ['image', 'text'], // ready once the image encoder is; the labels' text encoder follows
  onLoad: async (c) => {
    clip = c;
    if (current) {
      $('#result').hidden = true; // a new model: the old embedding no longer applies
      current = null;
    }
    if (waiting) {
      const [source, name] = waiting;
      waiting = null;
      delete document.body.dataset.waiting;
      embed(source, name); // not awaited: the page is ready, the image shows when embedded
    }
  },
  onUnload: () => {
    clip = null;
  },
}).catch((err) => {
  console.error(err);
  setState('error');
});
