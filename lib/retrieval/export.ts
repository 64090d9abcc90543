// `index export`: an index as JSON lines, one entry per line, in index order:
//   {"id": "s1", "kind": "image", "vector": [0.0123, ...]}
// Each float is written as the shortest decimal that reads back to the same float32 (so the export loads
// back bit for bit), the form pgvector's `vector` literal and Qdrant's points API take (docs/retrieval.md).
// Written to a temporary file and renamed, so a cut-short export never looks whole.

import { writeFileAtomically } from '../replace-file.js';
import type { RetrievalIndex } from './index-file.js';

/** the shortest decimal string that parses back (rounded to float32) to x */
export function float32ToString(x: number): string {
  if (Object.is(x, -0)) return '-0';
  for (let p = 1; p < 17; p++) {
    const s = x.toPrecision(p);
    if (Math.fround(Number(s)) === x) return String(Number(s));
  }
  return String(x);
}

/** Writes the index as JSONL to `out`; returns the number of lines. */
export function exportJsonl(index: RetrievalIndex, out: string): number {
  const dim = index.dim;
  writeFileAtomically(out, 'the export', (write) => {
    index.forEachChunk((rows, first, n) => {
      let text = '';
      for (let r = 0; r < n; r++) {
        const v: string[] = new Array<string>(dim);
        for (let j = 0; j < dim; j++) v[j] = float32ToString(rows[r * dim + j]!);
        text += `{"id":${JSON.stringify(index.ids[first + r])},"kind":"${index.kind(first + r)}","vector":[${v.join(',')}]}\n`;
      }
      write(Buffer.from(text, 'utf8'), null);
    });
  });
  return index.count;
}
