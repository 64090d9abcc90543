// GREEN (Generative Radiology Report Evaluation and Error Notation) on our engine: the GREEN model (a LLaMA-2
// decoder, StanfordAIMI/GREEN-RadLlama2-7b, as a GGUF) reads each (reference, candidate) pair in GREEN's
// prompt and writes an error analysis; green-parse.ts turns it into counts and a score.
//
// Per study: the chat pieces of green-prompt.ts, tokenized as the model's tokenizer does (BOS, each piece
// with EOS after it), cut to GREEN_MAX_LENGTH tokens from the right as green.py's truncation does, then
// greedy generation until EOS or GREEN_MAX_LENGTH tokens in all. green.py generates in left-padded batches
// of 8, where max_length counts the padded prompt: a study next to a longer prompt gets fewer new tokens
// there. Here each study gets what it would get alone (batching never changes a result).
// The decoded text given to clean_responses is the prompt's and the answer's (special tokens skipped, then
// transformers' clean_up_tokenization, which green.py turns on), as green.py decodes the whole sequence.
//
// Corpus values (green.py compute_summary): `score` = np.mean of the per-study scores, `std` = np.std
// (population), `accuracy` per sub-category = the share of studies with no such clinically significant error.
// green.py reports no interval; `ci` here is the percentile interval of scipy.stats.bootstrap of the mean
// (500 resamples, random_state 3), as the official LLaVA-Rad evaluation does for its other metrics. GREEN's
// "representative sentences" (sentence-transformers clustering) are not computed.

import { describeValue, LlavaRadError } from '../../errors.js';
import { loadModel, type LlamaModel } from '../../model.js';
import type { LoadModelOptions } from '../../options.js';
import type { ScoredPair } from '../read-predictions.js';
import { numpyMean, numpyStd, scipyBootstrap } from '../scipy-bootstrap.js';
import { GREEN_SUB_CATEGORIES, cleanGreenResponse, greenCounts, greenScoreOf, hfCleanUpTokenization, type GreenCounts } from './green-parse.js';
import { GREEN_MAX_LENGTH, greenChatPieces, makeGreenPrompt, type GreenPrompt } from './green-prompt.js';

export interface GreenOptions {
  /** the GREEN model: a GGUF path or a loaded LlamaModel (not disposed here) */
  model: string | LlamaModel;
  /** the prompt from loadGreenPrompt(--green-dir) */
  prompt: GreenPrompt;
  /** studies generated at once (sequence slots when `model` is a path; default 4) */
  parallel?: number;
  /** load parameters when `model` is a path (backend, threads, ...) */
  loadParams?: Omit<LoadModelOptions, 'model' | 'parallel' | 'contextSize'>;
  bootstrap?: number;
  /** the longest token sequence, prompt and answer (default GREEN_MAX_LENGTH, 2048, as green.py); a prompt is
   *  cut to it and the answer fills the rest */
  maxLength?: number;
  signal?: AbortSignal;
  /** called after each study, in completion order */
  onStudy?: (done: number, total: number) => void;
}

export interface GreenStudy {
  score: number;
  counts: GreenCounts;
  /** the model's analysis after clean_responses */
  analysis: string;
  /** generated tokens; stopReason 'max_tokens' means the analysis was cut at GREEN_MAX_LENGTH */
  nTokens: number;
  stopReason: string;
}

export interface GreenResult {
  /** np.mean of the per-study scores (what GREEN reports) */
  score: number;
  /** percentile bootstrap interval of the mean (see the header) */
  ci: [number, number];
  /** np.std of the per-study scores */
  std: number;
  /** per sub-category (a) .. (f): the share of studies with none of those clinically significant errors */
  accuracy: Record<string, number>;
  studies: GreenStudy[];
  /** sha256 of the utils.py the prompt came from */
  promptSha256: string;
}

/** the prompt token ids of one study (BOS, each chat piece then EOS, cut to GREEN_MAX_LENGTH) */
export function greenPromptTokens(model: LlamaModel, prompt: GreenPrompt, reference: string, candidate: string, maxLength = GREEN_MAX_LENGTH): number[] {
  const ids = [model.info.bosToken];
  for (const piece of greenChatPieces(makeGreenPrompt(prompt, reference, candidate))) {
    ids.push(...model.tokenize(piece, { addBos: false }), model.info.eosToken);
  }
  return ids.slice(0, maxLength);
}

async function scoreOne(model: LlamaModel, prompt: GreenPrompt, pair: ScoredPair, maxLength: number, signal: AbortSignal | undefined): Promise<GreenStudy> {
  const ids = greenPromptTokens(model, prompt, pair.reference, pair.prediction, maxLength);
  const room = maxLength - ids.length;
  let text = '';
  let nTokens = 0;
  let stopReason = 'max_tokens';
  if (room > 0) {
    const r = await model.generate(ids, { maxTokens: room, temperature: 0, ...(signal ? { signal } : {}) });
    text = r.text;
    nTokens = r.tokens.length;
    stopReason = r.stopReason;
  }
  const decoded = hfCleanUpTokenization(model.detokenize(ids, { skipSpecial: true, removeLeadingSpace: true }) + text);
  const analysis = cleanGreenResponse(decoded);
  const counts = greenCounts(analysis);
  return { score: greenScoreOf(counts), counts, analysis, nTokens, stopReason };
}

/** GREEN over the pairs (at least one), in input order */
export async function scoreGreen(pairs: readonly ScoredPair[], options: GreenOptions): Promise<GreenResult> {
  if (options === null || typeof options !== 'object') throw new LlavaRadError('INVALID_ARGUMENT', `GREEN options must be an object, got ${describeValue(options)}`);
  const parallel = options.parallel ?? 4;
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) {
    throw new LlavaRadError('INVALID_ARGUMENT', `GREEN parallel must be an integer from 1 to 64, got ${describeValue(parallel)}`);
  }
  const maxLength = options.maxLength ?? GREEN_MAX_LENGTH;
  if (!Number.isInteger(maxLength) || maxLength < 16 || maxLength > 1 << 20) {
    throw new LlavaRadError('INVALID_ARGUMENT', `GREEN maxLength must be an integer from 16 to ${1 << 20}, got ${describeValue(maxLength)}`);
  }
  if (pairs.length === 0) throw new LlavaRadError('BAD_PREDICTIONS', 'no records to score');
  const own = typeof options.model === 'string';
  const model = typeof options.model === 'string'
    ? await loadModel({ ...(options.loadParams ?? {}), model: options.model, parallel, contextSize: maxLength * parallel })
    : options.model;
  try {
    const studies: GreenStudy[] = new Array(pairs.length);
    let next = 0;
    let done = 0;
    const worker = async () => {
      for (let i = next++; i < pairs.length; i = next++) {
        studies[i] = await scoreOne(model, options.prompt, pairs[i]!, maxLength, options.signal);
        options.onStudy?.(++done, pairs.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(parallel, pairs.length) }, worker));
    return summarizeGreen(studies, options.prompt.sha256, options.bootstrap);
  } finally {
    if (own) await model.dispose();
  }
}

/** the corpus values of per-study results (green.py compute_summary, plus the bootstrap interval; bootstrap 0: none) */
export function summarizeGreen(studies: readonly GreenStudy[], promptSha256: string, bootstrap = 500): GreenResult {
  const scores = Float64Array.from(studies, (s) => s.score);
  const accuracy: Record<string, number> = {};
  GREEN_SUB_CATEGORIES.forEach((name, k) => {
    accuracy[name] = numpyMean(Float64Array.from(studies, (s) => (s.counts.significant[k] === 0 ? 1 : 0)));
  });
  let ci: [number, number] = [scores[0]!, scores[0]!];
  if (scores.length >= 2 && bootstrap >= 1) {
    const resample = new Float64Array(scores.length);
    const bs = scipyBootstrap(scores.length, (idx) => {
      for (let j = 0; j < idx.length; j++) resample[j] = scores[idx[j]!]!;
      return numpyMean(resample);
    }, { nResamples: bootstrap });
    ci = [bs.ci.low, bs.ci.high];
  }
  return { score: numpyMean(scores), ci, std: numpyStd(scores), accuracy, studies: [...studies], promptSha256 };
}
