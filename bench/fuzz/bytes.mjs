// Format-blind byte mutators: bit flips, special bytes, "interesting" little-endian integers, truncation,
// chunk duplication / deletion / insertion. Structure-aware mutators (zip, pickle, GGUF, ...) call these on
// the regions they pick.

/** interesting values for a field of `width` bytes (BigInt), given the file length */
export function interesting(width, rng, fileLen = 0) {
  const bits = BigInt(width * 8);
  const mask = (1n << bits) - 1n;
  const len = BigInt(fileLen);
  const v = rng.pick([
    0n, 1n, 2n, 3n, 7n, 8n, 16n, 31n, 32n, 63n, 64n, 127n, 128n, 255n, 256n, 0x7fffn, 0x8000n, 0xffffn, 0x10000n,
    0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 1n << 40n, (1n << 53n) + 1n, (1n << 63n) - 1n, 1n << 63n,
    -1n, -2n, -128n, -0x8000n, -0x80000000n,
    len, len + 1n, len + 8n, len * 2n, len - 1n, len / 2n,
  ]);
  return v & mask;
}

/** writes a BigInt into buf at off as `width` bytes (little-endian unless be) */
export function writeUInt(buf, off, width, value, be = false) {
  let v = BigInt.asUintN(width * 8, BigInt(value));
  for (let i = 0; i < width; i++) {
    buf[be ? off + width - 1 - i : off + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

export function readUInt(buf, off, width, be = false) {
  let v = 0n;
  for (let i = 0; i < width; i++) v = (v << 8n) | BigInt(buf[be ? off + i : off + width - 1 - i]);
  return v;
}

/** an offset in [lo, hi), biased toward lo (the headers at a file's start matter most) */
function offsetIn(rng, lo, hi) {
  const n = Math.max(1, hi - lo);
  return lo + (rng.chance(0.5) ? Math.floor(rng.float() ** 3 * n) : rng.int(n));
}

/**
 * One random byte-level mutation of buf within [lo, hi) (default: everywhere). Returns a new Buffer
 * (insertion, deletion and truncation change the length).
 */
export function mutateOnce(buf, rng, lo = 0, hi = buf.length) {
  hi = Math.min(hi, buf.length);
  if (hi <= lo) return Buffer.concat([buf, rng.bytes(rng.range(1, 16))]);
  const op = rng.weighted({ flip: 4, special: 3, field: 5, truncate: 1, dup: 1, del: 1, insert: 1, repeat: 1, swap: 1 });
  const out = Buffer.from(buf);
  const at = offsetIn(rng, lo, hi);
  switch (op) {
    case 'flip':
      out[at] ^= 1 << rng.int(8);
      return out;
    case 'special':
      out[at] = rng.pick([0x00, 0xff, 0x7f, 0x80, 0x01, 0x20, 0x0a, 0x22]);
      return out;
    case 'field': {
      const width = rng.pick([2, 4, 4, 8, 8]);
      const off = Math.min(rng.chance(0.5) ? at & ~(width - 1) : at, out.length - width);
      if (off < 0) return out;
      writeUInt(out, off, width, interesting(width, rng, buf.length), rng.chance(0.1));
      return out;
    }
    case 'truncate':
      return out.subarray(0, rng.chance(0.5) ? at : rng.int(buf.length + 1));
    case 'dup': {
      const n = rng.range(1, Math.min(4096, hi - at));
      const copies = rng.count(64, 3);
      return Buffer.concat([out.subarray(0, at + n), ...Array(copies).fill(out.subarray(at, at + n)), out.subarray(at + n)]);
    }
    case 'del': {
      const n = rng.range(1, Math.min(4096, hi - at));
      return Buffer.concat([out.subarray(0, at), out.subarray(at + n)]);
    }
    case 'insert':
      return Buffer.concat([out.subarray(0, at), rng.bytes(rng.range(1, 64)), out.subarray(at)]);
    case 'repeat': {
      const n = rng.pick([16, 256, 4096, 65536]);
      return Buffer.concat([out.subarray(0, at), Buffer.alloc(n, rng.pick([0x00, 0xff, 0x28, 0x4e, 0x7b, 0x5b, 0x22, 0x2c])), out.subarray(at)]);
    }
    case 'swap': {
      const n = rng.range(1, 32);
      const b = offsetIn(rng, lo, hi);
      if (at + n > out.length || b + n > out.length) return out;
      const t = Buffer.from(out.subarray(at, at + n));
      out.copy(out, at, b, b + n);
      t.copy(out, b);
      return out;
    }
  }
  return out;
}

/** `count` mutations (1..max by default) in [lo, hi) */
export function mutateBytes(buf, rng, { lo = 0, hi = buf.length, count = rng.count(8, 2) } = {}) {
  let out = buf;
  for (let i = 0; i < count; i++) out = mutateOnce(out, rng, lo, Math.min(hi, out.length));
  return out;
}
