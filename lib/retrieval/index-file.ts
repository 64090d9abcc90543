// Reading and writing a retrieval index file (the layout: format.ts, docs/retrieval.md).
//
// Memory: opening an index reads its header and metadata (ids, kinds) only. The vectors stay on disk and are
// read with positional reads through one buffer of about CHUNK_BYTES (forEachChunk), so a search holds the
// ids plus that buffer whatever the index's size; the operating system's page cache keeps a file that fits
// in memory there between searches. This is not mmap (Node has none): a process that searches often pays a
// copy from the page cache per pass, which is small next to the inner products (bench/retrieval.mjs).
//
// Writing goes through lib/replace-file.ts: a reader sees the old index or the new one, never a half-written one.

import { createHash } from 'node:crypto';
import { closeSync, readSync } from 'node:fs';
import { LlavaRadError } from '../errors.js';
import { openRegularFileSync } from '../regular-file.js';
import { writeFileAtomically } from '../replace-file.js';
import {
  FLOAT_BYTES, HEADER_BYTES, INDEX_LIMITS, decodeHeader, decodeMeta, encodeHeader, encodeMeta, vectorsOffsetFor,
  type EntryKind, type IndexHeader,
} from './format.js';

/** bytes of vectors read at a time */
export const CHUNK_BYTES = 4 << 20;

export interface OpenIndexOptions {
  /**
   * read every vector once to check the file's sha256 of them (default true): a flipped bit anywhere is
   * BAD_INDEX instead of a wrong result. The header, sizes and metadata are always checked.
   */
  verify?: boolean;
  /** bytes of vectors read at a time (default CHUNK_BYTES; at least one vector) */
  chunkBytes?: number;
}

function readFully(fd: number, buf: Buffer, position: number, file: string): void {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, position + off);
    if (n === 0) throw new LlavaRadError('BAD_INDEX', `${file}: ended after ${position + off} bytes, before its end in the header (truncated while open?)`);
    off += n;
  }
}

export class RetrievalIndex {
  readonly file: string;
  readonly dim: number;
  readonly count: number;
  readonly modelId: string;
  readonly ids: readonly string[];
  /** 0 image, 1 text, per entry */
  readonly kindCodes: Uint8Array;
  readonly #header: IndexHeader;
  readonly #chunkBytes: number;
  #fd: number;

  private constructor(file: string, fd: number, header: IndexHeader, modelId: string, ids: string[], kinds: Uint8Array, chunkBytes: number) {
    this.file = file;
    this.#fd = fd;
    this.#header = header;
    this.dim = header.dim;
    this.count = header.count;
    this.modelId = modelId;
    this.ids = ids;
    this.kindCodes = kinds;
    this.#chunkBytes = chunkBytes;
  }

  /** Opens an index. BAD_INDEX for anything that is not a whole, intact index; IO when it cannot be read. */
  static open(file: string, options: OpenIndexOptions = {}): RetrievalIndex {
    const chunkBytes = options.chunkBytes ?? CHUNK_BYTES;
    if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > 1 << 30) {
      throw new LlavaRadError('INVALID_ARGUMENT', `chunkBytes must be an integer from 1 to ${1 << 30}, got ${String(chunkBytes)}`);
    }
    const { fd, size } = openRegularFileSync(file, 'the index');
    try {
      const head = Buffer.alloc(HEADER_BYTES);
      if (size >= HEADER_BYTES) readFully(fd, head, 0, file);
      const header = decodeHeader(file, head, size);
      const metaBytes = Buffer.alloc(header.metaBytes);
      readFully(fd, metaBytes, header.metaOffset, file);
      if (!createHash('sha256').update(metaBytes).digest().equals(header.metaSha256)) {
        throw new LlavaRadError('BAD_INDEX', `${file}: its metadata (ids) does not match the header's sha256: the file is corrupt`);
      }
      const meta = decodeMeta(file, metaBytes, header.count);
      const index = new RetrievalIndex(file, fd, header, meta.modelId, meta.ids, meta.kinds, chunkBytes);
      if (options.verify !== false) index.#verifyVectors();
      return index;
    } catch (e) {
      closeSync(fd);
      if (e instanceof LlavaRadError) throw e;
      throw new LlavaRadError('IO', `cannot read the index ${file}: ${(e as Error).message}`);
    }
  }

  kind(i: number): EntryKind {
    return this.kindCodes[i] === 0 ? 'image' : 'text';
  }

  /** entries of each kind */
  counts(): { image: number; text: number } {
    let text = 0;
    for (const c of this.kindCodes) text += c;
    return { image: this.count - text, text };
  }

  /**
   * Calls fn(rows, first, n) for consecutive blocks of vectors: `rows` holds n x dim floats, the vectors of
   * entries first .. first+n-1. `rows` is reused: copy what must outlive the call.
   */
  forEachChunk(fn: (rows: Float32Array, first: number, n: number) => void): void {
    if (this.#fd < 0) throw new LlavaRadError('DISPOSED', `the index ${this.file} is closed`);
    const rowBytes = this.dim * FLOAT_BYTES;
    const perChunk = Math.max(1, Math.floor(this.#chunkBytes / rowBytes));
    // its own ArrayBuffer at offset 0: aligned for a Float32Array view
    const buf = Buffer.from(new ArrayBuffer(perChunk * rowBytes));
    for (let first = 0; first < this.count; first += perChunk) {
      const n = Math.min(perChunk, this.count - first);
      const part = buf.subarray(0, n * rowBytes);
      try {
        readFully(this.#fd, part, this.#header.vectorsOffset + first * rowBytes, this.file);
      } catch (e) {
        if (e instanceof LlavaRadError) throw e;
        throw new LlavaRadError('IO', `cannot read the index ${this.file}: ${(e as Error).message}`);
      }
      fn(new Float32Array(buf.buffer, 0, n * this.dim), first, n);
    }
  }

  /** a copy of entry i's vector */
  vector(i: number): Float32Array {
    const out = new Float32Array(this.dim);
    const bytes = Buffer.from(out.buffer);
    readFully(this.#fd, bytes, this.#header.vectorsOffset + i * this.dim * FLOAT_BYTES, this.file);
    return out;
  }

  #verifyVectors(): void {
    const h = createHash('sha256');
    this.forEachChunk((rows) => h.update(new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength)));
    if (!h.digest().equals(this.#header.vectorsSha256)) {
      throw new LlavaRadError('BAD_INDEX', `${this.file}: its vectors do not match the header's sha256: the file is corrupt`);
    }
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}

export interface IndexContents {
  modelId: string;
  dim: number;
  ids: readonly string[];
  kinds: readonly EntryKind[];
  /**
   * writes the vectors of ids[0], ids[1], ... in that order through `put` (any number of rows per call);
   * exactly ids.length rows in all
   */
  vectors: (put: (rows: Float32Array) => void) => void;
}

/** Writes an index file atomically (temporary file, fsync, rename). INVALID_ARGUMENT for contents out of INDEX_LIMITS. */
export function writeIndexFile(file: string, c: IndexContents): void {
  const { dim } = c;
  const count = c.ids.length;
  if (!Number.isInteger(dim) || dim < 1 || dim > INDEX_LIMITS.maxDim) {
    throw new LlavaRadError('INVALID_ARGUMENT', `an index's dim must be an integer from 1 to ${INDEX_LIMITS.maxDim}, got ${dim}`);
  }
  if (c.kinds.length !== count) throw new LlavaRadError('INVALID_ARGUMENT', `an index needs one kind per id: ${count} ids, ${c.kinds.length} kinds`);
  const meta = encodeMeta(c.modelId, c.ids, c.kinds);
  if (meta.length > INDEX_LIMITS.maxMetaBytes) throw new LlavaRadError('INVALID_ARGUMENT', `the ids take ${meta.length} bytes: more than an index holds (${INDEX_LIMITS.maxMetaBytes})`);
  const vectorsOffset = vectorsOffsetFor(meta.length);
  writeFileAtomically(file, 'the index', (write) => {
    let pos = HEADER_BYTES;
    const put = (b: Uint8Array) => {
      write(b, pos);
      pos += b.length;
    };
    put(meta);
    put(new Uint8Array(vectorsOffset - pos));
    const vh = createHash('sha256');
    let rows = 0;
    c.vectors((v) => {
      if (v.length % dim !== 0) throw new LlavaRadError('INTERNAL', `index writer: ${v.length} floats is not a whole number of ${dim}-float rows`);
      rows += v.length / dim;
      if (rows > count) throw new LlavaRadError('INTERNAL', `index writer: more vectors than the ${count} ids`);
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      vh.update(bytes);
      put(bytes);
    });
    if (rows !== count) throw new LlavaRadError('INTERNAL', `index writer: ${rows} vectors for ${count} ids`);
    write(encodeHeader({
      dim, count, metaOffset: HEADER_BYTES, metaBytes: meta.length, vectorsOffset, fileBytes: pos,
      metaSha256: createHash('sha256').update(meta).digest(), vectorsSha256: vh.digest(),
    }), 0);
  });
}
