// RadGraph on our engine (lr_radgraph_* + lib/radgraph) against the float64 PyTorch reference of
// scripts/make-radgraph-model-fixtures.py: the tiny random-weight archive (real allennlp layout) converted to
// GGUF, 10 reports (empty, punctuation runs, unknown characters, accents, tabs / newlines, one folded into 8
// segments). Words, word pieces and segments equal; word vectors, NER, mention and relation scores within
// 1e-5 of float64 (measured: 1.5e-6, 4.5e-7, 2.4e-7, 6.8e-7); the kept spans and the annotation dicts (128
// entities, 46 relations) equal (the reference checks every decision has a margin above 2e-4; the smallest
// is 3.3e-4). An f16 GGUF: scores within 2e-2, annotations equal where every decision has a margin above 5e-2.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { convertRadgraph } from '../lib/convert/radgraph.js';
import { RadgraphModel } from '../lib/radgraph/radgraph.js';

const FIXTURE = new URL('./fixtures/radgraph/model/', import.meta.url).pathname;
interface Case {
  text: string; words: string[]; wordPieces: number[][]; segments: number[][]; wordVectors: number[];
  nerScores: number[]; mentionScores: number[]; top: number[]; relationScores: number[]; margin: number;
  annotation: unknown;
}
const golden = JSON.parse(readFileSync(path.join(FIXTURE, 'goldens.json'), 'utf8')) as { cases: Case[] };
const vocab = WordPieceVocab.fromText(readFileSync(path.join(FIXTURE, 'vocab.txt'), 'utf8'));
const dir = mkdtempSync(path.join(tmpdir(), 'radgraph-model-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const TOL = 1e-5;

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
  expect(a.length, `${what}: length`).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('RadGraph engine on the tiny archive', () => {
  let model: RadgraphModel;
  beforeAll(async () => {
    const gguf = path.join(dir, 'radgraph.gguf');
    await convertRadgraph(path.join(FIXTURE, 'radgraph-tiny.tar.gz'), gguf, { vocab, headCount: 4 });
    model = await RadgraphModel.load(gguf, { threads: 2 });
  });
  afterAll(async () => { await model?.dispose(); });

  it('reads the hyperparameters from the archive config', () => {
    expect(model.settings).toEqual({ maxLength: 16, maxSpanWidth: 4, spansPerWord: 0.5, nerLabels: ['', 'ANAT-DP', 'OBS-DP', 'OBS-U', 'OBS-DA'], relationLabels: ['located_at', 'modify', 'suggestive_of'] });
  });

  for (const c of golden.cases) {
    it(`matches the float64 reference on ${JSON.stringify(c.text).slice(0, 48)}`, async () => {
      const t = await model.trace(c.text);
      expect(t.words).toEqual(c.words);
      expect(t.wordPieces).toEqual(c.wordPieces);
      expect(t.segments).toEqual(c.segments);
      for (const [what, ours, ref] of [
        ['word vectors', t.wordVectors, c.wordVectors], ['NER scores', t.nerScores, c.nerScores],
        ['mention scores', t.mentionScores, c.mentionScores], ['relation scores', t.relationScores, c.relationScores],
      ] as const) {
        expect(maxAbsDiff(ours, ref, what), `${what} within ${TOL} of float64`).toBeLessThan(TOL);
      }
      expect(t.top).toEqual(c.top);
      expect(t.annotation).toEqual(c.annotation);
    });
  }

  it('annotates many reports in order, each distinct text once', async () => {
    const texts = golden.cases.map((c) => c.text);
    const seen: number[] = [];
    const got = await model.annotateMany([...texts, texts[1]!], { onProgress: (d) => seen.push(d) });
    expect(got).toEqual([...golden.cases.map((c) => c.annotation), golden.cases[1]!.annotation]);
    expect(seen.at(-1)).toBe(new Set(texts).size);
  });

  it('gives a whitespace-only report no words and no entities', async () => {
    const t = await model.trace(' \t\n ');
    expect(t.words).toEqual([]);
    expect(t.annotation.entities).toEqual({});
  });

  it('refuses a non-string report and an aborted batch with typed errors', async () => {
    await expect(model.annotate(42 as unknown as string)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const ac = new AbortController();
    ac.abort();
    await expect(model.annotateMany(['a'], { signal: ac.signal })).rejects.toMatchObject({ code: 'ABORTED' });
  });
});

describe('RadGraph engine on an f16 GGUF (BERT matrices f16, span scorers f32)', () => {
  it('stays within 2e-2 of float64 and decodes as the reference where every decision has a margin above 5e-2', async () => {
    const gguf = path.join(dir, 'radgraph-f16.gguf');
    await convertRadgraph(path.join(FIXTURE, 'radgraph-tiny.tar.gz'), gguf, { vocab, headCount: 4, type: 'f16' });
    const model = await RadgraphModel.load(gguf, { threads: 2 });
    try {
      let worst = 0;
      let compared = 0;
      for (const c of golden.cases) {
        const t = await model.trace(c.text);
        worst = Math.max(worst, maxAbsDiff(t.nerScores, c.nerScores, 'NER'), maxAbsDiff(t.relationScores, c.relationScores, 'relations'));
        if (c.margin > 5e-2) {
          expect(t.annotation, JSON.stringify(c.text)).toEqual(c.annotation);
          compared++;
        }
      }
      expect(worst, 'f16 scores within 2e-2 of float64').toBeLessThan(2e-2);
      expect(compared).toBeGreaterThan(0);
    } finally {
      await model.dispose();
    }
  });
});
