// A vision GGUF whose sizes are each legal but whose graph no machine can hold (issue: image 1036 with patch 2
// and tiny widths made ggml fail a 576 GB allocation and then crash in its allocator). The engine measures
// the graph's compute memory first and refuses it with OUT_OF_MEMORY; the process stays healthy. The GGUFs
// are made in the test by llava-rad-make-model (built beside the CLI).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadVisionModel } from '../lib/index.js';
import { dir } from './helpers/vision-golden.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const buildDir = path.resolve(here, '..', process.env.LLAVA_RAD_BUILD_DIR ?? 'build');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'llava-rad-vision-limits-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function makeVision(name: string, args: Record<string, number>): string {
  const tool = path.join(buildDir, 'llava-rad-make-model');
  expect(existsSync(tool), `${tool} is built with the engine (npm install)`).toBe(true);
  const out = path.join(tmp, `${name}.gguf`);
  const flat = Object.entries(args).flatMap(([k, v]) => [`--${k}`, String(v)]);
  const r = spawnSync(tool, ['vision', '--out', out, '--type', 'f32', ...flat], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return out;
}

describe('vision graphs too big for the machine', () => {
  it.each([
    // 518 x 518 patches of 2 px: 268,325 positions, attention scores of 268k x 268k per image
    ['image 1036, patch 2', { image: 1036, patch: 2, width: 4, heads: 1, depth: 2, mlp: 4, proj: 4 }],
    // 16.7 million positions
    ['image 4096, patch 1', { image: 4096, patch: 1, width: 1, heads: 1, depth: 2, mlp: 4, proj: 4 }],
  ])('%s: OUT_OF_MEMORY naming the size, before ggml allocates', async (name, args) => {
    const vision = await loadVisionModel({ model: makeVision(name.replace(/\W+/g, '-'), args), threads: 1 });
    try {
      expect(vision.info).toMatchObject({ imageSize: args.image, patchSize: args.patch });
      const err = await vision.encode(new Float32Array(vision.pixelsPerImage)).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'OUT_OF_MEMORY' });
      expect((err as Error).message).toMatch(/the vision graph for 1 image\(s\) needs [\d.]+ GiB of compute memory on CPU, which has [\d.]+ GiB/);
      // the same model again: the same typed error (the replaced scheduler is usable), no crash
      await expect(vision.encode(new Float32Array(vision.pixelsPerImage))).rejects.toMatchObject({ code: 'OUT_OF_MEMORY' });
    } finally {
      await vision.dispose();
    }
    // the process is healthy: an ordinary model still encodes
    const ok = await loadVisionModel({ model: path.join(dir, 'tiny-vision-f32.gguf'), threads: 1 });
    try {
      const [emb] = await ok.encode(new Float32Array(ok.pixelsPerImage));
      expect(emb!.length).toBe(ok.info.nPatches * ok.info.nOut);
      expect(emb!.every(Number.isFinite)).toBe(true);
    } finally {
      await ok.dispose();
    }
  }, 120_000);
});
