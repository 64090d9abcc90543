// Where the command line gets its Embedder: the BiomedCLIP-CXR model of a model folder (lib/clip/).
//
// Until that model is part of this build, openEmbedder fails with UNSUPPORTED naming what is missing; the
// retrieval library itself takes any Embedder. Tests set LLAVA_RAD_TEST_EMBEDDER (test-embedder.ts) instead.

import type { Embedder } from '../clip/embedder.js';
import { LlavaRadError, describeValue } from '../errors.js';
import { testEmbedder, testEmbedderSpec } from './test-embedder.js';

/** The CLIP model of `modelDir` as an Embedder. */
export async function openEmbedder(modelDir: string | undefined): Promise<Embedder> {
  const spec = testEmbedderSpec();
  if (spec !== undefined) return testEmbedder(spec);
  if (typeof modelDir !== 'string' || modelDir === '') {
    throw new LlavaRadError('INVALID_ARGUMENT', `the CLIP model's folder must be a path, got ${describeValue(modelDir)}`);
  }
  // the seam: when lib/clip/ exports its loader, this becomes `return (await import('../clip/...')).load...(modelDir)`
  throw new LlavaRadError('UNSUPPORTED',
    `no CLIP model in this build: retrieval needs the BiomedCLIP-CXR embedder (lib/clip/, an Embedder as in lib/clip/embedder.ts) to embed ${modelDir}`);
}
