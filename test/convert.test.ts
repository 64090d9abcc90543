// `convertRelease` on the committed tiny release in the official layout (test/fixtures/release/, written by
// scripts/make-tiny-release.py with real torch.save pickles and a real SentencePiece model):
// - every type converts; the q4_k_m / q5_k_m mixes follow llama.cpp's rules (and its fallbacks for rows that
//   do not fit a K-quant block);
// - the converted model, loaded by loadLlavaRad, matches the golden of the OFFICIAL pipeline (PyTorch float64,
//   LoRA merged as builder.py does, HF rotate_half RoPE on the un-permuted weights) under teacher forcing:
//   at every step our logits of the reference's top-1 and top-2 tokens are within TOL[type] of the
//   reference's and our largest logit exceeds our logit of the reference's token by at most GAP_TOL[type];
//   our free-running greedy tokens equal the reference's up to the first near tie (at least MIN_GREEDY);
// - the decoder GGUF runs in llama.cpp (node-llama-cpp) with the same greedy tokens as our `generate` up to
//   llama.cpp's first near tie, and teacher-forced along llama.cpp's tokens our gaps stay within LLAMACPP_GAP;
// - damaged, malicious or inconsistent releases are refused with typed errors and leave no output.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync, copyFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLlavaRad, loadModel, preprocessImage } from '../lib/index.js';
import { convertRelease, permuteQK, type ConvertType } from '../lib/convert/convert.js';
import { decoderTensorType, useMoreBits } from '../lib/convert/mix.js';
import { GgmlType } from '../lib/gguf/types.js';
import { confidentPrefixLength, disposeReference, referenceGreedyDetailed } from './helpers/llamacpp.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const REL = path.join(here, 'fixtures', 'release');
const BASE = path.join(REL, 'vicuna');
const ADAPTER = path.join(REL, 'llava-rad');
const IMAGES = path.join(here, 'fixtures', 'findings');

interface Step { token: number; logit: number; top2_token: number; top2_logit: number; margin: number }
interface Case { image: string; reason: string | null; prompt_tokens: { before: number[]; image_rows: number; after: number[] }; tokens: number[]; steps: Step[] }
const golden = JSON.parse(readFileSync(path.join(REL, 'golden.json'), 'utf8')) as { max_new_tokens: number; cases: Case[] };

/**
 * Teacher forcing against the reference. The f32 decoder is converted with an f32 vision tower (as docs/validation.md's
 * "f32 (vision f32)" records), the others with the default f16 tower. The tiny model is badly conditioned
 * (logits ~40, near-hard attention over 1369 image rows), so the f16 tower's rounding alone moves logits by
 * ~0.3. Measured on an AMD EPYC (Zen 4) with ggml's zen4, skylakex, haswell and x64 modules (q8_0 also with
 * LLAVA_RAD_CPU_KERNELS=ggml), worst over both cases and 32 steps each:
 *   f32 (vision f32): logits within 0.0009 of the reference's, gap 0 (every arg-max is the reference's token)
 *   f16:              logits within 0.15-0.32, gap 0
 *   q8_0:             logits within 2.3-3.7, gap 1.2-3.7 (arg-max the reference's at 28-29 of 32 steps)
 *   q4_k_m:           logits off by ~47 (its 32-wide rows fall back to q5_0 with one scale per row): checked
 *                     against llama.cpp only, not against the reference.
 * TOL and GAP_TOL are ~2x those (f32's 0.005 is 5x: room for another SIMD path's summation order); the gaps of
 * f32 and f16 are held to docs/validation.md's criteria (0.02, 0.06) for releases the tests never saw.
 */
const TOL: Record<string, number> = { f32: 0.005, f16: 0.7, q8_0: 7.5 };
const GAP_TOL: Record<string, number> = { f32: 0.02, f16: 0.06, q8_0: 7.5 };
/** teacher-forced steps whose arg-max must be the reference's token, of 32 (q8_0 measured 28-29; f32 and f16 all) */
const MIN_ARGMAX: Record<string, number> = { f32: 32, f16: 32, q8_0: 24 };
/**
 * Free-running greedy tokens are compared up to the first step where, teacher-forced, our arg-max is not the
 * reference's token or either margin (the reference's or ours) is below NEAR_TIE: there the KV-cache decode and
 * the whole-prefix evaluation may round differently. Measured: 11 and 27 steps (f32, f16), 11 and 21 (q8_0); the
 * old rule (reference margins above 2 * TOL) compared 2 and 3 (f32, f16) and 0 and 0 (q8_0).
 */
const NEAR_TIE = 0.1;
const MIN_GREEDY = 8;
const VISION_TYPE: Record<string, 'f16' | 'f32'> = { f32: 'f32' };
const TYPES: ConvertType[] = ['f32', 'f16', 'q8_0', 'q5_k_m', 'q4_k_m'];
const CHECKED: ConvertType[] = ['f32', 'f16', 'q8_0'];

const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-convert-'));
const outs: Record<string, string> = {};

beforeAll(async () => {
  for (const type of TYPES) {
    outs[type] = path.join(tmp, type);
    await convertRelease({ base: BASE, adapter: ADAPTER, out: outs[type]!, type, visionType: VISION_TYPE[type] ?? 'f16' });
  }
}, 120_000);

afterAll(async () => {
  await disposeReference();
  rmSync(tmp, { recursive: true, force: true });
});

describe('mixes', () => {
  it("use_more_bits is llama.cpp's layer rule (32 layers: 0-3, 28-31 and every third in between)", () => {
    const more = Array.from({ length: 32 }, (_, i) => i).filter((i) => useMoreBits(i, 32));
    expect(more).toEqual([0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
  });

  it('q4_k_m / q5_k_m at 7B shapes', () => {
    const t = (type: ConvertType, name: string, shape: number[]) => decoderTensorType(type, name, shape, 32);
    expect(t('q4_k_m', 'token_embd.weight', [4096, 32000])).toBe(GgmlType.Q4_K);
    expect(t('q4_k_m', 'output.weight', [4096, 32000])).toBe(GgmlType.Q6_K);
    expect(t('q4_k_m', 'blk.0.attn_v.weight', [4096, 4096])).toBe(GgmlType.Q6_K);
    expect(t('q4_k_m', 'blk.4.attn_v.weight', [4096, 4096])).toBe(GgmlType.Q4_K);
    expect(t('q4_k_m', 'blk.6.ffn_down.weight', [11008, 4096])).toBe(GgmlType.Q6_K);
    expect(t('q4_k_m', 'blk.7.ffn_down.weight', [11008, 4096])).toBe(GgmlType.Q4_K);
    expect(t('q4_k_m', 'blk.7.attn_q.weight', [4096, 4096])).toBe(GgmlType.Q4_K);
    expect(t('q5_k_m', 'blk.7.attn_q.weight', [4096, 4096])).toBe(GgmlType.Q5_K);
    expect(t('q5_k_m', 'blk.31.ffn_down.weight', [11008, 4096])).toBe(GgmlType.Q6_K);
    expect(t('q5_k_m', 'output.weight', [4096, 32000])).toBe(GgmlType.Q6_K);
    expect(t('q8_0', 'output.weight', [4096, 32000])).toBe(GgmlType.Q8_0);
    expect(t('q4_k_m', 'blk.0.attn_norm.weight', [4096])).toBe(GgmlType.F32);
    // fallbacks for rows that are not a multiple of 256 (or 32)
    expect(t('q4_k_m', 'blk.7.attn_q.weight', [96, 96])).toBe(GgmlType.Q5_0);
    expect(t('q5_k_m', 'blk.7.attn_q.weight', [96, 96])).toBe(GgmlType.Q5_1);
    expect(t('q4_k_m', 'blk.0.attn_v.weight', [96, 96])).toBe(GgmlType.Q8_0);
    expect(t('q4_k_m', 'output.weight', [96, 100])).toBe(GgmlType.Q8_0);
    expect(t('q4_k_m', 'blk.7.attn_q.weight', [40, 40])).toBe(GgmlType.F16);
    expect(t('q8_0', 'blk.7.attn_q.weight', [40, 40])).toBe(GgmlType.F16);
  });

  it('the tiny q4_k_m conversion has the mix llama.cpp would choose', async () => {
    const r = await convertRelease({ base: BASE, adapter: ADAPTER, out: path.join(tmp, 'mix'), type: 'q4_k_m' });
    expect(r.loraMerged).toBe(14);
    expect(r.loraScale).toBe(2);
    expect(r.decoderTypes).toMatchObject({
      'token_embd.weight': 'q5_0', // q4_K falls back: rows of 32
      'blk.0.attn_v.weight': 'q5_0', 'blk.1.attn_v.weight': 'q8_0', // q6_K in layer 1 (use_more_bits), rows of 32
      'blk.0.ffn_down.weight': 'q4_K', 'blk.1.ffn_down.weight': 'q6_K', // rows of 256
      'blk.0.attn_norm.weight': 'f32', 'output.weight': 'q8_0',
    });
  });
});

describe('permutation', () => {
  it("moves HF's rotate_half pairs (i, i + d/2) to adjacent rows (2i, 2i + 1) within each head", () => {
    // 2 heads of 4 rows, rows of length 1: HF rows [a0 a1 b0 b1] (pairs a_i, b_i) -> [a0 b0 a1 b1]
    const w = Float32Array.from([0, 1, 10, 11, 100, 101, 110, 111]);
    expect(Array.from(permuteQK(w, 2, 1))).toEqual([0, 10, 1, 11, 100, 110, 101, 111]);
  });
});

describe('converted model vs the official pipeline (tiny release)', () => {
  for (const type of CHECKED) {
    it(`${type}: teacher-forced logits within ${TOL[type]}, gaps within ${GAP_TOL[type]}, and greedy tokens`, async () => {
      const manifest = JSON.parse(readFileSync(path.join(outs[type]!, 'llava-rad.json'), 'utf8'));
      expect(manifest).toMatchObject({ type, vision_type: VISION_TYPE[type] ?? 'f16', research_use_only: true });
      const rad = await loadLlavaRad({ model: outs[type]! });
      try {
        let worst = 0;
        let worstGap = 0;
        const report: string[] = [];
        for (const c of golden.cases) {
          const bytes = readFileSync(path.join(IMAGES, c.image));
          const info = rad.vision.info;
          const pre = await preprocessImage(bytes, { imageSize: info.imageSize, mean: info.imageMean, std: info.imageStd });
          const [rows] = await rad.vision.encode(pre.pixels);
          const ref = c.steps.map((s) => s.token);
          let agree = 0;
          let confident = -1; // the first step that ends the greedy comparison
          for (let i = 0; i < c.steps.length; i++) {
            const s = c.steps[i]!;
            const logits = await rad.decoder.evaluate([
              { tokens: c.prompt_tokens.before }, { embeddings: rows! }, { tokens: [...c.prompt_tokens.after, ...ref.slice(0, i)] },
            ], { addBos: false });
            const d1 = Math.abs(logits[s.token]! - s.logit);
            const d2 = Math.abs(logits[s.top2_token]! - s.top2_logit);
            let top = 0;
            for (let k = 1; k < logits.length; k++) if (logits[k]! > logits[top]!) top = k;
            let second = -Infinity;
            for (let k = 0; k < logits.length; k++) if (k !== top && logits[k]! > second) second = logits[k]!;
            const gap = logits[top]! - logits[s.token]!;
            worst = Math.max(worst, d1, d2);
            worstGap = Math.max(worstGap, gap);
            expect(d1, `${c.image} step ${i} of ${c.steps.length}: logit of the reference's top-1 ${s.token}`).toBeLessThan(TOL[type]!);
            expect(d2, `${c.image} step ${i} of ${c.steps.length}: logit of the reference's top-2 ${s.top2_token}`).toBeLessThan(TOL[type]!);
            expect(gap, `${c.image} step ${i} of ${c.steps.length}: teacher-forcing gap (our arg-max ${top}, reference margin ${s.margin})`).toBeLessThanOrEqual(GAP_TOL[type]!);
            if (top === s.token) agree++;
            if (confident < 0 && (top !== s.token || s.margin < NEAR_TIE || logits[top]! - second < NEAR_TIE)) confident = i;
          }
          expect(agree, `${c.image}: our teacher-forced arg-max is the reference's token at ${agree} of ${c.steps.length} steps`).toBeGreaterThanOrEqual(MIN_ARGMAX[type]!);
          // free-running greedy findings: equal to the reference up to the first near tie
          const r = await rad.generateFindings(bytes, c.reason, { maxTokens: golden.max_new_tokens });
          expect(r.prompt.before).toEqual(c.prompt_tokens.before);
          expect(r.prompt.after).toEqual(c.prompt_tokens.after);
          const ours = r.stopReason === 'eos' ? [...r.tokens, 2] : r.tokens;
          const n = confident < 0 ? ref.length : confident;
          expect(ours.slice(0, n), `${c.image}: greedy tokens before the first near tie or different arg-max (step ${n} of ${ref.length})`).toEqual(ref.slice(0, n));
          expect(n, `${type} ${c.image}: compared ${n} of ${ref.length} greedy steps`).toBeGreaterThanOrEqual(MIN_GREEDY);
          report.push(`${c.image} greedy ${n} of ${ref.length}, arg-max ${agree} of ${c.steps.length}`);
        }
        console.log(`${type}: teacher-forced logits within ${worst.toFixed(4)}, largest gap ${worstGap.toFixed(4)}; ${report.join('; ')}`);
      } finally {
        await rad.dispose();
      }
    }, 240_000);
  }
});

describe('the decoder GGUF in llama.cpp', () => {
  /** the CPU matrix's bound (test/cpu-matrix.test.ts: up to 0.13 on ggml's other CPU modules); measured here on
   *  a Zen 4: 0.0000 for all five types over 72 steps each, where the greedy prefixes are 1 + 13 + 18 (q8_0) and
   *  24 + 15 + 0 (q4_k_m) of 72 */
  const LLAMACPP_GAP = 0.25;
  const PROMPTS = ['The lungs are clear. No pleural effusion.', 'Heart size is normal and the mediastinum is unremarkable.', 'Findings:'];
  for (const type of ['f32', 'f16', 'q8_0', 'q5_k_m', 'q4_k_m'] as const) {
    it(`${type}: node-llama-cpp's greedy tokens equal our generate()`, async () => {
      const file = JSON.parse(readFileSync(path.join(outs[type]!, 'llava-rad.json'), 'utf8')).decoder as string;
      const gguf = path.join(outs[type]!, file);
      const model = await loadModel({ model: gguf });
      try {
        let compared = 0;
        let total = 0;
        let forcedSteps = 0;
        let worstGap = 0;
        const each: number[] = [];
        for (const text of PROMPTS) {
          const ids = [1, ...model.tokenize(text, { addBos: false })];
          const ours = await model.generate([{ tokens: ids }], { maxTokens: 24, addBos: false });
          const ref = await referenceGreedyDetailed(gguf, ids, 24, { contextSize: 256 });
          const n = confidentPrefixLength(ref, 0.1);
          compared += n;
          total += ref.tokens.length;
          each.push(n);
          expect(ours.tokens.slice(0, n), `${type} "${text}": compared ${n} of ${ref.tokens.length}`).toEqual(ref.tokens.slice(0, n));
          // every step, near ties included: fed llama.cpp's tokens, our arg-max is its token or within LLAMACPP_GAP
          const forced = ref.stoppedAtEos ? [...ref.tokens, 2] : ref.tokens;
          const context = [...ids];
          for (let i = 0; i < forced.length; i++) {
            const logits = await model.evaluate([{ tokens: context }], { addBos: false });
            let top = 0;
            for (let k = 1; k < logits.length; k++) if (logits[k]! > logits[top]!) top = k;
            const gap = logits[top]! - logits[forced[i]!]!;
            worstGap = Math.max(worstGap, gap);
            expect(gap, `${type} "${text}": teacher-forcing gap at step ${i} of ${forced.length} (llama.cpp's margin ${ref.steps[i]?.margin})`).toBeLessThanOrEqual(LLAMACPP_GAP);
            context.push(forced[i]!);
          }
          forcedSteps += forced.length;
        }
        console.log(`${type}: greedy tokens equal to llama.cpp's before its margins fall under 0.1: ${each.join(' + ')} of ${total}; ` +
          `${forcedSteps} teacher-forced steps, largest gap ${worstGap.toFixed(4)}`);
        expect(forcedSteps, `${type}: teacher-forced ${forcedSteps} steps`).toBeGreaterThanOrEqual(PROMPTS.length * 8);
        expect(compared, `${type}: compared ${compared} of ${total} tokens (${each.join(' + ')}) before llama.cpp's margins fell under 0.1`).toBeGreaterThan(8);
      } finally {
        await model.dispose();
      }
    }, 120_000);
  }
});

describe('refused inputs', () => {
  /** a writable copy of the release */
  const copy = (name: string): { base: string; adapter: string; out: string } => {
    const d = path.join(tmp, `bad-${name}`);
    cpSync(REL, d, { recursive: true });
    return { base: path.join(d, 'vicuna'), adapter: path.join(d, 'llava-rad'), out: path.join(d, 'out') };
  };
  const refuse = async (name: string, edit: (c: { base: string; adapter: string }) => void, code: string, msg: RegExp) => {
    const c = copy(name);
    edit(c);
    await expect(convertRelease({ ...c, type: 'f16' })).rejects.toMatchObject({ name: 'LlavaRadError', code, message: expect.stringMatching(msg) });
    // nothing half-written is left behind
    expect(existsSync(c.out) ? readdirSync(c.out) : []).toEqual([]);
  };

  it('a malicious adapter pickle (os.system) is refused and never run', async () => {
    await refuse('malicious', (c) => {
      copyFileSync(path.join(here, 'fixtures', 'checkpoints', 'malicious', 'os_system.pt'), path.join(c.adapter, 'adapter_model.bin'));
    }, 'UNSAFE_PICKLE', /system/);
  });

  it('a malicious vision checkpoint is refused', async () => {
    await refuse('malicious-vision', (c) => {
      copyFileSync(path.join(here, 'fixtures', 'checkpoints', 'malicious', 'eval.pt'), path.join(c.adapter, 'biomedclipcxr_518_checkpoint.pt'));
    }, 'UNSAFE_PICKLE', /eval/);
  });

  it('a truncated shard is refused', async () => {
    await refuse('truncated', (c) => {
      const f = path.join(c.base, 'pytorch_model-00002-of-00002.bin');
      truncateSync(f, Math.floor(statSync(f).size / 2));
    }, 'BAD_CHECKPOINT', /./);
  });

  it('a missing shard, tokenizer or checkpoint is an IO error naming the file', async () => {
    await expect(convertRelease({ base: BASE, adapter: path.join(tmp, 'nowhere'), out: path.join(tmp, 'o1') })).rejects.toMatchObject({ code: 'IO' });
    const c = copy('missing');
    rmSync(path.join(c.base, 'tokenizer.model'));
    await expect(convertRelease(c)).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/tokenizer\.model/) });
    const d = copy('missing2');
    rmSync(path.join(d.adapter, 'biomedclipcxr_518_checkpoint.pt'));
    await expect(convertRelease(d)).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/biomedclipcxr_518_checkpoint/) });
  });

  it('an adapter for another base is refused', async () => {
    await refuse('other-base-cfg', (c) => {
      const f = path.join(c.adapter, 'config.json');
      const j = JSON.parse(readFileSync(f, 'utf8'));
      j.hidden_size = 4096;
      writeFileSync(f, JSON.stringify(j));
    }, 'BAD_CHECKPOINT', /another base/);
    await refuse('other-base-r', (c) => {
      const f = path.join(c.adapter, 'adapter_config.json');
      const j = JSON.parse(readFileSync(f, 'utf8'));
      j.r = 8;
      writeFileSync(f, JSON.stringify(j));
    }, 'BAD_CHECKPOINT', /another base/);
    await refuse('other-base-layers', (c) => {
      const f = path.join(c.base, 'config.json');
      const j = JSON.parse(readFileSync(f, 'utf8'));
      j.num_hidden_layers = 1;
      writeFileSync(f, JSON.stringify(j));
      const g = path.join(c.adapter, 'config.json');
      const k = JSON.parse(readFileSync(g, 'utf8'));
      k.num_hidden_layers = 1;
      writeFileSync(g, JSON.stringify(k));
    }, 'BAD_CHECKPOINT', /layers/);
  });

  it('shape and vocabulary mismatches are refused', async () => {
    await refuse('vocab', (c) => {
      const f = path.join(c.base, 'config.json');
      const j = JSON.parse(readFileSync(f, 'utf8'));
      j.vocab_size = 32001;
      writeFileSync(f, JSON.stringify(j));
      const g = path.join(c.adapter, 'config.json');
      const k = JSON.parse(readFileSync(g, 'utf8'));
      delete k.vocab_size;
      writeFileSync(g, JSON.stringify(k));
    }, 'BAD_CHECKPOINT', /shape|32001/);
    await refuse('heads', (c) => {
      const f = path.join(c.adapter, 'biomedclipcxr_518.json');
      const j = JSON.parse(readFileSync(f, 'utf8'));
      j.vision_cfg.image_size = 224;
      writeFileSync(f, JSON.stringify(j));
    }, 'BAD_CHECKPOINT', /pos_embed|position/);
  });

  it('bad options are INVALID_ARGUMENT', async () => {
    await expect(convertRelease({ base: BASE, adapter: ADAPTER, out: path.join(tmp, 'o2'), type: 'q3_k' as ConvertType })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});

describe('llava-rad convert (CLI)', () => {
  const cli = path.join(here, '..', 'dist', 'cli.js');
  it('converts, prints JSON, and the folder runs with findings', () => {
    const out = path.join(tmp, 'cli');
    const r = spawnSync(process.execPath, [cli, 'convert', '--base', BASE, '--adapter', ADAPTER, '--out', out, '--type', 'q8_0', '--json'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(j).toMatchObject({ type: 'q8_0', lora_merged: 14, lora_scale: 2 });
    expect(r.stderr, 'no progress bar off a terminal').toBe('');
    const f = spawnSync(process.execPath, [cli, 'findings', path.join(IMAGES, golden.cases[0]!.image), '--model', out, '--max-tokens', '4', '--json'], { encoding: 'utf8' });
    expect(f.status, f.stderr).toBe(0);
    expect(JSON.parse(f.stdout.trim().split('\n').pop()!).tokens.length).toBeGreaterThan(0);
  }, 60_000);

  it('bad arguments exit 2; a bad release exits 1 with the error code', () => {
    const bad = spawnSync(process.execPath, [cli, 'convert', '--base', BASE, '--adapter', ADAPTER, '--out', path.join(tmp, 'x'), '--type', 'q3'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--type must be one of/);
    const none = spawnSync(process.execPath, [cli, 'convert', '--adapter', ADAPTER, '--out', path.join(tmp, 'x')], { encoding: 'utf8' });
    expect(none.status).toBe(2);
    const wrong = spawnSync(process.execPath, [cli, 'convert', '--base', ADAPTER, '--adapter', ADAPTER, '--out', path.join(tmp, 'x')], { encoding: 'utf8' });
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toMatch(/\[IO\]/);
  });
});
