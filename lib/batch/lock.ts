// OUT.lock: one batch process per predictions file (two would run the same studies twice).
//
// The lock file holds its owner's pid, host name, boot id (Linux), a random token and the start time, and is
// never seen half-written: its content goes to a temporary file with a unique name first, which is then
// hard-linked to OUT.lock (link(2) fails when OUT.lock exists: an exclusive create, with the content in place).
// Its owner touches its mtime every few seconds (the heartbeat: a sixth of staleMs, at most 5 s).
//
// Stale: a lock is taken over only when its owner is gone — a process of this host that is not alive, a
// process of an earlier boot of this host (another boot id), or this very process id without this process
// holding it (a restarted container reuses pids); or, for a lock of another host (whose processes cannot be
// checked from here: a pod rescheduled to another node, a node that died), when its heartbeat has stopped:
// the starter watches the lock's mtime for staleMs (LLAVA_RAD_LOCK_STALE_MS, default 60 s) by its own clock
// and refuses as soon as the mtime moves. Clocks of different machines are never compared. A lock file that
// is not ours (unreadable, not JSON) is not taken over.
//
// An owner whose heartbeat stopped for that long (its node cut off from the shared folder, its process
// suspended) may find its lock taken over when it comes back: `verify()` (each heartbeat, and a writer's
// before each record it appends) then throws IO, and it writes nothing more.
//
// Takeover, race-free: the starters that find the same stale lock first each try to create a claim file
// named after a hash of that lock's content, exclusively (O_EXCL): one wins. The winner reads OUT.lock again,
// and only when it still holds the same content unlinks it, then deletes its claim and tries the link again;
// the others give up at once (IO: the lock is being taken over). Why only one starter ever owns OUT.lock:
//   - OUT.lock is created only by link(), which never replaces a file;
//   - it is removed only by its owner (release, which checks the token first) or by the holder of the claim
//     on its content, after reading that content at OUT.lock while holding the claim. Lock contents are never
//     repeated (the token is random), so once a stale lock is removed, a later claim on it finds other
//     content and removes nothing; and while one process holds the claim, no other can, so between its read
//     and its unlink nobody else removes or replaces that file (its owner is dead; link() does not replace);
//   - a live owner is never judged stale, so its lock is never claimed.
// After a takeover, starters race for the link like on a free lock: exactly one link succeeds. A starter
// that dies while holding a claim leaves OUT.lock stuck (the error names both files to delete).

import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, linkSync, mkdirSync, openSync, readFileSync, readSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { abortedError, LlavaRadError } from '../errors.js';

/** how long a lock of another host must show no heartbeat before it is taken over (LLAVA_RAD_LOCK_STALE_MS) */
export const LOCK_STALE_MS = 60_000;
/** the most time between two heartbeats of an owner */
const MAX_HEARTBEAT_MS = 5_000;
/** a lock file is a line of JSON; anything longer is not ours */
const MAX_LOCK_BYTES = 4096;
/** link/take-over rounds before giving up (each round but the last removed a stale lock) */
const ATTEMPTS = 8;

interface LockInfo {
  pid: number;
  host: string;
  /** Linux boot id ('' elsewhere): tells a lock of an earlier boot of this host */
  boot?: string;
  /** random: makes every lock's content unique */
  token?: string;
  started: string;
}

interface ReadLock {
  info: LockInfo | null;
  /** sha256 of the file's bytes (names the claim to take this lock over) */
  hash: string;
  /** last heartbeat (owner's clock), for messages */
  mtime: Date;
}

/** tokens of the locks this process holds */
const held = new Set<string>();

let bootIdCache: string | undefined;
function bootId(): string {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootIdCache = '';
    }
  }
  return bootIdCache;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const code = (e: unknown) => (e as NodeJS.ErrnoException).code;

/**
 * Reads a lock file (not following a symbolic link; non-blocking, so a FIFO planted there cannot hold the
 * open: it is read as not ours). null when it does not exist.
 */
function readLock(file: string): ReadLock | null {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    if (code(e) === 'ENOENT') return null;
    if (code(e) === 'ELOOP') return { info: null, hash: 'symlink', mtime: new Date(0) };
    throw new LlavaRadError('IO', `cannot read the lock ${file}: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return { info: null, hash: 'not a regular file', mtime: st.mtime };
    const buf = Buffer.alloc(MAX_LOCK_BYTES + 1);
    let n = 0;
    for (let k; n < buf.length && (k = readSync(fd, buf, n, buf.length - n, null)) > 0;) n += k;
    const bytes = buf.subarray(0, n);
    const hash = createHash('sha256').update(bytes).digest('hex');
    let info: LockInfo | null = null;
    if (n <= MAX_LOCK_BYTES) {
      try {
        const v = JSON.parse(bytes.toString('utf8')) as Partial<LockInfo>;
        if (typeof v.pid === 'number' && Number.isSafeInteger(v.pid) && v.pid > 0 && typeof v.host === 'string' && typeof v.started === 'string') info = v as LockInfo;
      } catch {
        // not ours
      }
    }
    return { info, hash, mtime: st.mtime };
  } catch (e) {
    throw new LlavaRadError('IO', `cannot read the lock ${file}: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

export interface LockOptions {
  /** a lock of another host is taken over after this long without a heartbeat (ms; default LLAVA_RAD_LOCK_STALE_MS, else LOCK_STALE_MS) */
  staleMs?: number;
  /** told once when a lock of another host is being watched */
  onWait?: (message: string) => void;
  /** stops the watch (ABORTED) */
  signal?: AbortSignal;
}

/** A lock held: call it to release; `verify()` throws IO when it is no longer this process's lock. */
export type HeldLock = (() => void) & { verify(): void };

/** staleMs, else $LLAVA_RAD_LOCK_STALE_MS, else LOCK_STALE_MS; INVALID_ARGUMENT when not a count of ms from 100 */
export function lockStaleMs(options: LockOptions = {}, env: NodeJS.ProcessEnv = process.env): number {
  const given = options.staleMs ?? (env.LLAVA_RAD_LOCK_STALE_MS?.trim() ? Number(env.LLAVA_RAD_LOCK_STALE_MS) : LOCK_STALE_MS);
  if (!Number.isSafeInteger(given) || given < 100) {
    const what = options.staleMs !== undefined ? 'staleMs' : 'LLAVA_RAD_LOCK_STALE_MS';
    throw new LlavaRadError('INVALID_ARGUMENT', `${what} must be a whole number of milliseconds from 100, got ${String(options.staleMs ?? env.LLAVA_RAD_LOCK_STALE_MS)}`);
  }
  return given;
}

/** an owner's time between heartbeats: a sixth of the stale time (a watcher sees several), at most 5 s */
const heartbeatMs = (staleMs: number) => Math.max(10, Math.min(MAX_HEARTBEAT_MS, Math.floor(staleMs / 6)));

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Watches a lock of another host for staleMs: null as soon as its heartbeat moves (or it is released or
 * replaced: the caller looks again), else why it is stale.
 */
async function heartbeatStopped(lock: string, cur: ReadLock, staleMs: number, signal: AbortSignal | undefined): Promise<string | null> {
  const start = performance.now();
  const poll = Math.max(10, Math.min(1000, Math.floor(staleMs / 20)));
  while (performance.now() - start < staleMs) {
    await sleep(poll);
    if (signal?.aborted) throw abortedError(signal, `waiting for the lock ${lock}`);
    const now = readLock(lock);
    if (now === null || now.hash !== cur.hash || now.mtime.getTime() !== cur.mtime.getTime()) return null;
  }
  return `its heartbeat has stopped (no beat for ${staleMs / 1000} s, watched from here)`;
}

/** Why the lock's owner is certainly gone, or null when it may be alive (or cannot be checked from here). */
function staleReason(info: LockInfo): string | null {
  if (info.host !== hostname()) return null;
  const boot = bootId();
  if (info.boot && boot && info.boot !== boot) return 'its owner ran before this host restarted';
  if (info.pid === process.pid) return info.token !== undefined && held.has(info.token) ? null : 'its owner had this process id (a restarted container)';
  return alive(info.pid) ? null : `its owner, process ${info.pid}, is not running`;
}

/** Creates `file` exclusively with `text`. false when it exists. */
function createExclusive(file: string, text: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
  } catch (e) {
    if (code(e) === 'EEXIST') return false;
    throw new LlavaRadError('IO', `cannot create ${file}: ${(e as Error).message}`);
  }
  try {
    writeSync(fd, text);
  } catch (e) {
    closeSync(fd);
    unlinkQuietly(file);
    throw new LlavaRadError('IO', `cannot write ${file}: ${(e as Error).message}`);
  }
  closeSync(fd);
  return true;
}

function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}

/** Makes `lock` a link to `tmp` unless `lock` exists. false when it exists. */
function linkExclusive(tmp: string, lock: string, text: string): boolean {
  try {
    linkSync(tmp, lock);
    return true;
  } catch (e) {
    if (code(e) === 'EEXIST') return false;
    // a file system without hard links: an exclusive create, the content written just after (a reader in
    // between finds an empty file: not ours, so it is refused, never taken over)
    if (['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK'].includes(code(e) ?? '')) return createExclusive(lock, text);
    throw new LlavaRadError('IO', `cannot create ${lock}: ${(e as Error).message}`);
  }
}

function ownerWords(r: ReadLock): string {
  const i = r.info!;
  return `process ${i.pid} on ${i.host} (since ${i.started}; last heartbeat ${r.mtime.toISOString()})`;
}

/**
 * Takes OUT.lock (creating OUT's folder if needed); returns its release function (with verify()). Throws IO
 * when another process holds it (or is taking a stale one over), or when OUT.lock is not a lock of llava-rad
 * batch. A lock of another host is watched for its heartbeat first (up to staleMs).
 */
export async function acquireLock(out: string, options: LockOptions = {}): Promise<HeldLock> {
  const staleMs = lockStaleMs(options);
  const lock = `${out}.lock`;
  const token = randomBytes(16).toString('hex');
  const info: LockInfo = { pid: process.pid, host: hostname(), boot: bootId(), token, started: new Date().toISOString() };
  const text = JSON.stringify(info) + '\n';
  const tmp = `${lock}.${token}.tmp`;
  try {
    mkdirSync(path.dirname(path.resolve(lock)), { recursive: true }); // the journal creates OUT's folder too
  } catch (e) {
    throw new LlavaRadError('IO', `cannot create the folder of ${lock}: ${(e as Error).message}`);
  }
  createExclusive(tmp, text);
  try {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (linkExclusive(tmp, lock, text)) return owned(lock, token, staleMs);
      const cur = readLock(lock);
      if (cur === null) continue; // released meanwhile: try again
      if (cur.info?.token === token) return owned(lock, token, staleMs); // our link went through after all (NFS)
      if (cur.info === null) {
        throw new LlavaRadError('IO',
          `${lock} exists and is not a lock of llava-rad batch (unreadable or not its JSON): one batch per output file. If no batch is writing ${out}, delete ${lock}`);
      }
      let why = staleReason(cur.info);
      const otherHost = cur.info.host !== hostname();
      if (why === null && otherHost) {
        options.onWait?.(`${lock} is held by ${ownerWords(cur)}: watching its heartbeat for up to ${staleMs / 1000} s`);
        why = await heartbeatStopped(lock, cur, staleMs, options.signal);
        const again = readLock(lock);
        if (why === null && (again === null || again.hash !== cur.hash)) continue; // released or replaced meanwhile: look again
      }
      if (why === null) {
        const words = otherHost
          ? `its heartbeat is running (a lock of another machine is taken over once its heartbeat has stopped for ${staleMs / 1000} s)`
          : cur.info.pid === process.pid ? 'this process already holds it' : `stop that process first, or write to another --out`;
        throw new LlavaRadError('IO', `${out} is being written by ${ownerWords(cur)}: one batch per output file; ${words}`);
      }
      // stale: one starter takes it over (see the top of this file)
      const claim = `${lock}.takeover-${cur.hash.slice(0, 32)}`;
      if (!createExclusive(claim, text)) {
        let claimant = 'another process';
        const c = readLock(claim);
        if (c?.info) claimant = `process ${c.info.pid} on ${c.info.host}`;
        throw new LlavaRadError('IO',
          `${out}: the stale lock of ${ownerWords(cur)} is being taken over by ${claimant}: one batch per output file. If no batch is running, delete ${lock} and ${claim}`);
      }
      try {
        const again = readLock(lock);
        if (again !== null && again.hash === cur.hash) unlinkSync(lock);
      } finally {
        unlinkQuietly(claim);
      }
    }
    throw new LlavaRadError('IO', `cannot take ${lock}: it was replaced ${ATTEMPTS} times while trying; one batch per output file`);
  } finally {
    unlinkQuietly(tmp);
  }
}

function owned(lock: string, token: string, staleMs: number): HeldLock {
  held.add(token);
  let lost: LlavaRadError | null = null;
  /** null while OUT.lock is ours, else the error saying what became of it */
  const check = (): LlavaRadError | null => {
    if (lost) return lost;
    let now: ReadLock | null;
    try {
      now = readLock(lock);
    } catch {
      return null; // unreadable for a moment (a network file system): judged at the next look
    }
    if (now?.info?.token === token) return null;
    lost = new LlavaRadError('IO', now === null
      ? `${lock} was deleted while this process held it: it stops writing (one batch per output file)`
      : `${lock} was taken over by ${now.info ? ownerWords(now) : 'something else'} (this process's heartbeat had stopped for ${staleMs / 1000} s): it stops writing; one batch per output file`);
    return lost;
  };
  const beat = setInterval(() => {
    if (check()) {
      clearInterval(beat);
      return;
    }
    try {
      const now = new Date();
      utimesSync(lock, now, now);
    } catch {
      // judged at the next look
    }
  }, heartbeatMs(staleMs));
  beat.unref();
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    clearInterval(beat);
    held.delete(token);
    try {
      // only our own lock (never one that replaced it)
      if (readLock(lock)?.info?.token === token) unlinkSync(lock);
    } catch {
      // already gone
    }
  };
  return Object.assign(release, {
    verify: () => {
      const e = released ? new LlavaRadError('IO', `${lock} was released`) : check();
      if (e) throw e;
    },
  });
}
