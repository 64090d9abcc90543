// Groups token id sequences into batches for the batched BERT encoder (lr_bert_encode_batch): longest first, so
// sequences of like length share a graph and little is padding, each batch holding at most `batchSize`
// sequences and `maxBatchTokens` token slots (its count x its longest sequence: what the graph's memory scales
// with).

import { invalidArgument } from '../errors.js';

/** the engine's bound on one batch's token slots (LR_BERT_MAX_BATCH_TOKENS) */
export const BERT_MAX_BATCH_TOKENS = 16384;

export interface BertBatchOptions {
  /** most sequences in one graph (1 encodes each alone; default 1 on the CPU, 16 on a GPU) */
  batchSize?: number;
  /** most token slots (sequences x the longest, padding included) in one graph: bounds its memory (default 4096) */
  maxBatchTokens?: number;
}

/**
 * The default batch size on a backend ("CPU", or a GPU's name): on the CPU one report a graph, as batches measured
 * slower there (docs/benchmarks.md: a report's ~80 tokens already keep ggml's matrix products busy, and wider
 * activations spill the caches); on a GPU 16, where one short sequence a graph leaves the device idle.
 */
export function defaultBertBatchSize(backend: string): number {
  return backend === 'CPU' ? 1 : 16;
}
export const DEFAULT_BERT_BATCH_TOKENS = 4096;

/** checks the options; the token bound must leave room for one sequence of nCtx tokens */
export function bertBatchLimits(options: BertBatchOptions, nCtx: number, backend: string): { batchSize: number; maxBatchTokens: number } {
  const { batchSize = defaultBertBatchSize(backend), maxBatchTokens = Math.max(DEFAULT_BERT_BATCH_TOKENS, nCtx) } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 4096) throw invalidArgument('batchSize', 'an integer in [1, 4096]', batchSize);
  if (!Number.isInteger(maxBatchTokens) || maxBatchTokens < nCtx || maxBatchTokens > BERT_MAX_BATCH_TOKENS) {
    throw invalidArgument('maxBatchTokens', `an integer in [${nCtx}, ${BERT_MAX_BATCH_TOKENS}] (the model takes up to ${nCtx} tokens)`, maxBatchTokens);
  }
  return { batchSize, maxBatchTokens };
}

/** lengths[i]: sequence i's token count (1..nCtx). Returns batches of sequence indices covering every index once. */
export function planBertBatches(lengths: readonly number[], batchSize: number, maxBatchTokens: number): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const batches: number[][] = [];
  let current: number[] = [];
  let longest = 0;
  for (const i of order) {
    const widest = Math.max(longest, lengths[i]!);
    if (current.length > 0 && (current.length >= batchSize || (current.length + 1) * widest > maxBatchTokens)) {
      batches.push(current);
      current = [];
    }
    longest = current.length === 0 ? lengths[i]! : Math.max(longest, lengths[i]!);
    current.push(i);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** a batch's ids, one sequence after another, and its counts, as encodeBatch takes them */
export function packBertBatch(lists: readonly (readonly number[])[], batch: readonly number[]): { ids: Int32Array; counts: Int32Array } {
  const counts = Int32Array.from(batch, (i) => lists[i]!.length);
  const ids = new Int32Array(counts.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const i of batch) {
    ids.set(lists[i]!, at);
    at += lists[i]!.length;
  }
  return { ids, counts };
}
