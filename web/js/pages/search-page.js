// The search page: open a folder, index it (search/image-index.js), then search it by text, by example
// or sort it into labels (search/query.js), with the results in a lazy thumbnail grid
// (search/result-grid.js). Images never leave the page: files are read here and handed to the workers.
//
// Tests and scripts drive it through window.search (see the bottom of this file).

import { setupPage, download, setState } from '../ui/page-controls.js';
import { wireDropZone } from '../ui/drop-zone.js';
import { SearchIndex } from '../search/image-index.js';
import { ResultGrid } from '../search/result-grid.js';
import { entriesFromFiles, entriesFromDirectoryHandle, entriesFromDataTransfer } from '../search/folder-files.js';
import { splitPrompts, combineQuery, unit, LOGIT_SCALE } from '../search/query.js';
import { RankedRows } from '../search/ranked-rows.js';

const $ = (sel) => document.querySelector(sel);
const params = new URLSearchParams(location.search);
const positiveInt = (v, fallback) => Math.max(1, Number.parseInt(v ?? '', 10) || fallback);

// ?batch= and ?queue= let the benchmark try other pipeline shapes; the defaults are what it chose.
const index = new SearchIndex({ queueSize: positiveInt(params.get('queue'), 4), maxBatch: positiveInt(params.get('batch'), 4) });

const view = {
  query: null, // { texts, negatives, example, q, ranking: { ids, scores } (typed, best first) }
  labels: null, // { names, embeds, zs: { label, prob, order } (typed, by id; from the search worker) }
  labelFilter: -1,
  minScore: null,
  rows: [],
};

let clipReady = deferred();
let packOpened = false;
let lightboxRow = null;
let runStarted = 0;
let lastRunMs = 0;

function deferred() {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, resolve };
}

const grid = new ResultGrid($('#grid'), $('#grid-sentinel'), {
  onOpen: (row) => openLightbox(row),
  onMore: (item) => moreLike(item).catch(showError),
});

function showError(err) {
  if (err) console.warn(err);
  $('#search-error').textContent = err ? String(err.message ?? err) : '';
}

// ------------------------------------------------------------------------------------------------
// Opening folders
// ------------------------------------------------------------------------------------------------

async function openEntries(entries, name) {
  showError(null);
  clearView();
  return index.open(entries, { name });
}

async function openFolder() {
  if (!window.showDirectoryPicker) {
    $('#folder-input').click(); // browsers without the File System Access API
    return;
  }
  let handle;
  try {
    handle = await window.showDirectoryPicker({ id: 'clip-web-search', mode: 'read' });
  } catch (err) {
    if (err.name !== 'AbortError') showError(err);
    return;
  }
  $('#index-status').textContent = 'Listing the folder…';
  $('#collection').hidden = false;
  const entries = await entriesFromDirectoryHandle(handle, (n) => {
    $('#index-status').textContent = `Listing the folder… ${n} files`;
  });
  await openEntries(entries, handle.name);
}

function wireInputs() {
  $('#open-folder').addEventListener('click', () => openFolder().catch(showError));
  $('#drop-zone').addEventListener('keydown', (e) => {
    if (e.target === e.currentTarget && (e.key === 'Enter' || e.key === ' ')) {
      e.preventDefault();
      openFolder().catch(showError);
    }
  });
  $('#import-input').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    e.target.value = '';
    if (!file) return;
    try {
      clearView();
      await index.importIndex(file);
    } catch (err) {
      showError(err);
    }
  });
  // The whole page takes drops: folders (webkitGetAsEntry) and loose files.
  wireDropZone($('#drop-zone'), {
    input: [$('#folder-input'), $('#files-input')],
    dragTarget: document,
    onFiles: (files) => {
      const entries = entriesFromFiles(files);
      if (entries.length) openEntries(entries).catch(showError);
    },
    // Reads the items synchronously, walks folders after.
    onDataTransfer: (dt) =>
      entriesFromDataTransfer(dt)
        .then((entries) => (entries.length ? openEntries(entries) : showError(new Error('Nothing to index in what was dropped.'))))
        .catch(showError),
    onNothing: () => showError(new Error('Nothing to index in what was dropped.')),
  });
  $('#pack-form').addEventListener('submit', (e) => {
    e.preventDefault(); // the pack's URL stays on the page
    loadPack($('#pack-url').value).catch(showError);
  });
  $('#cancel-index').addEventListener('click', () => index.cancel());
  $('#resume-index').addEventListener('click', () => index.resume());
  $('#export-index').addEventListener('click', async () => {
    try {
      download(await index.exportIndex(), `${(index.name || 'images').replace(/[^\w.-]+/g, '_')}.clip-index.json`);
    } catch (err) {
      showError(err);
    }
  });
  $('#forget').addEventListener('click', () => forget().catch(showError));

  $('#query-form').addEventListener('submit', (e) => {
    e.preventDefault(); // the query stays on the page
    queryFromUi().catch(showError);
  });
  $('#prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      queryFromUi().catch(showError);
    }
  });
  $('#clear-query').addEventListener('click', () => {
    $('#prompt').value = '';
    $('#negative').value = '';
    view.query = null;
    view.minScore = null;
    renderExample();
    render();
  });
  $('#example-clear').addEventListener('click', () => {
    const texts = $('#prompt').value;
    view.query = null;
    renderExample();
    if (splitPrompts(texts).length) queryFromUi().catch(showError);
    else render();
  });
  $('#labels-form').addEventListener('submit', (e) => {
    e.preventDefault(); // the query stays on the page
    labelsFromUi().catch(showError);
  });
  $('#clear-labels').addEventListener('click', () => {
    $('#labels').value = '';
    view.labels = null;
    view.labelFilter = -1;
    renderLabelFilter();
    render();
  });
  $('#min-score').addEventListener('input', (e) => {
    view.minScore = Number(e.target.value);
    scheduleRender();
  });
  $('#lightbox-close').addEventListener('click', () => $('#lightbox').close());
  $('#lightbox').addEventListener('close', () => {
    const img = $('#lightbox-image');
    if (img.src) URL.revokeObjectURL(img.src);
    img.removeAttribute('src');
    lightboxRow = null;
  });
  $('#lightbox').addEventListener('click', (e) => {
    if (e.target === e.currentTarget) e.currentTarget.close(); // a click on the backdrop
  });
  $('#lightbox-more').addEventListener('click', () => {
    const item = lightboxRow?.item;
    $('#lightbox').close();
    if (item) moreLike(item).catch(showError);
  });
}

// A published index of someone else's images (same-origin URL, the page's CSP): searched as is.
// A pack that cannot be read leaves the collection on show as it was.
async function loadPack(url) {
  const href = String(url ?? '').trim();
  if (!href) throw new Error('Give the URL of a pack (an index file, e.g. packs/holiday/pack.clip-index.json).');
  await clipReady.promise;
  showError(null);
  $('#pack-url').value = href;
  const stats = await index.importPack(href);
  clearView();
  render();
  return stats;
}

async function forget() {
  clearView();
  await index.forget();
  $('#prompt').value = '';
  $('#negative').value = '';
}

function clearView() {
  view.query = null;
  view.labelFilter = -1;
  view.minScore = null;
  if (view.labels) view.labels.zs = null;
  renderExample();
}

// ------------------------------------------------------------------------------------------------
// Queries
// ------------------------------------------------------------------------------------------------

function findItem({ exampleId, examplePath }) {
  if (exampleId !== undefined && exampleId !== null) return index.items.find((i) => i.id === Number(exampleId)) ?? null;
  if (examplePath) return index.items.find((i) => i.path === examplePath) ?? null;
  return null;
}

// { text, negative, exampleId | examplePath } -> the query, with its ranking ({ ids, scores }).
async function runQuery(spec = {}) {
  await clipReady.promise;
  showError(null);
  const texts = splitPrompts(spec.text);
  const negatives = splitPrompts(spec.negative);
  const example = findItem(spec);
  if ((spec.exampleId ?? spec.examplePath) != null && example?.status !== 'done') {
    throw new Error('that image is not in the index (yet)');
  }
  $('#prompt').value = texts.join('\n');
  $('#negative').value = negatives.join('; ');
  if (!texts.length && !negatives.length && !example) {
    view.query = null;
    renderExample();
    render();
    return null;
  }
  const embeds = await index.embedTexts([...texts, ...negatives]); // one model call
  // The example's own raw embedding (from the cache), as the query math has always used.
  const exampleEmbedding = example ? await index.embeddingOf(example) : null;
  const positives = [...embeds.slice(0, texts.length), ...(exampleEmbedding ? [exampleEmbedding] : [])];
  const q = combineQuery(positives, embeds.slice(texts.length));
  const query = { texts, negatives, example, q, ranking: { ids: new Uint32Array(0), scores: new Float32Array(0) } };
  view.query = query;
  view.minScore = null;
  renderExample();
  await updateRanking();
  if (view.query === query) render();
  return query;
}

function rankingList(query, limit = Infinity) {
  if (!query) return [];
  const { ids, scores } = query.ranking;
  return Array.from(ids.subarray(0, Math.min(ids.length, limit)), (id, k) => ({ id, path: index.items[id].path, score: scores[k] }));
}

// The ranking is computed when the query or the indexed images change, not on every render
// (the min-score slider re-renders on every move).
async function updateRanking() {
  const query = view.query;
  if (!query) return;
  const ranking = await index.rank(query.q); // in the search worker
  if (view.query === query) query.ranking = ranking;
}

function queryFromUi() {
  return runQuery({ text: $('#prompt').value, negative: $('#negative').value, exampleId: view.query?.example?.id });
}

function moreLike(item) {
  window.scrollTo({ top: $('#query-panel').offsetTop - 8, behavior: 'smooth' });
  return runQuery({ exampleId: item.id }).then(rankingList);
}

function renderExample() {
  const example = view.query?.example;
  const box = $('#example');
  const thumb = $('#example-thumb');
  if (thumb.src) URL.revokeObjectURL(thumb.src);
  thumb.removeAttribute('src');
  box.hidden = !example;
  if (!example) return;
  $('#example-name').textContent = example.path.split('/').pop();
  if (example.file) thumb.src = URL.createObjectURL(example.file);
  else if (example.thumbnail) thumb.src = example.thumbnail;
}

// labels (array or one per line) -> [{ id, path, label, prob }], the best label of every image.
async function runLabels(labels) {
  await clipReady.promise;
  showError(null);
  const names = [...new Set((Array.isArray(labels) ? labels : String(labels ?? '').split('\n')).map((l) => String(l).trim()).filter(Boolean))];
  $('#labels').value = names.join('\n');
  if (!names.length) {
    view.labels = null;
    view.labelFilter = -1;
    renderLabelFilter();
    render();
    return [];
  }
  const embeds = await index.embedTexts(names);
  const state = { names, embeds, zs: null };
  view.labels = state;
  view.labelFilter = -1;
  view.minScore = null;
  await updateZeroShot();
  if (view.labels === state) render();
  return state;
}

function labelList(state) {
  if (!state) return [];
  return index.items
    .filter((i) => zeroShotOf(state, i))
    .map((i) => ({ id: i.id, path: i.path, label: state.names[state.zs.label[i.id]], prob: state.zs.prob[i.id] }));
}

// An item's { label, prob }, or null when the last zero-shot sort did not include it.
function zeroShotOf(labels, item) {
  const zs = labels?.zs;
  if (!zs || item.id >= zs.prob.length || !(zs.prob[item.id] > 0)) return null;
  return { label: zs.label[item.id], prob: zs.prob[item.id] };
}

function labelsFromUi() {
  return runLabels($('#labels').value);
}

// Zero-shot over every embedded image, in the search worker (labels x 512 x 100,000 images is
// half a billion multiply-adds: never on the main thread).
async function updateZeroShot() {
  const labels = view.labels;
  if (!labels) return;
  // The model's scoring (SigLIP's sigmoid, CLIP's softmax at 100); manifests without one are CLIP.
  const zs = await index.zeroShot(labels.embeds.map(unit), index.clip?.manifest.scoring ?? LOGIT_SCALE);
  if (view.labels !== labels) return;
  labels.zs = zs;
  renderLabelFilter();
}

function renderLabelFilter() {
  const box = $('#label-filter');
  if (!view.labels) {
    box.replaceChildren();
    return;
  }
  const zs = view.labels.zs;
  const counts = view.labels.names.map((_, j) => zs?.perLabel[j] ?? 0); // counted by the search worker
  const total = zs ? zs.order.length : 0;
  const chip = (text, count, value) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'chip';
    b.dataset.label = value < 0 ? '' : view.labels.names[value];
    b.setAttribute('aria-pressed', String(view.labelFilter === value));
    b.append(text, Object.assign(document.createElement('small'), { textContent: String(count) }));
    b.addEventListener('click', () => {
      view.labelFilter = value;
      view.minScore = null;
      renderLabelFilter();
      render();
    });
    return b;
  };
  box.replaceChildren(chip('All', total, -1), ...view.labels.names.map((n, j) => chip(n, counts[j], j)));
}

const pct = (p) => `${(100 * p).toFixed(p >= 0.995 || p < 0.1 ? 1 : 0)}%`;

// Rows are typed arrays of ids and scores (RankedRows): the row objects and their texts are made
// by describe() for the cards on show only (formatting 10,000 numbers nobody sees is a visible pause).
function computeRows() {
  const labels = view.labels;
  const zs = labels?.zs;
  let rows;
  if (view.query) {
    rows = new RankedRows(index.items, view.query.ranking.ids, view.query.ranking.scores);
  } else if (zs) {
    // Sorted into labels (by the worker): label order, the most confident first within each.
    rows = new RankedRows(index.items, zs.order, zs.orderProb);
  } else {
    const ids = new Uint32Array(index.items.length);
    let n = 0;
    for (const i of index.items) if (i.status === 'done') ids[n++] = i.id;
    rows = new RankedRows(index.items, ids.subarray(0, n));
  }
  if (zs && view.labelFilter >= 0) {
    rows = rows.filter((id) => id < zs.prob.length && zs.prob[id] > 0 && zs.label[id] === view.labelFilter);
  }
  return rows;
}

function describe(row) {
  const out = {};
  const labels = view.labels;
  if (row.score !== undefined) out.scoreText = view.query ? row.score.toFixed(3) : pct(row.score);
  const z = zeroShotOf(labels, row.item);
  if (z) out.label = view.query ? `${labels.names[z.label]} · ${pct(z.prob)}` : labels.names[z.label];
  return out;
}

// The slider spans the scores on show, so it is useful for cosines (often 0.15..0.35 on trained
// CLIP) and for label probabilities alike.
function applyMinScore(rows) {
  const slider = $('#min-score');
  const range = rows.range();
  if (!range) {
    slider.disabled = true;
    $('#min-score-value').textContent = '—';
    return rows;
  }
  const [lo, hi] = range;
  slider.disabled = false;
  slider.min = String(Math.floor(lo * 1000) / 1000);
  slider.max = String(Math.ceil(hi * 1000) / 1000);
  const min = view.minScore ?? Number(slider.min);
  slider.value = String(min);
  $('#min-score-value').textContent = view.labels && !view.query ? `≥ ${pct(min)}` : `≥ ${min.toFixed(3)}`;
  return view.minScore === null ? rows : rows.filter((_, score) => score >= view.minScore);
}

function render() {
  renderPending = false;
  const all = computeRows();
  const rows = applyMinScore(all);
  view.rows = rows;
  grid.show(rows, describe);
  let total = 0; // (a loop, not a filter: no 100,000-entry array for a count)
  for (const i of index.items) if (i.status === 'done') total += 1;
  const what = view.query ? 'matching ' : '';
  $('#result-count').textContent = index.items.length
    ? `Showing ${rows.length.toLocaleString()} of ${total.toLocaleString()} ${what}image${total === 1 ? '' : 's'}`
    : '';
  const empty = $('#empty-state');
  empty.hidden = rows.length > 0;
  if (!index.items.length) empty.textContent = 'Open a folder to start: the page indexes it once, then every search is instant.';
  else if (!total) empty.textContent = index.state === 'indexing' ? 'Indexing… results appear as images are embedded.' : 'No image in this folder could be read.';
  else empty.textContent = 'No image passes the filters: lower the minimum score or choose another label.';
  document.body.dataset.results = String(rows.length);
}

let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(render);
}

// While indexing, results (and labels) catch up at most once a second: re-sorting on every
// batch would rebuild the grid under the person's scroll.
let refreshTimer = null;
function scheduleRefresh() {
  if (refreshTimer) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    await updateZeroShot();
    await updateRanking();
    scheduleRender();
  }, 1000);
}

// ------------------------------------------------------------------------------------------------
// Progress and the collection bar
// ------------------------------------------------------------------------------------------------

function formatDuration(s) {
  if (s < 1) return 'under a second';
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

let progressPending = false;
function scheduleProgress() {
  if (progressPending) return;
  progressPending = true;
  requestAnimationFrame(renderProgress);
}

function renderProgress() {
  progressPending = false;
  const p = index.progress();
  const s = index.stats(p);
  const has = p.total > 0 || s.skipped.length > 0;
  $('#collection').hidden = !has && index.state === 'empty';
  $('#drop-zone').classList.toggle('compact', has);
  $('#collection-name').textContent = index.name || 'Files';
  const chips = [`${p.total.toLocaleString()} image${p.total === 1 ? '' : 's'}`];
  if (s.cached) chips.push(`${s.cached.toLocaleString()} from cache`);
  if (s.skipped.length) chips.push(`${s.skipped.length} skipped`);
  $('#collection-counts').replaceChildren(...chips.map((c) => Object.assign(document.createElement('span'), { className: 'chip static', textContent: c })));
  const bar = $('#index-progress');
  bar.max = Math.max(1, p.total);
  bar.value = p.done;
  const status = $('#index-status');
  const indexing = index.state === 'indexing';
  if (indexing) {
    const rate = p.rate > 0 ? ` · ${p.rate.toFixed(p.rate < 10 ? 1 : 0)} images/s` : '';
    const eta = p.eta !== null ? ` · about ${formatDuration(p.eta)} left` : '';
    status.textContent = `${p.done.toLocaleString()} / ${p.total.toLocaleString()} images${rate}${eta}`;
  } else if (index.state === 'cancelled') {
    status.textContent = `Paused at ${p.done.toLocaleString()} / ${p.total.toLocaleString()}: resume to finish.`;
  } else if (index.state === 'waiting') {
    status.textContent = 'Waiting for the model…';
  } else if (index.state === 'done') {
    const fresh = p.total - p.cached - p.failed;
    const took = lastRunMs && fresh > 0 ? ` in ${formatDuration(lastRunMs / 1000)}` : '';
    status.textContent = `All ${p.total.toLocaleString()} images indexed${fresh > 0 ? `, ${fresh.toLocaleString()} embedded now${took}` : ''}${p.cached ? `, ${p.cached.toLocaleString()} from this browser's cache` : ''}.`;
  } else status.textContent = '';
  $('#indexing').classList.toggle('finished', index.state === 'done');
  $('#cancel-index').hidden = !indexing;
  $('#resume-index').hidden = index.state !== 'cancelled';
  $('#export-index').disabled = s.indexed === 0;
  if (indexing) document.body.dataset.indexing = 'true';
  else delete document.body.dataset.indexing;
  const skipped = $('#skipped');
  skipped.hidden = s.skipped.length === 0;
  $('#skipped-summary').textContent = `${s.skipped.length} file${s.skipped.length === 1 ? '' : 's'} skipped`;
  if (skipped.open || $('#skipped-list').childElementCount !== s.skipped.length) {
    $('#skipped-list').replaceChildren(
      ...s.skipped.slice(0, 500).map((k) => {
        const li = document.createElement('li');
        const path = Object.assign(document.createElement('code'), { textContent: k.path });
        li.append(path, ` — ${k.reason}`);
        return li;
      }),
    );
  }
}

index.addEventListener('progress', () => {
  if (index.state === 'indexing' && !runStarted) runStarted = performance.now();
  if (index.state !== 'indexing' && runStarted) {
    lastRunMs = performance.now() - runStarted;
    runStarted = 0;
  }
  scheduleProgress();
  if (index.state === 'indexing') scheduleRefresh();
});
index.addEventListener('open', () => {
  lastRunMs = 0;
  scheduleProgress();
  render();
});
index.addEventListener('done', () => {
  scheduleProgress();
  updateZeroShot()
    .then(updateRanking)
    .then(() => render());
});
index.addEventListener('error', (e) => showError(new Error(e.detail.message)));

// ------------------------------------------------------------------------------------------------
// Lightbox
// ------------------------------------------------------------------------------------------------

function openLightbox(row) {
  const { item } = row;
  lightboxRow = row;
  const img = $('#lightbox-image');
  if (img.src) URL.revokeObjectURL(img.src);
  if (item.file) img.src = URL.createObjectURL(item.file);
  else if (item.thumbnail) img.src = item.thumbnail;
  else img.removeAttribute('src');
  const parts = [item.path];
  const { scoreText, label } = describe(row);
  if (scoreText) parts.push(view.labels && !view.query ? `label confidence ${scoreText}` : `score ${scoreText}`);
  if (label) parts.push(label);
  $('#lightbox-caption').textContent = parts.join(' · ');
  $('#lightbox').showModal();
}

// ------------------------------------------------------------------------------------------------
// Start
// ------------------------------------------------------------------------------------------------

wireInputs();
render();
renderProgress();

setupPage({
  onLoad: async (clip) => {
    await index.attach(clip);
    clipReady.resolve(clip);
    // ?pack=URL: a link that opens someone's published pack (once, on the first model).
    if (params.get('pack') && !packOpened) {
      packOpened = true;
      loadPack(params.get('pack')).catch(showError);
    }
    // A new model: prompts and labels are embedded again by it.
    const pending = [];
    if (view.query) pending.push(runQuery({ text: view.query.texts, negative: view.query.negatives }));
    if (view.labels) pending.push(runLabels(view.labels.names));
    await Promise.all(pending).catch(showError);
  },
  onUnload: () => {
    clipReady = deferred();
    index.detach();
  },
}).catch((err) => {
  console.error(err);
  setState('error');
});

// The page's API for tests and scripts. Every method waits for the model.
window.search = {
  index,
  async indexFiles(files) {
    await clipReady.promise;
    await openEntries(entriesFromFiles(files));
    return index.stats();
  },
  query: (spec) => runQuery(spec).then(rankingList),
  // The same, summarised (the count and the first `top`): what scripts timing 100,000 images ask
  // for, since handing 100,000 objects to a script is itself a long task.
  rank: (spec, top = 10) => runQuery(spec).then((q) => ({ count: q ? q.ranking.ids.length : 0, top: rankingList(q, top) })),
  zeroShot: (labels) => runLabels(labels).then(labelList),
  sort: (labels) => runLabels(labels).then((state) => ({ count: state?.zs?.order.length ?? 0 })),
  filterLabel(label) {
    view.labelFilter = label === null || label === undefined ? -1 : view.labels?.names.indexOf(label) ?? -1;
    view.minScore = null;
    renderLabelFilter();
    render();
    return view.rows.map((r) => r.item.path);
  },
  setMinScore(value) {
    view.minScore = value === null ? null : Number(value);
    render();
    return view.rows.length;
  },
  shown: () => view.rows.map((r) => ({ id: r.item.id, path: r.item.path, score: r.score })),
  stats: () => ({ ...index.stats(), shown: view.rows.length, thumbnailUrls: grid.liveUrls }),
  exportIndex: () => index.exportIndex(),
  async importIndex(source) {
    clearView();
    return index.importIndex(source);
  },
  importPack: (url) => loadPack(url),
  cancel: () => index.cancel().then(() => index.stats()),
  resume: async () => {
    await clipReady.promise;
    await index.resume();
    return index.stats();
  },
  forget: () => forget().then(() => index.stats()),
  idle: () => index.task.then(() => index.stats()),
  on(name, fn) {
    index.addEventListener(name, (e) => fn(e.detail));
  },
};
