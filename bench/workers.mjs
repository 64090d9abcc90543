// Engine workers of bench/run.mjs: each runs in its own child process (node bench/workers.mjs ENGINE
// 'JSON options'), loads the model once, warms up like llama-bench (one untimed run of each test), then
// times `reps` repetitions of pp (one prompt of `pp` tokens) and tg (`tg` single-token decode steps
// after BOS), and prints one JSON line:
//   { engine, load_ms, pp_tps: [..], tg_tps: [..], vm_hwm_kb, ... }
//
// ENGINE 'ours': this package's Node API (dist/index.js): loadModel + generate(token ids). pp rate =
//   pp / promptMs (prompt processing up to the first generated token, sampling it included); tg rate =
//   tg / decodeMs of a generation of tg + 1 tokens after BOS (decodeMs covers the tokens after the first).
// ENGINE 'nlc': node-llama-cpp's prebuilt CPU binaries in process (getLlama({gpu: false, build: 'never'})),
//   as test/helpers/llamacpp.ts loads them. pp = evaluateWithoutGeneratingNewTokens(pp tokens); tg = the
//   time from the first to the (tg + 1)-th token of sequence.evaluate([BOS]) with greedy sampling.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** deterministic prompt: BOS then pseudo-random ordinary tokens (llama-bench feeds random tokens too) */
export function promptTokens(n, nVocab = 32000, seed = 12345) {
  let x = seed >>> 0;
  const out = [1];
  while (out.length < n) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out.push(259 + (x % (nVocab - 259)));
  }
  return out;
}

function vmHwmKb() {
  const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : null;
}

async function ours(o) {
  const { loadModel } = await import(pathToFileURL(path.join(here, '..', 'dist', 'index.js')).href);
  // one context per test, sized as llama-bench sizes its own (n_prompt + n_gen cells, our engine rounds up to
  // 256 as llama.cpp does): the V cache is stored transposed, so a larger context spreads the rows attention
  // reads (a 4096-cell context made tg128's attention ~40% slower than in a 256-cell one)
  const load = (ctx) => loadModel({
    model: o.model,
    threads: o.threads,
    contextSize: ctx,
    batchSize: o.batch ?? 512,
    flashAttention: o.fa === 1,
    mmap: o.mmap === true,
  });
  const res = { engine: 'ours', load_ms: null, pp_tps: [], tg_tps: [], pp_ms: [], tg_ms: [], context: {}, batch: null };
  if (o.pp > 0) {
    const t0 = performance.now();
    const model = await load(o.pp + 1);
    res.load_ms = performance.now() - t0;
    res.context.pp = model.contextSize;
    res.batch = model.batchSize;
    const prompt = promptTokens(o.pp);
    const runPp = async () => (await model.generate(prompt, { maxTokens: 1, addBos: false, ignoreEos: true })).timings.promptMs;
    if (o.warmup !== false) await runPp();
    for (let i = 0; i < o.reps; i++) {
      const ms = await runPp();
      res.pp_ms.push(ms);
      res.pp_tps.push((o.pp / ms) * 1000);
    }
    await model.dispose();
  }
  if (o.tg > 0) {
    const t0 = performance.now();
    const model = await load(o.tg + 1);
    res.load_ms ??= performance.now() - t0;
    res.context.tg = model.contextSize;
    res.batch ??= model.batchSize;
    const runTg = async (n) => {
      const r = await model.generate([1], { maxTokens: n + 1, addBos: false, ignoreEos: true });
      if (r.tokens.length !== n + 1) throw new Error(`ours generated ${r.tokens.length} tokens, wanted ${n + 1}`);
      return r.timings.decodeMs;
    };
    if (o.warmup !== false) await runTg(Math.min(o.tg, 8));
    for (let i = 0; i < o.reps; i++) {
      const ms = await runTg(o.tg);
      res.tg_ms.push(ms);
      res.tg_tps.push((o.tg / ms) * 1000);
    }
    await model.dispose();
  }
  res.vm_hwm_kb = vmHwmKb();
  return res;
}

async function nlc(o) {
  const { getLlama } = await import('node-llama-cpp');
  const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false, logLevel: 'error' });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: o.model, gpuLayers: 0 });
  const ctx = await model.createContext({
    contextSize: o.ctx,
    batchSize: Math.min(o.ctx, 512),
    sequences: 1,
    flashAttention: o.fa === 1,
    threads: o.threads,
    ignoreMemorySafetyChecks: true,
  });
  const loadMs = performance.now() - t0;
  const seq = ctx.getSequence();
  const res = { engine: 'nlc', load_ms: loadMs, pp_tps: [], tg_tps: [], pp_ms: [], tg_ms: [], binary: null };
  try {
    res.binary = llama.buildType + ' ' + (llama.cpuMathCores !== undefined ? `cores=${llama.cpuMathCores}` : '');
  } catch {
    /* informational */
  }
  const prompt = promptTokens(o.pp);
  const runPp = async () => {
    await seq.clearHistory();
    const t = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    const ms = performance.now() - t;
    await seq.clearHistory();
    return ms;
  };
  const runTg = async (n) => {
    await seq.clearHistory();
    let first = 0;
    let count = 0;
    for await (const _tok of seq.evaluate([1], { temperature: 0 })) {
      count++;
      if (count === 1) first = performance.now();
      if (count === n + 1) break;
    }
    const ms = performance.now() - first;
    await seq.clearHistory();
    return ms;
  };
  if (o.pp > 0) {
    if (o.warmup !== false) await runPp();
    for (let i = 0; i < o.reps; i++) {
      const ms = await runPp();
      res.pp_ms.push(ms);
      res.pp_tps.push((o.pp / ms) * 1000);
    }
  }
  if (o.tg > 0) {
    if (o.warmup !== false) await runTg(Math.min(o.tg, 8));
    for (let i = 0; i < o.reps; i++) {
      const ms = await runTg(o.tg);
      res.tg_ms.push(ms);
      res.tg_tps.push((o.tg / ms) * 1000);
    }
  }
  await ctx.dispose();
  await model.dispose();
  res.vm_hwm_kb = vmHwmKb();
  await llama.dispose();
  return res;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const engine = process.argv[2];
  const o = JSON.parse(process.argv[3] ?? '{}');
  const fn = engine === 'ours' ? ours : engine === 'nlc' ? nlc : undefined;
  if (!fn) {
    console.error('usage: node bench/workers.mjs ours|nlc JSON');
    process.exit(2);
  }
  const res = await fn(o);
  process.stdout.write(`${JSON.stringify(res)}\n`);
  process.exit(0);
}
