// BERT's uncased WordPiece tokenizer, equal to Hugging Face tokenizers' BertWordPieceTokenizer(vocab.txt,
// lowercase=True) (bert-base-uncased): BertNormalizer, BertPreTokenizer, WordPiece, [CLS] ... [SEP].
// test/bert-wordpiece.test.ts compares it with that library on a corpus (docs/validation.md).

import { LlavaRadError } from '../errors.js';
import { DECOMPOSABLE_RANGES, NONSPACING_MARK_RANGES, OTHER_RANGES, PUNCTUATION_RANGES } from './unicode-tables.js';

/** the special tokens BertWordPieceTokenizer registers: matched verbatim (case kept) in the raw text */
const SPECIAL_TOKENS = ['[UNK]', '[SEP]', '[CLS]', '[PAD]', '[MASK]'] as const;
/** a word longer than this many characters (after normalization) is one [UNK] */
const MAX_CHARS_PER_WORD = 100;
const CONTINUATION_PREFIX = '##';

// The classes of the Rust normalizer / pre-tokenizer (tokenizers/src/{normalizers,pre_tokenizers}/bert.rs):
// Cc Cf Co Cs (not Cn) dropped except \t \n \r; Mn dropped after NFD; ASCII punctuation or P* isolated.
// Their Unicode version is the reference's (unicode-tables.ts), not the JS engine's; White_Space is Rust std's.
const IS_WHITESPACE = /[\t\n\r\p{White_Space}]/u;

/** cp in a sorted flat list of inclusive [first, last] ranges */
function inRanges(ranges: readonly number[], cp: number): boolean {
  let lo = 0;
  let hi = ranges.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < ranges[2 * mid]!) hi = mid - 1;
    else if (cp > ranges[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}
const isOther = (c: string): boolean => inRanges(OTHER_RANGES, c.codePointAt(0)!);
const isNonspacingMark = (c: string): boolean => inRanges(NONSPACING_MARK_RANGES, c.codePointAt(0)!);
const isPunctuation = (c: string): boolean => inRanges(PUNCTUATION_RANGES, c.codePointAt(0)!);
const HANGUL_SYLLABLES = [0xac00, 0xd7a3] as const;

/**
 * NFD as the reference's Unicode version knows it: a character the JS engine decomposes but the reference
 * does not (added to Unicode later) is kept whole; everything between such characters goes through NFD.
 */
function referenceNfd(text: string): string {
  let out = '';
  let pending = '';
  for (const c of text) {
    const cp = c.codePointAt(0)!;
    const referenceDecomposes = inRanges(DECOMPOSABLE_RANGES, cp) || (cp >= HANGUL_SYLLABLES[0] && cp <= HANGUL_SYLLABLES[1]);
    if (referenceDecomposes || c.normalize('NFD') === c) { pending += c; continue; }
    out += pending.normalize('NFD') + c;
    pending = '';
  }
  return out + pending.normalize('NFD');
}

function isChineseChar(cp: number): boolean {
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

/** BertNormalizer(clean_text, handle_chinese_chars, strip_accents = lowercase = true), in its order */
export function normalizeBertUncased(text: string): string {
  let cleaned = '';
  for (const c of text) {
    const cp = c.codePointAt(0)!;
    const isControl = isOther(c); // never \t \n \r
    if (cp === 0 || cp === 0xfffd || isControl) continue;
    const mapped = IS_WHITESPACE.test(c) ? ' ' : c;
    cleaned += isChineseChar(cp) ? ` ${mapped} ` : mapped;
  }
  let out = '';
  for (const c of referenceNfd(cleaned)) {
    if (isNonspacingMark(c)) continue;
    out += c.toLowerCase(); // one character at a time: no final-sigma context, as Rust's char::to_lowercase
  }
  return out;
}

/** BertPreTokenizer: split on whitespace (removed), then isolate each punctuation character */
export function preTokenizeBert(normalized: string): string[] {
  const words: string[] = [];
  let word = '';
  const flush = (): void => {
    if (word !== '') words.push(word);
    word = '';
  };
  for (const c of normalized) {
    if (IS_WHITESPACE.test(c)) flush();
    else if (isPunctuation(c)) { flush(); words.push(c); } else word += c;
  }
  flush();
  return words;
}

/** a WordPiece vocabulary: piece -> id, in vocab.txt's line order */
export class WordPieceVocab {
  readonly pieces: readonly string[];
  private readonly ids: Map<string, number>;

  constructor(pieces: readonly string[]) {
    this.pieces = pieces;
    this.ids = new Map();
    pieces.forEach((piece, id) => { if (!this.ids.has(piece)) this.ids.set(piece, id); });
    for (const special of SPECIAL_TOKENS) {
      if (!this.ids.has(special)) {
        throw new LlavaRadError('BAD_CHECKPOINT', `WordPiece vocabulary has no ${special} token`);
      }
    }
  }

  /** vocab.txt: one piece a line (a trailing newline, CRLF tolerated) */
  static fromText(text: string): WordPieceVocab {
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return new WordPieceVocab(lines.map((line) => line.replace(/\r$/, '')));
  }

  get size(): number { return this.pieces.length; }

  id(piece: string): number | undefined { return this.ids.get(piece); }

  specialId(piece: (typeof SPECIAL_TOKENS)[number]): number { return this.ids.get(piece)!; }
}

export class BertTokenizer {
  readonly vocab: WordPieceVocab;
  readonly clsId: number;
  readonly sepId: number;
  readonly unkId: number;
  readonly padId: number;

  constructor(vocab: WordPieceVocab) {
    this.vocab = vocab;
    this.clsId = vocab.specialId('[CLS]');
    this.sepId = vocab.specialId('[SEP]');
    this.unkId = vocab.specialId('[UNK]');
    this.padId = vocab.specialId('[PAD]');
  }

  /** the ids of `text` without [CLS] / [SEP] */
  tokenize(text: string): number[] {
    const ids: number[] = [];
    for (const segment of splitOnSpecialTokens(text)) {
      if (segment.special) { ids.push(this.vocab.specialId(segment.special)); continue; }
      for (const word of preTokenizeBert(normalizeBertUncased(segment.text))) this.wordPiece(word, ids);
    }
    return ids;
  }

  /** [CLS] tokenize(text) [SEP], no truncation (BertWordPieceTokenizer.encode(text).ids) */
  encode(text: string): number[] {
    return [this.clsId, ...this.tokenize(text), this.sepId];
  }

  /** greedy longest-match-first; a word with an unmatched remainder, or too long, is one [UNK] */
  private wordPiece(word: string, out: number[]): void {
    const chars = Array.from(word);
    if (chars.length > MAX_CHARS_PER_WORD) { out.push(this.unkId); return; }
    const pieces: number[] = [];
    for (let start = 0; start < chars.length;) {
      let end = chars.length;
      let found: number | undefined;
      for (; end > start; end--) {
        const piece = (start > 0 ? CONTINUATION_PREFIX : '') + chars.slice(start, end).join('');
        found = this.vocab.id(piece);
        if (found !== undefined) break;
      }
      if (found === undefined) { out.push(this.unkId); return; }
      pieces.push(found);
      start = end;
    }
    out.push(...pieces);
  }
}

type Segment = { text: string; special?: undefined } | { text: string; special: (typeof SPECIAL_TOKENS)[number] };

/** cuts the raw text at the special tokens, longest first at each position (they are never normalized) */
function splitOnSpecialTokens(text: string): Segment[] {
  const segments: Segment[] = [];
  let last = 0;
  for (let i = 0; i < text.length;) {
    const special = text.charCodeAt(i) === 0x5b /* [ */ ? SPECIAL_TOKENS.find((s) => text.startsWith(s, i)) : undefined;
    if (special === undefined) { i++; continue; }
    if (i > last) segments.push({ text: text.slice(last, i) });
    segments.push({ text: special, special });
    i += special.length;
    last = i;
  }
  if (last < text.length) segments.push({ text: text.slice(last) });
  return segments;
}
