// Writers that put a finished file in place by renaming a temporary file over it, so that readers see the
// old file or the new one, never a part: the converters, the retrieval index and its export, `merge`.
// Two rules keep that safe in shared folders and as root:
//   - the temporary file has a random name beside the destination and is created exclusively (O_EXCL, which
//     also refuses a symbolic link): a link planted under a name that can be guessed would otherwise have
//     the output written through it, wherever it points;
//   - the destination, where it exists, must be a regular file (a link is followed): a rename replaces
//     whatever has the name, so renaming over a device node would replace it (as root, `--out /dev/null`
//     put a GGUF where /dev/null was, for every process of the machine), and over a folder it fails only
//     at the end.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { fsyncDir } from './batch/journal.js';
import { LlavaRadError } from './errors.js';
import { fileKind } from './regular-file.js';

/** a new temporary name in the folder of `file`: ".NAME.RANDOM.tmp" (create it exclusively: 'wx', O_EXCL) */
export function tempPathFor(file: string): string {
  return path.join(path.dirname(path.resolve(file)), `.${path.basename(file)}.${randomBytes(8).toString('hex')}.tmp`);
}

/**
 * INVALID_ARGUMENT unless `file` is absent or a regular file (links followed); `what` names it ("outPath",
 * "the index"). Writers call it before any work, so a wrong destination fails at once.
 */
export function checkReplaceable(file: string, what: string): void {
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // a new file (or a dangling link, which the rename replaces), or its folder not made yet
    if (code === 'ENOENT' || code === 'ENOTDIR') return;
    throw new LlavaRadError('IO', `cannot write ${what} ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (!st.isFile()) throw new LlavaRadError('INVALID_ARGUMENT', `${what} must be a regular file or a new one, got ${fileKind(st)}: ${file}`);
}

/** writes bytes at a position (or appending when null) */
export type PositionalWrite = (bytes: Uint8Array, position: number | null) => void;

/**
 * Calls fill(write) on a new temporary file (tempPathFor), then fsyncs it, renames it to `file` and fsyncs
 * the folder. A failure removes the temporary file; what `fill` throws is rethrown, other failures are IO
 * naming `what`. INVALID_ARGUMENT before anything is written when `file` is not replaceable.
 */
export function writeFileAtomically(file: string, what: string, fill: (write: PositionalWrite) => void): void {
  checkReplaceable(file, what);
  const tmp = tempPathFor(file);
  let fd = -1;
  let created = false;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    created = true;
    const f = fd;
    fill((bytes, position) => {
      for (let off = 0; off < bytes.length;) off += writeSync(f, bytes, off, bytes.length - off, position === null ? null : position + off);
    });
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, file);
    fsyncDir(path.dirname(tmp));
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    if (created) {
      try {
        unlinkSync(tmp);
      } catch {
        // already renamed
      }
    }
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `cannot write ${what} ${file}: ${(e as Error).message}`, { cause: e });
  }
}
