// DICOM mutation: walk the file meta group and the top-level data set (explicit or implicit VR, little or
// big endian; encapsulated pixel data item by item) to find element headers, then mutate lengths, VRs, tags,
// pixel attributes (Rows, Columns, Bits*, ...), the transfer syntax, fragments, or raw bytes in the first
// few KB. A deflate-bomb variant wraps a data set with a long zero element in the deflated transfer syntax.
import { deflateRawSync, constants as zc } from 'node:zlib';
import { interesting, mutateBytes, writeUInt } from './bytes.mjs';

const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT', 'SV', 'UV']);
const PIXEL_TAGS = [0x00280002, 0x00280004, 0x00280006, 0x00280008, 0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280102, 0x00280103, 0x00281050, 0x00281051, 0x00281052, 0x00281053, 0x00283010, 0x7fe00010, 0x00185101];
const SYNTAXES = ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.1.99', '1.2.840.10008.1.2.2', '1.2.840.10008.1.2.4.50',
  '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70', '1.2.840.10008.1.2.4.80', '1.2.840.10008.1.2.4.81',
  '1.2.840.10008.1.2.4.90', '1.2.840.10008.1.2.4.91', '1.2.840.10008.1.2.5', '1.2.840.10008.1.2.4.100', '1.2.3'];

/** element headers: {at, tag, vr, lenOff, lenWidth, valueOff, length, le}; items of encapsulated pixel data too */
export function walkDicom(buf) {
  const els = [];
  let ts = '';
  const walk = (pos, le, explicit, stopAtPixels, metaOnly) => {
    const u16 = (p) => (le ? buf.readUInt16LE(p) : buf.readUInt16BE(p));
    const u32 = (p) => (le ? buf.readUInt32LE(p) : buf.readUInt32BE(p));
    while (pos + 8 <= buf.length) {
      const tag = ((u16(pos) << 16) | u16(pos + 2)) >>> 0;
      if (metaOnly && tag >>> 16 !== 0x0002) return pos;
      let vr = '';
      let lenOff;
      let lenWidth;
      if (explicit) {
        vr = buf.toString('latin1', pos + 4, pos + 6);
        if (LONG_VRS.has(vr)) [lenOff, lenWidth] = [pos + 8, 4];
        else [lenOff, lenWidth] = [pos + 6, 2];
      } else [lenOff, lenWidth] = [pos + 4, 4];
      if (lenOff + lenWidth > buf.length) return pos;
      const length = lenWidth === 2 ? u16(lenOff) : u32(lenOff);
      const valueOff = lenOff + lenWidth;
      els.push({ at: pos, tag, vr, lenOff, lenWidth, valueOff, length, le });
      if (tag === 0x00020010) ts = buf.toString('latin1', valueOff, valueOff + length).replace(/[\0 ]+$/, '');
      if (tag === 0x7fe00010 && length === 0xffffffff) {
        let p = valueOff;
        while (p + 8 <= buf.length) {
          const itemLen = buf.readUInt32LE(p + 4);
          els.push({ at: p, tag: (buf.readUInt16LE(p) << 16 | buf.readUInt16LE(p + 2)) >>> 0, vr: 'item', lenOff: p + 4, lenWidth: 4, valueOff: p + 8, length: itemLen, le: true });
          if (buf.readUInt32LE(p) === 0xe0ddfffe) break;
          p += 8 + itemLen;
        }
        return p;
      }
      if (length === 0xffffffff) return pos; // a sequence of undefined length: stop here, the headers so far suffice
      pos = valueOff + length;
      if (stopAtPixels && tag === 0x7fe00010) return pos;
    }
    return pos;
  };
  const dataStart = walk(132, true, true, false, true);
  const deflated = ts === '1.2.840.10008.1.2.1.99';
  if (!deflated) walk(dataStart, ts !== '1.2.840.10008.1.2.2', ts !== '1.2.840.10008.1.2', true, false);
  return { els, ts, dataStart, deflated };
}

function setUidElement(buf, d, uid) {
  const el = d.els.find((e) => e.tag === 0x00020010);
  if (!el) return buf;
  const v = Buffer.from(uid.length % 2 ? uid + '\0' : uid, 'latin1');
  const len = Buffer.alloc(2);
  len.writeUInt16LE(v.length);
  return Buffer.concat([buf.subarray(0, el.lenOff), len, v, buf.subarray(el.valueOff + el.length)]);
}

let zeroPiece;
/** a DICOM whose data set, deflated, inflates to about `total` bytes (mostly one long zero OB element) */
function deflateBomb(buf, d, rng) {
  if (d.deflated) return mutateBytes(buf, rng);
  const out = setUidElement(buf, d, '1.2.840.10008.1.2.1.99');
  const d2 = walkDicom(out); // offsets after the UID change; its data set is no longer walked (deflated)
  const data = out.subarray(d2.dataStart);
  const mib = rng.pick([64, 512, 1000, 1023, 1024, 1100]);
  zeroPiece ??= deflateRawSync(Buffer.alloc(1 << 20), { finishFlush: zc.Z_SYNC_FLUSH });
  const head = Buffer.alloc(12);
  head.writeUInt32LE(0x00100009, 0); // (0009,0010), a private element before everything else
  head.write('OB', 4, 'latin1');
  head.writeUInt32LE((mib << 20) >>> 0, 8);
  const pieces = [deflateRawSync(head, { finishFlush: zc.Z_SYNC_FLUSH }), ...Array(mib).fill(zeroPiece), deflateRawSync(data)];
  return Buffer.concat([out.subarray(0, d2.dataStart), ...pieces]);
}

export function mutateDicom(buf, rng) {
  const d = walkDicom(buf);
  const top = d.els.filter((e) => e.vr !== 'item');
  const items = d.els.filter((e) => e.vr === 'item');
  const op = rng.weighted({ length: 5, vr: 2, value: 5, tag: 2, ts: 2, fragment: items.length ? 3 : 0, bytes: 4, truncate: 1, pixels: 3, bomb: 0.3 });
  rng.note(`${op} (${d.ts})`);
  const out = Buffer.from(buf);
  switch (op) {
    case 'length': {
      for (let i = rng.count(3, 1.5); i > 0; i--) {
        const e = rng.pick(d.els);
        writeUInt(out, e.lenOff, e.lenWidth, rng.chance(0.2) ? BigInt(e.length + rng.pick([1, -1, 2, 8])) : interesting(e.lenWidth, rng, buf.length), !e.le);
      }
      return out;
    }
    case 'vr': {
      const e = rng.pick(top.filter((x) => x.vr));
      if (e) out.write(rng.pick(['SQ', 'UN', 'OB', 'OW', 'US', 'UL', 'SS', 'DS', 'IS', 'CS', 'UT', 'XX', '\0\0', 'ob']), e.at + 4, 'latin1');
      return out;
    }
    case 'value': {
      const pix = top.filter((e) => PIXEL_TAGS.includes(e.tag) && e.tag !== 0x7fe00010);
      for (let i = rng.count(3, 1.5); i > 0 && pix.length; i--) {
        const e = rng.pick(pix);
        if (e.length === 2) writeUInt(out, e.valueOff, 2, interesting(2, rng, 0), !e.le);
        else if (e.length > 0 && e.valueOff + e.length <= out.length) {
          const s = rng.pick(['-1', '0', '99999999', '1e400', 'NaN', '3\\4', ' ', 'MONOCHROME1', 'RGB', 'PALETTE COLOR', 'YBR_FULL', 'LL', '2147483648']);
          out.write(s.padEnd(e.length, ' ').slice(0, e.length), e.valueOff, 'latin1');
        }
      }
      return out;
    }
    case 'tag': {
      const e = rng.pick(top);
      const t = rng.pick(PIXEL_TAGS);
      writeUInt(out, e.at, 2, BigInt(t >>> 16), !e.le);
      writeUInt(out, e.at + 2, 2, BigInt(t & 0xffff), !e.le);
      return out;
    }
    case 'ts': return setUidElement(buf, d, rng.pick(SYNTAXES));
    case 'fragment': {
      for (let i = rng.count(3, 1.5); i > 0; i--) {
        const e = rng.pick(items);
        const r = rng.int(3);
        if (r === 0) writeUInt(out, e.lenOff, 4, rng.chance(0.3) ? BigInt(e.length + rng.pick([1, -1, 2])) : interesting(4, rng, buf.length));
        else if (r === 1) writeUInt(out, e.at, 4, BigInt(rng.pick([0xe0ddfffe, 0xe00dfffe, 0, 0xe000fffe])));
        else if (e.length > 0) {
          // the start of a fragment: the codestream's own header (SOF / SIZ / RLE segment table)
          const end = Math.min(out.length, e.valueOff + Math.min(e.length, 512));
          const m = mutateBytes(out.subarray(e.valueOff, end), rng, { count: rng.count(4, 2) });
          return Buffer.concat([out.subarray(0, e.valueOff), m, out.subarray(end)]);
        }
      }
      return out;
    }
    case 'bytes': return mutateBytes(buf, rng, { lo: 128, hi: Math.min(buf.length, 4096) });
    case 'truncate': return buf.subarray(0, rng.int(buf.length));
    case 'pixels': {
      const px = d.els.find((e) => e.tag === 0x7fe00010);
      const lo = px ? px.valueOff : d.dataStart;
      return mutateBytes(buf, rng, { lo, count: rng.count(12, 3) });
    }
    default: return deflateBomb(buf, d, rng);
  }
}
