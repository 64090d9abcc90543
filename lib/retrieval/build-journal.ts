// INDEX.journal: the vectors an unfinished `index build` has made, so that a crash, a kill or Ctrl-C loses
// only the batch in flight. JSON lines: first {"llava_rad_index_journal": 1, "modelId", "dim"}, then one
// {"id", "kind", "v"} per vector (v: the float32 little-endian bytes in base64). Each batch is appended with
// one write and fsync'd before the next is embedded. On open a torn last line (the crash's) is cut off; a bad
// line anywhere else means the file is not ours or was edited: BAD_INDEX, nothing touched. The build folds
// the journal into INDEX and deletes it (build.ts).

import { closeSync, constants, fsyncSync, ftruncateSync, lstatSync, openSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { LlavaRadError } from '../errors.js';
import { fsyncDir } from '../batch/journal.js';
import { LineTooLongError, scanLines } from '../batch/lines.js';
import { FLOAT_BYTES, INDEX_LIMITS, entryKey, type EntryKind } from './format.js';

const JOURNAL_TAG = 'llava_rad_index_journal';
/** one line holds a vector of INDEX_LIMITS.maxDim floats in base64 and an id with room to spare */
const MAX_LINE_BYTES = 1 << 20;

export interface JournalEntry {
  id: string;
  kind: EntryKind;
  vector: Float32Array;
}

interface Parsed {
  header: { modelId: string; dim: number } | null;
  entries: Array<{ id: string; kind: EntryKind }>;
  goodBytes: number;
  damaged: boolean;
}

function decodeVector(v: unknown, dim: number): Float32Array | null {
  if (typeof v !== 'string') return null;
  const bytes = Buffer.from(v, 'base64');
  if (bytes.length !== dim * FLOAT_BYTES) return null;
  const out = new Float32Array(dim);
  Buffer.from(out.buffer).set(bytes);
  for (const x of out) if (!Number.isFinite(x)) return null;
  return out;
}

/** Reads a journal; onEntry gets each valid entry's vector (the second pass, when folding it in). */
function parse(file: string, onEntry?: (e: JournalEntry) => void): Parsed {
  const p: Parsed = { header: null, entries: [], goodBytes: 0, damaged: false };
  let pendingBad: { line: number; offset: number } | null = null;
  let scan;
  try {
    scan = scanLines(file, (text, line, offset) => {
      if (pendingBad) {
        throw new LlavaRadError('BAD_INDEX', `${file}:${pendingBad.line}: not a line of an index build journal, and not the last line: the file was edited or is not ours (nothing was changed)`);
      }
      let o: Record<string, unknown> | null = null;
      try {
        const v: unknown = JSON.parse(text);
        if (typeof v === 'object' && v !== null && !Array.isArray(v)) o = v as Record<string, unknown>;
      } catch {
        // judged below
      }
      if (line === 1) {
        if (o && o[JOURNAL_TAG] === 1 && typeof o.modelId === 'string' && Number.isInteger(o.dim) && (o.dim as number) >= 1 && (o.dim as number) <= INDEX_LIMITS.maxDim) {
          p.header = { modelId: o.modelId, dim: o.dim as number };
          return;
        }
        throw new LlavaRadError('BAD_INDEX', `${file} does not start as an index build journal of llava-rad does: not ours (nothing was changed)`);
      }
      const kind = o?.kind;
      const id = o?.id;
      const vector = o && p.header ? decodeVector(o.v, p.header.dim) : null;
      if (typeof id !== 'string' || id === '' || (kind !== 'image' && kind !== 'text') || vector === null) {
        pendingBad = { line, offset };
        return;
      }
      p.entries.push({ id, kind });
      onEntry?.({ id, kind, vector });
    }, { maxLineBytes: MAX_LINE_BYTES });
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    if (e instanceof LineTooLongError) {
      throw new LlavaRadError('BAD_INDEX', `${file}:${e.line}: a line longer than ${MAX_LINE_BYTES} bytes: not an index build journal of llava-rad (nothing was changed)`);
    }
    throw new LlavaRadError('IO', `cannot read ${file}: ${(e as Error).message}`);
  }
  const bad = pendingBad as { line: number; offset: number } | null;
  p.goodBytes = bad ? bad.offset : scan.completeBytes;
  p.damaged = bad !== null || scan.tailBytes > 0;
  return p;
}

export class BuildJournal {
  readonly file: string;
  readonly dim: number;
  /** keys (format.ts entryKey) of the entries it holds, in order */
  readonly entries: Array<{ id: string; kind: EntryKind }>;
  #fd: number;

  private constructor(file: string, fd: number, dim: number, entries: Array<{ id: string; kind: EntryKind }>) {
    this.file = file;
    this.#fd = fd;
    this.dim = dim;
    this.entries = entries;
  }

  /** Opens (or creates) the journal of a build by `modelId`. MODEL_MISMATCH when it holds another model's vectors. */
  static open(file: string, modelId: string, dim: number): BuildJournal {
    let st;
    try {
      st = lstatSync(file);
    } catch {
      st = null;
    }
    if (st && !st.isFile()) throw new LlavaRadError('IO', `${file} is not a regular file`);
    let parsed: Parsed = { header: null, entries: [], goodBytes: 0, damaged: false };
    if (st && st.size > 0) parsed = parse(file);
    if (parsed.header && (parsed.header.modelId !== modelId || parsed.header.dim !== dim)) {
      throw new LlavaRadError('MODEL_MISMATCH',
        `${file} holds vectors of model ${parsed.header.modelId} (${parsed.header.dim} floats), this build's model is ${modelId} (${dim}): delete it to start over with this model`);
    }
    let fd = -1;
    try {
      fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
      if (parsed.damaged) ftruncateSync(fd, parsed.goodBytes);
      if (!parsed.header) {
        ftruncateSync(fd, 0);
        const line = JSON.stringify({ [JOURNAL_TAG]: 1, modelId, dim }) + '\n';
        writeSync(fd, line);
      }
      fsyncSync(fd);
      if (!st) fsyncDir(path.dirname(path.resolve(file)));
    } catch (e) {
      if (fd >= 0) closeSync(fd);
      throw new LlavaRadError('IO', `cannot open ${file} for appending: ${(e as Error).message}`);
    }
    return new BuildJournal(file, fd, dim, parsed.entries);
  }

  /** Appends a batch with one write, then fsyncs. */
  append(batch: readonly JournalEntry[]): void {
    const text = batch.map((e) => JSON.stringify({ id: e.id, kind: e.kind, v: Buffer.from(e.vector.buffer, e.vector.byteOffset, e.vector.byteLength).toString('base64') }) + '\n').join('');
    const buf = Buffer.from(text, 'utf8');
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(this.#fd, buf, off, buf.length - off);
      fsyncSync(this.#fd);
    } catch (e) {
      throw new LlavaRadError('IO', `cannot append to ${this.file}: ${(e as Error).message}`);
    }
    for (const e of batch) this.entries.push({ id: e.id, kind: e.kind });
  }

  /** Calls fn for each entry with its vector, in order (the file read again). */
  forEach(fn: (e: JournalEntry) => void): void {
    parse(this.file, fn);
  }

  keys(): Set<string> {
    return new Set(this.entries.map((e) => entryKey(e.id, e.kind)));
  }

  /** closes and deletes the journal (its entries are in the index now) */
  remove(): void {
    this.close();
    try {
      unlinkSync(this.file);
    } catch {
      // already gone
    }
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}
