// The radgraph metric of `evaluate` / `llava-rad eval --metrics radgraph`: RadGraph's model annotates every
// non-empty reference and prediction (an empty one is never annotated and scores 0, as F1RadGraph.forward
// does), then lib/eval/radgraph-reward.ts gives the official F1RadGraphv2 reward and run.py's bootstrap.

import { describeValue, invalidArgument, LlavaRadError } from '../errors.js';
import { radgraphF1, RADGRAPH_REWARD_LEVELS, type RadgraphAnnotation, type RadgraphRewardLevel } from '../eval/radgraph-reward.js';
import type { NativeModelParams } from '../native.js';
import { RADGRAPH_MAX_WORDS, RadgraphModel } from './radgraph.js';
import { radgraphWords } from './words.js';

export type RadgraphSource = string | RadgraphModel;

export interface RadgraphMetricOptions {
  /** a GGUF path from llava-rad convert-radgraph, or a loaded RadgraphModel */
  radgraph?: RadgraphSource;
  /** backend / threads / mmap for a GGUF path */
  radgraphParams?: NativeModelParams;
  /** "simple", "partial" (default: the official evaluation's) or "complete" */
  radgraphLevel?: RadgraphRewardLevel;
  /** lowercase every tuple's tokens (radgraph since 2026); default false, as the official copy */
  radgraphLowercase?: boolean;
  signal?: AbortSignal;
}

export interface RadgraphMetricResult {
  /** run.py's value: the median of the bootstrap means of the per-report F1 */
  score: number;
  /** the 95% percentile interval of those means */
  ci: [number, number];
  /** the plain mean F1, precision and recall over the reports */
  f1: number;
  precision: number;
  recall: number;
  rewardLevel: RadgraphRewardLevel;
  lowercase: boolean;
}

/** checks the radgraph options (INVALID_ARGUMENT) */
export function checkRadgraphOptions(o: RadgraphMetricOptions): void {
  if (o.radgraph !== undefined && !(o.radgraph instanceof RadgraphModel) && (typeof o.radgraph !== 'string' || o.radgraph === '')) {
    throw invalidArgument('radgraph', 'a GGUF path from llava-rad convert-radgraph or a RadgraphModel', o.radgraph);
  }
  if (o.radgraphLevel !== undefined && !(RADGRAPH_REWARD_LEVELS as readonly unknown[]).includes(o.radgraphLevel)) {
    throw invalidArgument('radgraphLevel', '"simple", "partial" or "complete"', o.radgraphLevel);
  }
  if (o.radgraphLowercase !== undefined && typeof o.radgraphLowercase !== 'boolean') throw invalidArgument('radgraphLowercase', 'a boolean', o.radgraphLowercase);
}

/**
 * Before any scoring: BAD_PREDICTIONS naming the record when a reference or a prediction has more words than
 * RadGraph annotates (RADGRAPH_MAX_WORDS), so that an evaluation is refused at once instead of failing, or
 * running for hours, after the other metrics. `label` names the file or set ("A", a path).
 */
export function checkRadgraphLengths(pairs: ReadonlyArray<{ id?: string; reference: string; prediction: string }>, label?: string): void {
  pairs.forEach((p, i) => {
    for (const field of ['reference', 'prediction'] as const) {
      // a word is at least one character: only a long text needs splitting
      if (p[field].length <= RADGRAPH_MAX_WORDS) continue;
      const n = radgraphWords(p[field]).length;
      if (n > RADGRAPH_MAX_WORDS) {
        const where = `${label ? `${label}: ` : ''}record ${i + 1} of those scored${p.id !== undefined ? ` (id ${JSON.stringify(p.id)})` : ''}`;
        throw new LlavaRadError('BAD_PREDICTIONS',
          `${where}: the ${field} has ${n} words; the radgraph metric reads reports of at most ${RADGRAPH_MAX_WORDS} (RadGraph scores every pair of its kept spans, so the time grows with the square of the words; a findings section has a few hundred)`);
      }
    }
  });
}

/** runs `fn` with a model: the caller's, or one loaded from a path and disposed after */
export async function withRadgraph<T>(opts: RadgraphMetricOptions, fn: (model: RadgraphModel) => Promise<T>): Promise<T> {
  const src = opts.radgraph;
  if (src instanceof RadgraphModel) return fn(src);
  if (typeof src !== 'string' || src === '') {
    throw new LlavaRadError('INVALID_ARGUMENT', `the radgraph metric needs RadGraph's model: pass radgraph (a GGUF path from llava-rad convert-radgraph, or a RadgraphModel), got ${describeValue(src)}`);
  }
  const model = await RadgraphModel.load(src, opts.radgraphParams ?? {});
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

/** the annotations of texts in order; an empty text is never annotated (null), as F1RadGraph.forward does */
export async function annotateReports(model: RadgraphModel, texts: readonly string[], signal?: AbortSignal): Promise<Array<RadgraphAnnotation | null>> {
  const nonEmpty = texts.filter((t) => t !== '');
  const done = await model.annotateMany(nonEmpty, signal ? { signal } : {});
  let k = 0;
  return texts.map((t) => (t === '' ? null : done[k++]!));
}

/** the radgraph metric of references and predictions (same order), with `bootstrap` resamples */
export async function radgraphMetric(references: readonly string[], predictions: readonly string[], opts: RadgraphMetricOptions, bootstrap: number): Promise<RadgraphMetricResult> {
  return withRadgraph(opts, async (model) => {
    const refs = await annotateReports(model, references, opts.signal);
    const preds = await annotateReports(model, predictions, opts.signal);
    const r = radgraphF1(refs, preds, { rewardLevel: opts.radgraphLevel ?? 'partial', lowercase: opts.radgraphLowercase ?? false, bootstrap });
    return {
      score: r.resampled!.median, ci: r.resampled!.ci, f1: r.f1, precision: r.precision, recall: r.recall,
      rewardLevel: r.rewardLevel, lowercase: r.lowercase,
    };
  });
}
