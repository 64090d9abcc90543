#!/usr/bin/env node
// npm run bench:kernels -- [--threads 2] [--reps 10] [--copies 1] [CASES...]: our AVX512-VNNI matrix products
// (native/src/vnni_matmul.cpp) against ggml's own CPU kernels on one product at a time, same inputs, same
// threads (build/llava-rad-bench-kernels). A case is TYPE:K:M:N (q8_0 | q6_K | q4_K; K values per row, M rows,
// N columns). Default cases: the mid and 7B shapes' matrices at 512 columns (a prompt) and at 1 (a decode step).
// --copies C times C copies of each matrix in one graph (per product): enough copies to outgrow the caches
// stream the weights from memory, as a decode step of a real model does (--copies 40: about 1 GB for 7B matrices).
// Results: {kind: 'kernels', ...} lines appended to bench/results/<device>.jsonl, and a table.
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuId, cpuModel, deviceSlug, gitCommit } from './machine.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    threads: { type: 'string', default: '2' },
    reps: { type: 'string', default: '10' },
    copies: { type: 'string', default: '1' },
    'no-write': { type: 'boolean', default: false },
  },
});

const DEFAULT_CASES = [
  // mid (1024x8, n_ff 2816) q8_0: q/k/v/o, gate/up, down, the lm head; a prompt and a decode step
  'q8_0:1024:1024:512', 'q8_0:1024:2816:512', 'q8_0:2816:1024:512', 'q8_0:1024:32000:1',
  // 7B q4_k_m: q4_K for most matrices, q6_K for attn_v / ffn_down in some layers and the lm head
  'q4_K:4096:4096:512', 'q4_K:4096:11008:512', 'q6_K:11008:4096:512', 'q6_K:4096:4096:512',
  'q4_K:4096:11008:1', 'q4_K:11008:4096:1', 'q6_K:11008:4096:1', 'q6_K:4096:32000:1',
];
const cases = positionals.length ? positionals : DEFAULT_CASES;
const tool = path.join(root, process.env.LLAVA_RAD_BUILD_DIR ?? 'build', 'llava-rad-bench-kernels');
if (!existsSync(tool)) {
  console.error(`${tool} was not built (npm run build:native builds it)`);
  process.exit(1);
}
const r = spawnSync(tool, ['--threads', opt.threads, '--reps', opt.reps, '--copies', opt.copies, ...cases], { encoding: 'utf8', maxBuffer: 16 << 20 });
if (r.status !== 0) {
  console.error(r.stderr.slice(-2000));
  process.exit(r.status ?? 1);
}
const rows = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const device = deviceSlug();
const meta = { kind: 'kernels', date: new Date().toISOString(), commit: gitCommit(), device, cpu: cpuModel(), cpuid: cpuId(), loadavg_start: os.loadavg()[0] };
if (!opt['no-write']) {
  mkdirSync(path.join(here, 'results'), { recursive: true });
  appendFileSync(path.join(here, 'results', `${device}.jsonl`), `${JSON.stringify({ ...meta, cases: rows })}\n`);
}
console.log(`our VNNI kernels vs ggml's, ${opt.threads} threads, best of ${opt.reps}, ${opt.copies} cop${opt.copies === '1' ? 'y' : 'ies'} of each matrix (${device}, commit ${meta.commit})`);
console.log('| type | k | m | n | ggml ms | ours ms | ours / ggml speed |');
console.log('|---|---:|---:|---:|---:|---:|---:|');
for (const c of rows) {
  console.log(`| ${c.type} | ${c.k} | ${c.m} | ${c.n} | ${c.ggml_ms.toFixed(3)} | ${c.ours_ms.toFixed(3)} | ${c.speedup.toFixed(2)} |`);
}
