// Our BERT uncased WordPiece tokenizer against Hugging Face tokenizers' BertWordPieceTokenizer(bert-base-uncased
// vocab.txt, lowercase=True): 1,284 texts (1,200 generated radiology reports, about 3,000 sentences, and 84
// adversarial texts: accents, scripts, CJK, emoji, control / format / private-use / unassigned characters,
// every whitespace, words around 100 characters, punctuation runs, special tokens, reports past 512 tokens),
// goldens from scripts/make-wordpiece-fixtures.py. Every id must be equal, and CheXbert's input ids too; and
// the normalized, pre-tokenized view of each of the 1,112,064 code points (hashed by block) must be the same.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CHEXBERT_MAX_IDS, chexbertInputIds, cleanChexbertReport } from '../lib/bert/chexbert-input.js';
import { BertTokenizer, normalizeBertUncased, preTokenizeBert, WordPieceVocab } from '../lib/bert/wordpiece.js';
import { isLlavaRadError } from '../lib/errors.js';
import { bertBaseUncasedVocabText } from './fixtures/wordpiece/vocab.js';

interface Case { text: string; ids: number[]; chexbert?: number[] }
const golden = JSON.parse(
  readFileSync(new URL('./fixtures/wordpiece/goldens.json', import.meta.url), 'utf8'),
) as { reference: string; cases: Case[]; block_size: number; block_hashes: string[] };
const tokenizer = new BertTokenizer(WordPieceVocab.fromText(bertBaseUncasedVocabText()));

describe('BERT WordPiece (bert-base-uncased)', () => {
  it('reads the real 30,522-piece vocabulary with its special ids', () => {
    expect(tokenizer.vocab.size).toBe(30522);
    expect([tokenizer.padId, tokenizer.unkId, tokenizer.clsId, tokenizer.sepId]).toEqual([0, 100, 101, 102]);
    expect(tokenizer.vocab.id('[MASK]')).toBe(103);
    expect(tokenizer.vocab.id('[unused0]')).toBe(1);
  });

  it(`equals ${golden.reference} on every text of the corpus`, () => {
    expect(golden.cases.length).toBeGreaterThan(1200);
    const mismatches: string[] = [];
    for (const c of golden.cases) {
      const ids = tokenizer.encode(c.text);
      if (JSON.stringify(ids) !== JSON.stringify(c.ids)) mismatches.push(JSON.stringify(c.text).slice(0, 120));
    }
    expect(mismatches).toEqual([]);
  });

  it('normalizes and pre-tokenizes every Unicode code point as the reference does (hashed 4,096 a block)', () => {
    const differing: string[] = [];
    golden.block_hashes.forEach((expected, block) => {
      const hash = createHash('sha256');
      for (let cp = block * golden.block_size; cp < (block + 1) * golden.block_size; cp++) {
        if (cp >= 0xd800 && cp <= 0xdfff) continue;
        const pieces = preTokenizeBert(normalizeBertUncased(`a${String.fromCodePoint(cp)}b`));
        hash.update(`${pieces.join('\u0000')}\u0001`, 'utf8');
      }
      const actual = hash.digest('hex').slice(0, 16);
      if (actual !== expected) differing.push(`U+${(block * golden.block_size).toString(16)}`);
    });
    expect(golden.block_hashes.length).toBe(0x110000 / golden.block_size);
    expect(differing).toEqual([]);
  });

  it("equals CheXbert's input ids (cleaning, [CLS]/[SEP], cut to 512) on every text", () => {
    let truncated = 0;
    for (const c of golden.cases) {
      const expected = c.chexbert ?? c.ids;
      const ids = chexbertInputIds(tokenizer, c.text);
      expect(ids, JSON.stringify(c.text).slice(0, 120)).toEqual(expected);
      expect(ids.length).toBeLessThanOrEqual(CHEXBERT_MAX_IDS);
      if (c.ids.length > CHEXBERT_MAX_IDS) truncated++;
    }
    expect(truncated).toBeGreaterThanOrEqual(3);
  });

  it('splits, normalizes and pieces as BERT does', () => {
    expect(normalizeBertUncased('Café\u00adÑ\u3000中x\u0000\ufffd')).toBe('cafen  中 x');
    expect(preTokenizeBert('a.b  c!?')).toEqual(['a', '.', 'b', 'c', '!', '?']);
    const pieces = (text: string) => tokenizer.tokenize(text).map((id) => tokenizer.vocab.pieces[id]);
    expect(pieces('Pneumothorax!')).toEqual(['p', '##ne', '##um', '##otho', '##ra', '##x', '!']);
    expect(pieces('a'.repeat(101))).toEqual(['[UNK]']);
    expect(pieces('[CLS] [cls]')).toEqual(['[CLS]', '[', 'cl', '##s', ']']);
    expect(cleanChexbertReport('  a\n\n b\u2028c\u0085 ')).toBe('a b c');
    expect(chexbertInputIds(tokenizer, ' \n ')).toEqual([101, 102]);
    // a run of whitespace inside a report: one pass (the strip's regular expression took 4.6 s for 64,000 spaces)
    expect(cleanChexbertReport(` a${' '.repeat(1 << 20)}b\t`)).toBe('a b');
  });

  it('refuses a vocabulary without the special tokens', () => {
    let error: unknown;
    try { WordPieceVocab.fromText('a\nb\n'); } catch (e) { error = e; }
    expect(isLlavaRadError(error, 'BAD_CHECKPOINT')).toBe(true);
  });
});
