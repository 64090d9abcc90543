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
import { annotation, type PredictedNer, type PredictedRelation } from '../lib/radgraph/decode.js';
import { RADGRAPH_MAX_KEPT_SPANS, RADGRAPH_MAX_WORDS, RadgraphModel, radgraphTooLong } from '../lib/radgraph/radgraph.js';

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

  it(`annotates ${RADGRAPH_MAX_WORDS} words; one more is INVALID_ARGUMENT before anything is computed`, async () => {
    const words = (n: number) => Array.from({ length: n }, (_, i) => ['effusion', 'left', 'no', '.'][i % 4]).join(' ');
    const t = await model.trace(words(RADGRAPH_MAX_WORDS));
    expect(t.words).toHaveLength(RADGRAPH_MAX_WORDS);
    expect(t.top).toHaveLength(RADGRAPH_MAX_WORDS / 2); // spans_per_word 0.5
    await expect(model.annotate(words(RADGRAPH_MAX_WORDS + 1))).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^the report has 4097 words; RadGraph annotates reports of at most 4096 \(every pair/),
    });
    // a 65,536-byte text of one-character words: 32,768 words, refused at once (annotated, hours and 13 GB of scores)
    await expect(model.annotate('1.'.repeat(16384))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^the report has 32768 words/) });
  });

  it('a model keeping more spans per word is bounded by the kept spans', () => {
    expect(radgraphTooLong(4096, 0.5)).toBeUndefined();
    expect(radgraphTooLong(RADGRAPH_MAX_KEPT_SPANS, 1)).toBeUndefined();
    expect(radgraphTooLong(RADGRAPH_MAX_KEPT_SPANS + 1, 1)).toBe(`${RADGRAPH_MAX_KEPT_SPANS + 1} words, of which this model (spans_per_word 1) would keep ${RADGRAPH_MAX_KEPT_SPANS + 1} spans; at most ${RADGRAPH_MAX_KEPT_SPANS} are scored in pairs`);
    expect(radgraphTooLong(4097, 0.1)).toMatch(/^4097 words; RadGraph annotates reports of at most 4096/);
  });

  it('the annotation dict equals radgraph get_entity\'s loops, written plainly, on 200 random predictions with repeated spans', () => {
    // get_entity (radgraph/utils.py): for each entity in NER order, scan every relation in prediction order; keep
    // those whose first span is the entity's, pointing at the first entity with the second span
    const plain = (words: string[], ner: PredictedNer[], rels: PredictedRelation[]) => {
      const entities: Record<string, unknown> = {};
      ner.forEach((n, idx) => {
        const out: Array<[string, string]> = [];
        for (const r of rels) {
          if (r.start1 !== n.start || r.end1 !== n.end) continue;
          const t = ner.findIndex((m) => m.start === r.start2 && m.end === r.end2);
          if (t >= 0) out.push([r.label, String(t + 1)]);
        }
        entities[String(idx + 1)] = { tokens: words.slice(n.start, n.end + 1).join(' '), label: n.label, start_ix: n.start, end_ix: n.end, relations: out };
      });
      return { text: words.join(' '), entities, data_source: null, data_split: 'inference' };
    };
    let seed = 7;
    const rand = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    let relations = 0;
    for (let c = 0; c < 200; c++) {
      const words = Array.from({ length: 1 + rand(12) }, (_, i) => `w${i}`);
      const span = (): [number, number] => { const s = rand(words.length); return [s, Math.min(words.length - 1, s + rand(3))]; };
      const ner = Array.from({ length: rand(10) }, () => { const [start, end] = span(); return { start, end, label: ['ANAT-DP', 'OBS-DP', 'OBS-U'][rand(3)]! }; });
      const rels = Array.from({ length: rand(30) }, () => {
        const [start1, end1] = span();
        const [start2, end2] = span();
        return { start1, end1, start2, end2, label: ['located_at', 'modify', 'suggestive_of'][rand(3)]! };
      });
      const got = annotation(words, ner, rels);
      expect(got, `case ${c}`).toEqual(plain(words, ner, rels));
      for (const e of Object.values(got.entities)) relations += e.relations.length;
    }
    expect(relations, 'relations kept over the 200 cases').toBeGreaterThan(100);
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
