// Exact search equals numpy's brute force (test/fixtures/retrieval/search.json, by make_fixtures.py):
// the same ids in the same order (ties by position) and the same scores.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetrievalIndex } from '../lib/retrieval/index-file.js';
import { searchVectors, search, MAX_K } from '../lib/retrieval/search.js';
import { TopK } from '../lib/retrieval/top-k.js';
import { testEmbedder } from '../lib/retrieval/test-embedder.js';
import { readGolden, writeTestIndex, type SearchGolden } from './helpers/retrieval-fixtures.js';

const g = readGolden<SearchGolden>('search.json');
const dir = mkdtempSync(path.join(tmpdir(), 'lr-search-'));
const file = path.join(dir, 'golden.lrindex');
const queries = g.queries.map((q) => Float32Array.from(q));
// float64 sums in another order than numpy's fsum: they differ by a few ulps of 1
const TOL = 1e-12;

beforeAll(() => writeTestIndex(file, 'golden', g.ids, g.kinds, g.vectors));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('search equals the brute-force top-k of numpy', () => {
  for (const chunkBytes of [undefined, 64 * 7, 64]) {
    it(`every query, kind and k (${chunkBytes ?? 'default'} bytes read at a time)`, () => {
      const index = RetrievalIndex.open(file, chunkBytes === undefined ? {} : { chunkBytes });
      try {
        expect(g.cases.length, 'the golden has cases').toBe(6 * 3 * 4);
        for (const c of g.cases) {
          const [hits] = searchVectors(index, [queries[c.query]!], { k: Math.min(c.k, MAX_K), kind: c.kind });
          const what = `query ${c.query}, kind ${c.kind}, k ${c.k}`;
          expect(hits!.map((h) => h.id), `${what}: ids in numpy's order (score desc, then position)`).toEqual(c.ids);
          hits!.forEach((h, i) => {
            expect(Math.abs(h.score - c.scores[i]!), `${what}: score of rank ${i + 1} within ${TOL} of numpy's`).toBeLessThan(TOL);
            expect(h.kind, `${what}: kind of rank ${i + 1}`).toBe(g.kinds[h.index]);
            if (c.kind !== 'all') expect(h.kind, `${what}: only ${c.kind} entries`).toBe(c.kind);
          });
        }
      } finally {
        index.close();
      }
    });
  }

  it('exact ties (duplicated vectors) rank by position, the earlier first', () => {
    const index = RetrievalIndex.open(file);
    const [hits] = searchVectors(index, [queries[5]!], { k: 3 }); // query = vector 59 = 60 = 61
    index.close();
    expect(hits!.map((h) => h.index), 'positions 59, 60, 61 in that order').toEqual([59, 60, 61]);
    expect(hits![0]!.score, 'tied scores are equal').toBe(hits![2]!.score);
  });

  it('a batch of queries gives what each query gives alone', () => {
    const index = RetrievalIndex.open(file);
    const all = searchVectors(index, queries, { k: 12 });
    queries.forEach((q, i) => expect(all[i], `query ${i}`).toEqual(searchVectors(index, [q], { k: 12 })[0]));
    index.close();
  });
});

describe('search arguments', () => {
  it('k, kind and queries are checked (INVALID_ARGUMENT), k beyond the candidates is clamped', () => {
    const index = RetrievalIndex.open(file);
    try {
      for (const k of [0, -1, 1.5, MAX_K + 1, NaN, '3']) {
        expect(() => searchVectors(index, [queries[0]!], { k: k as number }), `k ${String(k)}`).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      }
      expect(() => searchVectors(index, [queries[0]!], { kind: 'report' as 'text' })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      expect(() => searchVectors(index, [new Float32Array(g.dim + 1)])).toThrow(/16 floats/);
      expect(() => searchVectors(index, [Float32Array.from({ length: g.dim }, () => NaN)])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      const images = g.kinds.filter((k) => k === 'image').length;
      expect(searchVectors(index, [queries[0]!], { k: MAX_K, kind: 'image' })[0]!.length, 'k clamped to the images').toBe(images);
    } finally {
      index.close();
    }
  });

  it('search() embeds with the index model and searches the other modality by default; another model is MODEL_MISMATCH', async () => {
    const emb = testEmbedder('hash:16');
    const f = path.join(dir, 'hash.lrindex');
    const texts = ['no acute findings', 'small left effusion', 'cardiomegaly'];
    const tv = await emb.embedTexts(texts);
    const iv = await emb.embedImages([Buffer.from('a'), Buffer.from('b')]);
    writeTestIndex(f, emb.modelId, ['t0', 't1', 't2', 'i0', 'i1'], ['text', 'text', 'text', 'image', 'image'], [...tv, ...iv]);
    const index = RetrievalIndex.open(f);
    try {
      const hits = await search(index, emb, { text: 'small left effusion' }, { k: 10 });
      expect(hits.map((h) => h.kind), 'a text query ranks the images only').toEqual(['image', 'image']);
      const own = await search(index, emb, { text: 'small left effusion' }, { k: 1, kind: 'text' });
      expect(own[0]!.id, 'the same text finds itself first').toBe('t1');
      expect(Math.abs(own[0]!.score - 1), 'with cosine 1').toBeLessThan(1e-6);
      const byImage = await search(index, emb, { image: Buffer.from('b') }, { k: 1, kind: 'all' });
      expect(byImage[0]!.id, 'the same image finds itself').toBe('i1');
      await expect(search(index, testEmbedder('hash:8'), { text: 'x' })).rejects.toMatchObject({ code: 'MODEL_MISMATCH' });
    } finally {
      index.close();
    }
  });
});

describe('TopK', () => {
  it('keeps the k best of many tied and untied scores in the documented order, whatever the order offered', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const pairs = Array.from({ length: 500 }, (_, i) => ({ index: i, score: Math.floor(rand() * 20) / 20 }));
    const expected = [...pairs].sort((a, b) => b.score - a.score || a.index - b.index).slice(0, 37);
    for (let round = 0; round < 3; round++) {
      const top = new TopK(37);
      const shuffled = [...pairs].sort(() => rand() - 0.5);
      for (const p of shuffled) top.offer(p.score, p.index);
      expect(top.sorted(), `round ${round}`).toEqual(expected);
    }
  });
});
