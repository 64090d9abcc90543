// The decoder against llama.cpp (node-llama-cpp, the independent reference) and against itself in
// ways that must not change results: KV-cache incremental decoding vs recomputing every prefix, several
// sequences at once vs one at a time, embedding rows vs the token ids they come from.
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, type LlamaModel } from '../lib/index.js';
import { confidentPrefixLength, disposeReference, referenceGreedyDetailed, referenceTokenize, type ReferenceOptions } from './helpers/llamacpp.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GgmlType } from '../lib/gguf/types.js';
import { makeTinyLlama, tinyLlamaPath, type TinyLlamaType } from './helpers/tiny-llama.js';

const PROMPTS = [
  'No acute cardiopulmonary process.',
  'The heart size is normal. There is no pleural effusion or pneumothorax',
  'Hello',
];
const N_GEN = 24;

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// Against llama.cpp: greedy tokens are demanded equal only up to the first near tie of llama.cpp's run (top-1 /
// top-2 margin below NEAR_TIE: float summation order, which differs between our kernels and llama.cpp's, may
// flip it, after which the continuations legitimately differ); every step, near ties included, is then checked
// by teacher forcing: fed llama.cpp's greedy tokens, our largest logit exceeds our logit of llama.cpp's token
// by at most GAP_TOL (0 where we pick the same token). A wrong kernel moves these logits by ~5.
/** flash attention on vs off alone moves these tiny models' logits by up to ~0.05 (helpers/llamacpp.ts) */
const NEAR_TIE = 0.1;
/**
 * Measured on an AMD EPYC (Zen 4, zen4 module, VNNI kernels): gap 0.0000 at every teacher-forced step of every
 * test below (6 cases x 72 steps, the attention variants 2 x 48, the 13-type model 32, the VNNI kernels 3 x 24);
 * the CPU matrix (test/cpu-matrix.test.ts, same bound) finds at most 0.13 on ggml's other CPU modules.
 */
const GAP_TOL = 0.25;
/**
 * greedy tokens compared before llama.cpp's first near tie, summed over the prompts of one test (at least).
 * Measured: 63, 72, 58, 65, 69, 50 of 72 (the 6 cases), 48 and 29 of 48 (attention), 32 of 32 (13 types).
 * Another CPU's llama.cpp build may move a near tie by a few steps: MIN_COMPARED leaves room for that. The
 * one-prompt VNNI tests (24 of 24 each) demand MIN_COMPARED_ONE.
 */
const MIN_COMPARED = 20;
const MIN_COMPARED_ONE = 8;

interface Agreement { compared: number; generated: number; forced: number; maxGap: number }

/**
 * Our greedy run of `ids` against llama.cpp's (same prompt tokens, same settings): tokens equal up to the first
 * near tie, then the teacher-forcing gaps along llama.cpp's tokens (EOS included when it stopped there).
 */
async function expectLlamaCpp(model: LlamaModel, file: string, ids: number[], nGen: number, opts: ReferenceOptions, label: string): Promise<Agreement> {
  const ref = await referenceGreedyDetailed(file, ids, nGen, { contextSize: 256, ...opts });
  const ours = await model.generate([{ tokens: ids }], { maxTokens: nGen, addBos: false });
  const n = confidentPrefixLength(ref, NEAR_TIE);
  const tie = n < ref.steps.length ? `; llama.cpp's margin at step ${n} is ${ref.steps[n]!.margin.toFixed(4)}` : '';
  expect(ours.tokens.slice(0, n), `${label}: greedy tokens before llama.cpp's first margin < ${NEAR_TIE} (compared ${n} of ${ref.tokens.length}${tie})`)
    .toEqual(ref.tokens.slice(0, n));
  const forced = ref.stoppedAtEos ? [...ref.tokens, 2] : ref.tokens;
  const context = [...ids];
  let maxGap = 0;
  for (let i = 0; i < forced.length; i++) {
    const logits = await model.evaluate([{ tokens: context }], { addBos: false });
    const gap = logits[argmax(logits)] - logits[forced[i]!]!;
    maxGap = Math.max(maxGap, gap);
    expect(gap, `${label}: teacher-forcing gap at step ${i} of ${forced.length} (llama.cpp's token ${forced[i]}, its margin ${ref.steps[i]?.margin.toFixed(4)})`)
      .toBeLessThanOrEqual(GAP_TOL);
    context.push(forced[i]!);
  }
  expect(forced.length, `${label}: llama.cpp generated nothing`).toBeGreaterThan(0);
  return { compared: n, generated: ref.tokens.length, forced: forced.length, maxGap };
}

function summary(label: string, rs: Agreement[]): { compared: number; generated: number } {
  const compared = rs.reduce((a, r) => a + r.compared, 0);
  const generated = rs.reduce((a, r) => a + r.generated, 0);
  const forced = rs.reduce((a, r) => a + r.forced, 0);
  const maxGap = Math.max(...rs.map((r) => r.maxGap));
  console.log(`${label}: greedy tokens equal for ${compared} of ${generated} (to the first near tie); ${forced} teacher-forced steps, largest gap ${maxGap.toFixed(4)}`);
  return { compared, generated };
}

afterAll(async () => {
  await disposeReference();
});

const cases: Array<[TinyLlamaType, 'base' | 'gqa']> = [
  ['f32', 'base'],
  ['f16', 'base'],
  ['q8_0', 'base'],
  ['q4_0', 'base'],
  ['q4_k', 'base'],
  ['f16', 'gqa'],
];

describe.each(cases)('greedy generation matches llama.cpp (%s, %s)', (type, variant) => {
  it('same prompt tokens and the same greedy continuation', async () => {
    const file = await tinyLlamaPath(type, variant);
    const model = await loadModel({ model: file, threads: 1, contextSize: 256 });
    try {
      const rs: Agreement[] = [];
      for (const prompt of PROMPTS) {
        const ids = [1, ...(await referenceTokenize(file, prompt))];
        const ours = await model.generate(prompt, { maxTokens: N_GEN });
        expect(ours.promptTokens).toEqual(ids);
        expect(ours.tokens.length).toBeGreaterThan(0);
        rs.push(await expectLlamaCpp(model, file, ids, N_GEN, {}, `${type} ${variant} "${prompt}"`));
      }
      const { compared, generated } = summary(`${type} ${variant}`, rs);
      expect(compared, `${type} ${variant}: compared ${compared} of ${generated} greedy tokens before near ties`).toBeGreaterThanOrEqual(MIN_COMPARED);
    } finally {
      await model.dispose();
    }
  }, 120_000);
});

// The q8_0 cache runs on the f32 decoder: with f16 weights, how the activations meet them is the CPU's (x86-64 and
// llama.cpp's arm64 FP16 builds round them to f16, ggml's baseline arm64 code keeps them in f32), and the random
// weights magnify that through the cache's 8-bit rounding into whole logits (docs/cpu.md, arm64); with f32
// weights our x86-64 and arm64 logits agree within 1e-4 on either cache.
describe('attention variants match llama.cpp configured the same way', () => {
  it.each([
    ['flash attention, f16 cache', { flashAttention: true }, { flashAttention: true }, 'f16'],
    ['q8_0 cache (flash attention, Hadamard-rotated K/V as llama.cpp)', { kvCacheType: 'q8_0' as const }, { flashAttention: true, kvCacheType: 'q8_0' as const }, 'f32'],
  ] as const)('%s', async (_name, ours, ref, weights) => {
    const file = await tinyLlamaPath(weights);
    const model = await loadModel({ model: file, threads: 1, contextSize: 256, ...ours });
    try {
      const rs: Agreement[] = [];
      for (const prompt of PROMPTS.slice(0, 2)) {
        const ids = [1, ...(await referenceTokenize(file, prompt))];
        rs.push(await expectLlamaCpp(model, file, ids, N_GEN, ref, `${_name} "${prompt}"`));
      }
      const { compared, generated } = summary(_name, rs);
      expect(compared, `${_name}: compared ${compared} of ${generated} greedy tokens before near ties`).toBeGreaterThanOrEqual(MIN_COMPARED);
    } finally {
      await model.dispose();
    }
  }, 120_000);
});

// Weight types beyond the five fixtures: one model whose matrices cycle through them (token_embd
// included, so get_rows meets them too). Types that need an importance matrix to quantize (IQ1/IQ2/IQ3_XXS)
// cannot be made here.
const OTHER_TYPES: Array<[string, GgmlType]> = [
  ['q4_1', GgmlType.Q4_1], ['q5_0', GgmlType.Q5_0], ['q5_1', GgmlType.Q5_1], ['q2_k', GgmlType.Q2_K],
  ['q3_k', GgmlType.Q3_K], ['q5_k', GgmlType.Q5_K], ['q6_k', GgmlType.Q6_K], ['iq4_nl', GgmlType.IQ4_NL],
  ['iq4_xs', GgmlType.IQ4_XS], ['iq3_s', GgmlType.IQ3_S], ['bf16', GgmlType.BF16], ['tq2_0', GgmlType.TQ2_0],
  ['mxfp4', GgmlType.MXFP4],
];

describe('every other weight type', () => {
  it('a model mixing 13 more ggml types gives llama.cpp\'s greedy tokens', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'llava-rad-types-'));
    try {
      const file = path.join(dir, 'mixed.gguf');
      let i = 0;
      await makeTinyLlama({
        path: file,
        type: 'f32',
        nLayer: 2,
        transformTensors: (ts) => ts.map((t) => (t.kind === 'matrix' ? { ...t, type: OTHER_TYPES[i++ % OTHER_TYPES.length]![1] } : t)),
      });
      expect(i).toBeGreaterThanOrEqual(OTHER_TYPES.length);
      const model = await loadModel({ model: file, threads: 1, contextSize: 256 });
      try {
        const rs: Agreement[] = [];
        for (const prompt of PROMPTS.slice(0, 2)) {
          const ids = [1, ...(await referenceTokenize(file, prompt))];
          rs.push(await expectLlamaCpp(model, file, ids, 16, {}, `13 types "${prompt}"`));
        }
        const { compared, generated } = summary('13 types', rs);
        expect(compared, `13 types: compared ${compared} of ${generated} greedy tokens before near ties`).toBeGreaterThanOrEqual(MIN_COMPARED);
      } finally {
        await model.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('KV cache', () => {
  let model: LlamaModel;

  it('incremental decoding equals recomputing every prefix from scratch', async () => {
    model = await loadModel({ model: await tinyLlamaPath('f32'), threads: 1, contextSize: 256, parallel: 2 });
    const prompt = model.tokenize(PROMPTS[1], { addBos: true });
    const gen = await model.generate([{ tokens: prompt }], { maxTokens: 12, keepLogits: true });
    expect(gen.logits?.length).toBe(gen.tokens.length);
    for (let step = 0; step < gen.tokens.length; step++) {
      // logits for step k come from the prompt plus the first k generated tokens
      const prefix = [...prompt, ...gen.tokens.slice(0, step)];
      const fresh = await model.evaluate([{ tokens: prefix }]);
      const incremental = gen.logits![step];
      expect(argmax(fresh)).toBe(gen.tokens[step]);
      // the whole-prefix pass multiplies batches (llamafile's sgemm), a decode step one row (ggml's
      // vec_dot): same math, different summation order, so equal up to float noise relative to the logits
      let scale = 0;
      for (const v of fresh) scale = Math.max(scale, Math.abs(v));
      expect(maxAbsDiff(fresh, incremental) / scale).toBeLessThan(2e-3);
    }
    await model.dispose();
  }, 120_000);

  it('several sequences decoded together give the same tokens as one at a time', async () => {
    const file = await tinyLlamaPath('q8_0');
    const single = await loadModel({ model: file, threads: 1, contextSize: 512, parallel: 1 });
    const alone: number[][] = [];
    for (const p of PROMPTS) alone.push((await single.generate(p, { maxTokens: N_GEN })).tokens);
    await single.dispose();

    const multi = await loadModel({ model: file, threads: 1, contextSize: 512, parallel: PROMPTS.length });
    // different prompt lengths, all in flight at once (continuous batching mixes prefill and decode)
    const together = await Promise.all(PROMPTS.map((p) => multi.generate(p, { maxTokens: N_GEN })));
    expect(together.map((r) => r.tokens)).toEqual(alone);
    // more requests than slots: the rest queue and still come out right
    const queued = await Promise.all([...PROMPTS, ...PROMPTS].map((p) => multi.generate(p, { maxTokens: 8 })));
    expect(queued.map((r) => r.tokens)).toEqual([...alone, ...alone].map((t) => t.slice(0, 8)));
    await multi.dispose();
  }, 180_000);
});

describe('weight placement', () => {
  // mmap: false (the default) copies every weight into memory advised to huge pages; mmap: true computes the
  // plain-layout weights straight from the file mapping. Where the bytes live must not change a single logit
  // (matrices that the CPU kernels repack, q4_k for ggml's and q8_0 for ours, are copied in both cases)
  it.each(['q8_0', 'q4_k'] as const)('copied into huge pages and mapped from the file give identical logits (%s)', async (type) => {
    const file = await tinyLlamaPath(type);
    const run = async (mmap: boolean) => {
      const m = await loadModel({ model: file, threads: 1, contextSize: 256, mmap });
      try {
        return await m.generate(PROMPTS[1], { maxTokens: 8, ignoreEos: true, keepLogits: true });
      } finally {
        await m.dispose();
      }
    };
    const copied = await run(false);
    const mapped = await run(true);
    expect(copied.tokens).toEqual(mapped.tokens);
    expect(copied.logits!.length).toBe(8);
    for (let i = 0; i < 8; i++) expect(maxAbsDiff(copied.logits![i], mapped.logits![i])).toBe(0);
  }, 60_000);
});

// x86-64 only: the engine's kernels are AVX512-VNNI code (arm64 runs ggml's own, which the tests above check)
describe.runIf(process.arch === 'x64')("the engine's q8_0, q6_K and q4_K CPU kernels (AVX512-VNNI)", () => {
  // q8_0 and q6_K matrices are repacked for native/src/vnni_matmul.cpp, and prompts meet q4_K matrices in
  // ggml's repacked blocks there, unless LLAVA_RAD_CPU_KERNELS=ggml: checked here against llama.cpp's
  // greedy tokens and against ggml's own kernels in the same engine.
  // Each product equals ggml's up to float summation order (the C++ test checks that to ~1e-6), but a
  // one-ulp difference can flip the rounding of an activation when the next matrix quantizes it (q8_K:
  // one scale per 256 values), which moves logits by a quantization step: ~1e-2 of the largest logit in
  // this random model. A wrong kernel moves them by the order of the logits themselves.
  const dir = mkdtempSync(path.join(tmpdir(), 'llava-rad-vnni-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const modelFile = async (type: 'q8_0' | 'q6_k' | 'q4_k') => {
    if (type !== 'q6_k') return tinyLlamaPath(type);
    const file = path.join(dir, 'q6_k.gguf');
    await makeTinyLlama({
      path: file,
      type: 'f32',
      transformTensors: (ts) => ts.map((t) => (t.kind === 'matrix' ? { ...t, type: GgmlType.Q6_K } : t)),
    });
    return file;
  };
  const run = async (file: string, kernels: string | undefined, againstLlamaCpp?: { ids: number[]; label: string }) => {
    const saved = process.env.LLAVA_RAD_CPU_KERNELS;
    if (kernels === undefined) delete process.env.LLAVA_RAD_CPU_KERNELS;
    else process.env.LLAVA_RAD_CPU_KERNELS = kernels;
    let m: LlamaModel;
    try {
      m = await loadModel({ model: file, threads: 2, contextSize: 256 });
    } finally {
      if (saved === undefined) delete process.env.LLAVA_RAD_CPU_KERNELS;
      else process.env.LLAVA_RAD_CPU_KERNELS = saved;
    }
    try {
      const out = await m.generate(PROMPTS[1], { maxTokens: N_GEN, keepLogits: true });
      const repacked = m.info.vnniMatrices;
      const llamaCpp = againstLlamaCpp && repacked > 0
        ? await expectLlamaCpp(m, file, againstLlamaCpp.ids, N_GEN, {}, againstLlamaCpp.label)
        : undefined;
      return { out, repacked, llamaCpp };
    } finally {
      await m.dispose();
    }
  };

  // it.for (not it.each) passes the test context, whose skip() reports a CPU without AVX512-VNNI as skipped
  it.for(['q8_0', 'q6_k', 'q4_k'] as const)('%s: llama.cpp\'s greedy tokens, and the logits of ggml\'s kernels up to activation rounding', async (type, ctx) => {
    const file = await modelFile(type);
    const ids = [1, ...(await referenceTokenize(file, PROMPTS[1]))];
    const ggml = await run(file, 'ggml');
    expect(ggml.repacked).toBe(0);
    const ours = await run(file, undefined, { ids, label: `${type} VNNI kernels` });
    if (ours.repacked === 0) ctx.skip(); // a CPU without AVX512-VNNI: there is nothing else to compare
    expect(ours.repacked).toBe(2 * 7 + 1); // 2 layers x (q, k, v, o, gate, up, down) + output
    const { compared, generated } = summary(`${type} VNNI kernels vs llama.cpp`, [ours.llamaCpp!]);
    expect(compared, `${type}: compared ${compared} of ${generated} greedy tokens before llama.cpp's near ties`).toBeGreaterThanOrEqual(MIN_COMPARED_ONE);
    // against ggml's kernels: the same tokens up to ggml's first near tie, and the logits wherever both runs had
    // been fed the same tokens
    const margins = ggml.out.logits!.map((l) => {
      const top = argmax(l);
      let second = -Infinity;
      for (let k = 0; k < l.length; k++) if (k !== top && l[k]! > second) second = l[k]!;
      return l[top]! - second;
    });
    const tie = margins.findIndex((m) => m < NEAR_TIE);
    const n = tie < 0 ? ggml.out.tokens.length : tie;
    expect(ours.out.tokens.slice(0, n), `${type}: tokens before ggml's first margin < ${NEAR_TIE} (compared ${n} of ${ggml.out.tokens.length})`)
      .toEqual(ggml.out.tokens.slice(0, n));
    expect(n, `${type}: compared ${n} of ${ggml.out.tokens.length} tokens with ggml's kernels`).toBeGreaterThanOrEqual(MIN_COMPARED_ONE);
    let same = 0;
    while (same < ours.out.tokens.length && ours.out.tokens[same] === ggml.out.tokens[same]) same++;
    const steps = Math.min(same + 1, ours.out.tokens.length, ggml.out.tokens.length);
    let worst = 0;
    for (let i = 0; i < steps; i++) {
      const a = ours.out.logits![i];
      const b = ggml.out.logits![i];
      const scale = Math.max(...Array.from(b, Math.abs));
      worst = Math.max(worst, maxAbsDiff(a, b) / scale);
      expect(maxAbsDiff(a, b) / scale, `${type}: logits at step ${i} of ${steps} fed the same tokens`).toBeLessThan(5e-2);
    }
    console.log(`${type}: our kernels vs ggml's: ${n} tokens before ggml's first near tie, logits of ${steps} steps within ${worst.toExponential(2)} of the largest`);
  }, 60_000);
});

describe('embedding rows in the prompt', () => {
  it('token embedding rows injected as raw embeddings give the same result as the token ids', async () => {
    // f32 weights: the rows of token_embd are exact, so both paths must agree to the last bit of argmax
    const file = await tinyLlamaPath('f32');
    const model = await loadModel({ model: file, threads: 1, contextSize: 256 });
    try {
      const ids = model.tokenize(PROMPTS[0], { addBos: true });
      const rows = await tokenEmbeddingRows(file, ids.slice(2, 6));
      const byIds = await model.generate([{ tokens: ids }], { maxTokens: 10 });
      const mixed = await model.generate(
        [{ tokens: ids.slice(0, 2) }, { embeddings: rows }, { tokens: ids.slice(6) }],
        { maxTokens: 10 },
      );
      expect(mixed.nPrompt).toBe(ids.length);
      expect(mixed.tokens).toEqual(byIds.tokens);
    } finally {
      await model.dispose();
    }
  }, 120_000);
});

/** rows of token_embd.weight (f32 file) for the given ids, read straight from the GGUF */
async function tokenEmbeddingRows(file: string, ids: number[]): Promise<Float32Array> {
  const { readGgufTensorF32Rows } = await import('./helpers/gguf-read.js');
  return readGgufTensorF32Rows(file, 'token_embd.weight', ids);
}
