// RadGraph on our engine: report text -> the annotation dict radgraph's `RadGraph(model_type="radgraph")`
// returns (the input of lib/eval/radgraph-reward.ts).
//
// Facts this follows (Stanford-AIMI/radgraph 87f11a1, and the DyGIE / allennlp code it vendors under
// radgraph/dygie and radgraph/allennlp. radgraph 0.0.9, which the official LLaVA-Rad evaluation pins, predates
// that repository's history and was not readable here; the same word-split regex and the dataset name
// "radgraph" appear in every copy of its inference code found):
//
// - radgraph/radgraph.py RadGraph: the archive (radgraph.tar.gz of StanfordAIMI/RRG_scorers) unpacks to
//   config.json, weights.th (the DyGIE state dict, strict) and vocabulary/ (allennlp label namespaces); the
//   tokenizer is the Hub's `model_name` (not in the archive). Every report is one document of one sentence;
//   an empty report becomes "None" (forward) and batches hold one document.
// - radgraph/utils.py preprocess_reports: the word split (lib/radgraph/words.ts), no truncation;
//   postprocess_reports / get_entity: the annotation (lib/radgraph/decode.ts annotation()).
// - dygie/data/dataset_readers/dygie.py: _normalize_word ("/." -> "."), spans = allennlp enumerate_spans
//   (every (start, end) of 1..max_span_width words, start-major).
// - allennlp PretrainedTransformerMismatchedIndexer / Tokenizer._intra_word_tokenize: each word is
//   tokenized on its own (no special tokens); a word with no pieces gets offsets (-1, -1) and a zero vector.
//   With max_length, PretrainedTransformerIndexer._postprocess_output folds the pieces into segments of
//   max_length - 2, each [CLS] ... [SEP]; the embedder encodes every segment alone (positions restart, type
//   ids 0) and unfolds them, so each piece gets the state of its own segment.
// - PretrainedTransformerMismatchedEmbedder.forward: a word's vector is the mean of its pieces' last-layer
//   states (zero where it has none).
// - dygie/models/dygie.py: EndpointSpanExtractor(combination "x,y", span width embedding of
//   max_span_width rows x feature_size, bucket_widths False): span = [x_start, x_end, width_embd[end - start]];
//   FeedForward(num_layers, hidden_dims, ReLU, dropout) for each scorer; coref / events unused when their
//   loss weights are 0 (the converter refuses anything else).
// - dygie/models/ner.py: scores = Linear(FFNN(span)) for labels 1..L-1, the null label scored 0; each span
//   takes its argmax; every non-null span is an entity, in span order.
// - dygie/models/relation.py + entity_beam_pruner.py: mention = Linear(FFNN(span)) (the pruner's scorer);
//   keep ceil(words x spans_per_word) spans (float32 arithmetic) with the highest mention scores, in span
//   order; for every ordered pair (i, j) of kept spans, diagonal included: Linear(FFNN([s_i, s_j, s_i*s_j]))
//   + mention_i + mention_j, the null relation scored 0; argmax; non-null pairs are relations, row-major.
//   Relations are predicted independently of NER: get_entity keeps those whose first span is an entity and
//   whose second span is one too.
//
// Our choices where the official code has no answer: a text whose words all have no word pieces gets zero
// word vectors (allennlp would hand BERT an empty input); more kept spans than spans is clamped (torch.topk
// would raise); a report of whitespace only has no words and no entities (radgraph would fail on it).
// Mechanism (BERT, the span scorers) runs in C++ (lr_radgraph_*); the text, word pieces,
// pooling, spans, pruning and decoding are here.

import { abortedError, fromNative, invalidArgument, LlavaRadError } from '../errors.js';
import { DEFAULT_BERT_BATCH_TOKENS, defaultBertBatchSize, packBertBatch, planBertBatches } from '../bert/batch-plan.js';
import { BertTokenizer, WordPieceVocab } from '../bert/wordpiece.js';
import type { RadgraphAnnotation } from '../eval/radgraph-reward.js';
import { ggufNumber, ggufStringArray, readGgufMetadata } from '../gguf/read-metadata.js';
import { native, type NativeModelParams } from '../native.js';
import { annotation, decodeNer, decodeRelations, enumerateSpans, keptSpanCount, pruneSpans } from './decode.js';
import { radgraphWords } from './words.js';

/**
 * The longest report annotated, in words, and the most spans kept for relations. Every ordered pair of kept
 * spans is scored, so time and the relation scores grow with the square of the words: at the released model's
 * shape (spans_per_word 0.5) 2,000 words took 28 s on 2 cores (bench/radgraph.mjs), 4,096 take about two
 * minutes, and a 65,536-byte text of one-letter words (32,768 words) would take hours and 13 GB of scores. A
 * findings section has a few hundred words.
 */
export const RADGRAPH_MAX_WORDS = 4096;
export const RADGRAPH_MAX_KEPT_SPANS = 2048;

/** why RadGraph will not annotate a text of `nWords` words with `spansPerWord`, or undefined when it will */
export function radgraphTooLong(nWords: number, spansPerWord: number): string | undefined {
  if (nWords > RADGRAPH_MAX_WORDS) {
    return `${nWords} words; RadGraph annotates reports of at most ${RADGRAPH_MAX_WORDS} (every pair of its kept spans is scored, so the time grows with the square of the words; a findings section has a few hundred)`;
  }
  const kept = keptSpanCount(nWords, spansPerWord);
  if (kept > RADGRAPH_MAX_KEPT_SPANS) {
    return `${nWords} words, of which this model (spans_per_word ${spansPerWord}) would keep ${kept} spans; at most ${RADGRAPH_MAX_KEPT_SPANS} are scored in pairs`;
  }
  return undefined;
}

/** what the addon's loadRadgraph / Radgraph expose (native/addon/radgraph.cpp) */
interface NativeRadgraph {
  info(): { backend: string; nVocab: number; nCtx: number; nEmbd: number; nWidthEmbd: number; spanDim: number; nNerLabels: number; nRelationLabels: number };
  encode(ids: Int32Array): Promise<Float32Array>;
  encodeBatch(ids: Int32Array, counts: Int32Array): Promise<Float32Array>;
  scoreSpans(words: Float32Array, spans: Int32Array): Promise<{ ner: Float32Array; mention: Float32Array }>;
  scorePairs(words: Float32Array, spans: Int32Array, mention: Float32Array): Promise<Float32Array>;
  dispose(): Promise<void>;
}
interface NativeRadgraphAddon {
  loadRadgraph(path: string, params?: NativeModelParams): Promise<NativeRadgraph>;
}

/** the settings the converter put in the GGUF (lib/convert/radgraph.ts) */
export interface RadgraphSettings {
  maxLength: number;
  maxSpanWidth: number;
  spansPerWord: number;
  nerLabels: string[];
  relationLabels: string[];
}

/** everything one report went through, for inspection and tests */
export interface RadgraphTrace {
  words: string[];
  /** each word's WordPiece ids ([] for a word with none) */
  wordPieces: number[][];
  /** the segments encoded, [CLS] ... [SEP] each */
  segments: number[][];
  /** words x n_embd pooled word vectors */
  wordVectors: Float32Array;
  spans: Array<[number, number]>;
  /** spans x (entity labels - 1) */
  nerScores: Float32Array;
  mentionScores: Float32Array;
  /** indices into spans of the kept spans, ascending */
  top: number[];
  /** kept x kept x relation labels */
  relationScores: Float32Array;
  annotation: RadgraphAnnotation;
}

export interface RadgraphAnnotateManyOptions {
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

function settingsOf(meta: Awaited<ReturnType<typeof readGgufMetadata>>, path: string): { settings: RadgraphSettings; vocab: WordPieceVocab } {
  const need = <T>(v: T | undefined, key: string): T => {
    if (v === undefined) throw new LlavaRadError('BAD_GGUF', `${path}: no ${key} (not a GGUF from llava-rad convert-radgraph)`);
    return v;
  };
  const nerLabels = need(ggufStringArray(meta, 'radgraph.ner_labels', path), 'radgraph.ner_labels');
  const relationLabels = need(ggufStringArray(meta, 'radgraph.relation_labels', path), 'radgraph.relation_labels');
  const settings: RadgraphSettings = {
    maxLength: need(ggufNumber(meta, 'radgraph.max_length', path), 'radgraph.max_length'),
    maxSpanWidth: need(ggufNumber(meta, 'radgraph.max_span_width', path), 'radgraph.max_span_width'),
    spansPerWord: need(ggufNumber(meta, 'radgraph.spans_per_word', path), 'radgraph.spans_per_word'),
    nerLabels, relationLabels,
  };
  if (nerLabels[0] !== '' || nerLabels.length < 2 || relationLabels.length < 1) throw new LlavaRadError('BAD_GGUF', `${path}: radgraph.ner_labels must start with the null label ""`);
  if (settings.maxLength !== 0 && settings.maxLength < 3) throw new LlavaRadError('BAD_GGUF', `${path}: radgraph.max_length ${settings.maxLength} leaves no room for word pieces`);
  if (!(settings.spansPerWord > 0)) throw new LlavaRadError('BAD_GGUF', `${path}: radgraph.spans_per_word must be positive`);
  let vocab: WordPieceVocab;
  try {
    vocab = new WordPieceVocab(need(ggufStringArray(meta, 'tokenizer.ggml.tokens', path), 'tokenizer.ggml.tokens'));
  } catch (e) {
    throw new LlavaRadError('BAD_GGUF', `${path}: ${(e as Error).message}`, { cause: e });
  }
  return { settings, vocab };
}

export class RadgraphModel {
  readonly tokenizer: BertTokenizer;
  readonly settings: RadgraphSettings;
  readonly #native: NativeRadgraph;
  readonly #info: ReturnType<NativeRadgraph['info']>;

  private constructor(nr: NativeRadgraph, tokenizer: BertTokenizer, settings: RadgraphSettings) {
    this.#native = nr;
    this.#info = nr.info();
    this.tokenizer = tokenizer;
    this.settings = settings;
  }

  /** loads a GGUF from lib/convert/radgraph.ts (llava-rad convert-radgraph) */
  static async load(ggufPath: string, params: NativeModelParams = {}): Promise<RadgraphModel> {
    if (typeof ggufPath !== 'string' || ggufPath === '') throw invalidArgument('the RadGraph GGUF path', 'a non-empty string', ggufPath);
    if (params === null || typeof params !== 'object') throw invalidArgument('params', 'an object', params);
    const { settings, vocab } = settingsOf(await readGgufMetadata(ggufPath), ggufPath);
    let nr: NativeRadgraph;
    try {
      nr = await (native() as unknown as NativeRadgraphAddon).loadRadgraph(ggufPath, params);
    } catch (e) {
      throw fromNative(e);
    }
    const info = nr.info();
    const problem = info.nVocab !== vocab.size ? `${info.nVocab} token embeddings for ${vocab.size} pieces`
      : info.nNerLabels !== settings.nerLabels.length - 1 || info.nRelationLabels !== settings.relationLabels.length ? 'label counts differ from the scorers'
        : settings.maxSpanWidth > info.nWidthEmbd ? `max_span_width ${settings.maxSpanWidth} exceeds the ${info.nWidthEmbd} width embeddings`
          : settings.maxLength > info.nCtx ? `max_length ${settings.maxLength} exceeds the ${info.nCtx} positions` : undefined;
    if (problem !== undefined) {
      await nr.dispose();
      throw new LlavaRadError('BAD_GGUF', `${ggufPath}: ${problem}`);
    }
    return new RadgraphModel(nr, new BertTokenizer(vocab), settings);
  }

  /** the annotation of one report (radgraph's RadGraph(...)(report), one document) */
  async annotate(report: string): Promise<RadgraphAnnotation> {
    return (await this.trace(report)).annotation;
  }

  /** annotate() with every intermediate result */
  async trace(report: string): Promise<RadgraphTrace> {
    if (typeof report !== 'string') throw invalidArgument('report', 'a string', report);
    const { nEmbd: D, nCtx } = this.#info;
    const s = this.settings;
    const words = radgraphWords(report);
    const tooLong = radgraphTooLong(words.length, s.spansPerWord);
    if (tooLong) throw new LlavaRadError('INVALID_ARGUMENT', `the report has ${tooLong}`);
    const wordPieces = words.map((w) => this.tokenizer.tokenize(w));
    const pieces = wordPieces.flat();
    const room = s.maxLength > 0 ? s.maxLength - 2 : nCtx - 2;
    if (s.maxLength === 0 && pieces.length > room) {
      throw new LlavaRadError('INVALID_ARGUMENT', `the report has ${pieces.length} word pieces; this model (no max_length) reads at most ${room}`);
    }
    const segments: number[][] = [];
    for (let i = 0; i < pieces.length; i += room) segments.push([this.tokenizer.clsId, ...pieces.slice(i, i + room), this.tokenizer.sepId]);
    // the segments' pieces' states, in order; on a GPU segments of one report share graphs (padded, masked)
    const states = new Float32Array(pieces.length * D);
    const segmentAt = segments.map((_, i) => i * room);
    const maxBatchTokens = Math.max(DEFAULT_BERT_BATCH_TOKENS, nCtx);
    for (const batch of planBertBatches(segments.map((g) => g.length), defaultBertBatchSize(this.#info.backend), maxBatchTokens)) {
      const { ids, counts } = packBertBatch(segments, batch);
      const h = await this.#call(() => this.#native.encodeBatch(ids, counts));
      let row = 0;
      batch.forEach((k, b) => {
        states.set(h.subarray((row + 1) * D, (row + counts[b]! - 1) * D), segmentAt[k]! * D);
        row += counts[b]!;
      });
    }
    // a word's vector: the mean of its pieces' states (zero where it has none)
    const wordVectors = new Float32Array(words.length * D);
    let p = 0;
    wordPieces.forEach((wp, j) => {
      if (wp.length === 0) return;
      for (let d = 0; d < D; d++) {
        let sum = 0;
        for (let k = 0; k < wp.length; k++) sum += states[(p + k) * D + d]!;
        wordVectors[j * D + d] = sum / wp.length;
      }
      p += wp.length;
    });
    const spans = enumerateSpans(words.length, s.maxSpanWidth);
    if (spans.length === 0) { // a report of whitespace only: no words, nothing to score
      const none = new Float32Array(0);
      return { words, wordPieces, segments, wordVectors, spans, nerScores: none, mentionScores: none, top: [], relationScores: none, annotation: annotation(words, [], []) };
    }
    const { ner: nerScores, mention: mentionScores } = await this.#call(() => this.#native.scoreSpans(wordVectors, Int32Array.from(spans.flat())));
    const top = pruneSpans(mentionScores, words.length, s.spansPerWord);
    const topSpans = top.map((i) => spans[i]!);
    const relationScores = await this.#call(() => this.#native.scorePairs(wordVectors, Int32Array.from(topSpans.flat()), Float32Array.from(top, (i) => mentionScores[i]!)));
    const ner = decodeNer(spans, nerScores, s.nerLabels);
    const relations = decodeRelations(topSpans, relationScores, s.relationLabels);
    return { words, wordPieces, segments, wordVectors, spans, nerScores, mentionScores, top, relationScores, annotation: annotation(words, ner, relations) };
  }

  /** annotates reports one after another (each distinct text once) */
  async annotateMany(reports: readonly string[], options: RadgraphAnnotateManyOptions = {}): Promise<RadgraphAnnotation[]> {
    if (!Array.isArray(reports)) throw invalidArgument('reports', 'an array of strings', reports);
    reports.forEach((r, i) => { if (typeof r !== 'string') throw invalidArgument(`reports[${i}]`, 'a string', r); });
    if (options === null || typeof options !== 'object') throw invalidArgument('options', 'an object', options);
    const distinct = [...new Set(reports)];
    const done = new Map<string, RadgraphAnnotation>();
    for (const text of distinct) {
      if (options.signal?.aborted) throw abortedError(options.signal, 'RadGraph annotation');
      done.set(text, await this.annotate(text));
      options.onProgress?.(done.size, distinct.length);
    }
    return reports.map((r) => structuredClone(done.get(r)!));
  }

  async dispose(): Promise<void> {
    await this.#native.dispose();
  }

  async #call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw fromNative(e);
    }
  }
}
