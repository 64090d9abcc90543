#!/usr/bin/env node
// Fuzz harness (issue #20): mutates checkpoints (PyTorch zip / legacy pickles, safetensors), GGUFs, DICOMs,
// images, batch manifests, model folders, BERT-family GGUFs (CheXbert, RadGraph, CLIP text), retrieval
// indexes, RadGraph archives, HTTP requests, hostile text (bench/fuzz/text.mjs) and journals damaged between
// two runs (bench/fuzz/journal.mjs, journal-target.mjs) for a fixed budget, runs each input through the library's own
// entry point in a pool of child processes, and counts what happened: accepted, a typed LlavaRadError (by
// code), an untyped error, a signal, a hang (no answer within 30 s), a peak (RSS over 4 GiB).
//
//   node bench/fuzz.mjs [--inputs 12000] [--seconds N] [--targets torch,gguf,...] [--seed S] [--jobs 2]
//   node bench/fuzz.mjs --replay gguf:1000123,torch:1000007 [--keep DIR]     # rerun cases, print details
//
// Appends one {"kind": "fuzz"} line to bench/results/fuzz-<device>.jsonl (not for --replay / --no-record).
// Components: bench/fuzz/{bundle,child,pool,report,targets}.mjs and one mutator per format (bytes, zip,
// pickle, json, safetensors, gguf, dicom, image, manifest, index-file, journal); seeds.mjs makes the converted
// seeds and the cut-short batch job and index build the journal target resumes.
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { addonEnv, buildBundle, root } from './fuzz/bundle.mjs';
import { Pool } from './fuzz/pool.mjs';
import { makeSeeds } from './fuzz/seeds.mjs';
import { Tally } from './fuzz/report.mjs';
import { TARGETS } from './fuzz/targets.mjs';
import { cpuId, cpuModel, deviceSlug, gitCommit } from './machine.mjs';

const { values: a } = parseArgs({
  options: {
    inputs: { type: 'string', default: '12000' },
    seconds: { type: 'string' },
    targets: { type: 'string' },
    seed: { type: 'string', default: '1' },
    jobs: { type: 'string', default: '2' },
    chunk: { type: 'string', default: '10' },
    replay: { type: 'string' },
    keep: { type: 'string' },
    log: { type: 'string' },
    'hang-s': { type: 'string', default: '30' },
    'peak-gib': { type: 'string', default: '4' },
    'no-record': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (a.help) {
  console.log(`node bench/fuzz.mjs [--inputs N] [--seconds S] [--targets ${Object.keys(TARGETS).join(',')}] [--seed S] [--jobs 1|2] [--chunk N]
                  [--hang-s 30] [--peak-gib 4] [--no-record] [--keep DIR] [--log FILE.jsonl (every result)]
node bench/fuzz.mjs --replay target:seed[,target:seed...] [--keep DIR]`);
  process.exit(0);
}

const jobsN = Math.max(1, Math.min(2, Number(a.jobs)));
const chunk = Math.max(1, Number(a.chunk));
const seedBase = Number(a.seed) * 1_000_000;

/** the jobs: per target its share of the inputs, chunked and interleaved so every target advances evenly */
function plan() {
  if (a.replay) {
    return a.replay.split(',').map((s) => {
      const [target, seed] = s.split(':');
      if (!TARGETS[target] || !Number.isInteger(Number(seed))) throw new Error(`--replay wants target:seed, got ${s}`);
      return { target, seeds: [Number(seed)] };
    });
  }
  const names = a.targets ? a.targets.split(',') : Object.keys(TARGETS).filter((n) => !TARGETS[n].manual);
  for (const n of names) if (!TARGETS[n]) throw new Error(`unknown target ${n} (${Object.keys(TARGETS).join(', ')})`);
  const fixed = names.filter((n) => TARGETS[n].count);
  const weighted = names.filter((n) => !TARGETS[n].count);
  const rest = Math.max(0, Number(a.inputs) - fixed.reduce((s, n) => s + TARGETS[n].count, 0));
  const wsum = weighted.reduce((s, n) => s + TARGETS[n].weight, 0);
  const counts = Object.fromEntries([...fixed.map((n) => [n, TARGETS[n].count]), ...weighted.map((n) => [n, Math.floor((rest * TARGETS[n].weight) / wsum)])]);
  // what the rounding left goes to the first weighted targets, one each, so the total is exactly --inputs
  for (let left = rest - weighted.reduce((s, n) => s + counts[n], 0), i = 0; left > 0 && weighted.length; left--, i++) counts[weighted[i % weighted.length]]++;
  const chunks = [];
  for (const [n, c] of Object.entries(counts)) {
    const k = Math.ceil(c / chunk);
    for (let i = 0; i < k; i++) {
      const seeds = [];
      for (let j = i * chunk; j < Math.min(c, (i + 1) * chunk); j++) seeds.push(seedBase + j);
      chunks.push({ target: n, seeds, order: (i + 0.5) / k });
    }
  }
  chunks.sort((x, y) => x.order - y.order);
  return chunks.map(({ target, seeds }) => ({ target, seeds }));
}

const jobs = plan();
const planned = jobs.reduce((s, j) => s + j.seeds.length, 0);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'llava-rad-fuzz-'));
if (a.keep) mkdirSync(a.keep, { recursive: true });
// the commit of the sources bundled now (read at the end, it would name whatever was committed meanwhile)
const commit = gitCommit();
const bundle = await buildBundle(path.join(tmp, 'bundle'));
// targets whose seeds are converted models or written indexes get them made once, here, by the library
const seeds = path.join(tmp, 'seeds');
if (jobs.some((j) => TARGETS[j.target].seeds)) {
  Object.assign(process.env, addonEnv());
  await makeSeeds(await import(bundle), seeds, console.error);
}
const tally = new Tally();
if (!a.replay) {
  const per = {};
  for (const j of jobs) per[j.target] = (per[j.target] ?? 0) + j.seeds.length;
  console.error(`[fuzz] ${planned} inputs (${Object.entries(per).map(([n, c]) => `${n} ${c}`).join(', ')}), ${Math.min(jobsN, jobs.length)} children, seeds from ${seedBase}`);
}
const t0 = Date.now();
let last = t0;
const replays = [];
const pool = new Pool({
  size: Math.min(jobsN, jobs.length),
  env: { ...addonEnv(), FUZZ_BUNDLE: bundle, FUZZ_SEEDS: seeds, ...(a.keep ? { FUZZ_KEEP: path.resolve(a.keep) } : {}), LLAVA_RAD_THREADS: '1' },
  tmp,
  hangMs: Number(a['hang-s']) * 1000,
  peakKiB: Number(a['peak-gib']) * 1024 * 1024,
  deadline: a.seconds ? t0 + Number(a.seconds) * 1000 : Infinity,
  onResult: (r) => {
    // a peak the 100 ms sampling missed still shows in the input's own VmHWM
    if (r.peakKiB > Number(a['peak-gib']) * 1024 * 1024 && r.outcome !== 'peak') r = { ...r, outcome: 'peak', detail: { ...r.detail, was: r.outcome } };
    tally.add(r);
    if (a.log) appendFileSync(a.log, JSON.stringify(r) + '\n');
    if (a.replay) replays.push(r);
    const now = Date.now();
    if (now - last > 30_000) {
      last = now;
      const T = tally.totals();
      const eta = ((now - t0) / T.inputs) * (planned - T.inputs);
      console.error(`[fuzz] ${T.inputs}/${planned} in ${((now - t0) / 1000).toFixed(0)} s (eta ${(eta / 1000).toFixed(0)} s): ok ${T.ok}, typed ${T.typed}, untyped ${T.untyped}, signal ${T.signal}, hang ${T.hang}, peak ${T.peak}, exit ${T.exit + T.uncaught}, harness ${T.harness}`);
    }
  },
});
try {
  await pool.run(jobs);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
const seconds = (Date.now() - t0) / 1000;

if (a.replay) {
  for (const r of replays) {
    console.log(`${r.target}:${r.seed}  ${r.outcome}  ${r.ms.toFixed?.(0) ?? r.ms} ms  peak ${(r.peakKiB / 1024).toFixed(0)} MB`);
    console.log(`  ${JSON.stringify(r.detail, null, 2).replace(/\n/g, '\n  ')}`);
  }
  process.exit(0);
}

console.log(tally.table());
const T = tally.totals();
console.log(`\n${T.inputs} inputs in ${seconds.toFixed(0)} s; max RSS of a child ${(pool.maxRssKiB / 1024).toFixed(0)} MB; children started ${pool.spawned}`);
if (!a['no-record']) {
  const file = path.join(root, 'bench', 'results', `fuzz-${deviceSlug()}.jsonl`);
  mkdirSync(path.dirname(file), { recursive: true });
  const rec = {
    kind: 'fuzz', date: new Date().toISOString(), commit, device: deviceSlug(), cpu: cpuModel(), cpuid: cpuId(), node: process.version,
    args: { inputs: Number(a.inputs), seconds: a.seconds ? Number(a.seconds) : null, targets: a.targets ?? 'all', seed: Number(a.seed), jobs: jobsN, chunk },
    limits: { hangS: Number(a['hang-s']), peakGiB: Number(a['peak-gib']) },
    durationS: Math.round(seconds), inputs: T.inputs, planned, maxRssMB: Math.round(pool.maxRssKiB / 1024), childrenStarted: pool.spawned,
    ...tally.record(),
    what: Object.fromEntries(Object.keys(tally.targets).map((n) => [n, TARGETS[n].what])),
  };
  appendFileSync(file, JSON.stringify(rec) + '\n');
  console.log(`recorded in ${path.relative(root, file)}`);
}
