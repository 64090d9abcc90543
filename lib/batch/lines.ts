// Reads a text file line by line in fixed-size chunks (a predictions file or a manifest may be large),
// synchronously. An optional limit on a line's length is checked as the bytes arrive: a line longer than it
// is refused after at most one more chunk is read, never buffered whole (a file with no newline at all is
// not read to its end).
//
// ChunkSource reads a descriptor opened with O_NONBLOCK (a manifest may be a named pipe or a shell's
// process substitution, /dev/fd/N): a blocking open of a FIFO waits for a writer without end, so the FIFO is
// opened non-blocking and the writer is waited for here, a bounded time. On Linux a non-blocking read of a
// FIFO returns 0 while no writer has opened it and EAGAIN while a writer has it open with nothing written;
// until a byte or an EAGAIN shows a writer, 0 is "no writer yet", not the end, and after `writerWaitMs` of
// that NoWriterError is thrown. Once a writer is seen the input is read to its end with no overall time
// limit (a slow producer is legitimate), EAGAIN polled with a short backoff (5 ms doubling to 100 ms).

import { closeSync, readSync } from 'node:fs';
import { openRegularFileSync } from '../regular-file.js';

/** bytes read at a time */
export const CHUNK_BYTES = 1 << 20;

export interface LineScan {
  /** bytes up to and including the last newline */
  completeBytes: number;
  /** bytes after the last newline (a torn last line), 0 when the file ends with a newline */
  tailBytes: number;
}

/** A line (its bytes without the newline) is longer than the limit. Nothing of it is kept. */
export class LineTooLongError extends Error {
  constructor(
    /** 1-based line number */
    readonly line: number,
    /** byte offset where the line starts */
    readonly start: number,
    readonly limit: number,
  ) {
    super(`line ${line} is longer than ${limit} bytes`);
  }
}

/** a line's text (UTF-8 decoded), its 1-based number, the byte offset where it starts and its length in bytes (no newline) */
export type OnLine = (text: string, line: number, start: number, bytes: number) => void;

/**
 * Splits bytes pushed in chunks into lines (split at "\n"; a "\r" before it stays in the line's text).
 * Calls onLine(text, 1-based line number, byte offset where the line starts) for each newline-ended line;
 * the bytes after the last newline are given to onLine by end(true) only.
 */
export class LineSplitter {
  readonly #onLine: OnLine;
  readonly #max: number;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #pos = 0; // offset of the next byte pushed
  #lineStart = 0;
  #line = 0;

  constructor(onLine: OnLine, maxLineBytes = Infinity) {
    this.#onLine = onLine;
    this.#max = maxLineBytes;
  }

  /** Takes the bytes of `chunk` (copied where kept: the caller may reuse it). Throws LineTooLongError. */
  push(chunk: Buffer): void {
    let from = 0;
    for (let nl = chunk.indexOf(10, 0); nl !== -1; nl = chunk.indexOf(10, from)) {
      if (this.#pendingLen + (nl - from) > this.#max) throw new LineTooLongError(this.#line + 1, this.#lineStart, this.#max);
      const piece = chunk.subarray(from, nl);
      const bytes = this.#pendingLen ? Buffer.concat([...this.#pending, piece]) : piece;
      this.#pending = [];
      this.#pendingLen = 0;
      const start = this.#lineStart;
      this.#lineStart = this.#pos + nl + 1;
      from = nl + 1;
      this.#onLine(bytes.toString('utf8'), ++this.#line, start, bytes.length);
    }
    if (from < chunk.length) {
      const rest = chunk.length - from;
      if (this.#pendingLen + rest > this.#max) throw new LineTooLongError(this.#line + 1, this.#lineStart, this.#max);
      this.#pending.push(Buffer.from(chunk.subarray(from)));
      this.#pendingLen += rest;
    }
    this.#pos += chunk.length;
  }

  /** The end of the input. With lastLine, bytes after the last newline are given to onLine as a line. */
  end(lastLine = false): LineScan {
    const scan = { completeBytes: this.#lineStart, tailBytes: this.#pos - this.#lineStart };
    if (lastLine && this.#pendingLen > 0) {
      const bytes = Buffer.concat(this.#pending);
      this.#pending = [];
      this.#pendingLen = 0;
      this.#onLine(bytes.toString('utf8'), ++this.#line, this.#lineStart, bytes.length);
    }
    return scan;
  }
}

/** Reads an open file descriptor from its current offset to its end in chunks (works on pipes too). */
export function readChunks(fd: number, onChunk: (chunk: Buffer) => void): void {
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n === 0) return;
    onChunk(buf.subarray(0, n));
  }
}

/** Blocks the thread for `ms` milliseconds (the reads here are synchronous). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A FIFO was not opened for writing (nor anything read from it) within the wait. */
export class NoWriterError extends Error {
  constructor(readonly waitMs: number) {
    super(`no process opened the named pipe for writing within ${waitMs} ms`);
  }
}

export interface ChunkSourceOptions {
  /**
   * the descriptor is a FIFO / pipe: a read of 0 bytes before any writer is seen means "no writer yet"
   * (waited for up to writerWaitMs), not the end
   */
  fifo?: boolean;
  /** how long to wait for a FIFO's first writer (default 10 s) */
  writerWaitMs?: number;
  /** the pipe has a writer already (e.g. an anonymous pipe, whose writer cannot come later) */
  writerSeen?: boolean;
}

const POLL_FIRST_MS = 5;
const POLL_MAX_MS = 100;

/**
 * Chunks of an open descriptor, from its current offset to its end, for a descriptor opened with or without
 * O_NONBLOCK: EAGAIN is polled with a backoff; on a FIFO, the first writer is waited for a bounded time.
 */
export class ChunkSource {
  readonly #fd: number;
  readonly #fifo: boolean;
  readonly #waitMs: number;
  readonly #buf = Buffer.allocUnsafe(CHUNK_BYTES);
  #writerSeen: boolean;
  #ended = false;
  readonly #since = performance.now();

  constructor(fd: number, options: ChunkSourceOptions = {}) {
    this.#fd = fd;
    this.#fifo = options.fifo === true;
    this.#waitMs = options.writerWaitMs ?? 10_000;
    this.#writerSeen = options.writerSeen === true;
  }

  /**
   * The next bytes (a view of a buffer the next call overwrites: copy what is kept), or null at the end.
   * Throws NoWriterError (a FIFO nobody opened for writing in time) or the read's own error.
   */
  next(): Buffer | null {
    if (this.#ended) return null;
    let pause = POLL_FIRST_MS;
    for (;;) {
      let n: number;
      try {
        n = readSync(this.#fd, this.#buf, 0, this.#buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') throw e;
        // a writer has the pipe open and has written nothing yet (or a device has nothing now)
        this.#writerSeen = true;
        sleepSync(pause);
        pause = Math.min(POLL_MAX_MS, pause * 2);
        continue;
      }
      if (n > 0) {
        this.#writerSeen = true;
        return this.#buf.subarray(0, n);
      }
      if (!this.#fifo || this.#writerSeen) {
        this.#ended = true;
        return null;
      }
      const left = this.#since + this.#waitMs - performance.now();
      if (left <= 0) throw new NoWriterError(this.#waitMs);
      sleepSync(Math.min(pause, left));
      pause = Math.min(POLL_MAX_MS, pause * 2);
    }
  }
}

export interface ScanOptions {
  /** most bytes in one line (without its newline); a longer line throws LineTooLongError as soon as seen */
  maxLineBytes?: number;
  /** also give onLine the bytes after the last newline (default false: they are only counted in tailBytes) */
  lastLine?: boolean;
}

/** Calls onLine(text, 1-based line number, byte offset where the line starts) for each newline-ended line. */
export function scanLines(file: string, onLine: OnLine, options: ScanOptions = {}): LineScan {
  const { fd } = openRegularFileSync(file, 'the file'); // a FIFO planted in an output's place must not block
  try {
    const lines = new LineSplitter(onLine, options.maxLineBytes);
    readChunks(fd, (chunk) => lines.push(chunk));
    return lines.end(options.lastLine === true);
  } finally {
    closeSync(fd);
  }
}
