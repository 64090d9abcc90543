// The process pool: `size` children (bench/fuzz/child.mjs), each given one job (a target and a list of
// seeds) at a time. The parent watches every child: its "start"/"done" lines, its exit (a signal, or an exit
// between "start" and "done"), its memory (VmRSS sampled every 100 ms: over the peak limit it is killed)
// and its time on one input (over the hang limit it is killed). A child that dies is replaced and the rest
// of its job goes back to the front of the queue, after the input that killed it.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'child.mjs');

function memKiB(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0), hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0) };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

export class Pool {
  /**
   * opts: size, env (for the children), tmp (a folder; each child gets its own below it), hangMs, peakKiB,
   * onResult({target, seed, outcome, ms, peakKiB, detail}), deadline (ms since epoch; no job starts after it)
   */
  constructor(opts) {
    this.o = opts;
    this.queue = [];
    this.workers = [];
    this.maxRssKiB = 0;
    this.spawned = 0;
    this.failedStarts = 0;
  }

  run(jobs) {
    this.queue.push(...jobs);
    return new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      this.timer = setInterval(() => this.watch(), 100);
      for (let i = 0; i < this.o.size; i++) this.spawn(i);
    });
  }

  spawn(slot) {
    const dir = path.join(this.o.tmp, `child-${this.spawned++}`);
    mkdirSync(dir, { recursive: true });
    const child = spawn(process.execPath, ['--enable-source-maps', '--expose-gc', CHILD], {
      env: { ...process.env, ...this.o.env, FUZZ_TMP: dir },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const w = { slot, child, ready: false, job: null, done: 0, inFlight: null, stderr: '', killedFor: null, buf: '' };
    this.workers[slot] = w;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      w.buf += d;
      let nl;
      while ((nl = w.buf.indexOf('\n')) >= 0) {
        const line = w.buf.slice(0, nl);
        w.buf = w.buf.slice(nl + 1);
        this.line(w, line);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      w.stderr = (w.stderr + d).slice(-4000);
    });
    child.on('exit', (code, signal) => this.exited(w, code, signal));
  }

  line(w, line) {
    const [kind, target, seedText, outcome, ms, peak, ...rest] = line.split(' ');
    if (kind === 'ready') {
      w.ready = true;
      this.failedStarts = 0;
      this.next(w);
    } else if (kind === 'start') w.inFlight = { target, seed: Number(seedText), at: Date.now() };
    else if (kind === 'note') {
      if (w.inFlight) w.inFlight.note = JSON.parse(line.slice(line.indexOf('"')));
    } else if (kind === 'done') {
      const note = w.inFlight?.note;
      w.inFlight = null;
      w.done++;
      let detail = {};
      try {
        detail = JSON.parse(rest.join(' ') || '{}');
      } catch {
        detail = { raw: rest.join(' ') };
      }
      if (note !== undefined) detail.input = note;
      this.o.onResult({ target, seed: Number(seedText), outcome, ms: Number(ms), peakKiB: Number(peak), detail });
    } else if (kind === 'idle') {
      w.job = null;
      this.next(w);
    }
  }

  next(w) {
    const job = Date.now() < this.o.deadline ? this.queue.shift() : undefined;
    if (!job) {
      w.job = null;
      w.child.send({ exit: true });
      return;
    }
    w.job = job;
    w.done = 0;
    w.child.send(job);
  }

  exited(w, code, signal) {
    const job = w.job;
    const what = w.killedFor;
    if (w.inFlight) {
      const { target, seed, at } = w.inFlight;
      const outcome = what?.outcome ?? (signal ? 'signal' : 'exit');
      const detail = { ...(w.inFlight.note !== undefined ? { input: w.inFlight.note } : {}), ...(what?.detail ?? {}), ...(signal && !what ? { signal } : {}), ...(!signal ? { code } : {}), stderr: w.stderr.slice(-1500) };
      this.o.onResult({ target, seed, outcome, ms: Date.now() - at, peakKiB: what?.detail?.rssKiB ?? 0, detail });
      w.done++;
    } else if (signal && job) {
      // died between inputs: blame the input that ran last
      const seed = job.seeds[w.done - 1];
      if (seed !== undefined) this.o.onResult({ target: job.target, seed, outcome: 'signal', ms: 0, peakKiB: 0, detail: { signal, afterDone: true, stderr: w.stderr.slice(-1500) } });
    }
    if (job && w.done < job.seeds.length) this.queue.unshift({ target: job.target, seeds: job.seeds.slice(w.done) });
    if (!w.ready && !what) {
      if (++this.failedStarts > 3) {
        clearInterval(this.timer);
        this.reject(new Error(`the fuzz child would not start (exit ${code ?? signal}):\n${w.stderr}`));
        return;
      }
    }
    const more = this.queue.length > 0 && Date.now() < this.o.deadline;
    if (more || (job && w.done < job.seeds.length)) this.spawn(w.slot);
    else {
      w.gone = true;
      if (this.workers.every((x) => x.gone)) {
        clearInterval(this.timer);
        this.resolve();
      }
    }
  }

  watch() {
    const now = Date.now();
    for (const w of this.workers) {
      if (!w || w.gone || w.killedFor || w.child.exitCode !== null) continue;
      const { rss, hwm } = memKiB(w.child.pid);
      this.maxRssKiB = Math.max(this.maxRssKiB, rss, hwm);
      if (rss > this.o.peakKiB) {
        w.killedFor = { outcome: 'peak', detail: { rssKiB: rss } };
        w.child.kill('SIGKILL');
      } else if (w.inFlight && now - w.inFlight.at > this.o.hangMs) {
        w.killedFor = { outcome: 'hang', detail: { afterMs: now - w.inFlight.at, rssKiB: rss } };
        w.child.kill('SIGKILL');
      }
    }
  }
}
