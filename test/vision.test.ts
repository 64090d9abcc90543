// The vision tower + projector against the PyTorch reference (scripts/reference/llava_rad_reference.py,
// float64): a tiny random-weight model of the real structure (518 px, patch 14, CLS first, LayerScale,
// erf GELU, select layer -2, mlp2x_gelu), two synthetic images encoded in one batch.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlavaRadError, loadVisionModel, type VisionModel } from '../lib/index.js';
import { dir, goldenRows, MEAN, meta, relError, syntheticImage } from './helpers/vision-golden.js';

const here = path.dirname(fileURLToPath(import.meta.url));

const images = [syntheticImage(518, false), syntheticImage(518, true)];

// Largest relative error (max |ours - ref| / max |ref|, features and projected, both images) measured on an
// AMD EPYC Zen 4 with each of ggml's CPU modules x64, sse42, sandybridge, haswell, skylakex, icelake and zen4
// (build/llava-rad-cli vision --dump): f32 1.1e-7 to 2.5e-7 (float32 summation order; the golden itself is
// float32), f16 5.45e-4 on every module (the f16 weights' own rounding). The tolerances are 4x and 2.75x that,
// room for another SIMD path's summation order (Sapphire Rapids, other modules), not for a wrong kernel.
describe.each([
  ['f32', 1e-6],
  ['f16', 1.5e-3],
])('vision tower + projector, %s weights, against PyTorch', (type, tol) => {
  let vision: VisionModel;
  beforeAll(async () => {
    vision = await loadVisionModel({ model: path.join(dir, `tiny-vision-${type}.gguf`), threads: 2 });
  });
  afterAll(async () => {
    await vision?.dispose();
  });

  it('reports the structure', () => {
    expect(vision.info).toMatchObject({ imageSize: 518, patchSize: 14, nPatches: 1369, nEmbd: meta.dim, nOut: meta.text_dim, nBlock: 3, nBlockUsed: 2, selectLayer: -2 });
    expect(vision.info.imageMean[0]).toBeCloseTo(MEAN[0]!, 6);
  });

  it(`features (hidden_states[-2] without CLS) and projected embeddings within ${tol} (relative)`, async () => {
    const [feats, projected] = await Promise.all([
      vision.encode(images, { output: 'features' }),
      vision.encode(images),
    ]);
    for (let b = 0; b < 2; b++) {
      const ref = goldenRows(b);
      expect(feats[b]!.length).toBe(meta.n_patches * meta.dim);
      expect(projected[b]!.length).toBe(meta.n_patches * meta.text_dim);
      const ef = relError(feats[b]!, meta.dim, ref.features);
      const ep = relError(projected[b]!, meta.text_dim, ref.projected);
      console.log(`vision ${type} image ${b}: relative error of the features ${ef.toExponential(2)}, projected ${ep.toExponential(2)}`);
      expect(ef, `features of image ${b}: relative error over ${meta.rows.length} rows x ${meta.dim}`).toBeLessThan(tol);
      expect(ep, `projected of image ${b}: relative error over ${meta.rows.length} rows x ${meta.text_dim}`).toBeLessThan(tol);
    }
  }, 120_000);

  it('one image alone gives what it gives inside a batch', async () => {
    const [alone] = await vision.encode(images[1]!);
    const [, inBatch] = await vision.encode(images);
    let d = 0;
    for (let i = 0; i < alone!.length; i++) d = Math.max(d, Math.abs(alone![i]! - inBatch![i]!));
    expect(d).toBeLessThan(1e-5);
  }, 120_000);
});

describe('vision arguments and files', () => {
  it('wrong inputs are typed errors', async () => {
    const vision = await loadVisionModel({ model: path.join(dir, 'tiny-vision-f32.gguf'), threads: 1 });
    try {
      await expect(vision.encode(new Float32Array(10))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(vision.encode([])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      const nan = new Float32Array(vision.pixelsPerImage);
      nan[5] = NaN;
      await expect(vision.encode(nan)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(vision.encode(images[0]!, { output: 'logits' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      await vision.dispose();
    }
    await expect(vision.encode(images[0]!)).rejects.toMatchObject({ code: 'DISPOSED' });
  });

  it('a decoder GGUF or a missing file is refused with a typed error', async () => {
    const { tinyLlamaPath } = await import('./helpers/tiny-llama.js');
    const err = await loadVisionModel({ model: await tinyLlamaPath('q4_0') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlavaRadError);
    expect((err as LlavaRadError).code).toBe('BAD_GGUF');
    await expect(loadVisionModel({ model: path.join(dir, 'nope.gguf') })).rejects.toMatchObject({ code: 'IO' });
  });
});

describe('llava-rad-cli vision (the standalone C++ CLI)', () => {
  it('encodes the same synthetic images to the same embeddings as the library', async () => {
    const exe = path.resolve(here, '..', process.env.LLAVA_RAD_BUILD_DIR ?? 'build', 'llava-rad-cli');
    const model = path.join(dir, 'tiny-vision-f32.gguf');
    const r = spawnSync(exe, ['vision', '--model', model, '--images', '2', '--threads', '2', '--json'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { images: number; n_patches: number; width: number; sum: number; sum_abs: number };
    expect(out).toMatchObject({ images: 2, n_patches: 1369, width: meta.text_dim });
    const vision = await loadVisionModel({ model, threads: 2 });
    try {
      const res = await vision.encode(images);
      let sum = 0, sumAbs = 0;
      for (const a of res) for (const v of a) { sum += v; sumAbs += Math.abs(v); }
      expect(Math.abs(out.sum_abs - sumAbs) / sumAbs).toBeLessThan(1e-6);
      expect(Math.abs(out.sum - sum)).toBeLessThan(1e-6 * sumAbs);
    } finally {
      await vision.dispose();
    }
  }, 120_000);
});
