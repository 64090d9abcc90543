// What a generation produces must not depend on the other generations in flight. The scheduler reserves
// each request's KV cells (prompt + maxTokens - 1, at most the cache) when it admits it, so requests that
// together need more than the cache wait instead of cutting each other short with context_full.
// Tiny f32 LLaMA (real vocabulary, random weights), greedy, ignoreEos, so every request runs its length.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type GenerateResult, type LlamaModel } from '../lib/index.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const CONTEXT = 1024; // cells, shared by the sequence slots

/** a prompt of n token ids, different for each seed */
function prompt(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => 100 + ((i * 7919 + seed * 104729) % 31000));
}

describe('results do not depend on the requests in flight', () => {
  let shared: LlamaModel; // 4 slots over CONTEXT cells
  let alone: LlamaModel;  // 1 slot over the same CONTEXT cells
  beforeAll(async () => {
    const model = await tinyLlamaPath('f32');
    shared = await loadModel({ model, contextSize: CONTEXT, parallel: 4, threads: 2 });
    alone = await loadModel({ model, contextSize: CONTEXT, parallel: 1, threads: 2 });
  });
  afterAll(async () => {
    await shared?.dispose();
    await alone?.dispose();
  });

  const key = (r: GenerateResult) => ({ stopReason: r.stopReason, tokens: r.tokens });

  it('four requests needing 1.9x the cache run to maxTokens, each as it runs alone', async () => {
    // each needs 200 + 280 - 1 = 479 cells: four need 1916 of 1024. Before reservation they all started,
    // filled the cache together and ended early with context_full, each at a different token.
    const requests = [0, 1, 2, 3].map((s) => ({ prompt: prompt(200, s), maxTokens: 280 }));
    const together = await Promise.all(requests.map((q) => shared.generate(q.prompt, { maxTokens: q.maxTokens, ignoreEos: true })));
    for (let i = 0; i < requests.length; i++) {
      const one = await alone.generate(requests[i]!.prompt, { maxTokens: requests[i]!.maxTokens, ignoreEos: true });
      expect(one.stopReason).toBe('max_tokens');
      expect(one.tokens.length).toBe(280);
      expect(key(together[i]!), `request ${i}: 280 tokens compared`).toEqual(key(one));
    }
  }, 300_000);

  it('a request whose prompt + maxTokens exceed the cache ends with context_full at the same token, alone or not', async () => {
    // 900 prompt rows + 400 tokens > 1024 cells: it may use the whole cache, so it waits for the others
    // and stops after 1024 - 900 + 1 = 125 tokens either way
    const big = prompt(900, 9);
    const small = [5, 6].map((s) => prompt(150, s));
    const [b, ...rest] = await Promise.all([
      shared.generate(big, { maxTokens: 400, ignoreEos: true }),
      ...small.map((p) => shared.generate(p, { maxTokens: 200, ignoreEos: true })),
    ]);
    const bAlone = await alone.generate(big, { maxTokens: 400, ignoreEos: true });
    expect(bAlone.stopReason).toBe('context_full');
    expect(bAlone.tokens.length).toBe(CONTEXT - 900 + 1);
    expect(key(b!), `${bAlone.tokens.length} tokens compared`).toEqual(key(bAlone));
    for (let i = 0; i < small.length; i++) {
      const one = await alone.generate(small[i]!, { maxTokens: 200, ignoreEos: true });
      expect(one.tokens.length).toBe(200);
      expect(key(rest[i]!), `small request ${i}: 200 tokens compared`).toEqual(key(one));
    }
  }, 300_000);
});
