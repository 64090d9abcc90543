// The public model class. Policy lives here (option checks, the request queue, cancellation, disposal);
// the mechanism is the native addon (lib/native.ts), which only wraps the engine's C API.

import { types } from 'node:util';
import { LlavaRadError, abortedError, codeForStatus, describeValue, fromNative, invalidArgument } from './errors.js';
import {
  DETOK_REMOVE_LEADING_SPACE,
  DETOK_SKIP_SPECIAL,
  NativeStop,
  native,
  type NativeContext,
  type NativeGenResult,
  type NativeModel,
  type NativeModelInfo,
} from './native.js';
import {
  validateGenerateOptions,
  validateLoadOptions,
  type GenerateOptions,
  type KvCacheType,
  type LoadModelOptions,
  type PromptPart,
  type ResolvedGenerateOptions,
  type TokenEvent,
} from './options.js';
import { SlotQueue } from './queue.js';

/** The model's hyperparameters and tokenizer facts, as the engine reports them (lr_model_info). */
export interface ModelInfo extends Readonly<NativeModelInfo> {}

/**
 * A prompt:
 * - a string: tokenized as one piece, with BOS when `addBos` (default: the model's add_bos flag);
 * - token ids (number[] or Int32Array): fed as given;
 * - an array of {@link PromptPart}s, fed in order: `{ tokens }` as given, `{ text }` tokenized on its own
 *   (never with its own BOS; SentencePiece adds its leading-space prefix to each text part), `{ embeddings }`
 *   as rows of `info.nEmbd` floats (e.g. projected image features). BOS only when `addBos: true`.
 */
export type Prompt = string | readonly number[] | Int32Array | readonly PromptPart[];

export type StopReason = 'eos' | 'max_tokens' | 'context_full';

export interface GenerateTimings {
  /** waiting for a free sequence slot (queue in this process plus the engine's own queue) */
  queueMs: number;
  /** prompt processing up to the first generated token */
  promptMs: number;
  /** from the first generated token to the last */
  decodeMs: number;
}

export interface GenerateResult {
  /** the generated text (special tokens skipped, leading space kept: trim it if you need to) */
  text: string;
  /** generated token ids in order (EOS is not included) */
  tokens: number[];
  /** the token ids fed as the prompt, BOS included; embedding rows are not in it (see nPrompt) */
  promptTokens: number[];
  /** prompt positions fed: tokens plus embedding rows */
  nPrompt: number;
  /** why generation stopped; an aborted generation rejects with code 'ABORTED' instead */
  stopReason: StopReason;
  timings: GenerateTimings;
  /** each step's logits (n_vocab floats per generated token) when keepLogits was set */
  logits?: Float32Array[];
}

/** One piece of {@link LlamaModel.stream}. */
export interface StreamChunk {
  token: number;
  /** decoded increment ('' while a UTF-8 character is incomplete, and for special tokens) */
  text: string;
}

/** The async iterator of {@link LlamaModel.stream}. Breaking out of a for-await loop (return()) cancels. */
export interface GenerationStream extends AsyncIterableIterator<StreamChunk> {
  /** the whole result once generation ends (rejects like generate(); ABORTED after return()) */
  readonly result: Promise<GenerateResult>;
}

export interface TokenizeOptions {
  /** prepend BOS; default false */
  addBos?: boolean;
}

export interface DetokenizeOptions {
  /** drop control tokens (BOS, EOS, ...); default false */
  skipSpecial?: boolean;
  /** drop the dummy-prefix space before the first piece; default false */
  removeLeadingSpace?: boolean;
}

export interface EvaluateOptions {
  /** prepend BOS; defaults as for generate() */
  addBos?: boolean;
  /** aborts while waiting for the context (not during the computation itself) */
  signal?: AbortSignal;
}

interface InFlight {
  cancel(reason: 'dispose'): void;
  done: Promise<unknown>;
}

interface PreparedPrompt {
  parts: (Int32Array | Float32Array)[];
  promptTokens: number[];
  nPositions: number;
}

const STOP_NAMES: Record<number, StopReason> = {
  [NativeStop.Eos]: 'eos',
  [NativeStop.MaxTokens]: 'max_tokens',
  [NativeStop.ContextFull]: 'context_full',
};

/** bytes of one kept step's logits */
const LOGIT_BYTES = 4;

/**
 * keepLogits holds a copy of every step's logits until the call settles (maxTokens x n_vocab floats: 4 GiB for
 * 32,768 steps of LLaMA's 32,000): refused with OUT_OF_MEMORY before any work when that is more than this
 * machine or container has available now, rather than left to the kernel's OOM killer
 */
function checkKeptLogits(maxTokens: number, nVocab: number): void {
  try {
    native().checkHostMemory(maxTokens * nVocab * LOGIT_BYTES, `keepLogits (up to ${maxTokens} steps of ${nVocab} logits)`);
  } catch (e) {
    const err = fromNative(e);
    if (err.code !== 'OUT_OF_MEMORY') throw err;
    throw new LlavaRadError('OUT_OF_MEMORY', `${err.message}: lower maxTokens, or leave keepLogits off`, { status: err.status });
  }
}

/**
 * Loads a GGUF model and creates its context (one KV cache with `parallel` sequence slots).
 * Rejects with LlavaRadError: INVALID_ARGUMENT (options), IO, BAD_GGUF, UNSUPPORTED, OUT_OF_MEMORY,
 * BACKEND, NATIVE_LOAD (the addon is not built).
 */
export async function loadModel(options: LoadModelOptions): Promise<LlamaModel> {
  const o = validateLoadOptions(options);
  const addon = native();
  let model: NativeModel;
  try {
    model = await addon.loadModel(o.model, { backend: o.backend, threads: o.threads ?? 0, mmap: o.mmap });
  } catch (e) {
    throw fromNative(e);
  }
  try {
    const info = Object.freeze({ ...model.info() });
    const contextSize = o.contextSize ?? Math.min(4096, info.nCtxTrain > 0 ? info.nCtxTrain : 4096);
    const batchSize = o.batchSize ?? 512;
    const ctx = await model.createContext({
      contextSize,
      batchSize,
      parallel: o.parallel,
      kvType: o.kvCacheType === 'auto' ? autoKvType(info.weightType) : o.kvCacheType,
      threads: o.threads ?? 0,
      flashAttn: o.flashAttention,
    });
    // the engine's resolved settings (context rounded up to a multiple of 256, batch capped, ...)
    const p = ctx.params();
    return new LlamaModel(INTERNAL, model, ctx, info, {
      path: o.model,
      contextSize: p.contextSize,
      batchSize: p.batchSize,
      parallel: p.parallel,
      kvCacheType: p.kvType,
    });
  } catch (e) {
    await model.dispose().catch(() => undefined);
    throw fromNative(e);
  }
}

const INTERNAL = Symbol('LlamaModel.internal');
/** ggml_type values of ModelInfo.weightType whose weights keep 8 bits or more: f32, f16, q8_0, bf16 */
const WIDE_WEIGHT_TYPES = new Set([0, 1, 8, 30]);

/**
 * kvCacheType 'auto': an f32 cache for weights of 8 bits or more, f16 for narrower quantizations. With such
 * weights an f16 cache's rounding of every key and value is a sizeable share of what separates the engine
 * from the official pipeline: it flipped near-ties of f32 models, and it alone took q8_0 findings past the
 * 0.4 teacher-forcing criterion where float64 arithmetic with llama.cpp's q8_0 roundings stayed within it
 * (docs/validation.md). 4- and 5-bit weights dominate the error, and there the f16 cache halves the memory.
 */
export function autoKvType(weightType: number): KvCacheType {
  return WIDE_WEIGHT_TYPES.has(weightType) ? 'f32' : 'f16';
}

interface ModelSettings {
  path: string;
  contextSize: number;
  batchSize: number;
  parallel: number;
  kvCacheType: KvCacheType;
}

/** A loaded model with its context. Create it with {@link loadModel}; free it with {@link LlamaModel.dispose}. */
/**
 * @internal Testing only (test/faults.test.ts): `model[DEBUG_FAULT](kind)` makes the engine's next step that
 * decodes fail the way a real fault would (lr_debug_fault), to check that errors reach the requests.
 */
export const DEBUG_FAULT = Symbol('llava-rad.debugFault');

/** lr_fault (native/include/llava_rad.h) */
export enum NativeFault {
  None = 0,
  BackendError = 1,
  OutOfMemory = 2,
  Throw = 3,
  Abort = 4,
}

export class LlamaModel {
  /** hyperparameters and tokenizer facts */
  readonly info: ModelInfo;
  /** the GGUF file */
  readonly path: string;
  /** KV cells shared by all sequence slots */
  readonly contextSize: number;
  readonly batchSize: number;
  /** sequence slots: generate() calls beyond this many wait in FIFO order */
  readonly parallel: number;
  readonly kvCacheType: KvCacheType;

  #model: NativeModel;
  #ctx: NativeContext;
  #queue: SlotQueue;
  #inflight = new Set<InFlight>();
  #disposing: Promise<void> | undefined;

  /** @internal use loadModel() */
  constructor(token: symbol, model: NativeModel, ctx: NativeContext, info: ModelInfo, s: ModelSettings) {
    if (token !== INTERNAL) throw new LlavaRadError('INVALID_ARGUMENT', 'LlamaModel cannot be constructed directly; use loadModel()');
    this.#model = model;
    this.#ctx = ctx;
    this.info = info;
    this.path = s.path;
    this.contextSize = s.contextSize;
    this.batchSize = s.batchSize;
    this.parallel = s.parallel;
    this.kvCacheType = s.kvCacheType;
    this.#queue = new SlotQueue(s.parallel);
  }

  /** @internal testing only: see DEBUG_FAULT */
  [DEBUG_FAULT](kind: NativeFault): void {
    this.#assertAlive();
    this.#ctx.debugFault(kind);
  }

  /** true once dispose() was called */
  get disposed(): boolean {
    return this.#disposing !== undefined;
  }

  /** generate() calls running in the engine now */
  get activeRequests(): number {
    return this.#queue.inUse;
  }

  /** generate() calls waiting for a slot */
  get queuedRequests(): number {
    return this.#queue.waiting;
  }

  #assertAlive(): void {
    if (this.#disposing) throw new LlavaRadError('DISPOSED', 'the model has been disposed');
  }

  /** Text -> token ids (special tokens are never produced from text). Synchronous. */
  tokenize(text: string, options: TokenizeOptions = {}): number[] {
    this.#assertAlive();
    if (typeof text !== 'string') throw invalidArgument('text', 'a string', text);
    if (typeof options !== 'object' || options === null) throw invalidArgument('tokenize options', 'an object', options);
    const addBos = options.addBos ?? false;
    if (typeof addBos !== 'boolean') throw invalidArgument('addBos', 'a boolean', addBos);
    try {
      return Array.from(this.#model.tokenize(text, addBos));
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** Token ids -> text. Synchronous. */
  detokenize(ids: readonly number[] | Int32Array, options: DetokenizeOptions = {}): string {
    this.#assertAlive();
    const arr = this.#checkIds(ids, 'ids');
    if (typeof options !== 'object' || options === null) throw invalidArgument('detokenize options', 'an object', options);
    const { skipSpecial = false, removeLeadingSpace = false } = options;
    if (typeof skipSpecial !== 'boolean') throw invalidArgument('skipSpecial', 'a boolean', skipSpecial);
    if (typeof removeLeadingSpace !== 'boolean') throw invalidArgument('removeLeadingSpace', 'a boolean', removeLeadingSpace);
    const flags = (skipSpecial ? DETOK_SKIP_SPECIAL : 0) | (removeLeadingSpace ? DETOK_REMOVE_LEADING_SPACE : 0);
    try {
      return this.#model.detokenize(arr, flags);
    } catch (e) {
      throw fromNative(e);
    }
  }

  /** One token's raw bytes (a byte-fallback piece is a single byte, possibly part of a UTF-8 character). */
  tokenPiece(id: number): Uint8Array {
    this.#assertAlive();
    this.#checkIds([id], 'token');
    try {
      return new Uint8Array(this.#model.tokenPiece(id));
    } catch (e) {
      throw fromNative(e);
    }
  }

  #checkIds(ids: unknown, what: string): Int32Array {
    const n = this.info.nVocab;
    if (types.isInt32Array(ids)) {
      for (let i = 0; i < ids.length; i++) {
        if (ids[i]! < 0 || ids[i]! >= n) throw invalidArgument(`${what}[${i}]`, `a token id between 0 and ${n - 1}`, ids[i]);
      }
      return ids;
    }
    if (!Array.isArray(ids)) throw invalidArgument(what, 'an array of token ids or an Int32Array', ids);
    const out = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const v: unknown = ids[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= n) {
        throw invalidArgument(`${what}[${i}]`, `a token id between 0 and ${n - 1}`, v);
      }
      out[i] = v;
    }
    return out;
  }

  #preparePrompt(prompt: unknown, addBos: boolean | undefined): PreparedPrompt {
    const nEmbd = this.info.nEmbd;
    const parts: (Int32Array | Float32Array)[] = [];
    const promptTokens: number[] = [];
    let nPositions = 0;
    let pending: number[] = [];
    const flush = () => {
      if (pending.length) {
        parts.push(Int32Array.from(pending));
        nPositions += pending.length;
        pending = [];
      }
    };
    const pushTokens = (ids: ArrayLike<number>) => {
      for (let i = 0; i < ids.length; i++) {
        pending.push(ids[i]!);
        promptTokens.push(ids[i]!);
      }
    };
    if (typeof prompt === 'string') {
      pushTokens(this.#model.tokenize(prompt, addBos ?? this.info.addBos));
    } else if (types.isInt32Array(prompt) || (Array.isArray(prompt) && prompt.every((x) => typeof x === 'number'))) {
      if (addBos) pushTokens([this.info.bosToken]);
      pushTokens(this.#checkIds(prompt, 'prompt'));
    } else if (Array.isArray(prompt)) {
      if (addBos) pushTokens([this.info.bosToken]);
      prompt.forEach((part: unknown, i: number) => {
        const where = `prompt[${i}]`;
        if (typeof part !== 'object' || part === null || Array.isArray(part)) {
          throw invalidArgument(where, 'a prompt part ({ tokens }, { text } or { embeddings })', part);
        }
        const keys = Object.keys(part).filter((k) => (part as Record<string, unknown>)[k] !== undefined);
        if (keys.length !== 1 || !['tokens', 'text', 'embeddings'].includes(keys[0]!)) {
          throw new LlavaRadError('INVALID_ARGUMENT',
            `${where} must have exactly one of the keys tokens, text, embeddings, got ${keys.length ? keys.join(', ') : 'none'}`);
        }
        const p = part as Record<string, unknown>;
        if (keys[0] === 'tokens') {
          pushTokens(this.#checkIds(p.tokens, `${where}.tokens`));
        } else if (keys[0] === 'text') {
          if (typeof p.text !== 'string') throw invalidArgument(`${where}.text`, 'a string', p.text);
          pushTokens(this.#model.tokenize(p.text, false));
        } else {
          const e = p.embeddings;
          if (!(types.isFloat32Array(e))) throw invalidArgument(`${where}.embeddings`, `a Float32Array of rows of ${nEmbd} floats`, e);
          if (e.length === 0 || e.length % nEmbd !== 0) {
            throw new LlavaRadError('INVALID_ARGUMENT',
              `${where}.embeddings must hold whole rows of ${nEmbd} floats (the model's embedding size), got ${e.length} floats`);
          }
          for (let k = 0; k < e.length; k++) {
            if (!Number.isFinite(e[k]!)) throw new LlavaRadError('INVALID_ARGUMENT', `${where}.embeddings[${k}] must be finite, got ${e[k]}`);
          }
          flush();
          parts.push(e);
          nPositions += e.length / nEmbd;
        }
      });
    } else {
      throw invalidArgument('prompt', 'a string, an array of token ids or an array of prompt parts', prompt);
    }
    flush();
    if (nPositions === 0) throw new LlavaRadError('INVALID_ARGUMENT', 'the prompt is empty (no tokens and no embeddings)');
    if (nPositions > this.contextSize) {
      throw new LlavaRadError('CONTEXT_FULL', `the prompt has ${nPositions} positions but the context holds ${this.contextSize} (loadModel contextSize)`);
    }
    return { parts, promptTokens, nPositions };
  }

  /**
   * Generates a continuation of `prompt`. At most `parallel` generations run in the engine at once (they
   * are batched together step by step); the rest wait in FIFO order.
   *
   * Rejects with LlavaRadError: INVALID_ARGUMENT (prompt/options), CONTEXT_FULL (prompt longer than the
   * context), ABORTED (options.signal), DISPOSED (the model was disposed before or during the call), or an
   * engine error code. If onToken throws, generation is cancelled and the call rejects with that error.
   */
  async generate(prompt: Prompt, options: GenerateOptions = {}): Promise<GenerateResult> {
    this.#assertAlive();
    const o = validateGenerateOptions(options, { nVocab: this.info.nVocab, contextSize: this.contextSize });
    if (o.keepLogits) checkKeptLogits(o.maxTokens, this.info.nVocab);
    let prepared: PreparedPrompt;
    try {
      prepared = this.#preparePrompt(prompt, o.addBos);
    } catch (e) {
      throw fromNative(e);
    }
    if (o.signal?.aborted) throw abortedError(o.signal, 'generation');
    const t0 = performance.now();
    const release = await this.#queue.acquire(1, o.signal, 'generation');
    const waitedMs = performance.now() - t0;
    try {
      return await this.#run(prepared, o, waitedMs);
    } finally {
      release();
    }
  }

  #run(prepared: PreparedPrompt, o: ResolvedGenerateOptions, waitedMs: number): Promise<GenerateResult> {
    if (this.#disposing) return Promise.reject(new LlavaRadError('DISPOSED', 'the model has been disposed'));
    const tokens: number[] = [];
    const logits: Float32Array[] = [];
    const decoder = new TextDecoder('utf-8');
    let cancelReason: 'abort' | 'dispose' | 'callback' | undefined;
    let callbackError: unknown;
    let id: number | undefined;
    const ctx = this.#ctx;
    const model = this.#model;

    let settle!: { resolve: (r: GenerateResult) => void; reject: (e: unknown) => void };
    const done = new Promise<GenerateResult>((resolve, reject) => {
      settle = { resolve, reject };
    });
    const cancel = (reason: 'abort' | 'dispose' | 'callback') => {
      cancelReason ??= reason;
      if (id !== undefined) {
        try {
          ctx.cancel(id);
        } catch {
          // the context is going away: the request completes as cancelled anyway
        }
      }
    };
    const onAbort = () => cancel('abort');
    const record: InFlight = { cancel, done: done.catch(() => undefined) };

    const onToken = (token: number, l?: Float32Array) => {
      const index = tokens.length;
      tokens.push(token);
      if (l) logits.push(l);
      if (o.onToken && cancelReason === undefined) {
        try {
          const bytes = model.detokenize([token], DETOK_SKIP_SPECIAL, true);
          const text = decoder.decode(bytes, { stream: true });
          const ev: TokenEvent = { token, text, index };
          if (l) ev.logits = l;
          o.onToken(ev);
        } catch (e) {
          callbackError = e;
          cancel('callback');
        }
      }
    };
    const onDone = (r: NativeGenResult) => {
      o.signal?.removeEventListener('abort', onAbort);
      this.#inflight.delete(record);
      if (r.stopReason === NativeStop.Cancelled || r.status === 'LR_ERR_CANCELLED') {
        if (cancelReason === 'callback') settle.reject(callbackError);
        else if (cancelReason === 'abort') settle.reject(abortedError(o.signal, 'generation'));
        else settle.reject(new LlavaRadError('DISPOSED', 'the model was disposed during generation'));
        return;
      }
      const stopReason = STOP_NAMES[r.stopReason];
      if ((r.status !== 'LR_OK' && r.stopReason !== NativeStop.ContextFull) || stopReason === undefined) {
        const msg = r.error || `generation failed (${r.status})`;
        settle.reject(new LlavaRadError(codeForStatus(r.status), msg, { status: r.status }));
        return;
      }
      if (r.tokens) for (const t of r.tokens) tokens.push(t); // collected natively (no per-token callback)
      let text: string;
      try {
        text = model.detokenize(tokens, DETOK_SKIP_SPECIAL);
      } catch (e) {
        settle.reject(fromNative(e));
        return;
      }
      const result: GenerateResult = {
        text,
        tokens,
        promptTokens: prepared.promptTokens,
        nPrompt: r.nPrompt,
        stopReason,
        timings: { queueMs: waitedMs + r.queueMs, promptMs: r.promptMs, decodeMs: r.decodeMs },
      };
      if (o.keepLogits) result.logits = logits;
      settle.resolve(result);
    };

    try {
      id = ctx.submit(
        prepared.parts,
        {
          maxTokens: o.maxTokens,
          temperature: o.temperature,
          topK: o.topK,
          topP: o.topP,
          seed: o.seed,
          ignoreEos: o.ignoreEos,
          keepLogits: o.keepLogits,
        },
        // without a per-token consumer, JS is not woken once per token: the engine hands the tokens over at the end
        o.onToken || o.keepLogits ? onToken : null,
        onDone,
      );
    } catch (e) {
      return Promise.reject(fromNative(e));
    }
    this.#inflight.add(record);
    if (o.signal) {
      o.signal.addEventListener('abort', onAbort, { once: true });
      if (o.signal.aborted) onAbort();
    }
    if (cancelReason !== undefined) cancel(cancelReason); // a callback ran before the id was known
    return done;
  }

  /**
   * Like generate(), as an async iterator of decoded increments. Leaving the loop early (break, throw,
   * return()) cancels the generation. Iteration throws what generate() would reject with (except the
   * ABORTED caused by leaving early).
   */
  stream(prompt: Prompt, options: GenerateOptions = {}): GenerationStream {
    const ac = new AbortController();
    const userSignal = options?.signal;
    const forward = () => ac.abort(userSignal?.reason);
    if (userSignal instanceof AbortSignal) {
      if (userSignal.aborted) forward();
      else userSignal.addEventListener('abort', forward, { once: true });
    }
    const chunks: StreamChunk[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    let failure: { error: unknown } | undefined;
    let returned = false;
    const userOnToken = options?.onToken;
    const result = this.generate(prompt, {
      ...options,
      signal: userSignal === undefined || userSignal instanceof AbortSignal ? ac.signal : userSignal,
      onToken: (ev) => {
        if (typeof userOnToken === 'function') userOnToken(ev);
        chunks.push({ token: ev.token, text: ev.text });
        wake?.();
      },
    });
    result.then(
      () => {
        finished = true;
        wake?.();
      },
      (e: unknown) => {
        if (!returned) failure = { error: e };
        finished = true;
        wake?.();
      },
    ).finally(() => userSignal?.removeEventListener?.('abort', forward));
    const it: GenerationStream = {
      result,
      async next(): Promise<IteratorResult<StreamChunk>> {
        for (;;) {
          if (chunks.length) return { value: chunks.shift()!, done: false };
          if (failure) {
            const e = failure.error;
            failure = undefined;
            returned = true;
            throw e;
          }
          if (finished || returned) return { value: undefined, done: true };
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
      },
      async return(): Promise<IteratorResult<StreamChunk>> {
        returned = true;
        chunks.length = 0;
        ac.abort(new LlavaRadError('ABORTED', 'the stream was closed'));
        await result.catch(() => undefined);
        return { value: undefined, done: true };
      },
      [Symbol.asyncIterator]() {
        return it;
      },
    };
    // the caller may never read `result`: do not report its rejection as unhandled
    result.catch(() => undefined);
    return it;
  }

  /**
   * Low-level access for tests: computes the whole prompt from scratch in sequence slot 0 with one
   * lr_decode (split in batchSize pieces by the engine), returns the logits of the last position, and
   * clears the slot again. Waits until no generation is in the engine (decode and requests are not mixed
   * on one context) and holds new ones back while it runs.
   */
  async evaluate(prompt: Prompt, options: EvaluateOptions = {}): Promise<Float32Array> {
    this.#assertAlive();
    if (typeof options !== 'object' || options === null) throw invalidArgument('evaluate options', 'an object', options);
    const { addBos, signal } = options;
    if (addBos !== undefined && typeof addBos !== 'boolean') throw invalidArgument('addBos', 'a boolean', addBos);
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgument('signal', 'an AbortSignal', signal);
    let prepared: PreparedPrompt;
    try {
      prepared = this.#preparePrompt(prompt, addBos);
    } catch (e) {
      throw fromNative(e);
    }
    const release = await this.#queue.acquire(this.parallel, signal, 'evaluation');
    try {
      this.#assertAlive();
      const n = prepared.nPositions;
      const tokens = new Int32Array(n);
      const embdRows = prepared.parts.filter((p): p is Float32Array => types.isFloat32Array(p));
      const embd = new Float32Array(embdRows.reduce((s, p) => s + p.length, 0));
      let t = 0;
      let e = 0;
      for (const p of prepared.parts) {
        if (types.isInt32Array(p)) {
          tokens.set(p, t);
          t += p.length;
        } else {
          const rows = p.length / this.info.nEmbd;
          tokens.fill(-1, t, t + rows);
          t += rows;
          embd.set(p, e);
          e += p.length;
        }
      }
      const pos = new Int32Array(n);
      for (let i = 0; i < n; i++) pos[i] = i;
      const seqId = new Int32Array(n);
      this.#ctx.seqTruncate(0, 0);
      try {
        await this.#ctx.decode(embd.length ? { tokens, embd, pos, seqId } : { tokens, pos, seqId });
        const l = this.#ctx.logits(0);
        if (!l) throw new LlavaRadError('INTERNAL', 'the engine kept no logits for the last position');
        return l;
      } finally {
        if (!this.#ctx.disposed) this.#ctx.seqTruncate(0, 0);
      }
    } catch (err) {
      throw fromNative(err);
    } finally {
      release();
    }
  }

  /**
   * Frees the model. Idempotent. Queued generations reject with DISPOSED, running ones are cancelled
   * (and reject with DISPOSED); the returned promise resolves once they have completed and the context
   * and weights are freed. Every later call except dispose() throws DISPOSED.
   */
  dispose(): Promise<void> {
    if (this.#disposing) return this.#disposing;
    const err = new LlavaRadError('DISPOSED', 'the model has been disposed');
    this.#queue.close(err);
    const running = [...this.#inflight];
    for (const r of running) r.cancel('dispose');
    this.#disposing = (async () => {
      await Promise.all(running.map((r) => r.done));
      try {
        await this.#ctx.dispose();
      } finally {
        await this.#model.dispose();
      }
    })();
    return this.#disposing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  toString(): string {
    return `LlamaModel(${this.info.name || this.path}, ${describeValue(this.info.nParams)} params)`;
  }
}
