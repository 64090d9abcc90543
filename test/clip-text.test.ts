// open_clip's text cleaning (ftfy.fix_text, html.unescape twice, Python's \s runs to one space) and BiomedCLIP's
// tokenization (PubMedBERT's uncased WordPiece, [CLS] ... [SEP] cut to 256) against the real thing: ftfy 6.3.1 and
// Hugging Face tokenizers 0.22.2 run by scripts/make-clip-fixtures.py on the tiny release's vocabulary.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { cleanClipText } from '../lib/clip/text-clean.js';
import { ClipTokenizer } from '../lib/clip/tokenizer.js';
import { DEFAULT_CLIP_TEMPLATES, checkLabels, checkTemplates, labelPrompts, meanDirection, zeroShotProbabilities } from '../lib/clip/zero-shot.js';

interface Case { text: string; cleaned: string; ids: number[] }
const golden = JSON.parse(readFileSync(new URL('./fixtures/clip/golden.json', import.meta.url), 'utf8')) as { texts: Case[]; cleaning: Case[]; context_length: number };
const vocab = WordPieceVocab.fromText(readFileSync(new URL('./fixtures/release/biomedbert/vocab.txt', import.meta.url), 'utf8'));
const tokenizer = new ClipTokenizer(vocab, golden.context_length);
const cases = [...golden.texts, ...golden.cleaning];

describe('open_clip text cleaning and tokenization', () => {
  it(`cleans ${cases.length} texts exactly as ftfy + html.unescape + whitespace_clean`, () => {
    for (const c of cases) expect(cleanClipText(c.text), JSON.stringify(c.text)).toBe(c.cleaned);
  });

  it('gives the ids of HF tokenizers (lowercase WordPiece, truncation to 256 with [SEP] kept)', () => {
    for (const c of cases) expect(tokenizer.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
    const long = golden.texts.find((c) => c.ids.length === golden.context_length);
    expect(long, 'a case longer than the context').toBeDefined();
    expect(long!.ids.at(-1)).toBe(vocab.specialId('[SEP]'));
  });

  it('cleans a text with a long run of whitespace inside in one pass (the strip\'s regular expression took 5.5 s for 64,000 spaces)', () => {
    expect(cleanClipText(` a${' '.repeat(1 << 20)}b\u3000`)).toBe('a b');
  });

  it('refuses a non-string text and a context under 2', () => {
    expect(() => tokenizer.encode(5 as unknown as string)).toThrow(/must be a string/);
    expect(() => new ClipTokenizer(vocab, 1)).toThrow(/contextLength/);
  });
});

describe('zero-shot helpers', () => {
  it('fills templates, checks labels and templates', () => {
    expect(labelPrompts('edema', DEFAULT_CLIP_TEMPLATES)).toEqual(['this is a photo of edema']);
    expect(labelPrompts('x', ['{} and {}'])).toEqual(['x and x']);
    expect(() => checkLabels(['one'])).toThrow(/at least 2/);
    expect(() => checkLabels(['a', 'a'])).toThrow(/distinct/);
    expect(() => checkTemplates(['no placeholder'])).toThrow(/\{\}/);
  });

  it('averages normalized rows and renormalizes; softmax of scaled dot products (numbers worked by hand)', () => {
    const m = meanDirection([Float32Array.from([1, 0]), Float32Array.from([0, 1])]);
    expect(m[0]).toBeCloseTo(Math.SQRT1_2, 7);
    expect(m[1]).toBeCloseTo(Math.SQRT1_2, 7);
    // logits 100 * [1, 0] -> softmax [1 / (1 + e^-100), ...]; log scale ln 2 -> logits [2, 0]
    const p = zeroShotProbabilities(Float32Array.from([1, 0]), [Float32Array.from([1, 0]), Float32Array.from([0, 1])], Math.log(2));
    expect(p[0]).toBeCloseTo(Math.exp(2) / (Math.exp(2) + 1), 12);
    expect(p[0]! + p[1]!).toBeCloseTo(1, 12);
  });
});
