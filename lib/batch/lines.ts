// Reads a text file line by line in fixed-size chunks (a predictions file or a manifest may be large),
// synchronously. An optional limit on a line's length is checked as the bytes arrive: a line longer than it
// is refused after at most one more chunk is read, never buffered whole (a file with no newline at all is
// not read to its end).

import { closeSync, openSync, readSync } from 'node:fs';

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

export type OnLine = (text: string, line: number, start: number) => void;

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
      this.#onLine(bytes.toString('utf8'), ++this.#line, start);
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
      this.#onLine(bytes.toString('utf8'), ++this.#line, this.#lineStart);
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

export interface ScanOptions {
  /** most bytes in one line (without its newline); a longer line throws LineTooLongError as soon as seen */
  maxLineBytes?: number;
  /** also give onLine the bytes after the last newline (default false: they are only counted in tailBytes) */
  lastLine?: boolean;
}

/** Calls onLine(text, 1-based line number, byte offset where the line starts) for each newline-ended line. */
export function scanLines(file: string, onLine: OnLine, options: ScanOptions = {}): LineScan {
  const fd = openSync(file, 'r');
  try {
    const lines = new LineSplitter(onLine, options.maxLineBytes);
    readChunks(fd, (chunk) => lines.push(chunk));
    return lines.end(options.lastLine === true);
  } finally {
    closeSync(fd);
  }
}
