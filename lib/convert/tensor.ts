// What every checkpoint reader (PyTorch zip / legacy pickle, safetensors) hands to the converter: lazy
// tensors. A LazyTensor knows its name, dtype and shape; its data is read from the file only when asked,
// one tensor at a time, so multi-GB checkpoints never have to fit in memory.

import { open, type FileHandle } from 'node:fs/promises';
import { LlavaRadError } from '../errors.js';

/** element types a checkpoint tensor may have (safetensors spelling) */
export type TensorDtype =
  | 'F64' | 'F32' | 'F16' | 'BF16'
  | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** bytes per element of each dtype */
export const DTYPE_SIZE: Readonly<Record<TensorDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export function isTensorDtype(s: string): s is TensorDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

/** A tensor whose data stays in its file until read. */
export interface LazyTensor {
  /** the key in the checkpoint (after any prefix stripping the caller did) */
  readonly name: string;
  readonly dtype: TensorDtype;
  /** PyTorch order: shape[0] is the outermost dimension; [] for a 0-dim scalar */
  readonly shape: readonly number[];
  /** number of elements (product of shape; 1 for a scalar) */
  readonly numel: number;
  /** the elements in row-major (C) order, in the source dtype, little-endian */
  readRaw(): Promise<Buffer>;
  /** the elements in row-major order converted to float32 (F16/BF16 exactly, F64 rounded) */
  readFloat32(): Promise<Float32Array>;
}

/** product of a shape, checked to stay an exact integer */
export function shapeNumel(shape: readonly number[], what = 'tensor'): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new LlavaRadError('BAD_CHECKPOINT', `${what}: bad dimension ${String(d)} in shape [${shape.join(', ')}]`);
    }
    n *= d;
    if (!Number.isSafeInteger(n)) {
      throw new LlavaRadError('BAD_CHECKPOINT', `${what}: shape [${shape.join(', ')}] has too many elements`);
    }
  }
  return n;
}

// ------------------------------------------------------------------------------------------------
// conversions

const F16_TABLE: Float32Array = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    let v: number;
    if (exp === 0) v = sign * frac * 2 ** -24; // zero / subnormal
    else if (exp === 31) v = frac === 0 ? sign * Infinity : NaN;
    else v = sign * (1 + frac / 1024) * 2 ** (exp - 15);
    t[h] = v;
  }
  return t;
})();

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** IEEE half (binary16) bits -> number */
export function f16ToF32(h: number): number {
  return F16_TABLE[h & 0xffff]!;
}

/** Converts `bytes` (row-major, little-endian, `dtype`) to a new Float32Array. */
export function toFloat32(bytes: Uint8Array, dtype: TensorDtype): Float32Array {
  const size = DTYPE_SIZE[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new LlavaRadError('INTERNAL', `${bytes.byteLength} bytes is not a whole number of ${dtype} elements`);
  }
  const n = bytes.byteLength / size;
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      // copy into an aligned buffer (the source may sit at any byte offset)
      new Uint8Array(out.buffer).set(bytes);
      break;
    case 'F16':
    case 'BF16': {
      // 16-bit words; an aligned view when possible (little-endian hosts only - Node's platforms)
      const w = bytes.byteOffset % 2 === 0 && LITTLE_ENDIAN_HOST ? new Uint16Array(bytes.buffer, bytes.byteOffset, n) : null;
      if (dtype === 'F16') {
        if (w) for (let i = 0; i < n; i++) out[i] = F16_TABLE[w[i]!]!;
        else for (let i = 0; i < n; i++) out[i] = F16_TABLE[dv.getUint16(i * 2, true)]!;
      } else {
        const u = new Uint32Array(out.buffer);
        if (w) for (let i = 0; i < n; i++) u[i] = w[i]! << 16;
        else for (let i = 0; i < n; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      }
      break;
    }
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      break;
    case 'I64':
      for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
      break;
    case 'I32':
      for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
      break;
    case 'I16':
      for (let i = 0; i < n; i++) out[i] = dv.getInt16(i * 2, true);
      break;
    case 'I8':
      for (let i = 0; i < n; i++) out[i] = dv.getInt8(i);
      break;
    case 'U8':
    case 'BOOL':
      for (let i = 0; i < n; i++) out[i] = bytes[i]!;
      break;
  }
  return out;
}

/**
 * Gathers a strided view into a contiguous row-major buffer. `src` holds the storage elements starting at
 * element `base` (so element index e of the storage is at byte (e - base) * size). Strides are in elements.
 */
export function gatherStrided(
  src: Uint8Array, base: number, size: number, shape: readonly number[], stride: readonly number[], offset: number,
): Buffer {
  const numel = shapeNumel(shape);
  const out = Buffer.alloc(numel * size);
  if (numel === 0) return out;
  const nd = shape.length;
  const idx = new Array<number>(nd).fill(0);
  let pos = offset;
  for (let i = 0; i < numel; i++) {
    const from = (pos - base) * size;
    for (let b = 0; b < size; b++) out[i * size + b] = src[from + b]!;
    // increment the multi-index (last dimension fastest)
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]!++;
      pos += stride[d]!;
      if (idx[d]! < shape[d]!) break;
      pos -= stride[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** true when (shape, stride) is row-major contiguous (size-1 dimensions may have any stride) */
export function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 1) continue;
    if (stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}

/** opens a checkpoint file for reading; an unreadable path is an IO error */
export async function openForRead(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    throw new LlavaRadError('IO', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
}
