// The text demo: lines of text -> tokens (strings and ids) -> one embedding per line, and the
// cosine similarity matrix between lines.

import { setupPage, formatVector, l2norm, npyBytes, download, setState } from '../ui/page-controls.js';
import { cosine } from '../clip.js';

const $ = (sel) => document.querySelector(sel);
const SOT = 49406;
const EOT = 49407;

let clip = null;
let last = null; // { texts, embeddings }

// The special ids of the model's tokenizer: OpenAI's BPE (start and end of text, zero padding) or
// a SentencePiece family's (end-of-text and padding ids from its manifest, no start token).
function specialIds(manifest) {
  const spec = manifest.tokenizer;
  if (spec?.kind === 'sentencepiece') return { sot: null, eot: spec.eos_id, pad: spec.pad_id, eotText: '</s>' };
  return { sot: SOT, eot: EOT, pad: 0, eotText: '<|endoftext|>' };
}

function usedLength(ids, special) {
  const eot = ids.indexOf(special.eot);
  return eot >= 0 ? eot + 1 : ids.length;
}

function tokenChips(ids, tokens, special) {
  const box = document.createElement('div');
  box.className = 'tokens';
  const used = usedLength(ids, special);
  const start = special.sot === null ? [] : ['<|startoftext|>'];
  const pieces = [...start, ...tokens.slice(0, Math.max(0, used - start.length - 1)), special.eotText];
  for (let i = 0; i < used; i++) {
    const chip = document.createElement('span');
    chip.className = `token${ids[i] === special.sot || ids[i] === special.eot ? ' special' : ''}`;
    chip.textContent = pieces[i] ?? '?';
    const id = document.createElement('small');
    id.textContent = String(ids[i]);
    chip.append(id);
    box.append(chip);
  }
  if (used < ids.length) {
    const pad = document.createElement('span');
    pad.className = 'token pad';
    pad.textContent = `${special.pad} × ${ids.length - used} (padding)`;
    box.append(pad);
  }
  return box;
}

function renderMatrix(texts, embeddings) {
  const table = $('#similarity');
  const head = document.createElement('tr');
  head.append(document.createElement('th'));
  texts.forEach((_, j) => {
    const th = document.createElement('th');
    th.textContent = `#${j + 1}`;
    head.append(th);
  });
  const rows = texts.map((t, i) => {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.textContent = `#${i + 1}`;
    th.title = t;
    tr.append(th);
    embeddings.forEach((e, j) => {
      const td = document.createElement('td');
      const c = cosine(embeddings[i], e);
      td.textContent = c.toFixed(4);
      td.dataset.cosine = String(c);
      td.style.background = `rgba(59, 91, 219, ${Math.max(0, c) * 0.35})`;
      tr.append(td);
    });
    return tr;
  });
  table.replaceChildren(head, ...rows);
  $('#similarity-section').hidden = texts.length < 2;
}

async function embedAll() {
  if (!clip) return;
  $('#text-error').textContent = '';
  const texts = $('#texts').value.split('\n').map((t) => t.trim()).filter((t) => t.length > 0);
  if (texts.length === 0) {
    $('#text-error').textContent = 'Type some text first: one line per embedding.';
    return;
  }
  document.body.dataset.busy = 'true';
  try {
    const result = await clip.embedText(texts, { details: true });
    const embeddings = result.embeddings;
    const tokenLists = await Promise.all(texts.map((t) => clip.runtime.tokenStrings(t, clip.manifest)));
    const [n, ctx] = result.inputIds.dims;
    const special = specialIds(clip.manifest);
    const results = $('#results');
    results.replaceChildren(
      ...texts.map((text, i) => {
        const section = document.createElement('article');
        section.className = 'text-result';
        section.dataset.index = String(i);
        const h = document.createElement('h3');
        h.textContent = `#${i + 1} ${text}`;
        const ids = Array.from(result.inputIds.data.slice(i * ctx, (i + 1) * ctx));
        section.dataset.ids = JSON.stringify(ids);
        const idsLine = document.createElement('p');
        idsLine.className = 'muted';
        const used = usedLength(ids, special);
        idsLine.textContent = `${ctx} ids: [${ids.slice(0, used).join(', ')}${used < ctx ? `, ${special.pad} × ${ctx - used}` : ''}]`;
        const emb = document.createElement('pre');
        emb.textContent = `${embeddings[i].length} values, L2 norm ${l2norm(embeddings[i]).toFixed(4)}\n${formatVector(embeddings[i], 10)}`;
        section.append(h, tokenChips(ids, tokenLists[i], special), idsLine, emb);
        return section;
      }),
    );
    renderMatrix(texts, embeddings);
    last = { texts, embeddings };
    window.lastTextEmbeddings = embeddings;
    $('#download-json').disabled = false;
    $('#download-npy').disabled = false;
    $('#timings').textContent =
      `${n} text${n === 1 ? '' : 's'} · tokenize ${result.timings.tokenize_ms.toFixed(1)} ms · ` +
      `inference ${result.timings.inference_ms.toFixed(1)} ms (one batch of ${result.modelInputDims[1]} positions)`;
    document.body.dataset.embedded = String(Number(document.body.dataset.embedded || 0) + 1);
  } catch (err) {
    console.warn(err);
    $('#text-error').textContent = err.message;
  } finally {
    delete document.body.dataset.busy;
  }
}

$('#embed').addEventListener('click', embedAll);
$('#texts').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) embedAll();
});
$('#download-json').addEventListener('click', () =>
  download(
    new Blob([JSON.stringify(last.texts.map((text, i) => ({ text, text_embeds: Array.from(last.embeddings[i]) })))], {
      type: 'application/json',
    }),
    'text_embeds.json',
  ),
);
$('#download-npy').addEventListener('click', () => download(npyBytes(last.embeddings), 'text_embeds.npy'));

setupPage({
  encoders: ['text'], // this page never embeds an image: the image encoder is never downloaded
  onLoad: async (c) => {
    clip = c;
    await embedAll();
  },
  onUnload: () => {
    clip = null;
  },
}).catch((err) => {
  console.error(err);
  setState('error');
});
