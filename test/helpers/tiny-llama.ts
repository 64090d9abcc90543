// Tiny random-weight LLaMA GGUFs with the real LLaMA-2 / Vicuna vocabulary, for tests.
//
//   const path = await tinyLlamaPath('q8_0');          // cached under test/.fixtures/, made if missing
//   const gqa  = await tinyLlamaPath('f16', 'gqa');    // 2 KV heads instead of 4
//   await makeTinyLlama({ path: '/tmp/x.gguf', type: 'f32', nLayer: 3 });   // any shape, no cache
//
// CLI: node scripts/make-tiny-llama.mjs --help
//
// The files follow llama.cpp's LLaMA conventions (general.architecture "llama", tensor and key names,
// tokenizer.ggml.* keys), so llama.cpp / node-llama-cpp load them unchanged and serve as the reference.
//
// Weights: a deterministic PRNG (xoshiro128** seeded from the seed and the tensor name, Box-Muller
// normals); every tensor's values depend only on (seed, name, shape), never on the order of generation.
// Norm weights are f32 near 1; every 2-D weight is in the requested type. Types other than f32/f16 go
// through ggml's own quantizers in our native addon (lib/native.ts), so the bytes are exactly what
// llama-quantize would produce for the same float data.
//
// Scales (DEFAULT_SCALES below; the notes there and test/helpers/FIXTURES.md say what was measured):
// chosen so that greedy continuations do not collapse into one repeated token and the top-1 / top-2
// logit margin is usually far above the numeric noise between SIMD paths. Usually, not always: compare
// greedy tokens with llama.cpp only up to the first low-margin step (confidentPrefixLength in llamacpp.ts).

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { threadId } from 'node:worker_threads';
import { GgufWriter, type GgufKv } from '../../lib/gguf/writer.js';
import { GgmlType, GgufValueType, LLAMA_FTYPE, f32ArrayToF16, ggmlTensorBytes } from '../../lib/gguf/types.js';

export type TinyLlamaType = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'q4_k';
export type TinyLlamaVariant = 'base' | 'gqa';

export const TINY_LLAMA_TYPES: readonly TinyLlamaType[] = ['f32', 'f16', 'q8_0', 'q4_0', 'q4_k'];

/** standard deviations of the random weights (normal, mean 0) */
export interface TinyLlamaScales {
  /** token_embd entries */
  embd: number;
  /** attn_q / attn_k entries (sets how peaked attention is) */
  qk: number;
  /** attn_v / attn_output entries */
  vo: number;
  /** ffn_gate / ffn_up entries */
  ffnIn: number;
  /** ffn_down entries */
  ffnOut: number;
  /** output (lm head) entries */
  output: number;
  /** norm weights are 1 + norm * N(0, 1) */
  norm: number;
  /**
   * spread of the lm-head row norms: row t is scaled by exp(outputRowSpread * N(0, 1)). A heavier tail
   * of logits makes the winner stand out further from the runner-up.
   */
  outputRowSpread: number;
}

/*
 * Why these values (n_embd 256, 2 layers, LLaMA-2 vocabulary; measured with node-llama-cpp on 6 prompts x
 * 64 greedy tokens, details in test/helpers/FIXTURES.md):
 * - 1/sqrt(fan_in)-style matrices (0.0625 = 1/16 for 256 inputs, 0.044 for 512) keep activations at RMS ~1,
 *   so the MLP works in SiLU's non-linear range; attn_q/attn_k at 0.2 make attention clearly peaked,
 *   which makes the state depend on the context.
 * - small token embeddings (0.15, against ~1 added by each block) also favour the context over the current
 *   token: when the next token is mostly a function of the current one, greedy decoding falls into short
 *   cycles or one repeated token.
 * - lm head 0.25 (logit standard deviation ~5) with log-normal row norms exp(0.5 N(0,1)): with iid Gaussian
 *   rows the winner's margin over the runner-up is only ~0.16 sigma at the median and 1% of the steps
 *   are under 0.01 sigma; the row spread gives a heavier upper tail (median margin ~6 logits, ~1% of
 *   steps under 0.1). More spread (0.7) makes a few high-norm tokens win every step (64 repeats).
 */
export const DEFAULT_SCALES: TinyLlamaScales = {
  embd: 0.15,
  qk: 0.2,
  vo: 0.0625,
  ffnIn: 0.0625,
  ffnOut: 0.044,
  output: 0.25,
  norm: 0.1,
  outputRowSpread: 0.5,
};

export interface TinyLlamaTensorSpec {
  name: string;
  /** ggml order: shape[0] = row length */
  shape: number[];
  /** 'norm': f32, values near 1; 'matrix': the requested type */
  kind: 'norm' | 'matrix';
  /** standard deviation of the values (matrix) */
  std: number;
  /** ggml type to store it in; defaults to f32 for norms and the model type for matrices */
  type?: number;
  /** output rows get a log-normal norm spread (lm head) */
  rowSpread?: number;
}

export interface TinyLlamaOptions {
  path: string;
  type: TinyLlamaType;
  nEmbd?: number;
  nFf?: number;
  nLayer?: number;
  nHead?: number;
  nHeadKv?: number;
  nCtx?: number;
  ropeFreqBase?: number;
  rmsEps?: number;
  seed?: number;
  name?: string;
  scales?: Partial<TinyLlamaScales>;
  /** edit the metadata before it is written (tests for malformed files) */
  transformKv?: (kvs: GgufKv[]) => GgufKv[];
  /** edit the tensor list before it is written (tests for malformed files) */
  transformTensors?: (tensors: TinyLlamaTensorSpec[]) => TinyLlamaTensorSpec[];
}

export const TINY_LLAMA_DEFAULTS = {
  nEmbd: 256,
  nFf: 512,
  nLayer: 2,
  nHead: 4,
  nHeadKv: 4,
  nCtx: 512,
  ropeFreqBase: 10000,
  rmsEps: 1e-5,
  seed: 20250101,
} as const;

/** shape options of the cached variants */
export const TINY_LLAMA_VARIANTS: Record<TinyLlamaVariant, Partial<TinyLlamaOptions>> = {
  base: {},
  gqa: { nHeadKv: 2 },
};

/** bump when the generator's output changes, so stale cached fixtures are not reused */
export const TINY_LLAMA_GENERATOR_VERSION = 2;

// ------------------------------------------------------------------------------------------------
// vocabulary

export interface LlamaVocab {
  tokens: string[];
  scores: Float32Array;
  tokenTypes: Int32Array;
}

let vocabCache: LlamaVocab | undefined;

/** The LLaMA-2 vocabulary (32000 pieces) from llama-tokenizer-js, with SentencePiece's scores and llama.cpp's token types. */
export async function llamaVocab(): Promise<LlamaVocab> {
  if (vocabCache) return vocabCache;
  const mod = (await import('llama-tokenizer-js')) as unknown as { default: { vocabById: string[] } };
  const tokens = [...mod.default.vocabById];
  if (tokens.length !== 32000 || tokens[0] !== '<unk>' || tokens[1] !== '<s>' || tokens[2] !== '</s>') {
    throw new Error('llama-tokenizer-js did not give the LLaMA-2 vocabulary');
  }
  const n = tokens.length;
  const scores = new Float32Array(n);
  const tokenTypes = new Int32Array(n);
  for (let id = 0; id < n; id++) {
    if (id === 0) tokenTypes[id] = 2; // UNKNOWN
    else if (id === 1 || id === 2) tokenTypes[id] = 3; // CONTROL
    else if (id >= 3 && id <= 258) tokenTypes[id] = 6; // BYTE <0xNN>
    else tokenTypes[id] = 1; // NORMAL
    // SentencePiece's own scores for LLaMA-2 (what a GGUF converted from tokenizer.model carries):
    // -(id - 259) for normal pieces, but -1e9 for the 16 pieces made only of spaces, which merge last;
    // 0 for unknown / control / byte pieces. (Scores of -id would let "▁▁" outrank real merges and
    // tokenize space runs differently from SentencePiece.)
    if (tokenTypes[id] !== 1) scores[id] = 0;
    else if (/^\u2581+$/u.test(tokens[id]!)) scores[id] = -1e9;
    else scores[id] = -(id - 259);
  }
  vocabCache = { tokens, scores, tokenTypes };
  return vocabCache;
}

// ------------------------------------------------------------------------------------------------
// deterministic random numbers

function hash32(s: string): number {
  // FNV-1a
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** xoshiro128** seeded through splitmix32 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | undefined;

  constructor(seed: number) {
    let x = seed >>> 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  static forTensor(seed: number, name: string): Rng {
    return new Rng(hash32(`${seed}:${name}`));
  }

  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return r;
  }

  /** uniform in (0, 1) */
  uniform(): number {
    return ((this.nextU32() >>> 8) + 0.5) / 16777216;
  }

  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    const u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  fillNormal(out: Float32Array, std: number, mean = 0): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = mean + std * this.normal();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

// ------------------------------------------------------------------------------------------------
// the model

function resolved(opts: TinyLlamaOptions) {
  const o = { ...TINY_LLAMA_DEFAULTS, ...stripUndefined(opts) } as Required<Omit<TinyLlamaOptions, 'transformKv' | 'transformTensors' | 'scales' | 'name'>> &
    Pick<TinyLlamaOptions, 'transformKv' | 'transformTensors' | 'name'> & { scales: TinyLlamaScales };
  o.scales = { ...DEFAULT_SCALES, ...stripUndefined(opts.scales ?? {}) };
  if (o.nEmbd % o.nHead !== 0) throw new RangeError('nEmbd must be a multiple of nHead');
  if (o.nHead % o.nHeadKv !== 0) throw new RangeError('nHead must be a multiple of nHeadKv');
  return o;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

const TYPE_IDS: Record<TinyLlamaType, number> = {
  f32: GgmlType.F32,
  f16: GgmlType.F16,
  q8_0: GgmlType.Q8_0,
  q4_0: GgmlType.Q4_0,
  q4_k: GgmlType.Q4_K,
};

const FILE_TYPES: Record<TinyLlamaType, number> = {
  f32: LLAMA_FTYPE.ALL_F32,
  f16: LLAMA_FTYPE.MOSTLY_F16,
  q8_0: LLAMA_FTYPE.MOSTLY_Q8_0,
  q4_0: LLAMA_FTYPE.MOSTLY_Q4_0,
  q4_k: LLAMA_FTYPE.MOSTLY_Q4_K_S, // every matrix is Q4_K (Q4_K_M would mix in Q6_K)
};

/** The tensor list of a tiny LLaMA (before any transformTensors). */
export function tinyLlamaTensors(opts: Omit<TinyLlamaOptions, 'path' | 'type'> & { nVocab?: number }): TinyLlamaTensorSpec[] {
  const o = resolved({ ...opts, path: '', type: 'f32' });
  const nVocab = opts.nVocab ?? 32000;
  const s = o.scales;
  const headDim = o.nEmbd / o.nHead;
  const nKv = headDim * o.nHeadKv;
  const t: TinyLlamaTensorSpec[] = [];
  const matrix = (name: string, shape: number[], std: number, rowSpread?: number): void => {
    t.push({ name, shape, kind: 'matrix', std, ...(rowSpread ? { rowSpread } : {}) });
  };
  const norm = (name: string): void => {
    t.push({ name, shape: [o.nEmbd], kind: 'norm', std: s.norm });
  };
  matrix('token_embd.weight', [o.nEmbd, nVocab], s.embd);
  for (let i = 0; i < o.nLayer; i++) {
    norm(`blk.${i}.attn_norm.weight`);
    matrix(`blk.${i}.attn_q.weight`, [o.nEmbd, o.nEmbd], s.qk);
    matrix(`blk.${i}.attn_k.weight`, [o.nEmbd, nKv], s.qk);
    matrix(`blk.${i}.attn_v.weight`, [o.nEmbd, nKv], s.vo);
    matrix(`blk.${i}.attn_output.weight`, [o.nEmbd, o.nEmbd], s.vo);
    norm(`blk.${i}.ffn_norm.weight`);
    matrix(`blk.${i}.ffn_gate.weight`, [o.nEmbd, o.nFf], s.ffnIn);
    matrix(`blk.${i}.ffn_up.weight`, [o.nEmbd, o.nFf], s.ffnIn);
    matrix(`blk.${i}.ffn_down.weight`, [o.nFf, o.nEmbd], s.ffnOut);
  }
  norm('output_norm.weight');
  matrix('output.weight', [o.nEmbd, nVocab], s.output, s.outputRowSpread);
  return t;
}

/** The metadata of a tiny LLaMA (before any transformKv). */
export async function tinyLlamaKvs(opts: TinyLlamaOptions): Promise<GgufKv[]> {
  const o = resolved(opts);
  const vocab = await llamaVocab();
  const U32 = GgufValueType.UINT32;
  const kv: GgufKv[] = [
    { key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' },
    { key: 'general.name', type: GgufValueType.STRING, value: o.name ?? `tiny-llama-${o.type}` },
    { key: 'general.file_type', type: U32, value: FILE_TYPES[o.type] },
    { key: 'llama.context_length', type: U32, value: o.nCtx },
    { key: 'llama.embedding_length', type: U32, value: o.nEmbd },
    { key: 'llama.block_count', type: U32, value: o.nLayer },
    { key: 'llama.feed_forward_length', type: U32, value: o.nFf },
    { key: 'llama.attention.head_count', type: U32, value: o.nHead },
    { key: 'llama.attention.head_count_kv', type: U32, value: o.nHeadKv },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: GgufValueType.FLOAT32, value: o.rmsEps },
    { key: 'llama.rope.freq_base', type: GgufValueType.FLOAT32, value: o.ropeFreqBase },
    { key: 'llama.rope.dimension_count', type: U32, value: o.nEmbd / o.nHead },
    { key: 'llama.vocab_size', type: U32, value: vocab.tokens.length },
    { key: 'tokenizer.ggml.model', type: GgufValueType.STRING, value: 'llama' },
    { key: 'tokenizer.ggml.tokens', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, values: vocab.tokens } },
    { key: 'tokenizer.ggml.scores', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.FLOAT32, values: vocab.scores } },
    { key: 'tokenizer.ggml.token_type', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.INT32, values: vocab.tokenTypes } },
    { key: 'tokenizer.ggml.bos_token_id', type: U32, value: 1 },
    { key: 'tokenizer.ggml.eos_token_id', type: U32, value: 2 },
    { key: 'tokenizer.ggml.unknown_token_id', type: U32, value: 0 },
    { key: 'tokenizer.ggml.add_bos_token', type: GgufValueType.BOOL, value: true },
    { key: 'tokenizer.ggml.add_eos_token', type: GgufValueType.BOOL, value: false },
  ];
  return kv;
}

/** Float values of one tensor (deterministic in seed, name and shape). */
export function tinyLlamaTensorValues(spec: TinyLlamaTensorSpec, seed: number): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const rng = Rng.forTensor(seed, `${spec.name}:${spec.shape.join('x')}`);
  const data = new Float32Array(n);
  if (spec.kind === 'norm') return rng.fillNormal(data, spec.std, 1);
  rng.fillNormal(data, spec.std);
  if (spec.rowSpread) {
    const rowLen = spec.shape[0]!;
    const rowRng = Rng.forTensor(seed, `${spec.name}:rows`);
    for (let r = 0; r < n / rowLen; r++) {
      const f = Math.exp(spec.rowSpread * rowRng.normal());
      for (let i = r * rowLen; i < (r + 1) * rowLen; i++) data[i]! *= f;
    }
  }
  return data;
}

interface NativeQuant {
  quantize(type: number, src: Float32Array, nRows: number, nPerRow: number): Buffer;
}

let nativeCache: Promise<NativeQuant> | undefined;
/** our addon's ggml quantizers (imported lazily: f32/f16 fixtures do not need the addon) */
async function nativeQuantizer(): Promise<NativeQuant> {
  nativeCache ??= import('../../lib/native.js').then((m) => m.native());
  nativeCache.catch(() => (nativeCache = undefined));
  return nativeCache;
}

/** Encodes float values as `type` (f32/f16 here, everything else through ggml's quantizers). */
export async function encodeTensor(type: number, values: Float32Array, shape: readonly number[]): Promise<Uint8Array> {
  if (type === GgmlType.F32) return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  if (type === GgmlType.F16) {
    const h = f32ArrayToF16(values);
    return new Uint8Array(h.buffer, h.byteOffset, h.byteLength);
  }
  const nPerRow = shape[0]!;
  const nRows = values.length / nPerRow;
  const q = await nativeQuantizer();
  const out = q.quantize(type, values, nRows, nPerRow);
  const expected = ggmlTensorBytes(type, shape);
  if (BigInt(out.byteLength) !== expected) {
    throw new Error(`native.quantize gave ${out.byteLength} bytes for type ${type} [${shape}], expected ${expected}`);
  }
  return out;
}

/** Writes a tiny LLaMA GGUF to opts.path (overwriting it). */
export async function makeTinyLlama(opts: TinyLlamaOptions): Promise<void> {
  const o = resolved(opts);
  const vocab = await llamaVocab();
  let kvs = await tinyLlamaKvs(opts);
  let tensors = tinyLlamaTensors({ ...opts, nVocab: vocab.tokens.length });
  if (o.transformKv) kvs = o.transformKv(kvs);
  if (o.transformTensors) tensors = o.transformTensors(tensors);

  const modelType = TYPE_IDS[o.type];
  const typeOf = (t: TinyLlamaTensorSpec): number => t.type ?? (t.kind === 'norm' ? GgmlType.F32 : modelType);

  const w = new GgufWriter(o.path);
  try {
    for (const kv of kvs) w.addKv(kv.key, kv.type, kv.value);
    for (const t of tensors) w.addTensorInfo(t.name, typeOf(t), t.shape);
    await w.writeHeader();
    // one tensor in memory at a time
    for (const t of tensors) {
      const values = tinyLlamaTensorValues(t, o.seed);
      await w.writeTensorData(t.name, await encodeTensor(typeOf(t), values, t.shape));
    }
    await w.close();
  } catch (e) {
    await w.abort();
    await rm(o.path, { force: true });
    throw e;
  }
}

// ------------------------------------------------------------------------------------------------
// cached fixtures

const here = path.dirname(fileURLToPath(import.meta.url));
/** test/.fixtures (git-ignored) */
export const FIXTURES_DIR = path.resolve(here, '..', '.fixtures');

const inFlight = new Map<string, Promise<string>>();

/** the cache file name of a variant/type (changes whenever its content would) */
export function tinyLlamaFileName(type: TinyLlamaType, variant: TinyLlamaVariant = 'base'): string {
  const key = JSON.stringify({ v: TINY_LLAMA_GENERATOR_VERSION, d: TINY_LLAMA_DEFAULTS, s: DEFAULT_SCALES, o: TINY_LLAMA_VARIANTS[variant] });
  return `tiny-llama-${variant}-${type}-${hash32(key).toString(16).padStart(8, '0')}.gguf`;
}

/**
 * Path of a cached tiny LLaMA fixture, creating it if missing. Safe when several processes ask at
 * once: each writes a temporary file and renames it into place (the last rename wins; all are equal).
 */
export async function tinyLlamaPath(type: TinyLlamaType, variant: TinyLlamaVariant = 'base'): Promise<string> {
  if (!TINY_LLAMA_TYPES.includes(type)) throw new RangeError(`unknown tiny llama type '${type}'`);
  if (!(variant in TINY_LLAMA_VARIANTS)) throw new RangeError(`unknown tiny llama variant '${variant}'`);
  const file = path.join(FIXTURES_DIR, tinyLlamaFileName(type, variant));
  if (existsSync(file)) return file;
  let p = inFlight.get(file);
  if (!p) {
    p = (async () => {
      mkdirSync(FIXTURES_DIR, { recursive: true });
      const tmp = `${file}.${process.pid}.${threadId}.${randomBytes(4).toString('hex')}.tmp`;
      try {
        await makeTinyLlama({ ...TINY_LLAMA_VARIANTS[variant], path: tmp, type, name: `tiny-llama-${variant}-${type}` });
        await rename(tmp, file);
      } finally {
        await rm(tmp, { force: true });
      }
      return file;
    })();
    inFlight.set(file, p);
    p.catch(() => inFlight.delete(file));
  }
  return p;
}

/** hyperparameters of a cached variant, as the engine should report them */
export function tinyLlamaHparams(variant: TinyLlamaVariant = 'base') {
  const o = { ...TINY_LLAMA_DEFAULTS, ...TINY_LLAMA_VARIANTS[variant] };
  return {
    nVocab: 32000,
    nCtxTrain: o.nCtx,
    nEmbd: o.nEmbd,
    nLayer: o.nLayer,
    nHead: o.nHead,
    nHeadKv: o.nHeadKv,
    nFf: o.nFf,
    nRot: o.nEmbd / o.nHead,
    rmsNormEps: o.rmsEps,
    ropeFreqBase: o.ropeFreqBase,
  };
}
