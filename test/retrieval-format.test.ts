// A truncated, corrupt or hostile index file is a typed error (BAD_INDEX), never a crash, a hang, a huge
// allocation or a wrong result; the layout is the one docs/retrieval.md documents.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RetrievalIndex } from '../lib/retrieval/index-file.js';
import { HEADER_BYTES, INDEX_LIMITS, encodeHeader, vectorsOffsetFor } from '../lib/retrieval/format.js';
import { writeTestIndex } from './helpers/retrieval-fixtures.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lr-format-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rows = Array.from({ length: 5 }, (_, i) => Array.from({ length: 6 }, (_, j) => Math.sin(i * 7 + j)));
const good = path.join(dir, 'good.lrindex');
writeTestIndex(good, 'model-x', ['a', 'b', 'c', 'a', 'd'], ['image', 'image', 'image', 'text', 'text'], rows);
const bytes = readFileSync(good);

let n = 0;
function withBytes(b: Uint8Array): string {
  const f = path.join(dir, `case-${n++}.lrindex`);
  writeFileSync(f, b);
  return f;
}
const badIndex = expect.objectContaining({ code: 'BAD_INDEX' });

/** a file with this metadata and vectors whose header and both sha256s are right (a forger's file) */
function forged(meta: unknown, dim: number, count: number, vectors = new Float32Array(dim * count)): Buffer {
  const m = Buffer.from(JSON.stringify(meta));
  const off = vectorsOffsetFor(m.length);
  const v = Buffer.from(vectors.buffer);
  const h = encodeHeader({
    dim, count, metaOffset: HEADER_BYTES, metaBytes: m.length, vectorsOffset: off, fileBytes: off + v.length,
    metaSha256: createHash('sha256').update(m).digest(), vectorsSha256: createHash('sha256').update(v).digest(),
  });
  return Buffer.concat([h, m, Buffer.alloc(off - HEADER_BYTES - m.length), v]);
}

describe('the layout', () => {
  it('reads back what was written: header fields, ids, kinds, vectors (float32, 64-byte aligned)', () => {
    expect(bytes.toString('latin1', 0, 8), 'magic').toBe('LRADINDX');
    expect(bytes.readUInt32LE(8), 'version').toBe(1);
    expect(bytes.readUInt32LE(12), 'dim').toBe(6);
    expect(Number(bytes.readBigUInt64LE(16)), 'count').toBe(5);
    const off = Number(bytes.readBigUInt64LE(48));
    expect(off % 64, 'vector block aligned to 64').toBe(0);
    expect(bytes.length, 'file = vectors offset + count x dim x 4').toBe(off + 5 * 6 * 4);
    const meta = JSON.parse(bytes.subarray(128, 128 + Number(bytes.readBigUInt64LE(40))).toString());
    expect(meta, 'metadata JSON').toEqual({ modelId: 'model-x', ids: ['a', 'b', 'c', 'a', 'd'], kinds: 'iiitt' });
    const mapped = new Float32Array(bytes.buffer.slice(bytes.byteOffset + off, bytes.byteOffset + bytes.length));
    expect(Array.from(mapped.subarray(6, 12)), 'row 1 read straight from the block').toEqual(Array.from(Float32Array.from(rows[1]!)));
    const index = RetrievalIndex.open(good);
    expect([index.dim, index.count, index.modelId, index.kind(3), index.counts()]).toEqual([6, 5, 'model-x', 'text', { image: 3, text: 2 }]);
    expect(Array.from(index.vector(4)), 'vector(4)').toEqual(Array.from(Float32Array.from(rows[4]!)));
    index.close();
  });

  it('an empty index (no entries) is valid', () => {
    const f = path.join(dir, 'empty.lrindex');
    writeTestIndex(f, 'm', [], [], []);
    const index = RetrievalIndex.open(f);
    expect(index.count).toBe(0);
    index.close();
  });
});

describe('damaged and hostile files: BAD_INDEX', () => {
  it('every truncation, and bytes appended', () => {
    for (let cut = 0; cut < bytes.length; cut += cut < 140 ? 1 : 17) {
      expect(() => RetrievalIndex.open(withBytes(bytes.subarray(0, cut))), `cut at ${cut}`).toThrow(badIndex);
    }
    expect(() => RetrievalIndex.open(withBytes(Buffer.concat([bytes, Buffer.alloc(4)]))), 'appended').toThrow(/longer than written/);
  });

  it('a flipped bit in the metadata or the vectors (the sha256s); verify: false skips the vectors only', () => {
    const off = Number(bytes.readBigUInt64LE(48));
    for (const at of [130, 150, off, off + 37, bytes.length - 1]) {
      const b = Buffer.from(bytes);
      b[at]! ^= 0x10;
      expect(() => RetrievalIndex.open(withBytes(b)), `bit flipped at ${at}`).toThrow(badIndex);
    }
    const b = Buffer.from(bytes);
    b[off + 3]! ^= 0x10;
    expect(() => RetrievalIndex.open(withBytes(b), { verify: false }), 'not verified').not.toThrow();
  });

  it('header fields out of range or inconsistent, without allocating what they claim', () => {
    const edits: Array<[string, (b: Buffer) => void, RegExp]> = [
      ['magic', (b) => b.write('GGUF', 0), /magic/],
      ['version 2', (b) => b.writeUInt32LE(2, 8), /version 2/],
      ['dim 0', (b) => b.writeUInt32LE(0, 12), /dim 0/],
      ['dim huge', (b) => b.writeUInt32LE(0xffffffff, 12), /dim 4294967295/],
      ['count 2^63', (b) => b.writeBigUInt64LE(1n << 63n, 16), /count/],
      ['count 1e9', (b) => b.writeBigUInt64LE(BigInt(INDEX_LIMITS.maxCount), 16), /header says|bytes/],
      ['count + 1', (b) => b.writeBigUInt64LE(6n, 16), /header says/],
      ['dtype', (b) => b.writeUInt32LE(2, 24), /dtype/],
      ['metaBytes 2^40', (b) => b.writeBigUInt64LE(1n << 40n, 40), /metadata of/],
      ['vectorsOffset', (b) => b.writeBigUInt64LE(b.readBigUInt64LE(48) + 64n, 48), /vectorsOffset/],
      ['fileBytes 2^62', (b) => b.writeBigUInt64LE(1n << 62n, 56), /fileBytes is/],
      ['fileBytes + 4', (b) => b.writeBigUInt64LE(b.readBigUInt64LE(56) + 4n, 56), /header says/],
    ];
    for (const [what, edit, msg] of edits) {
      const b = Buffer.from(bytes);
      edit(b);
      expect(() => RetrievalIndex.open(withBytes(b)), what).toThrow(badIndex);
      expect(() => RetrievalIndex.open(withBytes(b)), what).toThrow(msg);
    }
  });

  it('forged metadata with right sha256s: wrong counts, bad ids and kinds, duplicates, not JSON', () => {
    const cases: Array<[string, unknown]> = [
      ['not an object', [1, 2]],
      ['no modelId', { ids: ['a', 'b'], kinds: 'it' }],
      ['ids short', { modelId: 'm', ids: ['a'], kinds: 'it' }],
      ['kinds short', { modelId: 'm', ids: ['a', 'b'], kinds: 'i' }],
      ['bad kind', { modelId: 'm', ids: ['a', 'b'], kinds: 'ix' }],
      ['id not a string', { modelId: 'm', ids: ['a', 3], kinds: 'it' }],
      ['empty id', { modelId: 'm', ids: ['a', ''], kinds: 'it' }],
      ['id too long', { modelId: 'm', ids: ['a', 'x'.repeat(INDEX_LIMITS.idBytes + 1)], kinds: 'it' }],
      ['duplicate (id, kind)', { modelId: 'm', ids: ['a', 'a'], kinds: 'tt' }],
    ];
    for (const [what, meta] of cases) expect(() => RetrievalIndex.open(withBytes(forged(meta, 3, 2))), what).toThrow(badIndex);
    expect(RetrievalIndex.open(withBytes(forged({ modelId: 'm', ids: ['a', 'a'], kinds: 'it' }, 3, 2))).count, 'one id as image and text is fine').toBe(2);
    const notJson = forged({ modelId: 'm', ids: ['a', 'b'], kinds: 'it' }, 3, 2);
    notJson[HEADER_BYTES] = 0x7b + 1; // '|' instead of '{', sha256 recomputed below
    const m = notJson.subarray(HEADER_BYTES, HEADER_BYTES + Number(notJson.readBigUInt64LE(40)));
    createHash('sha256').update(m).digest().copy(notJson, 64);
    expect(() => RetrievalIndex.open(withBytes(notJson)), 'metadata not JSON').toThrow(/not JSON/);
  });

  it('not a file, a missing file', () => {
    const sub = path.join(dir, 'a-folder');
    mkdirSync(sub);
    expect(() => RetrievalIndex.open(sub)).toThrow(expect.objectContaining({ code: expect.stringMatching(/BAD_INDEX|IO/) }));
    expect(() => RetrievalIndex.open(path.join(dir, 'missing'))).toThrow(expect.objectContaining({ code: 'IO' }));
  });
});
