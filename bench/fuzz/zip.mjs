// Zip archives for the checkpoint target: read a seed torch checkpoint's entries, write them back as a
// VALID zip (CRCs and sizes recomputed, STORED or DEFLATED) so that mutations of data.pkl or a storage reach
// the unpickler instead of stopping at a CRC check, and mutate the archive's own records (sizes, offsets,
// methods, flags, zip64 fields) when the zip reader is the thing under test.
import { crc32, deflateRawSync, inflateRawSync } from 'node:zlib';
import { interesting, writeUInt } from './bytes.mjs';

/** entries of a zip file (central directory order): {name, data (uncompressed), method} */
export function readZip(buf) {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 0xffff); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error('seed is not a zip');
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const entries = [];
  for (let i = 0; i < count; i++) {
    const method = buf.readUInt16LE(p + 10);
    const csize = buf.readUInt32LE(p + 20);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + nameLen);
    const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const raw = buf.subarray(start, start + csize);
    entries.push({ name, method, data: method === 8 ? inflateRawSync(raw) : Buffer.from(raw) });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

/**
 * Writes entries as a zip. method per entry: 0 STORED, 8 DEFLATE (default: `method`). torch aligns STORED
 * data to 64 bytes with an extra field; we do too, so the archive looks like torch's.
 * Returns {buf, fields}: fields lists the offsets of every header field, for structure-aware mutation.
 */
export function writeZip(entries, { method = 0 } = {}) {
  const parts = [];
  const central = [];
  const fields = [];
  let off = 0;
  const push = (b) => {
    parts.push(b);
    off += b.length;
  };
  for (const e of entries) {
    const m = e.method ?? method;
    const name = Buffer.from(e.name, 'utf8');
    const body = m === 8 ? deflateRawSync(e.data) : e.data;
    const crc = crc32(e.data);
    const localOff = off;
    // pad the local extra field so the data starts on a 64-byte boundary (torch's layout)
    const base = off + 30 + name.length;
    const pad = m === 0 ? (64 - ((base + 4) % 64)) % 64 : 0;
    const extra = pad || m === 0 ? Buffer.alloc(4 + pad) : Buffer.alloc(0);
    if (extra.length) {
      extra.writeUInt16LE(0xfb50, 0);
      extra.writeUInt16LE(pad, 2);
    }
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(0, 6);
    lh.writeUInt16LE(m, 8);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(body.length, 18);
    lh.writeUInt32LE(e.data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    lh.writeUInt16LE(extra.length, 28);
    for (const [o, w] of [[4, 2], [6, 2], [8, 2], [14, 4], [18, 4], [22, 4], [26, 2], [28, 2]]) fields.push({ off: off + o, width: w });
    push(lh);
    push(name);
    push(extra);
    push(body);
    central.push({ name, m, crc, csize: body.length, usize: e.data.length, localOff });
  }
  const cdStart = off;
  for (const c of central) {
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt16LE(0, 8);
    ch.writeUInt16LE(c.m, 10);
    ch.writeUInt32LE(c.crc, 16);
    ch.writeUInt32LE(c.csize, 20);
    ch.writeUInt32LE(c.usize, 24);
    ch.writeUInt16LE(c.name.length, 28);
    ch.writeUInt32LE(c.localOff, 42);
    for (const [o, w] of [[8, 2], [10, 2], [16, 4], [20, 4], [24, 4], [28, 2], [30, 2], [32, 2], [34, 2], [42, 4]]) fields.push({ off: off + o, width: w });
    push(ch);
    push(c.name);
  }
  const cdSize = off - cdStart;
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(central.length, 8);
  eocd.writeUInt16LE(central.length, 10);
  eocd.writeUInt32LE(cdSize, 12);
  eocd.writeUInt32LE(cdStart, 16);
  for (const [o, w] of [[4, 2], [6, 2], [8, 2], [10, 2], [12, 4], [16, 4], [20, 2]]) fields.push({ off: off + o, width: w });
  push(eocd);
  return { buf: Buffer.concat(parts), fields, cdStart, cdSize };
}

/** a zip64 end-of-central-directory record + locator with hostile values, inserted before the EOCD */
function withZip64(z, rng) {
  const { buf, cdStart, cdSize } = z;
  const eocdAt = buf.length - 22;
  const rec = Buffer.alloc(56);
  rec.writeUInt32LE(0x06064b50, 0);
  writeUInt(rec, 4, 8, 44n);
  rec.writeUInt16LE(45, 12);
  rec.writeUInt16LE(45, 14);
  const n = buf.readUInt16LE(eocdAt + 10);
  writeUInt(rec, 24, 8, BigInt(n));
  writeUInt(rec, 32, 8, BigInt(n));
  writeUInt(rec, 40, 8, BigInt(cdSize));
  writeUInt(rec, 48, 8, BigInt(cdStart));
  const fieldAt = rng.pick([4, 24, 32, 40, 48, 16, 20]);
  writeUInt(rec, fieldAt, fieldAt >= 16 && fieldAt < 24 ? 4 : 8, interesting(8, rng, buf.length));
  const loc = Buffer.alloc(20);
  loc.writeUInt32LE(0x07064b50, 0);
  writeUInt(loc, 8, 8, rng.chance(0.7) ? BigInt(eocdAt) : interesting(8, rng, buf.length));
  loc.writeUInt32LE(rng.chance(0.8) ? 1 : rng.int(5), 16);
  const eocd = Buffer.from(buf.subarray(eocdAt));
  // the 0xffff / 0xffffffff markers that send a reader to the zip64 record
  if (rng.chance(0.5)) eocd.writeUInt16LE(0xffff, 10);
  if (rng.chance(0.5)) eocd.writeUInt32LE(0xffffffff, 16);
  if (rng.chance(0.5)) eocd.writeUInt32LE(0xffffffff, 12);
  return Buffer.concat([buf.subarray(0, eocdAt), rec, loc, eocd]);
}

/** mutates the records of a freshly written zip: header fields, a zip64 EOCD, duplicated entries, a comment */
export function mutateZipStructure(z, rng) {
  const op = rng.weighted({ fields: 6, zip64: 2, comment: 1, dupCentral: 1 });
  if (op === 'zip64') return withZip64(z, rng);
  if (op === 'comment') {
    const out = Buffer.from(z.buf);
    const len = rng.pick([0xffff, 1, 100, 22]);
    out.writeUInt16LE(len, out.length - 2);
    return Buffer.concat([out, rng.chance(0.5) ? Buffer.alloc(Math.min(len, rng.int(200))) : Buffer.from('PK\x05\x06' + '\0'.repeat(18), 'latin1')]);
  }
  if (op === 'dupCentral') {
    // claim more entries than the directory holds, or point the directory at the local headers
    const out = Buffer.from(z.buf);
    const eocd = out.length - 22;
    if (rng.chance(0.5)) out.writeUInt16LE(rng.pick([0xffff, out.readUInt16LE(eocd + 10) * 2, 1000]), eocd + 10);
    else out.writeUInt32LE(rng.pick([0, z.cdStart + 1, z.cdStart - 46]), eocd + 16);
    return out;
  }
  const out = Buffer.from(z.buf);
  const k = rng.count(4, 1.5);
  for (let i = 0; i < k; i++) {
    const f = rng.pick(z.fields);
    writeUInt(out, f.off, f.width, interesting(f.width, rng, out.length));
  }
  return out;
}
