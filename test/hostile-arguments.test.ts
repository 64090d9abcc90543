// Arguments that look like what the API takes but are not: a Proxy of a Buffer or of a typed array (what a
// reactive state library hands out) passes `instanceof`, yet the typed array's own methods and the native code
// refuse it, and a buffer whose ArrayBuffer was transferred away is empty. Each is INVALID_ARGUMENT (or, for an
// empty image, INVALID_IMAGE) naming what came. On 54afbf1 the proxies gave bare TypeErrors ("Method get
// TypedArray.prototype.length called on incompatible receiver") from preprocessImage, generateFindings,
// VisionModel.encode and retrievalRanks; the model and the engine stayed usable, as they must here.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLlavaRadError, loadLlavaRad, preprocessImage, retrievalRanks, RetrievalIndex, searchVectors, writeIndexFile, type LlavaRad } from '../lib/index.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const VISION = path.join(here, 'fixtures', 'vision', 'tiny-vision-f32.gguf');
const IMAGE = readFileSync(path.join(here, 'fixtures', 'findings', 'square-rgb-600x600.png'));
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-hostile-args-'));

const proxy = <T extends object>(v: T): T => new Proxy(v, {});
/** `v` with its ArrayBuffer transferred away (detached: length 0) */
function detached<T extends ArrayBufferView>(v: T): T {
  structuredClone(v.buffer, { transfer: [v.buffer as ArrayBuffer] });
  return v;
}

async function failure(f: () => unknown): Promise<{ code: string; message: string }> {
  try {
    await f();
  } catch (e) {
    if (isLlavaRadError(e)) return { code: e.code, message: e.message };
    return { code: `untyped ${(e as Error).constructor.name}`, message: (e as Error).message };
  }
  return { code: 'no error', message: '' };
}

let lr: LlavaRad;
beforeAll(async () => {
  lr = await loadLlavaRad({ decoder: await tinyLlamaPath('f32'), vision: VISION, threads: 2 });
}, 120_000);
afterAll(async () => {
  await lr?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

describe('a Proxy or a detached buffer where bytes or floats are expected', () => {
  it('is INVALID_ARGUMENT naming a Proxy (images, prompts, token ids, vectors), INVALID_IMAGE for a detached image; the model still works', async () => {
    const nEmbd = lr.decoder.info.nEmbd;
    const index = path.join(tmp, 'i.lrindex');
    writeIndexFile(index, { modelId: 'm', dim: 2, ids: ['a'], kinds: ['image'], vectors: (put) => put(new Float32Array([1, 0])) });
    const opened = RetrievalIndex.open(index);
    const cases: [string, () => unknown, string, RegExp][] = [
      ['preprocessImage(Proxy of a Buffer)', () => preprocessImage(proxy(Buffer.from(IMAGE))), 'INVALID_ARGUMENT', /^image must be a Buffer or Uint8Array .*, got a Proxy$/],
      ['generateFindings(Proxy of a Buffer)', () => lr.generateFindings(proxy(Buffer.from(IMAGE))), 'INVALID_ARGUMENT', /^image must be a Buffer or Uint8Array .*, got a Proxy$/],
      ['vision encode(Proxy of a Float32Array)', () => lr.vision.encode(proxy(new Float32Array(lr.vision.pixelsPerImage))), 'INVALID_ARGUMENT', /got a Proxy$/],
      ['vision encode([Proxy])', () => lr.vision.encode([proxy(new Float32Array(lr.vision.pixelsPerImage))]), 'INVALID_ARGUMENT', /^images\[0\] must be a Float32Array of \d+ floats .*got a Proxy$/],
      ['generate(Proxy of an Int32Array)', () => lr.decoder.generate(proxy(new Int32Array([1, 2])), { maxTokens: 1 }), 'INVALID_ARGUMENT', /^prompt must be .*got a Proxy$/],
      ['generate([{ embeddings: Proxy }])', () => lr.decoder.generate([{ embeddings: proxy(new Float32Array(nEmbd)) }], { maxTokens: 1 }), 'INVALID_ARGUMENT', /^prompt\[0\]\.embeddings must be a Float32Array .*got a Proxy$/],
      ['detokenize(Proxy of an Int32Array)', () => lr.decoder.detokenize(proxy(new Int32Array([1, 2]))), 'INVALID_ARGUMENT', /^ids must be .*got a Proxy$/],
      ['retrievalRanks([Proxy], [v])', () => retrievalRanks([proxy(new Float32Array([1, 0]))], [new Float32Array([1, 0])]), 'INVALID_ARGUMENT', /^images\[0\] must be a Float32Array, got a Proxy$/],
      ['searchVectors(index, [Proxy])', () => searchVectors(opened, [proxy(new Float32Array([1, 0]))]), 'INVALID_ARGUMENT', /^query 0 must be a Float32Array of 2 floats .*got a Proxy$/],
      ['preprocessImage(detached Buffer)', () => preprocessImage(detached(new Uint8Array(IMAGE))), 'INVALID_IMAGE', /empty/],
      ['vision encode(detached Float32Array)', () => lr.vision.encode(detached(new Float32Array(lr.vision.pixelsPerImage))), 'INVALID_ARGUMENT', /got a Float32Array of 0/],
      ['generate([{ embeddings: detached }])', () => lr.decoder.generate([{ embeddings: detached(new Float32Array(nEmbd)) }], { maxTokens: 1 }), 'INVALID_ARGUMENT', /got 0 floats/],
    ];
    try {
      for (const [name, call, code, message] of cases) {
        const f = await failure(call);
        expect(f.code, `${name}: ${f.message}`).toBe(code);
        expect(f.message, name).toMatch(message);
      }
    } finally {
      opened.close();
    }
    const r = await lr.generateFindings(IMAGE, null, { maxTokens: 2 });
    expect(r.tokens.length, 'findings after the refused calls').toBeGreaterThan(0);
  }, 120_000);
});
