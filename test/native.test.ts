// Runs the C++ tests (build/llava-rad-tests, built by `npm install` from native/tests/) so that
// `npm test` covers them too. The GGUF fuzz test gets a small valid model to damage.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { makeTinyLlama } from './helpers/tiny-llama.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const exe = path.join(root, process.env.LLAVA_RAD_BUILD_DIR ?? 'build', 'llava-rad-tests');

it('the C++ tests pass', async () => {
  expect(existsSync(exe), `${exe} was not built`).toBe(true);
  const dir = mkdtempSync(path.join(tmpdir(), 'llava-rad-native-'));
  try {
    const seed = path.join(dir, 'seed.gguf');
    await makeTinyLlama({ path: seed, type: 'q4_0', nEmbd: 64, nFf: 128, nLayer: 1, nHead: 2, nHeadKv: 2 });
    const r = spawnSync(exe, ['', seed], { encoding: 'utf8', timeout: 240_000 });
    const summary = /(\d+) passed, (\d+) failed/.exec(r.stdout ?? '');
    expect(summary, `no summary in:\n${r.stdout}\n${r.stderr}`).not.toBeNull();
    expect(Number(summary![1])).toBeGreaterThan(10);
    expect(Number(summary![2]), r.stdout).toBe(0);
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/ok {3}gguf fuzz/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 300_000);

it("the engine's AVX512-VNNI kernels match ggml's q8_0, q6_K and q4_K products (C++; skipped on CPUs without them)", (ctx) => {
  expect(existsSync(exe), `${exe} was not built`).toBe(true);
  const r = spawnSync(exe, ['vnni: '], { encoding: 'utf8', timeout: 240_000 });
  if (/^skip vnni: q8_0 products/m.test(r.stdout ?? '')) ctx.skip();
  expect(r.stdout).toMatch(/^ok {3}vnni: q8_0 products equal ggml's/m);
  expect(r.stdout).toMatch(/^ok {3}vnni: q6_K products equal ggml's/m);
  expect(r.stdout).toMatch(/^ok {3}vnni: q4_K products .* equal ggml's/m);
  expect(r.status, r.stdout).toBe(0);
}, 300_000);
