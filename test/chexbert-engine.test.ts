// CheXbert on our engine (native lr_bert_*) against the float64 PyTorch reference of
// scripts/make-chexbert-fixtures.py: the tiny random-weight checkpoint converted to GGUF (f32 and f16), 20
// reports (one past 512 tokens, one empty, accents and CJK). f32: [CLS] state and logits within 1e-5 of
// float64 (measured: 9.3e-7), labels equal. f16 matrices: within 1e-2 (measured: 2.3e-3), labels equal
// wherever the reference's top two logits are more than twice that apart (261 of 280).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChexbertLabeler } from '../lib/bert/chexbert.js';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { convertChexbert } from '../lib/convert/chexbert.js';
import { bertBaseUncasedVocabText } from './fixtures/wordpiece/vocab.js';

const FIXTURE = new URL('./fixtures/chexbert/', import.meta.url).pathname;
interface Case { text: string; ids: number[]; cls_hidden: number[]; logits: number[][]; labels: number[] }
const golden = JSON.parse(readFileSync(path.join(FIXTURE, 'goldens.json'), 'utf8')) as { hparams: { heads: number }; cases: Case[] };
const vocab = WordPieceVocab.fromText(bertBaseUncasedVocabText());
const dir = mkdtempSync(path.join(tmpdir(), 'chexbert-engine-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

for (const [type, tol] of [['f32', 1e-5], ['f16', 1e-2]] as const) {
  describe(`CheXbert engine, ${type} GGUF`, () => {
    let labeler: ChexbertLabeler;
    beforeAll(async () => {
      const gguf = path.join(dir, `chexbert-${type}.gguf`);
      await convertChexbert(path.join(FIXTURE, 'chexbert-tiny.pth'), vocab, gguf, { type, headCount: golden.hparams.heads });
      labeler = await ChexbertLabeler.load(gguf, vocab, { threads: 2 });
    });
    afterAll(async () => { await labeler?.dispose(); });

    it(`gives the float64 reference's [CLS] state and logits within ${tol}, and its labels, on ${golden.cases.length} reports`, async () => {
      let worst = 0;
      let labelsCompared = 0;
      for (const c of golden.cases) {
        const r = await labeler.label(c.text);
        expect(r.ids).toEqual(c.ids);
        worst = Math.max(worst, maxAbsDiff(r.cls, c.cls_hidden));
        r.logits.forEach((row, h) => {
          worst = Math.max(worst, maxAbsDiff(row, c.logits[h]!));
          const sorted = [...c.logits[h]!].sort((a, b) => b - a);
          if (type === 'f32' || sorted[0]! - sorted[1]! > 2 * tol) {
            expect(r.labels[h], `${JSON.stringify(c.text).slice(0, 40)} head ${h}`).toBe(c.labels[h]);
            labelsCompared++;
          }
        });
      }
      expect(worst).toBeLessThan(tol);
      expect(labelsCompared).toBeGreaterThan(golden.cases.length * 14 * (type === 'f32' ? 0.99 : 0.8));
    });
  });
}
