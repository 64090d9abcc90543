// The converter's CPU work on worker threads: LoRA merges, fp16 rounding and encoding, and ggml quantization.
//
//   const pool = new ConvertPool({ threads: 4 });
//   const merged = await pool.mergeLora(w, a, b, out, inn, r, scale);   // fp16(w + scale * B @ A), w [out, inn]
//   for (const bytes of pool.encode(name, type, values, rowLen)) await writer.writeTensorChunk(name, await bytes);
//   await pool.close();
//
// Work is cut into row blocks (up to 4M values). Each worker owns two buffers shared with it once, at start
// (a block's float32 input, 16 MiB, and its encoded output, 8 MiB): a block is copied into its worker's input
// when the worker takes it and the result copied out when it is done, so nothing is allocated per block on
// either side (short-lived per-block ArrayBuffers / SharedArrayBuffers let garbage pile up faster than V8
// collects it: ~2.3 GB peak RSS on a 7B conversion), and only `threads` blocks are in flight. Every result is
// computed per row exactly as a single thread would compute it, so the output does not depend on the thread
// count:
//   - merge: for each element, sum_k B[i,k] * A[k,j] accumulated in float64 in order k = 0..r-1 (f32 x f32
//     products are exact in float64), rounded to f32 (torch's f32 B @ A up to summation-order rounding), times
//     scale rounded to f32, plus W rounded to f32, then rounded to fp16 (the official loader's fp16 model). The
//     kernel computes 2 rows x 4 columns at once over a transposed A, which keeps the 8 sums in registers
//     (about 5x faster than row-by-row axpy in V8); the order of each sum is the same.
//   - fp16 encoding: round to nearest even, as lib/gguf/types.ts f32ToF16Bits.
//   - quantization: ggml's own quantizers through the native addon (lr_quantize), loaded in each worker.
// The workers run a script given as source text (no separate file to ship or resolve, same under tsup and
// vitest), load the addon from addonPath() on first use, and are terminated by close().

import { availableParallelism, cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { LlavaRadError } from '../errors.js';
import { GgmlType, ggmlTypeTraits } from '../gguf/types.js';
import { addonPath } from '../native.js';

/** values per work item (row blocks of about this many values) */
export const CHUNK_VALUES = 1 << 22;

/**
 * the worker script, run with eval. Eval code is CommonJS, or an ES module when this process runs with
 * --input-type=module (a worker inherits execArgv): it has no require() there, so the script takes what it
 * needs through import(), which both kinds of code have, and starts once that is in.
 */
const WORKER_SOURCE = String.raw`
'use strict';
(async () => {
const { parentPort, workerData } = await import('node:worker_threads');
const { createRequire } = await import('node:module');
const requireAddon = createRequire(workerData.addon);
let addon = null;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
// IEEE binary16 bits of a number rounded to f32 first, round to nearest even (same as lib/gguf/types.ts)
function f32ToF16Bits(value) {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00);
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs >= 0x38800000) {
    let h = (((abs >>> 23) - 112) << 10) | ((abs >>> 13) & 0x3ff);
    const rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++;
    return sign | h;
  }
  if (abs <= 0x33000000) return sign;
  const e = abs >>> 23;
  const sig = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - e;
  let h = sig >>> shift;
  const rem = sig & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (h & 1) !== 0)) h++;
  return sign | h;
}
const F16 = new Float32Array(65536);
for (let h = 0; h < 65536; h++) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  F16[h] = exp === 0 ? sign * frac * 2 ** -24 : exp === 31 ? (frac === 0 ? sign * Infinity : NaN) : sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

// w (rows i0.. of the weight, n rows of inn) += fp16-rounded scale * (B @ A); at = A transposed [inn][r],
// bd = B [out][r], both float64
function merge(w, n, i0, inn, r, at, bd, scale) {
  const put = (p, s) => { w[p] = F16[f32ToF16Bits(Math.fround(w[p] + Math.fround(scale * Math.fround(s))))]; };
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const b0 = (i0 + i) * r, b1 = b0 + r, w0 = i * inn, w1 = w0 + inn;
    let j = 0;
    for (; j + 3 < inn; j += 4) {
      const t0 = j * r, t1 = t0 + r, t2 = t1 + r, t3 = t2 + r;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let k = 0; k < r; k++) {
        const x0 = bd[b0 + k], x1 = bd[b1 + k];
        const y0 = at[t0 + k], y1 = at[t1 + k], y2 = at[t2 + k], y3 = at[t3 + k];
        s00 += x0 * y0; s01 += x0 * y1; s02 += x0 * y2; s03 += x0 * y3;
        s10 += x1 * y0; s11 += x1 * y1; s12 += x1 * y2; s13 += x1 * y3;
      }
      put(w0 + j, s00); put(w0 + j + 1, s01); put(w0 + j + 2, s02); put(w0 + j + 3, s03);
      put(w1 + j, s10); put(w1 + j + 1, s11); put(w1 + j + 2, s12); put(w1 + j + 3, s13);
    }
    for (; j < inn; j++) {
      const t = j * r;
      let s0 = 0, s1 = 0;
      for (let k = 0; k < r; k++) { s0 += bd[b0 + k] * at[t + k]; s1 += bd[b1 + k] * at[t + k]; }
      put(w0 + j, s0); put(w1 + j, s1);
    }
  }
  for (; i < n; i++) {
    const b0 = (i0 + i) * r, w0 = i * inn;
    for (let j = 0; j < inn; j++) {
      const t = j * r;
      let s = 0;
      for (let k = 0; k < r; k++) s += bd[b0 + k] * at[t + k];
      put(w0 + j, s);
    }
  }
}

const input = new Float32Array(workerData.input);
const output = new Uint8Array(workerData.output);

function handle(m) {
  switch (m.op) {
    case 'merge':
      merge(new Float32Array(workerData.input, 0, m.n * m.inn), m.n, m.i0, m.inn, m.r, m.at, m.bd, m.scale);
      return 0;
    case 'f16': {
      const h = new Uint16Array(workerData.output, 0, m.len);
      for (let i = 0; i < m.len; i++) h[i] = f32ToF16Bits(input[i]);
      return m.len * 2;
    }
    case 'quantize': {
      if (!addon) addon = requireAddon(workerData.addon);
      const b = addon.quantize(m.type, new Float32Array(workerData.input, 0, m.nRows * m.nPerRow), m.nRows, m.nPerRow);
      if (b.length > output.length) throw new Error('quantized block of ' + b.length + ' bytes does not fit the output buffer');
      output.set(b);
      return b.length;
    }
    default:
      throw new Error('unknown op ' + m.op);
  }
}

parentPort.on('message', (m) => {
  try {
    parentPort.postMessage({ id: m.id, bytes: handle(m) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, error: String(e && e.message || e) });
  }
});
})();
`;

interface Slot {
  worker: Worker;
  /** CHUNK_VALUES float32 values, shared with the worker: a job's input block */
  input: Float32Array;
  /** 2 * CHUNK_VALUES bytes, shared with the worker: a job's encoded block */
  output: Uint8Array;
  job?: Job<unknown>;
}

interface Job<T> {
  /** fills the slot's input with the block (when a worker takes the job) and returns the message */
  start: (slot: Slot) => Record<string, unknown>;
  /** takes the result out of the slot (before the slot takes another job) */
  finish: (slot: Slot, bytes: number) => T;
  resolve: (v: T) => void;
  reject: (e: Error) => void;
  what: string;
}

export interface ConvertPoolOptions {
  /** worker threads (default: defaultConvertThreads()) */
  threads?: number;
}

/** the default thread count: $LLAVA_RAD_CONVERT_THREADS when set, else the CPUs this process may use, at most 8 */
export function defaultConvertThreads(): number {
  const env = process.env.LLAVA_RAD_CONVERT_THREADS;
  if (env !== undefined && env !== '') {
    const t = Number(env);
    if (!Number.isSafeInteger(t) || t < 1 || t > 256) throw new LlavaRadError('INVALID_ARGUMENT', `LLAVA_RAD_CONVERT_THREADS must be an integer from 1 to 256, got "${env}"`);
    return t;
  }
  const n = typeof availableParallelism === 'function' ? availableParallelism() : cpus().length;
  return Math.max(1, Math.min(8, n));
}

export class ConvertPool {
  readonly threads: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job<unknown>[] = [];
  private nextId = 1;
  private closed = false;
  private failure?: Error;
  /** A transposed and B as float64, shared with the workers; reused by every merge (merges run one at a time) */
  private at = new Float64Array(new SharedArrayBuffer(8));
  private bd = new Float64Array(new SharedArrayBuffer(8));
  private merging: Promise<unknown> = Promise.resolve();

  constructor(options: ConvertPoolOptions = {}) {
    const t = options.threads ?? defaultConvertThreads();
    if (!Number.isSafeInteger(t) || t < 1 || t > 256) throw new LlavaRadError('INVALID_ARGUMENT', `threads must be an integer from 1 to 256, got ${String(t)}`);
    this.threads = t;
  }

  private spawn(): Slot {
    // the blocks travel through buffers shared once, at start: no per-block allocation on either side
    const input = new Float32Array(new SharedArrayBuffer(CHUNK_VALUES * 4));
    const output = new Uint8Array(new SharedArrayBuffer(CHUNK_VALUES * 2));
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { addon: addonPath(), input: input.buffer, output: output.buffer } });
    const slot: Slot = { worker, input, output };
    worker.on('message', (m: { id: number; bytes?: number; error?: string }) => {
      const job = slot.job;
      slot.job = undefined;
      if (job) {
        if (m.error !== undefined) job.reject(new LlavaRadError('INTERNAL', `${job.what}: ${m.error}`));
        else {
          try {
            job.resolve(job.finish(slot, m.bytes!));
          } catch (e) {
            job.reject(e as Error);
          }
        }
      }
      this.pump();
    });
    const fail = (e: Error) => {
      const err = new LlavaRadError('INTERNAL', `a converter worker failed: ${e.message}`, { cause: e });
      this.failure ??= err;
      slot.job?.reject(err);
      slot.job = undefined;
      for (const j of this.queue.splice(0)) j.reject(err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`exited with code ${code}`));
    });
    this.slots.push(slot);
    return slot;
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.failure) {
      let slot = this.slots.find((s) => !s.job);
      if (!slot && this.slots.length < this.threads) slot = this.spawn();
      if (!slot) return;
      const job = this.queue.shift()!;
      let msg: Record<string, unknown>;
      try {
        msg = job.start(slot);
      } catch (e) {
        job.reject(e as Error);
        continue;
      }
      slot.job = job;
      slot.worker.postMessage({ ...msg, id: this.nextId++ });
    }
  }

  private run<T>(what: string, start: Job<T>['start'], finish: Job<T>['finish']): Promise<T> {
    if (this.closed) return Promise.reject(new LlavaRadError('DISPOSED', 'the converter pool is closed'));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ start, finish, resolve, reject, what } as Job<unknown>);
      this.pump();
    });
  }

  /**
   * fp16(w + scale * (B @ A)) for w [out, inn] (row-major), a = A [r, inn], b = B [out, r]; w is updated in
   * place and returned. Merges run one at a time (they share the pool's A / B buffers).
   */
  mergeLora(w: Float32Array, a: Float32Array, b: Float32Array, out: number, inn: number, r: number, scale: number): Promise<Float32Array> {
    const p = this.merging.then(() => this.merge(w, a, b, out, inn, r, scale));
    this.merging = p.catch(() => {});
    return p;
  }

  private async merge(w: Float32Array, a: Float32Array, b: Float32Array, out: number, inn: number, r: number, scale: number): Promise<Float32Array> {
    if (w.length !== out * inn || a.length !== r * inn || b.length !== out * r) {
      throw new LlavaRadError('INTERNAL', `mergeLora: sizes do not match [${out}, ${inn}] with r ${r}`);
    }
    if (inn > CHUNK_VALUES) throw new LlavaRadError('UNSUPPORTED', `mergeLora: rows of ${inn} values are too long`);
    if (this.at.length < inn * r) this.at = new Float64Array(new SharedArrayBuffer(inn * r * 8));
    if (this.bd.length < out * r) this.bd = new Float64Array(new SharedArrayBuffer(out * r * 8));
    const { at, bd } = this;
    for (let k = 0; k < r; k++) {
      const ao = k * inn;
      for (let j = 0; j < inn; j++) at[j * r + k] = a[ao + j]!;
    }
    bd.set(b);
    // small blocks (about 1M values) so that every thread gets work on 4096-row matrices
    const rowsPer = Math.max(1, Math.floor(CHUNK_VALUES / 4 / inn));
    const jobs: Promise<void>[] = [];
    for (let i0 = 0; i0 < out; i0 += rowsPer) {
      const n = Math.min(rowsPer, out - i0);
      const from = i0 * inn;
      const to = (i0 + n) * inn;
      jobs.push(this.run<void>('merging a LoRA', (slot) => {
        slot.input.set(w.subarray(from, to));
        return { op: 'merge', n, i0, inn, r, at, bd, scale };
      }, (slot) => {
        w.set(slot.input.subarray(0, to - from), from);
      }));
    }
    await settleAll(jobs);
    return w;
  }

  /**
   * Encodes `values` (rows of rowLen) as `type`, in row blocks: one promise per block, in order (write them
   * in order). F32 blocks are views of `values`; F16 and quantized blocks are computed by the workers.
   */
  encode(name: string, type: GgmlType, values: Float32Array, rowLen: number): Promise<Uint8Array>[] {
    const nRows = values.length / rowLen;
    const rowsPer = Math.max(1, Math.floor(CHUNK_VALUES / rowLen));
    const out: Promise<Uint8Array>[] = [];
    for (let r0 = 0; r0 < nRows; r0 += rowsPer) {
      const n = Math.min(rowsPer, nRows - r0);
      const a = r0 * rowLen;
      const b = (r0 + n) * rowLen;
      if (type === GgmlType.F32) {
        const part = values.subarray(a, b);
        out.push(Promise.resolve(new Uint8Array(part.buffer, part.byteOffset, part.byteLength)));
        continue;
      }
      if (b - a > CHUNK_VALUES) {
        out.push(Promise.reject(new LlavaRadError('UNSUPPORTED', `${name}: rows of ${rowLen} values are too long to encode`)));
        continue;
      }
      const start = (slot: Slot) => {
        slot.input.set(values.subarray(a, b));
        return type === GgmlType.F16 ? { op: 'f16', len: b - a } : { op: 'quantize', type, nRows: n, nPerRow: rowLen };
      };
      const finish = (slot: Slot, bytes: number) => Buffer.from(slot.output.subarray(0, bytes)) as Uint8Array;
      const what = type === GgmlType.F16 ? `encoding ${name} as f16` : `quantizing ${name} as ${ggmlTypeTraits(type)?.name}`;
      out.push(this.run<Uint8Array>(what, start, finish));
    }
    // a block that fails before the caller awaits it must not be an unhandled rejection
    for (const p of out) p.catch(() => {});
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new LlavaRadError('DISPOSED', 'the converter pool was closed');
    for (const j of this.queue.splice(0)) j.reject(err);
    for (const s of this.slots) {
      s.job?.reject(err);
      s.job = undefined;
    }
    await Promise.all(this.slots.map((s) => s.worker.terminate().catch(() => 0)));
    this.slots.length = 0;
  }
}

/** awaits every promise (so none is left running), then throws the first failure */
async function settleAll(ps: Promise<unknown>[]): Promise<void> {
  const rs = await Promise.allSettled(ps);
  const bad = rs.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
  if (bad) throw bad.reason;
}
