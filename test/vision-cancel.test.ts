// Stopping an image encode while it computes: an AbortSignal (or dispose()) stops the vision graph after the
// node in progress instead of letting the batch run to its end, and the model encodes as before afterwards.
// The model is made here by llava-rad-make-model: width 384, 12 blocks at 518 px, about 90 GFLOP per image,
// so a batch of 8 takes seconds on any CPU and the abort, 100 ms after the encode starts, lands inside it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadVisionModel, type VisionModel } from '../lib/index.js';
import { syntheticImage } from './helpers/vision-golden.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const buildDir = path.resolve(here, '..', process.env.LLAVA_RAD_BUILD_DIR ?? 'build');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'llava-rad-vision-cancel-'));
const BATCH = 8;

describe('cancelling an encode in progress', () => {
  let file: string;
  let vision: VisionModel;
  const images = Array.from({ length: BATCH }, (_, i) => syntheticImage(518, i % 2 === 1));
  beforeAll(async () => {
    const tool = path.join(buildDir, 'llava-rad-make-model');
    expect(existsSync(tool), `${tool} is built with the engine (npm install)`).toBe(true);
    file = path.join(tmp, 'vision-384x12.gguf');
    const r = spawnSync(tool, ['vision', '--out', file, '--type', 'f16', '--width', '384', '--depth', '12', '--heads', '6',
      '--mlp', '1536', '--proj', '64'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    vision = await loadVisionModel({ model: file, threads: 2, maxBatch: BATCH });
  }, 120_000);
  afterAll(async () => {
    await vision?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('an AbortSignal stops the batch; the next encode gives what it gave before', async () => {
    const [before] = await vision.encode(images[0]!);
    const ac = new AbortController();
    const p = vision.encode(images, { signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    const err = await p.catch((e: unknown) => e);
    expect(err, `a batch of ${BATCH} ran to its end before the abort`).toMatchObject({ code: 'ABORTED' });
    const [after] = await vision.encode(images[0]!);
    expect(Buffer.from(after!.buffer, after!.byteOffset, after!.byteLength)
      .equals(Buffer.from(before!.buffer, before!.byteOffset, before!.byteLength)), `${after!.length} floats compared`).toBe(true);
    // an encode waiting behind another one leaves the queue when aborted, without touching the first
    const running = vision.encode(images[1]!);
    const ac2 = new AbortController();
    const waiting = vision.encode(images[2]!, { signal: ac2.signal });
    ac2.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED' });
    expect((await running)[0]!.length).toBe(vision.info.nPatches * vision.info.nOut);
  }, 120_000);

  it('dispose() during an encode stops it (DISPOSED) and rejects the encodes waiting', async () => {
    const other = await loadVisionModel({ model: file, threads: 2, maxBatch: BATCH });
    const computing = other.encode(images).catch((e: unknown) => e);
    const waiting = other.encode(images[0]!).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    await other.dispose();
    expect(await computing, `a batch of ${BATCH} ran to its end before dispose`).toMatchObject({ code: 'DISPOSED' });
    expect(await waiting).toMatchObject({ code: 'DISPOSED' });
  }, 120_000);
});
