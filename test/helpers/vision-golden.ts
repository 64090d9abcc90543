// The tiny vision fixture's float64 PyTorch outputs (test/fixtures/vision, made by
// scripts/reference/make_vision_fixture.py) and the synthetic images they were computed for.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const dir = path.join(here, '..', 'fixtures', 'vision');
export const meta = JSON.parse(readFileSync(path.join(dir, 'golden.json'), 'utf8')) as {
  rows: number[]; n_patches: number; dim: number; text_dim: number;
};
const golden = (() => {
  const b = readFileSync(path.join(dir, 'golden.bin'));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
})();

export const MEAN = [0.48145466, 0.4578275, 0.40821073];
export const STD = [0.26862954, 0.26130258, 0.27577711];

/** the reference's synthetic_pixels + normalize, in float32 as torch computes them */
export function syntheticImage(size: number, mirrored: boolean): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(3 * size * size);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < size; y++) {
      for (let x0 = 0; x0 < size; x0++) {
        const x = mirrored ? size - 1 - x0 : x0;
        const u8 = (x * 7 + y * 13 + c * 29 + Math.floor((x * y) / 97)) % 256;
        out[(c * size + y) * size + x0] = f(f(f(u8 / 255) - f(MEAN[c]!)) / f(STD[c]!));
      }
    }
  }
  return out;
}

/** golden rows for image b (0: the plain image, 1: mirrored): features then projected */
export function goldenRows(b: number): { features: Float32Array; projected: Float32Array } {
  const r = meta.rows.length;
  const per = r * meta.dim + r * meta.text_dim;
  const base = b * per;
  return {
    features: golden.subarray(base, base + r * meta.dim),
    projected: golden.subarray(base + r * meta.dim, base + per),
  };
}

/** max |ours - ref| over the sampled rows, relative to max |ref| (NaN or Infinity when ours is not finite) */
export function relError(ours: Float32Array, width: number, ref: Float32Array): number {
  let maxDiff = 0, maxRef = 0;
  meta.rows.forEach((row, i) => {
    for (let j = 0; j < width; j++) {
      const a = ours[row * width + j]!, b = ref[i * width + j]!;
      maxDiff = Math.max(maxDiff, Math.abs(a - b)); // NaN stays NaN
      maxRef = Math.max(maxRef, Math.abs(b));
    }
  });
  return maxDiff / maxRef;
}
