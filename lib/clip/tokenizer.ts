// BiomedCLIP-CXR's text tokenizer: open_clip's cleaning (text-clean.ts), then PubMedBERT's uncased WordPiece
// (lib/bert/wordpiece.ts: the same BERT normalization, pre-tokenization and WordPiece as bert-base-uncased's),
// [CLS] ... [SEP] cut to the context length with [SEP] kept (transformers' truncation to max_length).
// open_clip pads to the context length with [PAD] and masks the padding; the engine encodes the unpadded ids,
// which gives the same [CLS] state (checked against the padded reference in test/clip.test.ts). One difference:
// a text that writes "[PAD]" itself gets id 0 there too, which open_clip's mask (ids != 0) then hides; here it is
// attended to like any token.

import { BertTokenizer, WordPieceVocab } from '../bert/wordpiece.js';
import { invalidArgument, LlavaRadError } from '../errors.js';
import { cleanClipText } from './text-clean.js';

/** open_clip's context_length for BiomedCLIP-CXR (biomedclipcxr_518.json text_cfg) */
export const CLIP_CONTEXT_LENGTH = 256;

export class ClipTokenizer {
  readonly bert: BertTokenizer;
  readonly contextLength: number;

  constructor(vocab: WordPieceVocab, contextLength = CLIP_CONTEXT_LENGTH) {
    if (!Number.isSafeInteger(contextLength) || contextLength < 2) {
      throw new LlavaRadError('INVALID_ARGUMENT', `contextLength must be an integer >= 2, got ${String(contextLength)}`);
    }
    this.bert = new BertTokenizer(vocab);
    this.contextLength = contextLength;
  }

  /** [CLS] ids(clean(text)) [SEP], at most contextLength ids */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw invalidArgument('a text', 'a string', text);
    const ids = this.bert.tokenize(cleanClipText(text)).slice(0, this.contextLength - 2);
    return [this.bert.clsId, ...ids, this.bert.sepId];
  }
}
