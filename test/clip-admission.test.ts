// ClipModel.embedImages called for many images at once (`Promise.all(files.map((f) => clip.embedImages([f])))`):
// a call's images are decoded only when its chunk's turn comes (one chunk embedded while the next is decoded),
// so the preprocessed pixels (3 x 518 x 518 floats, 3.2 MB an image) of at most two chunks are held however many
// calls wait. Preprocessing is counted through a spy on the library's own preprocessImage. `llava-rad embed` reads
// its files a few at a time. The tiny release's BiomedCLIP, converted here as test/clip.test.ts does.
import { spawnSync } from 'node:child_process';
import { linkSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadClip, type ClipModel } from '../lib/clip/model.js';
import { convertRelease } from '../lib/convert/convert.js';
import * as preprocess from '../lib/image/preprocess.js';

vi.mock('../lib/image/preprocess.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../lib/image/preprocess.js')>();
  return { ...m, preprocessImage: vi.fn(m.preprocessImage) };
});

const root = new URL('..', import.meta.url).pathname;
const RELEASE = new URL('./fixtures/release/', import.meta.url).pathname;
const FINDINGS = new URL('./fixtures/findings/', import.meta.url).pathname;
const images = ['radiograph-grey-900x1100.png', 'radiograph-rgb-1100x900.jpg'].map((f) => readFileSync(path.join(FINDINGS, f)));
const CALLS = 10;

describe('embedImages for many calls at once', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'clip-admission-'));
  let clip: ClipModel;
  let alone: Float32Array[];
  beforeAll(async () => {
    const out = path.join(dir, 'model');
    await convertRelease({ base: path.join(RELEASE, 'vicuna'), adapter: path.join(RELEASE, 'llava-rad'), out,
      type: 'q8_0', visionType: 'f32', clipText: path.join(RELEASE, 'biomedbert'), threads: 1 });
    clip = await loadClip({ model: out, threads: 2 });
    alone = [];
    for (const img of images) alone.push((await clip.embedImages([img]))[0]!);
  }, 300_000);
  afterAll(async () => {
    await clip?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`${CALLS} one-image calls at once: at most 2 images decoded and not yet embedded at any time; each embedding its image's alone`, async () => {
    const spy = vi.mocked(preprocess.preprocessImage);
    spy.mockClear();
    let settled = 0;
    let mostHeld = 0;
    const original = spy.getMockImplementation()!;
    spy.mockImplementation(async (...args) => {
      // counted once the microtasks of a call that has just ended (its settled++) have run
      await new Promise((r) => setImmediate(r));
      mostHeld = Math.max(mostHeld, spy.mock.calls.length - settled);
      return original(...args);
    });
    const out = await Promise.all(Array.from({ length: CALLS }, (_, i) =>
      clip.embedImages([images[i % 2]!]).finally(() => { settled++; })));
    spy.mockImplementation(original);
    expect(spy).toHaveBeenCalledTimes(CALLS);
    expect(mostHeld).toBeLessThanOrEqual(2);
    // each of the 10: bit for bit its image's embedding alone
    out.forEach((rows, i) => expect(Array.from(rows[0]!)).toEqual(Array.from(alone[i % 2]!)));
    expect([clip.activeImageChunks, clip.waitingImageChunks]).toEqual([0, 0]);
  }, 300_000);

  it('`llava-rad embed` of 80 image files in a process allowed 64 open files: every embedding (EMFILE before: it opened them all at once)', async () => {
    const files = Array.from({ length: 80 }, (_, i) => path.join(dir, `image-${i}.png`));
    files.forEach((f) => linkSync(path.join(FINDINGS, 'radiograph-grey-900x1100.png'), f));
    const cli = [process.execPath, '--import', path.join(root, 'scripts', 'ts-hooks.mjs'), path.join(root, 'lib', 'cli.ts'), 'embed', ...files, '--model', path.join(dir, 'model'), '--threads', '2'];
    const r = spawnSync('bash', ['-c', 'ulimit -n 64 && exec "$@"', 'bash', ...cli], { encoding: 'utf8', timeout: 240_000, maxBuffer: 64 << 20 });
    expect(r.status, r.stderr.slice(-1500)).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { image: string; embedding: number[] });
    expect(lines.map((l) => l.image)).toEqual(files);
    // all 80: what embedImages gives for the same files in this process (the same batches of 16), bit for bit
    const want = await clip.embedImages(files.map((f) => readFileSync(f)));
    lines.forEach((l, i) => expect(l.embedding).toEqual(Array.from(want[i]!)));
  }, 300_000);

  it('a waiting call aborted rejects before its image is decoded; one waiting at dispose rejects DISPOSED', async () => {
    const spy = vi.mocked(preprocess.preprocessImage);
    spy.mockClear();
    const running = [clip.embedImages([images[0]!]), clip.embedImages([images[1]!])];
    const ac = new AbortController();
    const waiting = clip.embedImages([images[0]!], { signal: ac.signal });
    expect(clip.waitingImageChunks).toBe(1);
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED' });
    await Promise.all(running);
    expect(spy, 'the aborted call\'s image was never decoded').toHaveBeenCalledTimes(2);

    const more = [clip.embedImages([images[0]!]), clip.embedImages([images[1]!])].map((p) => p.then(() => 'done', (e: { code?: string }) => e.code));
    const last = clip.embedImages([images[0]!]).then(() => 'done', (e: { code?: string }) => e.code);
    expect(clip.waitingImageChunks).toBe(1);
    await clip.dispose();
    expect(await last).toBe('DISPOSED');
    await Promise.all(more);
  }, 300_000);
});
