// A streaming GGUF v3 writer.
//
//   const w = new GgufWriter('model.gguf');
//   w.addString('general.architecture', 'llama');
//   w.addUint32('llama.block_count', 32);
//   w.addArray('tokenizer.ggml.tokens', GgufValueType.STRING, tokens);
//   w.addTensorInfo('token_embd.weight', GgmlType.F16, [4096, 32000]);   // ggml order: ne[0] = row length
//   await w.writeHeader();
//   await w.writeTensorData('token_embd.weight', bytes);                  // whole tensor at once, or
//   await w.writeTensorChunk('blk.0.attn_q.weight', rowsBytes);            // in consecutive pieces
//   await w.close();
//
// Layout (what llama.cpp's gguf reader requires): magic, version, tensor count, kv count, the kv pairs,
// the tensor infos, padding to the alignment, then the tensors' data in the order of their infos, each
// padded to the alignment; a tensor's offset is relative to the start of the data section.
// Only the header lives in memory; tensor data goes to the file as it is handed over (positional
// writes, so tensors may be written in any order).

import { ioError } from '../errors.js';
import { open, type FileHandle } from 'node:fs/promises';
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_KEY_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  GgufValueType,
  ggmlTensorBytes,
  ggmlTypeTraits,
} from './types.js';

/** longest tensor name ggml accepts (GGML_MAX_NAME - 1 bytes) */
export const GGUF_MAX_TENSOR_NAME = 63;

export type GgufScalar = number | bigint | boolean | string;
/** an array value: plain JS array, typed array, or (for GgufValueType.ARRAY items) nested GgufArray values */
export type GgufArrayValues =
  | readonly GgufScalar[]
  | ArrayLike<number>
  | readonly GgufArray[];
export interface GgufArray {
  itemType: GgufValueType;
  values: GgufArrayValues;
}

export type GgufKv =
  | { key: string; type: Exclude<GgufValueType, GgufValueType.ARRAY>; value: GgufScalar }
  | { key: string; type: GgufValueType.ARRAY; value: GgufArray };

export interface GgufTensorInfo {
  name: string;
  type: number;
  /** ggml order: shape[0] is the row length */
  shape: bigint[];
  nbytes: bigint;
  /** offset inside the data section (set by writeHeader) */
  offset: bigint;
}

// ------------------------------------------------------------------------------------------------
// low-level encoding (exported so tests can build deliberately malformed files from the same pieces)

/** Growable little-endian byte builder. */
export class ByteBuilder {
  private buf: Buffer;
  private len = 0;

  constructor(initial = 1024) {
    this.buf = Buffer.alloc(initial);
  }

  get length(): number {
    return this.len;
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = Buffer.alloc(cap);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  u8(v: number): this { this.reserve(1); this.buf.writeUInt8(v, this.len); this.len += 1; return this; }
  i8(v: number): this { this.reserve(1); this.buf.writeInt8(v, this.len); this.len += 1; return this; }
  u16(v: number): this { this.reserve(2); this.buf.writeUInt16LE(v, this.len); this.len += 2; return this; }
  i16(v: number): this { this.reserve(2); this.buf.writeInt16LE(v, this.len); this.len += 2; return this; }
  u32(v: number): this { this.reserve(4); this.buf.writeUInt32LE(v, this.len); this.len += 4; return this; }
  i32(v: number): this { this.reserve(4); this.buf.writeInt32LE(v, this.len); this.len += 4; return this; }
  f32(v: number): this { this.reserve(4); this.buf.writeFloatLE(v, this.len); this.len += 4; return this; }
  f64(v: number): this { this.reserve(8); this.buf.writeDoubleLE(v, this.len); this.len += 8; return this; }
  u64(v: number | bigint): this {
    this.reserve(8); this.buf.writeBigUInt64LE(BigInt(v), this.len); this.len += 8; return this;
  }
  i64(v: number | bigint): this {
    this.reserve(8); this.buf.writeBigInt64LE(BigInt(v), this.len); this.len += 8; return this;
  }
  bytes(b: Uint8Array): this { this.reserve(b.length); this.buf.set(b, this.len); this.len += b.length; return this; }
  /** GGUF string: u64 byte length + UTF-8 bytes, no terminator */
  str(s: string | Uint8Array): this {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    return this.u64(b.length).bytes(b);
  }
  zeros(n: number): this { this.reserve(n); this.buf.fill(0, this.len, this.len + n); this.len += n; return this; }

  toBuffer(): Buffer {
    return this.buf.subarray(0, this.len);
  }
}

function checkInt(v: GgufScalar, lo: bigint, hi: bigint, what: string): bigint {
  if (typeof v !== 'number' && typeof v !== 'bigint') throw new TypeError(`${what}: expected an integer, got ${typeof v}`);
  if (typeof v === 'number' && !Number.isInteger(v)) throw new TypeError(`${what}: ${v} is not an integer`);
  const b = BigInt(v);
  if (b < lo || b > hi) throw new RangeError(`${what}: ${v} out of range [${lo}, ${hi}]`);
  return b;
}

/** Appends the binary representation of one value of `type` (no type tag). */
export function encodeGgufValue(out: ByteBuilder, type: GgufValueType, value: GgufScalar | GgufArray, what = 'value'): void {
  switch (type) {
    case GgufValueType.UINT8: out.u8(Number(checkInt(value as GgufScalar, 0n, 0xffn, what))); return;
    case GgufValueType.INT8: out.i8(Number(checkInt(value as GgufScalar, -0x80n, 0x7fn, what))); return;
    case GgufValueType.UINT16: out.u16(Number(checkInt(value as GgufScalar, 0n, 0xffffn, what))); return;
    case GgufValueType.INT16: out.i16(Number(checkInt(value as GgufScalar, -0x8000n, 0x7fffn, what))); return;
    case GgufValueType.UINT32: out.u32(Number(checkInt(value as GgufScalar, 0n, 0xffffffffn, what))); return;
    case GgufValueType.INT32: out.i32(Number(checkInt(value as GgufScalar, -0x80000000n, 0x7fffffffn, what))); return;
    case GgufValueType.UINT64: out.u64(checkInt(value as GgufScalar, 0n, 0xffffffffffffffffn, what)); return;
    case GgufValueType.INT64: out.i64(checkInt(value as GgufScalar, -(1n << 63n), (1n << 63n) - 1n, what)); return;
    case GgufValueType.FLOAT32:
    case GgufValueType.FLOAT64: {
      if (typeof value !== 'number') throw new TypeError(`${what}: expected a number, got ${typeof value}`);
      if (type === GgufValueType.FLOAT32) out.f32(value); else out.f64(value);
      return;
    }
    case GgufValueType.BOOL:
      if (typeof value !== 'boolean') throw new TypeError(`${what}: expected a boolean, got ${typeof value}`);
      out.u8(value ? 1 : 0);
      return;
    case GgufValueType.STRING:
      if (typeof value !== 'string' && !(value instanceof Uint8Array)) throw new TypeError(`${what}: expected a string`);
      out.str(value as string | Uint8Array);
      return;
    case GgufValueType.ARRAY: {
      const arr = value as GgufArray;
      if (arr === null || typeof arr !== 'object' || !('itemType' in arr)) throw new TypeError(`${what}: expected {itemType, values}`);
      const n = arr.values.length;
      out.u32(arr.itemType).u64(n);
      const fast = encodeTypedArrayFast(out, arr.itemType, arr.values);
      if (!fast) {
        for (let i = 0; i < n; i++) {
          encodeGgufValue(out, arr.itemType, (arr.values as ArrayLike<GgufScalar | GgufArray>)[i]!, `${what}[${i}]`);
        }
      }
      return;
    }
    default:
      throw new RangeError(`${what}: unknown GGUF value type ${type as number}`);
  }
}

// bulk path for typed arrays of the matching element type (little-endian hosts only, like ggml)
function encodeTypedArrayFast(out: ByteBuilder, itemType: GgufValueType, values: GgufArrayValues): boolean {
  if (!ArrayBuffer.isView(values) || (values as unknown as DataView) instanceof DataView) return false;
  const ok =
    (itemType === GgufValueType.FLOAT32 && values instanceof Float32Array) ||
    (itemType === GgufValueType.FLOAT64 && values instanceof Float64Array) ||
    (itemType === GgufValueType.INT32 && values instanceof Int32Array) ||
    (itemType === GgufValueType.UINT32 && values instanceof Uint32Array) ||
    (itemType === GgufValueType.INT16 && values instanceof Int16Array) ||
    (itemType === GgufValueType.UINT16 && values instanceof Uint16Array) ||
    (itemType === GgufValueType.INT8 && values instanceof Int8Array) ||
    (itemType === GgufValueType.UINT8 && values instanceof Uint8Array);
  if (!ok) return false;
  const v = values as unknown as ArrayBufferView;
  out.bytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  return true;
}

/** Appends one key/value pair (key string, type tag, value). */
export function encodeGgufKv(out: ByteBuilder, kv: GgufKv): void {
  out.str(kv.key);
  out.u32(kv.type);
  encodeGgufValue(out, kv.type, kv.value, kv.key);
}

/** Appends one tensor info (name, n_dims, dims, type, offset). */
export function encodeGgufTensorInfo(
  out: ByteBuilder,
  name: string,
  shape: readonly (number | bigint)[],
  type: number,
  offset: number | bigint,
): void {
  out.str(name).u32(shape.length);
  for (const d of shape) out.i64(d);
  out.i32(type).u64(offset);
}

export function alignUp(n: bigint, alignment: bigint): bigint {
  return ((n + alignment - 1n) / alignment) * alignment;
}

// ------------------------------------------------------------------------------------------------

export interface GgufWriterOptions {
  /** data alignment; written as general.alignment (u32) unless it is the default 32. Power of two. */
  alignment?: number;
  /** create the file exclusively (fail if anything, a link included, has its name) instead of truncating it */
  exclusive?: boolean;
}

type State = 'building' | 'header-written' | 'closed';

interface TensorState extends GgufTensorInfo {
  written: bigint;
}

export class GgufWriter {
  readonly path: string;
  private readonly alignment: number;
  private readonly exclusive: boolean;
  private readonly kvs: GgufKv[] = [];
  private readonly keys = new Set<string>();
  private readonly tensors: TensorState[] = [];
  private readonly byName = new Map<string, TensorState>();
  private state: State = 'building';
  private fh: FileHandle | undefined;
  private dataStart = 0n;
  private dataSize = 0n;

  constructor(path: string, options: GgufWriterOptions = {}) {
    this.path = path;
    const a = options.alignment ?? GGUF_DEFAULT_ALIGNMENT;
    if (!Number.isInteger(a) || a <= 0 || a > 0xffffffff || (a & (a - 1)) !== 0) {
      throw new RangeError(`alignment must be a power of two, got ${a}`);
    }
    this.alignment = a;
    this.exclusive = options.exclusive === true;
    if (a !== GGUF_DEFAULT_ALIGNMENT) this.addUint32(GGUF_KEY_ALIGNMENT, a);
  }

  // ---- metadata ---------------------------------------------------------------------------------

  private assertBuilding(what: string): void {
    if (this.state !== 'building') throw new Error(`GgufWriter: ${what} after writeHeader()`);
  }

  /** Adds a key/value pair. Arrays: type ARRAY with value {itemType, values}. Keys must be unique. */
  addKv(key: string, type: GgufValueType, value: GgufScalar | GgufArray): this {
    this.assertBuilding('addKv');
    if (typeof key !== 'string' || key.length === 0) throw new TypeError('GGUF keys must be non-empty strings');
    if (this.keys.has(key)) throw new Error(`duplicate GGUF key '${key}'`);
    if (key === GGUF_KEY_ALIGNMENT) {
      if (type !== GgufValueType.UINT32) throw new TypeError(`${GGUF_KEY_ALIGNMENT} must be a uint32`);
      if (value !== this.alignment) throw new Error(`set the alignment with the constructor's alignment option`);
    }
    // encode once now so type errors surface at the call site
    encodeGgufValue(new ByteBuilder(64), type, value, key);
    this.keys.add(key);
    this.kvs.push({ key, type, value } as GgufKv);
    return this;
  }

  addUint8(key: string, v: number): this { return this.addKv(key, GgufValueType.UINT8, v); }
  addInt8(key: string, v: number): this { return this.addKv(key, GgufValueType.INT8, v); }
  addUint16(key: string, v: number): this { return this.addKv(key, GgufValueType.UINT16, v); }
  addInt16(key: string, v: number): this { return this.addKv(key, GgufValueType.INT16, v); }
  addUint32(key: string, v: number): this { return this.addKv(key, GgufValueType.UINT32, v); }
  addInt32(key: string, v: number): this { return this.addKv(key, GgufValueType.INT32, v); }
  addUint64(key: string, v: number | bigint): this { return this.addKv(key, GgufValueType.UINT64, v); }
  addInt64(key: string, v: number | bigint): this { return this.addKv(key, GgufValueType.INT64, v); }
  addFloat32(key: string, v: number): this { return this.addKv(key, GgufValueType.FLOAT32, v); }
  addFloat64(key: string, v: number): this { return this.addKv(key, GgufValueType.FLOAT64, v); }
  addBool(key: string, v: boolean): this { return this.addKv(key, GgufValueType.BOOL, v); }
  addString(key: string, v: string): this { return this.addKv(key, GgufValueType.STRING, v); }
  addArray(key: string, itemType: GgufValueType, values: GgufArrayValues): this {
    return this.addKv(key, GgufValueType.ARRAY, { itemType, values });
  }

  // ---- tensors ----------------------------------------------------------------------------------

  /**
   * Declares a tensor. `shape` is in ggml order (shape[0] = row length). `nbytes`, if given, must equal
   * the size the type and shape imply (a cross-check for converters that compute it themselves).
   */
  addTensorInfo(name: string, type: number, shape: readonly (number | bigint)[], nbytes?: number | bigint): this {
    this.assertBuilding('addTensorInfo');
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('tensor names must be non-empty strings');
    if (Buffer.byteLength(name, 'utf8') > GGUF_MAX_TENSOR_NAME) {
      throw new RangeError(`tensor name '${name}' is longer than ${GGUF_MAX_TENSOR_NAME} bytes`);
    }
    if (this.byName.has(name)) throw new Error(`duplicate tensor '${name}'`);
    if (!ggmlTypeTraits(type)) throw new RangeError(`tensor '${name}': unknown ggml type ${type}`);
    const dims = shape.map((d) => {
      if (typeof d === 'number' && !Number.isSafeInteger(d)) throw new RangeError(`tensor '${name}': bad dimension ${d}`);
      return BigInt(d);
    });
    if (dims.some((d) => d <= 0n)) throw new RangeError(`tensor '${name}': dimensions must be positive, got [${dims}]`);
    let computed: bigint;
    try {
      computed = ggmlTensorBytes(type, dims);
    } catch (e) {
      throw new RangeError(`tensor '${name}': ${(e as Error).message}`);
    }
    if (nbytes !== undefined && BigInt(nbytes) !== computed) {
      throw new RangeError(`tensor '${name}': nbytes ${nbytes} does not match ${computed} implied by type and shape`);
    }
    const t: TensorState = { name, type, shape: dims, nbytes: computed, offset: 0n, written: 0n };
    this.tensors.push(t);
    this.byName.set(name, t);
    return this;
  }

  /** tensor infos in file order (offsets valid after writeHeader) */
  get tensorInfos(): readonly GgufTensorInfo[] {
    return this.tensors.map(({ written: _w, ...t }) => ({ ...t, shape: [...t.shape] }));
  }

  /** byte offset of the data section in the file (valid after writeHeader) */
  get dataOffset(): bigint {
    return this.dataStart;
  }

  /** Encodes the header (everything before the data section, without the final padding). */
  encodeHeader(): Buffer {
    const out = new ByteBuilder(1 << 16);
    out.u32(GGUF_MAGIC).u32(GGUF_VERSION).u64(this.tensors.length).u64(this.kvs.length);
    for (const kv of this.kvs) encodeGgufKv(out, kv);
    let offset = 0n;
    const a = BigInt(this.alignment);
    for (const t of this.tensors) {
      t.offset = offset;
      encodeGgufTensorInfo(out, t.name, t.shape, t.type, offset);
      offset += alignUp(t.nbytes, a);
    }
    this.dataSize = offset;
    return out.toBuffer();
  }

  /** Creates (truncates, or with `exclusive` creates new) the file and writes the header; after this only tensor data may be written. */
  async writeHeader(): Promise<void> {
    this.assertBuilding('writeHeader');
    const header = this.encodeHeader();
    const a = BigInt(this.alignment);
    this.dataStart = alignUp(BigInt(header.length), a);
    const fh = await open(this.path, this.exclusive ? 'wx' : 'w').catch((e: unknown) => { throw ioError(e, `cannot create ${this.path}`); });
    try {
      const padded = Buffer.alloc(Number(this.dataStart));
      header.copy(padded);
      await writeAll(fh, padded, 0, this.path);
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
    this.fh = fh;
    this.state = 'header-written';
  }

  private tensorFor(name: string, what: string): TensorState {
    if (this.state !== 'header-written') {
      throw new Error(`GgufWriter: ${what} ${this.state === 'closed' ? 'after close()' : 'before writeHeader()'}`);
    }
    const t = this.byName.get(name);
    if (!t) throw new Error(`GgufWriter: unknown tensor '${name}'`);
    return t;
  }

  /** Writes a whole tensor's data (exactly its nbytes). */
  async writeTensorData(name: string, data: ArrayBufferView): Promise<void> {
    const t = this.tensorFor(name, 'writeTensorData');
    if (t.written !== 0n) throw new Error(`GgufWriter: tensor '${name}' was already written`);
    if (BigInt(data.byteLength) !== t.nbytes) {
      throw new RangeError(`GgufWriter: tensor '${name}' takes ${t.nbytes} bytes, got ${data.byteLength}`);
    }
    await this.writeTensorChunk(name, data);
  }

  /**
   * Appends the next piece of a tensor's data; pieces must add up to exactly its nbytes. Lets a
   * converter stream a large tensor a few rows at a time.
   */
  async writeTensorChunk(name: string, data: ArrayBufferView): Promise<void> {
    const t = this.tensorFor(name, 'writeTensorChunk');
    const n = BigInt(data.byteLength);
    if (t.written + n > t.nbytes) {
      throw new RangeError(`GgufWriter: tensor '${name}' takes ${t.nbytes} bytes; ${t.written + n} were handed over`);
    }
    const pos = this.dataStart + t.offset + t.written;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    t.written += n; // claim the range before awaiting so concurrent chunk calls cannot overlap
    await writeAll(this.fh!, bytes, Number(pos), this.path);
    if (t.written === t.nbytes) {
      const pad = alignUp(t.nbytes, BigInt(this.alignment)) - t.nbytes;
      if (pad > 0n) await writeAll(this.fh!, new Uint8Array(Number(pad)), Number(this.dataStart + t.offset + t.nbytes), this.path);
    }
  }

  /** Checks that every tensor was written in full and closes the file. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    if (this.state === 'building') {
      // no tensor data to wait for: write the header and finish
      await this.writeHeader();
    }
    const fh = this.fh!;
    this.state = 'closed';
    this.fh = undefined;
    try {
      const missing = this.tensors.filter((t) => t.written !== t.nbytes);
      if (missing.length > 0) {
        throw new Error(`GgufWriter: tensor data missing for ${missing.map((t) => `'${t.name}'`).join(', ')}`);
      }
      await fh.truncate(Number(this.dataStart + this.dataSize)).catch((e: unknown) => { throw ioError(e, `cannot write ${this.path}`); });
    } finally {
      await fh.close().catch((e: unknown) => { throw ioError(e, `cannot write ${this.path}`); });
    }
  }

  /** Closes the file without the completeness check (for error paths). */
  async abort(): Promise<void> {
    const fh = this.fh;
    this.state = 'closed';
    this.fh = undefined;
    if (fh) await fh.close().catch(() => {});
  }
}

/** writes all of `data` at `position`; a failed write (a full disk, say) is IO naming `file` */
async function writeAll(fh: FileHandle, data: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done).catch((e: unknown) => { throw ioError(e, `cannot write ${file}`); });
    if (bytesWritten <= 0) throw new Error('GgufWriter: write made no progress');
    done += bytesWritten;
  }
}

export { GgufValueType, GgmlType } from './types.js';
