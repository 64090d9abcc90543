// Where the command line gets its Embedder: the BiomedCLIP-CXR model of a model folder (lib/clip/: loadClip;
// the folder `llava-rad convert --clip-text` or `pull --clip` made). The retrieval library itself takes any
// Embedder. Tests may set LLAVA_RAD_TEST_EMBEDDER (test-embedder.ts) instead.

import type { Embedder } from '../clip/embedder.js';
import { loadClip } from '../clip/model.js';
import { LlavaRadError, describeValue } from '../errors.js';
import { testEmbedder, testEmbedderSpec } from './test-embedder.js';

/** The CLIP model of `modelDir` as an Embedder. */
export async function openEmbedder(modelDir: string | undefined): Promise<Embedder> {
  const spec = testEmbedderSpec();
  if (spec !== undefined) return testEmbedder(spec);
  if (typeof modelDir !== 'string' || modelDir === '') {
    throw new LlavaRadError('INVALID_ARGUMENT', `the CLIP model's folder must be a path, got ${describeValue(modelDir)}`);
  }
  return loadClip({ model: modelDir });
}
