// One fuzz worker process. It loads the bundle of lib/, then runs the (target, seeds) jobs the parent sends
// over IPC. Around every input it writes, synchronously so that the line is out before any crash:
//   start <target> <seed>
//   done <target> <seed> <outcome> <ms> <peakKiB> <detail JSON>
// outcome: ok | typed | untyped | uncaught. peakKiB: VmHWM while running the input (reset before it through
// /proc/self/clear_refs where the kernel allows; else the process's peak so far). "idle" ends a job.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { rngFor } from './rng.mjs';
import { TARGETS } from './targets.mjs';

const L = await import(process.env.FUZZ_BUNDLE);
const tmp = process.env.FUZZ_TMP;
const keep = process.env.FUZZ_KEEP;
const say = (line) => writeSync(1, `${line}\n`);

function resetPeak() {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
    return true;
  } catch {
    return false;
  }
}
const peakKiB = () => Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);

function describe(e) {
  if (L.isLlavaRadError(e)) return ['typed', { code: e.code, message: String(e.message).slice(0, 300) }];
  const stack = e instanceof Error && typeof e.stack === 'string' ? e.stack.split('\n').slice(1).find((l) => l.trim().startsWith('at ')) : undefined;
  return ['untyped', { name: e?.constructor?.name ?? typeof e, message: String(e instanceof Error ? e.message : e).slice(0, 300), stack: stack?.trim() }];
}

let current;
const die = (what) => (e) => {
  const [, d] = describe(e);
  say(`done ${current?.target ?? '-'} ${current?.seed ?? -1} uncaught 0 ${peakKiB()} ${JSON.stringify({ ...d, via: what })}`);
  process.exit(70);
};
process.on('uncaughtException', die('uncaughtException'));
process.on('unhandledRejection', die('unhandledRejection'));

async function runOne(target, seed) {
  const t = TARGETS[target];
  current = { target, seed };
  say(`start ${target} ${seed}`);
  const rng = rngFor(target, seed);
  const dir = mkdtempSync(path.join(tmp, 'in-'));
  let outcome = 'ok';
  let detail = {};
  let ms = 0;
  let peak = 0;
  try {
    let input;
    try {
      input = t.make(rng, dir, seed);
    } catch (e) {
      // a bug of the harness, not of the library: reported apart
      say(`done ${target} ${seed} harness 0 0 ${JSON.stringify(describe(e)[1])}`);
      return;
    }
    say(`note ${target} ${seed} ${JSON.stringify(rng.notes.join('; '))}`);
    globalThis.gc?.(); // what earlier inputs left on the heap should not count as this input's peak
    const sinceStart = !resetPeak();
    const t0 = performance.now();
    try {
      await t.run(L, input, rng);
    } catch (e) {
      [outcome, detail] = describe(e);
    }
    ms = performance.now() - t0;
    peak = peakKiB();
    if (sinceStart) detail = { ...detail, peakSinceStart: true };
  } finally {
    if (keep) {
      try {
        cpSync(dir, path.join(keep, `${target}-${seed}`), { recursive: true, verbatimSymlinks: true });
      } catch (e) {
        process.stderr.write(`could not keep ${target}-${seed}: ${e.message}\n`);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  say(`done ${target} ${seed} ${outcome} ${ms.toFixed(1)} ${peak} ${JSON.stringify(detail)}`);
  current = undefined;
}

process.on('message', async (job) => {
  if (job.exit) process.exit(0);
  for (const seed of job.seeds) await runOne(job.target, seed);
  say('idle');
});
say('ready');
