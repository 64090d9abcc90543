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
//      RadGraph F1: each study's reference and both predictions are annotated by RadGraph's model; A and B
//      are the mean per-report F1 (f1radgraph.py's reward at the chosen level) over the rows' studies.
//      CheXbert (the chexbert family): each study's reference and both predictions are labeled by CheXbert;
//      for each of run.py's eight scores (Micro-/Macro-F1-14, -5, and the "+" four), F1 of A and of B are
//      sklearn's micro / macro F1 over the rows' studies (binarised as chexbert-f1.ts does); SembScore of A
//      and of B are the mean cosine similarity over the rows' studies.
//   4. Reported: `a`, `b`, `diff` on all n studies; `mean` = mean of d; `ci` = np.percentile(d, [2.5, 97.5])
//      (linear interpolation); `bBelowA` = the share of resamples with d < 0.

import { LlavaRadError } from '../errors.js';
import { bleuCorpusStats, bleuFromStats, corpusBleu } from './bleu.js';
import { percentile, sacrebleuRows } from './bootstrap.js';
import type { ResampleRows } from './resample-rows.js';
import { averageF1, binaryMatrix, CHEXBERT_CONDITIONS, CHEXBERT_CONDITIONS_5, normalizeChexbertLabels, type BinaryMode, type ChexbertSummaryKey } from './chexbert-f1.js';
import { cosineSimilarity, labelPairs, withChexbert } from './chexbert-metric.js';
import { loadPairs, resolveOptions, type EvalOptions, type ResolvedOptions } from './evaluate.js';
import type { EvalRecord, ScoredPair } from './read-predictions.js';
import { rougeL } from './rouge.js';
import { radgraphRewards } from './radgraph-reward.js';
import { annotateReports, checkRadgraphLengths, withRadgraph } from '../radgraph/metric.js';
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
  /** a file's unterminated last line was not JSON (a record still being written) and was left out */
  tornLastLine: { a: boolean; b: boolean };
  bootstrap: number;
  metrics: { bleu1?: PairedMetric; bleu4?: PairedMetric; rougeL?: PairedMetric; chexbert?: Record<ChexbertSummaryKey, PairedMetric>; sembScore?: PairedMetric; radgraph?: PairedMetric };
}

/** the chexbert family's paired bootstrap over the resamples `idx` */
async function pairedChexbert(pa: readonly ScoredPair[], pb: readonly ScoredPair[], idx: ResampleRows, opts: ResolvedOptions): Promise<Pick<PairedResult['metrics'], 'chexbert' | 'sembScore'>> {
  const n = pa.length;
  const { refs, preds } = await withChexbert(opts, (labeler) => labelPairs(labeler, pa.map((p) => p.reference), [...pa.map((p) => p.prediction), ...pb.map((p) => p.prediction)], opts.signal));
  const predsA = preds.slice(0, n);
  const predsB = preds.slice(n);
  const norm = (rs: typeof refs) => rs.map((r, i) => normalizeChexbertLabels(r.labels, `labels[${i}]`));
  const [yR, yA, yB] = [norm(refs), norm(predsA), norm(predsB)];
  const all = CHEXBERT_CONDITIONS.map((_, i) => i);
  const five = CHEXBERT_CONDITIONS_5.map((c) => CHEXBERT_CONDITIONS.indexOf(c));
  const chexbert = {} as Record<ChexbertSummaryKey, PairedMetric>;
  for (const [suffix, mode, cols] of [['14', 'rrg', all], ['5', 'rrg', five], ['14+', 'rrg+', all], ['5+', 'rrg+', five]] as Array<[string, BinaryMode, number[]]>) {
    const t = binaryMatrix(yR, mode, cols);
    const a = binaryMatrix(yA, mode, cols);
    const b = binaryMatrix(yB, mode, cols);
    for (const avg of ['micro', 'macro'] as const) {
      const diffs: number[] = [];
      idx.forEach((row) => diffs.push(averageF1(t, b, avg, row) - averageF1(t, a, avg, row)));
      chexbert[`${avg === 'micro' ? 'Micro' : 'Macro'}-F1-${suffix}` as ChexbertSummaryKey] = summarize(averageF1(t, a, avg), averageF1(t, b, avg), diffs);
    }
  }
  const ca = refs.map((r, i) => cosineSimilarity(r.cls, predsA[i]!.cls));
  const cb = refs.map((r, i) => cosineSimilarity(r.cls, predsB[i]!.cls));
  return { chexbert, sembScore: meanDiffs(ca, cb, idx) };
}

/** paired bootstrap of per-study values averaged over the studies (ROUGE-L, SembScore) */
function meanDiffs(fa: readonly number[], fb: readonly number[], idx: ResampleRows): PairedMetric {
  const n = fa.length;
  const diffs: number[] = [];
  idx.forEach((row) => {
    let x = 0;
    let y = 0;
    for (let i = 0; i < n; i++) {
      const j = row[i]!;
      x += fa[j]!;
      y += fb[j]!;
    }
    diffs.push(y / n - x / n);
  });
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += fa[i]!;
    mb += fb[i]!;
  }
  return summarize(ma / n, mb / n, diffs);
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

/** paired bootstrap of per-study values (A's and B's on the same matched studies) averaged over the studies, with
 *  the resamples every paired metric uses: for per-study scores computed elsewhere (GREEN, CheXprompt) */
export function pairedMeans(fa: readonly number[], fb: readonly number[], bootstrap: number): PairedMetric {
  if (fa.length !== fb.length || fa.length === 0) throw new LlavaRadError('INVALID_ARGUMENT', `pairedMeans needs two equally long non-empty lists, got ${fa.length} and ${fb.length} values`);
  return meanDiffs(fa, fb, sacrebleuRows(fa.length, bootstrap));
}

export interface MatchedPairs {
  /** the matched studies, in A's order */
  pa: ScoredPair[];
  pb: ScoredPair[];
  skipped: { a: number; b: number };
  unmatched: { a: number; b: number };
  tornLastLine: { a: boolean; b: boolean };
}

/** step 1 of the procedure: the studies of A and B matched by id (BAD_PREDICTIONS when none match) */
export function matchPairs(inputA: string | readonly EvalRecord[], inputB: string | readonly EvalRecord[]): MatchedPairs {
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
  if (pa.length === 0) throw new LlavaRadError('BAD_PREDICTIONS', `${nameA} and ${nameB} have no scorable study id in common`);
  return { pa, pb, skipped: { a: A.skipped, b: B.skipped }, unmatched: { a: mapA.size - pa.length, b: mapB.size - pa.length },
    tornLastLine: { a: A.tornLastLine, b: B.tornLastLine } };
}

/** paired bootstrap of B - A (see the procedure above) */
export async function evaluatePaired(inputA: string | readonly EvalRecord[], inputB: string | readonly EvalRecord[], options: EvalOptions = {}): Promise<PairedResult> {
  const opts = resolveOptions(options);
  const { pa, pb, skipped, unmatched, tornLastLine } = matchPairs(inputA, inputB);
  if (opts.metrics.includes('radgraph')) {
    checkRadgraphLengths(pa, typeof inputA === 'string' ? inputA : 'A');
    checkRadgraphLengths(pb, typeof inputB === 'string' ? inputB : 'B');
  }
  const n = pa.length;
  const B_ = opts.bootstrap;
  const idx = sacrebleuRows(n, B_);
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
      idx.forEach((row) => {
        sumA.fill(0);
        sumB.fill(0);
        for (let i = 0; i < n; i++) {
          const j = row[i]!;
          const x = sa[j]!;
          const y = sb[j]!;
          for (let k = 0; k < width; k++) {
            sumA[k]! += x[k]!;
            sumB[k]! += y[k]!;
          }
        }
        diffs.push(bleuFromStats(sumB, order).score - bleuFromStats(sumA, order).score);
      });
      metrics[order === 1 ? 'bleu1' : 'bleu4'] = summarize(corpusBleu(sa, order).score, corpusBleu(sb, order).score, diffs);
    }
  }
  if (opts.metrics.includes('rouge')) {
    const fa = pa.map((p) => rougeL(p.reference, p.prediction).fmeasure);
    const fb = pb.map((p) => rougeL(p.reference, p.prediction).fmeasure);
    metrics.rougeL = meanDiffs(fa, fb, idx);
  }
  if (opts.metrics.includes('chexbert')) Object.assign(metrics, await pairedChexbert(pa, pb, idx, opts));
  if (opts.metrics.includes('radgraph')) {
    metrics.radgraph = await withRadgraph(opts, async (model) => {
      const refAnnotations = await annotateReports(model, refs, opts.signal);
      const level = { rewardLevel: opts.radgraphLevel ?? 'partial', lowercase: opts.radgraphLowercase ?? false } as const;
      const f1 = async (ps: readonly ScoredPair[]) =>
        radgraphRewards(refAnnotations, await annotateReports(model, ps.map((p) => p.prediction), opts.signal), level).rewards.map((r) => r.f1);
      return meanDiffs(await f1(pa), await f1(pb), idx);
    });
  }
  return {
    n,
    skipped,
    unmatched,
    tornLastLine,
    bootstrap: B_,
    metrics,
  };
}
