// The vision tower + projector: preprocessed images in, the embeddings the decoder takes out.
import { types } from 'node:util';
import { LlavaRadError, abortedError, describeValue, fromNative } from './errors.js';
import { native, type NativeVision, type NativeVisionInfo } from './native.js';

export type VisionInfo = Readonly<NativeVisionInfo>;

export interface LoadVisionOptions {
  /** vision GGUF ("mmproj") path */
  model: string;
  backend?: 'auto' | 'cpu' | 'cuda';
  /** CPU threads (default: physical cores) */
  threads?: number;
  /** most images computed in one graph (default 8) */
  maxBatch?: number;
  /** as LoadOptions.mmap: true computes from the file mapping; false (default) copies into huge pages */
  mmap?: boolean;
}

export interface EncodeOptions {
  /** 'projected' (default): n_patches rows of the decoder's width; 'features': the tower's selected layer */
  output?: 'projected' | 'features';
  /** rejects with ABORTED; an encode computing stops after the graph node in progress (CPU) */
  signal?: AbortSignal;
}

interface Waiter {
  go: () => void;
  fail: (e: unknown) => void;
}

/** A loaded vision GGUF. */
export class VisionModel {
  readonly info: VisionInfo;
  readonly #native: NativeVision;
  #disposed?: Promise<void>;
  // one native encode at a time (the engine serializes them anyway), so a cancel names the one computing
  #busy = false;
  #waiting: Waiter[] = [];

  /** @internal use loadVisionModel() */
  constructor(nativeVision: NativeVision) {
    this.#native = nativeVision;
    this.info = Object.freeze({ ...nativeVision.info() });
  }

  /** floats per preprocessed image: 3 x imageSize x imageSize (CHW, normalized with the model's mean/std) */
  get pixelsPerImage(): number {
    return 3 * this.info.imageSize * this.info.imageSize;
  }

  /**
   * Encodes one or more preprocessed images (each a Float32Array of `pixelsPerImage` floats, as
   * preprocessImage() returns) in one batch, off the event loop. Returns, per image, nPatches rows of
   * nOut floats (or nEmbd for output 'features').
   */
  async encode(images: Float32Array | readonly Float32Array[], options: EncodeOptions = {}): Promise<Float32Array[]> {
    if (this.#disposed) throw new LlavaRadError('DISPOSED', 'the vision model was disposed');
    const list = types.isFloat32Array(images) ? [images] : images;
    if (!Array.isArray(list) || list.length === 0) {
      throw new LlavaRadError('INVALID_ARGUMENT', `images must be a Float32Array or a non-empty array of them, got ${describe(images)}`);
    }
    const per = this.pixelsPerImage;
    list.forEach((im, i) => {
      if (!(types.isFloat32Array(im)) || im.length !== per) {
        throw new LlavaRadError('INVALID_ARGUMENT', `images[${i}] must be a Float32Array of ${per} floats (3 x ${this.info.imageSize} x ${this.info.imageSize}), got ${describe(im)}`);
      }
    });
    const output = options.output ?? 'projected';
    if (output !== 'projected' && output !== 'features') {
      throw new LlavaRadError('INVALID_ARGUMENT', `output must be 'projected' or 'features', got ${JSON.stringify(output)}`);
    }
    const signal = options.signal;
    if (signal?.aborted) throw abortedError(signal, 'the image encode');
    const packed = new Float32Array(per * list.length);
    list.forEach((im, i) => packed.set(im, i * per));
    await this.#acquire(signal);
    const onAbort = () => this.#native.cancel();
    let out: Float32Array;
    try {
      if (this.#disposed) throw new LlavaRadError('DISPOSED', 'the vision model was disposed');
      if (signal?.aborted) throw abortedError(signal, 'the image encode');
      signal?.addEventListener('abort', onAbort, { once: true });
      out = await this.#native.encode(packed, list.length, output);
    } catch (e) {
      const err = e instanceof LlavaRadError ? e : fromNative(e);
      if (err.code === 'ABORTED' && signal?.aborted) throw abortedError(signal, 'the image encode');
      if (err.code === 'ABORTED' && this.#disposed) throw new LlavaRadError('DISPOSED', 'the vision model was disposed during the encode');
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#release();
    }
    const n = out.length / list.length;
    return list.map((_, i) => out.subarray(i * n, (i + 1) * n));
  }

  #acquire(signal: AbortSignal | undefined): Promise<void> {
    if (!this.#busy) {
      this.#busy = true;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = this.#waiting.indexOf(w);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(abortedError(signal, 'the image encode'));
      };
      const w: Waiter = {
        go: () => { signal?.removeEventListener('abort', onAbort); resolve(); },
        fail: (e) => { signal?.removeEventListener('abort', onAbort); reject(e); },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(w);
    });
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next.go();
    else this.#busy = false;
  }

  /** stops the encode computing (it rejects with DISPOSED), refuses those waiting, frees the weights; idempotent */
  dispose(): Promise<void> {
    if (!this.#disposed) {
      for (const w of this.#waiting.splice(0)) w.fail(new LlavaRadError('DISPOSED', 'the vision model was disposed'));
      this.#disposed = this.#native.dispose().catch((e) => { throw fromNative(e); });
    }
    return this.#disposed;
  }
}

function describe(v: unknown): string {
  if (types.isFloat32Array(v)) return `a Float32Array of ${v.length}`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return describeValue(v);
}

/** Loads and validates a vision GGUF off the event loop. */
export async function loadVisionModel(options: LoadVisionOptions): Promise<VisionModel> {
  if (options === null || typeof options !== 'object') {
    throw new LlavaRadError('INVALID_ARGUMENT', `options must be an object, got ${describe(options)}`);
  }
  if (typeof options.model !== 'string' || options.model.length === 0) {
    throw new LlavaRadError('INVALID_ARGUMENT', `model must be a non-empty path string, got ${describe(options.model)}`);
  }
  const params: Record<string, unknown> = {};
  if (options.backend !== undefined) params.backend = options.backend;
  if (options.threads !== undefined) params.threads = options.threads;
  if (options.maxBatch !== undefined) params.maxBatch = options.maxBatch;
  if (options.mmap !== undefined) params.mmap = options.mmap;
  try {
    return new VisionModel(await native().loadVision(options.model, params));
  } catch (e) {
    throw fromNative(e);
  }
}
