// CheXbert F1 scoring of the official LLaVA-Rad evaluation (llava/eval/rrg_eval/rrg_eval/chexbert.py
// `evaluate(preds, refs, include_original=False, bootstrap_ci=True)`, summarised by run.py), from CheXbert
// labels already computed (the labeler itself is elsewhere):
//
// - labels: per study, the 14 CheXbert conditions in the labeler's order (stanfordmlgroup/CheXbert
//   src/constants.py CONDITIONS), each the argmax class: 0 blank, 1 positive, 2 negative, 3 uncertain
//   (No Finding has only blank / positive).
// - binarised as factuality_utils.map_to_binary: "rrg" positive -> 1, blank / negative / uncertain -> 0;
//   "rrg+" positive or uncertain -> 1.
// - sklearn `classification_report(y_true=references, y_pred=predictions, target_names,
//   output_dict=True, zero_division=0)` over the 14 conditions and over the 5 (Cardiomegaly, Edema,
//   Consolidation, Atelectasis, Pleural Effusion; same order as in the 14): per label precision / recall /
//   F1 / support, then micro, macro, weighted and samples averages (multilabel-indicator input).
// - for the micro and macro averages, `scipy.stats.bootstrap` of the F1 over resampled studies
//   (percentile, 500 resamples, random_state=3: scipy-bootstrap.ts); run.py reports Micro-F1-14,
//   Macro-F1-14, Micro-F1-5, Macro-F1-5 and the "+" four as the bootstrap median with the 95% interval.
//
// Arithmetic as sklearn 1.2 does it: precision = tp / (tp + fp) and recall = tp / (tp + fn), 0 where the
// denominator is 0; F1 = 2 * p * r / (p + r), 0 where p + r is 0; macro = np.average of the label values
// (numpy's pairwise sum), weighted = np.average with the supports as weights, samples = the mean over
// studies of each study's precision / recall / F1 across labels.

import { describeValue, invalidArgument, LlavaRadError } from '../errors.js';
import { pairwiseSum, scipyBootstrap, scipyBootstrapRows, SCIPY_BOOTSTRAP_RESAMPLES, SCIPY_BOOTSTRAP_SEED } from './scipy-bootstrap.js';

/** the 14 conditions in the CheXbert labeler's output order */
export const CHEXBERT_CONDITIONS = [
  'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion', 'Edema',
  'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax', 'Pleural Effusion', 'Pleural Other',
  'Fracture', 'Support Devices', 'No Finding',
] as const;
export type ChexbertCondition = (typeof CHEXBERT_CONDITIONS)[number];
/** the 5 conditions of the "-5" scores (their order in the 14 and in the report) */
export const CHEXBERT_CONDITIONS_5 = ['Cardiomegaly', 'Edema', 'Consolidation', 'Atelectasis', 'Pleural Effusion'] as const;

/** the labeler's classes (argmax index of each head) */
export const CHEXBERT_CLASS = { blank: 0, positive: 1, negative: 2, uncertain: 3 } as const;
export type ChexbertClass = 0 | 1 | 2 | 3;
export type ChexbertLabelValue = ChexbertClass | 'blank' | 'positive' | 'negative' | 'uncertain' | null;
/** one study's labels: 14 values in CHEXBERT_CONDITIONS order, or an object keyed by condition (missing = blank) */
export type ChexbertLabels = readonly ChexbertLabelValue[] | Readonly<Partial<Record<ChexbertCondition, ChexbertLabelValue>>>;

/** "rrg": positive only; "rrg+": positive or uncertain (factuality_utils.map_to_binary modes) */
export type BinaryMode = 'rrg' | 'rrg+';

export interface LabelScores {
  precision: number;
  recall: number;
  f1: number;
  /** reference positives */
  support: number;
}

export interface AverageScores extends LabelScores {
  /** the official bootstrap (micro and macro only, when bootstrapped): median of the resampled F1s and the 95% interval */
  bootstrap?: { median: number; ci: [number, number]; standardError: number };
}

export interface ClassificationReport {
  /** per condition, in the order scored */
  labels: Record<string, LabelScores>;
  micro: AverageScores;
  macro: AverageScores;
  weighted: LabelScores;
  samples: LabelScores;
}

export const CHEXBERT_SUMMARY_KEYS = [
  'Micro-F1-14', 'Macro-F1-14', 'Micro-F1-5', 'Macro-F1-5',
  'Micro-F1-14+', 'Macro-F1-14+', 'Micro-F1-5+', 'Macro-F1-5+',
] as const;
export type ChexbertSummaryKey = (typeof CHEXBERT_SUMMARY_KEYS)[number];

export interface ChexbertSummaryScore {
  /** the F1 of all studies (classification_report) */
  f1: number;
  /** run.py's "median": np.median of the bootstrap F1s (present when bootstrapped) */
  median?: number;
  /** run.py's ci_l, ci_h */
  ci?: [number, number];
}

export interface ChexbertF1Result {
  n: number;
  /** resamples (0: none) */
  bootstrap: number;
  /** f14 / f5: positive only ("uncertain as negative"); f14+ / f5+: positive or uncertain */
  reports: { f14: ClassificationReport; f5: ClassificationReport; 'f14+': ClassificationReport; 'f5+': ClassificationReport };
  /** run.py's eight headline numbers */
  summary: Record<ChexbertSummaryKey, ChexbertSummaryScore>;
}

export interface ChexbertF1Options {
  /** bootstrap resamples for the micro / macro F1s (default 500, as the official evaluation; 0 = none) */
  bootstrap?: number;
}

const CLASS_NAMES: Record<string, ChexbertClass> = { blank: 0, positive: 1, negative: 2, uncertain: 3 };

function parseLabel(v: unknown, where: () => string): ChexbertClass {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number' && (v === 0 || v === 1 || v === 2 || v === 3)) return v;
  if (typeof v === 'string') {
    const c = CLASS_NAMES[v.trim().toLowerCase()];
    if (c !== undefined) return c;
  }
  throw new LlavaRadError('INVALID_ARGUMENT', `${where()} must be a CheXbert class (0 blank, 1 positive, 2 negative, 3 uncertain, or the name; null = blank), got ${describeValue(v)}`);
}

/** one study's labels as 14 class numbers (CHEXBERT_CONDITIONS order) */
export function normalizeChexbertLabels(labels: unknown, what = 'labels'): Uint8Array {
  const out = new Uint8Array(CHEXBERT_CONDITIONS.length);
  if (Array.isArray(labels)) {
    if (labels.length !== CHEXBERT_CONDITIONS.length) throw invalidArgument(what, `an array of ${CHEXBERT_CONDITIONS.length} CheXbert labels`, `an array of ${labels.length}`);
    labels.forEach((v, i) => (out[i] = parseLabel(v, () => `${what}[${i}] (${CHEXBERT_CONDITIONS[i]})`)));
    return out;
  }
  if (labels === null || typeof labels !== 'object') throw invalidArgument(what, 'an array of 14 CheXbert labels or an object keyed by condition', labels);
  for (const key of Object.keys(labels)) {
    if (!(CHEXBERT_CONDITIONS as readonly string[]).includes(key)) throw invalidArgument(`${what}: the key ${JSON.stringify(key)}`, `a CheXbert condition (${CHEXBERT_CONDITIONS.join(', ')})`, key);
  }
  CHEXBERT_CONDITIONS.forEach((c, i) => (out[i] = parseLabel((labels as Record<string, unknown>)[c], () => `${what}.${c}`)));
  return out;
}

/** factuality_utils.map_to_binary */
export function toBinary(label: ChexbertClass, mode: BinaryMode): 0 | 1 {
  return label === 1 || (mode === 'rrg+' && label === 3) ? 1 : 0;
}

/** a study x label 0/1 matrix, row-major */
export interface BinaryMatrix {
  rows: number;
  cols: number;
  data: Uint8Array;
}

/** binarises the chosen conditions (indices into CHEXBERT_CONDITIONS) of normalised label rows */
export function binaryMatrix(labels: readonly Uint8Array[], mode: BinaryMode, columns: readonly number[]): BinaryMatrix {
  const data = new Uint8Array(labels.length * columns.length);
  labels.forEach((row, i) => columns.forEach((c, j) => (data[i * columns.length + j] = toBinary(row[c] as ChexbertClass, mode))));
  return { rows: labels.length, cols: columns.length, data };
}

/** sklearn's _prf_divide with zero_division=0 */
const divide = (num: number, den: number) => (den === 0 ? 0 : num / den);
/** sklearn 1.2's F-beta with beta = 1: (1 + 1) * p * r / (1 * p + r), the denominator 1 where it is 0 */
function fScore(p: number, r: number): number {
  const den = p + r;
  return (2 * p * r) / (den === 0 ? 1 : den);
}

function prf(tp: number, predSum: number, trueSum: number): [number, number, number] {
  const p = divide(tp, predSum);
  const r = divide(tp, trueSum);
  return [p, r, fScore(p, r)];
}

/** per-label true positive, predicted and true counts over the rows `indices` (all rows when omitted) */
function counts(yTrue: BinaryMatrix, yPred: BinaryMatrix, indices?: ArrayLike<number>): { tp: Float64Array; pred: Float64Array; tru: Float64Array } {
  const L = yTrue.cols;
  const tp = new Float64Array(L);
  const pred = new Float64Array(L);
  const tru = new Float64Array(L);
  const n = indices ? indices.length : yTrue.rows;
  const t = yTrue.data;
  const p = yPred.data;
  for (let k = 0; k < n; k++) {
    const base = (indices ? indices[k]! : k) * L;
    for (let j = 0; j < L; j++) {
      const a = t[base + j]!;
      const b = p[base + j]!;
      tp[j]! += a & b;
      pred[j]! += b;
      tru[j]! += a;
    }
  }
  return { tp, pred, tru };
}

const sum = (a: Float64Array) => a.reduce((s, v) => s + v, 0); // integer counts: exact in any order

function microOf(c: ReturnType<typeof counts>): [number, number, number] {
  return prf(sum(c.tp), sum(c.pred), sum(c.tru));
}

function macroOf(c: ReturnType<typeof counts>): [number, number, number] {
  const L = c.tp.length;
  const p = new Float64Array(L);
  const r = new Float64Array(L);
  const f = new Float64Array(L);
  for (let j = 0; j < L; j++) [p[j], r[j], f[j]] = prf(c.tp[j]!, c.pred[j]!, c.tru[j]!);
  return [pairwiseSum(p) / L, pairwiseSum(r) / L, pairwiseSum(f) / L];
}

function checkPair(yTrue: BinaryMatrix, yPred: BinaryMatrix): void {
  if (yTrue.rows !== yPred.rows || yTrue.cols !== yPred.cols) throw new LlavaRadError('INVALID_ARGUMENT', `references (${yTrue.rows} x ${yTrue.cols}) and predictions (${yPred.rows} x ${yPred.cols}) must have the same shape`);
  if (yTrue.rows === 0 || yTrue.cols < 2) throw new LlavaRadError('INVALID_ARGUMENT', 'a classification report needs at least one study and two labels');
}

/** precision_recall_fscore_support(y_true, y_pred, average="micro" | "macro")[2] over the rows `indices` */
export function averageF1(yTrue: BinaryMatrix, yPred: BinaryMatrix, average: 'micro' | 'macro', indices?: ArrayLike<number>): number {
  const c = counts(yTrue, yPred, indices);
  return (average === 'micro' ? microOf(c) : macroOf(c))[2];
}

/** sklearn `classification_report(y_true, y_pred, target_names, output_dict=True, zero_division=0)` for multilabel 0/1 matrices */
export function classificationReport(yTrue: BinaryMatrix, yPred: BinaryMatrix, targetNames: readonly string[]): ClassificationReport {
  checkPair(yTrue, yPred);
  const L = yTrue.cols;
  if (targetNames.length !== L) throw invalidArgument('targetNames', `${L} names`, `${targetNames.length} names`);
  const c = counts(yTrue, yPred);
  const support = sum(c.tru);
  const labels: Record<string, LabelScores> = {};
  const pArr = new Float64Array(L);
  const rArr = new Float64Array(L);
  const fArr = new Float64Array(L);
  for (let j = 0; j < L; j++) {
    [pArr[j], rArr[j], fArr[j]] = prf(c.tp[j]!, c.pred[j]!, c.tru[j]!);
    labels[targetNames[j]!] = { precision: pArr[j]!, recall: rArr[j]!, f1: fArr[j]!, support: c.tru[j]! };
  }
  const [mp, mr, mf] = microOf(c);
  const [ap, ar, af] = macroOf(c);
  // weighted: np.average(x, weights=true_sum) = pairwise sum of x * w over the float sum of w; all 0 when no reference positives (zero_division=0)
  let weighted: LabelScores;
  if (support === 0) weighted = { precision: 0, recall: 0, f1: 0, support };
  else {
    const w = (x: Float64Array) => pairwiseSum(x.map((v, j) => v * c.tru[j]!)) / pairwiseSum(c.tru);
    weighted = { precision: w(pArr), recall: w(rArr), f1: w(fArr), support };
  }
  // samples: each study's precision / recall / F1 across its labels, averaged over the studies
  const n = yTrue.rows;
  const sp = new Float64Array(n);
  const sr = new Float64Array(n);
  const sf = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let tp = 0;
    let pred = 0;
    let tru = 0;
    for (let j = 0; j < L; j++) {
      const a = yTrue.data[i * L + j]!;
      const b = yPred.data[i * L + j]!;
      tp += a & b;
      pred += b;
      tru += a;
    }
    [sp[i], sr[i], sf[i]] = prf(tp, pred, tru);
  }
  return {
    labels,
    micro: { precision: mp, recall: mr, f1: mf, support },
    macro: { precision: ap, recall: ar, f1: af, support },
    weighted,
    samples: { precision: pairwiseSum(sp) / n, recall: pairwiseSum(sr) / n, f1: pairwiseSum(sf) / n, support },
  };
}

function resolveBootstrap(v: unknown): number {
  const b = v ?? SCIPY_BOOTSTRAP_RESAMPLES;
  if (typeof b !== 'number' || !Number.isInteger(b) || b < 0 || b === 1 || b > 100_000) throw invalidArgument('bootstrap', '0 (none) or an integer between 2 and 100000', b);
  return b;
}

/**
 * The official CheXbert F1 scores from CheXbert labels of the references and of the predictions (one entry
 * per study, same order): the four classification reports and run.py's eight headline numbers, with the
 * official bootstrap (scipy.stats.bootstrap, 500 percentile resamples, random_state=3) unless bootstrap is 0.
 */
export function chexbertF1(references: readonly ChexbertLabels[], predictions: readonly ChexbertLabels[], options: ChexbertF1Options = {}): ChexbertF1Result {
  if (!Array.isArray(references) || !Array.isArray(predictions)) throw invalidArgument('references and predictions', 'arrays of CheXbert labels', Array.isArray(references) ? predictions : references);
  if (references.length !== predictions.length) throw new LlavaRadError('INVALID_ARGUMENT', `references (${references.length}) and predictions (${predictions.length}) must label the same studies`);
  if (options === null || typeof options !== 'object') throw invalidArgument('options', 'an object', options);
  const B = resolveBootstrap(options.bootstrap);
  const n = references.length;
  if (n === 0) throw new LlavaRadError('INVALID_ARGUMENT', 'no studies to score');
  const refs = references.map((r, i) => normalizeChexbertLabels(r, `references[${i}]`));
  const preds = predictions.map((p, i) => normalizeChexbertLabels(p, `predictions[${i}]`));
  if (B > 0 && n < 2) throw new LlavaRadError('INVALID_ARGUMENT', 'the bootstrap needs at least two studies (or bootstrap: 0)');
  const all = CHEXBERT_CONDITIONS.map((_, i) => i);
  const five = CHEXBERT_CONDITIONS_5.map((c) => CHEXBERT_CONDITIONS.indexOf(c));
  // every official bootstrap call makes a fresh RandomState(3) and resamples the same n studies: one draw serves all
  const indices = B > 0 ? scipyBootstrapRows(n, { nResamples: B, randomState: SCIPY_BOOTSTRAP_SEED }) : undefined;
  const one = (mode: BinaryMode, cols: number[], names: readonly string[]): ClassificationReport => {
    const yTrue = binaryMatrix(refs, mode, cols);
    const yPred = binaryMatrix(preds, mode, cols);
    const report = classificationReport(yTrue, yPred, names);
    if (indices) {
      for (const avg of ['micro', 'macro'] as const) {
        const bs = scipyBootstrap(n, (idx) => averageF1(yTrue, yPred, avg, idx), { nResamples: B }, indices);
        report[avg].bootstrap = { median: bs.median, ci: [bs.ci.low, bs.ci.high], standardError: bs.standardError };
      }
    }
    return report;
  };
  const reports = {
    f14: one('rrg', all, CHEXBERT_CONDITIONS),
    f5: one('rrg', five, CHEXBERT_CONDITIONS_5),
    'f14+': one('rrg+', all, CHEXBERT_CONDITIONS),
    'f5+': one('rrg+', five, CHEXBERT_CONDITIONS_5),
  };
  const entry = (a: AverageScores): ChexbertSummaryScore => (a.bootstrap ? { f1: a.f1, median: a.bootstrap.median, ci: a.bootstrap.ci } : { f1: a.f1 });
  const summary = {} as Record<ChexbertSummaryKey, ChexbertSummaryScore>;
  for (const [key, rep] of [['14', reports.f14], ['5', reports.f5], ['14+', reports['f14+']], ['5+', reports['f5+']]] as const) {
    summary[`Micro-F1-${key}`] = entry(rep.micro);
    summary[`Macro-F1-${key}`] = entry(rep.macro);
  }
  return { n, bootstrap: B, reports, summary };
}
