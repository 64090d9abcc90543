// Memory soak (issue #14 item 5): in ONE process, 1,000 generateFindings calls on the tiny models, then 1,000
// load/dispose cycles of the tiny decoder and 1,000 of the tiny vision model, sampling RSS and the JS heap
// every --every calls. Memory is flat when RSS after warm-up (call --warmup) and at the end agree and the slope
// of a least-squares line through the samples after warm-up is near 0 KB per call. One JSON line per phase to
// bench/results/<device>.jsonl.
//   node --expose-gc bench/soak.mjs [--calls 1000] [--loads 1000] [--warmup 100] [--every 10] [--parallel 2]
//        [--max-tokens 16] [--threads 2] [--phases findings,decoder,vision] [--no-write]
// Needs dist/ (npm run build:ts) and the addon (build/). The decoder: test/.fixtures/tiny-llama-base-f32-*.gguf,
// made with scripts/make-tiny-llama.mjs when missing; the vision model: test/fixtures/vision/tiny-vision-f32.gguf.
// With --expose-gc the JS heap is collected before each sample, so heap_used is live objects, not garbage.
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuId, cpuModel, deviceSlug, gitCommit } from './machine.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');

const { values: opt } = parseArgs({ options: {
  calls: { type: 'string', default: '1000' }, loads: { type: 'string', default: '1000' }, warmup: { type: 'string', default: '100' },
  every: { type: 'string', default: '10' }, parallel: { type: 'string', default: '2' }, 'max-tokens': { type: 'string', default: '16' },
  threads: { type: 'string', default: '2' }, phases: { type: 'string', default: 'findings,decoder,vision' },
  'no-write': { type: 'boolean', default: false },
} });
const num = (k) => {
  const v = Number(opt[k]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${k} must be a non-negative integer, got '${opt[k]}'`);
  return v;
};
const calls = num('calls'), loads = num('loads'), warmup = num('warmup'), every = Math.max(1, num('every'));
const parallel = Math.max(1, num('parallel')), maxTokens = num('max-tokens'), threads = num('threads');
const phases = opt.phases.split(',');

const lib = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
const VISION = path.join(root, 'test', 'fixtures', 'vision', 'tiny-vision-f32.gguf');
const IMAGE = readFileSync(path.join(root, 'test', 'fixtures', 'findings', 'radiograph-grey-900x1100.png'));
const REASON = 'Cough and fever, rule out pneumonia.';

function tinyDecoder() {
  const dir = path.join(root, 'test', '.fixtures');
  const find = () => { try { return readdirSync(dir).find((f) => /^tiny-llama-base-f32-[0-9a-f]+\.gguf$/.test(f)); } catch { return undefined; } };
  let f = find();
  if (!f) {
    execFileSync(process.execPath, [path.join(root, 'scripts', 'make-tiny-llama.mjs'), '--type', 'f32', '--variant', 'base'], { stdio: 'inherit' });
    f = find();
  }
  if (!f) throw new Error('no tiny f32 decoder under test/.fixtures/ (scripts/make-tiny-llama.mjs did not make one)');
  return path.join(dir, f);
}

const gc = globalThis.gc;
let phaseName = '';
function sample(i) {
  gc?.();
  const m = process.memoryUsage();
  if (i % 100 === 0) console.log(`  ${phaseName} ${i}: RSS ${mb(m.rss)} MB, JS heap ${mb(m.heapUsed)} MB`);
  return { i, rss: m.rss, heap: m.heapUsed, external: m.external };
}

// least squares over the samples from call `from` on: slope in KB per call
function slopeKb(samples, key, from) {
  const s = samples.filter((x) => x.i >= from);
  if (s.length < 2) return null;
  const n = s.length, mx = s.reduce((a, x) => a + x.i, 0) / n, my = s.reduce((a, x) => a + x[key], 0) / n;
  let sxy = 0, sxx = 0;
  for (const x of s) { sxy += (x.i - mx) * (x[key] - my); sxx += (x.i - mx) ** 2; }
  return sxx ? sxy / sxx / 1024 : null;
}

const mb = (b) => Math.round((b / 2 ** 20) * 10) / 10;
function summary(phase, n, samples, extra) {
  const at = (i) => samples.find((x) => x.i >= i) ?? samples[samples.length - 1];
  const warm = at(warmup), end = samples[samples.length - 1];
  const r = {
    phase, n, warmup, every,
    rss_start_mb: mb(samples[0].rss), rss_warm_mb: mb(warm.rss), rss_end_mb: mb(end.rss),
    rss_max_after_warm_mb: mb(Math.max(...samples.filter((x) => x.i >= warmup).map((x) => x.rss))),
    rss_slope_kb_per_call: round3(slopeKb(samples, 'rss', warmup)),
    heap_warm_mb: mb(warm.heap), heap_end_mb: mb(end.heap), heap_slope_kb_per_call: round3(slopeKb(samples, 'heap', warmup)),
    ...extra,
  };
  console.log(`${phase}: ${n} in ${extra.wall_s} s; RSS ${r.rss_start_mb} MB at start, ${r.rss_warm_mb} after ${warmup}, ${r.rss_end_mb} at the end ` +
    `(max ${r.rss_max_after_warm_mb} after warm-up), slope ${r.rss_slope_kb_per_call} KB/call; JS heap ${r.heap_warm_mb} -> ${r.heap_end_mb} MB, ` +
    `slope ${r.heap_slope_kb_per_call} KB/call`);
  return r;
}
function round3(x) { return x === null ? null : Math.round(x * 1000) / 1000; }

async function findingsPhase(decoder) {
  const model = await lib.loadLlavaRad({ decoder, vision: VISION, threads, parallel });
  const samples = [sample(0)];
  let done = 0, next = 0, tokens = 0;
  const t0 = performance.now();
  try {
    const worker = async () => {
      while (next < calls) {
        next++;
        const r = await model.generateFindings(IMAGE, REASON, { maxTokens, ignoreEos: true });
        tokens += r.tokens?.length ?? 0;
        done++;
        if (done % every === 0) samples.push(sample(done));
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
  } finally {
    await model.dispose();
  }
  const after = sample(calls);
  return summary('findings', calls, samples, { parallel, max_tokens: maxTokens, wall_s: Math.round((performance.now() - t0) / 100) / 10,
    rss_after_dispose_mb: mb(after.rss) });
}

async function loadPhase(phase, load) {
  const samples = [sample(0)];
  const t0 = performance.now();
  for (let i = 1; i <= loads; i++) {
    const m = await load();
    await m.dispose();
    if (i % every === 0) samples.push(sample(i));
  }
  return summary(phase, loads, samples, { wall_s: Math.round((performance.now() - t0) / 100) / 10 });
}

const decoder = tinyDecoder();
console.log(`soak: ${path.basename(decoder)} + ${path.basename(VISION)}, ${threads} threads, ${gc ? 'gc before each sample' : 'no --expose-gc: heap figures include garbage'}`);
const rows = [];
for (const phase of phases) {
  phaseName = phase;
  if (phase === 'findings') rows.push(await findingsPhase(decoder));
  else if (phase === 'decoder') rows.push(await loadPhase('decoder-load', () => lib.loadModel({ model: decoder, threads })));
  else if (phase === 'vision') rows.push(await loadPhase('vision-load', () => lib.loadVisionModel({ model: VISION, threads })));
  else throw new Error(`unknown phase '${phase}' (findings, decoder, vision)`);
}
if (!opt['no-write']) {
  const file = path.join(root, 'bench', 'results', `${deviceSlug()}.jsonl`);
  const common = { kind: 'soak', date: new Date().toISOString(), commit: gitCommit(), device: deviceSlug(), cpu: cpuModel(), cpuid: cpuId(), threads,
    decoder: path.basename(decoder), vision: path.basename(VISION), node: process.version, gc: Boolean(gc),
    malloc_arena_max: process.env.MALLOC_ARENA_MAX ?? null };
  for (const r of rows) appendFileSync(file, `${JSON.stringify({ ...common, ...r })}\n`);
  console.log(`appended ${rows.length} lines to ${path.relative(root, file)}`);
}
