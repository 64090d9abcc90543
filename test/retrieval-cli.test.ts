// The retrieval commands end to end (in process, the test embedder of LLAVA_RAD_TEST_EMBEDDER): index build /
// info / export, search; the export loads back equal to the index, bit for bit.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RetrievalIndex } from '../lib/retrieval/index-file.js';
import { float32ToString } from '../lib/retrieval/export.js';
import { runCliInProcess } from './helpers/cli-in-process.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lr-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const hash = { LLAVA_RAD_TEST_EMBEDDER: 'hash:32' };
const index = path.join(dir, 'x.lrindex');
const manifest = path.join(dir, 'm.csv');

beforeAll(async () => {
  mkdirSync(path.join(dir, 'img'));
  const rows = ['id,image,reference'];
  for (let i = 0; i < 25; i++) {
    writeFileSync(path.join(dir, 'img', `${i}.png`), `pixels ${i}`);
    rows.push(`s${i},img/${i}.png,"report ${i}, with a comma"`);
  }
  writeFileSync(manifest, rows.join('\n') + '\n');
  const r = await runCliInProcess(['index', 'build', manifest, '--out', index, '--model', 'unused', '--json'], hash);
  expect(r.code, r.err).toBe(0);
  expect(JSON.parse(r.out), 'build summary').toEqual({ file: index, count: 50, added: 50, recovered: 0, no_report: 0 });
});

describe('llava-rad index / search', () => {
  it('index info', async () => {
    const r = await runCliInProcess(['index', 'info', index, '--json'], {});
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ file: index, model_id: 'test-hash-32', dim: 32, count: 50, images: 25, texts: 25 });
  });

  it('search --text finds images by default; --kind text finds the same report first, cosine 1', async () => {
    const r = await runCliInProcess(['search', index, '--text', 'report 7, with a comma', '--model', 'unused', '--k', '3', '--json'], hash);
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out) as { kind: string; k: number; results: Array<{ rank: number; id: string; kind: string; score: number }> };
    expect(j.kind, 'the other modality').toBe('image');
    expect(j.results.map((h) => h.kind)).toEqual(['image', 'image', 'image']);
    expect(j.results.map((h) => h.rank)).toEqual([1, 2, 3]);
    expect(j.results[0]!.score, 'best first').toBeGreaterThanOrEqual(j.results[2]!.score);
    const own = await runCliInProcess(['search', index, '--text', 'report 7, with a comma', '--model', 'unused', '--kind', 'text', '--k', '1', '--json'], hash);
    const hit = (JSON.parse(own.out) as typeof j).results[0]!;
    expect([hit.id, hit.kind]).toEqual(['s7', 'text']);
    expect(Math.abs(hit.score - 1), 'cosine 1 with itself').toBeLessThan(1e-6);
    const img = await runCliInProcess(['search', index, '--image', path.join(dir, 'img', '4.png'), '--model', 'unused', '--kind', 'all', '--k', '100'], hash);
    const lines = img.out.trimEnd().split('\n');
    expect(lines.length, 'k clamped to the 50 entries').toBe(50);
    expect(lines[0], 'the image itself first').toMatch(/^\s+1\s+1\.0000\s+image\s+s4$/);
  });

  it('bad arguments exit 2; a corrupt index BAD_INDEX and another model MODEL_MISMATCH exit 1', async () => {
    const base = ['search', index, '--model', 'unused'];
    for (const extra of [[], ['--text', 'a', '--image', 'b'], ['--text', 'a', '--k', '0'], ['--text', 'a', '--k', '10001'], ['--text', 'a', '--kind', 'report'], ['--text', '  ']]) {
      expect((await runCliInProcess([...base, ...extra], hash)).code, extra.join(' ')).toBe(2);
    }
    expect((await runCliInProcess(['search', path.join(dir, 'missing'), '--text', 'a', '--model', 'x'], hash)).code, 'no index').toBe(2);
    expect((await runCliInProcess(['index', 'frobnicate', index], hash)).code, 'unknown subcommand').toBe(2);
    expect((await runCliInProcess(['index', 'build', manifest, '--out', index, '--model', 'x', '--kinds', 'pictures'], hash)).code).toBe(2);
    const other = await runCliInProcess([...base, '--text', 'a'], { LLAVA_RAD_TEST_EMBEDDER: 'hash:16' });
    expect([other.code, /MODEL_MISMATCH/.test(other.err)], other.err).toEqual([1, true]);
    const bad = path.join(dir, 'bad.lrindex');
    const b = readFileSync(index);
    writeFileSync(bad, b.subarray(0, b.length - 1));
    const r = await runCliInProcess(['search', bad, '--text', 'a', '--model', 'x'], hash);
    expect([r.code, /\[BAD_INDEX\].*truncated/.test(r.err)], r.err).toEqual([1, true]);
  });
});

describe('llava-rad index export', () => {
  it('JSONL, one entry per line, loads back equal to the index bit for bit', async () => {
    const out = path.join(dir, 'x.jsonl');
    const r = await runCliInProcess(['index', 'export', index, '--out', out], {});
    expect(r.code, r.err).toBe(0);
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string; kind: string; vector: number[] });
    const idx = RetrievalIndex.open(index);
    try {
      expect(lines.length).toBe(idx.count);
      lines.forEach((l, i) => {
        expect([l.id, l.kind], `line ${i + 1}`).toEqual([idx.ids[i], idx.kind(i)]);
        expect(Buffer.from(Float32Array.from(l.vector).buffer).equals(Buffer.from(idx.vector(i).buffer)), `line ${i + 1}: the same float32 bits`).toBe(true);
      });
    } finally {
      idx.close();
    }
  });

  it('floats are the shortest decimal that reads back to the same float32', () => {
    let seed = 3;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const xs = Float32Array.from({ length: 2000 }, (_, i) => (rand() - 0.5) * 10 ** ((i % 12) - 8));
    xs[0] = -0;
    xs[1] = 1.401298464324817e-45; // the smallest subnormal
    for (const x of xs) {
      const s = float32ToString(x);
      expect(Object.is(Math.fround(Number(s)), x), `${x} -> ${s}`).toBe(true);
      expect(s.replace(/^-|e.*$|\./g, '').replace(/^0+/, '').length, `${s} has at most 9 significant digits`).toBeLessThanOrEqual(9);
    }
  });
});
