// Image mutation (PNG, JPEG, GIF, TIFF, WebP): header-aware changes of the size, depth and layout fields
// (PNG chunks get their CRC recomputed so libpng reads on), segment and chunk lengths, raw byte mutations,
// and decompression bombs: a PNG just under the pixel limit whose IDAT is a few hundred KB of zeros.
import { crc32, deflateRawSync, constants as zc } from 'node:zlib';
import { interesting, mutateBytes, writeUInt } from './bytes.mjs';

function pngChunks(buf) {
  const chunks = [];
  let p = 8;
  while (p + 12 <= buf.length) {
    const len = buf.readUInt32BE(p);
    if (p + 12 + len > buf.length) break;
    chunks.push({ at: p, len, type: buf.toString('latin1', p + 4, p + 8) });
    p += 12 + len;
  }
  return chunks;
}

function fixCrc(out, c) {
  if (c.at + 12 + c.len <= out.length) out.writeUInt32BE(crc32(out.subarray(c.at + 4, c.at + 8 + c.len)), c.at + 8 + c.len);
}

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

function mutatePng(buf, rng) {
  const chunks = pngChunks(buf);
  const out = Buffer.from(buf);
  const ihdr = chunks.find((c) => c.type === 'IHDR');
  const op = rng.weighted({ ihdr: 4, idat: 2, chunkLen: 2, extra: 2 });
  if (op === 'ihdr' && ihdr) {
    const d = ihdr.at + 8;
    for (let i = rng.count(3, 1.5); i > 0; i--) {
      const f = rng.int(7);
      if (f < 2) writeUInt(out, d + 4 * f, 4, rng.pick([0n, 1n, 31n, 32n, 65535n, 0x7fffffffn, 0x80000000n, 0xffffffffn, 7071n, 50000n, BigInt(rng.int(10000))]), true);
      else out[d + 6 + f] = rng.pick([0, 1, 2, 3, 4, 6, 8, 16, 7, 255]);
    }
    fixCrc(out, ihdr);
    return out;
  }
  if (op === 'idat') {
    const idats = chunks.filter((c) => c.type === 'IDAT');
    const c = rng.pick(idats.length ? idats : chunks);
    const m = mutateBytes(out.subarray(c.at + 8, c.at + 8 + c.len), rng, { count: rng.count(6, 2) });
    const rebuilt = Buffer.concat([out.subarray(0, c.at), chunk(c.type, m), out.subarray(c.at + 12 + c.len)]);
    return rebuilt;
  }
  if (op === 'chunkLen') {
    const c = rng.pick(chunks);
    writeUInt(out, c.at, 4, interesting(4, rng, buf.length), true);
    return out;
  }
  // an extra chunk: a huge text, an APNG control chunk, a second IHDR or PLTE, a sub-image
  const at = ihdr ? ihdr.at + 12 + ihdr.len : 8;
  const extra = rng.pick([
    () => chunk('tEXt', Buffer.concat([Buffer.from('Comment\0'), Buffer.alloc(rng.pick([1000, 1 << 20, 8 << 20]), 0x41)])),
    () => chunk('zTXt', Buffer.concat([Buffer.from('Comment\0\0'), deflateRawSync(Buffer.alloc(16 << 20))])),
    () => chunk('acTL', Buffer.from([0, 0, 0, rng.pick([2, 255]), 0, 0, 0, 0])),
    () => chunk('IHDR', out.subarray(ihdr.at + 8, ihdr.at + 8 + 13)),
    () => chunk('PLTE', rng.bytes(rng.pick([0, 3, 768, 771]))),
    () => chunk('eXIf', Buffer.concat([Buffer.from('MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01', 'latin1'), Buffer.from([0, rng.pick([0, 1, 6, 8, 9, 255]), 0, 0])])),
    () => chunk('iCCP', Buffer.concat([Buffer.from('icc\0\0'), rng.bytes(200)])),
  ])();
  return Buffer.concat([out.subarray(0, at), extra, out.subarray(at)]);
}

function mutateJpeg(buf, rng) {
  const out = Buffer.from(buf);
  const segs = [];
  for (let p = 2; p + 4 <= buf.length && buf[p] === 0xff; ) {
    const m = buf[p + 1];
    const len = buf.readUInt16BE(p + 2);
    segs.push({ at: p, m, len });
    if (m === 0xda) break;
    p += 2 + len;
  }
  const sof = segs.find((s) => s.m >= 0xc0 && s.m <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(s.m));
  const op = rng.weighted({ sof: sof ? 4 : 0, segLen: 2, marker: 1, scan: 3 });
  if (op === 'sof') {
    for (let i = rng.count(3, 1.5); i > 0; i--) {
      const f = rng.int(5);
      if (f === 0) out[sof.at + 4] = rng.pick([8, 12, 16, 0, 255]);
      else if (f < 3) writeUInt(out, sof.at + 5 + 2 * (f - 1), 2, rng.pick([0n, 1n, 32n, 0x7fffn, 0xffffn, 7000n, BigInt(rng.int(20000))]), true);
      else if (f === 3) out[sof.at + 9] = rng.pick([0, 1, 3, 4, 255]);
      else out[sof.at + 11 + 3 * rng.int(Math.max(1, out[sof.at + 9]))] = rng.pick([0x11, 0x22, 0x44, 0x00, 0xff, 0x41]);
    }
    return out;
  }
  if (op === 'segLen' && segs.length) {
    const s = rng.pick(segs);
    writeUInt(out, s.at + 2, 2, rng.pick([0n, 1n, 2n, 0xffffn, BigInt(s.len + 1), BigInt(s.len - 1)]), true);
    return out;
  }
  if (op === 'marker' && segs.length) {
    out[rng.pick(segs).at + 1] = rng.pick([0xc0, 0xc2, 0xc3, 0xc9, 0xcb, 0xd8, 0xd9, 0xda, 0xdd, 0xe1, 0xfe, 0x00]);
    return out;
  }
  const sos = segs.find((s) => s.m === 0xda);
  return mutateBytes(buf, rng, { lo: sos ? sos.at : 2, count: rng.count(10, 3) });
}

function mutateTiff(buf, rng) {
  const out = Buffer.from(buf);
  const be = buf.toString('latin1', 0, 2) === 'MM';
  const u16 = (p) => (be ? buf.readUInt16BE(p) : buf.readUInt16LE(p));
  const u32 = (p) => (be ? buf.readUInt32BE(p) : buf.readUInt32LE(p));
  const ifd = u32(4);
  if (ifd + 2 > buf.length) return mutateBytes(buf, rng);
  const n = u16(ifd);
  const entries = [];
  for (let i = 0; i < n && ifd + 2 + 12 * (i + 1) <= buf.length; i++) entries.push(ifd + 2 + 12 * i);
  for (let i = rng.count(4, 2); i > 0 && entries.length; i--) {
    const e = rng.pick(entries);
    const f = rng.int(4);
    if (f === 0) writeUInt(out, e, 2, BigInt(rng.pick([256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 317, 322, 323, 324, 325, 338, 339, 330])), be);
    else if (f === 1) writeUInt(out, e + 2, 2, BigInt(rng.pick([1, 2, 3, 4, 5, 7, 11, 12, 13, 16, 0, 99])), be);
    else writeUInt(out, e + (f === 2 ? 4 : 8), 4, interesting(4, rng, buf.length), be);
  }
  if (u16(ifd) && rng.chance(0.1)) writeUInt(out, ifd, 2, interesting(2, rng, 0), be);
  return out;
}

/** a PNG of w x h zeros whose IDAT is a sync-flushed deflate of zero runs (small file, large image) */
let zeroMiB;
export function pngBomb(w, h, colorType = 6, depth = 16) {
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colorType];
  const raw = BigInt(h) * (1n + BigInt(w) * BigInt(channels * depth / 8));
  zeroMiB ??= deflateRawSync(Buffer.alloc(1 << 20), { finishFlush: zc.Z_SYNC_FLUSH });
  // past 2 GiB of samples the header alone must refuse it: a truncated stream is enough
  const full = raw > 1n << 31n ? 16 : Number(raw / (1n << 20n));
  const rest = Number(raw % (1n << 20n));
  const adler = (Number(raw % 65521n) * 65536 + 1) >>> 0; // adler32 of zeros: a = 1, b = n mod 65521
  const tail = Buffer.alloc(4);
  tail.writeUInt32BE(adler);
  const z = Buffer.concat([Buffer.from([0x78, 0x01]), ...Array(full).fill(zeroMiB), deflateRawSync(Buffer.alloc(rest)), tail]);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = depth;
  ihdr[9] = colorType;
  return Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), chunk('IHDR', ihdr), chunk('IDAT', z), chunk('IEND', Buffer.alloc(0))]);
}

export function imageKind(buf) {
  if (buf.readUInt32BE(0) === 0x89504e47) return 'png';
  if (buf[0] === 0xff && buf[1] === 0xd8) return 'jpeg';
  if (buf.toString('latin1', 0, 3) === 'GIF') return 'gif';
  if (buf.toString('latin1', 0, 2) === 'II' || buf.toString('latin1', 0, 2) === 'MM') return 'tiff';
  if (buf.toString('latin1', 8, 12) === 'WEBP') return 'webp';
  return 'other';
}

export function mutateImage(buf, rng) {
  const r = rng.float();
  if (r < 0.03) {
    const [w, h] = rng.pick([[7071, 7071], [7000, 7000], [50000, 1000], [32, 1562500], [100000, 100000], [4000, 4000]]);
    rng.note(`png bomb ${w}x${h}`);
    return pngBomb(w, h, rng.pick([0, 2, 4, 6]), rng.pick([8, 16]));
  }
  rng.note(r < 0.35 ? 'bytes' : imageKind(buf));
  if (r < 0.35) return mutateBytes(buf, rng, { hi: rng.chance(0.5) ? Math.min(buf.length, 1024) : buf.length });
  const kind = imageKind(buf);
  if (kind === 'png') return mutatePng(buf, rng);
  if (kind === 'jpeg') return mutateJpeg(buf, rng);
  if (kind === 'tiff') return mutateTiff(buf, rng);
  if (kind === 'gif') {
    const out = Buffer.from(buf);
    // logical screen size, then any image descriptor's geometry and the LZW minimum code size
    const at = rng.chance(0.4) ? 6 + 2 * rng.int(2) : Math.max(0, buf.indexOf(0x2c, 13 + rng.int(64)) + 1 + 2 * rng.int(4));
    writeUInt(out, at, 2, interesting(2, rng, 0));
    if (rng.chance(0.3)) out[Math.min(out.length - 1, buf.indexOf(0x2c, 13) + 10)] = rng.pick([0, 1, 12, 13, 255]);
    return out;
  }
  // WebP: the RIFF size, the chunk sizes and the VP8 / VP8L / VP8X size fields sit in the first 40 bytes
  return mutateBytes(buf, rng, { hi: Math.min(buf.length, rng.chance(0.7) ? 40 : buf.length), count: rng.count(4, 2) });
}
