// The bootstrap procedures of the official LLaVA-Rad evaluation (llava/eval/rrg_eval/run.py), each with
// the random numbers numpy would draw:
//
// - BLEU (sacrebleu `corpus_score(..., n_bootstrap=B)`): one generator `np.random.default_rng(12345)`
//   draws a B x n matrix of indices (`choice(n, size=(B, n))`, row by row); each row's segment
//   statistics are summed and scored. sacrebleu keeps the mean of the B scores and half the distance
//   between the sorted scores at B//40 and B - B//40 - 1; run.py reports the corpus score with the
//   interval mean -/+ that half-width.
// - ROUGE-L (rouge_score's `BootstrapAggregator(n_samples=B)`): numpy's global legacy generator,
//   seeded 3 by run.py at import (no scorer before ROUGE-L draws from it), draws
//   `np.random.choice(np.arange(n), size=n)` B times; each resample's mean F-measure is kept, and the
//   2.5th, 50th and 97.5th percentiles (numpy's linear interpolation) are low, median and high.

import { bleuFromStats } from './bleu.js';
import { RandomState } from './numpy-random.js';
import { ResampleRows } from './resample-rows.js';
import { fsum } from './text.js';

/** the seed sacrebleu gives default_rng (SACREBLEU_SEED's default) */
export const SACREBLEU_SEED = 12345;
/** the seed run.py gives numpy's global generator */
export const RUN_PY_NUMPY_SEED = 3;

/** numpy's `np.percentile(values, q)` with the default "linear" method (numpy 1.22+), q in percent */
export function percentile(values: readonly number[], q: number): number {
  const n = values.length;
  if (n === 0) throw new RangeError('percentile of no values');
  const sorted = Float64Array.from(values).sort();
  const quantile = q / 100;
  const virtual = (n - 1) * quantile;
  let prev: number;
  let next: number;
  if (virtual >= n - 1) prev = next = n - 1;
  else if (virtual < 0) prev = next = 0;
  else {
    prev = Math.floor(virtual);
    next = prev + 1;
  }
  // outside the range prev === next, so the interpolation weight does not matter
  const gamma = prev === next ? 0 : virtual - prev;
  const a = sorted[prev]!;
  const b = sorted[next]!;
  // numpy's _lerp: a + (b - a) * t, or b - (b - a) * (1 - t) where t >= 0.5
  const diff = b - a;
  return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma;
}

/** rouge_score's percentiles for a 95% interval: 100 * [(1 - 0.95) / 2, 0.5, 1 - (1 - 0.95) / 2] */
function aggregatorPercents(confidence = 0.95): [number, number, number] {
  const delta = (1 - confidence) / 2;
  return [100 * delta, 100 * 0.5, 100 * (1 - delta)];
}

export interface BleuBootstrap {
  /** mean of the resampled scores (sacrebleu's `_mean`) */
  mean: number;
  /** sacrebleu's `_ci`: half the distance between the 2.5% and 97.5% order statistics */
  halfWidth: number;
  /** [mean - halfWidth, mean + halfWidth], as run.py reports it */
  ci: [number, number];
  /** the B resampled scores in draw order */
  scores: number[];
}

/**
 * sacrebleu's B x n bootstrap resamples (`default_rng(seed).choice(n, size=(B, n))`), row by row. Each
 * forEach makes a fresh generator, as each sacrebleu `corpus_score` does.
 */
export function sacrebleuRows(n: number, samples: number, seed: number = SACREBLEU_SEED): ResampleRows {
  return ResampleRows.sacrebleu(n, samples, seed);
}

/** sacrebleu's bootstrap of a corpus BLEU from per-segment statistics */
export function bleuBootstrap(stats: readonly number[][], maxOrder: number, samples: number, rows?: ResampleRows): BleuBootstrap {
  const n = stats.length;
  const resamples = rows ?? sacrebleuRows(n, samples);
  const width = 2 + 2 * maxOrder;
  const sum = new Float64Array(width);
  const scores: number[] = [];
  resamples.forEach((row) => {
    sum.fill(0);
    for (let i = 0; i < n; i++) {
      const s = stats[row[i]!]!;
      // sacrebleu sums float32 copies of the statistics: exact for integers below 2^24
      for (let k = 0; k < width; k++) sum[k] = Math.fround(sum[k]! + s[k]!);
    }
    scores.push(bleuFromStats(sum, maxOrder).score);
  });
  const sorted = [...scores].sort((a, b) => a - b);
  const lowerIdx = Math.floor(samples / 40);
  const upperIdx = samples - lowerIdx - 1;
  const halfWidth = 0.5 * (sorted[upperIdx]! - sorted[lowerIdx]!);
  const mean = fsum(scores) / samples;
  return { mean, halfWidth, ci: [mean - halfWidth, mean + halfWidth], scores };
}

export interface RougeBootstrap {
  low: number;
  median: number;
  high: number;
  /** the B resample means in draw order */
  means: number[];
}

/**
 * rouge_score's BootstrapAggregator on one column of scores (the F-measures), drawing from `rng`
 * (default: a legacy generator seeded 3, i.e. numpy's global generator as run.py leaves it).
 */
export function rougeBootstrap(values: readonly number[], samples: number, rng: RandomState = new RandomState(RUN_PY_NUMPY_SEED)): RougeBootstrap {
  const n = values.length;
  const means: number[] = [];
  for (let r = 0; r < samples; r++) {
    const idx = rng.choice(n, n);
    // np.mean(matrix[idx, :], axis=0): row by row accumulation, then one division
    let s = 0;
    for (let i = 0; i < n; i++) s += values[idx[i]!]!;
    means.push(s / n);
  }
  const [pl, pm, ph] = aggregatorPercents();
  return { low: percentile(means, pl), median: percentile(means, pm), high: percentile(means, ph), means };
}
