// numpy's random number generators, reproduced bit for bit so that a bootstrap here draws the same
// resamples as the official Python evaluation:
//
// - MT19937 with numpy's legacy seeding (`np.random.seed(s)` / `RandomState(s)`), and the legacy
//   bounded integers (`RandomState.randint`, which `RandomState.choice(n, size)` uses): the draw is
//   masked to the smallest all-ones mask covering the range and rejected while above the range.
// - PCG64 (XSL-RR 128/64) seeded through `SeedSequence` as `np.random.default_rng(s)` does, and
//   `Generator.integers` / `Generator.choice(n, size)`: Lemire's multiply-and-reject on 32-bit draws
//   for ranges below 2^32 (PCG64 hands out the two halves of one 64-bit output, low half first).
//
// Ranges up to 2^32 values are supported (every bootstrap here draws indices into far fewer studies);
// wider ranges throw INVALID_ARGUMENT. Checked against real numpy draws in test/eval-numpy-random.test.ts.

import { invalidArgument } from '../errors.js';

const TWO32 = 4294967296;

/** where draws are written: a number[] or a typed array */
export interface Writable {
  readonly length: number;
  [i: number]: number;
}

/** the smallest 2^k - 1 that is >= x (x a uint32) */
function mask32(x: number): number {
  let m = x >>> 0;
  m |= m >>> 1;
  m |= m >>> 2;
  m |= m >>> 4;
  m |= m >>> 8;
  m |= m >>> 16;
  return m >>> 0;
}

/**
 * The two ranges both numpy samplers fill without rejection: a single value (no draw) and all 2^32 values
 * (one draw each). Returns false, writing nothing, for any other range (`rng` = high - low - 1).
 */
function fillWithoutRejection(out: Writable, low: number, rng: number, src: Uint32Source): boolean {
  if (rng === 0) {
    for (let i = 0; i < out.length; i++) out[i] = low;
    return true;
  }
  if (rng !== TWO32 - 1) return false;
  for (let i = 0; i < out.length; i++) out[i] = low + src.nextUint32();
  return true;
}

/** a source of uint32 draws */
export interface Uint32Source {
  nextUint32(): number;
}

// ---------------------------------------------------------------------------------------------
// MT19937 (numpy's legacy RandomState)

const MT_N = 624;
const MT_M = 397;

export class MT19937 implements Uint32Source {
  private readonly key = new Uint32Array(MT_N);
  private pos = MT_N;

  /** `np.random.seed(seed)` / `RandomState(seed)` for an integer seed in [0, 2^32), or an array seed (init_by_array) */
  constructor(seed: number | readonly number[]) {
    if (typeof seed === 'number') {
      if (!Number.isInteger(seed) || seed < 0 || seed >= TWO32) throw invalidArgument('an MT19937 seed', 'an integer between 0 and 2**32 - 1', seed);
      this.initGenrand(seed);
    } else {
      if (seed.length === 0 || seed.some((s) => !Number.isInteger(s) || s < 0 || s >= TWO32)) {
        throw invalidArgument('an MT19937 seed array', 'a non-empty array of integers between 0 and 2**32 - 1', seed);
      }
      this.initByArray(seed);
    }
  }

  private initGenrand(s: number): void {
    const k = this.key;
    k[0] = s >>> 0;
    for (let i = 1; i < MT_N; i++) {
      const prev = k[i - 1]!;
      k[i] = (Math.imul(1812433253, (prev ^ (prev >>> 30)) >>> 0) + i) >>> 0;
    }
    this.pos = MT_N;
  }

  private initByArray(init: readonly number[]): void {
    const k = this.key;
    this.initGenrand(19650218);
    let i = 1;
    let j = 0;
    const len = init.length;
    for (let n = Math.max(MT_N, len); n > 0; n--) {
      const prev = k[i - 1]!;
      k[i] = ((k[i]! ^ Math.imul((prev ^ (prev >>> 30)) >>> 0, 1664525)) + init[j]! + j) >>> 0;
      i++;
      j++;
      if (i >= MT_N) {
        k[0] = k[MT_N - 1]!;
        i = 1;
      }
      if (j >= len) j = 0;
    }
    for (let n = MT_N - 1; n > 0; n--) {
      const prev = k[i - 1]!;
      k[i] = ((k[i]! ^ Math.imul((prev ^ (prev >>> 30)) >>> 0, 1566083941)) - i) >>> 0;
      i++;
      if (i >= MT_N) {
        k[0] = k[MT_N - 1]!;
        i = 1;
      }
    }
    k[0] = 0x80000000;
    this.pos = MT_N;
  }

  private generate(): void {
    const k = this.key;
    let i = 0;
    for (; i < MT_N - MT_M; i++) {
      const y = (k[i]! & 0x80000000) | (k[i + 1]! & 0x7fffffff);
      k[i] = (k[i + MT_M]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0)) >>> 0;
    }
    for (; i < MT_N - 1; i++) {
      const y = (k[i]! & 0x80000000) | (k[i + 1]! & 0x7fffffff);
      k[i] = (k[i + (MT_M - MT_N)]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0)) >>> 0;
    }
    const y = (k[MT_N - 1]! & 0x80000000) | (k[0]! & 0x7fffffff);
    k[MT_N - 1] = (k[MT_M - 1]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0)) >>> 0;
    this.pos = 0;
  }

  nextUint32(): number {
    if (this.pos === MT_N) this.generate();
    let y = this.key[this.pos++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

/**
 * numpy's legacy `RandomState` API on MT19937: `randint` and `choice` draw exactly what numpy draws
 * (for int64 output, i.e. the default dtype on Linux and macOS).
 */
export class RandomState {
  readonly bitGenerator: MT19937;

  constructor(seed: number | readonly number[]) {
    this.bitGenerator = new MT19937(seed);
  }

  /** `randint(low, high, size)`: integers in [low, high) by masked rejection sampling */
  randint(low: number, high: number, size: number): number[] {
    checkSize(size);
    return this.fillRandint(new Array<number>(size), low, high);
  }

  /** `randint(low, high, out.length)` written into `out` (the draws continue the stream across calls) */
  fillRandint<T extends Writable>(out: T, low: number, high: number): T {
    const rng = checkRange(low, high, 'randint') - 1;
    const size = out.length;
    if (fillWithoutRejection(out, low, rng, this.bitGenerator)) return out;
    const mask = mask32(rng);
    for (let i = 0; i < size; i++) {
      let v: number;
      do v = (this.bitGenerator.nextUint32() & mask) >>> 0;
      while (v > rng);
      out[i] = low + v;
    }
    return out;
  }

  /** `choice(n, size)` / `choice(np.arange(n), size)` with replacement and no weights: `randint(0, n, size)` */
  choice(n: number, size: number): number[] {
    if (!Number.isInteger(n) || n <= 0) throw invalidArgument('choice: the population size', 'a positive integer', n);
    return this.randint(0, n, size);
  }
}

// ---------------------------------------------------------------------------------------------
// PCG64 + SeedSequence (numpy's default_rng)

// SeedSequence's hash constants (numpy/random/bit_generator.pyx, after O'Neill's seed_seq_fe)
const INIT_A = 0x43b0d7e5;
const MULT_A = 0x931e8875;
const INIT_B = 0x8b51f9dd;
const MULT_B = 0x58f38ded;
const MIX_MULT_L = 0xca01f9dd;
const MIX_MULT_R = 0x4973f715;
const POOL_SIZE = 4;

/** an integer entropy value as numpy's SeedSequence splits it: little-endian uint32 words (0 -> [0]) */
function entropyWords(seed: number | bigint): number[] {
  let v: bigint;
  if (typeof seed === 'bigint') v = seed;
  else {
    if (!Number.isSafeInteger(seed)) throw invalidArgument('a SeedSequence entropy', 'a non-negative safe integer or a bigint', seed);
    v = BigInt(seed);
  }
  if (v < 0n) throw invalidArgument('a SeedSequence entropy', 'non-negative', seed);
  const words: number[] = [];
  do {
    words.push(Number(v & 0xffffffffn));
    v >>= 32n;
  } while (v > 0n);
  return words;
}

/** `np.random.SeedSequence(entropy).generate_state(nWords, np.uint32)` (no spawn key) */
export function seedSequenceState(entropy: number | bigint, nWords: number): number[] {
  const ent = entropyWords(entropy);
  let hashConst = INIT_A;
  const hashmix = (value: number): number => {
    value = (value ^ hashConst) >>> 0;
    hashConst = Math.imul(hashConst, MULT_A) >>> 0;
    value = Math.imul(value, hashConst) >>> 0;
    value = (value ^ (value >>> 16)) >>> 0;
    return value;
  };
  const mix = (x: number, y: number): number => {
    let r = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
    r = (r ^ (r >>> 16)) >>> 0;
    return r;
  };
  const pool = new Array<number>(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < ent.length ? ent[i]! : 0);
  for (let src = 0; src < POOL_SIZE; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) {
      if (src !== dst) pool[dst] = mix(pool[dst]!, hashmix(pool[src]!));
    }
  }
  for (let src = POOL_SIZE; src < ent.length; src++) {
    for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst]!, hashmix(ent[src]!));
  }
  const out: number[] = [];
  let hc = INIT_B;
  for (let i = 0; i < nWords; i++) {
    let v = pool[i % POOL_SIZE]!;
    v = (v ^ hc) >>> 0;
    hc = Math.imul(hc, MULT_B) >>> 0;
    v = Math.imul(v, hc) >>> 0;
    v = (v ^ (v >>> 16)) >>> 0;
    out.push(v);
  }
  return out;
}

// 128-bit arithmetic on eight 16-bit limbs, least significant first (plain numbers: exact in doubles)
type U128 = number[];

function u128FromWords(hi64: [number, number], lo64: [number, number]): U128 {
  // each pair is [low uint32, high uint32]
  const w = [lo64[0], lo64[1], hi64[0], hi64[1]];
  const out: U128 = [];
  for (const x of w) out.push(x & 0xffff, x >>> 16);
  return out;
}

function u128MulAdd(a: U128, b: U128, c: U128): U128 {
  const acc = [0, 0, 0, 0, 0, 0, 0, 0];
  for (let i = 0; i < 8; i++) {
    const ai = a[i]!;
    if (ai === 0) continue;
    for (let j = 0; j < 8 - i; j++) acc[i + j]! += ai * b[j]!;
  }
  const out: U128 = new Array<number>(8);
  let carry = 0;
  for (let k = 0; k < 8; k++) {
    const v = acc[k]! + c[k]! + carry;
    const lo = v % 65536;
    out[k] = lo;
    carry = (v - lo) / 65536;
  }
  return out;
}

function u128Add(a: U128, b: U128): U128 {
  const out: U128 = new Array<number>(8);
  let carry = 0;
  for (let k = 0; k < 8; k++) {
    const v = a[k]! + b[k]! + carry;
    out[k] = v & 0xffff;
    carry = v >>> 16;
  }
  return out;
}

const ZERO128: U128 = [0, 0, 0, 0, 0, 0, 0, 0];
// PCG's default 128-bit multiplier 0x2360ED051FC65DA44385DF649FCCF645
const PCG_MULT: U128 = [0xf645, 0x9fcc, 0xdf64, 0x4385, 0x5da4, 0x1fc6, 0xed05, 0x2360];

export class PCG64 implements Uint32Source {
  private state: U128;
  private readonly inc: U128;
  private hasUint32 = false;
  private uinteger = 0;

  /** the bit generator of `np.random.default_rng(seed)` / `PCG64(seed)`: SeedSequence(seed) -> 4 uint64 words */
  constructor(seed: number | bigint) {
    const s = seedSequenceState(seed, 8); // 4 uint64 = 8 uint32, little-endian pairs
    const initstate = u128FromWords([s[0]!, s[1]!], [s[2]!, s[3]!]);
    const initseq = u128FromWords([s[4]!, s[5]!], [s[6]!, s[7]!]);
    // inc = (initseq << 1) | 1
    const inc: U128 = new Array<number>(8);
    let carry = 0;
    for (let k = 0; k < 8; k++) {
      const v = initseq[k]! * 2 + carry;
      inc[k] = v & 0xffff;
      carry = v >>> 16;
    }
    inc[0]! |= 1;
    this.inc = inc;
    this.state = ZERO128;
    this.step();
    this.state = u128Add(this.state, initstate);
    this.step();
  }

  private step(): void {
    this.state = u128MulAdd(this.state, PCG_MULT, this.inc);
  }

  /** the next 64-bit output as [low uint32, high uint32] (XSL-RR of the stepped state) */
  nextUint64Parts(): [number, number] {
    this.step();
    const s = this.state;
    const lo0 = (s[0]! | (s[1]! << 16)) >>> 0;
    const lo1 = (s[2]! | (s[3]! << 16)) >>> 0;
    const hi0 = (s[4]! | (s[5]! << 16)) >>> 0;
    const hi1 = (s[6]! | (s[7]! << 16)) >>> 0;
    // x = high64 ^ low64, rotated right by the top 6 bits of the state
    const x0 = (lo0 ^ hi0) >>> 0;
    const x1 = (lo1 ^ hi1) >>> 0;
    const rot = hi1 >>> 26;
    if (rot === 0) return [x0, x1];
    if (rot === 32) return [x1, x0];
    if (rot < 32) {
      return [((x0 >>> rot) | (x1 << (32 - rot))) >>> 0, ((x1 >>> rot) | (x0 << (32 - rot))) >>> 0];
    }
    const r = rot - 32;
    return [((x1 >>> r) | (x0 << (32 - r))) >>> 0, ((x0 >>> r) | (x1 << (32 - r))) >>> 0];
  }

  /** the next 64-bit output (`bit_generator.random_raw()`) */
  nextUint64(): bigint {
    const [lo, hi] = this.nextUint64Parts();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** a 32-bit draw: the low half of a fresh 64-bit output, then its high half */
  nextUint32(): number {
    if (this.hasUint32) {
      this.hasUint32 = false;
      return this.uinteger;
    }
    const [lo, hi] = this.nextUint64Parts();
    this.hasUint32 = true;
    this.uinteger = hi;
    return lo;
  }
}

/** high 32 bits and low 32 bits of the 64-bit product of two uint32 values, exactly */
function mul32x32(x: number, r: number): [number, number] {
  const lo = Math.imul(x, r) >>> 0;
  const a = (x & 0xffff) * r; // < 2^48
  const b = (x >>> 16) * r; // < 2^48
  const bLow = b % 65536;
  const hi = (b - bLow) / 65536 + Math.floor((bLow * 65536 + a) / TWO32);
  return [hi >>> 0, lo];
}

/** numpy's `Generator` API on PCG64: `integers` and `choice` draw exactly what numpy draws (int64 output) */
export class Generator {
  readonly bitGenerator: PCG64;

  constructor(seed: number | bigint) {
    this.bitGenerator = new PCG64(seed);
  }

  /** `integers(low, high, size)`: integers in [low, high) by Lemire's method on 32-bit draws */
  integers(low: number, high: number, size: number): number[] {
    checkSize(size);
    return this.fillIntegers(new Array<number>(size), low, high);
  }

  /** `integers(low, high, out.length)` written into `out` (the draws continue the stream across calls) */
  fillIntegers<T extends Writable>(out: T, low: number, high: number): T {
    const rng = checkRange(low, high, 'integers') - 1;
    const size = out.length;
    const src = this.bitGenerator;
    if (fillWithoutRejection(out, low, rng, src)) return out;
    const rngExcl = rng + 1;
    const threshold = (TWO32 - rngExcl) % rngExcl; // (UINT32_MAX - rng) % rng_excl
    for (let i = 0; i < size; i++) {
      let [hi, lo] = mul32x32(src.nextUint32(), rngExcl);
      if (lo < rngExcl) {
        while (lo < threshold) [hi, lo] = mul32x32(src.nextUint32(), rngExcl);
      }
      out[i] = low + hi;
    }
    return out;
  }

  /** `choice(n, size)` with replacement and no weights: `integers(0, n, size)` */
  choice(n: number, size: number): number[] {
    if (!Number.isInteger(n) || n <= 0) throw invalidArgument('choice: the population size', 'a positive integer', n);
    return this.integers(0, n, size);
  }
}

/** `np.random.default_rng(seed)` */
export function defaultRng(seed: number | bigint): Generator {
  return new Generator(seed);
}

function checkRange(low: number, high: number, what: string): number {
  if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || high <= low) {
    throw invalidArgument(`${what}: [low, high)`, 'a non-empty range of safe integers', [low, high]);
  }
  const n = high - low;
  if (n > TWO32) throw invalidArgument(`${what}: the range size`, 'at most 2**32', n);
  return n;
}

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw invalidArgument('size', 'a non-negative integer', size);
}
