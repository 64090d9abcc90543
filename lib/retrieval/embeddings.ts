// What an Embedder returns is checked before it is kept: one vector per input, `dim` finite floats each,
// L2-normalized (an index's scores are cosines only if they are).

import { types } from 'node:util';
import { LlavaRadError } from '../errors.js';

/** how far from 1 a vector's L2 norm may be (float32 rounding of a normalized vector is far below it) */
export const NORM_TOLERANCE = 1e-3;

export function checkEmbeddings(vectors: unknown, n: number, dim: number, what: string): asserts vectors is Float32Array[] {
  const bad = (msg: string) => new LlavaRadError('INTERNAL', `the embedder's ${what} ${msg}`);
  if (!Array.isArray(vectors) || vectors.length !== n) throw bad(`returned ${Array.isArray(vectors) ? vectors.length : 'no array of'} vectors for ${n} inputs`);
  vectors.forEach((v: unknown, i) => {
    if (!(types.isFloat32Array(v)) || v.length !== dim) throw bad(`returned vector ${i} that is not a Float32Array of ${dim} floats`);
    let sq = 0;
    for (const x of v) sq += x * x;
    if (!Number.isFinite(sq) || Math.abs(Math.sqrt(sq) - 1) > NORM_TOLERANCE) throw bad(`returned vector ${i} with L2 norm ${Math.sqrt(sq)}, not 1 (within ${NORM_TOLERANCE})`);
  });
}
