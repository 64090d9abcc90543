#!/usr/bin/env node
// llama.cpp's own llama-bench, built natively (-DGGML_NATIVE=ON) from the SAME llama.cpp source our engine
// is built from: build/llama.cpp, the checkout of node-llama-cpp's bundle that our native build made.
//
//   node bench/llama-bench.mjs            prints the path of the binary, building it first when needed
//   LLAMA_BENCH=/path/to/llama-bench      use that binary instead (no build)
//
// Build folder: build-bench/llama.cpp (git-ignored); it is reused while the source's bundle hash
// (build/llama.cpp.stamp) is unchanged. The first build takes 10-15 minutes on 2 cores.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
export const SOURCE_DIR = path.join(root, 'build', 'llama.cpp');
export const BUILD_DIR = path.join(root, 'build-bench', 'llama.cpp');
export const BINARY = path.join(BUILD_DIR, 'bin', 'llama-bench');
const STAMP = path.join(BUILD_DIR, 'llava-rad-bench.stamp');

export const CMAKE_FLAGS = [
  '-G', 'Ninja',
  '-DCMAKE_BUILD_TYPE=Release',
  '-DGGML_NATIVE=ON',
  '-DLLAMA_CURL=OFF',
  '-DLLAMA_BUILD_TESTS=OFF',
  '-DLLAMA_BUILD_EXAMPLES=OFF',
  '-DLLAMA_BUILD_SERVER=OFF',
];

function sourceHash() {
  const stamp = path.join(root, 'build', 'llama.cpp.stamp');
  return existsSync(stamp) ? readFileSync(stamp, 'utf8').trim() : 'unknown';
}

function run(cmd, args, log) {
  log(`bench: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} failed (exit ${r.status ?? r.signal})`);
}

/** Path of a llama-bench binary: $LLAMA_BENCH, the cached build, or a fresh build. */
export function ensureLlamaBench({ log = console.error } = {}) {
  const given = process.env.LLAMA_BENCH;
  if (given) {
    if (!existsSync(given)) throw new Error(`LLAMA_BENCH=${given} does not exist`);
    return { path: given, source: 'LLAMA_BENCH' };
  }
  const hash = sourceHash();
  if (existsSync(BINARY) && existsSync(STAMP) && readFileSync(STAMP, 'utf8').trim() === hash) {
    return { path: BINARY, source: 'cached build-bench/llama.cpp' };
  }
  if (!existsSync(path.join(SOURCE_DIR, 'tools', 'llama-bench'))) {
    throw new Error(`${SOURCE_DIR} has no llama.cpp checkout: build the engine first (npm run build:native)`);
  }
  rmSync(STAMP, { force: true });
  mkdirSync(BUILD_DIR, { recursive: true });
  const jobs = String(process.env.LLAVA_RAD_JOBS || os.availableParallelism?.() || os.cpus().length);
  log(`bench: building llama-bench from ${path.relative(root, SOURCE_DIR)} into ${path.relative(root, BUILD_DIR)} (10-15 minutes on 2 cores)`);
  run('cmake', ['-S', SOURCE_DIR, '-B', BUILD_DIR, ...CMAKE_FLAGS], log);
  run('cmake', ['--build', BUILD_DIR, '--target', 'llama-bench', '--parallel', jobs], log);
  if (!existsSync(BINARY)) throw new Error(`the build did not produce ${BINARY}`);
  writeFileSync(STAMP, `${hash}\n`);
  return { path: BINARY, source: 'built build-bench/llama.cpp' };
}

/**
 * Runs llama-bench -o json; returns its result objects (one per test: pp or tg, per fa setting).
 * fa: list of flash-attention settings ('0' / '1').
 */
export function runLlamaBench(bin, { model, threads, pp, tg, reps, fa = ['0'], extraEnv = {}, spawn }) {
  const tests = [];
  // llama-bench sizes each test's context itself (n_prompt + n_gen) and warms up before timing
  const args = ['-m', model, '-t', String(threads), '-r', String(reps), '-fa', fa.join(','), '-o', 'json'];
  if (pp > 0) args.push('-p', String(pp));
  else args.push('-p', '0');
  if (tg > 0) args.push('-n', String(tg));
  else args.push('-n', '0');
  const options = { encoding: 'utf8', env: { ...process.env, ...extraEnv }, maxBuffer: 64 << 20 };
  // spawn: a spawnSync-like runner (bench/run.mjs passes one that also takes peak RSS and CPU time)
  const r = spawn ? spawn(bin, args, options) : spawnSync(bin, args, options);
  if (r.status !== 0) throw new Error(`llama-bench failed (exit ${r.status ?? r.signal}): ${r.stderr.slice(-2000)}`);
  const out = JSON.parse(r.stdout);
  for (const t of out) tests.push(t);
  return { ...r, args, tests, stderr: r.stderr };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  console.log(ensureLlamaBench().path);
}
