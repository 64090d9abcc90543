// Failures inside the engine's scheduler reach every affected request as a typed error, the others go on,
// and the context stays usable. Faults are injected by the test-only hook lr_debug_fault (model[DEBUG_FAULT]):
// the next step that decodes fails after its rows took their KV cells (BACKEND, OUT_OF_MEMORY), throws
// outside its error handling (INTERNAL), or has its graph stopped after the first node (a cancellation of
// no request: every request runs the step again). Tiny f32 LLaMA, greedy, ignoreEos.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type GenerateResult, type LlamaModel } from '../lib/index.js';
import { DEBUG_FAULT, NativeFault } from '../lib/model.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const CONTEXT = 512;
const MAX_TOKENS = 48;
const prompts = [0, 1, 2].map((s) => Array.from({ length: 24 + 8 * s }, (_, i) => 200 + ((i * 4099 + s * 7727) % 30000)));

describe('faults inside the scheduler', () => {
  let model: LlamaModel;
  let reference: number[][]; // each prompt's tokens, generated alone before any fault
  beforeAll(async () => {
    model = await loadModel({ model: await tinyLlamaPath('f32'), contextSize: CONTEXT, parallel: 3, threads: 2 });
    reference = [];
    for (const p of prompts) reference.push((await model.generate(p, { maxTokens: MAX_TOKENS, ignoreEos: true })).tokens);
  });
  afterAll(async () => {
    await model?.dispose();
  });

  /** starts the three generations; once the first has 3 tokens (all three are running), injects `fault` */
  function runWithFault(fault: NativeFault): Promise<PromiseSettledResult<GenerateResult>[]> {
    let injected = false;
    return Promise.allSettled(prompts.map((p, i) => model.generate(p, {
      maxTokens: MAX_TOKENS,
      ignoreEos: true,
      onToken: (ev) => {
        if (i === 0 && ev.index === 2 && !injected) {
          injected = true;
          model[DEBUG_FAULT](fault);
        }
      },
    })));
  }

  /** the context is as good as new: the same tokens again, and a request that needs every cell runs */
  async function expectUsable(): Promise<void> {
    const again = await Promise.all(prompts.map((p) => model.generate(p, { maxTokens: MAX_TOKENS, ignoreEos: true })));
    again.forEach((r, i) => expect(r.tokens, `prompt ${i}: ${MAX_TOKENS} tokens compared`).toEqual(reference[i]));
    // 400 prompt rows + 113 tokens = every cell: a cell leaked by the fault would end it early
    const full = await model.generate(Array.from({ length: 400 }, (_, i) => 300 + i), { maxTokens: CONTEXT - 400 + 1, ignoreEos: true });
    expect(full.stopReason).toBe('max_tokens');
    expect(full.tokens.length).toBe(CONTEXT - 400 + 1);
  }

  it.each([
    ['a backend error', NativeFault.BackendError, 'BACKEND', /injected fault: the backend failed/],
    ['an allocation failure', NativeFault.OutOfMemory, 'OUT_OF_MEMORY', /out of memory/],
    ['an exception outside the decode', NativeFault.Throw, 'INTERNAL', /injected fault: a step threw/],
  ])('%s ends each request of the step with a typed error; the context stays usable', async (_name, fault, code, message) => {
    const results = await runWithFault(fault);
    for (const [i, r] of results.entries()) {
      expect(r.status, `request ${i}`).toBe('rejected');
      const e = (r as PromiseRejectedResult).reason as Error & { code?: string };
      expect(e.code, `request ${i}: ${e.message}`).toBe(code);
      expect(e.message).toMatch(message);
    }
    await expectUsable();
  }, 120_000);

  it('a graph stopped between nodes (as by a cancellation) is run again: every request ends as without it', async () => {
    const results = await runWithFault(NativeFault.Abort);
    for (const [i, r] of results.entries()) {
      expect(r.status, `request ${i}`).toBe('fulfilled');
      expect((r as PromiseFulfilledResult<GenerateResult>).value.tokens, `request ${i}: ${MAX_TOKENS} tokens compared`).toEqual(reference[i]);
    }
    await expectUsable();
  }, 120_000);

  it('aborting one request mid-generation leaves the others as they would be alone', async () => {
    const ac = new AbortController();
    const results = await Promise.allSettled(prompts.map((p, i) => model.generate(p, {
      maxTokens: MAX_TOKENS,
      ignoreEos: true,
      ...(i === 1 ? { signal: ac.signal } : {}),
      onToken: (ev) => { if (i === 1 && ev.index === 4) ac.abort(); },
    })));
    expect(results[1]!.status).toBe('rejected');
    expect(((results[1] as PromiseRejectedResult).reason as { code?: string }).code).toBe('ABORTED');
    for (const i of [0, 2]) {
      expect(results[i]!.status).toBe('fulfilled');
      expect((results[i] as PromiseFulfilledResult<GenerateResult>).value.tokens, `request ${i}: ${MAX_TOKENS} tokens compared`).toEqual(reference[i]);
    }
    await expectUsable();
  }, 120_000);

  it('the hook refuses unknown faults', () => {
    expect(() => model[DEBUG_FAULT](99 as NativeFault)).toThrow(/fault must be an integer between 0 and 4/);
  });
});
