// Reading an image file a user named: a regular file of bounded size, read once, never a device or a FIFO.
//
// A path to /dev/zero would otherwise be read until memory runs out, and a FIFO would block the read (and the
// process's shutdown) forever. The file is opened non-blocking (so a FIFO opens at once), checked on the open
// descriptor (no race with a rename), and read up to the size it had then.

import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { LlavaRadError } from '../errors.js';

/** the largest image file read (a big multi-frame DICOM is a few hundred MB) */
export const MAX_IMAGE_FILE_BYTES = 1 << 30;

function kindOf(st: { isDirectory(): boolean; isFIFO(): boolean; isCharacterDevice(): boolean; isBlockDevice(): boolean; isSocket(): boolean }): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** The bytes of the image file `file`; LlavaRadError IO (missing, unreadable, not a regular file) or IMAGE_TOO_LARGE. */
export async function readImageFile(file: string, maxBytes = MAX_IMAGE_FILE_BYTES): Promise<Buffer> {
  let fh: FileHandle;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new LlavaRadError('IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new LlavaRadError('IO', `cannot read ${file}: it is ${kindOf(st)}, not an image file`);
    if (st.size > maxBytes) {
      throw new LlavaRadError('IMAGE_TOO_LARGE', `${file} is ${st.size} bytes; image files are read up to ${maxBytes} bytes`);
    }
    const buf = Buffer.allocUnsafe(st.size);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break; // the file shrank
      n += bytesRead;
    }
    return buf.subarray(0, n);
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  } finally {
    await fh.close();
  }
}
