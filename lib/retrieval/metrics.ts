// Image <-> report retrieval metrics over N matched pairs (image i goes with report i), with the definitions
// of open_clip's get_clip_metrics (the code BiomedCLIP-CXR was trained and evaluated with):
//   S[i][j] = image_i . text_j (float64);
//   image->text: the rank of text i among all N texts for image i (1 = first); text->image: the rank of
//   image i among all N images for text i;
//   Recall@K = the fraction of queries whose rank <= K (K = 1, 5, 10); median rank = floor(median of the
//   ranks) (open_clip: floor(median(0-based ranks)) + 1, the same number); mean rank = their mean.
// Ties: open_clip ranks by torch.argsort, whose order among equal scores is not defined. Here they are
// broken as search breaks them (top-k.ts): by position, the lower first; so the true match's rank is
// 1 + #{j : S > S_true, or S == S_true and j < i}. Duplicate reports (the same text for two studies, common
// for normal chest X-rays) get identical vectors, so they tie exactly: each is a wrong answer ahead of or
// behind the true one by manifest order, as in open_clip, where duplicates are not merged either.

import { types } from 'node:util';
import { invalidArgument, LlavaRadError } from '../errors.js';
import { before } from './top-k.js';
import { dot } from './dot.js';

export const RECALL_AT = [1, 5, 10] as const;

export interface DirectionMetrics {
  /** Recall@1, @5, @10 as fractions (0..1) */
  r1: number;
  r5: number;
  r10: number;
  medianRank: number;
  meanRank: number;
}

export interface RetrievalMetrics {
  /** pairs evaluated */
  n: number;
  imageToText: DirectionMetrics;
  textToImage: DirectionMetrics;
}

export interface RetrievalRanks {
  /** for image i, the rank of its report (1-based) */
  imageToText: Int32Array;
  /** for report i, the rank of its image */
  textToImage: Int32Array;
}

/** The rank of each pair's true match in both directions. */
export function retrievalRanks(images: readonly Float32Array[], texts: readonly Float32Array[]): RetrievalRanks {
  const n = images.length;
  if (texts.length !== n) throw new LlavaRadError('INVALID_ARGUMENT', `retrieval pairs need as many reports as images, got ${n} images and ${texts.length} reports`);
  const first = images[0];
  if (n > 0 && !types.isFloat32Array(first)) throw invalidArgument('images[0]', 'a Float32Array', first);
  const dim = first?.length ?? 0;
  for (const v of [...images, ...texts]) {
    if (!types.isFloat32Array(v) || v.length !== dim) throw new LlavaRadError('INVALID_ARGUMENT', `every vector must be a Float32Array of ${dim} floats`);
  }
  // both sets packed into one matrix each: rows read in order
  const I = new Float32Array(n * dim);
  const T = new Float32Array(n * dim);
  images.forEach((v, i) => I.set(v, i * dim));
  texts.forEach((v, i) => T.set(v, i * dim));
  const i2t = new Int32Array(n).fill(1);
  const t2i = new Int32Array(n).fill(1);
  const diag = new Float64Array(n);
  for (let i = 0; i < n; i++) diag[i] = dot(I, i * dim, T, i * dim, dim);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) row[j] = j === i ? diag[i]! : dot(I, i * dim, T, j * dim, dim);
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      // image i's query: text j ahead of text i?
      if (before(row[j]!, j, diag[i]!, i)) i2t[i]!++;
      // text j's query: image i ahead of image j?
      if (before(row[j]!, i, diag[j]!, j)) t2i[j]!++;
    }
  }
  return { imageToText: i2t, textToImage: t2i };
}

export function summarizeRanks(ranks: Int32Array): DirectionMetrics {
  const n = ranks.length;
  if (n === 0) throw new LlavaRadError('INVALID_ARGUMENT', 'retrieval metrics need at least one pair');
  const sorted = Float64Array.from(ranks).sort();
  const median = n % 2 === 1 ? sorted[(n - 1) / 2]! : (sorted[n / 2 - 1]! + sorted[n / 2]!) / 2;
  const recall = (k: number) => ranks.reduce((c, r) => c + (r <= k ? 1 : 0), 0) / n;
  return { r1: recall(1), r5: recall(5), r10: recall(10), medianRank: Math.floor(median), meanRank: ranks.reduce((s, r) => s + r, 0) / n };
}

/** Recall@1/5/10, median and mean rank in both directions over matched pairs. */
export function retrievalMetrics(images: readonly Float32Array[], texts: readonly Float32Array[]): RetrievalMetrics {
  const r = retrievalRanks(images, texts);
  return { n: images.length, imageToText: summarizeRanks(r.imageToText), textToImage: summarizeRanks(r.textToImage) };
}
