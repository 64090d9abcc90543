// Shared by test/retrieval-*.test.ts: the numpy goldens (test/fixtures/retrieval/make_fixtures.py) and a
// small index written from vectors.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeIndexFile } from '../../lib/retrieval/index-file.js';
import type { EntryKind } from '../../lib/retrieval/format.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const RETRIEVAL_FIXTURES = path.join(here, '..', 'fixtures', 'retrieval');

export interface SearchGolden {
  dim: number;
  ids: string[];
  kinds: EntryKind[];
  vectors: number[][];
  queries: number[][];
  cases: Array<{ query: number; kind: 'all' | EntryKind; k: number; ids: string[]; scores: number[] }>;
}

export interface EvalGolden {
  modelId: string;
  dim: number;
  studies: Array<{ id: string; image: string; imageBytes: string; reference: string }>;
  images: Record<string, number[]>;
  texts: Record<string, number[]>;
  imageToText: { ranks: number[]; r1: number; r5: number; r10: number; medianRank: number; meanRank: number };
  textToImage: { ranks: number[]; r1: number; r5: number; r10: number; medianRank: number; meanRank: number };
}

export const readGolden = <T>(name: string): T => JSON.parse(readFileSync(path.join(RETRIEVAL_FIXTURES, name), 'utf8')) as T;

/** writes an index of these rows (one Float32Array each) */
export function writeTestIndex(file: string, modelId: string, ids: string[], kinds: EntryKind[], rows: ArrayLike<number>[]): void {
  const dim = rows[0]?.length ?? 4;
  writeIndexFile(file, { modelId, dim, ids, kinds, vectors: (put) => rows.forEach((r) => put(Float32Array.from(r))) });
}
