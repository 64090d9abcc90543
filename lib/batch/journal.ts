// The predictions file as a journal: one JSON record per line, appended with one write and fsync'd before
// the next study is reported done, so a crash or SIGKILL loses at most the studies in flight. On open, a
// damaged tail (bytes after the last newline, or a last line that is not a record) is cut off; a bad line
// anywhere else means the file was edited or is not ours, and nothing is touched (BAD_PREDICTIONS).
// Readers take the LAST record of each id (a failed study retried with --retry-failed appends a newer one).

import { closeSync, constants, fsyncSync, ftruncateSync, lstatSync, mkdirSync, openSync, readSync, writeSync, type Stats } from 'node:fs';
import path from 'node:path';
import { LlavaRadError } from '../errors.js';
import { scanLines } from './lines.js';
import { isRecord, type PredictionRecord } from './record.js';

export interface Predictions {
  /** the last record of each id, in order of each id's first appearance */
  latest: Map<string, PredictionRecord>;
  /** records read (complete, valid lines) */
  records: number;
  /** the damaged tail, if any: where it starts and why it is not a record */
  damaged: { line: number; offset: number; bytes: number; why: string } | null;
  /** file length without the damaged tail */
  goodBytes: number;
}

/** Reads a predictions file. Throws BAD_PREDICTIONS for a bad line that is not the last one. */
export function readPredictions(file: string): Predictions {
  const latest = new Map<string, PredictionRecord>();
  let records = 0;
  let pendingBad: { line: number; offset: number; why: string } | null = null;
  let scan;
  try {
    scan = scanLines(file, (text, line, offset) => {
      if (pendingBad) {
        throw new LlavaRadError('BAD_PREDICTIONS',
          `${file}:${pendingBad.line}: ${pendingBad.why}, and it is not the last line: the file was edited or is not a predictions file of llava-rad batch`);
      }
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch {
        pendingBad = { line, offset, why: text.trim() === '' ? 'an empty line' : 'not JSON' };
        return;
      }
      if (!isRecord(v)) {
        pendingBad = { line, offset, why: 'not a prediction record (id, model, params, findings or error)' };
        return;
      }
      records++;
      latest.set(v.id, v); // an id keeps its first position; the value becomes the newer record
    });
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `cannot read ${file}: ${(e as Error).message}`);
  }
  const bad = pendingBad as { line: number; offset: number; why: string } | null;
  const goodBytes = bad ? bad.offset : scan.completeBytes;
  const total = scan.completeBytes + scan.tailBytes;
  let damaged: Predictions['damaged'] = null;
  if (bad) damaged = { line: bad.line, offset: bad.offset, bytes: total - bad.offset, why: bad.why };
  else if (scan.tailBytes > 0) damaged = { line: -1, offset: scan.completeBytes, bytes: scan.tailBytes, why: 'a last line without a newline (torn write)' };
  return { latest, records, damaged, goodBytes };
}

export class Journal {
  readonly file: string;
  #fd: number;
  #size: number;
  #broken: Error | null = null;

  private constructor(file: string, fd: number, size: number) {
    this.file = file;
    this.#fd = fd;
    this.#size = size;
  }

  /**
   * Opens (creating it and its folder if needed) a predictions file for appending, after cutting off a
   * damaged tail. Returns what the file holds.
   */
  static open(file: string): { journal: Journal; predictions: Predictions } {
    const dir = path.dirname(path.resolve(file));
    let predictions: Predictions = { latest: new Map(), records: 0, damaged: null, goodBytes: 0 };
    const st = lstatOrNull(file);
    const existed = st !== null;
    // only a plain file of ours is appended to: never through a symbolic link (it could point anywhere), and a
    // non-empty file without a single record is someone else's (its one "torn line" would be cut off)
    if (st?.isSymbolicLink()) {
      throw new LlavaRadError('IO', `${file} is a symbolic link; give the predictions file's real path`);
    }
    if (st && !st.isFile()) throw new LlavaRadError('IO', `${file} is not a regular file`);
    try {
      mkdirSync(dir, { recursive: true });
      if (existed) predictions = readPredictions(file);
      if (existed && predictions.records === 0 && predictions.damaged && !looksLikeTornRecord(file, predictions.damaged.offset)) {
        throw new LlavaRadError('BAD_PREDICTIONS',
          `${file} is not empty and holds no prediction record: it is not a predictions file of llava-rad batch (nothing was changed)`);
      }
      const fd = openSync(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
      if (predictions.damaged) {
        ftruncateSync(fd, predictions.goodBytes);
        fsyncSync(fd);
      }
      if (!existed) fsyncDir(dir);
      return { journal: new Journal(file, fd, predictions.goodBytes), predictions };
    } catch (e) {
      if (e instanceof LlavaRadError) throw e;
      throw new LlavaRadError('IO', `cannot open ${file} for appending: ${(e as Error).message}`);
    }
  }

  /** Appends one record as one line with one write, then fsyncs. On failure the partial line is cut off. */
  append(record: PredictionRecord): void {
    if (this.#broken) throw this.#broken;
    const buf = Buffer.from(JSON.stringify(record) + '\n', 'utf8');
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(this.#fd, buf, off, buf.length - off);
      fsyncSync(this.#fd);
      this.#size += buf.length;
    } catch (e) {
      try {
        ftruncateSync(this.#fd, this.#size);
      } catch {
        // the next start cuts the torn line off
      }
      this.#broken = new LlavaRadError('IO', `cannot append to ${this.file}: ${(e as Error).message}`);
      throw this.#broken;
    }
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}

function lstatOrNull(file: string): Stats | null {
  try {
    return lstatSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new LlavaRadError('IO', `cannot read ${file}: ${(e as Error).message}`);
  }
}

/** the bytes at `offset` begin as every record line does (a record cut short by a crash) */
function looksLikeTornRecord(file: string, offset: number): boolean {
  const start = Buffer.from('{"id":');
  const head = Buffer.alloc(start.length);
  const fd = openSync(file, 'r');
  try {
    const n = readSync(fd, head, 0, head.length, offset);
    return n > 0 && head.subarray(0, n).equals(start.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/** makes a new file's directory entry durable */
export function fsyncDir(dir: string): void {
  let fd = -1;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // not supported on every platform / file system
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}
