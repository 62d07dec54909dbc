// What the result grid shows, as typed arrays: the ids of the items in display order and their
// scores. A 100,000-image ranking is two arrays of 400 KB, not 100,000 objects; a row object
// ({ item, score }) is made only for the cards actually built (at(k)).

export class RankedRows {
  // items: the collection (items[id]); ids: Uint32Array in display order; scores: Float32Array
  // (same order) or null.
  constructor(items, ids, scores = null) {
    this.items = items;
    this.ids = ids;
    this.scores = scores;
  }

  get length() {
    return this.ids.length;
  }

  at(k) {
    if (k < 0) k += this.ids.length;
    if (k < 0 || k >= this.ids.length) return undefined;
    const item = this.items[this.ids[k]];
    return this.scores ? { item, score: this.scores[k] } : { item };
  }

  map(fn) {
    const out = new Array(this.ids.length);
    for (let k = 0; k < this.ids.length; k++) out[k] = fn(this.at(k), k);
    return out;
  }

  // keep(id, score) -> a new RankedRows of the rows kept, in the same order.
  filter(keep) {
    const ids = new Uint32Array(this.ids.length);
    const scores = this.scores ? new Float32Array(this.ids.length) : null;
    let m = 0;
    for (let k = 0; k < this.ids.length; k++) {
      const s = this.scores ? this.scores[k] : undefined;
      if (!keep(this.ids[k], s)) continue;
      ids[m] = this.ids[k];
      if (scores) scores[m] = s;
      m += 1;
    }
    return new RankedRows(this.items, ids.slice(0, m), scores ? scores.slice(0, m) : null);
  }

  // [lo, hi] of the scores, or null when there are none.
  range() {
    if (!this.scores || !this.scores.length) return null;
    let lo = Infinity;
    let hi = -Infinity;
    for (let k = 0; k < this.scores.length; k++) {
      const s = this.scores[k];
      if (s < lo) lo = s;
      if (s > hi) hi = s;
    }
    return [lo, hi];
  }
}
