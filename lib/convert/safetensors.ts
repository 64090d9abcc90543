// safetensors reader: an 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then the data section
// (offsets are relative to its start). The header is validated completely before anything is returned:
// the header is at most 100 MB; every shape is a flat array of at most MAX_RANK non-negative safe integers;
// every dtype is a known one; every tensor must lie inside the data section, its byte size must match
// dtype x shape, and tensors must not overlap. Messages describe bad values (their type, length, the
// offending element), never echo them. Tensor data is read on demand, one tensor at a time, by positional reads.

import type { FileHandle } from 'node:fs/promises';
import { LlavaRadError, describeValue } from '../errors.js';
import { shortName } from './config-check.js';
import { DTYPE_SIZE, isTensorDtype, openForRead, shapeNumel, toFloat32, type LazyTensor, type TensorDtype } from './tensor.js';
import { readExactly } from './zip.js';

/** the safetensors library refuses headers over 100 MB; so do we */
const MAX_HEADER = 100_000_000;

/** the most dimensions a tensor may have (PyTorch allows 64; no model weight has more than a few) */
export const MAX_RANK = 8;

export interface SafetensorsFile {
  readonly path: string;
  readonly tensors: ReadonlyMap<string, LazyTensor>;
  /** the "__metadata__" strings (empty when absent) */
  readonly metadata: ReadonlyMap<string, string>;
  /** bytes read from the file so far */
  bytesRead(): number;
  close(): Promise<void>;
}

function bad(path: string, msg: string): LlavaRadError {
  return new LlavaRadError('BAD_CHECKPOINT', `${path}: not a valid safetensors file: ${msg}`);
}

class SafeTensor implements LazyTensor {
  constructor(
    readonly name: string,
    readonly dtype: TensorDtype,
    readonly shape: readonly number[],
    readonly numel: number,
    /** absolute file offset */
    private readonly offset: number,
    private readonly nbytes: number,
    private readonly reader: (pos: number, len: number) => Promise<Buffer>,
  ) {}
  readRaw(): Promise<Buffer> {
    return this.reader(this.offset, this.nbytes);
  }
  async readFloat32(): Promise<Float32Array> {
    return toFloat32(await this.readRaw(), this.dtype);
  }
}

/** Opens a .safetensors file and validates its header. */
export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  const fh = await openForRead(path);
  try {
    return await readHeader(path, fh);
  } catch (e) {
    await fh.close().catch(() => {});
    throw e;
  }
}

async function readHeader(path: string, fh: FileHandle): Promise<SafetensorsFile> {
  let counted = 0;
  let closed = false;
  const read = async (pos: number, len: number): Promise<Buffer> => {
    if (closed) throw new LlavaRadError('DISPOSED', `${path}: the file is closed`);
    const b = await readExactly(fh, pos, len, path);
    counted += len;
    return b;
  };
  const size = (await fh.stat()).size;
  if (size < 8) throw bad(path, `file of ${size} bytes is too small`);
  const n64 = (await read(0, 8)).readBigUInt64LE(0);
  if (n64 > BigInt(MAX_HEADER)) throw bad(path, `header length ${n64} is over the ${MAX_HEADER}-byte limit`);
  const n = Number(n64);
  if (8 + n > size) throw bad(path, `header length ${n} runs past the end of the file (${size} bytes)`);
  const headerText = (await read(8, n)).toString('utf8');
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (e) {
    throw bad(path, `header is not JSON: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad(path, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataSize = size - dataStart;
  const tensors = new Map<string, LazyTensor>();
  const metadata = new Map<string, string>();
  const ranges: Array<[number, number, string]> = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (info === null || typeof info !== 'object' || Array.isArray(info)) throw bad(path, `__metadata__ must be an object, got ${describeValue(info)}`);
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') throw bad(path, `__metadata__.${shortName(k)} must be a string, got ${describeValue(v)}`);
        metadata.set(k, v);
      }
      continue;
    }
    const what = `tensor "${shortName(name)}"`;
    if (info === null || typeof info !== 'object' || Array.isArray(info)) throw bad(path, `${what}: entry must be an object, got ${describeValue(info)}`);
    const { dtype, shape, data_offsets: offsets } = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== 'string' || !isTensorDtype(dtype)) {
      throw new LlavaRadError(typeof dtype === 'string' ? 'UNSUPPORTED' : 'BAD_CHECKPOINT', `${path}: ${what}: unsupported dtype ${describeValue(dtype)}`);
    }
    const shapeProblem = intListProblem(shape, MAX_RANK);
    if (shapeProblem) throw bad(path, `${what}: bad shape: expected at most ${MAX_RANK} non-negative integers, got ${shapeProblem}`);
    const offsetsProblem = intListProblem(offsets, 2);
    if (offsetsProblem || (offsets as unknown[]).length !== 2) {
      throw bad(path, `${what}: bad data_offsets: expected [begin, end] (non-negative integers), got ${offsetsProblem ?? describeValue(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const numel = shapeNumel(shape as number[], `${path}: ${what}`);
    const nbytes = numel * DTYPE_SIZE[dtype];
    if (begin > end || end > dataSize) throw bad(path, `${what}: data_offsets [${begin}, ${end}] outside the data section (${dataSize} bytes)`);
    if (end - begin !== nbytes) throw bad(path, `${what}: ${end - begin} bytes for ${dtype} [${(shape as number[]).join(', ')}] (${nbytes} expected)`);
    ranges.push([begin, end, name]);
    tensors.set(name, new SafeTensor(name, dtype, Object.freeze([...(shape as number[])]), numel, dataStart + begin, nbytes, read));
  }
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i]![0] < ranges[i - 1]![1]) throw bad(path, `tensors "${shortName(ranges[i - 1]![2])}" and "${shortName(ranges[i]![2])}" overlap`);
  }
  return {
    path,
    tensors,
    metadata,
    bytesRead: () => counted,
    close: async () => {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
}

/**
 * Why `v` is not a flat list of at most `maxLength` non-negative safe integers (a short description, never
 * the value itself: a nested array would not even print), or undefined when it is one.
 */
function intListProblem(v: unknown, maxLength: number): string | undefined {
  if (!Array.isArray(v)) return describeValue(v);
  if (v.length > maxLength) return `${v.length} of them`;
  const i = v.findIndex((d) => !(typeof d === 'number' && Number.isSafeInteger(d) && d >= 0));
  return i < 0 ? undefined : `${describeValue(v[i])} at position ${i}`;
}
