// generateFindings called for a whole manifest at once (`Promise.all(studies.map(...))`, the natural way to
// write a batch job with the library): each study's image is read, decoded and encoded only once the study may
// run, so the process holds the image rows (1369 x 4096 floats, 22 MB, for the real model) of at most
// `parallel + visionBatch` studies however many calls wait, and a file is read only when its turn comes.
// Tiny random-weight models of the real structure (decoder: the tiny LLaMA; vision: tiny-vision-f32.gguf).
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLlavaRad, type FindingsResult, type LlavaRad } from '../lib/index.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const VISION = path.join(here, 'fixtures', 'vision', 'tiny-vision-f32.gguf');
const PORTRAIT = path.join(here, 'fixtures', 'images', 'grey_517x1033.png');
const LANDSCAPE = path.join(here, 'fixtures', 'images', 'grey_2000x1600.jpg');
const images = [readFileSync(PORTRAIT), readFileSync(LANDSCAPE)];
const STUDIES = 12;
const MAX_TOKENS = 6;

/** counts the images the vision tower was given, and the most that were encoded but whose study had not settled */
function watchEncodes(model: LlavaRad) {
  const w = { encoded: 0, settled: 0, mostHeld: 0 };
  const encode = model.vision.encode.bind(model.vision);
  model.vision.encode = (pixels, options) => {
    w.encoded += Array.isArray(pixels) ? pixels.length : 1;
    // counted once the microtasks of a study that has just ended (its settled++) have run
    setImmediate(() => (w.mostHeld = Math.max(w.mostHeld, w.encoded - w.settled)));
    return encode(pixels, options);
  };
  const settle = <T>(p: Promise<T>): Promise<T> => p.finally(() => { w.settled++; });
  return { w, settle };
}

describe('generateFindings for many studies at once', () => {
  let model: LlavaRad;
  let alone: FindingsResult[];
  const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-admission-'));
  beforeAll(async () => {
    model = await loadLlavaRad({ decoder: await tinyLlamaPath('f32'), vision: VISION, threads: 2, parallel: 2, visionBatch: 2 });
    alone = [];
    for (const img of images) alone.push(await model.generateFindings(img, null, { maxTokens: MAX_TOKENS }));
  }, 120_000);
  afterAll(async () => {
    await model?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it(`${STUDIES} calls at once: at most parallel + visionBatch = 4 studies hold encoded images; the findings are each one's alone`, async () => {
    const { w, settle } = watchEncodes(model);
    const results = await Promise.all(Array.from({ length: STUDIES }, (_, i) =>
      settle(model.generateFindings(images[i % 2]!, null, { maxTokens: MAX_TOKENS }))));
    expect(w.encoded).toBe(STUDIES);
    expect(w.mostHeld).toBeLessThanOrEqual(4);
    // every one of the 12 studies: the same tokens as its image alone
    results.forEach((r, i) => expect(r.tokens).toEqual(alone[i % 2]!.tokens));
    expect(model.waitingStudies).toBe(0);
    expect(model.activeStudies).toBe(0);
  }, 120_000);

  it('generateFindingsFromFile reads a file when its study is admitted: a missing one fails after the studies before it ran', async () => {
    const files = Array.from({ length: 8 }, (_, i) => path.join(tmp, `study-${i}.png`));
    files.forEach((f) => copyFileSync(PORTRAIT, f));
    const missing = path.join(tmp, 'missing.png');
    const { w, settle } = watchEncodes(model);
    const order: string[] = [];
    const runs = files.map((f, i) => settle(model.generateFindingsFromFile(f, null, { maxTokens: MAX_TOKENS })).then(() => order.push(`study ${i}`)));
    const lost = settle(model.generateFindingsFromFile(missing, null, { maxTokens: MAX_TOKENS })).then(
      () => order.push('missing: no error'),
      (e: { code?: string }) => order.push(`missing: ${e.code}`));
    await Promise.all([...runs, lost]);
    // admitted in order, 4 at a time: the missing file's turn comes after at least 8 - 4 + 1 = 5 studies settled
    expect(order.indexOf('missing: IO')).toBeGreaterThanOrEqual(5);
    expect(w.mostHeld).toBeLessThanOrEqual(4);
  }, 120_000);

  it('a waiting call aborted, or waiting when the model is disposed, rejects without its image being encoded', async () => {
    const { w } = watchEncodes(model);
    const ac = new AbortController();
    const first = Array.from({ length: 4 }, () => model.generateFindings(images[0]!, null, { maxTokens: MAX_TOKENS }));
    const waiting = model.generateFindings(images[1]!, null, { maxTokens: MAX_TOKENS, signal: ac.signal });
    expect(model.waitingStudies).toBe(1);
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED' });
    // arguments are checked before a call waits (they were checked after its image was encoded)
    await expect(model.generateFindings(images[1]!, null, { maxTokens: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(model.generateFindings(images[1]!, null, { topP: 2 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(model.generateFindings(images[1]!, null, null as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /options must be an object, got null/ });
    await expect(model.generateFindingsFromFile(42 as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: /file must be the path of an image file/ });
    expect(model.waitingStudies).toBe(0);
    await Promise.all(first);
    expect(w.encoded).toBe(4);

    const other = await loadLlavaRad({ decoder: await tinyLlamaPath('f32'), vision: VISION, threads: 2, parallel: 1, visionBatch: 1 });
    const o = watchEncodes(other);
    const running = [other.generateFindings(images[0]!, null, { maxTokens: MAX_TOKENS }), other.generateFindings(images[0]!, null, { maxTokens: MAX_TOKENS })]
      .map((p) => p.then(() => 'done', (e: { code?: string }) => e.code));
    const queued = other.generateFindings(images[1]!, null, { maxTokens: MAX_TOKENS }).then(() => 'done', (e: { code?: string }) => e.code);
    expect(other.waitingStudies).toBe(1);
    await other.dispose();
    expect(await queued).toBe('DISPOSED');
    await Promise.all(running);
    // the queued study's image never reached the tower (the two admitted ones may have)
    expect(o.w.encoded).toBeLessThanOrEqual(2);
  }, 120_000);
});
