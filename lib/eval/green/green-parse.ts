// GREEN's reading of the model's answer: the cleaning, the error counts and the score, with Python's regex
// semantics (Stanford-AIMI/GREEN d72c195 green_score/green.py parse_error_counts / compute_green and
// green_score/utils.py clean_responses). What those functions do:
//
// - clean_responses(text) on the decoded sequence (prompt and answer; special tokens skipped): when the text
//   has "[Explanation]:", it keeps what follows the last "<|assistant|>", then what follows the first
//   "[Explanation]:" if the text holds "[Explanation]:\n    <Explanation>\n" (the Python `or` of two strings
//   tests only the first one), else what follows the last "[Explanation]:"; without "[Explanation]:" it keeps
//   what follows the last "<|assistant|>" if any; then "</s>" and "<unk>" are removed.
// - A category's text: the first match of `\[CATEGORY\]:\s*(.*?)(?:\n\s*\n|\Z)` (DOTALL): from after the
//   header and its whitespace to the first blank line (a line of whitespace) or the end. No such section, or
//   a section starting with "No": all counts 0.
// - [Matched Findings]: the number at the very start of the section when a "." follows it.
// - [Clinically Significant Errors]: every line remainder `\([a-f]\) .*` in the section, sorted (code point
//   order); if none, `\([1-6]\) .*` with the prefixes (1) .. (6). For each sub-category in order, every sorted
//   line with its prefix ("(a) " ...) whose first `(?<=: )\d+(?=\.)` exists sets that sub-category's count
//   (a later line overrides an earlier one). The category's count is their sum.
// - green = 0 when matched findings are 0, else matched / (matched + significant errors).
// Python's \d and \s are Unicode (any decimal digit; str.isspace()), and int() reads any decimal digits: the
// same here.

import { pyWhitespaceClass } from '../text.js';

export const GREEN_CATEGORIES = ['Clinically Significant Errors', 'Clinically Insignificant Errors', 'Matched Findings'] as const;
export type GreenCategory = (typeof GREEN_CATEGORIES)[number];
/** the six error sub-categories, as GREEN names them */
export const GREEN_SUB_CATEGORIES = [
  '(a) False report of a finding in the candidate',
  '(b) Missing a finding present in the reference',
  "(c) Misidentification of a finding's anatomic location/position",
  '(d) Misassessment of the severity of a finding',
  "(e) Mentioning a comparison that isn't in the reference",
  '(f) Omitting a comparison detailing a change from a prior study',
] as const;

const WS = pyWhitespaceClass();
const LETTER_LINES = /\([a-f]\) [^\n]*/g;
const NUMBER_LINES = /\([1-6]\) [^\n]*/g;
const COUNT_AFTER_COLON = /(?<=: )\p{Nd}+(?=\.)/u;
const LEADING_COUNT = /^\p{Nd}+(?=\.)/u;

/** int() of a run of Unicode decimal digits (each digit's value is its offset in its run of ten) */
export function pyInt(digits: string): number {
  let v = 0;
  for (const ch of digits) {
    let cp = ch.codePointAt(0)!;
    let start = cp;
    while (start > 0 && /\p{Nd}/u.test(String.fromCodePoint(start - 1))) start--;
    cp = (cp - start) % 10;
    v = v * 10 + cp;
  }
  return v;
}

/** sorted() of Python strings: code point order (JavaScript's default sort compares UTF-16 units) */
function pySorted(xs: string[]): string[] {
  const cmp = (a: string, b: string): number => {
    const A = [...a];
    const B = [...b];
    for (let i = 0; i < Math.min(A.length, B.length); i++) {
      const d = A[i]!.codePointAt(0)! - B[i]!.codePointAt(0)!;
      if (d !== 0) return d;
    }
    return A.length - B.length;
  };
  return [...xs].sort(cmp);
}

/** transformers' clean_up_tokenization (decode with clean_up_tokenization_spaces, which green.py sets) */
export function hfCleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.').replaceAll(' ?', '?').replaceAll(' !', '!').replaceAll(' ,', ',')
    .replaceAll(" ' ", "'").replaceAll(" n't", "n't").replaceAll(" 'm", "'m").replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve").replaceAll(" 're", "'re");
}

/** clean_responses(): the answer part of the decoded text */
export function cleanGreenResponse(text: string): string {
  let r = text;
  if (r.includes('[Explanation]:')) {
    if (r.includes('<|assistant|>')) r = r.split('<|assistant|>').at(-1)!;
    if (r.includes('[Explanation]:\n    <Explanation>\n')) r = r.split('[Explanation]:')[1]!;
    else r = r.split('[Explanation]:').at(-1)!;
  }
  if (r.includes('<|assistant|>')) r = r.split('<|assistant|>').at(-1)!;
  return r.replaceAll('</s>', '').replaceAll('<unk>', '');
}

/** the text of one category's section, or undefined when the answer has none */
export function greenSection(response: string, category: GreenCategory): string | undefined {
  const header = `\\[${category}\\]:`;
  const re = new RegExp(`${header}[${WS}]*([\\s\\S]*?)(?:\\n[${WS}]*\\n|$)`);
  return re.exec(response)?.[1];
}

export interface GreenCounts {
  /** the six sub-categories' counts of clinically significant errors, (a) to (f) */
  significant: number[];
  /** their sum */
  significantTotal: number;
  matched: number;
}

/** parse_error_counts for a category: [sum, six sub-counts] */
export function greenCategoryCounts(response: string, category: GreenCategory): [number, number[]] {
  const sub = [0, 0, 0, 0, 0, 0];
  const text = greenSection(response, category);
  if (text === undefined || text.startsWith('No')) return [0, sub];
  if (category === 'Matched Findings') {
    const m = LEADING_COUNT.exec(text);
    return [m ? pyInt(m[0]) : 0, sub];
  }
  let prefixes = GREEN_SUB_CATEGORIES.map((s) => `${s.split(' ', 1)[0]} `);
  let lines = pySorted(text.match(LETTER_LINES) ?? []);
  if (lines.length === 0) {
    lines = pySorted(text.match(NUMBER_LINES) ?? []);
    prefixes = GREEN_SUB_CATEGORIES.map((_, i) => `(${i + 1}) `);
  }
  prefixes.forEach((prefix, position) => {
    for (const line of lines) {
      if (!line.startsWith(prefix)) continue;
      const c = COUNT_AFTER_COLON.exec(line);
      if (c) sub[position] = pyInt(c[0]);
    }
  });
  return [sub.reduce((a, b) => a + b, 0), sub];
}

export function greenCounts(response: string): GreenCounts {
  const [significantTotal, significant] = greenCategoryCounts(response, 'Clinically Significant Errors');
  const [matched] = greenCategoryCounts(response, 'Matched Findings');
  return { significant, significantTotal, matched };
}

/** compute_green(): matched / (matched + significant errors), 0 when nothing matched */
export function greenScoreOf(counts: GreenCounts): number {
  if (counts.matched === 0) return 0;
  return counts.matched / (counts.matched + counts.significantTotal);
}
