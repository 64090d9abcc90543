// Retrieval metrics equal numpy's (test/fixtures/retrieval/eval.json: open_clip's get_clip_metrics on 60
// synthetic pairs with a duplicate report), from vectors, through an index and through the CLI.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { retrievalMetrics, retrievalRanks } from '../lib/retrieval/metrics.js';
import { evalRetrieval } from '../lib/retrieval/eval.js';
import { buildIndex } from '../lib/retrieval/build.js';
import { RetrievalIndex } from '../lib/retrieval/index-file.js';
import { testEmbedder } from '../lib/retrieval/test-embedder.js';
import { runCliInProcess } from './helpers/cli-in-process.js';
import { RETRIEVAL_FIXTURES, readGolden, type EvalGolden } from './helpers/retrieval-fixtures.js';
import { createHash } from 'node:crypto';

const g = readGolden<EvalGolden>('eval.json');
const dir = mkdtempSync(path.join(tmpdir(), 'lr-eval-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const images = g.studies.map((s) => Float32Array.from(g.images[sha(s.imageBytes)]!));
const texts = g.studies.map((s) => Float32Array.from(g.texts[s.reference]!));
// the manifest and image files the table embedder knows (plus one study without a report, left out)
mkdirSync(path.join(dir, 'img'));
for (const s of g.studies) writeFileSync(path.join(dir, s.image), s.imageBytes);
const manifest = path.join(dir, 'pairs.jsonl');
writeFileSync(manifest, [...g.studies.map(({ id, image, reference }) => JSON.stringify({ id, image, reference })), JSON.stringify({ id: 'noreport', image: 'img/0.bin' })].join('\n') + '\n');
const table = `table:${path.join(RETRIEVAL_FIXTURES, 'eval.json')}`;

function expectGolden(m: ReturnType<typeof retrievalMetrics>, what: string) {
  expect(m.n, `${what}: pairs`).toBe(60);
  for (const [dirn, gold] of [['imageToText', g.imageToText], ['textToImage', g.textToImage]] as const) {
    const got = m[dirn];
    for (const key of ['r1', 'r5', 'r10', 'medianRank'] as const) expect(got[key], `${what}: ${dirn} ${key} equals numpy's exactly`).toBe(gold[key]);
    expect(Math.abs(got.meanRank - gold.meanRank), `${what}: ${dirn} mean rank within 1e-12 of numpy's`).toBeLessThan(1e-12);
  }
}

describe('retrieval metrics', () => {
  it('ranks of every pair equal numpy\'s (stable argsort: ties by position), both directions', () => {
    const r = retrievalRanks(images, texts);
    expect(Array.from(r.imageToText), 'image->text ranks').toEqual(g.imageToText.ranks);
    expect(Array.from(r.textToImage), 'text->image ranks').toEqual(g.textToImage.ranks);
    // the duplicate report: studies 30 and 31 share one report, so their texts tie exactly
    expect(g.studies[30]!.reference).toBe(g.studies[31]!.reference);
  });

  it('Recall@1/5/10, median and mean rank equal numpy\'s', () => {
    expectGolden(retrievalMetrics(images, texts), 'vectors');
  });

  it('a perfect set gives R@1 = 1 and median rank 1; mismatched lengths are INVALID_ARGUMENT', () => {
    const eye = Array.from({ length: 4 }, (_, i) => Float32Array.from({ length: 4 }, (_, j) => (i === j ? 1 : 0)));
    const m = retrievalMetrics(eye, eye);
    expect([m.imageToText.r1, m.imageToText.medianRank, m.textToImage.r1]).toEqual([1, 1, 1]);
    expect(() => retrievalMetrics(eye, eye.slice(1))).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => retrievalMetrics([], [])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });

  it('evalRetrieval with an embedder and from an index built from the manifest: the same numbers', async () => {
    const emb = testEmbedder(table);
    const direct = await evalRetrieval(manifest, { embedder: emb });
    expectGolden(direct, 'embedder');
    expect(direct.noReport, 'the study without a report is left out').toBe(1);
    const f = path.join(dir, 'pairs.lrindex');
    await buildIndex(manifest, emb, { out: f });
    const index = RetrievalIndex.open(f);
    try {
      expectGolden(await evalRetrieval(manifest, { index }), 'index');
      const other = path.join(dir, 'other.jsonl');
      writeFileSync(other, JSON.stringify({ id: 'unknown', image: 'img/1.bin', reference: 'x' }) + '\n');
      await expect(evalRetrieval(other, { index })).rejects.toThrow(/no image entry for study "unknown"/);
    } finally {
      index.close();
    }
  });

  it('batchSize outside 1..4096 is INVALID_ARGUMENT (0 looped for ever on empty batches, starving the event loop; 5000 went unchecked)', async () => {
    const emb = testEmbedder(table);
    for (const batchSize of [0, -1, 0.5, 5000, Number.NaN, '16']) {
      await expect(evalRetrieval(manifest, { embedder: emb }, { batchSize: batchSize as number }), String(batchSize))
        .rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^batchSize must be an integer from 1 to 4096, got /) });
    }
    expectGolden(await evalRetrieval(manifest, { embedder: emb }, { batchSize: 1 }), 'embedder');
  });
});

describe('llava-rad eval-retrieval', () => {
  it('--json prints the metrics; text output the table; --index gives the same', async () => {
    const r = await runCliInProcess(['eval-retrieval', manifest, '--model', 'unused', '--json'], { LLAVA_RAD_TEST_EMBEDDER: table });
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out) as { n: number; no_report: number; image_to_text: Record<string, number>; text_to_image: Record<string, number> };
    expect([j.n, j.no_report]).toEqual([60, 1]);
    expect(j.image_to_text['R@5'], 'R@5 as a fraction').toBe(g.imageToText.r5);
    expect(j.text_to_image.median_rank).toBe(g.textToImage.medianRank);
    const t = await runCliInProcess(['eval-retrieval', manifest, '--model', 'unused'], { LLAVA_RAD_TEST_EMBEDDER: table });
    expect(t.out, 'percent in the table').toContain((100 * g.imageToText.r1).toFixed(1));
    const f = path.join(dir, 'cli.lrindex');
    await buildIndex(manifest, testEmbedder(table), { out: f });
    const byIndex = await runCliInProcess(['eval-retrieval', manifest, '--index', f, '--json'], {});
    expect(byIndex.code, byIndex.err).toBe(0);
    expect(JSON.parse(byIndex.out), '--index: the same JSON').toEqual(j);
  });

  it('usage errors exit 2; a folder without a CLIP model: a typed error, exit 1', async () => {
    expect((await runCliInProcess(['eval-retrieval', manifest], {})).code, 'neither --model nor --index').toBe(2);
    expect((await runCliInProcess(['eval-retrieval', manifest, '--model', 'a', '--index', 'b'], {})).code, 'both').toBe(2);
    expect((await runCliInProcess(['eval-retrieval', path.join(dir, 'nope.jsonl'), '--model', 'a'], {})).code, 'no manifest').toBe(2);
    const r = await runCliInProcess(['eval-retrieval', manifest, '--model', dir], { LLAVA_RAD_TEST_EMBEDDER: undefined });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/\[(INVALID_ARGUMENT|IO)\]/);
  });
});
