// ROUGE-L as Google's rouge_score computes it with `RougeScorer(["rougeL"], use_stemmer=False)` and
// `score(reference, prediction)`: lowercase, every run of characters outside [a-z0-9] becomes a space,
// tokens are the remaining words, and precision / recall / F-measure come from the length of the
// longest common subsequence of the two token lists. Values are 0..1.

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

/** rouge_score's default tokenizer without stemming */
export function rougeTokenize(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .split(' ')
    .filter((t) => t !== '');
}

/** length of the longest common subsequence of two token lists */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = ai === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** ROUGE-L of a prediction against its reference (rouge_score's `_score_lcs`) */
export function rougeL(reference: string, prediction: string): RougeScore {
  const target = rougeTokenize(reference);
  const pred = rougeTokenize(prediction);
  if (target.length === 0 || pred.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const lcs = lcsLength(target, pred);
  const precision = lcs / pred.length;
  const recall = lcs / target.length;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0.0;
  return { precision, recall, fmeasure };
}
