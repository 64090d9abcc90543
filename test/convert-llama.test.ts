// convert-llama: a plain Hugging Face LLaMA folder (the tiny release's Vicuna, no LoRA) -> one GGUF, checked by
// teacher forcing against a float64 PyTorch forward of the same folder (test/fixtures/green/make_llama_golden.py,
// HF rotate_half RoPE on the un-permuted weights, so the q/k permutation is checked independently).
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index.js';
import { convertLlama } from '../lib/convert/convert-llama.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = path.join(here, 'fixtures', 'release', 'vicuna');
const golden = JSON.parse(readFileSync(path.join(here, 'fixtures', 'green', 'llama-golden.json'), 'utf8')) as {
  cases: { prompt: number[]; steps: { token: number; logit: number; top2_token: number; top2_logit: number; margin: number }[] }[];
};
const cli = path.join(here, '..', 'dist', 'cli.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-convert-llama-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * Teacher-forced logits of the reference's top-2 within TOL, and our arg-max the reference's token (gap within GAP).
 * With an f32 KV cache (the default f16 cache alone moves these logits of ~40 by ~0.2), measured on an AMD EPYC
 * (Zen 4), 32 steps: f32 within 0.00006, f16 within 0.15, every arg-max the reference's. TOL leaves room for
 * other SIMD paths' summation order.
 */
const TOL: Record<string, number> = { f32: 0.001, f16: 0.5 };
const GAP: Record<string, number> = { f32: 0.02, f16: 0.06 };

describe('convert-llama vs a float64 PyTorch forward of the same folder', () => {
  for (const type of ['f32', 'f16'] as const) {
    it(`${type}: teacher-forced logits within ${TOL[type]}, arg-max the reference's at every step`, async () => {
      const out = path.join(tmp, `tiny-${type}.gguf`);
      const r = await convertLlama({ model: BASE, out, type });
      expect(r.type).toBe(type);
      expect(Object.keys(r.types).length, 'tensors: embedding, 9 per layer, norm, head').toBeGreaterThan(10);
      const model = await loadModel({ model: out, kvCacheType: 'f32' });
      try {
        let steps = 0;
        let worst = 0;
        for (const c of golden.cases) {
          const ref = c.steps.map((s) => s.token);
          for (let i = 0; i < c.steps.length; i++) {
            const s = c.steps[i]!;
            const logits = await model.evaluate([...c.prompt, ...ref.slice(0, i)], { addBos: false });
            let top = 0;
            for (let k = 1; k < logits.length; k++) if (logits[k]! > logits[top]!) top = k;
            const d1 = Math.abs(logits[s.token]! - s.logit);
            const d2 = Math.abs(logits[s.top2_token]! - s.top2_logit);
            worst = Math.max(worst, d1, d2);
            expect(d1, `prompt ${c.prompt.join(',')} step ${i} of ${c.steps.length}: logit of the reference's top-1`).toBeLessThan(TOL[type]!);
            expect(d2, `step ${i} of ${c.steps.length}: logit of the reference's top-2`).toBeLessThan(TOL[type]!);
            expect(logits[top]! - logits[s.token]!, `step ${i} of ${c.steps.length}: teacher-forcing gap (reference margin ${s.margin})`).toBeLessThanOrEqual(GAP[type]!);
            steps++;
          }
        }
        expect(steps, 'teacher-forced steps compared').toBe(32);
        console.log(`convert-llama ${type}: ${steps} teacher-forced steps, logits within ${worst.toFixed(5)}`);
      } finally {
        await model.dispose();
      }
    }, 120_000);
  }

  it('refuses another architecture, a missing tokenizer and bad options with typed errors, leaving no file', async () => {
    const bad = path.join(tmp, 'bad');
    cpSync(BASE, bad, { recursive: true });
    const cfg = JSON.parse(readFileSync(path.join(BASE, 'config.json'), 'utf8'));
    writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...cfg, architectures: ['MistralForCausalLM'] }));
    const out = path.join(tmp, 'bad.gguf');
    await expect(convertLlama({ model: bad, out })).rejects.toMatchObject({ code: 'UNSUPPORTED' });
    writeFileSync(path.join(bad, 'config.json'), JSON.stringify(cfg));
    rmSync(path.join(bad, 'tokenizer.model'));
    await expect(convertLlama({ model: bad, out })).rejects.toMatchObject({ code: 'IO', message: expect.stringContaining('tokenizer.model') });
    copyFileSync(path.join(BASE, 'tokenizer.model'), path.join(bad, 'tokenizer.model'));
    writeFileSync(path.join(bad, 'config.json'), JSON.stringify({ ...cfg, vocab_size: cfg.vocab_size + 1 }));
    await expect(convertLlama({ model: bad, out })).rejects.toMatchObject({ code: 'BAD_CHECKPOINT' });
    await expect(convertLlama({ model: BASE, out, type: 'q3' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(convertLlama({ model: '', out })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(() => readFileSync(out)).toThrow();
  });

  it('the CLI converts with --json, and bad arguments exit 2', () => {
    const out = path.join(tmp, 'cli-q8_0.gguf');
    const r = spawnSync(process.execPath, [cli, 'convert-llama', BASE, '--out', out, '--type', 'q8_0', '--json'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!)).toMatchObject({ type: 'q8_0' });
    expect(readFileSync(out).subarray(0, 4).toString()).toBe('GGUF');
    for (const args of [[BASE], [BASE, '--out', out, '--type', 'q3'], [path.join(tmp, 'nope'), '--out', out], []]) {
      const b = spawnSync(process.execPath, [cli, 'convert-llama', ...args], { encoding: 'utf8' });
      expect(b.status, `convert-llama ${args.join(' ')}: ${b.stderr}`).toBe(2);
    }
  });
});
