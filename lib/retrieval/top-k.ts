// The k best (score, position) pairs seen, in one bounded heap.
//
// Order (documented in docs/retrieval.md): a higher score first; equal scores by the lower position (the
// entry's place in the index file) first. The order is total, so the result never depends on the order in
// which candidates are offered.

export interface Hit {
  /** the entry's position in the index */
  index: number;
  score: number;
}

/** a ranks before b */
export const before = (sa: number, ia: number, sb: number, ib: number): boolean => sa > sb || (sa === sb && ia < ib);

export class TopK {
  readonly k: number;
  // a heap whose root is the worst pair kept
  readonly #scores: Float64Array;
  readonly #indices: Int32Array;
  #size = 0;

  constructor(k: number) {
    this.k = k;
    this.#scores = new Float64Array(k);
    this.#indices = new Int32Array(k);
  }

  /** the score a candidate must beat to enter once k are kept (-Infinity before) */
  get floor(): number {
    return this.#size < this.k ? -Infinity : this.#scores[0]!;
  }

  offer(score: number, index: number): void {
    const s = this.#scores;
    const ix = this.#indices;
    if (this.#size < this.k) {
      // sift up: the worse pair goes to the root
      let i = this.#size++;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!before(s[p]!, ix[p]!, score, index)) break;
        s[i] = s[p]!;
        ix[i] = ix[p]!;
        i = p;
      }
      s[i] = score;
      ix[i] = index;
      return;
    }
    if (!before(score, index, s[0]!, ix[0]!)) return;
    // replace the root, sift down
    let i = 0;
    const n = this.#size;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const worse = r < n && before(s[l]!, ix[l]!, s[r]!, ix[r]!) ? r : l;
      // the new pair stays here when it is worse than both children
      if (before(s[worse]!, ix[worse]!, score, index)) break;
      s[i] = s[worse]!;
      ix[i] = ix[worse]!;
      i = worse;
    }
    s[i] = score;
    ix[i] = index;
  }

  /** the pairs kept, best first */
  sorted(): Hit[] {
    const out: Hit[] = [];
    for (let i = 0; i < this.#size; i++) out.push({ index: this.#indices[i]!, score: this.#scores[i]! });
    return out.sort((a, b) => (before(a.score, a.index, b.score, b.index) ? -1 : 1));
  }
}
