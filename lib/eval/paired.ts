// `evaluatePaired`: does system B score differently from system A on the same studies? A paired bootstrap
// of the difference B - A for each metric.
//
// Procedure (reproducible in Python with numpy, sacrebleu and rouge_score):
//   1. Studies are matched by id; a study failed (`error`) in either file is left out, as are ids found in
//      only one file. Their order is A's. The references must agree.
//   2. idx = np.random.default_rng(12345).choice(n, size=(B, n)) (one B x n matrix for every metric).
//   3. For resample r (row idx[r]): BLEU-k of A and of B are the corpus BLEU of the summed sacrebleu
//      segment statistics of the rows' studies; ROUGE-L of A and of B are the mean rouge_score F-measure
//      over the rows' studies (summed in row order, divided by n). d[r] = B - A.
//   4. Reported: `a`, `b`, `diff` on all n studies; `mean` = mean of d; `ci` = np.percentile(d, [2.5, 97.5])
//      (linear interpolation); `bBelowA` = the share of resamples with d < 0.

import { LlavaRadError } from '../errors.js';
import { bleuCorpusStats, bleuFromStats, corpusBleu } from './bleu.js';
import { percentile, sacrebleuIndices } from './bootstrap.js';
import { loadPairs, resolveOptions, type EvalOptions } from './evaluate.js';
import type { EvalRecord, ScoredPair } from './read-predictions.js';
import { rougeL } from './rouge.js';
import { fsum } from './text.js';

export interface PairedMetric {
  /** system A's score on the matched studies (BLEU: corpus score; ROUGE-L: mean F-measure) */
  a: number;
  b: number;
  /** b - a */
  diff: number;
  /** mean of the resampled differences */
  mean: number;
  /** 2.5th and 97.5th percentiles of the resampled differences */
  ci: [number, number];
  /** share of resamples where B scored below A */
  bBelowA: number;
}

export interface PairedResult {
  /** studies matched and scored */
  n: number;
  /** records with an error, per file (a study failed in either file is left out) */
  skipped: { a: number; b: number };
  /** studies scored in one file only (by id), left out */
  unmatched: { a: number; b: number };
  bootstrap: number;
  metrics: { bleu1?: PairedMetric; bleu4?: PairedMetric; rougeL?: PairedMetric };
}

function byId(pairs: readonly ScoredPair[], which: string): Map<string, ScoredPair> {
  const m = new Map<string, ScoredPair>();
  pairs.forEach((p, i) => {
    if (p.id === undefined) throw new LlavaRadError('BAD_PREDICTIONS', `paired evaluation matches studies by id, but scorable record ${i + 1} of ${which} has no "id"`);
    if (m.has(p.id)) throw new LlavaRadError('BAD_PREDICTIONS', `${which} has two records for id ${JSON.stringify(p.id)}; expected one per study`);
    m.set(p.id, p);
  });
  return m;
}

function summarize(a: number, b: number, diffs: number[]): PairedMetric {
  const below = diffs.filter((d) => d < 0).length;
  return { a, b, diff: b - a, mean: fsum(diffs) / diffs.length, ci: [percentile(diffs, 2.5), percentile(diffs, 97.5)], bBelowA: below / diffs.length };
}

/** paired bootstrap of B - A (see the procedure above) */
export async function evaluatePaired(inputA: string | readonly EvalRecord[], inputB: string | readonly EvalRecord[], options: EvalOptions = {}): Promise<PairedResult> {
  const opts = resolveOptions(options);
  const A = loadPairs(inputA);
  const B = loadPairs(inputB);
  const nameA = typeof inputA === 'string' ? inputA : 'A';
  const nameB = typeof inputB === 'string' ? inputB : 'B';
  const mapA = byId(A.pairs, nameA);
  const mapB = byId(B.pairs, nameB);
  const pa: ScoredPair[] = [];
  const pb: ScoredPair[] = [];
  for (const [id, p] of mapA) {
    const q = mapB.get(id);
    if (!q) continue;
    if (q.reference !== p.reference) throw new LlavaRadError('BAD_PREDICTIONS', `id ${JSON.stringify(id)} has different references in ${nameA} and ${nameB}; expected the same studies`);
    pa.push(p);
    pb.push(q);
  }
  const n = pa.length;
  if (n === 0) throw new LlavaRadError('BAD_PREDICTIONS', `${nameA} and ${nameB} have no scorable study id in common`);
  const B_ = opts.bootstrap;
  const idx = sacrebleuIndices(n, B_);
  const refs = pa.map((p) => p.reference);
  const metrics: PairedResult['metrics'] = {};
  if (opts.metrics.includes('bleu')) {
    for (const order of [1, 4] as const) {
      const sa = bleuCorpusStats(pa.map((p) => p.prediction), refs, order);
      const sb = bleuCorpusStats(pb.map((p) => p.prediction), refs, order);
      const width = 2 + 2 * order;
      const diffs: number[] = [];
      const sumA = new Float64Array(width);
      const sumB = new Float64Array(width);
      for (let r = 0; r < B_; r++) {
        sumA.fill(0);
        sumB.fill(0);
        for (let i = 0; i < n; i++) {
          const j = idx[r * n + i]!;
          const x = sa[j]!;
          const y = sb[j]!;
          for (let k = 0; k < width; k++) {
            sumA[k]! += x[k]!;
            sumB[k]! += y[k]!;
          }
        }
        diffs.push(bleuFromStats(sumB, order).score - bleuFromStats(sumA, order).score);
      }
      metrics[order === 1 ? 'bleu1' : 'bleu4'] = summarize(corpusBleu(sa, order).score, corpusBleu(sb, order).score, diffs);
    }
  }
  if (opts.metrics.includes('rouge')) {
    const fa = pa.map((p) => rougeL(p.reference, p.prediction).fmeasure);
    const fb = pb.map((p) => rougeL(p.reference, p.prediction).fmeasure);
    const diffs: number[] = [];
    for (let r = 0; r < B_; r++) {
      let x = 0;
      let y = 0;
      for (let i = 0; i < n; i++) {
        const j = idx[r * n + i]!;
        x += fa[j]!;
        y += fb[j]!;
      }
      diffs.push(y / n - x / n);
    }
    let ma = 0;
    let mb = 0;
    for (let i = 0; i < n; i++) {
      ma += fa[i]!;
      mb += fb[i]!;
    }
    metrics.rougeL = summarize(ma / n, mb / n, diffs);
  }
  return {
    n,
    skipped: { a: A.skipped, b: B.skipped },
    unmatched: { a: mapA.size - n, b: mapB.size - n },
    bootstrap: B_,
    metrics,
  };
}
