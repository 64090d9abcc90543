// ---- test-only ----------------------------------------------------------------------------------------
// LLAVA_RAD_TEST_EMBEDDER makes openEmbedder return a deterministic Embedder instead of a CLIP model, so the
// CLI's retrieval commands can be tested without one (test/retrieval-*.test.ts). Read when a command opens
// its model; inert when unset. Values:
//   hash:DIM[:DELAY_MS]  each vector from sha256 of its input (normalized; identical inputs, identical
//                        vectors), model id "test-hash-DIM"; DELAY_MS waits before each call (crash tests)
//   table:FILE           the vectors of a JSON file {modelId, dim, images: {sha256 hex of the bytes: [..]},
//                        texts: {text: [..]}} (fixtures made by numpy); an input not in it is INVALID_ARGUMENT

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Embedder } from '../clip/embedder.js';
import { LlavaRadError } from '../errors.js';

/** the LLAVA_RAD_TEST_EMBEDDER value, undefined when unset or empty */
export const testEmbedderSpec = (): string | undefined => process.env.LLAVA_RAD_TEST_EMBEDDER || undefined;

/** a unit vector of `dim` floats drawn from sha256(tag, bytes) */
export function hashVector(tag: string, bytes: Uint8Array, dim: number): Float32Array {
  const seed = createHash('sha256').update(tag).update(bytes).digest();
  const raw = new Float64Array(dim);
  for (let block = 0; block * 8 < dim; block++) {
    const h = createHash('sha256').update(seed).update(String(block)).digest();
    for (let j = 0; j < 8 && block * 8 + j < dim; j++) raw[block * 8 + j] = h.readUInt32LE(4 * j) / 2 ** 31 - 1;
  }
  const norm = Math.sqrt(raw.reduce((s, x) => s + x * x, 0));
  return Float32Array.from(raw, (x) => x / norm);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function hashEmbedder(dim: number, delayMs: number): Embedder {
  return {
    dim,
    modelId: `test-hash-${dim}`,
    async embedImages(images) {
      if (delayMs) await sleep(delayMs);
      return images.map((b) => hashVector('image', b, dim));
    },
    async embedTexts(texts) {
      if (delayMs) await sleep(delayMs);
      return texts.map((t) => hashVector('text', Buffer.from(t, 'utf8'), dim));
    },
  };
}

function tableEmbedder(file: string): Embedder {
  const t = JSON.parse(readFileSync(file, 'utf8')) as { modelId: string; dim: number; images: Record<string, number[]>; texts: Record<string, number[]> };
  const get = (table: Record<string, number[]>, key: string, what: string) => {
    const v = Object.hasOwn(table, key) ? table[key] : undefined;
    if (!v) throw new LlavaRadError('INVALID_ARGUMENT', `test embedder ${file}: no vector for the ${what}`);
    return Float32Array.from(v);
  };
  return {
    dim: t.dim,
    modelId: t.modelId,
    embedImages: async (images) => images.map((b) => get(t.images, createHash('sha256').update(b).digest('hex'), 'image')),
    embedTexts: async (texts) => texts.map((s) => get(t.texts, s, `text ${JSON.stringify(s.slice(0, 40))}`)),
  };
}

/** the Embedder a LLAVA_RAD_TEST_EMBEDDER value names; INVALID_ARGUMENT when it does not parse */
export function testEmbedder(spec: string): Embedder {
  const hash = /^hash:([1-9][0-9]{0,4})(?::([0-9]{1,6}))?$/.exec(spec);
  if (hash) return hashEmbedder(Number(hash[1]), Number(hash[2] ?? 0));
  if (spec.startsWith('table:')) return tableEmbedder(spec.slice('table:'.length));
  throw new LlavaRadError('INVALID_ARGUMENT', `LLAVA_RAD_TEST_EMBEDDER (test-only) must be hash:DIM[:DELAY_MS] or table:FILE, got ${JSON.stringify(spec.slice(0, 60))}`);
}
