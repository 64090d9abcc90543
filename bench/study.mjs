#!/usr/bin/env node
// npm run bench:study -- [options]: the study-level figures of issue #6 for OUR engine (llama.cpp cannot run
// LLaVA-Rad's tower, so there is no llama.cpp side here; on a GPU machine bench/device/ compares with the
// official PyTorch stack instead):
//
//   vision ms per image      encode of one preprocessed 518x518 image (ViT-B/14, 1369 rows), batch 1 and batch P
//   time to first token      preprocessing + vision + the ~1430-position prefill, up to the first generated token
//   ms per study             one study end to end (--max-tokens generated tokens, EOS ignored), nothing else running
//   studies/hour             --studies studies with --parallel P in flight (shared vision batches, decoding
//                            batched across sequences), wall clock
//   peak RSS                 VmHWM of the worker process (decoder + vision GGUF mapped, KV cache, buffers)
//
//   npm run bench:study                                   mid decoder (q8_0) + a ViT-B f16 vision GGUF, 2 threads
//   npm run bench:study -- --shape 7b --type q4_k_m --studies 2 --parallel 1,2 --max-tokens 32
//   npm run bench:study -- --decoder D.gguf --vision V.gguf
//
// Models: the decoder from bench/make-model.mjs (cached in bench/.models/); the vision GGUF from
// build/llava-rad-make-model vision (ViT-B/14 at 518, random f16 weights, projection to the decoder's width),
// cached beside it. Random weights compute exactly as fast as trained ones. Results: one JSON line
// {kind: 'study', ...} appended to bench/results/<device>.jsonl and a table.
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { MODELS_DIR, SHAPES, TYPES, ensureModel } from './make-model.mjs';
import { cpuId, cpuModel, deviceSlug, gitCommit } from './machine.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const IMAGE = path.join(root, 'test', 'fixtures', 'findings', 'radiograph-grey-900x1100.png');
const REASON = 'Shortness of breath.';

function vmHwmKb() {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : null;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};

// ---- worker (one child process per parallel setting, so peak RSS is that setting's) ----------------------
async function worker(o) {
  const lib = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
  const { readFileSync: read } = await import('node:fs');
  const image = read(IMAGE);
  const t0 = performance.now();
  const model = await lib.loadLlavaRad({ decoder: o.decoder, vision: o.vision, threads: o.threads, parallel: o.parallel });
  const res = { parallel: o.parallel, load_ms: performance.now() - t0 };
  const study = () => model.generateFindings(image, REASON, { maxTokens: o.maxTokens, ignoreEos: true });
  await model.generateFindings(image, REASON, { maxTokens: 2, ignoreEos: true }); // warm-up (graphs, buffers)

  // vision alone: batch 1 and batch P
  const info = model.vision.info;
  const pre = await lib.preprocessImage(image, { imageSize: info.imageSize, mean: info.imageMean, std: info.imageStd });
  const v1 = [];
  for (let i = 0; i < o.visionReps; i++) {
    const t = performance.now();
    await model.vision.encode(pre.pixels);
    v1.push(performance.now() - t);
  }
  res.vision_ms_per_image_b1 = median(v1);
  if (o.parallel > 1) {
    const t = performance.now();
    await model.vision.encode(Array.from({ length: o.parallel }, () => pre.pixels));
    res.vision_ms_per_image_bP = (performance.now() - t) / o.parallel;
  }

  if (o.parallel === 1) {
    // one study at a time: latency
    const ttft = [];
    const total = [];
    for (let i = 0; i < o.studies; i++) {
      const r = await study();
      if (r.tokens.length !== o.maxTokens) throw new Error(`a study generated ${r.tokens.length} tokens, wanted ${o.maxTokens}`);
      const t = r.timings;
      ttft.push(t.preprocessMs + t.visionMs + t.queueMs + t.promptMs);
      total.push(t.totalMs);
      res.prompt_positions = r.prompt.before.length + r.prompt.imageRows + r.prompt.after.length;
      res.prefill_ms = t.promptMs;
      res.decode_tps = ((r.tokens.length - 1) / t.decodeMs) * 1000;
    }
    res.ttft_ms = median(ttft);
    res.ms_per_study = median(total);
  }
  // throughput: all studies submitted at once, P in flight
  const t1 = performance.now();
  const all = await Promise.all(Array.from({ length: o.studies }, () => study()));
  const wall = performance.now() - t1;
  const tokens = all.reduce((n, r) => n + r.tokens.length, 0);
  res.studies = o.studies;
  res.wall_ms = wall;
  res.studies_per_hour = (o.studies / wall) * 3600e3;
  res.generated_tps = (tokens / wall) * 1000;
  res.vision_batches = [...model.visionBatchSizes];
  await model.dispose();
  res.vm_hwm_kb = vmHwmKb();
  process.stdout.write(JSON.stringify(res) + '\n');
}

// ---- driver ------------------------------------------------------------------------------------------------
function ensureVision(nOut, log) {
  const file = path.join(MODELS_DIR, `bench-vision-vitb-f16-p${nOut}.gguf`);
  if (existsSync(file)) return file;
  const tool = path.join(root, process.env.LLAVA_RAD_BUILD_DIR ?? 'build', 'llava-rad-make-model');
  if (!existsSync(tool)) throw new Error(`${tool} not found: build the engine first (npm run build:native)`);
  mkdirSync(MODELS_DIR, { recursive: true });
  log(`study: writing ${file}`);
  execFileSync(tool, ['vision', '--out', file, '--type', 'f16', '--proj', String(nOut)], { stdio: 'inherit' });
  return file;
}

async function main() {
  const { values: v } = parseArgs({
    options: {
      decoder: { type: 'string' }, vision: { type: 'string' }, shape: { type: 'string', default: 'mid' },
      type: { type: 'string', default: 'q8_0' }, threads: { type: 'string', default: String(Math.min(os.cpus().length, 2)) },
      studies: { type: 'string', default: '4' }, parallel: { type: 'string', default: '1,4' },
      'max-tokens': { type: 'string', default: '100' }, 'vision-reps': { type: 'string', default: '3' },
      device: { type: 'string' }, note: { type: 'string' }, 'no-write': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    console.log('usage: npm run bench:study -- [--decoder F | --shape small|mid|7b --type T] [--vision F] [--threads 2]\n' +
      '  [--studies 4] [--parallel 1,4] [--max-tokens 100] [--vision-reps 3] [--device SLUG] [--note TEXT] [--no-write]');
    return;
  }
  const int = (k) => {
    const n = Number(v[k]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${k} must be a positive whole number, got ${v[k]}`);
    return n;
  };
  const parallels = String(v.parallel).split(',').map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`--parallel takes whole numbers 1..64, got ${x}`);
    return n;
  });
  if (!v.decoder && (!SHAPES[v.shape] || !TYPES.includes(v.type))) throw new Error(`--shape ${Object.keys(SHAPES).join('|')} and --type ${TYPES.join('|')}`);
  const log = (s) => process.stderr.write(s + '\n');
  const decoder = v.decoder ?? await ensureModel(v.shape, v.type, { log });
  const nOut = v.decoder ? null : SHAPES[v.shape].nEmbd;
  if (!v.vision && nOut === null) throw new Error('with --decoder, pass --vision too (its projection must match the decoder width)');
  const vision = v.vision ?? ensureVision(nOut, log);
  const o = { decoder, vision, threads: int('threads'), studies: int('studies'), maxTokens: int('max-tokens'), visionReps: int('vision-reps') };

  const runs = [];
  for (const parallel of parallels) {
    log(`study: parallel ${parallel}, ${o.studies} studies x ${o.maxTokens} tokens, ${o.threads} threads`);
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--worker', JSON.stringify({ ...o, parallel })],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`worker failed (exit ${r.status ?? r.signal})`);
    runs.push(JSON.parse(r.stdout.trim().split('\n').pop()));
  }
  const commit = gitCommit();
  const device = v.device ?? deviceSlug();
  const record = {
    kind: 'study', date: new Date().toISOString(), commit, device, cpu: cpuModel(), cpuid: cpuId(), cpus: os.cpus().length,
    decoder: path.basename(decoder), vision: path.basename(vision), threads: o.threads, max_tokens: o.maxTokens,
    load_avg_start: os.loadavg()[0], runs, ...(v.note ? { note: v.note } : {}),
  };
  if (!v['no-write']) {
    mkdirSync(path.join(here, 'results'), { recursive: true });
    appendFileSync(path.join(here, 'results', `${device}.jsonl`), JSON.stringify(record) + '\n');
  }
  const f = (x, d = 0) => (x === null || x === undefined ? '-' : x.toFixed(d));
  console.log(`\n${path.basename(decoder)} + ${path.basename(vision)}, ${o.threads} threads, ${o.maxTokens} tokens per study (${device})`);
  console.log('| parallel | vision ms/image (b1 / bP) | TTFT ms | ms/study | studies/hour | generated tok/s | peak RSS MB |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of runs) {
    console.log(`| ${r.parallel} | ${f(r.vision_ms_per_image_b1)} / ${f(r.vision_ms_per_image_bP)} | ${f(r.ttft_ms)} | ${f(r.ms_per_study)} | ` +
      `${f(r.studies_per_hour, 1)} | ${f(r.generated_tps, 1)} | ${f(r.vm_hwm_kb / 1024)} |`);
  }
}

if (process.argv[2] === '--worker') {
  worker(JSON.parse(process.argv[3])).catch((e) => {
    process.stderr.write(`study worker: ${e?.stack ?? e}\n`);
    process.exit(1);
  });
} else {
  main().catch((e) => {
    process.stderr.write(`bench:study: ${e?.message ?? e}\n`);
    process.exit(1);
  });
}
