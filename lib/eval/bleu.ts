// BLEU as sacrebleu 2.x computes it with its defaults (`BLEU()` / `BLEU(max_ngram_order=1)`): the 13a
// tokenizer (mteval-v13a), case kept, one reference per segment, exponential smoothing ("exp", NIST
// mteval's method 3), and the corpus score from summed per-segment statistics. Scores are 0..100.
//
// A segment's statistics are [hyp_len, ref_len, correct_1..N, total_1..N], as sacrebleu's
// `_extract_corpus_statistics` returns them, so the bootstrap can re-sum them per resample.

import { pyRstrip, pySplit } from './text.js';

// mteval-v13a's regular expressions as sacrebleu's TokenizerRegexp applies them, in order
const TOK_13A: Array<[RegExp, string]> = [
  // ASCII symbols and punctuation except . , ' and - become separate tokens
  [/([{-~[-` -&(-+:-@\/])/g, ' $1 '],
  // period and comma, unless preceded by a digit
  [/([^0-9])([.,])/g, '$1 $2 '],
  // period and comma, unless followed by a digit
  [/([.,])([^0-9])/g, ' $1 $2'],
  // a dash preceded by a digit
  [/([0-9])(-)/g, '$1 $2 '],
];

/** sacrebleu's `Tokenizer13a()(line)`: the tokens joined by single spaces */
export function tokenize13a(line: string): string {
  line = line.replaceAll('<skipped>', '').replaceAll('-\n', '').replaceAll('\n', ' ');
  if (line.includes('&')) {
    line = line.replaceAll('&quot;', '"').replaceAll('&amp;', '&').replaceAll('&lt;', '<').replaceAll('&gt;', '>');
  }
  line = ` ${line} `;
  for (const [re, repl] of TOK_13A) line = line.replace(re, repl);
  return pySplit(line).join(' ');
}

/** what sacrebleu's BLEU does to a segment before counting: rstrip, then tokenize (no lowercasing) */
export function preprocessBleuSegment(s: string): string {
  return tokenize13a(pyRstrip(s));
}

function ngramCounts(tokens: string[], maxOrder: number): Map<string, number> {
  // tokens hold no whitespace, so a space-joined key identifies the n-gram (and its order)
  const counts = new Map<string, number>();
  for (let n = 1; n <= maxOrder; n++) {
    for (let i = 0; i + n <= tokens.length; i++) {
      const key = tokens.slice(i, i + n).join(' ');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
  }
  return counts;
}

/** one segment's statistics [hyp_len, ref_len, correct_1..N, total_1..N] against one reference */
export function bleuSegmentStats(hypothesis: string, reference: string, maxOrder = 4): number[] {
  const hyp = pySplit(preprocessBleuSegment(hypothesis));
  const ref = pySplit(preprocessBleuSegment(reference));
  const refCounts = ngramCounts(ref, maxOrder);
  const correct = new Array<number>(maxOrder).fill(0);
  const total = new Array<number>(maxOrder).fill(0);
  for (const [key, count] of ngramCounts(hyp, maxOrder)) {
    const n = key.split(' ').length - 1;
    total[n]! += count;
    const r = refCounts.get(key);
    if (r !== undefined) correct[n]! += Math.min(count, r);
  }
  return [hyp.length, ref.length, ...correct, ...total];
}

export interface BleuScore {
  /** 0..100 */
  score: number;
  /** n-gram precisions in percent (smoothed as "exp" smooths zero counts) */
  precisions: number[];
  /** brevity penalty */
  bp: number;
  sysLen: number;
  refLen: number;
}

/** sacrebleu's `BLEU.compute_bleu` with smooth_method="exp", effective_order=False, from summed statistics */
export function bleuFromStats(stats: ArrayLike<number>, maxOrder = 4): BleuScore {
  const sysLen = Math.trunc(stats[0]!);
  const refLen = Math.trunc(stats[1]!);
  let bp = 1.0;
  if (sysLen < refLen) bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0.0;
  const precisions = new Array<number>(maxOrder).fill(0.0);
  let anyCorrect = false;
  for (let n = 0; n < maxOrder; n++) if (stats[2 + n]! !== 0) anyCorrect = true;
  if (!anyCorrect) return { score: 0.0, precisions, bp, sysLen, refLen };
  let smooth = 1.0;
  for (let n = 1; n <= maxOrder; n++) {
    const correct = stats[1 + n]!;
    const total = stats[1 + maxOrder + n]!;
    if (total === 0) break;
    if (correct === 0) {
      smooth *= 2;
      precisions[n - 1] = 100.0 / (smooth * total);
    } else {
      precisions[n - 1] = (100.0 * correct) / total;
    }
  }
  // Python's sum() from 0, left to right; log(0) is floored to -9999999999 as sacrebleu's my_log does
  let logSum = 0;
  for (const p of precisions) logSum += p === 0 ? -9999999999 : Math.log(p);
  return { score: bp * Math.exp(logSum / maxOrder), precisions, bp, sysLen, refLen };
}

/** per-segment statistics for a corpus (hypotheses[i] against references[i]) */
export function bleuCorpusStats(hypotheses: readonly string[], references: readonly string[], maxOrder = 4): number[][] {
  return hypotheses.map((h, i) => bleuSegmentStats(h, references[i]!, maxOrder));
}

/** the corpus score: statistics summed over segments (exact integer sums), then BLEU */
export function corpusBleu(stats: readonly number[][], maxOrder = 4): BleuScore {
  const sum = new Array<number>(2 + 2 * maxOrder).fill(0);
  for (const s of stats) for (let k = 0; k < sum.length; k++) sum[k]! += s[k]!;
  return bleuFromStats(sum, maxOrder);
}
