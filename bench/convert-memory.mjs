#!/usr/bin/env node
// Peak memory and time of `llava-rad convert` on a 7B-shaped release (issue #4: "peak RSS of a 7B conversion
// stays under 4 GB"). Not part of `npm test`.
//
//   /usr/bin/python3 scripts/make-7b-release.py --out /tmp/conv7b/release     # once: ~16.2 GB, a few minutes
//   npx tsup                                                                   # dist/cli.js up to date
//   node bench/convert-memory.mjs --release /tmp/conv7b/release --types q4_k_m,f16
//
// Each type runs `node dist/cli.js convert --base R/vicuna --adapter R/llava-rad --out OUT --type T --json`
// under GNU time (/usr/bin/time: peak RSS = the process's VmHWM, Node's worker threads included) while
// /proc/PID/status is sampled every 0.5 s (the anonymous / file-backed split of the peak, and the largest
// VmRSS seen). Appends one JSON line per type to --record (default
// bench/results/convert-7b-<device>.jsonl) and deletes the output unless --keep.
//
// Options: --release DIR (required) --types LIST (default q4_k_m) --out DIR (default <release>/../convert-out)
//          --cli FILE (default dist/cli.js) --threads N (LLAVA_RAD_CONVERT_THREADS, default: the converter's)
//          --device NAME (default <cpu>-<n>c as bench/run.mjs names it) --record FILE --no-record --keep
//          --note TEXT (stored with the record) --timeline FILE (every sample: seconds, VmRSS, RssAnon, RssFile in
//          MB and the bytes written so far, one line each, for finding where the peak happens)

import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuId, cpuModel, deviceSlug, gitCommit, nCpu } from './machine.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    release: { type: 'string' },
    types: { type: 'string', default: 'q4_k_m' },
    out: { type: 'string' },
    cli: { type: 'string', default: path.join(root, 'dist', 'cli.js') },
    threads: { type: 'string' },
    device: { type: 'string' },
    record: { type: 'string' },
    'no-record': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    note: { type: 'string' },
    timeline: { type: 'string' },
  },
});
if (!opt.release) {
  console.error('usage: node bench/convert-memory.mjs --release DIR [--types q4_k_m,f16] [--keep] (see the header)');
  process.exit(2);
}
const release = path.resolve(opt.release);
const base = path.join(release, 'vicuna');
const adapter = path.join(release, 'llava-rad');
for (const d of [base, adapter]) if (!existsSync(d)) throw new Error(`${d} is missing (make it with scripts/make-7b-release.py)`);
if (!existsSync('/usr/bin/time')) throw new Error('needs GNU time at /usr/bin/time');

// ---- machine (named as bench/run.mjs names it) ----
const device = opt.device ?? deviceSlug();
const record = opt.record ?? path.join(root, 'bench', 'results', `convert-7b-${device}.jsonl`);
const commitOfConverter = () => gitCommit(['lib/convert']);
const HZ = 100;
function busyCores() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    return (f[0] + f[1] + f[2] + f[5] + f[6]) / HZ;
  } catch {
    return null;
  }
}

function filesOf(dir) {
  const out = {};
  for (const f of readdirSync(dir).sort()) {
    const p = path.join(dir, f);
    if (statSync(p).isFile()) out[f] = statSync(p).size;
  }
  return out;
}
const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
const mb = (b) => Math.round(b / 1e5) / 10;

function status(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN);
    return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}
function childOf(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0]) || null;
  } catch {
    return null;
  }
}

async function runOne(type) {
  const outDir = path.resolve(opt.out ?? path.join(release, '..', 'convert-out'), type);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(path.dirname(outDir), { recursive: true });
  const timeFile = path.join(os.tmpdir(), `llava-rad-convert-time-${process.pid}`);
  const env = { ...process.env };
  if (opt.threads) env.LLAVA_RAD_CONVERT_THREADS = opt.threads;
  const args = ['-o', timeFile, '-f', '%M %U %S %e', process.execPath, opt.cli, 'convert', '--base', base, '--adapter', adapter,
    '--out', outDir, '--type', type, '--json'];
  const load0 = os.loadavg()[0];
  const busy0 = busyCores();
  const t0 = performance.now();
  const child = spawn('/usr/bin/time', args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  // samples of the node process (the child of /usr/bin/time)
  let peak = { rss: 0, anon: 0, file: 0 };
  let samples = 0;
  const timeline = [];
  const written = () => {
    try {
      return readdirSync(outDir).reduce((a, f) => a + statSync(path.join(outDir, f)).size, 0);
    } catch {
      return 0;
    }
  };
  const timer = setInterval(() => {
    const pid = childOf(child.pid);
    const s = pid && status(pid);
    if (!s) return;
    samples++;
    if (opt.timeline) timeline.push([((performance.now() - t0) / 1000).toFixed(1), ...[s.rss, s.anon, s.file].map((k) => Math.round(k / 1024)), written()].join(' '));
    if (s.rss > peak.rss) peak = { rss: s.rss, anon: s.anon, file: s.file };
    if (process.stderr.isTTY) process.stderr.write(`\r  ${type}: ${((performance.now() - t0) / 1000).toFixed(0)} s, RSS ${(s.rss / 1024).toFixed(0)} MB (anon ${(s.anon / 1024).toFixed(0)}, file ${(s.file / 1024).toFixed(0)}), peak ${(s.hwm / 1024).toFixed(0)} MB   `);
  }, 500);
  const code = await new Promise((resolve) => child.on('close', resolve));
  clearInterval(timer);
  if (opt.timeline) appendFileSync(opt.timeline, `# ${type}: seconds rss_mb anon_mb file_mb bytes_written\n${timeline.join('\n')}\n`);
  if (process.stderr.isTTY) process.stderr.write('\n');
  const busy1 = busyCores();
  const [maxKb, user, sys, wall] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
  rmSync(timeFile, { force: true });
  if (code !== 0) throw new Error(`convert --type ${type} exited with ${code}`);
  const res = JSON.parse(stdout.trim().split('\n').pop());
  const outputs = filesOf(outDir);
  const baseFiles = filesOf(base);
  const adapterFiles = filesOf(adapter);
  const line = {
    date: new Date().toISOString(),
    commit: commitOfConverter(),
    device,
    machine: { cpu: cpuModel(), cpuid: cpuId(), cpus: nCpu, mem_gb: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    type,
    threads: opt.threads ? Number(opt.threads) : 'default',
    peak_rss_mb: Math.round(maxKb / 1024),
    sampled_peak: { rss_mb: Math.round(peak.rss / 1024), anon_mb: Math.round(peak.anon / 1024), file_mb: Math.round(peak.file / 1024), samples },
    wall_s: wall,
    user_s: user,
    sys_s: sys,
    // cores kept busy by other processes meanwhile (the machine may be shared)
    others_busy_cores: busy0 !== null && busy1 !== null ? Math.round(((busy1 - busy0 - user - sys) / wall) * 100) / 100 : null,
    load_at_start: Math.round(load0 * 100) / 100,
    lora_merged: res.lora_merged,
    source_bytes: { base: sum(baseFiles), adapter: sum(adapterFiles), total: sum(baseFiles) + sum(adapterFiles) },
    source_files: { ...Object.fromEntries(Object.entries(baseFiles).map(([k, v]) => [`vicuna/${k}`, v])),
      ...Object.fromEntries(Object.entries(adapterFiles).map(([k, v]) => [`llava-rad/${k}`, v])) },
    output_bytes: outputs,
    note: opt.note,
  };
  console.log(`${type}: peak RSS ${line.peak_rss_mb} MB (sampled: anon ${line.sampled_peak.anon_mb} MB + file ${line.sampled_peak.file_mb} MB), ` +
    `wall ${wall} s (user ${user} s, sys ${sys} s; others kept ${line.others_busy_cores} cores busy), ` +
    `sources ${mb(line.source_bytes.total)} MB -> outputs ${mb(sum(outputs))} MB`);
  if (!opt['no-record']) appendFileSync(record, JSON.stringify(line) + '\n');
  if (!opt.keep) rmSync(outDir, { recursive: true, force: true });
  return line;
}

for (const type of opt.types.split(',').map((s) => s.trim()).filter(Boolean)) await runOne(type);
if (!opt['no-record']) console.log(`recorded in ${path.relative(root, record)}`);
