// Opening a file a user named for reading: it must be a regular file. It is opened non-blocking, so that a
// FIFO with no writer opens at once instead of blocking the open (a synchronous open would block the event
// loop; an asynchronous one a libuv thread and the promise, for ever), then checked on the open descriptor
// (no race with a rename). O_NONBLOCK changes nothing for the reads of a regular file.

import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { LlavaRadError } from './errors.js';

/** the most a WordPiece vocabulary file may hold (bert-base-uncased's: 231 KB) */
export const MAX_VOCAB_FILE_BYTES = 64 << 20;

const FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

interface StatLike { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }

/** what a file that is not a regular one is, for messages: "a FIFO", "a directory", ... */
export function fileKind(st: StatLike): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Opens `file` for reading; `what` names it in errors ("the index", "the GGUF"). IO when it cannot be opened or
 * is not a regular file. The caller closes the handle.
 */
export async function openRegularFile(file: string, what: string): Promise<{ fh: FileHandle; size: number }> {
  let fh: FileHandle;
  try {
    fh = await open(file, FLAGS);
  } catch (e) {
    throw new LlavaRadError('IO', `cannot open ${what} ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new LlavaRadError('IO', `cannot read ${what} ${file}: it is ${fileKind(st)}, not a regular file`);
    return { fh, size: st.size };
  } catch (e) {
    await fh.close();
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `cannot read ${what} ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * the bytes of a regular file of at most `maxBytes`, asynchronously; `tooLarge` makes the error for a larger one
 * (default: IO naming both sizes). IO when it is not a regular file or cannot be read.
 */
export async function readRegularFile(file: string, what: string, maxBytes: number, tooLarge?: (size: number) => Error): Promise<Buffer> {
  const { fh, size } = await openRegularFile(file, what);
  try {
    if (size > maxBytes) throw tooLarge?.(size) ?? new LlavaRadError('IO', `${what} ${file} has ${size} bytes; at most ${maxBytes} are read`);
    const buf = Buffer.allocUnsafe(size);
    let n = 0;
    while (n < size) {
      let got: number;
      try {
        got = (await fh.read(buf, n, size - n, n)).bytesRead;
      } catch (e) {
        throw new LlavaRadError('IO', `cannot read ${what} ${file}: ${(e as Error).message}`, { cause: e });
      }
      if (got === 0) break; // the file shrank
      n += got;
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close().catch(() => {});
  }
}

/** openRegularFile for synchronous readers: a descriptor the caller closes */
export function openRegularFileSync(file: string, what: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = openSync(file, FLAGS);
  } catch (e) {
    throw new LlavaRadError('IO', `cannot open ${what} ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new LlavaRadError('IO', `cannot read ${what} ${file}: it is ${fileKind(st)}, not a regular file`);
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `cannot read ${what} ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** the bytes of a small regular file (a vocabulary, a query image): IO when it is not one, or over `maxBytes` */
export function readRegularFileSync(file: string, what: string, maxBytes: number): Buffer {
  const { fd, size } = openRegularFileSync(file, what);
  try {
    if (size > maxBytes) throw new LlavaRadError('IO', `${what} ${file} has ${size} bytes; at most ${maxBytes} are read`);
    const buf = Buffer.allocUnsafe(size);
    let n = 0;
    while (n < size) {
      const got = readSync(fd, buf, n, size - n, n);
      if (got === 0) break; // the file shrank
      n += got;
    }
    return buf.subarray(0, n);
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `cannot read ${what} ${file}: ${(e as Error).message}`, { cause: e });
  } finally {
    closeSync(fd);
  }
}
