// Reads a text file line by line in fixed-size chunks (a predictions file may be large), synchronously.

import { closeSync, openSync, readSync } from 'node:fs';

export interface LineScan {
  /** bytes up to and including the last newline */
  completeBytes: number;
  /** bytes after the last newline (a torn last line), 0 when the file ends with a newline */
  tailBytes: number;
}

/** Calls onLine(text, 1-based line number, byte offset where the line starts) for each newline-ended line. */
export function scanLines(file: string, onLine: (text: string, line: number, start: number) => void): LineScan {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    let pending: Buffer[] = [];
    let pendingLen = 0;
    let pos = 0; // file offset of buf[0]
    let lineStart = 0;
    let line = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n === 0) break;
      let from = 0;
      for (let nl = buf.indexOf(10, 0); nl !== -1 && nl < n; nl = buf.indexOf(10, from)) {
        const piece = buf.subarray(from, nl);
        const bytes = pendingLen ? Buffer.concat([...pending, piece]) : piece;
        onLine(bytes.toString('utf8'), ++line, lineStart);
        lineStart = pos + nl + 1;
        pending = [];
        pendingLen = 0;
        from = nl + 1;
      }
      if (from < n) {
        pending.push(Buffer.from(buf.subarray(from, n)));
        pendingLen += n - from;
      }
      pos += n;
    }
    return { completeBytes: lineStart, tailBytes: pos - lineStart };
  } finally {
    closeSync(fd);
  }
}
