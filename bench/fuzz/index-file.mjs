// Retrieval index mutation (the layout: lib/retrieval/format.ts). Most mutations rewrite the file so that it
// stays self-consistent (sizes, offsets and both sha256s made to match the mutated parts), so that the reader's
// deeper checks (the metadata's fields, the vectors' values, dim against count) are reached; the rest break the
// header or the bytes as they are.
import { createHash } from 'node:crypto';
import { interesting, mutateBytes, writeUInt } from './bytes.mjs';
import { jsonBytes, mutateJsonValue } from './json.mjs';

const HEADER = 128;
const ALIGN = 64;
/** header fields: offset, width, name */
const FIELDS = [
  [8, 4, 'version'], [12, 4, 'dim'], [16, 8, 'count'], [24, 4, 'dtype'], [28, 4, 'header bytes'],
  [32, 8, 'metaOffset'], [40, 8, 'metaBytes'], [48, 8, 'vectorsOffset'], [56, 8, 'fileBytes'],
];

function parse(buf) {
  const dim = buf.readUInt32LE(12);
  const count = Number(buf.readBigUInt64LE(16));
  const metaBytes = Number(buf.readBigUInt64LE(40));
  const vectorsOffset = Number(buf.readBigUInt64LE(48));
  return { dim, count, meta: buf.subarray(HEADER, HEADER + metaBytes), vectors: buf.subarray(vectorsOffset) };
}

/** a whole, consistent index of these parts (the sha256s of what is there) */
export function assemble(dim, count, meta, vectors) {
  const vectorsOffset = Math.ceil((HEADER + meta.length) / ALIGN) * ALIGN;
  const head = Buffer.alloc(HEADER);
  head.write('LRADINDX', 0, 'latin1');
  head.writeUInt32LE(1, 8);
  head.writeUInt32LE(dim, 12);
  head.writeBigUInt64LE(BigInt(count), 16);
  head.writeUInt32LE(1, 24);
  head.writeUInt32LE(HEADER, 28);
  head.writeBigUInt64LE(BigInt(HEADER), 32);
  head.writeBigUInt64LE(BigInt(meta.length), 40);
  head.writeBigUInt64LE(BigInt(vectorsOffset), 48);
  head.writeBigUInt64LE(BigInt(vectorsOffset + vectors.length), 56);
  createHash('sha256').update(meta).digest().copy(head, 64);
  createHash('sha256').update(vectors).digest().copy(head, 96);
  return Buffer.concat([head, meta, Buffer.alloc(vectorsOffset - HEADER - meta.length), vectors]);
}

const ODD_FLOATS = [NaN, Infinity, -Infinity, -0, 3.4e38, -3.4e38, 1e-45, 1e-40];

export function mutateIndex(buf, rng) {
  const p = parse(buf);
  const op = rng.weighted({ meta: 5, values: 3, reshape: 2, header: 4, bytes: 2, cut: 1, empty: 1 });
  rng.note(op);
  if (op === 'meta') {
    const honest = rng.chance(0.85);
    let meta = jsonBytes(mutateJsonValue(JSON.parse(p.meta.toString('utf8')), rng), rng);
    if (!honest) meta = Buffer.concat([meta, Buffer.from(' ')]);
    // the header keeps its count: the metadata's list lengths are what disagree
    const out = assemble(p.dim, p.count, meta, p.vectors);
    if (!honest) createHash('sha256').update(meta.subarray(0, -1)).digest().copy(out, 64);
    return out;
  }
  if (op === 'values') {
    const v = Buffer.from(p.vectors);
    for (let i = rng.count(64, 4); i > 0 && v.length >= 4; i--) v.writeFloatLE(rng.pick(ODD_FLOATS), 4 * rng.int(v.length / 4));
    return assemble(p.dim, p.count, p.meta, v);
  }
  if (op === 'reshape') {
    // another dim and count over the same floats (or a few more / fewer), the metadata left as it is
    const floats = p.vectors.length / 4;
    const dim = rng.pick([1, 2, p.dim / 2, p.dim * 2, floats, 16384, 16385, 0]);
    const count = rng.chance(0.7) && dim > 0 ? Math.floor(floats / dim) : rng.pick([0, p.count + 1, p.count - 1, 2 ** 31]);
    const bytes = Math.min(p.vectors.length, Math.max(0, dim * count * 4));
    rng.note(`dim ${dim} count ${count}`);
    return assemble(dim >>> 0, count, p.meta, p.vectors.subarray(0, bytes));
  }
  if (op === 'header') {
    const out = Buffer.from(buf);
    for (let i = rng.count(3, 1.5); i > 0; i--) {
      const [off, width, what] = rng.pick(FIELDS);
      rng.note(what);
      writeUInt(out, off, width, interesting(width, rng, buf.length));
    }
    return out;
  }
  if (op === 'bytes') return mutateBytes(buf, rng);
  if (op === 'cut') return rng.chance(0.5) ? buf.subarray(0, rng.int(buf.length)) : Buffer.concat([buf, rng.bytes(rng.pick([1, 4, 64, 4096]))]);
  // no entries at all, or one
  const n = rng.int(2);
  const meta = Buffer.from(JSON.stringify({ modelId: 'fuzz-empty', ids: n ? ['a'] : [], kinds: n ? 'i' : '' }));
  return assemble(p.dim, n, meta, p.vectors.subarray(0, n * p.dim * 4));
}
