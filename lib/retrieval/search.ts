// Exact search: every vector of the wanted kind is scored against every query by its inner product (the
// vectors are L2-normalized, so it is the cosine), accumulated in float64, and the k best are kept in the
// order of top-k.ts (higher score first, ties by lower position in the index). One pass over the file
// serves a whole batch of queries.

import { types } from 'node:util';
import type { Embedder } from '../clip/embedder.js';
import { LlavaRadError, describeValue } from '../errors.js';
import type { EntryKind } from './format.js';
import type { RetrievalIndex } from './index-file.js';
import { TopK } from './top-k.js';
import { dot } from './dot.js';

/** the largest k a search takes */
export const MAX_K = 10_000;
export const DEFAULT_K = 10;

export type KindFilter = EntryKind | 'all';

export interface SearchOptions {
  /** results per query (default 10; 1 to MAX_K); fewer when the index has fewer entries of the kind searched */
  k?: number;
  /** which entries to rank (default 'all') */
  kind?: KindFilter;
}

export interface SearchHit {
  id: string;
  kind: EntryKind;
  /** inner product with the query (cosine for normalized vectors) */
  score: number;
  /** the entry's position in the index file (breaks ties: the lower first) */
  index: number;
}

function checkK(k: unknown): number {
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > MAX_K) {
    throw new LlavaRadError('INVALID_ARGUMENT', `k must be an integer from 1 to ${MAX_K}, got ${describeValue(k)}`);
  }
  return k;
}

function checkKind(kind: unknown): KindFilter {
  if (kind !== 'image' && kind !== 'text' && kind !== 'all') {
    throw new LlavaRadError('INVALID_ARGUMENT', `kind must be 'image', 'text' or 'all', got ${describeValue(kind)}`);
  }
  return kind;
}

function checkQuery(q: unknown, dim: number, i: number): Float32Array {
  if (!(types.isFloat32Array(q)) || q.length !== dim) {
    throw new LlavaRadError('INVALID_ARGUMENT', `query ${i} must be a Float32Array of ${dim} floats (the index's dim), got ${types.isFloat32Array(q) ? `${q.length} floats` : describeValue(q)}`);
  }
  for (const x of q) if (!Number.isFinite(x)) throw new LlavaRadError('INVALID_ARGUMENT', `query ${i} has a value that is not finite (${x})`);
  return q;
}

/** The k best entries for each query, best first. */
export function searchVectors(index: RetrievalIndex, queries: readonly Float32Array[], options: SearchOptions = {}): SearchHit[][] {
  const k = checkK(options.k ?? DEFAULT_K);
  const kind = checkKind(options.kind ?? 'all');
  if (!Array.isArray(queries)) throw new LlavaRadError('INVALID_ARGUMENT', `queries must be an array of Float32Array, got ${describeValue(queries)}`);
  const dim = index.dim;
  const qs = queries.map((q, i) => checkQuery(q, dim, i));
  const want = kind === 'image' ? 0 : kind === 'text' ? 1 : -1;
  const codes = index.kindCodes;
  const tops = qs.map(() => new TopK(k));
  if (qs.length > 0) {
    index.forEachChunk((rows, first, n) => {
      for (let q = 0; q < qs.length; q++) {
        const v = qs[q]!;
        const top = tops[q]!;
        for (let r = 0; r < n; r++) {
          const entry = first + r;
          if (want >= 0 && codes[entry] !== want) continue;
          const score = dot(v, 0, rows, r * dim, dim);
          if (score >= top.floor) top.offer(score, entry);
        }
      }
    });
  }
  return tops.map((t) => t.sorted().map((h) => ({ id: index.ids[h.index]!, kind: index.kind(h.index), score: h.score, index: h.index })));
}

/** what a query is: a report's text or an image's encoded bytes */
export type Query = { text: string } | { image: Uint8Array };

/** MODEL_MISMATCH unless the embedder made the index's vectors */
export function checkSameModel(index: RetrievalIndex, embedder: Embedder): void {
  if (embedder.modelId !== index.modelId || embedder.dim !== index.dim) {
    throw new LlavaRadError('MODEL_MISMATCH',
      `${index.file} was built by model ${index.modelId} (${index.dim} floats), the query's model is ${embedder.modelId} (${embedder.dim}): vectors of different models cannot be compared`);
  }
}

/**
 * Embeds the query with the index's model and searches. kind defaults to the other modality (a text query
 * ranks images, an image query ranks reports): cross-modal retrieval; 'all' ranks both.
 */
export async function search(index: RetrievalIndex, embedder: Embedder, query: Query, options: SearchOptions & { signal?: AbortSignal } = {}): Promise<SearchHit[]> {
  checkSameModel(index, embedder);
  let vectors: Float32Array[];
  let other: EntryKind;
  if ('text' in query && typeof query.text === 'string') {
    vectors = await embedder.embedTexts([query.text], { signal: options.signal });
    other = 'image';
  } else if ('image' in query && types.isUint8Array(query.image)) {
    vectors = await embedder.embedImages([query.image], { signal: options.signal });
    other = 'text';
  } else {
    throw new LlavaRadError('INVALID_ARGUMENT', `a query must be { text: string } or { image: Uint8Array }, got ${describeValue(query)}`);
  }
  return searchVectors(index, vectors, { k: options.k, kind: options.kind ?? other })[0]!;
}
