// Builders for hostile PyTorch checkpoints: pickle opcodes written into Buffers, and a minimal torch zip
// (data.pkl plus storages, each STORED or DEFLATE-compressed) written in memory. Used by
// test/hostile-pickle.test.ts; everything a test feeds the readers is built here, none of it is a fixture.

import { deflateRawSync } from 'node:zlib';
import { crc32 } from '../../lib/convert/zip.js';

/** opcodes by name (the pickle protocol's one-byte codes) */
export const OP = {
  MARK: 0x28, STOP: 0x2e, POP: 0x30, DUP: 0x32, NONE: 0x4e, BININT: 0x4a, BININT1: 0x4b, LONG1: 0x8a, LONG4: 0x8b,
  INT: 0x49, LONG: 0x4c, STRING: 0x53, UNICODE: 0x56, BINUNICODE: 0x58, SHORT_BINUNICODE: 0x8c, BINBYTES: 0x42,
  EMPTY_TUPLE: 0x29, TUPLE1: 0x85, TUPLE2: 0x86, TUPLE3: 0x87, TUPLE: 0x74, EMPTY_LIST: 0x5d, LIST: 0x6c,
  EMPTY_DICT: 0x7d, APPEND: 0x61, APPENDS: 0x65, SETITEM: 0x73, SETITEMS: 0x75, BINGET: 0x68, LONG_BINGET: 0x6a,
  BINPUT: 0x71, LONG_BINPUT: 0x72, MEMOIZE: 0x94, GLOBAL: 0x63, REDUCE: 0x52, BINPERSID: 0x51, NEWFALSE: 0x89,
} as const;

/** bytes from numbers (single bytes) and latin1 strings */
export function raw(...parts: Array<number | string | Buffer>): Buffer {
  return Buffer.concat(parts.map((x) => (typeof x === 'number' ? Buffer.from([x]) : typeof x === 'string' ? Buffer.from(x, 'latin1') : x)));
}

/** PROTO v */
export const proto = (v = 2): Buffer => raw(0x80, v);

/** BINUNICODE s */
export function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const h = Buffer.alloc(5);
  h[0] = OP.BINUNICODE;
  h.writeUInt32LE(b.length, 1);
  return Buffer.concat([h, b]);
}

/** BININT n */
export function int(n: number): Buffer {
  const h = Buffer.alloc(5);
  h[0] = OP.BININT;
  h.writeInt32LE(n, 1);
  return h;
}

/** an opcode with a 4-byte little-endian argument (LONG4 length, LONG_BINPUT/LONG_BINGET index ...) */
export function op4(op: number, n: number): Buffer {
  const h = Buffer.alloc(5);
  h[0] = op;
  h.writeUInt32LE(n >>> 0, 1);
  return h;
}

/** GLOBAL module name (protocol 0 text) */
export const global = (module: string, name: string): Buffer => raw(OP.GLOBAL, `${module}\n${name}\n`);

/** MARK items... TUPLE */
export const tuple = (...items: Buffer[]): Buffer => Buffer.concat([raw(OP.MARK), ...items, raw(OP.TUPLE)]);

/** `unit` repeated `count` times, in one allocation (for bombs of millions of opcodes) */
export function repeat(unit: Buffer | number, count: number): Buffer {
  const u = typeof unit === 'number' ? Buffer.from([unit]) : unit;
  if (u.length === 1) return Buffer.alloc(count, u[0]!);
  const out = Buffer.allocUnsafe(u.length * count);
  for (let i = 0; i < count; i++) u.copy(out, i * u.length);
  return out;
}

/** a torch persistent id for storage `key` (BINPERSID consumes it): ('storage', torch.<type>, key, 'cpu', numel) */
export const storagePid = (key: string, storageType: string, numel: number): Buffer =>
  Buffer.concat([tuple(str('storage'), global('torch', storageType), str(key), str('cpu'), int(numel)), raw(OP.BINPERSID)]);

/** torch._utils._rebuild_tensor_v2(<storage>, offset, (shape), (stride), False, OrderedDict()) */
export function tensor(storage: Buffer, offset: number, shape: number[], stride: number[]): Buffer {
  return Buffer.concat([
    global('torch._utils', '_rebuild_tensor_v2'),
    tuple(storage, int(offset), tuple(...shape.map(int)), tuple(...stride.map(int)), raw(OP.NEWFALSE),
      global('collections', 'OrderedDict'), raw(OP.EMPTY_TUPLE, OP.REDUCE)),
    raw(OP.REDUCE),
  ]);
}

/** collections.OrderedDict() filled with name -> pickled value (SETITEMS) */
export function orderedDict(items: Array<[string, Buffer]>): Buffer {
  return Buffer.concat([
    global('collections', 'OrderedDict'), raw(OP.EMPTY_TUPLE, OP.REDUCE, OP.MARK),
    ...items.flatMap(([k, v]) => [str(k), v]), raw(OP.SETITEMS),
  ]);
}

export interface ZipFile {
  name: string;
  data: Buffer;
  /** DEFLATE-compress the entry (default: STORED, as torch writes) */
  deflate?: boolean;
}

/**
 * A zip header of `size` bytes: its signature, then the fields local and central headers share (method,
 * CRC-32, sizes, name length) from byte `at` (8 in a local header, 10 in a central one).
 */
function zipHeader(size: number, signature: number, at: number, f: { method: number; crc: number; stored: number; size: number; name: number }): Buffer {
  const h = Buffer.alloc(size);
  h.writeUInt32LE(signature, 0);
  h.writeUInt16LE(20, at - 4); // version needed to extract (a central header puts "made by" before it)
  h.writeUInt16LE(f.method, at);
  h.writeUInt32LE(f.crc, at + 6);
  h.writeUInt32LE(f.stored, at + 10);
  h.writeUInt32LE(f.size, at + 14);
  h.writeUInt16LE(f.name, at + 18);
  return h;
}

/** A minimal zip archive (no zip64; entries under 4 GiB) with correct CRC-32s and sizes. */
export function zip(files: readonly ZipFile[]): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let pos = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const body = f.deflate ? deflateRawSync(f.data, { level: 9 }) : f.data;
    const fields = { method: f.deflate ? 8 : 0, crc: crc32(f.data), stored: body.length, size: f.data.length, name: name.length };
    const ch = zipHeader(46, 0x02014b50, 10, fields);
    ch.writeUInt16LE(20, 4); // version made by
    ch.writeUInt32LE(pos, 42); // where the local header is
    central.push(ch, name);
    locals.push(zipHeader(30, 0x04034b50, 8, fields), name, body);
    pos += 30 + name.length + body.length;
  }
  const cd = Buffer.concat(central);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(files.length, 8);
  eocd.writeUInt16LE(files.length, 10);
  eocd.writeUInt32LE(cd.length, 12);
  eocd.writeUInt32LE(pos, 16);
  return Buffer.concat([...locals, cd, eocd]);
}

/**
 * A torch zip checkpoint `<archive>/data.pkl` (+ `<archive>/data/<key>` storages), the pickle DEFLATE-
 * compressed by default (the hostile adapter_model.bin of issue #20: a small file whose pickle inflates big).
 */
export function torchZip(pickle: Buffer, storages: Record<string, Buffer> = {}, options: { deflatePickle?: boolean; deflateStorages?: boolean } = {}): Buffer {
  return zip([
    { name: 'archive/data.pkl', data: pickle, deflate: options.deflatePickle ?? true },
    ...Object.entries(storages).map(([k, data]) => ({ name: `archive/data/${k}`, data, deflate: options.deflateStorages ?? false })),
  ]);
}
