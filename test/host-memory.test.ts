// Models and contexts that do not fit in memory are OUT_OF_MEMORY errors, not the kernel's OOM killer. Weights
// copied into memory and KV caches are written as soon as they are allocated; before host_memory.h's check, a
// 7B q4_k_m loaded with contextSize 44000 on a 24 GB machine (a 21.5 GiB KV cache beside 3.8 GiB of weights) had
// the process killed (exit 137) while the cache was cleared. Now each is refused before it is allocated when it
// needs more than the machine or the container allows, or more than is available now (MemAvailable + SwapFree; a
// limited cgroup's limit less its working set), and the process goes on. So are compute buffers that would grow
// past what is available once the weights and the cache are in, and generations with keepLogits, whose every
// step's logits the caller is handed and holds (maxTokens x n_vocab floats).
//
// The machine's size is made up: each case runs in a child process whose LLAVA_RAD_TEST_HOST_ROOT points the
// engine at a fake /proc/meminfo and cgroup tree (native/tests/test_cpu_choice.cpp checks the reading of real
// formats), so the refusals do not depend on the memory of the machine the suite runs on.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-host-memory-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const MIB = 1024 * 1024;
const PROMPT = Array.from({ length: 24 }, (_, i) => 300 + 37 * i);
const TOKENS = 16;

interface FakeHost {
  memTotalMiB: number;
  memAvailableMiB: number;
  /** a cgroup v2 limit on the process's cgroup, with its usage */
  cgroup?: { maxMiB: number; currentMiB: number; inactiveFileMiB: number };
}

/** a fake /proc + /sys tree (what host_memory.cpp reads) */
function fakeHost(name: string, h: FakeHost): string {
  const kib = (mib: number) => Math.round(mib * 1024);
  const dir = path.join(tmp, name);
  mkdirSync(path.join(dir, 'proc', 'self'), { recursive: true });
  writeFileSync(path.join(dir, 'proc', 'meminfo'),
    `MemTotal:       ${kib(h.memTotalMiB)} kB\nMemFree:        1024 kB\nMemAvailable:   ${kib(h.memAvailableMiB)} kB\nSwapTotal:      0 kB\nSwapFree:       0 kB\n`);
  writeFileSync(path.join(dir, 'proc', 'self', 'cgroup'), '0::/kubepods/pod1\n');
  if (h.cgroup) {
    const cg = path.join(dir, 'sys', 'fs', 'cgroup', 'kubepods', 'pod1');
    mkdirSync(cg, { recursive: true });
    writeFileSync(path.join(cg, 'memory.max'), `${h.cgroup.maxMiB * MIB}\n`);
    writeFileSync(path.join(cg, 'memory.current'), `${h.cgroup.currentMiB * MIB}\n`);
    writeFileSync(path.join(cg, 'memory.stat'), `anon ${(h.cgroup.currentMiB - h.cgroup.inactiveFileMiB) * MIB}\ninactive_file ${h.cgroup.inactiveFileMiB * MIB}\n`);
  }
  return dir;
}

type Outcome = { loaded: true; tokens?: number[]; logits?: number } | { loaded: false; code?: string; message: string };

/**
 * Loads each of `loads` in turn in one child process on the fake host (a decoder: generate TOKENS greedy
 * tokens, or as `generate` says; a vision tower: encode one image), reporting each outcome.
 */
function loadAll(host: string, loads: Array<{ decoder?: Record<string, unknown>; generate?: Record<string, unknown>; vision?: Record<string, unknown> }>): Outcome[] {
  const code = `const { loadModel, loadVisionModel } = await import(${JSON.stringify(path.join(root, 'lib', 'index.ts'))});
    const out = [];
    for (const l of ${JSON.stringify(loads)}) {
      try {
        if (l.decoder) {
          const m = await loadModel({ threads: 1, ...l.decoder });
          let r;
          try {
            r = await m.generate(${JSON.stringify(PROMPT)}, { maxTokens: ${TOKENS}, ignoreEos: true, ...l.generate });
          } finally {
            await m.dispose();
          }
          out.push({ loaded: true, tokens: r.tokens, ...(r.logits ? { logits: r.logits.length } : {}) });
        } else {
          const v = await loadVisionModel({ threads: 1, ...l.vision });
          await v.encode(new Float32Array(v.pixelsPerImage));
          await v.dispose();
          out.push({ loaded: true });
        }
      } catch (e) { out.push({ loaded: false, code: e.code, message: String(e.message) }); }
    }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--import', path.join(root, 'scripts', 'ts-hooks.mjs'), '--input-type=module', '-e', code], {
    cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, LLAVA_RAD_TEST_HOST_ROOT: host },
  });
  expect(r.status, `the child ended by ${r.signal ?? `exit ${r.status}`}: ${r.stderr.slice(-800)}`).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Outcome[];
}

describe('memory the machine does not have: OUT_OF_MEMORY before the allocation, the process goes on', () => {
  let f32: string;
  let reference: number[]; // the tokens on the real machine
  beforeAll(async () => {
    f32 = await tinyLlamaPath('f32');
    const m = await loadModel({ model: f32, contextSize: 256, threads: 1 });
    try {
      reference = (await m.generate(PROMPT, { maxTokens: TOKENS, ignoreEos: true })).tokens;
    } finally {
      await m.dispose();
    }
  }, 300_000);

  it('50 MiB available: copied f32 weights (68 MiB) and a 128 MiB KV cache are refused; mmap and a small cache load and give the same tokens', () => {
    const host = fakeHost('small', { memTotalMiB: 1024, memAvailableMiB: 50 });
    const [copied, mapped, bigCache, after] = loadAll(host, [
      { decoder: { model: f32, contextSize: 256, mmap: false } },
      { decoder: { model: f32, contextSize: 256, mmap: true } },
      // 65536 cells x 2 layers x 256 values x (K, V) x 2 bytes = 128 MiB
      { decoder: { model: f32, contextSize: 65536, mmap: true } },
      { decoder: { model: f32, contextSize: 256, mmap: true } },
    ]);
    expect(copied).toMatchObject({ loaded: false, code: 'OUT_OF_MEMORY' });
    const m = /^could not load the model: copying the weights of (.+) needs (\d+) MiB of memory; 50 MiB is available now \(of 1\.00 GiB\); with mmap, (\d+) MiB of them would be computed from the file mapping instead$/.exec((copied as { message: string }).message);
    expect(m, (copied as { message: string }).message).not.toBeNull();
    expect(m![1]).toBe(f32);
    // every weight but the 1 MiB or so of norms and headers of a 68 MiB file
    const fileMiB = statSync(f32).size / MIB;
    expect(Number(m![2])).toBeGreaterThan(fileMiB - 2);
    expect(Number(m![2])).toBeLessThanOrEqual(Math.ceil(fileMiB));
    expect(Number(m![3])).toBe(Number(m![2]));
    expect(mapped, `mmap: ${TOKENS} tokens compared`).toEqual({ loaded: true, tokens: reference });
    expect(bigCache).toEqual({
      loaded: false, code: 'OUT_OF_MEMORY',
      message: 'could not create the context: a KV cache of 65536 cells (f16; 2 layers x 256 values x 2) needs 128 MiB of memory; 50 MiB is available now (of 1.00 GiB)',
    });
    expect(after, `after the refusals: ${TOKENS} tokens compared`).toEqual({ loaded: true, tokens: reference });
  }, 150_000);

  it('compute buffers: a graph that would take more than is left after the weights and the cache is refused; a smaller batch loads', () => {
    const host = fakeHost('compute', { memTotalMiB: 1024, memAvailableMiB: 50 });
    // 8192 cells: a 16 MiB cache fits, but a batch of 512 tokens over 8192 cells needs 114 MiB of buffers
    const [big, small] = loadAll(host, [
      { decoder: { model: f32, contextSize: 8192, mmap: true } },
      { decoder: { model: f32, contextSize: 8192, batchSize: 64, mmap: true } },
    ]);
    expect(big).toMatchObject({ loaded: false, code: 'OUT_OF_MEMORY' });
    expect((big as { message: string }).message).toMatch(/^could not create the context: a decoder batch of 512 tokens over 8192 cache cells needs (\d+) MiB of compute memory on CPU; 50 MiB is available now$/);
    expect(Number(/needs (\d+) MiB/.exec((big as { message: string }).message)![1])).toBeGreaterThan(50);
    expect(small).toMatchObject({ loaded: true });
    expect((small as { tokens: number[] }).tokens).toHaveLength(TOKENS);
  }, 150_000);

  it('a container: its limit, then its headroom (limit less working set) refuse; the page cache it holds counts as free', () => {
    const cgroup = { maxMiB: 512, currentMiB: 480, inactiveFileMiB: 0 };
    const host = fakeHost('pod', { memTotalMiB: 65536, memAvailableMiB: 32768, cgroup });
    const [overLimit, overHeadroom, fits] = loadAll(host, [
      { decoder: { model: f32, contextSize: 300000, mmap: true } }, // 586 MiB > the 512 MiB limit
      { decoder: { model: f32, contextSize: 32768, mmap: true } }, // 64 MiB > 512 - 480
      { decoder: { model: f32, contextSize: 8192, batchSize: 32, mmap: true } }, // 16 MiB, and small compute buffers
    ]);
    expect(overLimit).toEqual({
      loaded: false, code: 'OUT_OF_MEMORY',
      message: "could not create the context: a KV cache of 300032 cells (f16; 2 layers x 256 values x 2) needs 586 MiB of memory; this container's memory limit has 512 MiB",
    });
    expect(overHeadroom).toEqual({
      loaded: false, code: 'OUT_OF_MEMORY',
      message: 'could not create the context: a KV cache of 32768 cells (f16; 2 layers x 256 values x 2) needs 64 MiB of memory; 32 MiB is available now (of 512 MiB)',
    });
    expect(fits, `${TOKENS} tokens compared`).toEqual({ loaded: true, tokens: reference });
    // the same usage, 64 MiB of it inactive page cache: 96 MiB of headroom, and the 64 MiB cache loads
    const cached = fakeHost('pod-cache', { memTotalMiB: 65536, memAvailableMiB: 32768, cgroup: { ...cgroup, inactiveFileMiB: 64 } });
    expect(loadAll(cached, [{ decoder: { model: f32, contextSize: 32768, batchSize: 32, mmap: true } }])).toEqual([{ loaded: true, tokens: reference }]);
  }, 150_000);

  it('the vision tower: its copied weights, then its graph\'s buffers, are checked the same way', () => {
    const vision = path.join(root, 'test', 'fixtures', 'vision', 'tiny-vision-f32.gguf');
    const tiny = fakeHost('tiny', { memTotalMiB: 1024, memAvailableMiB: 0.5 });
    const [copied, mapped] = loadAll(tiny, [{ vision: { model: vision, mmap: false } }, { vision: { model: vision, mmap: true } }]);
    expect(copied).toMatchObject({ loaded: false, code: 'OUT_OF_MEMORY' });
    expect((copied as { message: string }).message).toMatch(/copying the weights of .*tiny-vision-f32\.gguf needs 1\.\d MiB of memory; 512 KiB is available now \(of 1\.00 GiB\)/);
    // mapped, the weights load; the graph for one image needs more than 512 KiB
    expect(mapped).toMatchObject({ loaded: false, code: 'OUT_OF_MEMORY' });
    expect((mapped as { message: string }).message).toMatch(/^could not encode the images: the vision graph for 1 image\(s\) needs \d+ MiB of compute memory on CPU; 512 KiB is available now$/);
    const roomy = fakeHost('roomy', { memTotalMiB: 1024, memAvailableMiB: 256 });
    expect(loadAll(roomy, [{ vision: { model: vision, mmap: false } }])).toEqual([{ loaded: true }]);
  }, 150_000);

  it('keepLogits: every step\'s logits over what is available is refused before any work; fewer steps keep theirs', () => {
    const host = fakeHost('logits', { memTotalMiB: 1024, memAvailableMiB: 50 });
    const decoder = { model: f32, contextSize: 4096, batchSize: 32, mmap: true };
    const [many, few, plain] = loadAll(host, [
      // 1000 steps x 32000 logits x 4 bytes = 122 MiB
      { decoder, generate: { maxTokens: 1000, keepLogits: true } },
      { decoder, generate: { keepLogits: true } },
      { decoder, generate: { maxTokens: 1000, ignoreEos: false } },
    ]);
    expect(many).toEqual({
      loaded: false, code: 'OUT_OF_MEMORY',
      message: 'keepLogits (up to 1000 steps of 32000 logits) needs 122 MiB of memory; 50 MiB is available now (of 1.00 GiB): lower maxTokens, or leave keepLogits off',
    });
    expect(few, `${TOKENS} tokens compared`).toEqual({ loaded: true, tokens: reference, logits: TOKENS });
    expect(plain).toMatchObject({ loaded: true });
  }, 150_000);

  it('the CLI: one line naming the code, exit 1', () => {
    const host = fakeHost('cli', { memTotalMiB: 1024, memAvailableMiB: 50 });
    const r = spawnSync(process.execPath, [path.join(root, 'dist', 'cli.js'), 'generate', '--model', f32, '--ctx', '65536', '--prompt', 'x', '--max-tokens', '2'], {
      cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, LLAVA_RAD_TEST_HOST_ROOT: host },
    });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/OUT_OF_MEMORY/);
    expect(r.stderr).toMatch(/needs \d+ MiB of memory; 50 MiB is available now/);
  }, 150_000);
});
