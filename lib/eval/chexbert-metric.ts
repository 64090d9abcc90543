// The "chexbert" metric family of evaluate(): CheXbert's labeler (lib/bert/chexbert.ts) run on every
// reference and prediction, then
//
//   chexbert    the official CheXbert F1 scoring (chexbert-f1.ts: rrg_eval/chexbert.py + run.py's eight
//               headline numbers with scipy.stats.bootstrap medians and 95% intervals, per-condition tables)
//   sembScore   SembScore (Yu et al. 2023, rajpurkarlab/CXR-Report-Metric CXRMetric/run_eval.py
//               add_semb_col): per study, the cosine similarity of the [CLS] hidden states CheXbert's encoder
//               gives the reference and the prediction (CheXbert/src/models/bert_encoder.py with logits=False:
//               final_hidden[:, 0, :], no pooler), (label * pred).sum() / (norm(label) * norm(pred)); the
//               score is the mean over studies. The reference code writes per-study scores and does not
//               bootstrap them, so neither do we. (It computes in float32; we take the float32 vectors and
//               compute in float64: a difference of the order of 1e-7.)

import { ChexbertLabeler, type ChexbertResult } from '../bert/chexbert.js';
import { describeValue, LlavaRadError } from '../errors.js';
import type { NativeModelParams } from '../native.js';
import { chexbertF1, type ChexbertClass, type ChexbertF1Result } from './chexbert-f1.js';
import { numpyMean } from './scipy-bootstrap.js';

/** a CheXbert GGUF path (loaded for the call and disposed after) or a labeler the caller owns */
export type ChexbertSource = string | ChexbertLabeler;

/** metrics.chexbert: the CheXbert F1 scores of chexbertF1() on the labeler's labels */
export type ChexbertMetricResult = ChexbertF1Result;

export interface SembScoreResult {
  /** mean over studies of the cosine similarity of the reference's and the prediction's CheXbert [CLS] states */
  score: number;
}

/** what evaluate() needs of the chexbert options */
export interface ChexbertMetricOptions {
  chexbert?: ChexbertSource;
  /** backend / threads / mmap for a GGUF path */
  chexbertParams?: NativeModelParams;
  signal?: AbortSignal;
}

/** runs `fn` with a labeler: the caller's, or one loaded from a path and disposed after */
export async function withChexbert<T>(opts: ChexbertMetricOptions, fn: (labeler: ChexbertLabeler) => Promise<T>): Promise<T> {
  const src = opts.chexbert;
  if (src instanceof ChexbertLabeler) return fn(src);
  if (typeof src !== 'string' || src === '') {
    throw new LlavaRadError('INVALID_ARGUMENT', `the chexbert metric needs a CheXbert labeler: pass chexbert (a GGUF path from llava-rad convert-chexbert, or a ChexbertLabeler), got ${describeValue(src)}`);
  }
  const labeler = await ChexbertLabeler.load(src, opts.chexbertParams ?? {});
  try {
    return await fn(labeler);
  } finally {
    await labeler.dispose();
  }
}

/** SembScore's per-study cosine similarity */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new LlavaRadError('INVALID_ARGUMENT', `embeddings of different lengths (${a.length} and ${b.length})`);
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  return dot / (Math.sqrt(na) * Math.sqrt(nb));
}

/** labels of the references and the predictions (identical texts labeled once) */
export async function labelPairs(labeler: ChexbertLabeler, references: readonly string[], predictions: readonly string[], signal?: AbortSignal): Promise<{ refs: ChexbertResult[]; preds: ChexbertResult[] }> {
  const all = await labeler.labelMany([...references, ...predictions], signal ? { signal } : {});
  return { refs: all.slice(0, references.length), preds: all.slice(references.length) };
}

/** the two metrics from labels already computed */
export function chexbertMetrics(refs: readonly ChexbertResult[], preds: readonly ChexbertResult[], bootstrap: number): { chexbert: ChexbertMetricResult; sembScore: SembScoreResult } {
  const chexbert = chexbertF1(refs.map((r) => r.labels as ChexbertClass[]), preds.map((p) => p.labels as ChexbertClass[]), { bootstrap });
  const cos = refs.map((r, i) => cosineSimilarity(r.cls, preds[i]!.cls));
  return { chexbert, sembScore: { score: numpyMean(cos) } };
}
