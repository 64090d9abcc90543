// Writing a whole file so that readers see the old one or the new one, never a part: a temporary file
// beside it, fsync'd, renamed over it, the folder fsync'd. A failure removes the temporary file.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { LlavaRadError } from '../errors.js';
import { fsyncDir } from '../batch/journal.js';

/** writes bytes at a position (or appending when null) */
export type PositionalWrite = (bytes: Uint8Array, position: number | null) => void;

/** Calls fill(write) on a new temporary file, then puts it at `file`. IO names `what` on failure. */
export function writeFileAtomically(file: string, what: string, fill: (write: PositionalWrite) => void): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    const f = fd;
    fill((bytes, position) => {
      for (let off = 0; off < bytes.length;) off += writeSync(f, bytes, off, bytes.length - off, position === null ? null : position + off);
    });
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, file);
    fsyncDir(dir);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or already renamed
    }
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `cannot write ${what} ${file}: ${(e as Error).message}`);
  }
}
