// The retrieval index file (docs/retrieval.md, "On-disk format"): one file, little-endian,
//
//   [0, 128)                 header (below)
//   [128, 128 + metaBytes)   metadata: UTF-8 JSON {"modelId": string, "ids": string[], "kinds": string}
//                            (kinds: one character per entry, "i" image or "t" text)
//   [vectorsOffset, end)     count x dim float32, row-major, contiguous; vectorsOffset is a multiple of 64
//                            (zero padding after the metadata), so the block can be mapped as one matrix
//
// Header: magic "LRADINDX" (8 bytes), u32 version (1), u32 dim, u64 count, u32 dtype (1 = float32),
// u32 header bytes (128), u64 metaOffset (128), u64 metaBytes, u64 vectorsOffset, u64 fileBytes,
// sha256 of the metadata bytes (32), sha256 of the vector bytes (32).
//
// decodeHeader checks every field against the others and against the file's real size before anything is
// allocated: a truncated, padded or hostile file (absurd count or dim) is BAD_INDEX, never a large allocation.

import { LlavaRadError } from '../errors.js';
import { MANIFEST_LIMITS } from '../batch/manifest.js';

export const INDEX_MAGIC = 'LRADINDX';
export const INDEX_VERSION = 1;
export const DTYPE_FLOAT32 = 1;
export const HEADER_BYTES = 128;
/** the vector block starts at a multiple of this (a cache line; any float32 mapping needs only 4) */
export const VECTOR_ALIGN = 64;
export const FLOAT_BYTES = 4;

/** What an index may hold; anything beyond is refused as BAD_INDEX (reading) or INVALID_ARGUMENT (writing). */
export const INDEX_LIMITS = {
  /** floats per vector (BiomedCLIP-CXR: 512) */
  maxDim: 16384,
  /** entries (1e9 x 512 floats would be 2 TB: far beyond exact search) */
  maxCount: 1_000_000_000,
  /** metadata JSON: ids are bounded by the manifest's, so 1 GiB holds millions of them */
  maxMetaBytes: 1 << 30,
  /** an entry id: as a manifest's */
  idBytes: MANIFEST_LIMITS.idBytes,
  /** the model id (a sha256 hex, or a few of them joined) */
  modelIdBytes: 1024,
} as const;

export type EntryKind = 'image' | 'text';
export const KIND_CODES: Record<EntryKind, string> = { image: 'i', text: 't' };
export const KIND_OF_CODE: Record<string, EntryKind> = { i: 'image', t: 'text' };

export interface IndexHeader {
  dim: number;
  count: number;
  metaOffset: number;
  metaBytes: number;
  vectorsOffset: number;
  fileBytes: number;
  metaSha256: Buffer;
  vectorsSha256: Buffer;
}

/** the first multiple of VECTOR_ALIGN at or after the metadata's end */
export function vectorsOffsetFor(metaBytes: number): number {
  const end = HEADER_BYTES + metaBytes;
  return Math.ceil(end / VECTOR_ALIGN) * VECTOR_ALIGN;
}

export function encodeHeader(h: IndexHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.write(INDEX_MAGIC, 0, 'latin1');
  b.writeUInt32LE(INDEX_VERSION, 8);
  b.writeUInt32LE(h.dim, 12);
  b.writeBigUInt64LE(BigInt(h.count), 16);
  b.writeUInt32LE(DTYPE_FLOAT32, 24);
  b.writeUInt32LE(HEADER_BYTES, 28);
  b.writeBigUInt64LE(BigInt(h.metaOffset), 32);
  b.writeBigUInt64LE(BigInt(h.metaBytes), 40);
  b.writeBigUInt64LE(BigInt(h.vectorsOffset), 48);
  b.writeBigUInt64LE(BigInt(h.fileBytes), 56);
  h.metaSha256.copy(b, 64);
  h.vectorsSha256.copy(b, 96);
  return b;
}

function badIndex(file: string, msg: string): LlavaRadError {
  return new LlavaRadError('BAD_INDEX', `${file}: ${msg}`);
}

/** a u64 field as a Number; BAD_INDEX when above 2^53 */
function u64(file: string, b: Buffer, at: number, what: string): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw badIndex(file, `${what} is ${v}: not a size a file can have`);
  return Number(v);
}

/** Parses and cross-checks a header; `size` is the file's real length. */
export function decodeHeader(file: string, b: Buffer, size: number): IndexHeader {
  if (size < HEADER_BYTES || b.length < HEADER_BYTES) throw badIndex(file, `${size} bytes: shorter than an index header (${HEADER_BYTES} bytes)`);
  if (b.toString('latin1', 0, 8) !== INDEX_MAGIC) throw badIndex(file, `not a retrieval index of llava-rad (no "${INDEX_MAGIC}" magic)`);
  const version = b.readUInt32LE(8);
  if (version !== INDEX_VERSION) throw badIndex(file, `format version ${version}; this llava-rad reads version ${INDEX_VERSION}`);
  const dim = b.readUInt32LE(12);
  if (dim < 1 || dim > INDEX_LIMITS.maxDim) throw badIndex(file, `dim ${dim}: expected 1 to ${INDEX_LIMITS.maxDim}`);
  const count = u64(file, b, 16, 'count');
  if (count > INDEX_LIMITS.maxCount) throw badIndex(file, `count ${count}: expected at most ${INDEX_LIMITS.maxCount}`);
  const dtype = b.readUInt32LE(24);
  if (dtype !== DTYPE_FLOAT32) throw badIndex(file, `dtype ${dtype}: expected ${DTYPE_FLOAT32} (float32)`);
  if (b.readUInt32LE(28) !== HEADER_BYTES) throw badIndex(file, `header size ${b.readUInt32LE(28)}: expected ${HEADER_BYTES}`);
  const metaOffset = u64(file, b, 32, 'metaOffset');
  const metaBytes = u64(file, b, 40, 'metaBytes');
  const vectorsOffset = u64(file, b, 48, 'vectorsOffset');
  const fileBytes = u64(file, b, 56, 'fileBytes');
  if (metaOffset !== HEADER_BYTES) throw badIndex(file, `metaOffset ${metaOffset}: expected ${HEADER_BYTES}`);
  if (metaBytes > INDEX_LIMITS.maxMetaBytes) throw badIndex(file, `metadata of ${metaBytes} bytes: expected at most ${INDEX_LIMITS.maxMetaBytes}`);
  if (vectorsOffset !== vectorsOffsetFor(metaBytes)) throw badIndex(file, `vectorsOffset ${vectorsOffset}: expected ${vectorsOffsetFor(metaBytes)} for ${metaBytes} bytes of metadata`);
  const expected = vectorsOffset + count * dim * FLOAT_BYTES;
  if (fileBytes !== expected) throw badIndex(file, `the header says ${fileBytes} bytes, but ${count} vectors of ${dim} floats make ${expected}`);
  if (size !== fileBytes) {
    throw badIndex(file, `${size} bytes on disk, the header says ${fileBytes}: the file is ${size < fileBytes ? 'truncated' : 'longer than written (appended to?)'}`);
  }
  return { dim, count, metaOffset, metaBytes, vectorsOffset, fileBytes, metaSha256: b.subarray(64, 96), vectorsSha256: b.subarray(96, 128) };
}

/** The metadata JSON of `count` entries. */
export function encodeMeta(modelId: string, ids: readonly string[], kinds: readonly EntryKind[]): Buffer {
  return Buffer.from(JSON.stringify({ modelId, ids, kinds: kinds.map((k) => KIND_CODES[k]).join('') }), 'utf8');
}

export interface IndexMeta {
  modelId: string;
  ids: string[];
  /** 0 image, 1 text, one per entry */
  kinds: Uint8Array;
}

/** Parses the metadata; every field is checked (BAD_INDEX), duplicates (id, kind) included. */
export function decodeMeta(file: string, bytes: Buffer, count: number): IndexMeta {
  let v: unknown;
  try {
    v = JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw badIndex(file, `its metadata is not JSON (${(e as Error).message})`);
  }
  const o = v as { modelId?: unknown; ids?: unknown; kinds?: unknown };
  if (typeof v !== 'object' || v === null) throw badIndex(file, 'its metadata is not a JSON object');
  if (typeof o.modelId !== 'string' || o.modelId === '' || Buffer.byteLength(o.modelId) > INDEX_LIMITS.modelIdBytes) {
    throw badIndex(file, `its metadata's modelId must be a non-empty string of at most ${INDEX_LIMITS.modelIdBytes} bytes`);
  }
  if (!Array.isArray(o.ids) || o.ids.length !== count) throw badIndex(file, `its metadata must list ${count} ids (the header's count)`);
  if (typeof o.kinds !== 'string' || o.kinds.length !== count) throw badIndex(file, `its metadata must give ${count} kinds (the header's count)`);
  const kinds = new Uint8Array(count);
  // one set per kind: ids as they are (their hashes are cached), no concatenated keys
  const seen = [new Set<string>(), new Set<string>()];
  for (let i = 0; i < count; i++) {
    const id: unknown = o.ids[i];
    if (typeof id !== 'string' || id === '' || Buffer.byteLength(id) > INDEX_LIMITS.idBytes) {
      throw badIndex(file, `entry ${i}: an id must be a non-empty string of at most ${INDEX_LIMITS.idBytes} bytes`);
    }
    const c: string = (o.kinds as string)[i]!;
    if (c !== 'i' && c !== 't') throw badIndex(file, `entry ${i}: kind ${JSON.stringify(c)}, expected "i" (image) or "t" (text)`);
    const k = c === 'i' ? 0 : 1;
    kinds[i] = k;
    if (seen[k]!.has(id)) throw badIndex(file, `entry ${i}: the ${KIND_OF_CODE[c]} of ${JSON.stringify(id)} is there twice`);
    seen[k]!.add(id);
  }
  return { modelId: o.modelId, ids: o.ids as string[], kinds };
}

/** the key of an entry in sets and maps: its kind's code, then its id */
export const entryKey = (id: string, kind: EntryKind): string => KIND_CODES[kind] + id;
