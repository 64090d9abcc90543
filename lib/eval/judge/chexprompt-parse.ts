// CheXprompt's reading of a judge's answer (chexprompt's src/chexprompt/eval_utils.py), with the same tolerance
// and the same quirks, so that a rating here is the rating chexprompt would have recorded:
//
// - valid only when the text is not blank and contains both "Number of clinically significant errors by type:"
//   and "Number of clinically insignificant errors by type:";
// - everything from the first "Explanation" on is dropped;
// - the insignificant list is what follows the last "\nNumber of clinically insignificant errors by type:",
//   the significant list what lies between the first "Number of clinically significant errors by type: " (with
//   its space) and that insignificant header;
// - a list: "),"  -> separator, then every "(", ")", "[", "]" removed, split on the separator, each item split on
//   "," into a key (letters A-F mapped to the six error names, anything else kept as written) and an integer
//   (Python's int(): surrounding blanks, a sign, "_" between digits); an item without a comma or with a
//   non-integer count makes the whole list unparseable; a repeated key keeps its last count.

import { pyStrip } from '../text.js';

/** chexprompt's ERROR_TYPE_MAP: the six error types by their letter in the prompt */
export const CHEXPROMPT_ERROR_TYPES = {
  A: 'false_positive_finding',
  B: 'omission_finding',
  C: 'incorrect_location',
  D: 'incorrect_severity',
  E: 'false_positive_comparison',
  F: 'omission_comparison',
} as const;
export type ChexpromptErrorType = (typeof CHEXPROMPT_ERROR_TYPES)[keyof typeof CHEXPROMPT_ERROR_TYPES];
export const CHEXPROMPT_ERROR_NAMES: readonly ChexpromptErrorType[] = Object.values(CHEXPROMPT_ERROR_TYPES);

/** counts by error name (chexprompt keeps keys it does not know, as written) */
export type ChexpromptCounts = Record<string, number>;

export interface ChexpromptRating {
  /** null where chexprompt could not parse that list */
  clinically_significant: ChexpromptCounts | null;
  clinically_insignificant: ChexpromptCounts | null;
}

const SIGNIFICANT = 'Number of clinically significant errors by type:';
const INSIGNIFICANT = 'Number of clinically insignificant errors by type:';

export { pyStrip };

/** Python's int(str) for ASCII digits; undefined where Python raises ValueError */
export function pyInt(s: string): number | undefined {
  const t = pyStrip(s);
  if (!/^[+-]?\d+(_\d+)*$/.test(t)) return undefined;
  const v = Number(t.replace(/_/g, ''));
  return Number.isSafeInteger(v) ? v : undefined;
}

/** chexprompt's parse_completion_tuples_to_dict: "[(A, 0), (B, 1), ...]" -> counts, or null */
export function parseErrorTuples(text: string): ChexpromptCounts | null {
  const cleaned = text.split('),').join('::').replace(/[()[\]]/g, '');
  const out: ChexpromptCounts = {};
  for (const item of cleaned.split('::')) {
    const pair = pyStrip(item).split(',');
    if (pair.length < 2) return null;
    const letter = pyStrip(pair[0]!);
    const key = Object.hasOwn(CHEXPROMPT_ERROR_TYPES, letter) ? CHEXPROMPT_ERROR_TYPES[letter as keyof typeof CHEXPROMPT_ERROR_TYPES] : letter;
    const n = pyInt(pair[1]!);
    if (n === undefined) return null;
    out[key] = n;
  }
  return out;
}

/** chexprompt's is_valid_rating_text */
export function isValidRatingText(text: string): boolean {
  return pyStrip(text) !== '' && text.includes(SIGNIFICANT) && text.includes(INSIGNIFICANT);
}

/** chexprompt's parse_rating_text (call only on valid text: see isValidRatingText) */
export function parseRatingText(text: string): ChexpromptRating {
  if (!text.includes(SIGNIFICANT)) return { clinically_significant: null, clinically_insignificant: null };
  let t = text;
  // chexprompt tries "Explanation" before "Explanation of errors:", so the first always wins
  const cut = t.indexOf('Explanation');
  if (cut >= 0) t = t.slice(0, cut);
  const sep = `\n${INSIGNIFICANT}`;
  const parts = t.split(sep);
  const insignificant = pyStrip(parts[parts.length - 1]!);
  const sigParts = parts[0]!.split(`${SIGNIFICANT} `);
  const significant = pyStrip(sigParts[sigParts.length - 1]!);
  return { clinically_significant: parseErrorTuples(significant), clinically_insignificant: parseErrorTuples(insignificant) };
}

/** chexprompt's extract_rating_dicts on a completion's text: both lists, or nulls where invalid */
export function parseChexpromptCompletion(text: string): ChexpromptRating {
  if (!isValidRatingText(text)) return { clinically_significant: null, clinically_insignificant: null };
  return parseRatingText(text);
}

/** the sum of the six error types' counts (keys chexprompt kept but does not know are not counted) */
export function totalErrors(counts: ChexpromptCounts): number {
  let s = 0;
  for (const k of CHEXPROMPT_ERROR_NAMES) s += counts[k] ?? 0;
  return s;
}
