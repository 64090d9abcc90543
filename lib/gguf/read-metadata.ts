// Reads a GGUF file's key/value metadata (not its tensors) in JS: what the library needs to know of a file
// before or besides loading it natively (e.g. CheXbert's WordPiece vocabulary, tokenizer.ggml.tokens).
//
// The header is read in chunks and checked as it goes: magic, version 2 or 3, counts and lengths within
// the file and within fixed limits, known value types, UTF-8 keys and strings. Anything else is BAD_GGUF;
// a file that cannot be opened or read is IO.

import type { FileHandle } from 'node:fs/promises';
import { LlavaRadError } from '../errors.js';
import { openRegularFile } from '../regular-file.js';
import { GGUF_MAGIC, GgufValueType } from './types.js';

export type GgufMetadataValue = number | bigint | boolean | string | GgufMetadataValue[];

/** limits on what a header may declare (far above any real model's) */
const MAX_KV = 1 << 20;
const MAX_STRING_BYTES = 1 << 26;
const MAX_ARRAY_ITEMS = 1 << 26;
const CHUNK = 1 << 20;

const SCALAR_BYTES: Partial<Record<GgufValueType, number>> = {
  [GgufValueType.UINT8]: 1, [GgufValueType.INT8]: 1, [GgufValueType.UINT16]: 2, [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4, [GgufValueType.INT32]: 4, [GgufValueType.FLOAT32]: 4, [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8, [GgufValueType.INT64]: 8, [GgufValueType.FLOAT64]: 8,
};

class HeaderReader {
  private buf = Buffer.alloc(0);
  /** file offset of buf[0] */
  private base = 0;
  /** read position (file offset) */
  pos = 0;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly fh: FileHandle, readonly size: number, private readonly file: string) {}

  bad(what: string): LlavaRadError {
    return new LlavaRadError('BAD_GGUF', `${this.file}: ${what} (GGUF header, byte ${this.pos})`);
  }

  /** makes bytes [pos, pos + n) available */
  private async need(n: number): Promise<void> {
    if (this.pos + n > this.size) throw this.bad('truncated');
    const end = this.base + this.buf.length;
    if (this.pos + n <= end) return;
    const keep = this.buf.subarray(this.pos - this.base);
    const want = Math.max(n, CHUNK);
    const next = Buffer.alloc(Math.min(keep.length + want, this.size - this.pos));
    keep.copy(next);
    let filled = keep.length;
    while (filled < next.length) {
      const { bytesRead } = await this.fh.read(next, filled, next.length - filled, this.pos + filled);
      if (bytesRead === 0) throw this.bad('truncated');
      filled += bytesRead;
    }
    this.buf = next;
    this.base = this.pos;
  }

  private at(): number {
    return this.pos - this.base;
  }

  async u32(): Promise<number> {
    await this.need(4);
    const v = this.buf.readUInt32LE(this.at());
    this.pos += 4;
    return v;
  }

  async u64(): Promise<bigint> {
    await this.need(8);
    const v = this.buf.readBigUInt64LE(this.at());
    this.pos += 8;
    return v;
  }

  async count(what: string, max: number): Promise<number> {
    const v = await this.u64();
    if (v > BigInt(max)) throw this.bad(`${what} ${v} is over the limit of ${max}`);
    return Number(v);
  }

  async string(what: string): Promise<string> {
    const n = await this.count(`${what} length`, MAX_STRING_BYTES);
    await this.need(n);
    let s: string;
    try {
      s = this.decoder.decode(this.buf.subarray(this.at(), this.at() + n));
    } catch {
      throw this.bad(`${what} is not UTF-8`);
    }
    this.pos += n;
    return s;
  }

  async scalar(type: GgufValueType): Promise<number | bigint | boolean> {
    const bytes = SCALAR_BYTES[type]!;
    await this.need(bytes);
    const b = this.buf;
    const o = this.at();
    this.pos += bytes;
    switch (type) {
      case GgufValueType.UINT8: return b.readUInt8(o);
      case GgufValueType.INT8: return b.readInt8(o);
      case GgufValueType.UINT16: return b.readUInt16LE(o);
      case GgufValueType.INT16: return b.readInt16LE(o);
      case GgufValueType.UINT32: return b.readUInt32LE(o);
      case GgufValueType.INT32: return b.readInt32LE(o);
      case GgufValueType.FLOAT32: return b.readFloatLE(o);
      case GgufValueType.BOOL: {
        const v = b.readUInt8(o);
        if (v > 1) throw this.bad(`a bool of value ${v}`);
        return v === 1;
      }
      case GgufValueType.UINT64: return b.readBigUInt64LE(o);
      case GgufValueType.INT64: return b.readBigInt64LE(o);
      case GgufValueType.FLOAT64: return b.readDoubleLE(o);
      default: throw this.bad(`value type ${type as number}`);
    }
  }

  async value(type: number, key: string, nested = false): Promise<GgufMetadataValue> {
    if (type === GgufValueType.STRING) return this.string(`the value of ${key}`);
    if (type === GgufValueType.ARRAY) {
      if (nested) throw this.bad(`${key}: nested arrays are not supported`);
      const itemType = await this.u32();
      const n = await this.count(`${key}: array length`, MAX_ARRAY_ITEMS);
      if (itemType !== GgufValueType.STRING && itemType !== GgufValueType.ARRAY && SCALAR_BYTES[itemType as GgufValueType] === undefined) {
        throw this.bad(`${key}: unknown array item type ${itemType}`);
      }
      const minBytes = itemType === GgufValueType.STRING ? 8 : (SCALAR_BYTES[itemType as GgufValueType] ?? 12);
      if (this.pos + n * minBytes > this.size) throw this.bad(`${key}: ${n} items do not fit in the file`);
      const out: GgufMetadataValue[] = new Array<GgufMetadataValue>(n);
      for (let i = 0; i < n; i++) out[i] = await this.value(itemType, key, true);
      return out;
    }
    if (SCALAR_BYTES[type as GgufValueType] === undefined) throw this.bad(`${key}: unknown value type ${type}`);
    return this.scalar(type as GgufValueType);
  }
}

export interface GgufMetadata {
  version: number;
  tensorCount: number;
  /** key -> value, in file order (u64 / i64 as bigint, arrays as JS arrays) */
  kv: Map<string, GgufMetadataValue>;
}

/** reads the key/value metadata of a GGUF file (BAD_GGUF for a malformed header, IO for an unreadable file) */
export async function readGgufMetadata(file: string): Promise<GgufMetadata> {
  const { fh, size } = await openRegularFile(file, 'the GGUF');
  try {
    const r = new HeaderReader(fh, size, file);
    if (size < 24 || (await r.u32()) !== GGUF_MAGIC) throw new LlavaRadError('BAD_GGUF', `${file}: not a GGUF file (no GGUF magic)`);
    const version = await r.u32();
    if (version !== 2 && version !== 3) throw r.bad(`unsupported GGUF version ${version}`);
    const tensorCount = await r.count('tensor count', 1 << 24);
    const nKv = await r.count('key/value count', MAX_KV);
    const kv = new Map<string, GgufMetadataValue>();
    for (let i = 0; i < nKv; i++) {
      const key = await r.string('a key');
      if (kv.has(key)) throw r.bad(`duplicate key ${key}`);
      const type = await r.u32();
      kv.set(key, await r.value(type, key));
    }
    return { version, tensorCount, kv };
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `could not read ${file}: ${(e as Error).message}`, { cause: e });
  } finally {
    await fh.close();
  }
}

/** a string-array key, or undefined when absent; BAD_GGUF when it holds something else */
export function ggufStringArray(meta: GgufMetadata, key: string, file = 'GGUF'): string[] | undefined {
  const v = meta.kv.get(key);
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new LlavaRadError('BAD_GGUF', `${file}: ${key} is not an array of strings`);
  return v as string[];
}

/** a number key (any integer or float type), or undefined when absent */
export function ggufNumber(meta: GgufMetadata, key: string, file = 'GGUF'): number | undefined {
  const v = meta.kv.get(key);
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  throw new LlavaRadError('BAD_GGUF', `${file}: ${key} is not a number`);
}
