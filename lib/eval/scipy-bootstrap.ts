// `scipy.stats.bootstrap` as the official LLaVA-Rad evaluation calls it (rrg_eval/chexbert.py and
// rrg_eval/f1radgraph.py, `bootstrap_confidence_interval`):
//
//   bootstrap(data=(list(range(n)),), statistic=f, method="percentile", paired=False, vectorized=False,
//             confidence_level=0.95, random_state=3, n_resamples=500)
//
// and run.py / chexbert.py report `np.median(bs.bootstrap_distribution)` with `bs.confidence_interval`.
// The one sample is the study indices, so `f` receives a resample of indices and looks the studies up.
//
// What scipy does (scipy/stats/_resampling.py, 1.9 to 1.13 alike): random_state=3 becomes
// `np.random.RandomState(3)` (MT19937, legacy seeding); the resamples are drawn in batches of `batch`
// rows (default: all n_resamples in one) with `rng_integers(random_state, 0, n, (batch, n))`, i.e.
// `RandomState.randint(0, n, size=(batch, n))`, row k being resample k; `vectorized=False` calls `f`
// on each row in order. The interval is `np.percentile(theta, q)` (linear) at
// q = alpha * 100 and (1 - alpha) * 100 with alpha = (1 - confidence_level) / 2; the standard error is
// `np.std(theta, ddof=1)`. Checked against scipy 1.11.1 in test/eval-chexbert-f1.test.ts.

import { types } from 'node:util';
import { invalidArgument, LlavaRadError } from '../errors.js';
import { percentile } from './bootstrap.js';
import { RandomState } from './numpy-random.js';
import { ResampleRows } from './resample-rows.js';

/** the random_state the official evaluation passes to scipy.stats.bootstrap */
export const SCIPY_BOOTSTRAP_SEED = 3;
/** the n_resamples the official evaluation passes */
export const SCIPY_BOOTSTRAP_RESAMPLES = 500;

/**
 * numpy's pairwise summation of float64 values (`np.add.reduce` / `np.sum` / `np.mean` on a contiguous
 * 1-D array): blocks of up to 128 summed with 8 accumulators, larger runs split in halves (multiples of 8).
 */
export function pairwiseSum(values: ArrayLike<number>, start = 0, n = values.length - start): number {
  if (n < 8) {
    let res = -0;
    for (let i = 0; i < n; i++) res += values[start + i]!;
    return res;
  }
  if (n <= 128) {
    const r = [0, 0, 0, 0, 0, 0, 0, 0];
    for (let j = 0; j < 8; j++) r[j] = values[start + j]!;
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j]! += values[start + i + j]!;
    let res = ((r[0]! + r[1]!) + (r[2]! + r[3]!)) + ((r[4]! + r[5]!) + (r[6]! + r[7]!));
    for (; i < n; i++) res += values[start + i]!;
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(values, start, n2) + pairwiseSum(values, start + n2, n - n2);
}

/** `np.mean(values)` of a 1-D float64 array (pairwise sum, then one division) */
export function numpyMean(values: ArrayLike<number>): number {
  if (values.length === 0) throw new RangeError('mean of no values');
  return pairwiseSum(values) / values.length;
}

/** `np.median(values)`: the middle value, or the mean of the two middle values ((a + b) / 2) */
export function numpyMedian(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) throw new RangeError('median of no values');
  const sorted = Float64Array.from(values).sort();
  const h = n >> 1;
  return n % 2 === 1 ? sorted[h]! : (sorted[h - 1]! + sorted[h]!) / 2;
}

/** `np.std(values, ddof)`: sqrt of the pairwise sum of squared deviations from the pairwise mean over n - ddof */
export function numpyStd(values: ArrayLike<number>, ddof = 0): number {
  const n = values.length;
  const mean = numpyMean(values);
  const sq = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const d = values[i]! - mean;
    sq[i] = d * d;
  }
  return Math.sqrt(pairwiseSum(sq) / Math.max(n - ddof, 0));
}

export interface ScipyBootstrapOptions {
  /** resamples (scipy's n_resamples; default 500, as the official evaluation) */
  nResamples?: number;
  /** rows drawn per batch (scipy's batch; default all at once). Only the draw grouping: the indices are the same */
  batch?: number;
  /** two-sided confidence level (default 0.95) */
  confidenceLevel?: number;
  /** an integer seed for a fresh RandomState (scipy's random_state=int; default 3), or a RandomState to draw from */
  randomState?: number | RandomState;
}

export interface ScipyBootstrapResult {
  /** `bs.bootstrap_distribution`: the statistic of each resample, in draw order */
  distribution: Float64Array;
  /** `bs.confidence_interval` (percentile method) */
  ci: { low: number; high: number };
  /** `np.median(bs.bootstrap_distribution)`, which the official evaluation reports as the score */
  median: number;
  /** `bs.standard_error`: np.std(distribution, ddof=1) */
  standardError: number;
}

function resolveRng(rs: number | RandomState | undefined): RandomState {
  if (rs === undefined) return new RandomState(SCIPY_BOOTSTRAP_SEED);
  if (rs instanceof RandomState) return rs;
  if (typeof rs !== 'number' || !Number.isInteger(rs) || rs < 0 || rs >= 2 ** 32) throw invalidArgument('randomState', 'an integer between 0 and 2**32 - 1 or a RandomState', rs);
  return new RandomState(rs);
}

function checkCount(v: unknown, what: string, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 10_000_000) throw invalidArgument(what, `an integer between ${min} and 10000000`, v);
  return v;
}

/**
 * The resampled indices scipy.stats.bootstrap draws for one sample of n observations: row-major
 * nResamples x n, row k = resample k (`RandomState(seed).randint(0, n, size=(batch, n))` per batch).
 */
export function scipyBootstrapIndices(n: number, options: Pick<ScipyBootstrapOptions, 'nResamples' | 'batch' | 'randomState'> = {}): Int32Array {
  checkCount(n, 'the number of observations', 2);
  const nResamples = checkCount(options.nResamples ?? SCIPY_BOOTSTRAP_RESAMPLES, 'nResamples', 1);
  const batch = options.batch === undefined ? nResamples : checkCount(options.batch, 'batch', 1);
  if (n * nResamples > 2 ** 31 - 1) throw new LlavaRadError('INVALID_ARGUMENT', `${nResamples} resamples of ${n} observations are too many indices`);
  const rng = resolveRng(options.randomState);
  const out = new Int32Array(n * nResamples);
  // batches change nothing: MT19937 hands out one stream of 32-bit draws whatever the call sizes
  for (let k = 0; k < nResamples; k += batch) {
    const rows = Math.min(batch, nResamples - k);
    rng.fillRandint(out.subarray(k * n, (k + rows) * n), 0, n);
  }
  return out;
}

/** the same resamples row by row (n numbers held instead of nResamples x n) */
export function scipyBootstrapRows(n: number, options: Pick<ScipyBootstrapOptions, 'nResamples' | 'batch' | 'randomState'> = {}): ResampleRows {
  checkCount(n, 'the number of observations', 2);
  const nResamples = checkCount(options.nResamples ?? SCIPY_BOOTSTRAP_RESAMPLES, 'nResamples', 1);
  if (options.batch !== undefined) checkCount(options.batch, 'batch', 1);
  const rs = options.randomState;
  if (rs !== undefined && !(rs instanceof RandomState)) resolveRng(rs); // checks the seed
  return ResampleRows.scipy(n, nResamples, rs ?? SCIPY_BOOTSTRAP_SEED);
}

/**
 * `scipy.stats.bootstrap((range(n),), statistic, method="percentile", vectorized=False, ...)`: `statistic`
 * gets each resample's study indices (a view, do not keep it) and returns a number.
 * `indices` (scipyBootstrapRows, or a matrix from scipyBootstrapIndices) lets several statistics share one
 * draw, as the official evaluation's calls do (each makes a fresh RandomState(3), so equal n means equal
 * resamples); without it the resamples are drawn row by row.
 */
export function scipyBootstrap(
  n: number,
  statistic: (indices: Int32Array) => number,
  options: ScipyBootstrapOptions = {},
  indices?: Int32Array | ResampleRows,
): ScipyBootstrapResult {
  const nResamples = checkCount(options.nResamples ?? SCIPY_BOOTSTRAP_RESAMPLES, 'nResamples', 1);
  const confidence = options.confidenceLevel ?? 0.95;
  if (typeof confidence !== 'number' || !(confidence > 0 && confidence < 1)) throw invalidArgument('confidenceLevel', 'a number between 0 and 1', confidence);
  const distribution = new Float64Array(nResamples);
  if (types.isInt32Array(indices)) {
    if (indices.length !== n * nResamples) throw invalidArgument('indices', `${nResamples} x ${n} values`, `${indices.length} values`);
    for (let k = 0; k < nResamples; k++) distribution[k] = statistic(indices.subarray(k * n, (k + 1) * n));
  } else {
    const rows = indices ?? scipyBootstrapRows(n, options);
    if (rows.n !== n || rows.samples !== nResamples) throw invalidArgument('indices', `${nResamples} resamples of ${n}`, `${rows.samples} of ${rows.n}`);
    rows.forEach((row, k) => { distribution[k] = statistic(row); });
  }
  const alpha = (1 - confidence) / 2;
  const theta = Array.from(distribution);
  return {
    distribution,
    ci: { low: percentile(theta, alpha * 100), high: percentile(theta, (1 - alpha) * 100) },
    median: numpyMedian(distribution),
    standardError: numpyStd(distribution, 1),
  };
}

/**
 * The RadGraph statistic of the official evaluation (f1radgraph.py `compute_statistic`):
 * `np.mean([rewards[i] for i in indices], axis=0)[0]`, a mean over the rows of an (n, 3) array, which
 * numpy accumulates row by row (not pairwise). `column` picks the first value of each reward tuple.
 */
export function radgraphMeanStatistic(firstColumn: ArrayLike<number>): (indices: Int32Array) => number {
  return (indices) => {
    let s = 0;
    for (let i = 0; i < indices.length; i++) s += firstColumn[indices[i]!]!;
    return s / indices.length;
  };
}
