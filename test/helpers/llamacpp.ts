// llama.cpp as the correctness reference, through node-llama-cpp's prebuilt CPU binaries
// (getLlama({gpu: false, build: 'never'}): no downloads, no builds).
//
//   const ids  = await referenceTokenize(path, 'No acute cardiopulmonary process.');   // no BOS
//   const gen  = await referenceGreedy(path, [1, ...ids], 16);                         // greedy ids
//   const det  = await referenceGreedyDetailed(path, [1, ...ids], 16);                 // + margins
//   const lp   = await referenceLogProbs(path, [1, ...ids]);                            // last position
//
// Greedy means temperature 0 (llama.cpp's greedy sampler: the arg-max of the raw logits), no repeat
// penalty, no grammar, no token bias; generation stops at EOS (the EOS id is not returned).
//
// Logits: node-llama-cpp does not hand out raw logits, but with the greedy sampler its "probabilities"
// are softmax(raw logits) over the whole vocabulary, so log(p) = logit - logsumexp(logits): the logits up
// to one additive constant (exact enough for margins: float32 probabilities, tiny ones underflow to
// -Infinity). The KV cache is llama.cpp's default (f16), flash attention off unless asked for.

import { getLlama, type Llama, type LlamaContext, type LlamaModel, type Token } from 'node-llama-cpp';

const asTokens = (ids: readonly number[]): Token[] => ids as unknown as Token[];

export interface ReferenceOptions {
  /** fused flash attention (default false: llama.cpp's mul_mat + soft_max path) */
  flashAttention?: boolean;
  /** context size (default: enough for the prompt and the generated tokens) */
  contextSize?: number;
  /** compute threads (default 1: the fixtures are tiny, and spinning threads on a busy 2-core machine cost 100x) */
  threads?: number;
  /** KV cache type for K and V (default f16) */
  kvCacheType?: 'f16' | 'q8_0';
}

let llamaPromise: Promise<Llama> | undefined;

/** The shared node-llama-cpp instance (CPU only, prebuilt binaries). */
export function referenceLlama(): Promise<Llama> {
  llamaPromise ??= getLlama({
    gpu: false,
    build: 'never',
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: 'error' as never,
  });
  return llamaPromise;
}

async function withModel<T>(modelPath: string, fn: (model: LlamaModel) => Promise<T>): Promise<T> {
  const llama = await referenceLlama();
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  try {
    return await fn(model);
  } finally {
    await model.dispose();
  }
}

async function withContext<T>(
  model: LlamaModel,
  nTokens: number,
  opts: ReferenceOptions,
  fn: (ctx: LlamaContext) => Promise<T>,
): Promise<T> {
  const size = opts.contextSize ?? Math.max(64, nTokens + 8);
  const ctx = await model.createContext({
    contextSize: size,
    batchSize: Math.max(1, Math.min(size, 512)),
    sequences: 1,
    flashAttention: opts.flashAttention ?? false,
    ...(opts.kvCacheType === 'q8_0' ? { experimentalKvCacheKeyType: 'Q8_0', experimentalKvCacheValueType: 'Q8_0' } : {}),
    ignoreMemorySafetyChecks: true,
    threads: opts.threads ?? 1,
  });
  try {
    return await fn(ctx);
  } finally {
    await ctx.dispose();
  }
}

/** llama.cpp's tokenization of `text` (no BOS, special-token text not parsed, leading-space prefix as llama.cpp adds it). */
export async function referenceTokenize(modelPath: string, text: string): Promise<number[]> {
  return withModel(modelPath, async (model) => [...model.tokenize(text, false)]);
}

/** llama.cpp's tokenization of `text` with special-token text ("<s>", "</s>") parsed into those tokens, no BOS added. */
export async function referenceTokenizeSpecial(modelPath: string, text: string): Promise<number[]> {
  return withModel(modelPath, async (model) => [...model.tokenize(text, true)]);
}

/** llama.cpp's detokenization of ids (special tokens rendered as text when `specialTokens`). */
export async function referenceDetokenize(modelPath: string, tokens: number[], specialTokens = false): Promise<string> {
  return withModel(modelPath, async (model) => model.detokenize(asTokens(tokens), specialTokens));
}

export interface GreedyStep {
  token: number;
  /** log p(top-1) - log p(top-2) = logit margin between the chosen token and the runner-up */
  margin: number;
  /** the runner-up token */
  second: number;
}

export interface GreedyResult {
  tokens: number[];
  /** one per generated token, plus a last one for the EOS when stoppedAtEos (empty unless margins were asked for) */
  steps: GreedyStep[];
  /** generation ended because the model produced EOS (not included in tokens) */
  stoppedAtEos: boolean;
}

/** Greedy continuation of `promptTokens` (which should start with BOS = 1), at most nTokens ids. */
export async function referenceGreedy(
  modelPath: string,
  promptTokens: number[],
  nTokens: number,
  opts: ReferenceOptions = {},
): Promise<number[]> {
  return (await referenceGreedyDetailed(modelPath, promptTokens, nTokens, opts, false)).tokens;
}

/** Greedy continuation with, per step, the top-1 / top-2 logit margin. */
export async function referenceGreedyDetailed(
  modelPath: string,
  promptTokens: number[],
  nTokens: number,
  opts: ReferenceOptions = {},
  withMargins = true,
): Promise<GreedyResult> {
  if (promptTokens.length === 0) throw new RangeError('the prompt must have at least one token');
  return withModel(modelPath, (model) =>
    withContext(model, promptTokens.length + nTokens, opts, async (ctx) => {
      const seq = ctx.getSequence();
      const tokens: number[] = [];
      const steps: GreedyStep[] = [];
      if (nTokens <= 0) return { tokens, steps, stoppedAtEos: false };
      const eos = model.tokens.eos;
      const it = seq.evaluateWithMetadata(asTokens(promptTokens), { probabilities: withMargins }, { temperature: 0, yieldEogToken: true });
      let stoppedAtEos = false;
      for await (const r of it) {
        if (withMargins) {
          const probs = (r as unknown as { probabilities: Map<number, number> }).probabilities;
          const top = probs.entries();
          const [t1, p1] = top.next().value as [number, number];
          const [t2, p2] = top.next().value as [number, number];
          if (t1 !== r.token) throw new Error(`greedy token ${r.token} is not the arg-max ${t1}`);
          steps.push({ token: r.token, margin: Math.log(p1) - Math.log(p2), second: t2 });
        }
        if (r.token === eos || model.isEogToken(r.token)) {
          stoppedAtEos = true; // its step stays in `steps` (the last entry)
          break;
        }
        tokens.push(r.token);
        if (tokens.length >= nTokens) break;
      }
      return { tokens, steps, stoppedAtEos };
    }),
  );
}

/**
 * log-softmax of the logits at the last position of `tokens` (Float32Array of n_vocab; the logits
 * up to an additive constant; -Infinity where the probability underflowed).
 */
export async function referenceLogProbs(modelPath: string, tokens: number[], opts: ReferenceOptions = {}): Promise<Float32Array> {
  if (tokens.length === 0) throw new RangeError('at least one token is needed');
  return withModel(modelPath, (model) =>
    withContext(model, tokens.length + 1, opts, async (ctx) => {
      const seq = ctx.getSequence();
      const items = tokens.map((t, i) =>
        i === tokens.length - 1
          ? ([t, { generateNext: { probabilities: true, options: { temperature: 0 } } }] as const)
          : t,
      );
      const res = await seq.controlledEvaluate(items as never);
      const last = res[res.length - 1] as { next?: { probabilities?: Map<number, number> } } | undefined;
      const probs = last?.next?.probabilities;
      if (!probs) throw new Error('node-llama-cpp returned no probabilities');
      const meta = model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { tokens?: readonly unknown[] } } };
      const nVocab = meta.tokenizer?.ggml?.tokens?.length ?? Math.max(...probs.keys()) + 1;
      const lp = new Float32Array(nVocab).fill(-Infinity);
      for (const [t, p] of probs) lp[t] = Math.log(p);
      return lp;
    }),
  );
}

/**
 * How many leading tokens of a reference greedy run are safe to demand from another implementation:
 * the steps before the first one whose top-1 / top-2 margin is below `minMargin` (a near tie that
 * numeric noise may flip; flash attention on vs off alone moves the tiny models' logits by up to ~0.05).
 * After a flip the continuations legitimately differ.
 */
export function confidentPrefixLength(result: GreedyResult, minMargin = 0.1): number {
  const i = result.steps.findIndex((s) => s.margin < minMargin);
  return i < 0 ? result.tokens.length : i;
}

/** Disposes the shared node-llama-cpp instance (call from afterAll if a test file wants a clean exit). */
export async function disposeReference(): Promise<void> {
  const p = llamaPromise;
  llamaPromise = undefined;
  if (p) await (await p).dispose();
}
