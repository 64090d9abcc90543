// Malformed GGUF files made from a valid tiny LLaMA, for the loader's robustness tests.
//
//   const base = await corruptionBase(dir);            // a small valid model + its parsed layout
//   for (const c of corruptCases()) {
//     const file = await c.make(base, dir);             // writes one malformed file, returns its path
//     ... expect loadModel({model: file}) to reject with one of c.expect ...
//   }
//
// Three ways of making a case:
// - patch: copy the valid file and overwrite a fixed-width field in place (counts, lengths, type tags,
//   dims, offsets, version, magic) or truncate it;
// - rebuild: re-encode the header from the valid file's pieces (raw kv bytes, tensor infos that may be
//   anything, e.g. 5 dims or type 1000) and append the valid data section unchanged;
// - regenerate: write a consistent model with makeTinyLlama whose metadata or tensor list is wrong on
//   purpose (missing tensor, attn_q of the wrong size, embedding_length as a string, ...), so that only
//   the intended defect is present.

import { copyFile, mkdir, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  ByteBuilder,
  alignUp,
  encodeGgufKv,
  encodeGgufTensorInfo,
  type GgufKv,
} from '../../lib/gguf/writer.js';
import { GGUF_MAGIC, GgufValueType } from '../../lib/gguf/types.js';
import { makeTinyLlama, type TinyLlamaOptions, type TinyLlamaTensorSpec } from './tiny-llama.js';

// ------------------------------------------------------------------------------------------------
// a minimal GGUF layout parser (offsets of every field, for patching)

export interface KvLayout {
  key: string;
  /** offset of the key's u64 length */
  start: number;
  typeOffset: number;
  type: number;
  /** ARRAY only */
  itemTypeOffset?: number;
  itemType?: number;
  countOffset?: number;
  count?: bigint;
  /** first value byte (for arrays: the first element) */
  valueOffset: number;
  end: number;
}

export interface TensorLayout {
  name: string;
  start: number;
  nDimsOffset: number;
  dimsOffset: number;
  shape: bigint[];
  typeOffset: number;
  type: number;
  offsetOffset: number;
  offset: bigint;
  end: number;
}

export interface GgufLayout {
  version: number;
  nTensors: bigint;
  nKv: bigint;
  kvs: KvLayout[];
  tensors: TensorLayout[];
  /** end of the last tensor info */
  infoEnd: number;
  alignment: number;
  dataStart: number;
  size: number;
}

const SCALAR_BYTES: Record<number, number> = {
  [GgufValueType.UINT8]: 1, [GgufValueType.INT8]: 1, [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT16]: 2, [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4, [GgufValueType.INT32]: 4, [GgufValueType.FLOAT32]: 4,
  [GgufValueType.UINT64]: 8, [GgufValueType.INT64]: 8, [GgufValueType.FLOAT64]: 8,
};

/** Parses a well-formed GGUF's header (throws on anything unexpected: only for our own valid files). */
export function parseGgufLayout(buf: Buffer): GgufLayout {
  let p = 0;
  const u32 = (): number => { const v = buf.readUInt32LE(p); p += 4; return v; };
  const u64 = (): bigint => { const v = buf.readBigUInt64LE(p); p += 8; return v; };
  const i64 = (): bigint => { const v = buf.readBigInt64LE(p); p += 8; return v; };
  const str = (): string => { const n = Number(u64()); const s = buf.toString('utf8', p, p + n); p += n; return s; };
  const skipValue = (type: number): void => {
    if (type === GgufValueType.STRING) { p += 8 + Number(buf.readBigUInt64LE(p)); return; }
    if (type === GgufValueType.ARRAY) {
      const it = u32();
      const n = Number(u64());
      for (let i = 0; i < n; i++) skipValue(it);
      return;
    }
    const b = SCALAR_BYTES[type];
    if (b === undefined) throw new Error(`parseGgufLayout: value type ${type}`);
    p += b;
  };
  if (u32() !== GGUF_MAGIC) throw new Error('parseGgufLayout: not a GGUF');
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const kvs: KvLayout[] = [];
  let alignment = 32;
  for (let i = 0; i < Number(nKv); i++) {
    const start = p;
    const key = str();
    const typeOffset = p;
    const type = u32();
    const kv: KvLayout = { key, start, typeOffset, type, valueOffset: p, end: 0 };
    if (type === GgufValueType.ARRAY) {
      kv.itemTypeOffset = p;
      kv.itemType = u32();
      kv.countOffset = p;
      kv.count = u64();
      kv.valueOffset = p;
      const it = kv.itemType;
      for (let j = 0n; j < kv.count; j++) skipValue(it);
    } else {
      if (key === 'general.alignment') alignment = buf.readUInt32LE(p);
      skipValue(type);
    }
    kv.end = p;
    kvs.push(kv);
  }
  const tensors: TensorLayout[] = [];
  for (let i = 0; i < Number(nTensors); i++) {
    const start = p;
    const name = str();
    const nDimsOffset = p;
    const nDims = u32();
    const dimsOffset = p;
    const shape: bigint[] = [];
    for (let d = 0; d < nDims; d++) shape.push(i64());
    const typeOffset = p;
    const type = u32();
    const offsetOffset = p;
    const offset = u64();
    tensors.push({ name, start, nDimsOffset, dimsOffset, shape, typeOffset, type, offsetOffset, offset, end: p });
  }
  const infoEnd = p;
  const dataStart = Number(alignUp(BigInt(infoEnd), BigInt(alignment)));
  return { version, nTensors, nKv, kvs, tensors, infoEnd, alignment, dataStart, size: buf.length };
}

// ------------------------------------------------------------------------------------------------
// the valid base

/** shape of the base model: small (about 5 MB) but a complete LLaMA with the real vocabulary */
export const CORRUPTION_BASE_OPTIONS: Omit<TinyLlamaOptions, 'path'> = {
  type: 'f16',
  nEmbd: 64,
  nFf: 128,
  nLayer: 2,
  nHead: 2,
  nHeadKv: 1,
  nCtx: 128,
  name: 'corruption-base',
};

export interface CorruptionBase {
  path: string;
  buf: Buffer;
  layout: GgufLayout;
  /** writes a variant of the base model (same options, plus the given ones) */
  regenerate(file: string, extra: Partial<TinyLlamaOptions>): Promise<void>;
}

/** Writes the valid base model into `dir` and parses it. */
export async function corruptionBase(dir: string): Promise<CorruptionBase> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'base.gguf');
  await makeTinyLlama({ ...CORRUPTION_BASE_OPTIONS, path: file });
  const buf = await readFile(file);
  return {
    path: file,
    buf,
    layout: parseGgufLayout(buf),
    regenerate: (out, extra) => makeTinyLlama({ ...CORRUPTION_BASE_OPTIONS, ...extra, path: out }),
  };
}

// ------------------------------------------------------------------------------------------------
// building blocks

interface Patch {
  offset: number;
  bytes: Uint8Array;
}

const le = {
  u32: (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v >>> 0); return b; },
  i32: (v: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(v); return b; },
  u64: (v: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt.asUintN(64, v)); return b; },
  i64: (v: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt.asIntN(64, v)); return b; },
};

async function patched(base: CorruptionBase, out: string, patches: Patch[]): Promise<string> {
  await copyFile(base.path, out);
  const fh = await open(out, 'r+');
  try {
    for (const p of patches) await fh.write(p.bytes, 0, p.bytes.length, p.offset);
  } finally {
    await fh.close();
  }
  return out;
}

async function truncated(base: CorruptionBase, out: string, length: number): Promise<string> {
  await copyFile(base.path, out);
  await truncate(out, length);
  return out;
}

export interface RawTensorInfo {
  name: string;
  shape: bigint[];
  type: number;
  offset: bigint;
}

export interface RawKv {
  key: string;
  /** the whole encoded pair (key, type, value) */
  raw: Buffer;
}

export interface RebuildSpec {
  version?: number;
  magic?: number;
  /** counts written in the header (default: the real ones) */
  nTensors?: bigint;
  nKv?: bigint;
  kvs?: (kvs: RawKv[]) => RawKv[];
  tensors?: (tensors: RawTensorInfo[]) => RawTensorInfo[];
  /** bytes appended after the header's padding (default: the base's data section) */
  data?: Buffer;
}

/** the encoding of one kv pair, for RebuildSpec.kvs */
export function rawKv(kv: GgufKv): RawKv {
  const b = new ByteBuilder(64);
  encodeGgufKv(b, kv);
  return { key: kv.key, raw: Buffer.from(b.toBuffer()) };
}

/** a hand-encoded kv pair (any type tag / payload) */
export function rawKvBytes(key: string, typeTag: number, payload: Uint8Array): RawKv {
  const b = new ByteBuilder(64);
  b.str(key).u32(typeTag).bytes(payload);
  return { key, raw: Buffer.from(b.toBuffer()) };
}

/** re-encodes the base's header as `spec` says (kvs, tensor infos, counts) and writes it with a data section to `out` */
export async function rebuilt(base: CorruptionBase, out: string, spec: RebuildSpec): Promise<string> {
  const { buf, layout } = base;
  let kvs: RawKv[] = layout.kvs.map((k) => ({ key: k.key, raw: buf.subarray(k.start, k.end) }));
  let tensors: RawTensorInfo[] = layout.tensors.map((t) => ({ name: t.name, shape: [...t.shape], type: t.type, offset: t.offset }));
  if (spec.kvs) kvs = spec.kvs(kvs);
  if (spec.tensors) tensors = spec.tensors(tensors);
  const h = new ByteBuilder(1 << 20);
  h.u32(spec.magic ?? GGUF_MAGIC).u32(spec.version ?? layout.version);
  h.u64(spec.nTensors ?? BigInt(tensors.length)).u64(spec.nKv ?? BigInt(kvs.length));
  for (const k of kvs) h.bytes(k.raw);
  for (const t of tensors) encodeGgufTensorInfo(h, t.name, t.shape, t.type, t.offset);
  const headerLen = h.length;
  h.zeros(Number(alignUp(BigInt(headerLen), BigInt(layout.alignment))) - headerLen);
  const data = spec.data ?? buf.subarray(layout.dataStart);
  await writeFile(out, Buffer.concat([h.toBuffer(), data]));
  return out;
}

function kvOf(base: CorruptionBase, key: string): KvLayout {
  const k = base.layout.kvs.find((x) => x.key === key);
  if (!k) throw new Error(`base has no key ${key}`);
  return k;
}

function tensorOf(base: CorruptionBase, name: string): TensorLayout {
  const t = base.layout.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`base has no tensor ${name}`);
  return t;
}

const U32 = GgufValueType.UINT32;

function replaceKv(key: string, kv: GgufKv | RawKv): (kvs: RawKv[]) => RawKv[] {
  const r = 'raw' in kv ? kv : rawKv(kv);
  return (kvs) => kvs.map((k) => (k.key === key ? r : k));
}

function withKv(key: string, kv: GgufKv): NonNullable<TinyLlamaOptions['transformKv']> {
  return (kvs) => kvs.map((k) => (k.key === key ? kv : k));
}

function withoutKey(key: string): NonNullable<TinyLlamaOptions['transformKv']> {
  return (kvs) => kvs.filter((k) => k.key !== key);
}

function withoutTensor(pred: (name: string) => boolean): NonNullable<TinyLlamaOptions['transformTensors']> {
  return (ts) => ts.filter((t) => !pred(t.name));
}

function reshaped(name: string, shape: number[]): NonNullable<TinyLlamaOptions['transformTensors']> {
  return (ts: TinyLlamaTensorSpec[]) => ts.map((t) => (t.name === name ? { ...t, shape } : t));
}

// ------------------------------------------------------------------------------------------------
// the cases

export type ExpectedCode = 'BAD_GGUF' | 'IO' | 'INVALID_ARGUMENT' | 'UNSUPPORTED';

export interface CorruptCase {
  name: string;
  /** acceptable LlavaRadError codes */
  expect: ExpectedCode[];
  /** writes the file (or returns a path that is not a readable file) */
  make(base: CorruptionBase, dir: string): Promise<string>;
}

const BAD: ExpectedCode[] = ['BAD_GGUF'];
const file = (dir: string, name: string): string => path.join(dir, `${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}.gguf`);

/** Every malformed-file case. */
export function corruptCases(): CorruptCase[] {
  const cases: CorruptCase[] = [];
  const add = (name: string, make: (base: CorruptionBase, out: string, dir: string) => Promise<string>, expect = BAD): void => {
    cases.push({ name, expect, make: (base, dir) => make(base, file(dir, name), dir) });
  };

  // ---- not a file / empty -----------------------------------------------------------------------
  add('nonexistent path', async (_b, out) => `${out}.does-not-exist`, ['IO']);
  add('directory path', async (_b, out) => { await mkdir(out, { recursive: true }); return out; }, ['IO']);
  add('zero-byte file', async (_b, out) => { await writeFile(out, Buffer.alloc(0)); return out; });

  // ---- truncation ---------------------------------------------------------------------------------
  const truncations: [string, (b: CorruptionBase) => number][] = [
    ['1 byte', () => 1],
    ['inside magic', () => 3],
    ['after magic', () => 4],
    ['inside version', () => 6],
    ['after version', () => 8],
    ['inside tensor count', () => 12],
    ['after tensor count', () => 16],
    ['inside kv count', () => 20],
    ['after header', () => 24],
    ['inside first key length', (b) => b.layout.kvs[0]!.start + 3],
    ['inside first key', (b) => b.layout.kvs[0]!.start + 10],
    ['before first value type', (b) => b.layout.kvs[0]!.typeOffset],
    ['inside first value', (b) => b.layout.kvs[0]!.valueOffset + 2],
    ['inside tokens array header', (b) => kvOf(b, 'tokenizer.ggml.tokens').countOffset! + 4],
    ['inside tokens array (early)', (b) => kvOf(b, 'tokenizer.ggml.tokens').valueOffset + 100],
    ['inside tokens array (middle)', (b) => Math.floor((kvOf(b, 'tokenizer.ggml.tokens').valueOffset + kvOf(b, 'tokenizer.ggml.tokens').end) / 2)],
    ['inside scores array', (b) => kvOf(b, 'tokenizer.ggml.scores').end - 6],
    ['after last kv', (b) => b.layout.kvs[b.layout.kvs.length - 1]!.end],
    ['inside first tensor name', (b) => b.layout.tensors[0]!.start + 12],
    ['inside first tensor dims', (b) => b.layout.tensors[0]!.dimsOffset + 5],
    ['inside first tensor type', (b) => b.layout.tensors[0]!.typeOffset + 2],
    ['inside first tensor offset', (b) => b.layout.tensors[0]!.offsetOffset + 7],
    ['inside last tensor info', (b) => b.layout.tensors[b.layout.tensors.length - 1]!.start + 20],
    ['after tensor infos', (b) => b.layout.infoEnd],
    ['at data start', (b) => b.layout.dataStart],
    ['inside first tensor data', (b) => b.layout.dataStart + 1000],
    ['inside data (middle)', (b) => Math.floor((b.layout.dataStart + b.layout.size) / 2)],
    ['last byte missing', (b) => b.layout.size - 1],
  ];
  for (const [what, at] of truncations) add(`truncated: ${what}`, (b, out) => truncated(b, out, at(b)));

  // ---- magic and version --------------------------------------------------------------------------
  add('bad magic GGUG', (b, out) => patched(b, out, [{ offset: 0, bytes: Buffer.from('GGUG') }]));
  add('bad magic zeros', (b, out) => patched(b, out, [{ offset: 0, bytes: Buffer.alloc(4) }]));
  add('old ggjt magic', (b, out) => patched(b, out, [{ offset: 0, bytes: Buffer.from('tjgg') }]));
  add('big-endian magic', (b, out) => patched(b, out, [{ offset: 0, bytes: Buffer.from('FUGG') }]));
  for (const v of [0, 1, 4, 999, 0xffffffff]) {
    add(`version ${v}`, (b, out) => patched(b, out, [{ offset: 4, bytes: le.u32(v) }]));
  }

  // ---- counts -------------------------------------------------------------------------------------
  add('tensor count 2^63', (b, out) => patched(b, out, [{ offset: 8, bytes: le.u64(1n << 63n) }]));
  add('tensor count 2^64-1', (b, out) => patched(b, out, [{ offset: 8, bytes: le.u64((1n << 64n) - 1n) }]));
  add('tensor count 2^32', (b, out) => patched(b, out, [{ offset: 8, bytes: le.u64(1n << 32n) }]));
  add('tensor count +1', (b, out) => patched(b, out, [{ offset: 8, bytes: le.u64(b.layout.nTensors + 1n) }]));
  add('tensor count 0', (b, out) => rebuilt(b, out, { tensors: () => [], data: Buffer.alloc(0) }));
  add('kv count 2^63', (b, out) => patched(b, out, [{ offset: 16, bytes: le.u64(1n << 63n) }]));
  add('kv count 2^64-1', (b, out) => patched(b, out, [{ offset: 16, bytes: le.u64((1n << 64n) - 1n) }]));
  add('kv count +1', (b, out) => patched(b, out, [{ offset: 16, bytes: le.u64(b.layout.nKv + 1n) }]));
  add('kv count 0', (b, out) => patched(b, out, [{ offset: 16, bytes: le.u64(0n) }]));

  // ---- string and array lengths -------------------------------------------------------------------
  for (const [what, n] of [['2^63', 1n << 63n], ['2^64-1', (1n << 64n) - 1n], ['2^32', 1n << 32n]] as const) {
    add(`first key length ${what}`, (b, out) => patched(b, out, [{ offset: b.layout.kvs[0]!.start, bytes: le.u64(n) }]));
    add(`architecture string length ${what}`, (b, out) =>
      patched(b, out, [{ offset: kvOf(b, 'general.architecture').valueOffset, bytes: le.u64(n) }]));
    add(`first token string length ${what}`, (b, out) =>
      patched(b, out, [{ offset: kvOf(b, 'tokenizer.ggml.tokens').valueOffset, bytes: le.u64(n) }]));
    add(`tokens array count ${what}`, (b, out) =>
      patched(b, out, [{ offset: kvOf(b, 'tokenizer.ggml.tokens').countOffset!, bytes: le.u64(n) }]));
    add(`scores array count ${what}`, (b, out) =>
      patched(b, out, [{ offset: kvOf(b, 'tokenizer.ggml.scores').countOffset!, bytes: le.u64(n) }]));
    add(`first tensor name length ${what}`, (b, out) => patched(b, out, [{ offset: b.layout.tensors[0]!.start, bytes: le.u64(n) }]));
  }
  add('key length past end of file', (b, out) =>
    patched(b, out, [{ offset: b.layout.kvs[0]!.start, bytes: le.u64(BigInt(b.layout.size)) }]));
  add('scores array count 2^61 (bytes overflow)', (b, out) =>
    patched(b, out, [{ offset: kvOf(b, 'tokenizer.ggml.scores').countOffset!, bytes: le.u64(1n << 61n) }]));
  add('tokens array count +1', (b, out) =>
    patched(b, out, [{ offset: kvOf(b, 'tokenizer.ggml.tokens').countOffset!, bytes: le.u64(kvOf(b, 'tokenizer.ggml.tokens').count! + 1n) }]));
  add('empty key', (b, out) => rebuilt(b, out, { kvs: (kvs) => [rawKvBytes('', U32, le.u32(1)), ...kvs] }));

  // ---- value types --------------------------------------------------------------------------------
  for (const t of [13, 255, 0xffffffff]) {
    add(`unknown value type ${t}`, (b, out) => patched(b, out, [{ offset: kvOf(b, 'general.name').typeOffset, bytes: le.u32(t) }]));
    add(`unknown array item type ${t}`, (b, out) =>
      patched(b, out, [{ offset: kvOf(b, 'tokenizer.ggml.scores').itemTypeOffset!, bytes: le.u32(t) }]));
  }
  add('nested array', (b, out) =>
    rebuilt(b, out, {
      kvs: (kvs) => [
        ...kvs,
        rawKv({ key: 'test.nested', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.ARRAY, values: [{ itemType: GgufValueType.INT32, values: [1, 2, 3] }] } }),
      ],
    }));
  add('nested array of tokens', (b, out) =>
    rebuilt(b, out, {
      kvs: replaceKv('tokenizer.ggml.tokens', {
        key: 'tokenizer.ggml.tokens', type: GgufValueType.ARRAY,
        value: { itemType: GgufValueType.ARRAY, values: [{ itemType: GgufValueType.STRING, values: ['<unk>', '<s>', '</s>'] }] },
      }),
    }));
  add('duplicate key', (b, out) => rebuilt(b, out, { kvs: (kvs) => [...kvs, kvs.find((k) => k.key === 'llama.block_count')!] }));

  // ---- alignment ----------------------------------------------------------------------------------
  add('alignment 0', (b, out) => rebuilt(b, out, { kvs: (kvs) => [...kvs, rawKv({ key: 'general.alignment', type: U32, value: 0 })] }));
  add('alignment 48 (not a power of two)', (b, out) =>
    rebuilt(b, out, { kvs: (kvs) => [...kvs, rawKv({ key: 'general.alignment', type: U32, value: 48 })] }));
  add('alignment as a string', (b, out) =>
    rebuilt(b, out, { kvs: (kvs) => [...kvs, rawKv({ key: 'general.alignment', type: GgufValueType.STRING, value: '32' })] }));

  // ---- tensor infos -------------------------------------------------------------------------------
  const t0 = (b: CorruptionBase): TensorLayout => b.layout.tensors[0]!; // token_embd.weight
  const last = (b: CorruptionBase): TensorLayout => b.layout.tensors[b.layout.tensors.length - 1]!;
  const dataSize = (b: CorruptionBase): bigint => BigInt(b.layout.size - b.layout.dataStart);
  add('tensor offset past end of file', (b, out) => patched(b, out, [{ offset: last(b).offsetOffset, bytes: le.u64(dataSize(b)) }]));
  add('tensor offset 2^62', (b, out) => patched(b, out, [{ offset: last(b).offsetOffset, bytes: le.u64(1n << 62n) }]));
  add('tensor offset 2^64-32', (b, out) => patched(b, out, [{ offset: last(b).offsetOffset, bytes: le.u64((1n << 64n) - 32n) }]));
  add('tensor data runs past end of file', (b, out) =>
    patched(b, out, [{ offset: last(b).offsetOffset, bytes: le.u64(last(b).offset + 64n) }]));
  add('misaligned tensor offset', (b, out) => patched(b, out, [{ offset: b.layout.tensors[1]!.offsetOffset, bytes: le.u64(b.layout.tensors[1]!.offset + 1n) }]));
  add('overlapping tensors', (b, out) => patched(b, out, [{ offset: b.layout.tensors[1]!.offsetOffset, bytes: le.u64(0n) }]));
  add('duplicate tensor name', (b, out) =>
    rebuilt(b, out, { tensors: (ts) => ts.map((t, i) => (i === 1 ? { ...t, name: ts[2]!.name } : t)) }));
  add('tensor name of 64 bytes', (b, out) =>
    rebuilt(b, out, { tensors: (ts) => ts.map((t, i) => (i === 1 ? { ...t, name: `blk.0.${'x'.repeat(58)}` } : t)) }));
  add('n_dims 0', (b, out) => rebuilt(b, out, { tensors: (ts) => ts.map((t, i) => (i === 1 ? { ...t, shape: [] } : t)) }));
  add('n_dims 5', (b, out) => rebuilt(b, out, { tensors: (ts) => ts.map((t, i) => (i === 1 ? { ...t, shape: [...t.shape, 1n, 1n, 1n, 1n].slice(0, 5) } : t)) }));
  add('n_dims 2^32-1', (b, out) => patched(b, out, [{ offset: t0(b).nDimsOffset, bytes: le.u32(0xffffffff) }]));
  add('negative dimension', (b, out) => patched(b, out, [{ offset: t0(b).dimsOffset + 8, bytes: le.i64(-1n) }]));
  add('negative row length', (b, out) => patched(b, out, [{ offset: t0(b).dimsOffset, bytes: le.i64(-64n) }]));
  add('zero dimension', (b, out) => patched(b, out, [{ offset: t0(b).dimsOffset + 8, bytes: le.i64(0n) }]));
  add('zero row length of a norm', (b, out) =>
    patched(b, out, [{ offset: tensorOf(b, 'output_norm.weight').dimsOffset, bytes: le.i64(0n) }]));
  add('huge dimension', (b, out) => patched(b, out, [{ offset: t0(b).dimsOffset + 8, bytes: le.i64(1n << 40n) }]));
  add('element count overflow (2^32 x 2^32)', (b, out) =>
    patched(b, out, [{ offset: t0(b).dimsOffset, bytes: le.i64(1n << 32n) }, { offset: t0(b).dimsOffset + 8, bytes: le.i64(1n << 32n) }]));
  add('element count overflow (2^62 x 4)', (b, out) =>
    patched(b, out, [{ offset: t0(b).dimsOffset, bytes: le.i64(1n << 62n) }, { offset: t0(b).dimsOffset + 8, bytes: le.i64(4n) }]));
  add('byte size overflow (2^57 f16 rows of 64)', (b, out) =>
    patched(b, out, [{ offset: t0(b).dimsOffset + 8, bytes: le.i64(1n << 57n) }]));
  for (const t of [4, 31, 36, 43, 1000, -1]) {
    add(`ggml type ${t}`, (b, out) => patched(b, out, [{ offset: b.layout.tensors[1]!.typeOffset, bytes: le.i32(t) }]));
  }
  add('row length not a multiple of the block (q8_0 with 64 -> 48)', (b, out) =>
    rebuilt(b, out, { tensors: (ts) => ts.map((t, i) => (i === 0 ? { ...t, type: 8, shape: [48n, t.shape[1]!] } : t)) }));
  // valid ggml types of the same byte size that no kernel computes with (ggml would abort on them)
  add('matrix retyped f16 -> i16 (same size, no dot product)', (b, out) =>
    patched(b, out, [{ offset: tensorOf(b, 'blk.0.attn_q.weight').typeOffset, bytes: le.i32(25) }]), ['UNSUPPORTED', 'BAD_GGUF']);
  add('embedding table retyped f16 -> i16', (b, out) =>
    patched(b, out, [{ offset: tensorOf(b, 'token_embd.weight').typeOffset, bytes: le.i32(25) }]), ['UNSUPPORTED', 'BAD_GGUF']);
  add('norm retyped f32 -> i32 (same size)', (b, out) =>
    patched(b, out, [{ offset: tensorOf(b, 'blk.1.ffn_norm.weight').typeOffset, bytes: le.i32(26) }]));
  add('type changed to f32 (data too short)', (b, out) =>
    patched(b, out, [{ offset: last(b).typeOffset, bytes: le.i32(0) }]));

  // ---- model-level: shapes vs hyperparameters -------------------------------------------------------
  const regen = (extra: Partial<TinyLlamaOptions>) => async (b: CorruptionBase, out: string): Promise<string> => {
    await b.regenerate(out, extra);
    return out;
  };
  const e = CORRUPTION_BASE_OPTIONS.nEmbd!;
  const ff = CORRUPTION_BASE_OPTIONS.nFf!;
  add('attn_q of the wrong size', regen({ transformTensors: reshaped('blk.0.attn_q.weight', [e, e / 2]) }));
  add('attn_k of the wrong size', regen({ transformTensors: reshaped('blk.1.attn_k.weight', [e, e]) }));
  add('attn_output transposed-size', regen({ transformTensors: reshaped('blk.0.attn_output.weight', [e, e * 2]) }));
  add('ffn_down with n_ff and n_embd swapped', regen({ transformTensors: reshaped('blk.0.ffn_down.weight', [e, ff]) }));
  add('ffn_gate of the wrong width', regen({ transformTensors: reshaped('blk.1.ffn_gate.weight', [e, ff / 2]) }));
  add('token_embd with the wrong n_embd', regen({ transformTensors: reshaped('token_embd.weight', [e / 2, 32000]) }));
  add('token_embd with fewer rows than the vocabulary', regen({ transformTensors: reshaped('token_embd.weight', [e, 31999]) }));
  add('output with fewer rows than the vocabulary', regen({ transformTensors: reshaped('output.weight', [e, 1000]) }));
  add('norm of the wrong length', regen({ transformTensors: reshaped('blk.0.attn_norm.weight', [e / 2]) }));
  add('norm that is 2-D', regen({ transformTensors: reshaped('output_norm.weight', [e, 2]) }));
  add('attn_q that is 3-D', regen({ transformTensors: reshaped('blk.0.attn_q.weight', [e, e, 1 + 1]) }));

  // ---- model-level: missing tensors / keys ----------------------------------------------------------
  add('missing token_embd', regen({ transformTensors: withoutTensor((n) => n === 'token_embd.weight') }));
  add('missing blk.0.attn_q', regen({ transformTensors: withoutTensor((n) => n === 'blk.0.attn_q.weight') }));
  add('missing blk.1.ffn_down', regen({ transformTensors: withoutTensor((n) => n === 'blk.1.ffn_down.weight') }));
  add('missing output_norm', regen({ transformTensors: withoutTensor((n) => n === 'output_norm.weight') }));
  add('missing the last block', regen({ transformTensors: withoutTensor((n) => n.startsWith('blk.1.')) }));
  add('block_count larger than the blocks present', regen({ transformKv: withKv('llama.block_count', { key: 'llama.block_count', type: U32, value: 3 }) }));
  for (const key of [
    'general.architecture',
    'llama.embedding_length',
    'llama.block_count',
    'llama.attention.head_count',
    'llama.feed_forward_length',
    'llama.context_length',
    'llama.attention.layer_norm_rms_epsilon',
    'tokenizer.ggml.model',
    'tokenizer.ggml.tokens',
  ]) {
    add(`missing key ${key}`, regen({ transformKv: withoutKey(key) }));
  }

  // ---- model-level: wrong key types / values --------------------------------------------------------
  const wrongType = (key: string, kv: Omit<GgufKv, 'key'>): void => {
    add(`${key} as ${GgufValueType[kv.type]}${kv.type === GgufValueType.ARRAY ? ' of ' + GgufValueType[(kv.value as { itemType: number }).itemType] : ''}`,
      regen({ transformKv: withKv(key, { key, ...kv } as GgufKv) }));
  };
  wrongType('llama.embedding_length', { type: GgufValueType.STRING, value: '64' });
  wrongType('llama.embedding_length', { type: GgufValueType.FLOAT32, value: 64 });
  wrongType('llama.block_count', { type: GgufValueType.ARRAY, value: { itemType: U32, values: [2] } });
  wrongType('llama.attention.head_count', { type: GgufValueType.BOOL, value: true });
  wrongType('llama.attention.layer_norm_rms_epsilon', { type: GgufValueType.STRING, value: '1e-5' });
  wrongType('general.architecture', { type: U32, value: 1 });
  wrongType('tokenizer.ggml.tokens', { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.INT32, values: new Int32Array(32000) } });
  wrongType('tokenizer.ggml.tokens', { type: GgufValueType.STRING, value: '<unk>' });
  wrongType('tokenizer.ggml.scores', { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, values: ['0'] } });
  wrongType('tokenizer.ggml.model', { type: U32, value: 1 });

  const badValue = (name: string, key: string, kv: Omit<GgufKv, 'key'>, expect = BAD): void => {
    add(name, regen({ transformKv: withKv(key, { key, ...kv } as GgufKv) }), expect);
  };
  badValue('block_count 0', 'llama.block_count', { type: U32, value: 0 });
  badValue('head_count 0', 'llama.attention.head_count', { type: U32, value: 0 });
  badValue('head_count_kv 0', 'llama.attention.head_count_kv', { type: U32, value: 0 });
  badValue('embedding_length not a multiple of head_count', 'llama.attention.head_count', { type: U32, value: 3 });
  badValue('head_count not a multiple of head_count_kv', 'llama.attention.head_count_kv', { type: U32, value: 3 }, ['BAD_GGUF']);
  // (head_count doubled too, so that the head size still matches rope.dimension_count: only the tensors disagree)
  add('embedding_length disagreeing with the tensors', regen({
    transformKv: (kvs) => withKv('llama.attention.head_count', { key: 'llama.attention.head_count', type: U32, value: 4 })(
      withKv('llama.embedding_length', { key: 'llama.embedding_length', type: U32, value: 128 })(kvs)),
  }));
  badValue('feed_forward_length disagreeing with the tensors', 'llama.feed_forward_length', { type: U32, value: 256 });
  badValue('context_length 0', 'llama.context_length', { type: U32, value: 0 });
  badValue('rms epsilon NaN', 'llama.attention.layer_norm_rms_epsilon', { type: GgufValueType.FLOAT32, value: NaN });
  badValue('rms epsilon negative', 'llama.attention.layer_norm_rms_epsilon', { type: GgufValueType.FLOAT32, value: -1e-5 });
  badValue('rope freq_base 0', 'llama.rope.freq_base', { type: GgufValueType.FLOAT32, value: 0 });
  badValue('bos token id out of range', 'tokenizer.ggml.bos_token_id', { type: U32, value: 32000 });
  badValue('eos token id out of range', 'tokenizer.ggml.eos_token_id', { type: U32, value: 4000000 });
  badValue('token_type array shorter than tokens', 'tokenizer.ggml.token_type', {
    type: GgufValueType.ARRAY, value: { itemType: GgufValueType.INT32, values: new Int32Array(100).fill(1) },
  });
  badValue('scores array shorter than tokens', 'tokenizer.ggml.scores', {
    type: GgufValueType.ARRAY, value: { itemType: GgufValueType.FLOAT32, values: new Float32Array(100) },
  });
  badValue('empty vocabulary', 'tokenizer.ggml.tokens', { type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, values: [] } });
  badValue('architecture gpt2', 'general.architecture', { type: GgufValueType.STRING, value: 'gpt2' }, ['UNSUPPORTED', 'BAD_GGUF']);
  badValue('tokenizer model gpt2', 'tokenizer.ggml.model', { type: GgufValueType.STRING, value: 'gpt2' }, ['UNSUPPORTED', 'BAD_GGUF']);

  return cases;
}

/** Removes a case's output (file or directory). */
export async function removeCaseOutput(p: string): Promise<void> {
  await rm(p, { recursive: true, force: true });
}
