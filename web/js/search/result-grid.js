// The result grid: thumbnails sorted by score, built so a 10,000-image folder scrolls smoothly.
// - Cards are added a page at a time when a sentinel below the grid comes near the viewport, so
//   the DOM holds what was scrolled past, not the whole folder.
// - A thumbnail gets an object URL only while its card is near the viewport; the URL is revoked
//   (and the <img> emptied) once it scrolls away, so decoded images and blob handles do not pile up.

const PAGE = 84; // twelve rows of seven: one page of cards is well under a frame's budget to build
const NEAR = '600px 0px';

export class ResultGrid {
  constructor(container, sentinel, { onOpen = () => {}, onMore = () => {} } = {}) {
    this.container = container;
    this.sentinel = sentinel;
    this.onOpen = onOpen;
    this.onMore = onMore;
    this.rows = [];
    this.describe = () => ({});
    this.shown = 0;
    this.cards = new Map(); // item -> card on show
    this.rowOf = new WeakMap(); // card -> its row
    this.urls = new Map(); // <img> -> object URL
    this.wanted = new Set(); // <img>s near the viewport still waiting for a URL
    this.pumping = false;
    this.thumbs = new IntersectionObserver((entries) => this.onThumbs(entries), { rootMargin: NEAR });
    this.pager = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.appendPage();
    }, { rootMargin: NEAR });
    this.pager.observe(sentinel);
    container.addEventListener('click', (e) => this.onClick(e));
  }

  get liveUrls() {
    let n = 0;
    for (const url of this.urls.values()) if (url) n += 1;
    return n;
  }

  // rows: [{ item, score? }] or a RankedRows (anything with length and at(k)), already sorted and
  // filtered; describe(row) -> { scoreText?, label? }
  // for the cards actually built. Cards of items already on show are moved, not rebuilt, so a
  // refresh while indexing does not reload (and flash) their thumbnails.
  show(rows, describe = () => ({})) {
    this.describe = describe;
    const count = Math.min(rows.length, Math.max(PAGE, this.shown));
    const next = new Map();
    const ordered = [];
    for (let k = 0; k < count; k++) {
      const row = rows.at(k);
      let card = this.cards.get(row.item);
      if (card) this.fill(card, row, k);
      else card = this.card(row, k);
      next.set(row.item, card);
      ordered.push(card);
    }
    for (const [item, card] of this.cards) if (!next.has(item)) this.drop(card);
    this.cards = next;
    this.rows = rows;
    this.shown = count;
    this.container.replaceChildren(...ordered);
    this.repage();
  }

  clear() {
    this.show([]);
  }

  drop(card) {
    const img = card.querySelector('img');
    if (!img) return;
    this.thumbs.unobserve(img);
    this.wanted.delete(img);
    this.release(img);
  }

  // (A pack's thumbnail is a plain URL, recorded as null: nothing to revoke.)
  release(img) {
    const url = this.urls.get(img);
    if (url === undefined) return;
    img.removeAttribute('src');
    if (url) URL.revokeObjectURL(url);
    this.urls.delete(img);
  }

  appendPage() {
    if (this.shown >= this.rows.length) return;
    const end = Math.min(this.rows.length, this.shown + PAGE);
    const fragment = document.createDocumentFragment();
    for (let k = this.shown; k < end; k++) {
      const row = this.rows.at(k);
      const card = this.card(row, k);
      this.cards.set(row.item, card);
      fragment.append(card);
    }
    this.shown = end;
    this.container.append(fragment);
    this.repage();
  }

  // The sentinel may still be in view (tall screen, few rows per page): observing it again makes
  // the observer report it once more, which loads the next page.
  repage() {
    this.pager.unobserve(this.sentinel);
    this.pager.observe(this.sentinel);
  }

  card(row, rank) {
    const { item } = row;
    const card = document.createElement('figure');
    card.className = 'card';
    card.dataset.id = String(item.id);
    card.dataset.path = item.path;
    const thumb = document.createElement('button');
    thumb.type = 'button';
    thumb.className = 'thumb';
    thumb.title = item.path;
    thumb.setAttribute('aria-label', `Open ${item.path}`);
    if (item.file || item.thumbnail) {
      const img = document.createElement('img');
      img.alt = '';
      img.decoding = 'async';
      thumb.append(img);
      this.thumbs.observe(img);
    } else {
      // An imported index without its folder: the name stands in for the picture.
      const ph = document.createElement('span');
      ph.className = 'placeholder';
      ph.textContent = item.path.split('/').pop();
      thumb.append(ph);
    }
    // "More like this" sits over the picture (a button cannot hold another button).
    const more = document.createElement('button');
    more.type = 'button';
    more.className = 'more';
    more.textContent = 'More like this';
    const media = document.createElement('div');
    media.className = 'media';
    media.append(thumb, more);
    const caption = document.createElement('figcaption');
    caption.className = 'name';
    caption.textContent = item.path.split('/').pop();
    caption.title = item.path;
    card.append(media, caption);
    this.fill(card, row, rank);
    return card;
  }

  // The parts of a card that change with the query: rank, score, label.
  fill(card, row, rank) {
    this.rowOf.set(card, row);
    card.dataset.rank = String(rank);
    if (row.score !== undefined) card.dataset.score = String(row.score);
    else delete card.dataset.score;
    const thumb = card.querySelector('.thumb');
    thumb.querySelectorAll('.score, .label-badge').forEach((el) => el.remove());
    const { scoreText, label } = this.describe(row);
    if (scoreText) {
      const badge = document.createElement('span');
      badge.className = 'score';
      badge.textContent = scoreText;
      thumb.append(badge);
    }
    if (label) {
      const badge = document.createElement('span');
      badge.className = 'label-badge';
      badge.textContent = label;
      thumb.append(badge);
    }
  }

  // Thumbnails that came near are queued, then given URLs a few milliseconds' worth at a time:
  // createObjectURL is a synchronous call into the browser process, and a screenful of them
  // in one callback is a visible stall when the machine is busy embedding.
  onThumbs(entries) {
    for (const e of entries) {
      if (e.isIntersecting) this.wanted.add(e.target);
      else {
        this.wanted.delete(e.target);
        this.release(e.target);
      }
    }
    this.pump();
  }

  pump() {
    if (this.pumping || !this.wanted.size) return;
    this.pumping = true;
    setTimeout(() => {
      this.pumping = false;
      const until = performance.now() + 8;
      for (const img of this.wanted) {
        this.wanted.delete(img);
        const card = img.closest('.card');
        const row = card && this.rowOf.get(card);
        if (row?.item.file && !this.urls.has(img) && img.isConnected) {
          const url = URL.createObjectURL(row.item.file);
          this.urls.set(img, url);
          img.src = url;
        } else if (row?.item.thumbnail && !this.urls.has(img) && img.isConnected) {
          this.urls.set(img, null);
          img.src = row.item.thumbnail;
        }
        if (performance.now() > until) break;
      }
      this.pump();
    }, 0);
  }

  onClick(e) {
    const card = e.target.closest('.card');
    if (!card) return;
    const row = this.rowOf.get(card);
    if (!row) return;
    if (e.target.closest('.more')) this.onMore(row.item);
    else if (e.target.closest('.thumb')) this.onOpen(row);
  }
}
