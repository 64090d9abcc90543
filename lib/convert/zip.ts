// A minimal read-only ZIP reader for PyTorch's zip checkpoints (torch.save's default format since 1.6).
//
//   const zip = await ZipReader.open('pytorch_model.bin');
//   const pkl = await zip.readAll('archive/data.pkl');
//   const part = await zip.read('archive/data/0', byteStart, byteLength);
//   await zip.close();
//
// What it reads: the end-of-central-directory record (and its zip64 locator/record: checkpoints exceed
// 4 GB), the central directory (with zip64 extra fields), each entry's local header (to find where its data
// starts). Entries are read by file handle at an offset: nothing larger than the requested range is loaded.
// STORED entries (what torch writes) are read in place; DEFLATE entries up to 256 MiB can be read whole
// (inflated in memory; the last entry read in part stays inflated, so the many tensors viewing one
// compressed storage inflate it once, not once each); any other method, encryption, or a multi-disk
// archive is refused. A malformed archive is a LlavaRadError 'BAD_CHECKPOINT', never an out-of-range read
// or a hang.

import type { FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import { LlavaRadError } from '../errors.js';
import { openForRead } from './tensor.js';

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;

const EOCD_SIZE = 22;
const EOCD64_LOCATOR_SIZE = 20;
const EOCD64_MIN_SIZE = 56;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const MAX_COMMENT = 0xffff;

/** the largest central directory we load (torch checkpoints have a few hundred small records) */
const MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024;
/** the largest DEFLATE entry we inflate in memory */
const MAX_INFLATE = 256 * 1024 * 1024;

export const ZIP_METHOD_STORED = 0;
export const ZIP_METHOD_DEFLATE = 8;

export interface ZipEntry {
  /** the name as stored (torch: "<archive>/data.pkl", "<archive>/data/0", ...) */
  readonly name: string;
  /** 0 STORED, 8 DEFLATE, ... */
  readonly method: number;
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly uncompressedSize: number;
  readonly localHeaderOffset: number;
}

/** The positional-read interface the reader needs (a FileHandle fits; tests may wrap one to count reads). */
export interface RandomAccessSource {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close?(): Promise<void>;
}

function bad(label: string, msg: string): LlavaRadError {
  return new LlavaRadError('BAD_CHECKPOINT', `${label}: not a valid zip archive: ${msg}`);
}

/** reads exactly `length` bytes at `position` (short reads are retried; EOF is an error) */
export async function readExactly(
  src: RandomAccessSource, position: number, length: number, label: string, into?: Buffer,
): Promise<Buffer> {
  const buf = into ?? Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    let r: { bytesRead: number };
    try {
      r = await src.read(buf, done, length - done, position + done);
    } catch (e) {
      throw new LlavaRadError('IO', `${label}: read failed at offset ${position + done}: ${(e as Error).message}`, { cause: e });
    }
    if (r.bytesRead <= 0) {
      throw new LlavaRadError('BAD_CHECKPOINT', `${label}: unexpected end of file at offset ${position + done} (wanted ${length} bytes at ${position})`);
    }
    done += r.bytesRead;
  }
  return buf;
}

function u64(dv: DataView, off: number, label: string, what: string): number {
  const v = dv.getBigUint64(off, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(label, `${what} ${v} is out of range`);
  return Number(v);
}

const CRC_TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (the zip / PNG polynomial) of `data` */
export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export class ZipReader {
  /** bytes read from the file so far (headers included) - lets tests check that reads stay local */
  bytesRead = 0;
  private readonly byName = new Map<string, ZipEntry>();
  private readonly list: ZipEntry[] = [];
  private readonly dataOffsets = new Map<string, number>();
  /** the last DEFLATE entry read in part, inflated (a storage that several tensors view) */
  private inflated: { name: string; data: Promise<Buffer> } | undefined;
  private closed = false;

  private constructor(
    private readonly src: RandomAccessSource,
    /** file size in bytes */
    readonly size: number,
    /** the path (or a label) used in error messages */
    readonly label: string,
    private readonly ownsSource: boolean,
  ) {}

  /** Opens a zip file and reads its central directory. */
  static async open(path: string): Promise<ZipReader> {
    const fh = await openForRead(path);
    try {
      const { size } = await fh.stat();
      const z = new ZipReader(fh, size, path, true);
      await z.readDirectory();
      return z;
    } catch (e) {
      await fh.close().catch(() => {});
      throw e;
    }
  }

  /** Reads the directory of a zip held by any positional-read source of `size` bytes (not closed by close()). */
  static async fromSource(src: RandomAccessSource, size: number, label: string): Promise<ZipReader> {
    const z = new ZipReader(src, size, label, false);
    await z.readDirectory();
    return z;
  }

  private async readAt(position: number, length: number, into?: Buffer): Promise<Buffer> {
    if (this.closed) throw new LlavaRadError('DISPOSED', `${this.label}: the zip reader is closed`);
    if (position < 0 || length < 0 || position + length > this.size) {
      throw bad(this.label, `range [${position}, ${position + length}) is outside the file (${this.size} bytes)`);
    }
    const b = await readExactly(this.src, position, length, this.label, into);
    this.bytesRead += length;
    return b;
  }

  private async readDirectory(): Promise<void> {
    const L = this.label;
    if (this.size < EOCD_SIZE) throw bad(L, `file of ${this.size} bytes is too small`);
    const tailLen = Math.min(this.size, EOCD_SIZE + MAX_COMMENT + EOCD64_LOCATOR_SIZE);
    const tailStart = this.size - tailLen;
    const tail = await this.readAt(tailStart, tailLen);
    const tdv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    // the last EOCD signature whose comment fits exactly in the rest of the file
    let eocd = -1;
    for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
      if (tdv.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + tdv.getUint16(i + 20, true) === tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw bad(L, 'no end-of-central-directory record');
    const diskNo = tdv.getUint16(eocd + 4, true);
    const cdDisk = tdv.getUint16(eocd + 6, true);
    let entriesOnDisk = tdv.getUint16(eocd + 8, true);
    let totalEntries = tdv.getUint16(eocd + 10, true);
    let cdSize = tdv.getUint32(eocd + 12, true);
    let cdOffset = tdv.getUint32(eocd + 16, true);
    const eocdPos = tailStart + eocd;
    let cdEnd = eocdPos; // the central directory must end before this
    const needs64 = totalEntries === 0xffff || entriesOnDisk === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff;
    const loc = eocd - EOCD64_LOCATOR_SIZE;
    if (loc >= 0 && tdv.getUint32(loc, true) === SIG_EOCD64_LOCATOR) {
      const eocd64Pos = u64(tdv, loc + 8, L, 'zip64 end-of-central-directory offset');
      if (tdv.getUint32(loc + 16, true) > 1) throw bad(L, 'multi-disk archives are not supported');
      if (eocd64Pos + EOCD64_MIN_SIZE > tailStart + loc) throw bad(L, 'zip64 end-of-central-directory offset out of range');
      const r = await this.readAt(eocd64Pos, EOCD64_MIN_SIZE);
      const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
      if (dv.getUint32(0, true) !== SIG_EOCD64) throw bad(L, 'bad zip64 end-of-central-directory signature');
      if (dv.getUint32(16, true) !== 0 || dv.getUint32(20, true) !== 0) throw bad(L, 'multi-disk archives are not supported');
      entriesOnDisk = u64(dv, 24, L, 'entry count');
      totalEntries = u64(dv, 32, L, 'entry count');
      cdSize = u64(dv, 40, L, 'central directory size');
      cdOffset = u64(dv, 48, L, 'central directory offset');
      cdEnd = eocd64Pos;
    } else if (needs64) {
      throw bad(L, 'zip64 values without a zip64 end-of-central-directory locator');
    } else if (diskNo !== 0 || cdDisk !== 0) {
      throw bad(L, 'multi-disk archives are not supported');
    }
    if (entriesOnDisk !== totalEntries) throw bad(L, 'multi-disk archives are not supported');
    if (cdOffset + cdSize > cdEnd) throw bad(L, `central directory [${cdOffset}, +${cdSize}) overlaps its end record at ${cdEnd}`);
    if (cdSize > MAX_CENTRAL_DIRECTORY) throw bad(L, `central directory of ${cdSize} bytes is too large`);
    if (totalEntries * CENTRAL_SIZE > cdSize) throw bad(L, `${totalEntries} entries cannot fit in a central directory of ${cdSize} bytes`);
    const cd = await this.readAt(cdOffset, cdSize);
    const dv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
    let p = 0;
    for (let i = 0; i < totalEntries; i++) {
      if (p + CENTRAL_SIZE > cdSize) throw bad(L, `central directory entry ${i} is truncated`);
      if (dv.getUint32(p, true) !== SIG_CENTRAL) throw bad(L, `bad central directory signature for entry ${i}`);
      const flags = dv.getUint16(p + 8, true);
      const method = dv.getUint16(p + 10, true);
      const crc32 = dv.getUint32(p + 16, true);
      let compressedSize = dv.getUint32(p + 20, true);
      let uncompressedSize = dv.getUint32(p + 24, true);
      const nameLen = dv.getUint16(p + 28, true);
      const extraLen = dv.getUint16(p + 30, true);
      const commentLen = dv.getUint16(p + 32, true);
      const diskStart = dv.getUint16(p + 34, true);
      let localHeaderOffset = dv.getUint32(p + 42, true);
      const varLen = nameLen + extraLen + commentLen;
      if (p + CENTRAL_SIZE + varLen > cdSize) throw bad(L, `central directory entry ${i} is truncated`);
      const nameBytes = cd.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLen);
      const name = flags & 0x800 ? nameBytes.toString('utf8') : nameBytes.toString('latin1');
      // zip64 extended information: only the fields that overflowed, in this order
      let e = p + CENTRAL_SIZE + nameLen;
      const extraEnd = e + extraLen;
      let diskStart32 = diskStart;
      while (e + 4 <= extraEnd) {
        const id = dv.getUint16(e, true);
        const len = dv.getUint16(e + 2, true);
        if (e + 4 + len > extraEnd) throw bad(L, `entry "${name}": extra field overruns its record`);
        if (id === 0x0001) {
          let q = e + 4;
          const take = (what: string): number => {
            if (q + 8 > e + 4 + len) throw bad(L, `entry "${name}": zip64 extra field is too short for the ${what}`);
            const v = u64(dv, q, L, what);
            q += 8;
            return v;
          };
          if (uncompressedSize === 0xffffffff) uncompressedSize = take('uncompressed size');
          if (compressedSize === 0xffffffff) compressedSize = take('compressed size');
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = take('local header offset');
          if (diskStart === 0xffff) {
            if (q + 4 > e + 4 + len) throw bad(L, `entry "${name}": zip64 extra field is too short for the disk number`);
            diskStart32 = dv.getUint32(q, true);
          }
        }
        e += 4 + len;
      }
      if (diskStart32 !== 0) throw bad(L, `entry "${name}" is on another disk`);
      if (flags & 0x1) throw new LlavaRadError('UNSUPPORTED', `${L}: entry "${name}" is encrypted`);
      if (localHeaderOffset + LOCAL_SIZE + compressedSize > cdOffset) {
        throw bad(L, `entry "${name}" (offset ${localHeaderOffset}, ${compressedSize} bytes) overlaps the central directory`);
      }
      if (method === ZIP_METHOD_STORED && compressedSize !== uncompressedSize) {
        throw bad(L, `stored entry "${name}" has compressed size ${compressedSize} != size ${uncompressedSize}`);
      }
      if (this.byName.has(name)) throw bad(L, `duplicate entry "${name}"`);
      const entry: ZipEntry = { name, method, flags, crc32, compressedSize, uncompressedSize, localHeaderOffset };
      this.byName.set(name, entry);
      this.list.push(entry);
      p += CENTRAL_SIZE + varLen;
    }
  }

  /** all entries in central-directory order */
  entries(): readonly ZipEntry[] {
    return this.list;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** the entry called `name`; BAD_CHECKPOINT when there is none */
  entry(name: string): ZipEntry {
    const e = this.byName.get(name);
    if (!e) throw new LlavaRadError('BAD_CHECKPOINT', `${this.label}: the archive has no entry "${name}"`);
    return e;
  }

  /** absolute file offset of the first byte of an entry's (stored) data, from its local header */
  async dataOffset(entryOrName: ZipEntry | string): Promise<number> {
    const entry = typeof entryOrName === 'string' ? this.entry(entryOrName) : entryOrName;
    const cached = this.dataOffsets.get(entry.name);
    if (cached !== undefined) return cached;
    const L = this.label;
    const h = await this.readAt(entry.localHeaderOffset, LOCAL_SIZE);
    if (h.readUInt32LE(0) !== SIG_LOCAL) throw bad(L, `entry "${entry.name}": bad local header signature`);
    const off = entry.localHeaderOffset + LOCAL_SIZE + h.readUInt16LE(26) + h.readUInt16LE(28);
    if (off + entry.compressedSize > this.size) {
      throw bad(L, `entry "${entry.name}": data [${off}, +${entry.compressedSize}) runs past the end of the file`);
    }
    this.dataOffsets.set(entry.name, off);
    return off;
  }

  /**
   * Reads `length` bytes of an entry's uncompressed data starting at `start` (default: all of it).
   * STORED entries are read in place; a DEFLATE entry is inflated whole (up to 256 MiB) and sliced.
   */
  async read(entryOrName: ZipEntry | string, start = 0, length?: number): Promise<Buffer> {
    const entry = typeof entryOrName === 'string' ? this.entry(entryOrName) : entryOrName;
    const len = length ?? entry.uncompressedSize - start;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(len) || start < 0 || len < 0 || start + len > entry.uncompressedSize) {
      throw new LlavaRadError('BAD_CHECKPOINT',
        `${this.label}: range [${start}, +${len}) is outside entry "${entry.name}" (${entry.uncompressedSize} bytes)`);
    }
    const off = await this.dataOffset(entry);
    if (entry.method === ZIP_METHOD_STORED) return this.readAt(off + start, len);
    if (entry.method === ZIP_METHOD_DEFLATE) {
      if (entry.uncompressedSize > MAX_INFLATE) {
        throw new LlavaRadError('UNSUPPORTED', `${this.label}: compressed entry "${entry.name}" is too large (${entry.uncompressedSize} bytes); re-save the checkpoint uncompressed`);
      }
      const whole = start === 0 && len === entry.uncompressedSize;
      if (this.inflated?.name === entry.name) {
        // a copy: what read() returns is the caller's to keep or change
        return Buffer.from((await this.inflated.data).subarray(start, start + len));
      }
      if (whole) return this.inflate(entry, off); // read once: not worth keeping
      const cached = { name: entry.name, data: this.inflate(entry, off) };
      this.inflated = cached;
      cached.data.catch(() => {
        if (this.inflated === cached) this.inflated = undefined;
      });
      return Buffer.from((await cached.data).subarray(start, start + len));
    }
    throw new LlavaRadError('UNSUPPORTED', `${this.label}: entry "${entry.name}" uses compression method ${entry.method} (only stored and deflate are supported)`);
  }

  private async inflate(entry: ZipEntry, off: number): Promise<Buffer> {
    const raw = await this.readAt(off, entry.compressedSize);
    let out: Buffer;
    try {
      out = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (e) {
      throw bad(this.label, `entry "${entry.name}" does not inflate: ${(e as Error).message}`);
    }
    if (out.length !== entry.uncompressedSize) {
      throw bad(this.label, `entry "${entry.name}" inflates to ${out.length} bytes, expected ${entry.uncompressedSize}`);
    }
    return out;
  }

  /**
   * Reads a whole entry, refusing entries larger than `maxBytes`, and checks its CRC-32 (ranged reads of
   * big tensor storages are not checked: that would mean reading them whole).
   */
  async readAll(entryOrName: ZipEntry | string, maxBytes = 256 * 1024 * 1024): Promise<Buffer> {
    const entry = typeof entryOrName === 'string' ? this.entry(entryOrName) : entryOrName;
    if (entry.uncompressedSize > maxBytes) {
      throw new LlavaRadError('BAD_CHECKPOINT', `${this.label}: entry "${entry.name}" is ${entry.uncompressedSize} bytes (limit ${maxBytes})`);
    }
    const data = await this.read(entry);
    const crc = crc32(data);
    if (crc !== entry.crc32) {
      throw bad(this.label, `entry "${entry.name}" fails its CRC-32 check (0x${crc.toString(16)} != 0x${entry.crc32.toString(16)})`);
    }
    return data;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.inflated = undefined;
    if (this.ownsSource) await this.src.close?.();
  }
}
