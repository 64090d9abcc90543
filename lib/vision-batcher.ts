// Batches the image encodes of concurrent generateFindings calls: while the vision model works on one
// batch, new requests queue; the next batch takes up to `maxBatch` of them in arrival order. One batch runs at
// a time (the tower uses every core/the whole GPU). On CPU a batched encode is bit-identical to encoding each
// image alone (the test checks it), so batching never changes findings there.

import { abortedError } from './errors.js';
import type { VisionModel } from './vision.js';

interface Pending {
  pixels: Float32Array;
  resolve: (rows: Float32Array) => void;
  reject: (e: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class VisionBatcher {
  readonly maxBatch: number;
  #vision: VisionModel;
  #queue: Pending[] = [];
  #running = false;
  /** sizes of the batches run so far (for tests and timings) */
  readonly batchSizes: number[] = [];

  constructor(vision: VisionModel, maxBatch: number) {
    this.#vision = vision;
    this.maxBatch = maxBatch;
  }

  /** the projected rows of one preprocessed image; rejects with ABORTED if signal fires while queued, or
   *  while its batch computes once every image of the batch is aborted (the encode is then stopped) */
  encode(pixels: Float32Array, signal?: AbortSignal): Promise<Float32Array> {
    if (signal?.aborted) return Promise.reject(abortedError(signal, 'the image encode'));
    return new Promise((resolve, reject) => {
      const p: Pending = { pixels, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        p.onAbort = () => {
          const i = this.#queue.indexOf(p);
          if (i >= 0) {
            this.#queue.splice(i, 1);
            reject(abortedError(signal, 'the image encode'));
          }
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.#queue.push(p);
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#running || this.#queue.length === 0) return;
    this.#running = true;
    const batch = this.#queue.splice(0, this.maxBatch);
    for (const p of batch) if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
    this.batchSizes.push(batch.length);
    // nobody left wanting the batch (SIGTERM in `batch` aborts every study): stop its computation
    const stop = new AbortController();
    let aborted = 0;
    const onAbort = () => { if (++aborted === batch.length) stop.abort(); };
    for (const p of batch) {
      if (p.signal?.aborted) aborted++;
      else p.signal?.addEventListener('abort', onAbort, { once: true });
    }
    if (aborted === batch.length) stop.abort();
    this.#vision.encode(batch.map((p) => p.pixels), { signal: stop.signal }).then(
      (rows) => batch.forEach((p, i) => p.resolve(rows[i]!)),
      (e: unknown) => batch.forEach((p) => p.reject(p.signal?.aborted ? abortedError(p.signal, 'the image encode') : e)),
    ).finally(() => {
      for (const p of batch) p.signal?.removeEventListener('abort', onAbort);
      this.#running = false;
      this.#pump();
    });
  }
}
