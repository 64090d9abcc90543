// Merging predictions files (the shards of one job): the last record per id within a file; across files
// a successful record wins over a failed one, then the later one. Every record must come from the same
// model (GGUF sha256) and settings. The result is written atomically (temporary file, fsync, rename).
//
// Only where each chosen record's line is (file, offset, length) and what the choice needs is held: the lines
// are copied from the inputs when the result is written. Holding every parsed record took about 2.7 KB of heap
// each, so the shards of a job of some 1.6 million studies could not be merged in V8's default 4 GB heap.

import { closeSync, readSync } from 'node:fs';
import { LlavaRadError } from '../errors.js';
import { openRegularFileSync } from '../regular-file.js';
import { writeFileAtomically } from '../replace-file.js';
import { readPredictions } from './journal.js';
import { IdentityKeys, type PredictionRecord } from './record.js';

export interface MergeOptions {
  inputs: string[];
  /** the manifest's ids in order: the output follows it, and ids it lacks are reported missing */
  manifestIds?: string[];
  /** leave failed records out (the official metric scripts need a prediction on every line) */
  dropFailed?: boolean;
}

/** a record the merge chose: where its line is, and what the choice looked at */
export interface MergedRecord {
  id: string;
  /** index into MergeOptions.inputs */
  input: number;
  /** the line's byte offset and length (without its newline) */
  offset: number;
  bytes: number;
  failed: boolean;
  finishedAt: string;
}

export interface MergeResult {
  records: MergedRecord[];
  ok: number;
  failed: number;
  /** failed records left out by dropFailed */
  dropped: number;
  /** ids present in more than one input */
  duplicates: string[];
  /** manifest ids with no record */
  missing: string[];
  /** ids not in the manifest (kept) */
  extra: string[];
  /** inputs whose damaged last line was ignored */
  damaged: { file: string; why: string }[];
}

function better(a: MergedRecord, b: MergedRecord): MergedRecord {
  if (a.failed !== b.failed) return a.failed ? b : a;
  return b.finishedAt > a.finishedAt ? b : a;
}

export function mergePredictions(o: MergeOptions): MergeResult {
  const merged = new Map<string, MergedRecord>();
  const seenIn = new Map<string, number>();
  const damaged: MergeResult['damaged'] = [];
  const keys = new IdentityKeys();
  let first: { key: number; file: string } | null = null;
  o.inputs.forEach((file, input) => {
    const p = readPredictions(file, (r: PredictionRecord, at) => (
      { id: r.id, input, offset: at.offset, bytes: at.bytes, failed: r.error !== undefined, finishedAt: String(r.finished_at), key: keys.of(r) }));
    if (p.damaged) damaged.push({ file, why: p.damaged.why });
    for (const { key, ...r } of p.latest.values()) {
      if (first === null) first = { key, file };
      else if (key !== first.key) {
        throw new LlavaRadError('MODEL_MISMATCH', `${file} (record ${JSON.stringify(r.id)}: ${keys.key(key)}) and ${first.file} (${keys.key(first.key)}) come from different models or settings; merge only the shards of one job`);
      }
      const prev = merged.get(r.id);
      merged.set(r.id, prev ? better(prev, r) : r);
      seenIn.set(r.id, (seenIn.get(r.id) ?? 0) + 1);
    }
  });
  const duplicates = [...seenIn].filter(([, n]) => n > 1).map(([id]) => id);
  let order = [...merged.keys()];
  let missing: string[] = [];
  let extra: string[] = [];
  if (o.manifestIds) {
    const inManifest = new Set(o.manifestIds);
    missing = o.manifestIds.filter((id) => !merged.has(id));
    extra = order.filter((id) => !inManifest.has(id));
    order = [...o.manifestIds.filter((id) => merged.has(id)), ...extra];
  }
  const all = order.map((id) => merged.get(id)!);
  const failed = all.filter((r) => r.failed).length;
  const records = o.dropFailed ? all.filter((r) => !r.failed) : all;
  return { records, ok: all.length - failed, failed, dropped: all.length - records.length, duplicates, missing, extra, damaged };
}

/** the most inputs writeMerged holds open at once */
export const MAX_OPEN_INPUTS = 64;

/** bytes written to the temporary file at a time */
const FLUSH_BYTES = 1 << 20;

/**
 * Writes `out` atomically (lib/replace-file.ts: a temporary file beside it, created exclusively, renamed
 * over `out`), through a buffer of FLUSH_BYTES. Anything `fill` throws is rethrown; write failures are IO.
 */
function writeAtomically(out: string, fill: (put: (bytes: Buffer) => void) => void): void {
  writeFileAtomically(out, 'the merged predictions', (write) => {
    const pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = () => {
      write(Buffer.concat(pending, pendingBytes), null);
      pending.length = 0;
      pendingBytes = 0;
    };
    fill((bytes) => {
      pending.push(bytes);
      pendingBytes += bytes.length;
      if (pendingBytes >= FLUSH_BYTES) flush();
    });
    flush();
  });
}

/** writes records as JSONL atomically (see writeAtomically) */
export function writePredictions(out: string, records: PredictionRecord[]): void {
  writeAtomically(out, (put) => {
    for (const r of records) put(Buffer.from(JSON.stringify(r) + '\n', 'utf8'));
  });
}

const NEWLINE = Buffer.from('\n');
const JSON_SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * Writes the records a merge chose, as JSONL, atomically: each line copied from its input (without the
 * whitespace around its JSON object, a CRLF file's CR included). IO when an input changed since it was read (a line is not where it was).
 */
export function writeMerged(out: string, inputs: readonly string[], records: readonly MergedRecord[]): void {
  // the inputs open now, least recently read first: at most MAX_OPEN_INPUTS (a job of thousands of shards
  // would pass the usual limit of 1024 descriptors a process may hold; EMFILE, before)
  const fds = new Map<number, number>();
  const fdOf = (input: number): number => {
    let fd = fds.get(input);
    if (fd !== undefined) {
      fds.delete(input);
    } else {
      if (fds.size >= MAX_OPEN_INPUTS) {
        const [oldest, ofd] = fds.entries().next().value as [number, number];
        fds.delete(oldest);
        closeSync(ofd);
      }
      fd = openRegularFileSync(inputs[input]!, 'the predictions file').fd;
    }
    fds.set(input, fd);
    return fd;
  };
  try {
    writeAtomically(out, (put) => {
      for (const r of records) {
        const fd = fdOf(r.input);
        const line = Buffer.allocUnsafe(r.bytes);
        let n = 0;
        while (n < r.bytes) {
          const got = readSync(fd, line, n, r.bytes - n, r.offset + n);
          if (got === 0) break;
          n += got;
        }
        // the JSON object without the whitespace JSON allows around it (a CR of a CRLF file among it)
        let start = 0;
        let end = n;
        while (start < end && JSON_SPACE.has(line[start]!)) start++;
        while (end > start && JSON_SPACE.has(line[end - 1]!)) end--;
        if (n < r.bytes || line[start] !== OPEN_BRACE || line[end - 1] !== CLOSE_BRACE) {
          throw new LlavaRadError('IO', `${inputs[r.input]} changed while it was merged (record ${JSON.stringify(r.id)} is not where it was); merge again`);
        }
        put(line.subarray(start, end));
        put(NEWLINE);
      }
    });
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
}
