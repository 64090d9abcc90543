// Issue #14 item 4: OUT.lock is taken over atomically. 50 processes start at once on a stale lock (its owner
// a process that has exited): exactly one wins, the others get IO, and only the winner writes. Then the
// staleness rules one by one: a live owner, another host (its heartbeat watched), this process, an earlier boot,
// a lock that is not ours, a symbolic link, a takeover left half done, a release that finds another lock in its
// place, an owner whose lock was taken over.
import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireLock, lockStaleMs, type LockOptions } from '../lib/batch/lock.js';
import { LlavaRadError } from '../lib/errors.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-lock-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** the pid of a process that has exited */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  expect(r.status).toBe(0);
  return r.pid!;
}

/** a lock as the earlier lock.ts wrote it (pid, host, started): every version takes this one over */
function staleLock(out: string): string {
  const lock = `${out}.lock`;
  writeFileSync(lock, JSON.stringify({ pid: deadPid(), host: hostname(), started: new Date(Date.now() - 60_000).toISOString() }) + '\n');
  return lock;
}

async function lockError(out: string, options: LockOptions = {}): Promise<LlavaRadError> {
  try {
    (await acquireLock(out, options))();
  } catch (e) {
    expect(e).toBeInstanceOf(LlavaRadError);
    return e as LlavaRadError;
  }
  throw new Error(`acquireLock(${out}) succeeded`);
}

const lockFiles = (dir: string) => readdirSync(dir).filter((f) => f.includes('.lock')).sort();

describe('takeover of a stale lock by racing starters', () => {
  // the processes start once; each round plants a stale lock and releases all 50 at once
  const N = 50;
  const ROUNDS = 4;

  it(`${N} processes at once on a stale lock, ${ROUNDS} rounds: each round exactly one wins, ${N - 1} get IO, one writer`, async () => {
    const dir = path.join(tmp, 'race');
    mkdirSync(dir);
    const out = path.join(dir, 'predictions.jsonl');

    const racers: { child: ChildProcessWithoutNullStreams; next: () => Promise<string>; closed: Promise<number | null> }[] = [];
    for (let i = 0; i < N; i++) {
      const child = spawn(process.execPath, ['--import', pathToFileURL(path.join(root, 'scripts', 'ts-hooks.mjs')).href,
        path.join(here, 'helpers', 'lock-racer.mjs'), path.join(root, 'lib', 'batch', 'lock.ts'), out], { cwd: root });
      const lines: string[] = [];
      let buf = '';
      let err = '';
      let exited = false;
      const waiters: (() => void)[] = [];
      const wake = () => waiters.splice(0).forEach((w) => w());
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
          lines.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
        wake();
      });
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const closed = new Promise<number | null>((resolve) => child.on('close', (c) => {
        exited = true;
        wake();
        resolve(c);
      }));
      const next = async (): Promise<string> => {
        while (lines.length === 0) {
          if (exited) throw new Error(`racer ${i} exited: ${err}`);
          await new Promise<void>((r) => waiters.push(r));
        }
        return lines.shift()!;
      };
      racers.push({ child, next, closed });
    }
    try {
      for (const r of racers) expect(await r.next()).toBe('READY');
      for (let round = 0; round < ROUNDS; round++) {
        const shared = path.join(dir, `writers-${round}.txt`);
        writeFileSync(shared, '');
        staleLock(out);
        // every starter is blocked reading stdin: release them together
        for (const r of racers) r.child.stdin.write(`go ${shared}\n`);
        const results = await Promise.all(racers.map((r) => r.next()));
        const won = results.filter((l) => l === 'WON');
        const lost = results.filter((l) => l.startsWith('LOST '));
        expect(won.length, `round ${round}:\n${results.join('\n')}`).toBe(1);
        expect(lost.length).toBe(N - 1);
        for (const l of lost) expect(l, l).toMatch(/^LOST IO .*(is being written by process \d+ on |is being taken over by )/);
        // the winner still holds the lock here: only it has written
        expect(readFileSync(shared, 'utf8').trim().split('\n')).toHaveLength(1);
        expect(lockFiles(dir)).toEqual(['predictions.jsonl.lock']);
        for (const r of racers) r.child.stdin.write('end\n');
        for (const r of racers) expect(await r.next()).toBe('DONE');
        // released: no lock, no temporary or claim file left
        expect(lockFiles(dir)).toEqual([]);
      }
    } finally {
      for (const r of racers) r.child.stdin.end();
      await Promise.all(racers.map((r) => r.closed));
    }
  }, 300_000);
});

describe('which locks are taken over', () => {
  let n = 0;
  const fresh = () => {
    const dir = path.join(tmp, `case-${n++}`);
    mkdirSync(dir);
    return { dir, out: path.join(dir, 'p.jsonl') };
  };

  it('a free lock is taken and released; the lock file holds pid, host, boot id and a random token', async () => {
    const { dir, out } = fresh();
    const release = await acquireLock(out);
    const info = JSON.parse(readFileSync(`${out}.lock`, 'utf8')) as Record<string, unknown>;
    expect(info).toMatchObject({ pid: process.pid, host: hostname(), token: expect.stringMatching(/^[0-9a-f]{32}$/) });
    expect(typeof info.boot).toBe('string');
    expect(lockFiles(dir)).toEqual(['p.jsonl.lock']);
    release();
    release();
    expect(lockFiles(dir)).toEqual([]);
  });

  it('a dead owner on this host is taken over (the earlier lock format too)', async () => {
    const { dir, out } = fresh();
    staleLock(out);
    const release = await acquireLock(out);
    expect(JSON.parse(readFileSync(`${out}.lock`, 'utf8'))).toMatchObject({ pid: process.pid });
    release();
    expect(lockFiles(dir)).toEqual([]);
  });

  it('a live owner on this host is not: IO naming it, the lock untouched', async () => {
    const { out } = fresh();
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const text = JSON.stringify({ pid: sleeper.pid, host: hostname(), token: 'a'.repeat(32), started: 'then' }) + '\n';
      writeFileSync(`${out}.lock`, text);
      const e = await lockError(out);
      expect(e.code).toBe('IO');
      expect(e.message).toMatch(new RegExp(`is being written by process ${sleeper.pid} on .*stop that process first`));
      expect(readFileSync(`${out}.lock`, 'utf8')).toBe(text);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it('a lock of another host is watched: refused at once while its heartbeat runs, taken over once it has stopped for staleMs', async () => {
    const { dir, out } = fresh();
    const text = JSON.stringify({ pid: deadPid(), host: `${hostname()}-elsewhere`, token: 'b'.repeat(32), started: '2020-01-01T00:00:00.000Z' }) + '\n';
    writeFileSync(`${out}.lock`, text);
    // its owner alive on the other host: the mtime moves every 50 ms
    const beat = setInterval(() => { const t = new Date(); utimesSync(`${out}.lock`, t, t); }, 50);
    const waits: string[] = [];
    const t0 = performance.now();
    try {
      const e = await lockError(out, { staleMs: 3000, onWait: (m) => waits.push(m) });
      expect(e.code).toBe('IO');
      expect(e.message).toMatch(/is being written by process \d+ on .*-elsewhere .*its heartbeat is running \(a lock of another machine is taken over once its heartbeat has stopped for 3 s\)$/);
      expect(performance.now() - t0, 'refused once a beat was seen, before staleMs had passed').toBeLessThan(3000);
    } finally {
      clearInterval(beat);
    }
    expect(waits).toEqual([expect.stringMatching(/p\.jsonl\.lock is held by process \d+ on .*-elsewhere .*watching its heartbeat for up to 3 s$/)]);
    expect(readFileSync(`${out}.lock`, 'utf8')).toBe(text);
    // the heartbeat stopped (the owner's node died): watched for staleMs, then taken over
    const t1 = performance.now();
    const release = await acquireLock(out, { staleMs: 600 });
    expect(performance.now() - t1, 'watched for staleMs first').toBeGreaterThanOrEqual(590);
    expect(JSON.parse(readFileSync(`${out}.lock`, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    release();
    expect(lockFiles(dir)).toEqual([]);
  });

  it('an owner whose lock was taken over (or deleted) while its heartbeat had stopped: verify() throws IO, release leaves the new lock', async () => {
    const { out } = fresh();
    const lock = await acquireLock(out, { staleMs: 600 });
    lock.verify();
    const other = JSON.stringify({ pid: 4242, host: `${hostname()}-elsewhere`, token: 'f'.repeat(32), started: 'now' }) + '\n';
    rmSync(`${out}.lock`);
    writeFileSync(`${out}.lock`, other);
    expect(() => lock.verify()).toThrow(/p\.jsonl\.lock was taken over by process 4242 on .*-elsewhere .*it stops writing/);
    lock();
    expect(readFileSync(`${out}.lock`, 'utf8')).toBe(other);
    const again = await acquireLock(path.join(path.dirname(out), 'q.jsonl'), { staleMs: 600 });
    rmSync(path.join(path.dirname(out), 'q.jsonl.lock'));
    expect(() => again.verify()).toThrow(/q\.jsonl\.lock was deleted while this process held it/);
    again();
  });

  it('LLAVA_RAD_LOCK_STALE_MS sets the watch (INVALID_ARGUMENT when not a count of ms from 100)', async () => {
    expect(lockStaleMs({}, {})).toBe(60_000);
    expect(lockStaleMs({}, { LLAVA_RAD_LOCK_STALE_MS: '250' })).toBe(250);
    expect(lockStaleMs({ staleMs: 1000 }, { LLAVA_RAD_LOCK_STALE_MS: '250' })).toBe(1000);
    for (const bad of ['abc', '50', '1.5', '-1']) {
      expect(() => lockStaleMs({}, { LLAVA_RAD_LOCK_STALE_MS: bad }), bad).toThrow(/LLAVA_RAD_LOCK_STALE_MS must be a whole number of milliseconds from 100/);
    }
  });

  it('this host before a restart (another boot id) is taken over; this process cannot take its own lock twice', async () => {
    const { dir, out } = fresh();
    const release = await acquireLock(out);
    const mine = JSON.parse(readFileSync(`${out}.lock`, 'utf8')) as { boot: string };
    expect((await lockError(out)).message).toMatch(/this process already holds it/);
    release();
    if (mine.boot !== '') {
      // alive pid (ours), but an earlier boot
      writeFileSync(`${out}.lock`, JSON.stringify({ pid: process.ppid, host: hostname(), boot: 'earlier-boot', token: 'c'.repeat(32), started: 'then' }) + '\n');
      (await acquireLock(out))();
    }
    // this process id without this process holding it: a restarted container
    writeFileSync(`${out}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), token: 'd'.repeat(32), started: 'then' }) + '\n');
    (await acquireLock(out))();
    expect(lockFiles(dir)).toEqual([]);
  });

  it('a lock that is not ours (empty, not JSON, a symbolic link, a FIFO) is refused, not taken over', async () => {
    const { out } = fresh();
    for (const text of ['', 'garbage', '{"pid":"x"}']) {
      writeFileSync(`${out}.lock`, text);
      const e = await lockError(out);
      expect(e.code).toBe('IO');
      expect(e.message).toMatch(/p\.jsonl\.lock exists and is not a lock of llava-rad batch/);
      expect(readFileSync(`${out}.lock`, 'utf8')).toBe(text);
    }
    rmSync(`${out}.lock`);
    const target = path.join(path.dirname(out), 'target');
    writeFileSync(target, JSON.stringify({ pid: deadPid(), host: hostname(), started: 'then' }));
    symlinkSync(target, `${out}.lock`);
    expect((await lockError(out)).message).toMatch(/is not a lock of llava-rad batch/);
    expect(existsSync(target)).toBe(true);
    // a FIFO: its open must not wait for a writer (on 7851218 it blocked the process for ever, SIGTERM included)
    rmSync(`${out}.lock`);
    execFileSync('mkfifo', [`${out}.lock`]);
    expect((await lockError(out)).message).toMatch(/is not a lock of llava-rad batch/);
    expect(lstatSync(`${out}.lock`).isFIFO()).toBe(true);
  });

  it('a takeover left half done (a claim whose maker died) stops with the files to delete', async () => {
    const { dir, out } = fresh();
    staleLock(out);
    // the claim a starter makes on that stale lock (named by a hash of its content), its maker since dead
    const hash = createHash('sha256').update(readFileSync(`${out}.lock`)).digest('hex').slice(0, 32);
    const claim = `${out}.lock.takeover-${hash}`;
    writeFileSync(claim, JSON.stringify({ pid: deadPid(), host: hostname(), started: 'then' }));
    const e = await lockError(out);
    expect(e.code).toBe('IO');
    expect(e.message).toMatch(/the stale lock of process \d+ .* is being taken over by process \d+ on .*If no batch is running, delete .*p\.jsonl\.lock and .*takeover-[0-9a-f]{32}$/);
    rmSync(claim);
    (await acquireLock(out))();
    expect(lockFiles(dir)).toEqual([]);
  });

  it('release removes only its own lock', async () => {
    const { out } = fresh();
    const release = await acquireLock(out);
    // deleted by hand and taken by another batch meanwhile
    const other = JSON.stringify({ pid: process.ppid, host: hostname(), token: 'e'.repeat(32), started: 'now' }) + '\n';
    rmSync(`${out}.lock`);
    writeFileSync(`${out}.lock`, other);
    release();
    expect(readFileSync(`${out}.lock`, 'utf8')).toBe(other);
  });
});
