// OUT.lock: one batch process per predictions file (two would run the same studies twice). The lock holds
// the owner's pid and host and is touched every few seconds. A lock is stale, and taken over, when its
// owner is a dead process on this host, is this very process id (a restarted container reuses pids), or
// has not been touched for STALE_MS (a killed job on another node of a shared file system).

import { closeSync, openSync, readFileSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { LlavaRadError } from '../errors.js';

const HEARTBEAT_MS = 5_000;
const STALE_MS = 30_000;

interface LockInfo {
  pid: number;
  host: string;
  started: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function staleReason(lock: string): string | null {
  let info: Partial<LockInfo> = {};
  let mtime: number;
  try {
    mtime = statSync(lock).mtimeMs;
    info = JSON.parse(readFileSync(lock, 'utf8')) as Partial<LockInfo>;
  } catch {
    return 'unreadable';
  }
  if (Date.now() - mtime > STALE_MS) return 'no heartbeat';
  if (info.host === hostname() && typeof info.pid === 'number' && (info.pid === process.pid || !alive(info.pid))) return 'dead owner';
  return null;
}

/** Takes OUT.lock; returns its release function. Throws IO when another live process holds it. */
export function acquireLock(out: string): () => void {
  const lock = `${out}.lock`;
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(lock, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new LlavaRadError('IO', `cannot create ${lock}: ${(e as Error).message}`);
      if (attempt < 2 && staleReason(lock) !== null) {
        try {
          unlinkSync(lock);
        } catch {
          // another process took it over first; the next open tells
        }
        continue;
      }
      let owner = 'another process';
      try {
        const i = JSON.parse(readFileSync(lock, 'utf8')) as LockInfo;
        owner = `process ${i.pid} on ${i.host} (since ${i.started})`;
      } catch {
        // keep the generic words
      }
      throw new LlavaRadError('IO',
        `${out} is being written by ${owner}: one batch per output file. If that process is gone, the lock ${lock} is taken over ${STALE_MS / 1000} s after its last heartbeat, or delete it`);
    }
    const info: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
    writeSync(fd, JSON.stringify(info) + '\n');
    closeSync(fd);
    const beat = setInterval(() => {
      try {
        const now = new Date();
        utimesSync(lock, now, now);
      } catch {
        // a lost lock file only weakens the check
      }
    }, HEARTBEAT_MS);
    beat.unref();
    return () => {
      clearInterval(beat);
      try {
        unlinkSync(lock);
      } catch {
        // already gone
      }
    };
  }
}
