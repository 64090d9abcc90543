// The CPU matrix: the same models give llama.cpp's tokens (and PyTorch's vision features) with every build of
// ggml's CPU backend this machine can run, with the engine's own AVX512-VNNI kernels and with ggml's; and the
// CPUs this machine is not (AVX2-only, SSE4.2-only) run the default build under qemu-user.
//
// Each run is a process of its own (the CPU module is chosen once per process): LLAVA_RAD_CPU_VARIANT forces a
// module, LLAVA_RAD_CPU_KERNELS the kernels. Decoder runs are checked by teacher forcing along llama.cpp's greedy
// tokens (node-llama-cpp: llama.cpp's own kernels, its prebuilt CPU binaries): at every one of the 24 steps our
// largest logit exceeds our logit of llama.cpp's token by at most GAP_TOL. A wrong kernel moves logits by the
// order of the logits themselves (~5). Greedy tokens are not demanded equal past the first step: ggml's own
// modules differ from each other by float rounding (e.g. whether a product rounds its f32 operand to f16; the
// op-by-op comparison is native/tests/test_cpu_variants.cpp), and these tiny random models amplify that (peaked
// attention, 8-bit activations): on the AVX-without-AVX2 modules the q4_K model's logits move by up to 1.4, enough
// to flip a step where llama.cpp's margin is 1.2, while its teacher-forcing gap stays 0.13.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpuInfo, type CpuInfo } from '../lib/index.js';
import { GgmlType } from '../lib/gguf/types.js';
import { disposeReference, referenceGreedyDetailed, referenceTokenize, type GreedyResult } from './helpers/llamacpp.js';
import { makeTinyLlama, tinyLlamaPath } from './helpers/tiny-llama.js';
import { dir as visionDir, goldenRows, meta, relError } from './helpers/vision-golden.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const buildDir = path.join(root, process.env.LLAVA_RAD_BUILD_DIR ?? 'build');
const cppCli = path.join(buildDir, 'llava-rad-cli');
const probe = path.join(root, 'test', 'helpers', 'cpu-probe.mjs');
const PROMPT = 'The heart size is normal. There is no pleural effusion or pneumothorax';
const N_GEN = 24;
/** measured on an AMD Zen 4: 0 for most (variant, type, kernels); 0.13 for q4_K on sandybridge, ivybridge, piledriver */
const GAP_TOL = 0.25;
/** PyTorch float64 vs the f16 tower: ~5e-4 measured (the f16 weights' own rounding), as in vision.test.ts */
const VISION_TOL = 2e-3;

type ModelType = 'f16' | 'q8_0' | 'q6_k' | 'q4_k';
const TYPES: ModelType[] = ['f16', 'q8_0', 'q6_k', 'q4_k'];

interface ProbeResult {
  cpu: CpuInfo;
  vnniMatrices: number;
  promptTokens: number[];
  tokens: number[];
  gaps: number[];
}

const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-cpu-matrix-'));
const files = {} as Record<ModelType, string>;
const refs = {} as Record<ModelType, GreedyResult>;
const refPrompts = {} as Record<ModelType, number[]>;
let here: CpuInfo;

beforeAll(async () => {
  here = cpuInfo();
  for (const type of TYPES) {
    if (type === 'q6_k') {
      files[type] = path.join(tmp, 'q6_k.gguf');
      await makeTinyLlama({
        path: files[type],
        type: 'f32',
        transformTensors: (ts) => ts.map((t) => (t.kind === 'matrix' ? { ...t, type: GgmlType.Q6_K } : t)),
      });
    } else {
      files[type] = await tinyLlamaPath(type);
    }
    const ids = [1, ...(await referenceTokenize(files[type], PROMPT))];
    refPrompts[type] = ids;
    refs[type] = await referenceGreedyDetailed(files[type], ids, N_GEN, { contextSize: 256 });
  }
}, 300_000);

afterAll(async () => {
  rmSync(tmp, { recursive: true, force: true });
  await disposeReference();
});

function env(variant: string | undefined, kernels: string | undefined): NodeJS.ProcessEnv {
  const e = { ...process.env };
  delete e.LLAVA_RAD_CPU_VARIANT;
  delete e.LLAVA_RAD_CPU_KERNELS;
  if (variant !== undefined) e.LLAVA_RAD_CPU_VARIANT = variant;
  if (kernels !== undefined) e.LLAVA_RAD_CPU_KERNELS = kernels;
  return e;
}

/** `cmd` natively, or under `qemu-x86_64 -cpu <qemuCpu>` */
function run(cmd: string[], e: NodeJS.ProcessEnv, qemuCpu?: string) {
  const argv = qemuCpu ? ['qemu-x86_64', '-cpu', qemuCpu, ...cmd] : cmd;
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: e, timeout: 300_000, maxBuffer: 1 << 26 });
  const what = `${argv.join(' ')} (${e.LLAVA_RAD_CPU_VARIANT ?? 'default variant'}, kernels ${e.LLAVA_RAD_CPU_KERNELS ?? 'auto'})`;
  // qemu warns about CPUID bits its TCG does not emulate; anything else on stderr stays in the message
  const stderr = r.stderr.split('\n').filter((l) => !/TCG doesn't support requested feature/.test(l)).join('\n');
  if (r.status !== 0) throw new Error(`${what} exited ${r.status ?? r.signal}: ${stderr}${r.error ? ` ${r.error.message}` : ''}`);
  return r.stdout;
}

function decode(type: ModelType, e: NodeJS.ProcessEnv, qemuCpu?: string): ProbeResult {
  const args = JSON.stringify({ model: files[type], prompt: PROMPT, maxTokens: N_GEN, forced: refs[type].tokens, threads: 1 });
  const out = run([process.execPath, probe, args], e, qemuCpu);
  return JSON.parse(out.trim().split('\n').pop()!) as ProbeResult;
}

/** every teacher-forcing gap along llama.cpp's greedy path within GAP_TOL; returns what was compared */
function expectLlamaCpp(type: ModelType, r: ProbeResult, label: string): { agree: number; forced: number; maxGap: number } {
  const ref = refs[type];
  expect(r.promptTokens, `${label}: prompt tokens`).toEqual(refPrompts[type]);
  expect(r.gaps.length, `${label}: teacher-forced steps`).toBe(ref.tokens.length);
  expect(ref.tokens.length, `${label}: llama.cpp's greedy tokens`).toBe(N_GEN);
  const maxGap = Math.max(...r.gaps);
  expect(maxGap, `${label}: largest teacher-forcing gap over ${r.gaps.length} steps of llama.cpp's greedy path`).toBeLessThanOrEqual(GAP_TOL);
  let agree = 0;
  while (agree < ref.tokens.length && r.tokens[agree] === ref.tokens[agree]) agree++;
  return { agree, forced: r.gaps.length, maxGap };
}

/** the f16 tower on the two synthetic images: in one batch of 2 against PyTorch, and image 0 alone against its place in the batch */
function expectVision(e: NodeJS.ProcessEnv, qemuCpu?: string) {
  const model = path.join(visionDir, 'tiny-vision-f16.gguf');
  const dump = (images: number, batch: number) => {
    const f = path.join(tmp, `vision-${process.pid}-${images}-${batch}-${qemuCpu ?? 'native'}.bin`);
    run([cppCli, 'vision', '--model', model, '--images', String(images), '--batch', String(batch), '--threads', '2',
      '--output', 'features', '--dump', f], e, qemuCpu);
    const b = readFileSync(f);
    rmSync(f);
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  };
  const per = meta.n_patches * meta.dim;
  const both = dump(2, 2);
  expect(both.length).toBe(2 * per);
  for (let b = 0; b < 2; b++) {
    const err = relError(both.subarray(b * per, (b + 1) * per), meta.dim, goldenRows(b).features);
    expect(err, `features of image ${b} in a batch of 2, against PyTorch`).toBeLessThan(VISION_TOL);
  }
  const alone = dump(1, 1);
  let d = 0;
  for (let i = 0; i < per; i++) d = Math.max(d, Math.abs(alone[i]! - both[i]!));
  expect(d, 'image 0 alone against image 0 in the batch').toBeLessThan(1e-5);
}

describe('every ggml CPU variant this machine runs', () => {
  it('the variants: the best one this CPU runs is the default, AMX ones only when named', () => {
    expect(here.variants.length).toBeGreaterThan(0);
    // listed best last; the one compiled for AMX (sapphirerapids) is never the default
    expect(here.variants.filter((v) => v !== 'sapphirerapids').at(-1)).toBe(here.variant);
    if (process.arch === 'x64') expect(here.variants).toContain('x64');
  });

  // one test per variant: the list is this machine's, so the test names differ between CPUs
  it.each(cpuInfo().variants)('%s: f16, q8_0, q6_K and q4_K decoders give llama.cpp\'s tokens with ggml\'s kernels and ours', (variant) => {
    const summary: string[] = [];
    for (const type of TYPES) {
      for (const kernels of type === 'f16' ? ['ggml'] : ['ggml', 'auto']) {
        const r = decode(type, env(variant, kernels));
        expect(r.cpu.variant).toBe(variant);
        const ours = kernels === 'auto' ? here.kernels : 'ggml';
        expect(r.cpu.kernels).toBe(ours);
        // q8_0 and q6_K are repacked by the engine; q4_K is read from ggml's repacked blocks, which variants
        // without AVX2 do not make
        if (ours === 'ggml') expect(r.vnniMatrices).toBe(0);
        else if (type !== 'q4_k') expect(r.vnniMatrices).toBe(15);
        const c = expectLlamaCpp(type, r, `${variant} ${type} ${kernels}`);
        summary.push(`${type}/${kernels}: ${c.forced} forced, gap ${c.maxGap.toFixed(3)}, greedy agrees for ${c.agree}`);
      }
    }
    console.log(`cpu matrix ${variant}: ${summary.join('; ')}`);
  }, 300_000);

  it.each(cpuInfo().variants)('%s: the f16 vision tower, batched and alone, gives PyTorch\'s features', (variant) => {
    expectVision(env(variant, undefined));
  }, 300_000);

  it('a variant this CPU cannot run, or that does not exist, is a BACKEND error, not a crash', () => {
    const r = spawnSync(cppCli, ['info'], { encoding: 'utf8', env: env('no-such-variant', undefined) });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/error \[BACKEND\].*LLAVA_RAD_CPU_VARIANT=no-such-variant: no such CPU backend module/);
    const k = spawnSync(cppCli, ['info'], { encoding: 'utf8', env: env(undefined, 'fastest') });
    expect(k.status).toBe(1);
    expect(k.stderr).toMatch(/LLAVA_RAD_CPU_KERNELS must be auto, vnni or ggml, got 'fastest'/);
  });
});

// x86-64 CPUs without AVX-512 (and so without the engine's kernels), emulated: QEMU's TCG has no AVX-512,
// so `-cpu Haswell` is an AVX2 machine and `-cpu Nehalem` an SSE4.2 one. The default build must pick the
// variant for them and give the tokens it gives natively with that variant (the same instructions: equal
// bit for bit), and llama.cpp's.
const QEMU_CPUS: Array<[string, string]> = [['Haswell', 'haswell'], ['Nehalem', 'sse42']];

describe.runIf(process.arch === 'x64')('the default build on CPUs this machine is not (qemu-user)', () => {
  beforeAll(() => {
    if (process.env.LLAVA_RAD_SKIP_QEMU === '1') return;
    const q = spawnSync('qemu-x86_64', ['-version'], { encoding: 'utf8' });
    if (q.status !== 0) {
      throw new Error('qemu-x86_64 is needed to test the CPU variants this machine cannot run natively: ' +
        'apt-get install qemu-user (Debian), or set LLAVA_RAD_SKIP_QEMU=1 to report these tests as skipped');
    }
  });

  describe.skipIf(process.env.LLAVA_RAD_SKIP_QEMU === '1').each(QEMU_CPUS)('-cpu %s', (qemuCpu, variant) => {
    it(`picks ${variant} and ggml's kernels`, () => {
      const j = JSON.parse(run([cppCli, 'info'], env(undefined, undefined), qemuCpu)) as { cpu: { variant: string; kernels: string; variants: string[] } };
      expect(j.cpu.variant).toBe(variant);
      expect(j.cpu.kernels).toBe('ggml');
      expect(j.cpu.variants).not.toContain('skylakex');
      // asking for the engine's AVX512 kernels there is an error, not SIGILL
      expect(() => run([cppCli, 'info'], env(undefined, 'vnni'), qemuCpu)).toThrow(/LLAVA_RAD_CPU_KERNELS=vnni: this CPU lacks AVX512-VNNI/);
    }, 120_000);

    it.each(TYPES)('%s decoder (Node, the package as installed): the native tokens of that variant, and llama.cpp\'s', (type) => {
      const emulated = decode(type, env(undefined, undefined), qemuCpu);
      expect(emulated.cpu.variant).toBe(variant);
      expect(emulated.vnniMatrices).toBe(0);
      const native = decode(type, env(variant, 'ggml'));
      expect(emulated.tokens, `all ${N_GEN} greedy tokens`).toEqual(native.tokens);
      expect(emulated.gaps).toEqual(native.gaps);
      expectLlamaCpp(type, emulated, `qemu ${qemuCpu} ${type}`);
    }, 300_000);

    it('the f16 vision tower, batched and alone, gives PyTorch\'s features', () => {
      expectVision(env(undefined, undefined), qemuCpu);
    }, 300_000);
  });
});
