// A small seeded PRNG (mulberry32) and the choices the mutators make with it. Every input is a pure
// function of (target, seed): `rngFor(target, seed)` always gives the same sequence.

/** mulberry32: 32-bit state, period 2^32, good enough to pick mutations */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a string, for mixing the target name into the seed */
function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export class Rng {
  constructor(seed) {
    this.next = mulberry32(seed);
    /** what the mutators chose, for the report (a seed file, a variant) */
    this.notes = [];
  }
  note(s) {
    if (this.notes.length < 12) this.notes.push(s);
  }
  /** float in [0, 1) */
  float() {
    return this.next();
  }
  /** integer in [0, n) */
  int(n) {
    return Math.floor(this.next() * n);
  }
  /** integer in [lo, hi] */
  range(lo, hi) {
    return lo + this.int(hi - lo + 1);
  }
  chance(p) {
    return this.next() < p;
  }
  pick(arr) {
    return arr[this.int(arr.length)];
  }
  /** picks a key of {key: weight} */
  weighted(table) {
    const entries = Object.entries(table);
    let r = this.next() * entries.reduce((a, [, w]) => a + w, 0);
    for (const [k, w] of entries) if ((r -= w) < 0) return k;
    return entries[entries.length - 1][0];
  }
  /** small counts are likelier: 1 + floor of an exponential-ish draw, at most max */
  count(max, mean = 2) {
    return Math.min(max, 1 + Math.floor(-Math.log(1 - this.next()) * (mean - 1)));
  }
  bytes(n) {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

export function rngFor(target, seed) {
  return new Rng((fnv1a(target) ^ Math.imul(seed >>> 0, 0x9e3779b1)) >>> 0);
}
