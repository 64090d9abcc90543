// Retrieval end to end with the real CLIP model: the tiny release converted with its text tower, an index built
// by `llava-rad index build --model`, `search` and `eval-retrieval` through the command line, checked against
// brute force over the library's own embeddings (embedImages / embedTexts, themselves checked against float64
// PyTorch in test/clip.test.ts).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadClip, type ClipModel } from '../lib/clip/model.js';
import { convertRelease } from '../lib/convert/convert.js';
import { runCliInProcess } from './helpers/cli-in-process.js';

const RELEASE = new URL('./fixtures/release/', import.meta.url).pathname;
const FINDINGS = new URL('./fixtures/findings/', import.meta.url).pathname;
const dir = mkdtempSync(path.join(tmpdir(), 'retrieval-clip-'));
const model = path.join(dir, 'model');
const IMAGES = ['radiograph-grey-900x1100.png', 'radiograph-rgb-1100x900.jpg', 'square-rgb-600x600.png'];
const REPORTS = ['No pleural effusion.', 'Mild cardiomegaly; small left pleural effusion.', 'Bilateral opacities, unchanged.'];
let clip: ClipModel;
const env = { LLAVA_RAD_TEST_EMBEDDER: undefined };

beforeAll(async () => {
  await convertRelease({ base: path.join(RELEASE, 'vicuna'), adapter: path.join(RELEASE, 'llava-rad'), out: model, type: 'q8_0', visionType: 'f32',
    clipText: path.join(RELEASE, 'biomedbert'), threads: 1 });
  clip = await loadClip({ model });
  writeFileSync(path.join(dir, 'pairs.jsonl'), IMAGES.map((image, i) => JSON.stringify({ id: `s${i}`, image: path.join(FINDINGS, image), reference: REPORTS[i] })).join('\n') + '\n');
}, 180_000);
afterAll(async () => {
  await clip?.dispose();
  rmSync(dir, { recursive: true, force: true });
});

const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

describe('retrieval with the BiomedCLIP-CXR model', () => {
  it('index build --model, then search --text and --image give the brute-force order of the library\'s embeddings', async () => {
    const index = path.join(dir, 'cxr.lrindex');
    const b = await runCliInProcess(['index', 'build', path.join(dir, 'pairs.jsonl'), '--model', model, '--out', index, '--json'], env);
    expect(b.code, b.err).toBe(0);
    expect(JSON.parse(b.out.trim())).toMatchObject({ count: 6, added: 6 });
    const images = await clip.embedImages(IMAGES.map((f) => new Uint8Array(readFileSync(path.join(FINDINGS, f)))));
    const texts = await clip.embedTexts(REPORTS);
    for (const [q, query] of [['--text', 'small pleural effusion'], ['--image', path.join(FINDINGS, IMAGES[1]!)]] as const) {
      const s = await runCliInProcess(['search', index, q, query, '--model', model, '--k', '3', '--json'], env);
      expect(s.code, s.err).toBe(0);
      const got = (JSON.parse(s.out.trim()) as { results: { id: string; kind: string; score: number }[] }).results;
      const qv = q === '--text' ? (await clip.embedTexts([query]))[0]! : images[1]!;
      const cands = q === '--text' ? images : texts; // the other modality by default
      const want = cands.map((v, i) => ({ id: `s${i}`, score: dot(qv, v) })).sort((x, y) => y.score - x.score || x.id.localeCompare(y.id));
      expect(got.map((h) => h.id), `${q}: ids in brute-force order`).toEqual(want.map((w) => w.id));
      got.forEach((h, i) => expect(Math.abs(h.score - want[i]!.score), `${q} rank ${i + 1}: score`).toBeLessThan(1e-5));
    }
    const e = await runCliInProcess(['eval-retrieval', path.join(dir, 'pairs.jsonl'), '--index', index, '--json'], env);
    expect(e.code, e.err).toBe(0);
    expect(JSON.parse(e.out.trim())).toMatchObject({ n: 3, model_id: clip.modelId });
  }, 300_000);

  it('a folder without a CLIP model is a typed error (exit 1)', async () => {
    const r = await runCliInProcess(['search', path.join(dir, 'none.lrindex'), '--text', 'x', '--model', dir], env);
    expect(r.code).toBe(2); // the index is missing: a usage error first
    writeFileSync(path.join(dir, 'p2.jsonl'), JSON.stringify({ id: 'a', image: path.join(FINDINGS, IMAGES[0]!), reference: 'x' }) + '\n');
    const b = await runCliInProcess(['index', 'build', path.join(dir, 'p2.jsonl'), '--model', path.join(dir, 'nope'), '--out', path.join(dir, 'x.lrindex')], env);
    expect(b.code).toBe(1);
    expect(b.err).toMatch(/\[IO\].*nope/);
  });
});
