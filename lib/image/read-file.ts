// Reading an image file a user named: a regular file of bounded size, read once, never a device or a FIFO.
//
// A path to /dev/zero would otherwise be read until memory runs out, and a FIFO would block the read (and the
// process's shutdown) forever. The file is opened as lib/regular-file.ts does (non-blocking, checked on the
// open descriptor) and read up to the size it had then.

import { LlavaRadError } from '../errors.js';
import { openRegularFile } from '../regular-file.js';

/** the largest image file read (a big multi-frame DICOM is a few hundred MB) */
export const MAX_IMAGE_FILE_BYTES = 1 << 30;

/** The bytes of the image file `file`; LlavaRadError IO (missing, unreadable, not a regular file) or IMAGE_TOO_LARGE. */
export async function readImageFile(file: string, maxBytes = MAX_IMAGE_FILE_BYTES): Promise<Buffer> {
  const { fh, size } = await openRegularFile(file, 'the image');
  try {
    if (size > maxBytes) {
      throw new LlavaRadError('IMAGE_TOO_LARGE', `${file} is ${size} bytes; image files are read up to ${maxBytes} bytes`);
    }
    const buf = Buffer.allocUnsafe(size);
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
