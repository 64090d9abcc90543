// `evaluate`: the report-generation metrics of the official LLaVA-Rad evaluation
// (llava/eval/rrg_eval/run.py with bootstrap_ci=True), computed here with the same numbers:
//
//   bleu1, bleu4  sacrebleu BLEU (13a, exp smoothing) with max_ngram_order 1 and 4; `score` is the corpus
//                 score, `ci` the bootstrap mean -/+ sacrebleu's half-width (0..100)
//   rougeL        rouge_score ROUGE-L F-measure; `score` is the median of the bootstrap means, `ci` the
//                 2.5th and 97.5th percentiles (0..1)
//   chexbert      CheXbert F1 (rrg_eval/chexbert.py, run.py's eight numbers with scipy.stats.bootstrap, and the
//                 per-condition reports) from CheXbert's labels of each reference and prediction (0..1)
//   sembScore     SembScore: mean cosine similarity of the CheXbert [CLS] states (chexbert-metric.ts)
//   radgraph      RadGraph F1 (rrg_eval/f1radgraph.py F1RadGraphv2, reward level partial by default): RadGraph's
//                 model (lib/radgraph) annotates the texts, radgraph-reward.ts scores them; `score` is the
//                 median of the bootstrap means, `ci` the 95% interval (0..1)

import { describeValue, LlavaRadError } from '../errors.js';
import { bleuCorpusStats, corpusBleu } from './bleu.js';
import { bleuBootstrap, rougeBootstrap, sacrebleuRows } from './bootstrap.js';
import { chexbertMetrics, labelPairs, withChexbert, type ChexbertMetricOptions, type ChexbertMetricResult, type SembScoreResult } from './chexbert-metric.js';
import { pairsOf, readPredictions, type EvalRecord, type ReadPredictions, type RepeatedIds, type ScoredPair } from './read-predictions.js';
import { rougeL } from './rouge.js';
import { fsum } from './text.js';
import { checkRadgraphLengths, checkRadgraphOptions, radgraphMetric, type RadgraphMetricOptions, type RadgraphMetricResult } from '../radgraph/metric.js';

/** metric families: "bleu" gives bleu1 and bleu4, "rouge" gives rougeL, "chexbert" gives chexbert and sembScore, "radgraph" radgraph */
export const EVAL_METRICS = ['bleu', 'rouge', 'chexbert', 'radgraph'] as const;
export type EvalMetric = (typeof EVAL_METRICS)[number];
/** the families scored when none are named (chexbert needs a model, so it is asked for by name) */
export const DEFAULT_METRICS: readonly EvalMetric[] = ['bleu', 'rouge'];
/** metrics of issue #16 that are not implemented yet */
/** metric names that are planned: asking for one is UNSUPPORTED rather than a bad argument */
export const PLANNED_METRICS: readonly string[] = ['bertscore', 'chexprompt', 'green'];

export const DEFAULT_BOOTSTRAP = 500;
export const MAX_BOOTSTRAP = 100_000;

export interface EvalOptions extends ChexbertMetricOptions, RadgraphMetricOptions {
  /** which metric families (default: bleu and rouge; chexbert needs the `chexbert` option) */
  metrics?: readonly EvalMetric[];
  /** bootstrap resamples (default 500, as the official evaluation); an integer from 2 to 100000 */
  bootstrap?: number;
}

export interface MetricResult {
  /** the value the official evaluation reports */
  score: number;
  /** the 95% interval as the official evaluation reports it */
  ci: [number, number];
}

export interface BleuResult extends MetricResult {
  /** mean of the bootstrap scores (sacrebleu's `_mean`) */
  mean: number;
  /** n-gram precisions of the corpus score, in percent */
  precisions: number[];
  /** brevity penalty of the corpus score */
  bp: number;
}

export interface RougeResult extends MetricResult {
  /** the plain mean F-measure over the studies (no resampling) */
  mean: number;
}

export interface EvalResult {
  /** studies scored */
  n: number;
  /** records skipped because they carry an error (failed studies) */
  skipped: number;
  /**
   * scored records whose id an earlier one has: each is scored, as the official evaluation scores every row
   * (`llava-rad merge` keeps one record per study)
   */
  repeated: RepeatedIds;
  /** the file's unterminated last line was not JSON (a record still being written) and was left out */
  tornLastLine: boolean;
  bootstrap: number;
  metrics: { bleu1?: BleuResult; bleu4?: BleuResult; rougeL?: RougeResult; chexbert?: ChexbertMetricResult; sembScore?: SembScoreResult; radgraph?: RadgraphMetricResult };
}

export interface ResolvedOptions extends ChexbertMetricOptions, RadgraphMetricOptions {
  metrics: EvalMetric[];
  bootstrap: number;
}

/** checks evaluate()'s options (INVALID_ARGUMENT / UNSUPPORTED) */
export function resolveOptions(options: EvalOptions = {}): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new LlavaRadError('INVALID_ARGUMENT', `options must be an object, got ${describeValue(options)}`);
  const bootstrap = options.bootstrap ?? DEFAULT_BOOTSTRAP;
  if (typeof bootstrap !== 'number' || !Number.isInteger(bootstrap) || bootstrap < 2 || bootstrap > MAX_BOOTSTRAP) {
    throw new LlavaRadError('INVALID_ARGUMENT', `bootstrap must be an integer between 2 and ${MAX_BOOTSTRAP}, got ${describeValue(bootstrap)}`);
  }
  const metrics = options.metrics ?? [...DEFAULT_METRICS];
  if (!Array.isArray(metrics) || metrics.length === 0) {
    throw new LlavaRadError('INVALID_ARGUMENT', `metrics must be a non-empty array of ${EVAL_METRICS.join(', ')}, got ${describeValue(metrics)}`);
  }
  for (const m of metrics) {
    if (typeof m === 'string' && PLANNED_METRICS.includes(m)) throw new LlavaRadError('UNSUPPORTED', `the ${m} metric is not implemented yet (available: ${EVAL_METRICS.join(', ')})`);
    if (!EVAL_METRICS.includes(m)) throw new LlavaRadError('INVALID_ARGUMENT', `metrics must be among ${EVAL_METRICS.join(', ')}, got ${describeValue(m)}`);
  }
  const unique = [...new Set(metrics)];
  if (unique.includes('chexbert') && options.chexbert === undefined) {
    throw new LlavaRadError('INVALID_ARGUMENT', 'the chexbert metric needs a CheXbert labeler: pass chexbert (a GGUF path from llava-rad convert-chexbert, or a ChexbertLabeler)');
  }
  if (unique.includes('radgraph') && options.radgraph === undefined) {
    throw new LlavaRadError('INVALID_ARGUMENT', 'the radgraph metric needs RadGraph\'s model: pass radgraph (a GGUF path from llava-rad convert-radgraph, or a RadgraphModel)');
  }
  checkRadgraphOptions(options);
  if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) throw new LlavaRadError('INVALID_ARGUMENT', `signal must be an AbortSignal, got ${describeValue(options.signal)}`);
  return {
    metrics: unique,
    bootstrap,
    ...(options.chexbert !== undefined ? { chexbert: options.chexbert } : {}),
    ...(options.chexbertParams !== undefined ? { chexbertParams: options.chexbertParams } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
    ...(options.radgraph !== undefined ? { radgraph: options.radgraph } : {}),
    ...(options.radgraphParams !== undefined ? { radgraphParams: options.radgraphParams } : {}),
    ...(options.radgraphLevel !== undefined ? { radgraphLevel: options.radgraphLevel } : {}),
    ...(options.radgraphLowercase !== undefined ? { radgraphLowercase: options.radgraphLowercase } : {}),
  };
}

/** the scorable pairs of a path or of records in memory */
export function loadPairs(input: string | readonly EvalRecord[]): ReadPredictions {
  if (typeof input === 'string') return readPredictions(input);
  return pairsOf(input);
}

function noPairs(skipped: number): LlavaRadError {
  return new LlavaRadError('BAD_PREDICTIONS', `no records to score${skipped ? ` (all ${skipped} records carry an error)` : ''}`);
}

/** the chexbert family (async: the labeler runs on the engine) */
export async function scoreChexbert(pairs: readonly ScoredPair[], opts: ResolvedOptions): Promise<Pick<EvalResult['metrics'], 'chexbert' | 'sembScore'>> {
  return withChexbert(opts, async (labeler) => {
    const { refs, preds } = await labelPairs(labeler, pairs.map((p) => p.reference), pairs.map((p) => p.prediction), opts.signal);
    return chexbertMetrics(refs, preds, opts.bootstrap);
  });
}

/** scores pairs already read and checked (the bleu and rouge families; chexbert: scoreChexbert) */
export function scorePairs(pairs: readonly ScoredPair[], opts: ResolvedOptions): EvalResult['metrics'] {
  const refs = pairs.map((p) => p.reference);
  const preds = pairs.map((p) => p.prediction);
  const metrics: EvalResult['metrics'] = {};
  if (opts.metrics.includes('bleu')) {
    // both BLEU orders resample with a fresh default_rng(12345), i.e. the same indices
    const rows = sacrebleuRows(pairs.length, opts.bootstrap);
    for (const order of [1, 4] as const) {
      const stats = bleuCorpusStats(preds, refs, order);
      const corpus = corpusBleu(stats, order);
      const bs = bleuBootstrap(stats, order, opts.bootstrap, rows);
      metrics[order === 1 ? 'bleu1' : 'bleu4'] = { score: corpus.score, ci: bs.ci, mean: bs.mean, precisions: corpus.precisions, bp: corpus.bp };
    }
  }
  if (opts.metrics.includes('rouge')) {
    const f = pairs.map((p) => rougeL(p.reference, p.prediction).fmeasure);
    const bs = rougeBootstrap(f, opts.bootstrap);
    metrics.rougeL = { score: bs.median, ci: [bs.low, bs.high], mean: fsum(f) / f.length };
  }
  return metrics;
}

/**
 * Scores predictions against references with the official evaluation's metrics and bootstrap.
 * `input` is a JSONL path or an array of records ({reference, prediction} or batch's {reference, findings};
 * records with `error` are skipped and counted).
 */
export async function evaluate(input: string | readonly EvalRecord[], options: EvalOptions = {}): Promise<EvalResult> {
  const opts = resolveOptions(options);
  if (typeof input !== 'string' && !Array.isArray(input)) throw new LlavaRadError('INVALID_ARGUMENT', `input must be a predictions file path or an array of records, got ${describeValue(input)}`);
  const { pairs, skipped, repeated, tornLastLine } = loadPairs(input);
  if (pairs.length === 0) throw noPairs(skipped);
  if (opts.metrics.includes('radgraph')) checkRadgraphLengths(pairs, typeof input === 'string' ? input : undefined);
  const metrics = scorePairs(pairs, opts);
  if (opts.metrics.includes('chexbert')) Object.assign(metrics, await scoreChexbert(pairs, opts));
  if (opts.metrics.includes('radgraph')) metrics.radgraph = await radgraphMetric(pairs.map((p) => p.reference), pairs.map((p) => p.prediction), opts, opts.bootstrap);
  return { n: pairs.length, skipped, repeated, tornLastLine, bootstrap: opts.bootstrap, metrics };
}
