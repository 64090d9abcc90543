// The C++ tests and the C++ CLI under AddressSanitizer (with LeakSanitizer) and UndefinedBehaviorSanitizer
// (issue #14 item 5). Builds build-asan/ with plain CMake and LLAVA_RAD_SANITIZE=address,undefined (README
// "Building with sanitizers"; incremental when it exists: only the C++ tests and the CLI, one CPU module for
// this machine), then runs them on the tiny models (decoders, vision, the tiny CheXbert). Every run must exit 0 with no sanitizer report on stderr.
// A failed build fails every test here; nothing is skipped.
// LLAVA_RAD_ASAN_BUILD_DIR: another build folder; LLAVA_RAD_JOBS: parallel compile jobs (default: CPU count).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { convertChexbert } from '../lib/convert/chexbert.js';
import { bertBaseUncasedVocabText } from './fixtures/wordpiece/vocab.js';
import { makeTinyLlama, tinyLlamaPath } from './helpers/tiny-llama.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.resolve(root, process.env.LLAVA_RAD_ASAN_BUILD_DIR ?? 'build-asan');
const SANITIZE = 'address,undefined';
const testsExe = path.join(buildDir, 'llava-rad-tests');
const cliExe = path.join(buildDir, 'llava-rad-cli');
const VISION = path.join(root, 'test', 'fixtures', 'vision', 'tiny-vision-f32.gguf');

// what the sanitizers print when they find something (UBSan: "file:line:col: runtime error: ...")
const REPORT = /ERROR: (AddressSanitizer|LeakSanitizer)|SUMMARY: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)|runtime error:/;

const sanitizerEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  // exit code 23 on any finding, so a report cannot pass as a clean run even if stderr were lost
  ASAN_OPTIONS: 'detect_leaks=1:halt_on_error=1:exitcode=23:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1',
  LSAN_OPTIONS: 'exitcode=23',
  UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1:exitcode=23',
});

function run(exe: string, args: string[], timeout = 600_000): SpawnSyncReturns<string> {
  return spawnSync(exe, args, { cwd: root, encoding: 'utf8', timeout, env: sanitizerEnv(), maxBuffer: 64 << 20 });
}

function expectClean(r: SpawnSyncReturns<string>, what: string) {
  const out = `${what}: exit ${r.status} signal ${r.signal}${r.error ? ` (${r.error.message})` : ''}\n--- stdout\n${(r.stdout ?? '').slice(-4000)}\n--- stderr\n${(r.stderr ?? '').slice(-12000)}`;
  expect(r.stderr ?? '', out).not.toMatch(REPORT);
  expect(r.status, out).toBe(0);
}

function sh(cmd: string, args: string[], timeout: number) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout, maxBuffer: 256 << 20 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}, signal ${r.signal}${r.error ? `, ${r.error.message}` : ''}):\n` +
      `${(r.stdout ?? '').slice(-6000)}\n${(r.stderr ?? '').slice(-6000)}`);
  }
}

const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-sanitizers-'));
let seed: string;
let decoderF32: string;
let decoderQ4K: string;
let chexbert: string;
// a failed build or fixture fails every test below with its message (a throwing beforeAll would skip them)
let setupError: unknown;
const ready = () => {
  if (setupError !== undefined) throw setupError;
};

beforeAll(async () => {
  try {
    await setup();
  } catch (e) {
    setupError = e;
  }
}, 3_700_000);

async function setup() {
  // configure (again, cheaply, when the folder exists: picks up new sources) and build what the tests run
  const bundle = path.join(root, 'node_modules', 'node-llama-cpp', 'llama', 'gitRelease.bundle');
  const configure = ['-S', root, '-B', buildDir, `-DLLAVA_RAD_SANITIZE=${SANITIZE}`, `-DLLAVA_RAD_LLAMA_BUNDLE=${bundle}`,
    '-DLLAVA_RAD_NATIVE=ON', '-DLLAVA_RAD_CUDA=OFF', '-DLLAVA_RAD_CLI=ON', '-DLLAVA_RAD_TESTS=ON', '-DCMAKE_BUILD_TYPE=Release'];
  if (!existsSync(path.join(buildDir, 'CMakeCache.txt')) && spawnSync('ninja', ['--version']).status === 0) configure.push('-G', 'Ninja');
  sh('cmake', configure, 600_000);
  const jobs = process.env.LLAVA_RAD_JOBS || String(os.availableParallelism?.() ?? os.cpus().length);
  sh('cmake', ['--build', buildDir, '--parallel', jobs, '--target', 'llava-rad-tests', 'llava-rad-cli'], 3_600_000);

  seed = path.join(tmp, 'seed.gguf');
  await makeTinyLlama({ path: seed, type: 'q4_0', nEmbd: 64, nFf: 128, nLayer: 1, nHead: 2, nHeadKv: 2 });
  decoderF32 = await tinyLlamaPath('f32');
  decoderQ4K = await tinyLlamaPath('q4_k');
  chexbert = path.join(tmp, 'chexbert-f32.gguf');
  const chexbertDir = path.join(root, 'test', 'fixtures', 'chexbert');
  const heads = (JSON.parse(readFileSync(path.join(chexbertDir, 'goldens.json'), 'utf8')) as { hparams: { heads: number } }).hparams.heads;
  await convertChexbert(path.join(chexbertDir, 'chexbert-tiny.pth'), WordPieceVocab.fromText(bertBaseUncasedVocabText()), chexbert, { type: 'f32', headCount: heads });
}

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// A canary built with the compiler and the flags of the sanitized build (CMakeLists.txt, LLAVA_RAD_SANITIZE): each
// of its faults must be reported and end the run with exitcode 23, or a clean run below would prove nothing
// (e.g. LeakSanitizer cannot run under ptrace or in some sandboxes; a runtime could be missing).
const CANARY = `#include <climits>
#include <cstdlib>
#include <cstring>
static char * g_keep;
__attribute__((noinline)) static void poke(char * p, int i) { p[i] = 1; } // beyond UBSan's object-size view
__attribute__((noinline)) static void leak() { char * p = new char[4096]; std::memset(p, 1, 4096); g_keep = p; g_keep = nullptr; }
int main(int argc, char ** argv) {
    if (argc < 2) return 0;
    volatile int i = 8, big = INT_MAX;
    if (!std::strcmp(argv[1], "heap-overflow")) { char * p = static_cast<char *>(std::malloc(8)); poke(p, i); std::free(p); }
    if (!std::strcmp(argv[1], "signed-overflow")) return big + argc > 0 ? 0 : 1;
    if (!std::strcmp(argv[1], "leak")) leak();
    return 0;
}
`;

describe(`under -fsanitize=${SANITIZE} (${path.relative(root, buildDir)}/)`, () => {
  it('the sanitizers report a heap overflow, a signed overflow and a leak in a canary built like the engine', () => {
    ready();
    const cache = readFileSync(path.join(buildDir, 'CMakeCache.txt'), 'utf8');
    const cxx = /^CMAKE_CXX_COMPILER:\w+=(.+)$/m.exec(cache)?.[1];
    expect(cxx, 'CMAKE_CXX_COMPILER in the cache').toBeTruthy();
    const src = path.join(tmp, 'canary.cpp');
    const exe = path.join(tmp, 'canary');
    writeFileSync(src, CANARY);
    sh(cxx!, [`-fsanitize=${SANITIZE}`, '-fno-sanitize-recover=all', '-fno-omit-frame-pointer', '-O1', '-g', src, '-o', exe], 120_000);
    expectClean(run(exe, []), 'canary without a fault');
    for (const [fault, report] of [
      ['heap-overflow', /ERROR: AddressSanitizer: heap-buffer-overflow/],
      ['signed-overflow', /runtime error: signed integer overflow/],
      ['leak', /ERROR: LeakSanitizer: detected memory leaks/],
    ] as const) {
      const r = run(exe, [fault]);
      expect(r.stderr, fault).toMatch(report);
      expect(r.stderr, fault).toMatch(REPORT);
      expect(r.status, `${fault}: ${r.stderr}`).toBe(23);
    }
  });

  it('the build is the sanitized one: the cache says so and both sanitizer runtimes are linked in', () => {
    ready();
    const cache = readFileSync(path.join(buildDir, 'CMakeCache.txt'), 'utf8');
    expect(cache).toMatch(new RegExp(`^LLAVA_RAD_SANITIZE:STRING=${SANITIZE}$`, 'm'));
    for (const exe of [testsExe, cliExe]) {
      // ASan lists its flags at start-up when asked; GCC links both runtimes as shared libraries (Clang: static)
      const r = spawnSync(exe, ['--help'], { encoding: 'utf8', env: { ...sanitizerEnv(), ASAN_OPTIONS: 'help=1' } });
      expect(r.stderr, exe).toMatch(/Available flags for AddressSanitizer/);
      const ldd = spawnSync('ldd', [exe], { encoding: 'utf8' }).stdout ?? '';
      if (/libasan\.so/.test(ldd)) expect(ldd, exe).toMatch(/libubsan\.so/);
    }
  });

  it('the C++ tests pass with no sanitizer report (all of them, the GGUF fuzz test included)', () => {
    ready();
    const r = run(testsExe, ['', seed]);
    expectClean(r, 'llava-rad-tests');
    const summary = /(\d+) passed, (\d+) failed/.exec(r.stdout ?? '');
    expect(summary, r.stdout).not.toBeNull();
    expect(Number(summary![1])).toBeGreaterThan(10);
    expect(Number(summary![2]), r.stdout).toBe(0);
    expect(r.stdout).toMatch(/ok {3}gguf fuzz/);
  }, 900_000);

  it('llava-rad-cli generate (f32 and q4_K decoders) runs clean', () => {
    ready();
    for (const model of [decoderF32, decoderQ4K]) {
      const r = run(cliExe, ['generate', '--model', model, '--prompt', 'The lungs are clear.', '--max-tokens', '8', '--ignore-eos', '--threads', '2', '--json']);
      expectClean(r, `generate ${path.basename(model)}`);
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as { tokens: unknown[]; n_generated: number };
      expect(j.n_generated).toBe(8);
      expect(j.tokens).toHaveLength(8);
    }
  }, 600_000);

  it('llava-rad-cli vision (a batch of 2) runs clean', () => {
    ready();
    const r = run(cliExe, ['vision', '--model', VISION, '--images', '2', '--batch', '2', '--threads', '2', '--json']);
    expectClean(r, 'vision');
    expect(r.stdout).toMatch(/"images":\s*2/);
  }, 600_000);

  it('llava-rad-cli bert (the tiny CheXbert: 4 sequences of mixed lengths, batched and one at a time) runs clean', () => {
    ready();
    for (const batch of ['1', '0']) {
      const r = run(cliExe, ['bert', '--model', chexbert, '--seqs', '4', '--len', '40', '--batch', batch, '--threads', '2', '--json']);
      expectClean(r, `bert --batch ${batch}`);
      expect(r.stdout).toMatch(/"sequences":\s*4/);
    }
  }, 600_000);

  it('llava-rad-cli study (2 studies, 2 at once: vision batches, continuous batching) runs clean', () => {
    ready();
    const r = run(cliExe, ['study', '--model', decoderF32, '--mmproj', VISION, '--studies', '2', '--parallel', '2', '--max-tokens', '4',
      '--latency-runs', '1', '--threads', '2', '--json']);
    expectClean(r, 'study');
    expect(r.stdout).toMatch(/"generated_tokens":\s*8/);
  }, 600_000);
});
