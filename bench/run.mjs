#!/usr/bin/env node
// npm run bench -- [options]: our engine against llama.cpp on the same GGUF, same threads, in one run.
// See bench/README.md for what each number means.
//
//   npm run bench                                         mid-size model (1024x8, q8_0), 2 threads
//   npm run bench -- --shape 7b --type q4_k_m --tg 32 --rounds 2 --reps 1 --fa 0
//   npm run bench -- --model path/to/model.gguf --threads 2
//
// Each round runs every engine once (the order rotates from round to round), each as its own process:
//   ours         this package's Node API (bench/workers.mjs ours), per flash-attention setting
//   llama-bench  llama.cpp's llama-bench built natively from the same source (bench/llama-bench.mjs)
//   nlc          node-llama-cpp's prebuilt CPU binaries in process (bench/workers.mjs nlc)
//   ours-cli     (once, after the rounds) the standalone C++ CLI under /usr/bin/time: peak RSS
// Results: one JSON line appended to bench/results/<device>.jsonl, and a table on stdout.
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureLlamaBench, runLlamaBench } from './llama-bench.mjs';
import { ensureModel, SHAPES, TYPES } from './make-model.mjs';
import { cpuId, cpuModel, deviceSlug, gitCommit, nCpu } from './machine.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string' },
    shape: { type: 'string', default: 'mid' },
    type: { type: 'string', default: 'q8_0' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    reps: { type: 'string', default: '2' },
    pp: { type: 'string', default: '512' },
    tg: { type: 'string', default: '128' },
    fa: { type: 'string', default: '0,1' },
    'nlc-fa': { type: 'string', default: '0' },
    mmap: { type: 'string', default: '0' },
    engines: { type: 'string', default: 'ours,llama-bench,nlc' },
    device: { type: 'string' },
    'max-load': { type: 'string', default: '0.5' },
    'max-other': { type: 'string', default: '0.1' },
    'wait-quiet': { type: 'string', default: '0' },
    note: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    'no-cli': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (opt.help) {
  console.log(`usage: npm run bench -- [--model F | --shape ${Object.keys(SHAPES).join('|')} --type ${TYPES.join('|')}]
  [--threads 2] [--rounds 3] [--reps 2] [--pp 512] [--tg 128] [--fa 0,1] [--nlc-fa 0] [--mmap 0|1]
  [--engines ours,llama-bench,nlc] [--device SLUG] [--wait-quiet SECONDS] [--max-load 0.5] [--max-other 0.1] [--note TEXT]
  [--no-write] [--no-cli]
Environment: LLAMA_BENCH=/path/to/llama-bench skips building llama-bench; LLAVA_RAD_ADDON=/path/llava_rad.node
benchmarks another build of our addon (recorded in the results).`);
  process.exit(0);
}

const int = (k) => {
  const v = Number(opt[k]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${k} must be a whole number, got ${opt[k]}`);
  return v;
};
const threads = int('threads');
const rounds = int('rounds');
const reps = int('reps');
const pp = int('pp');
const tg = int('tg');
const faList = opt.fa.split(',').map((s) => Number(s.trim())).filter((x) => x === 0 || x === 1);
const nlcFa = opt['nlc-fa'].split(',').map((s) => Number(s.trim())).filter((x) => x === 0 || x === 1);
const engines = new Set(opt.engines.split(',').map((s) => s.trim()));
const maxLoad = Number(opt['max-load']);

// ---- machine ---------------------------------------------------------------------------------------
const device = opt.device ?? deviceSlug();
const loadavg = () => os.loadavg().map((x) => Math.round(x * 100) / 100);

// CPU time of the whole machine (/proc/stat, seconds): busy (user+nice+system+irq+softirq) and steal
const HZ = 100; // USER_HZ on Linux
function cpuTimes() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = f;
    return { busy: (user + nice + system + irq + softirq) / HZ, steal: (steal ?? 0) / HZ, t: performance.now() / 1000 };
  } catch {
    return null;
  }
}
/** cores kept busy by everything on the machine over `ms` (call while none of ours runs) */
async function machineBusy(ms) {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTimes();
  return a && b ? (b.busy - a.busy) / (b.t - a.t) : 0;
}

/**
 * Runs cmd under GNU time: peak RSS and CPU time of the child, and how many cores everything else on
 * the machine kept busy meanwhile (/proc/stat busy time minus the child's own user+sys time).
 */
function timed(cmd, args, options = {}) {
  const timeFile = path.join(os.tmpdir(), `llava-rad-bench-time-${process.pid}`);
  const useTime = existsSync('/usr/bin/time');
  const a = cpuTimes();
  const r = useTime
    ? spawnSync('/usr/bin/time', ['-o', timeFile, '-f', '%M %U %S %e', cmd, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, ...options })
    : spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  const b = cpuTimes();
  let rssKb = null;
  let cpuS = null;
  let wallS = a && b ? b.t - a.t : null;
  if (useTime) {
    try {
      const [m, u, sy, e] = readFileSync(timeFile, 'utf8').trim().split('\n').pop().split(' ').map(Number);
      rssKb = m;
      cpuS = u + sy;
      wallS = e;
    } catch {
      /* the command failed before time wrote anything */
    }
    rmSync(timeFile, { force: true });
  }
  const other = a && b && cpuS !== null ? Math.max(0, (b.busy - a.busy - cpuS) / (b.t - a.t)) : null;
  const steal = a && b ? (b.steal - a.steal) / (b.t - a.t) : null;
  return { ...r, rssKb, cpuS, wallS, otherCores: other, stealCores: steal };
}

// ---- model -----------------------------------------------------------------------------------------
let model;
let modelDesc;
if (opt.model) {
  model = path.resolve(opt.model);
  if (!existsSync(model)) throw new Error(`${model} does not exist`);
  modelDesc = { file: path.basename(model), shape: 'file', type: 'file' };
} else {
  model = await ensureModel(opt.shape, opt.type);
  modelDesc = { file: path.basename(model), shape: opt.shape, type: opt.type, ...SHAPES[opt.shape] };
}
modelDesc.bytes = statSync(model).size;
if (opt.type === 'q4_k_m' && !opt.model) modelDesc.mix = 'llama-quantize Q4_K_M rules: q4_K, q6_K for output and attn_v/ffn_down in use_more_bits layers';

// ours: weights copied into huge pages (mmap 0, the library's default) or computed from the file mapping (1)
if (opt.mmap !== '0' && opt.mmap !== '1') throw new Error(`--mmap must be 0 or 1, got ${opt.mmap}`);
const oursMmap = opt.mmap === '1';

// ---- engines ---------------------------------------------------------------------------------------
const ctxFor = () => Math.max(pp + 1, tg + 2); // ours rounds up to a multiple of 256; node-llama-cpp takes it as is

function worker(engine, fa) {
  const o = { model, threads, pp, tg, reps, fa, ctx: ctxFor(), mmap: oursMmap };
  const r = timed(process.execPath, [path.join(here, 'workers.mjs'), engine, JSON.stringify(o)], { cwd: root });
  if (r.status !== 0) throw new Error(`${engine} worker failed (exit ${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`);
  const line = r.stdout.trim().split('\n').pop();
  return { ...JSON.parse(line), cpu_s: r.cpuS, wall_s: r.wallS, other_cores: r.otherCores, steal_cores: r.stealCores };
}

let llamaBench;
function runPeer(fa) {
  // peak RSS of the whole llama-bench process (it loads the model once, makes one context per test)
  return runLlamaBench(llamaBench.path, { model, threads, pp, tg, reps, fa, spawn: timed });
}

const samples = new Map(); // key `${engine}|fa${fa}|pp|tg` -> numbers
const add = (engine, fa, test, xs) => {
  const k = `${engine}|${fa}|${test}`;
  if (!samples.has(k)) samples.set(k, []);
  samples.get(k).push(...xs);
};
const extra = { ours: {}, nlc: {}, 'llama-bench': {} };
const loads = [];
const round2 = (x) => (x === null || x === undefined ? null : Math.round(x * 100) / 100);

// ---- run -------------------------------------------------------------------------------------------
if (engines.has('llama-bench')) llamaBench = ensureLlamaBench();

// Quiet: the 1-minute load average under --max-load before the run, and between turns (when none of
// ours runs) the other processes keeping under --max-other cores busy. During a turn our own threads
// count in the load average, so there the measure is /proc/stat busy time minus our child's CPU time.
const waitQuiet = int('wait-quiet');
const maxOther = Number(opt['max-other']);
const startLoad = loadavg();
if (waitQuiet > 0) {
  const until = Date.now() + waitQuiet * 1000;
  while (loadavg()[0] >= maxLoad && Date.now() < until) {
    console.error(`bench: waiting for a quiet machine (1-min load ${loadavg()[0]} >= ${maxLoad})`);
    await new Promise((r) => setTimeout(r, 15000));
  }
}
const startLoadAfterWait = loadavg();
async function waitIdle() {
  if (waitQuiet <= 0) return machineBusy(1000);
  const until = Date.now() + waitQuiet * 1000;
  for (;;) {
    const busy = await machineBusy(2000);
    if (busy < maxOther || Date.now() > until) return busy;
    console.error(`bench: waiting for other processes to quieten (${busy.toFixed(2)} cores busy)`);
    await new Promise((r) => setTimeout(r, 5000));
  }
}

const order = ['ours', 'llama-bench', 'nlc'].filter((e) => engines.has(e));
const t0 = Date.now();
console.error(`bench: ${path.relative(root, model) || model}, ${threads} threads, pp${pp} tg${tg}, ${rounds} rounds x ${reps} reps, device ${device}`);
for (let round = 0; round < rounds; round++) {
  const rot = order.map((_, i) => order[(i + round) % order.length]);
  for (const engine of rot) {
    const idle = await waitIdle();
    const before = loadavg();
    const turn = { round, engine, idle_before_cores: round2(idle), before, other_cores: [], steal_cores: [] };
    const note = (r) => {
      turn.other_cores.push(round2(r.other_cores ?? r.otherCores));
      turn.steal_cores.push(round2(r.steal_cores ?? r.stealCores));
    };
    if (engine === 'ours') {
      for (const fa of faList) {
        const r = worker('ours', fa);
        note(r);
        add('ours', fa, 'pp', r.pp_tps);
        add('ours', fa, 'tg', r.tg_tps);
        extra.ours[`fa${fa}`] = { load_ms: r.load_ms, vm_hwm_kb: r.vm_hwm_kb, context: r.context, batch: r.batch };
      }
    } else if (engine === 'nlc') {
      for (const fa of nlcFa) {
        const r = worker('nlc', fa);
        note(r);
        add('nlc', fa, 'pp', r.pp_tps);
        add('nlc', fa, 'tg', r.tg_tps);
        extra.nlc[`fa${fa}`] = { load_ms: r.load_ms, vm_hwm_kb: r.vm_hwm_kb, binary: r.binary };
      }
    } else {
      const r = runPeer(faList.map(String));
      note(r);
      for (const t of r.tests) {
        const fa = Number(t.flash_attn);
        add('llama-bench', fa, t.n_gen > 0 ? 'tg' : 'pp', t.samples_ts);
      }
      extra['llama-bench'] = { args: r.args.join(' '), peak_rss_kb: r.rssKb, build_commit: r.tests[0]?.build_commit, cpu_info: r.tests[0]?.cpu_info, backends: r.tests[0]?.backends, binary: llamaBench.source };
    }
    turn.after = loadavg();
    loads.push(turn);
    console.error(`bench: round ${round + 1}/${rounds} ${engine} done (other processes: ${turn.other_cores.join(', ')} cores)`);
  }
}

// the C++ CLI once: peak RSS of a whole generate (prompt of ~pp tokens, tg tokens), and its own timings
let cli = null;
const cliBin = path.join(root, 'build', 'llava-rad-cli');
if (!opt['no-cli'] && engines.has('ours') && existsSync(cliBin)) {
  const text = Array.from({ length: Math.max(1, pp - 1) }, () => 'the').join(' ');
  const args = ['generate', '--model', model, '--prompt', text, '--max-tokens', String(Math.max(tg, 2)),
    '--threads', String(threads), '--ctx', String(ctxFor() + tg), '--ignore-eos', '--json'];
  await waitIdle();
  const r = timed(cliBin, args);
  if (r.status === 0) {
    const j = JSON.parse(r.stdout.trim().split('\n').pop());
    cli = {
      peak_rss_kb: r.rssKb,
      wall_s: r.wallS,
      other_cores: round2(r.otherCores),
      prompt_tokens: j.prompt_tokens.length,
      tokens: j.tokens.length,
      pp_tps: (j.prompt_tokens.length / j.prompt_ms) * 1000,
      tg_tps: ((j.tokens.length - 1) / j.decode_ms) * 1000,
      note: 'one cold process: no warmup; decode after a ~pp-token prompt (longer context than tg); wall_s includes the model load',
    };
  } else {
    console.error(`bench: the C++ CLI failed: ${r.stderr.slice(-1000)}`);
  }
}

// ---- summary ---------------------------------------------------------------------------------------
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? null : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};
const stat = (xs) => (xs && xs.length ? { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length } : null);
const metrics = {};
for (const [k, xs] of samples) if (xs.length) metrics[k] = stat(xs);
const m = (engine, fa, test) => metrics[`${engine}|${fa}|${test}`]?.median ?? null;
const ratio = (a, b) => (a && b ? a / b : null);

const ratios = {};
for (const fa of faList) {
  for (const test of ['pp', 'tg']) {
    ratios[`ours/llama-bench fa${fa} ${test}`] = ratio(m('ours', fa, test), m('llama-bench', fa, test));
    ratios[`ours/nlc fa${fa} ${test}`] = ratio(m('ours', fa, test), m('nlc', fa, test));
  }
}
const maxOtherSeen = Math.max(0, ...loads.flatMap((l) => [l.idle_before_cores, ...l.other_cores]).filter((x) => x !== null));
const quiet = startLoadAfterWait[0] < maxLoad && maxOtherSeen < maxOther;
const record = {
  date: new Date().toISOString(),
  commit: gitCommit(),
  device,
  cpu: cpuModel(), cpuid: cpuId(),
  cpus: nCpu,
  model: modelDesc,
  threads,
  pp,
  tg,
  rounds,
  reps,
  fa: faList,
  ours_mmap: oursMmap,
  engines: [...order],
  ours_addon: process.env.LLAVA_RAD_ADDON ?? 'build/Release/llava_rad.node',
  env: Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(OMP_|GOMP_|GGML_|LLAMA_BENCH$|LLAVA_RAD_ADDON$|LLAVA_RAD_CPU_KERNELS$)/.test(k))),
  metrics: Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k.replace(/\|/g, ' ').replace(/ (\d) /, ' fa$1 '), v])),
  ratios,
  peak_rss_kb: { 'ours-cli': cli?.peak_rss_kb ?? null, 'llama-bench': extra['llama-bench'].peak_rss_kb ?? null, ours_node_worker: extra.ours.fa0?.vm_hwm_kb ?? null, nlc_node_worker: extra.nlc.fa0?.vm_hwm_kb ?? null },
  ours_cli: cli,
  extra,
  load: {
    quiet,
    rule: `1-min load < ${maxLoad} at the start, and other processes < ${maxOther} cores busy before and during every turn (/proc/stat minus our child's CPU time)`,
    start_loadavg: startLoad,
    start_loadavg_after_wait: startLoadAfterWait,
    max_other_cores: round2(maxOtherSeen),
    turns: loads,
  },
  duration_s: Math.round((Date.now() - t0) / 1000),
  // vision / study-level figures (ours only: llama.cpp cannot run the tower): npm run bench:study
  ...(opt.note ? { note: opt.note } : {}),
};

if (!opt['no-write']) {
  const dir = path.join(here, 'results');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${device}.jsonl`);
  appendFileSync(file, `${JSON.stringify(record)}\n`);
  console.error(`bench: appended to ${path.relative(root, file)}`);
}

// table
const fmt = (x, d = 1) => (x === null || x === undefined ? '-' : x.toFixed(d));
const rows = [];
for (const test of ['pp', 'tg']) {
  for (const fa of faList) {
    const o = m('ours', fa, test);
    const lb = m('llama-bench', fa, test);
    const n = m('nlc', fa, test);
    if (o === null && lb === null && n === null) continue;
    const label = test === 'pp' ? `pp${pp} tok/s` : `tg${tg} tok/s`;
    rows.push([`${label} fa=${fa}`, fmt(o), fmt(lb), fmt(n), fmt(ratio(o, lb), 2), fmt(ratio(o, n), 2)]);
  }
}
const rssMb = (kb) => (kb ? `${(kb / 1024).toFixed(0)} MB` : '-');
rows.push(['peak RSS', rssMb(cli?.peak_rss_kb), rssMb(extra['llama-bench'].peak_rss_kb), rssMb(extra.nlc.fa0?.vm_hwm_kb), '', '']);
const head = ['metric', 'ours', 'llama-bench', 'node-llama-cpp', 'ours/llama-bench', 'ours/nlc'];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (r) => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
console.log(`\n${modelDesc.file} (${modelDesc.shape} ${modelDesc.type}, ${(modelDesc.bytes / 1e9).toFixed(2)} GB), ${threads} threads, ${device}, commit ${record.commit}`);
console.log(line(head));
for (const r of rows) console.log(line(r));
console.log(`medians over ${rounds} rounds x ${reps} reps; load avg at start ${startLoadAfterWait.join(' ')}, other processes up to ${maxOtherSeen.toFixed(2)} cores busy: ${quiet ? 'QUIET' : 'NOT QUIET, numbers unreliable'}`);
if (cli) console.log(`ours-cli (one cold process, ${cli.prompt_tokens}-token prompt): pp ${fmt(cli.pp_tps)} tok/s, decode ${fmt(cli.tg_tps)} tok/s, wall ${cli.wall_s} s`);
console.log('vision and study-level figures (ours only): npm run bench:study');
