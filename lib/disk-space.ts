// Room on disk, checked before the first byte is written, so that a job that cannot fit fails at once, naming
// the folder and both sizes, instead of after hours with a full disk:
//   - a download (pull, pull-eval): Hugging Face lists every file's size; what a file still needs is nothing
//     when it is complete, the rest after a .part of an earlier run; needs are summed per file system;
//   - a conversion: the GGUFs' tensor bytes are known once the checkpoints are planned.

import { statfsSync, statSync } from 'node:fs';
import path from 'node:path';
import { LlavaRadError } from './errors.js';

export interface PlannedFile {
  /** where it goes (a .part beside it while downloading) */
  dest: string;
  /** its size as listed (unknown: counted as 0) */
  size: number | undefined;
}

const sizeOf = (file: string): number | undefined => {
  try {
    return statSync(file).size;
  } catch {
    return undefined;
  }
};

/** the nearest folder of `dir` that exists (the destination folders are made during the pull) */
function existingFolder(dir: string): string {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      if (statSync(d).isDirectory()) return d;
    } catch {
      // not there yet
    }
    if (path.dirname(d) === d) return d;
  }
}

const gb = (n: number) => `${(n / 1e9).toFixed(n < 1e10 ? 2 : 1)} GB`;

/** bytes `files` still need from the disk, per file system: its free bytes and the folder of its first file */
export function downloadNeeds(files: readonly PlannedFile[]): { folder: string; bytes: number; free: number }[] {
  const byDevice = new Map<number, { folder: string; bytes: number; free: number }>();
  for (const f of files) {
    const size = f.size ?? 0;
    const done = sizeOf(f.dest) === size ? size : Math.min(size, sizeOf(`${f.dest}.part`) ?? 0);
    if (size - done <= 0) continue;
    const existing = existingFolder(path.dirname(f.dest));
    const dev = statSync(existing).dev;
    let need = byDevice.get(dev);
    if (!need) {
      need = { folder: path.dirname(path.resolve(f.dest)), bytes: 0, free: freeBytes(existing) };
      byDevice.set(dev, need);
    }
    need.bytes += size - done;
  }
  return [...byDevice.values()];
}

/** the free bytes (for this user) of the file system `dir` is on, or of its nearest folder that exists */
export function freeBytes(dir: string): number {
  const fs = statfsSync(existingFolder(dir));
  return Number(fs.bavail) * Number(fs.bsize);
}

/** IO when the file system of `folder` has less than `bytes` free; `what` names the job ("the conversion") */
export function checkWriteSpace(folder: string, bytes: number, what: string): void {
  const free = freeBytes(folder);
  if (bytes > free) {
    throw new LlavaRadError('IO', `not enough disk space for ${what}: ${gb(bytes)} to write into ${path.resolve(folder)}, ${gb(free)} free there (free some space, or write elsewhere)`);
  }
}

/** IO when a file system lacks the room `files` still need */
export function checkDownloadSpace(files: readonly PlannedFile[]): void {
  for (const n of downloadNeeds(files)) {
    if (n.bytes > n.free) {
      throw new LlavaRadError('IO', `not enough disk space for the download: ${gb(n.bytes)} still to fetch into ${n.folder}, ${gb(n.free)} free there ` +
        '(free some space, or set LLAVA_RAD_HOME to a folder on a larger disk)');
    }
  }
}
