// Validation of the public options. Every check runs before the engine sees a value; a bad value gives
// LlavaRadError INVALID_ARGUMENT saying what was expected and what came.

import { LlavaRadError, invalidArgument } from './errors.js';

export type Backend = 'auto' | 'cpu' | 'cuda';
export type KvCacheType = 'f16' | 'q8_0' | 'f32';

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /** path of a GGUF file (LLaMA architecture) */
  model: string;
  /** compute backend; 'auto' (default) picks CUDA when compiled in and a device is present, else the CPU */
  backend?: Backend;
  /** CPU threads for compute (1..1024); default: the number of physical cores */
  threads?: number;
  /** KV cells shared by all sequences; default min(4096, the model's training context) */
  contextSize?: number;
  /** most tokens computed in one graph (1..8192); default 512 */
  batchSize?: number;
  /** sequence slots: at most this many generate() calls run in the engine at once (1..256); default 1 */
  parallel?: number;
  /** KV cache element type; default 'f16' (llama.cpp's). 'auto': f32 for a model whose weights keep 8 bits or
   * more (f32, f16, bf16, q8_0: there an f16 cache's rounding of every key and value is enough to flip
   * near-ties), f16 for narrower quantizations */
  kvCacheType?: KvCacheType | 'auto';
  /** true: weights the CPU uses as stored are computed straight from the file mapping (pages shared with other
   * processes); false (default): every weight is copied into private memory backed by transparent huge pages,
   * which decodes faster on the CPU (docs/benchmarks.md) */
  mmap?: boolean;
  /** fused flash attention; default false (always on for a q8_0 KV cache) */
  flashAttention?: boolean;
}

export interface ResolvedLoadOptions {
  model: string;
  backend: Backend;
  threads: number | undefined;
  contextSize: number | undefined;
  batchSize: number | undefined;
  parallel: number;
  kvCacheType: KvCacheType | 'auto';
  mmap: boolean;
  flashAttention: boolean;
}

const LOAD_KEYS = ['model', 'backend', 'threads', 'contextSize', 'batchSize', 'parallel', 'kvCacheType', 'mmap', 'flashAttention'] as const;

/** Generation options of {@link LlamaModel.generate} and {@link LlamaModel.stream}. */
export interface GenerateOptions {
  /** most tokens to generate (1..contextSize, the engine's limit); default min(256, contextSize) */
  maxTokens?: number;
  /** sampling temperature (0..100); default 0 = greedy (argmax, lowest id wins ties) */
  temperature?: number;
  /** keep only the K most likely tokens before sampling; 0 or undefined = off */
  topK?: number;
  /** nucleus sampling threshold in (0, 1]; 1 or undefined = off */
  topP?: number;
  /** sampler seed (integer >= 0, or a bigint); default 0 */
  seed?: number | bigint;
  /** cancels between tokens; the call then rejects with LlavaRadError code 'ABORTED' */
  signal?: AbortSignal;
  /** called for each generated token (on the JS thread, in order) */
  onToken?: (event: TokenEvent) => void;
  /** keep going past EOS until maxTokens; default false */
  ignoreEos?: boolean;
  /**
   * return each step's logits in result.logits (n_vocab floats per generated token); default false. Refused with
   * OUT_OF_MEMORY before any work when maxTokens x n_vocab floats are more than the memory available now.
   */
  keepLogits?: boolean;
  /**
   * prepend BOS. Default for a string prompt: the model's add_bos flag (true for LLaMA);
   * default for a PromptPart[] prompt: false (parts are fed exactly as given).
   */
  addBos?: boolean;
}

/** One generated token as it arrives. */
export interface TokenEvent {
  /** the token id */
  token: number;
  /**
   * the text this token completes: the decoded increment, with bytes of an incomplete UTF-8 character held
   * back until the token that completes it (so it may be ''); special tokens give ''
   */
  text: string;
  /** 0 for the first generated token */
  index: number;
  /** this step's logits when keepLogits is set */
  logits?: Float32Array;
}

export interface ResolvedGenerateOptions {
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number | bigint;
  signal: AbortSignal | undefined;
  onToken: ((event: TokenEvent) => void) | undefined;
  ignoreEos: boolean;
  keepLogits: boolean;
  addBos: boolean | undefined;
}

const GENERATE_KEYS = ['maxTokens', 'temperature', 'topK', 'topP', 'seed', 'signal', 'onToken', 'ignoreEos', 'keepLogits', 'addBos'] as const;

export const DEFAULT_MAX_TOKENS = 256;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

function checkKeys(o: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) {
      const near = known.find((n) => n.toLowerCase() === k.toLowerCase() || n.toLowerCase().startsWith(k.toLowerCase().slice(0, 5)));
      throw new LlavaRadError('INVALID_ARGUMENT',
        `unknown option '${k}' for ${where}${near ? ` (did you mean '${near}'?)` : ''}; known options: ${known.join(', ')}`);
    }
  }
}

/** an integer in [lo, hi], or undefined when absent */
export function optInt(o: Record<string, unknown>, key: string, lo: number, hi: number): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw invalidArgument(key, `an integer between ${lo} and ${hi}`, v);
  }
  return v;
}

function optNumber(o: Record<string, unknown>, key: string, lo: number, hi: number, range: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw invalidArgument(key, range, v);
  return v;
}

function optBool(o: Record<string, unknown>, key: string): boolean | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw invalidArgument(key, 'a boolean', v);
  return v;
}

function optEnum<T extends string>(o: Record<string, unknown>, key: string, values: readonly T[]): T | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) {
    throw invalidArgument(key, `one of ${values.map((x) => `'${x}'`).join(', ')}`, v);
  }
  return v as T;
}

export function validateLoadOptions(options: unknown): ResolvedLoadOptions {
  if (!isPlainObject(options)) throw invalidArgument('loadModel options', "an object like { model: 'file.gguf' }", options);
  checkKeys(options, LOAD_KEYS, 'loadModel');
  const model = options.model;
  if (typeof model !== 'string' || model.length === 0) throw invalidArgument('model', 'the path of a GGUF file (a non-empty string)', model);
  if (model.includes('\0')) throw new LlavaRadError('INVALID_ARGUMENT', 'model must be a path without NUL characters');
  return {
    model,
    backend: optEnum(options, 'backend', ['auto', 'cpu', 'cuda'] as const) ?? 'auto',
    threads: optInt(options, 'threads', 1, 1024),
    contextSize: optInt(options, 'contextSize', 1, 1 << 20),
    batchSize: optInt(options, 'batchSize', 1, 8192),
    parallel: optInt(options, 'parallel', 1, 256) ?? 1,
    kvCacheType: optEnum(options, 'kvCacheType', ['f16', 'q8_0', 'f32', 'auto'] as const) ?? 'f16',
    mmap: optBool(options, 'mmap') ?? false,
    flashAttention: optBool(options, 'flashAttention') ?? false,
  };
}

export interface GenerateLimits {
  nVocab: number;
  contextSize: number;
}

export function validateGenerateOptions(options: unknown, limits: GenerateLimits): ResolvedGenerateOptions {
  if (options === undefined) options = {};
  if (!isPlainObject(options)) throw invalidArgument('generate options', 'an object', options);
  checkKeys(options, GENERATE_KEYS, 'generate');
  // the engine accepts at most the context size (prompt + generation must fit the KV cache anyway)
  const maxLimit = limits.contextSize;
  const seed = options.seed;
  if (seed !== undefined) {
    const ok = typeof seed === 'bigint' ? seed >= 0n && seed < 1n << 64n : typeof seed === 'number' && Number.isSafeInteger(seed) && seed >= 0;
    if (!ok) throw invalidArgument('seed', 'an integer between 0 and 2^53-1 (or a bigint below 2^64)', seed);
  }
  const signal = options.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgument('signal', 'an AbortSignal', signal);
  const onToken = options.onToken;
  if (onToken !== undefined && typeof onToken !== 'function') throw invalidArgument('onToken', 'a function', onToken);
  const topP = optNumber(options, 'topP', 0, 1, 'a number in (0, 1]');
  if (topP === 0) throw invalidArgument('topP', 'a number in (0, 1]', 0);
  return {
    maxTokens: optInt(options, 'maxTokens', 1, maxLimit) ?? Math.min(DEFAULT_MAX_TOKENS, maxLimit),
    temperature: optNumber(options, 'temperature', 0, 100, 'a number between 0 and 100') ?? 0,
    topK: optInt(options, 'topK', 0, limits.nVocab) ?? 0,
    topP: topP ?? 1,
    seed: (seed as number | bigint | undefined) ?? 0,
    signal,
    onToken: onToken as ResolvedGenerateOptions['onToken'],
    ignoreEos: optBool(options, 'ignoreEos') ?? false,
    keepLogits: optBool(options, 'keepLogits') ?? false,
    addBos: optBool(options, 'addBos'),
  };
}

/**
 * Most UTF-8 bytes of a reason for the exam (indication) given to generateFindings or in a batch manifest. A
 * real one is a few sentences; the limit keeps a hostile or mistaken one (a whole report, a file pasted in)
 * from being tokenized whole before the context check refuses it, and from being copied into records.
 */
export const MAX_REASON_BYTES = 4096;

/**
 * Checks generateFindings' `reason` before anything is tokenized: a string of at most MAX_REASON_BYTES UTF-8
 * bytes, null or undefined (INVALID_ARGUMENT otherwise; the message gives the length, never the text).
 * Returns the reason, or null for none ('' included).
 */
export function validateReason(reason: unknown): string | null {
  if (reason === undefined || reason === null) return null;
  if (typeof reason !== 'string') throw invalidArgument('reason', 'a string, null or undefined', reason);
  // UTF-8 takes at most 3 bytes per UTF-16 code unit, so a short string needs no count
  if (reason.length * 3 > MAX_REASON_BYTES) {
    const bytes = Buffer.byteLength(reason, 'utf8');
    if (bytes > MAX_REASON_BYTES) {
      throw new LlavaRadError('INVALID_ARGUMENT',
        `reason must be at most ${MAX_REASON_BYTES} bytes of UTF-8 (a reason for the exam is a few sentences), got a string of ${bytes} bytes`);
    }
  }
  return reason === '' ? null : reason;
}

/** A piece of a prompt: token ids (fed as given), text (tokenized on its own, no BOS) or embedding rows. */
export type PromptPart = { tokens: readonly number[] | Int32Array } | { text: string } | { embeddings: Float32Array };
