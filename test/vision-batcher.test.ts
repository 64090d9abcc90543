// The vision batcher that lets concurrent generateFindings calls share image encodes: batch composition, order,
// abort while queued, errors, and (with the real tiny tower) batched rows equal to one-at-a-time rows.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadVisionModel, type VisionModel } from '../lib/index.js';
import { VisionBatcher } from '../lib/vision-batcher.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** a stand-in tower whose encode resolves when the test says so; each image's "rows" are its first value x 2 */
function fakeVision() {
  const calls: { n: number; done: () => void; fail: (e: unknown) => void }[] = [];
  const vision = {
    encode(list: Float32Array[]) {
      return new Promise<Float32Array[]>((resolve, reject) => {
        calls.push({ n: list.length, done: () => resolve(list.map((p) => Float32Array.of(p[0]! * 2))), fail: reject });
      });
    },
  } as unknown as VisionModel;
  return { vision, calls };
}

const px = (v: number) => Float32Array.of(v);
const tick = () => new Promise((r) => setImmediate(r));

describe('VisionBatcher', () => {
  it('runs one batch at a time and puts the requests that arrive meanwhile into the next, up to maxBatch', async () => {
    const { vision, calls } = fakeVision();
    const b = new VisionBatcher(vision, 3);
    const results = [1, 2, 3, 4, 5].map((v) => b.encode(px(v)));
    await tick();
    expect(calls.map((c) => c.n)).toEqual([1]);
    calls[0]!.done();
    await tick();
    expect(calls.map((c) => c.n)).toEqual([1, 3]);
    calls[1]!.done();
    await tick();
    calls[2]!.done();
    const rows = await Promise.all(results);
    expect(rows.map((r) => r[0])).toEqual([2, 4, 6, 8, 10]);
    expect(b.batchSizes).toEqual([1, 3, 1]);
  });

  it('an abort while queued rejects that request only; an encode error rejects its batch and the next batch runs', async () => {
    const { vision, calls } = fakeVision();
    const b = new VisionBatcher(vision, 4);
    const first = b.encode(px(1));
    const ac = new AbortController();
    const second = b.encode(px(2), ac.signal);
    const third = b.encode(px(3));
    ac.abort();
    await expect(second).rejects.toMatchObject({ code: 'ABORTED' });
    calls[0]!.fail(new Error('boom'));
    await expect(first).rejects.toThrow('boom');
    await tick();
    expect(calls[1]!.n).toBe(1);
    calls[1]!.done();
    expect((await third)[0]).toBe(6);
    const aborted = new AbortController();
    aborted.abort();
    await expect(b.encode(px(9), aborted.signal)).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('with the real tiny tower, rows from a shared batch equal rows encoded alone (bit for bit on CPU)', async () => {
    const vision = await loadVisionModel({ model: path.join(here, 'fixtures', 'vision', 'tiny-vision-f32.gguf'), threads: 2 });
    try {
      const n = vision.pixelsPerImage;
      const images = [0, 1, 2].map((k) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.001 * (k + 1)) * 1.5));
      const alone = [];
      for (const im of images) alone.push((await vision.encode(im))[0]!);
      const b = new VisionBatcher(vision, 2);
      const shared = await Promise.all(images.map((im) => b.encode(im)));
      expect(b.batchSizes).toEqual([1, 2]);
      shared.forEach((rows, i) => expect(Buffer.from(rows.buffer, rows.byteOffset, rows.byteLength).equals(Buffer.from(alone[i]!.buffer, alone[i]!.byteOffset, alone[i]!.byteLength))).toBe(true));
    } finally {
      await vision.dispose();
    }
  }, 120_000);
});
