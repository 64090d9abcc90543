// The token ids CheXbert's labeler feeds its model for one report, as the official evaluation makes them
// (microsoft/LLaVA-Rad llava/eval/rrg_eval/chexbert.py, after stanfordmlgroup/CheXbert src/bert_tokenizer.py):
// report.strip().replace('\n', ' '), re.sub(r'\s+', ' '), tokenize, [CLS] ids [SEP], then more than
// 512 ids -> the first 511 and [SEP]; a report with no tokens -> [CLS] [SEP].

import { pyStrip } from '../eval/text.js';
import type { BertTokenizer } from './wordpiece.js';

/** BERT's position table: CheXbert cuts every report to this many ids */
export const CHEXBERT_MAX_IDS = 512;

/** Python's str.isspace() characters (what str.strip() and re's \s use on str): not JS's \s */
const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'g');

/** the official evaluation's text cleaning before tokenization */
export function cleanChexbertReport(report: string): string {
  // strip() by a scan: /^[ws]+|[ws]+$/ is quadratic in a run of whitespace inside the text (64,000 spaces: 4.6 s)
  return pyStrip(report).replaceAll('\n', ' ').replace(PY_SPACE_RUN, ' ');
}

/** [CLS] ... [SEP] ids of one report, at most CHEXBERT_MAX_IDS */
export function chexbertInputIds(tokenizer: BertTokenizer, report: string): number[] {
  const tokens = tokenizer.tokenize(cleanChexbertReport(report));
  const ids = [tokenizer.clsId, ...tokens, tokenizer.sepId];
  if (ids.length <= CHEXBERT_MAX_IDS) return ids;
  return [...ids.slice(0, CHEXBERT_MAX_IDS - 1), tokenizer.sepId];
}
