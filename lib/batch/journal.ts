// The predictions file as a journal: one JSON record per line, appended with one write and fsync'd before
// the next study is reported done, so a crash or SIGKILL loses at most the studies in flight. On open, a
// damaged tail (bytes after the last newline, or a last line that is not a record) is cut off; a bad line
// anywhere else, or a line longer than any record (MAX_RECORD_BYTES, even a torn last one), means the file was
// edited or is not ours, and nothing is touched (BAD_PREDICTIONS).
// Readers take the LAST record of each id (a failed study retried with --retry-failed appends a newer one).
// LLAVA_RAD_TEST_PAUSE (test-only, see testPauseSpec below) stops the process at a named point of that append.

import { closeSync, constants, fsyncSync, ftruncateSync, lstatSync, mkdirSync, openSync, readSync, writeSync, type Stats } from 'node:fs';
import path from 'node:path';
import { LlavaRadError } from '../errors.js';
import { LineTooLongError, scanLines } from './lines.js';
import { isRecord, MAX_RECORD_BYTES, type PredictionRecord } from './record.js';

/** where a record's line is in its file: the byte offset it starts at and its length (without the newline) */
export interface LineAt {
  offset: number;
  bytes: number;
}

export interface Predictions<T = PredictionRecord> {
  /** the last record of each id (or what `keep` made of it), in order of each id's first appearance */
  latest: Map<string, T>;
  /** records read (complete, valid lines) */
  records: number;
  /** the damaged tail, if any: where it starts and why it is not a record */
  damaged: { line: number; offset: number; bytes: number; why: string } | null;
  /** file length without the damaged tail */
  goodBytes: number;
}

/**
 * Reads a predictions file. Throws BAD_PREDICTIONS for a bad line that is not the last one. `keep` makes what is
 * held of each record (default: the record): a reader that needs little of each keeps memory flat whatever the
 * file's size (a parsed record takes a few KB of heap, so millions of them would not fit V8's).
 */
export function readPredictions<T = PredictionRecord>(file: string, keep: (r: PredictionRecord, at: LineAt) => T = (r) => r as unknown as T): Predictions<T> {
  const latest = new Map<string, T>();
  let records = 0;
  let pendingBad: { line: number; offset: number; why: string } | null = null;
  let scan;
  try {
    scan = scanLines(file, (text, line, offset, bytes) => {
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
      latest.set(v.id, keep(v, { offset, bytes })); // an id keeps its first position; the value becomes the newer record's
    }, { maxLineBytes: MAX_RECORD_BYTES });
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    if (e instanceof LineTooLongError) {
      throw new LlavaRadError('BAD_PREDICTIONS',
        `${file}:${e.line}: a line longer than ${MAX_RECORD_BYTES >> 20} MiB, which no record is: the file is not a predictions file of llava-rad batch, or is damaged past its last line (nothing was changed)`);
    }
    throw new LlavaRadError('IO', `cannot read ${file}: ${(e as Error).message}`);
  }
  const bad = pendingBad as { line: number; offset: number; why: string } | null;
  const goodBytes = bad ? bad.offset : scan.completeBytes;
  const total = scan.completeBytes + scan.tailBytes;
  let damaged: Predictions<T>['damaged'] = null;
  if (bad) damaged = { line: bad.line, offset: bad.offset, bytes: total - bad.offset, why: bad.why };
  else if (scan.tailBytes > 0) damaged = { line: -1, offset: scan.completeBytes, bytes: scan.tailBytes, why: 'a last line without a newline (torn write)' };
  return { latest, records, damaged, goodBytes };
}

export class Journal {
  readonly file: string;
  #fd: number;
  #size: number;
  #broken: Error | null = null;
  /** records in the file (the valid lines found on open, then one per append) */
  #records: number;
  /** records appended by this process */
  #appended = 0;

  private constructor(file: string, fd: number, size: number, records: number) {
    this.file = file;
    this.#fd = fd;
    this.#size = size;
    this.#records = records;
  }

  /**
   * Opens (creating it and its folder if needed) a predictions file for appending, after cutting off a
   * damaged tail. Returns what the file holds (what `keep` makes of each record: see readPredictions).
   */
  static open<T = PredictionRecord>(file: string, keep?: (r: PredictionRecord, at: LineAt) => T): { journal: Journal; predictions: Predictions<T> } {
    const dir = path.dirname(path.resolve(file));
    let predictions: Predictions<T> = { latest: new Map(), records: 0, damaged: null, goodBytes: 0 };
    const st = lstatOrNull(file);
    const existed = st !== null;
    // only a plain file of ours is appended to: never through a symbolic link (it could point anywhere), and a
    // non-empty file without a single record is someone else's (its one "torn line" would be cut off)
    if (st?.isSymbolicLink()) {
      throw new LlavaRadError('IO', `${file} is a symbolic link; give the predictions file's real path`);
    }
    if (st && !st.isFile()) throw new LlavaRadError('IO', `${file} is not a regular file`);
    if (TEST_PAUSE instanceof Error) throw TEST_PAUSE;
    try {
      mkdirSync(dir, { recursive: true });
      if (existed) predictions = readPredictions(file, keep);
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
      return { journal: new Journal(file, fd, predictions.goodBytes, predictions.records), predictions };
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
      if (TEST_PAUSE !== null) this.testPause('mid-record', record, buf);
      while (off < buf.length) off += writeSync(this.#fd, buf, off, buf.length - off);
      fsyncSync(this.#fd);
      this.#size += buf.length;
      this.#records++;
      this.#appended++;
    } catch (e) {
      try {
        ftruncateSync(this.#fd, this.#size);
      } catch {
        // the next start cuts the torn line off
      }
      this.#broken = new LlavaRadError('IO', `cannot append to ${this.file}: ${(e as Error).message}`);
      throw this.#broken;
    }
    if (TEST_PAUSE !== null) this.testPause('after-record', record);
  }

  /**
   * Test-only (LLAVA_RAD_TEST_PAUSE): if the spec names this point and this record, reports it on stderr and
   * blocks the whole process (its event loop included: nothing more is written) until a test SIGKILLs it.
   * `before-record` is called by the runner once a study's outcome is in and its record made, before append;
   * `mid-record` writes the first half of the line (no newline), fsyncs it, then blocks; `after-record` blocks
   * once the record is written and fsync'd. N counts this process's appends: the N-th record of this run.
   * Costs one comparison when the variable is unset.
   */
  testPause(point: TestPausePoint, record: PredictionRecord, line?: Buffer): void {
    if (TEST_PAUSE === null || TEST_PAUSE instanceof Error || TEST_PAUSE.point !== point) return;
    const n = point === 'after-record' ? this.#appended : this.#appended + 1;
    if (n !== TEST_PAUSE.n) return;
    let torn = '';
    if (point === 'mid-record') {
      if (!line) return;
      const part = Math.max(1, Math.floor((line.length - 1) / 2));
      let off = 0;
      while (off < part) off += writeSync(this.#fd, line, off, part - off);
      fsyncSync(this.#fd);
      torn = `; ${part} bytes of its line written`;
    }
    writeSync(2, `llava-rad: test pause at ${point}:${n} (study ${JSON.stringify(record.id)}; ${this.#records} records in ${this.file}${torn})\n`);
    // blocks the main thread; a test that never kills us must not leave the process behind for ever
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, TEST_PAUSE_LIMIT_MS);
    writeSync(2, `llava-rad: test pause at ${point}:${n} not ended by a kill within ${TEST_PAUSE_LIMIT_MS / 1000} s: killing itself\n`);
    process.kill(process.pid, 'SIGKILL');
  }

  close(): void {
    if (this.#fd >= 0) closeSync(this.#fd);
    this.#fd = -1;
  }
}

// ---- test-only ----------------------------------------------------------------------------------------
// LLAVA_RAD_TEST_PAUSE=<point>:<n>, point one of before-record | mid-record | after-record, makes the process
// stop at that point of its n-th record (see Journal.testPause) so that a test can SIGKILL it exactly there
// (test/batch.test.ts, the crash-resume test). For tests only; inert when unset (read once, at load). A value
// that does not parse makes Journal.open fail with INVALID_ARGUMENT rather than run without the pause.

export type TestPausePoint = 'before-record' | 'mid-record' | 'after-record';
export interface TestPause {
  point: TestPausePoint;
  n: number;
}
const TEST_PAUSE_LIMIT_MS = 600_000;

/** parses a LLAVA_RAD_TEST_PAUSE value: null when unset or empty, an Error when it does not parse */
export function testPauseSpec(value: string | undefined): TestPause | Error | null {
  if (value === undefined || value === '') return null;
  const m = /^(before-record|mid-record|after-record):([1-9][0-9]{0,8})$/.exec(value);
  if (!m) {
    return new LlavaRadError('INVALID_ARGUMENT',
      `LLAVA_RAD_TEST_PAUSE (test-only) must be before-record:N, mid-record:N or after-record:N with N >= 1, got ${JSON.stringify(value.slice(0, 60))}`);
  }
  return { point: m[1] as TestPausePoint, n: Number(m[2]) };
}
const TEST_PAUSE = testPauseSpec(process.env.LLAVA_RAD_TEST_PAUSE);

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
