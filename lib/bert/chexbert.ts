// CheXbert's labeler on our engine: a report -> WordPiece ids (as the official evaluation makes them) ->
// the BERT encoder and 14 heads (native lr_bert_*) -> one class per observation, plus the [CLS] hidden state
// (SembScore's embedding).
//
// The GGUF (lib/convert/chexbert.ts) carries its WordPiece vocabulary (tokenizer.ggml.tokens), which load()
// reads; a vocabulary may be passed instead. labelMany() can encode batches of reports in one graph each
// (lr_bert_encode_batch: padded to the longest, the padding masked), reports of like length together (by
// default on a GPU; one report a graph on the CPU, where batches measured slower). Encodes of
// one model run one at a time (the engine holds a mutex; the addon runs each on a libuv worker), so it keeps two
// batches in flight: one computing, the next packed and queued, without tying up more of libuv's threads.

import { abortedError, describeValue, invalidArgument, LlavaRadError, fromNative } from '../errors.js';
import { ggufNumber, ggufStringArray, readGgufMetadata } from '../gguf/read-metadata.js';
import { native, type NativeModelParams } from '../native.js';
import { bertBatchLimits, packBertBatch, planBertBatches, type BertBatchOptions } from './batch-plan.js';
import { chexbertInputIds, cleanChexbertReport } from './chexbert-input.js';
import { chexbertConditions, chexbertHeadClasses, type ChexbertCondition } from './chexbert-labels.js';
import { BertTokenizer, WordPieceVocab } from './wordpiece.js';

/** what the addon's loadBert / Bert expose (native/addon/bert.cpp) */
interface NativeBert {
  info(): { backend: string; nVocab: number; nCtx: number; nEmbd: number; nClassifierHeads: number; nLogits: number };
  encode(ids: Int32Array): Promise<{ cls: Float32Array; logits: Float32Array }>;
  encodeBatch(ids: Int32Array, counts: Int32Array): Promise<{ cls: Float32Array; logits: Float32Array }>;
  dispose(): Promise<void>;
}
interface NativeBertAddon {
  loadBert(path: string, params?: NativeModelParams): Promise<NativeBert>;
}

export interface ChexbertResult {
  /** the ids the model read: [CLS] ... [SEP], at most 512 */
  ids: number[];
  /** the last layer's hidden state at [CLS] */
  cls: Float32Array;
  /** each head's logits, in condition order */
  logits: number[][];
  /** each head's argmax: 0 blank, 1 positive, 2 negative, 3 uncertain (No Finding: 0 blank, 1 positive) */
  labels: number[];
}

export interface ChexbertLoadOptions extends NativeModelParams {
  /** the WordPiece vocabulary to use instead of the GGUF's own (tokenizer.ggml.tokens) */
  vocab?: WordPieceVocab;
}

export interface ChexbertLabelManyOptions extends BertBatchOptions {
  /** stops between batches with an ABORTED error */
  signal?: AbortSignal;
  /** called after each distinct text is labeled: (done, total distinct texts) */
  onProgress?: (done: number, total: number) => void;
}

/** the GGUF key of the WordPiece pieces (llama.cpp's) */
export const CHEXBERT_VOCAB_KEY = 'tokenizer.ggml.tokens';

/** reads the WordPiece vocabulary a CheXbert GGUF carries (BAD_GGUF when it has none) */
export async function readChexbertVocab(ggufPath: string): Promise<WordPieceVocab> {
  const meta = await readGgufMetadata(ggufPath);
  const pieces = ggufStringArray(meta, CHEXBERT_VOCAB_KEY, ggufPath);
  if (pieces === undefined) throw new LlavaRadError('BAD_GGUF', `${ggufPath}: no ${CHEXBERT_VOCAB_KEY} (not a GGUF from convertChexbert / llava-rad convert-chexbert; pass the vocabulary as the vocab option)`);
  const conditions = ggufStringArray(meta, 'chexbert.conditions', ggufPath);
  if (conditions !== undefined && conditions.join('\n') !== chexbertConditions().join('\n')) {
    throw new LlavaRadError('BAD_GGUF', `${ggufPath}: chexbert.conditions are not CheXbert's 14 observations in the labeler's order`);
  }
  let vocab: WordPieceVocab;
  try {
    vocab = new WordPieceVocab(pieces);
  } catch (e) {
    throw new LlavaRadError('BAD_GGUF', `${ggufPath}: ${(e as Error).message}`, { cause: e });
  }
  for (const [key, piece] of [['tokenizer.ggml.cls_token_id', '[CLS]'], ['tokenizer.ggml.seperator_token_id', '[SEP]']] as const) {
    const id = ggufNumber(meta, key, ggufPath);
    if (id !== undefined && id !== vocab.specialId(piece)) throw new LlavaRadError('BAD_GGUF', `${ggufPath}: ${key} is ${id}, but ${piece} is piece ${vocab.specialId(piece)}`);
  }
  return vocab;
}

export class ChexbertLabeler {
  readonly tokenizer: BertTokenizer;
  readonly conditions: readonly ChexbertCondition[] = chexbertConditions();
  readonly #native: NativeBert;
  readonly #headClasses: number[];
  readonly #nEmbd: number;
  readonly #nCtx: number;
  readonly #backend: string;

  private constructor(nativeBert: NativeBert, tokenizer: BertTokenizer, headClasses: number[]) {
    this.#native = nativeBert;
    this.tokenizer = tokenizer;
    this.#headClasses = headClasses;
    const info = nativeBert.info();
    this.#nEmbd = info.nEmbd;
    this.#nCtx = info.nCtx;
    this.#backend = info.backend;
  }

  /**
   * Loads a GGUF from lib/convert/chexbert.ts (llava-rad convert-chexbert) with the vocabulary it carries.
   * `load(path, vocab, params)` (a vocabulary second) is the older form of `load(path, { vocab, ...params })`.
   */
  static async load(ggufPath: string, options?: ChexbertLoadOptions | WordPieceVocab, params?: NativeModelParams): Promise<ChexbertLabeler> {
    if (typeof ggufPath !== 'string' || ggufPath === '') throw invalidArgument('the CheXbert GGUF path', 'a non-empty string', ggufPath);
    let opts: ChexbertLoadOptions;
    if (options instanceof WordPieceVocab) opts = { ...(params ?? {}), vocab: options };
    else if (options === undefined) opts = { ...(params ?? {}) };
    else if (options !== null && typeof options === 'object') opts = options;
    else throw invalidArgument('options', 'an object', options);
    const { vocab: vocabOverride, ...nativeParams } = opts;
    if (vocabOverride !== undefined && !(vocabOverride instanceof WordPieceVocab)) throw invalidArgument('vocab', 'a WordPieceVocab', vocabOverride);
    const vocab = vocabOverride ?? (await readChexbertVocab(ggufPath));
    let nb: NativeBert;
    try {
      nb = await (native() as unknown as NativeBertAddon).loadBert(ggufPath, nativeParams);
    } catch (e) {
      throw fromNative(e);
    }
    const info = nb.info();
    const conditions = chexbertConditions();
    const headClasses = chexbertHeadClasses();
    if (info.nClassifierHeads !== conditions.length || info.nLogits !== headClasses.reduce((a, b) => a + b, 0)) {
      await nb.dispose();
      throw new LlavaRadError('BAD_GGUF', `${ggufPath}: not a CheXbert GGUF (${info.nClassifierHeads} heads, ${info.nLogits} logits)`);
    }
    if (info.nVocab !== vocab.size) {
      await nb.dispose();
      throw new LlavaRadError('BAD_GGUF', `${ggufPath}: ${info.nVocab} token embeddings, the vocabulary has ${vocab.size} pieces`);
    }
    return new ChexbertLabeler(nb, new BertTokenizer(vocab), headClasses);
  }

  async label(report: string): Promise<ChexbertResult> {
    if (typeof report !== 'string') throw invalidArgument('report', 'a string', report);
    return this.#encode(chexbertInputIds(this.tokenizer, report));
  }

  async #encode(ids: number[]): Promise<ChexbertResult> {
    let out: { cls: Float32Array; logits: Float32Array };
    try {
      out = await this.#native.encode(Int32Array.from(ids));
    } catch (e) {
      throw fromNative(e);
    }
    return this.#result(ids, out.cls, out.logits);
  }

  /** one graph for the sequences of `lists` named by `batch`; their results, in batch order */
  async #encodeBatch(lists: readonly number[][], batch: readonly number[]): Promise<ChexbertResult[]> {
    const { ids, counts } = packBertBatch(lists, batch);
    let out: { cls: Float32Array; logits: Float32Array };
    try {
      out = await this.#native.encodeBatch(ids, counts);
    } catch (e) {
      throw fromNative(e);
    }
    const nLogits = out.logits.length / batch.length;
    return batch.map((k, b) => this.#result(lists[k]!, out.cls.slice(b * this.#nEmbd, (b + 1) * this.#nEmbd),
      out.logits.subarray(b * nLogits, (b + 1) * nLogits)));
  }

  #result(ids: number[], cls: Float32Array, flatLogits: Float32Array): ChexbertResult {
    const logits: number[][] = [];
    let at = 0;
    for (const classes of this.#headClasses) {
      logits.push(Array.from(flatLogits.subarray(at, at + classes)));
      at += classes;
    }
    const labels = logits.map((row) => row.indexOf(Math.max(...row)));
    return { ids, cls, logits, labels };
  }

  /**
   * Labels many reports, in order. Texts the official cleaning makes identical are encoded once (their
   * entries are the same object). Reports of like length share a graph (batchSize: default 1 on the CPU, 16
   * on a GPU; maxBatchTokens); each result equals label()'s up to float summation order. Two batches are kept in flight (the model runs one
   * at a time).
   */
  async labelMany(reports: readonly string[], options: ChexbertLabelManyOptions = {}): Promise<ChexbertResult[]> {
    if (!Array.isArray(reports)) throw invalidArgument('reports', 'an array of strings', reports);
    if (options === null || typeof options !== 'object') throw invalidArgument('options', 'an object', options);
    const { signal, onProgress } = options;
    const { batchSize, maxBatchTokens } = bertBatchLimits(options, this.#nCtx, this.#backend);
    reports.forEach((r, i) => {
      if (typeof r !== 'string') throw new LlavaRadError('INVALID_ARGUMENT', `reports[${i}] must be a string, got ${describeValue(r)}`);
    });
    const slot = new Map<string, number>();
    const distinct: string[] = [];
    const which = reports.map((r) => {
      const key = cleanChexbertReport(r);
      let k = slot.get(key);
      if (k === undefined) {
        k = distinct.length;
        slot.set(key, k);
        distinct.push(r);
      }
      return k;
    });
    const lists = distinct.map((r) => chexbertInputIds(this.tokenizer, r));
    const batches = planBertBatches(lists.map((l) => l.length), batchSize, maxBatchTokens);
    const results = new Array<ChexbertResult>(distinct.length);
    const IN_FLIGHT = 2;
    let next = 0;
    let done = 0;
    const worker = async (): Promise<void> => {
      while (next < batches.length) {
        if (signal?.aborted) throw abortedError(signal, 'CheXbert labeling');
        const batch = batches[next++]!;
        const out = await this.#encodeBatch(lists, batch);
        batch.forEach((k, b) => {
          results[k] = out[b]!;
          onProgress?.(++done, distinct.length);
        });
      }
    };
    const workers = Array.from({ length: Math.min(IN_FLIGHT, batches.length) }, worker);
    const settled = await Promise.allSettled(workers);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    if (signal?.aborted) throw abortedError(signal, 'CheXbert labeling');
    return which.map((k) => results[k]!);
  }

  async dispose(): Promise<void> {
    await this.#native.dispose().catch((e: unknown) => { throw fromNative(e); });
  }
}
