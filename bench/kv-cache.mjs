// KV cache type: its effect on memory and speed (issue #6, item 4). For each cache type, in a fresh process:
// load the decoder with a context of --ctx cells, run one --prompt-token prompt and --tg decode steps (EOS
// ignored), and report the cache's size, prompt and decode tok/s and peak RSS (VmHWM). Flash attention is on
// for every type (a q8_0 cache needs it), so only the cache type differs. (Accuracy is not measured here: the
// bench models have random weights with near-flat logits; test/decoder.test.ts checks each cache type against
// llama.cpp configured the same way.)
//   node bench/kv-cache.mjs [--model F | --shape mid --type q8_0] [--ctx 2048] [--prompt-tokens 1400] [--tg 64]
//        [--types f16,q8_0,f32] [--rounds 2] [--threads 2]
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuId, cpuModel, deviceSlug, gitCommit } from './machine.mjs';
import { promptTokens } from './workers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');

if (process.argv[2] === '--child') {
  const o = JSON.parse(process.argv[3]);
  const { loadModel } = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
  const m = await loadModel({ model: o.model, threads: o.threads, contextSize: o.ctx, kvCacheType: o.kv, flashAttention: true });
  const r = await m.generate(promptTokens(o.prompt), { maxTokens: o.tg + 1, addBos: false, ignoreEos: true });
  const { nLayer, nEmbd, nHead, nHeadKv } = m.info;
  await m.dispose();
  const hwm = Number(/VmHWM:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
  console.log(JSON.stringify({ kv: o.kv, shape: { nLayer, nEmbd, nHead, nHeadKv }, pp_tps: (o.prompt / r.timings.promptMs) * 1000,
    tg_tps: (o.tg / r.timings.decodeMs) * 1000, vm_hwm_kb: hwm }));
  process.exit(0);
}

const { values: opt } = parseArgs({ options: {
  model: { type: 'string' }, shape: { type: 'string', default: 'mid' }, type: { type: 'string', default: 'q8_0' },
  ctx: { type: 'string', default: '2048' }, 'prompt-tokens': { type: 'string', default: '1400' }, tg: { type: 'string', default: '64' },
  types: { type: 'string', default: 'f16,q8_0,f32' }, rounds: { type: 'string', default: '2' }, threads: { type: 'string', default: '2' },
  'no-write': { type: 'boolean', default: false },
} });
const model = opt.model ?? path.join(root, 'bench', '.models', `bench-${opt.shape}-${opt.type}.gguf`);
const o = { model, ctx: Number(opt.ctx), prompt: Number(opt['prompt-tokens']), tg: Number(opt.tg), threads: Number(opt.threads) };
const types = opt.types.split(',');
const runs = Object.fromEntries(types.map((t) => [t, []]));
for (let r = 0; r < Number(opt.rounds); r++) {
  for (const kv of r % 2 ? [...types].reverse() : types) {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify({ ...o, kv })], { encoding: 'utf8' });
    runs[kv].push(JSON.parse(out.trim().split('\n').pop()));
  }
}
const median = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor((s.length - 1) / 2)]; };
const info = runs[types[0]][0].shape;
const bytesPerEl = { f32: 4, f16: 2, q8_0: 34 / 32 };
const rows = types.map((kv) => {
  return { kv, cache_mb: (o.ctx * info.nLayer * 2 * info.nEmbd * (info.nHeadKv / info.nHead) * bytesPerEl[kv]) / 2 ** 20,
    pp_tps: median(runs[kv].map((x) => x.pp_tps)), tg_tps: median(runs[kv].map((x) => x.tg_tps)),
    peak_rss_mb: median(runs[kv].map((x) => x.vm_hwm_kb)) / 1024 };
});
console.log(`${path.basename(model)}, ctx ${o.ctx}, prompt ${o.prompt} tokens, ${o.tg} decode steps, flash attention on, ${opt.rounds} rounds (medians)`);
console.log('| KV type | cache MiB | pp tok/s | decode tok/s | peak RSS MiB |\n|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.kv} | ${r.cache_mb.toFixed(0)} | ${r.pp_tps.toFixed(1)} | ${r.tg_tps.toFixed(1)} | ${r.peak_rss_mb.toFixed(0)} |`);
if (!opt['no-write']) {
  const file = path.join(root, 'bench', 'results', `${deviceSlug()}.jsonl`);
  appendFileSync(file, JSON.stringify({ kind: 'kv-cache', date: new Date().toISOString(), commit: gitCommit(), device: deviceSlug(), cpu: cpuModel(), cpuid: cpuId(),
    model: path.basename(model), ...o, rounds: Number(opt.rounds), results: rows }) + '\n');
  console.log(`appended to ${path.relative(root, file)}`);
}
