// How long an abort takes to end a generation whose prompt is being computed (issue #14, item 2): a
// 7B-shaped decoder (random weights, bench/make-model.mjs), one prompt of --prompt-tokens tokens prefilled in
// one batch; --after ms into the prefill the AbortSignal fires; the time from abort() to the rejection is the
// latency. Then the same model generates again, to show the context is usable after the abort.
//   node bench/abort-latency.mjs [--shape 7b --type q4_k_m | --model F] [--prompt-tokens 512] [--after 1500]
//        [--rounds 5] [--threads 2] [--addon build/Release/llava_rad.node]
// --addon runs another build of the engine (e.g. an older commit's) for a before/after comparison; the
// result line names the addon it ran.
import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
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
  const m = await loadModel({ model: o.model, threads: o.threads, contextSize: 1024, batchSize: o.prompt });
  const latencies = [];
  for (let i = 0; i < o.rounds; i++) {
    const ac = new AbortController();
    let tAbort = 0;
    const timer = setTimeout(() => { tAbort = performance.now(); ac.abort(); }, o.after);
    const err = await m.generate(promptTokens(o.prompt), { maxTokens: 4, addBos: false, ignoreEos: true, signal: ac.signal })
      .then(() => null, (e) => e);
    const tEnd = performance.now();
    clearTimeout(timer);
    if (!err || err.code !== 'ABORTED') throw new Error(`round ${i}: expected ABORTED, got ${err ? err.code : 'a result'} (the prefill ended before --after?)`);
    latencies.push(tEnd - tAbort);
  }
  const after = await m.generate(promptTokens(16), { maxTokens: 2, addBos: false, ignoreEos: true });
  await m.dispose();
  console.log(JSON.stringify({ latencies_ms: latencies, usable_after: after.tokens.length === 2 }));
  process.exit(0);
}

const { values: opt } = parseArgs({ options: {
  model: { type: 'string' }, shape: { type: 'string', default: '7b' }, type: { type: 'string', default: 'q4_k_m' },
  'prompt-tokens': { type: 'string', default: '512' }, after: { type: 'string', default: '1500' },
  rounds: { type: 'string', default: '5' }, threads: { type: 'string', default: '2' }, addon: { type: 'string' },
  'no-write': { type: 'boolean', default: false },
} });
const model = opt.model ?? path.join(root, 'bench', '.models', `bench-${opt.shape}-${opt.type}.gguf`);
const o = { model, prompt: Number(opt['prompt-tokens']), after: Number(opt.after), rounds: Number(opt.rounds), threads: Number(opt.threads) };
const env = { ...process.env };
if (opt.addon) env.LLAVA_RAD_ADDON = path.resolve(opt.addon);
const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(o)], { env, encoding: 'utf8' });
const r = JSON.parse(out.trim().split('\n').pop());
const sorted = [...r.latencies_ms].sort((a, b) => a - b);
const line = {
  bench: 'abort-latency', commit: gitCommit(), cpu: cpuModel(), cpuid: cpuId(), threads: o.threads, model: path.basename(model),
  prompt_tokens: o.prompt, abort_after_ms: o.after, addon: opt.addon ?? 'build/Release/llava_rad.node',
  latency_ms_median: sorted[Math.floor(sorted.length / 2)], latency_ms_max: sorted[sorted.length - 1],
  latencies_ms: r.latencies_ms.map((x) => Math.round(x)), usable_after: r.usable_after, date: new Date().toISOString(),
};
console.log(JSON.stringify(line));
if (!opt['no-write']) appendFileSync(path.join(root, 'bench', 'results', `${deviceSlug()}.jsonl`), JSON.stringify(line) + '\n');
