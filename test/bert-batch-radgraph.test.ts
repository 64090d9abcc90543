// lr_radgraph_encode_batch on the tiny random-weight RadGraph archive of scripts/make-radgraph-model-fixtures.py:
// every real token's last hidden state of each segment in a batch (padded to the longest, padding keys masked)
// equals lr_radgraph_encode's on the segment alone within 1e-5 (|a - b| <= 1e-5 * max(1, |b|)), for segments of
// 1, 2, 9 and 16 ids (the archive's max_length) and the model's longest input; bad batches give INVALID_ARGUMENT.
// (RadgraphModel.trace encodes a report's segments this way: test/radgraph-model.test.ts holds it to the float64
// goldens on multi-segment reports.)
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { convertRadgraph } from '../lib/convert/radgraph.js';
import { fromNative } from '../lib/errors.js';
import { native } from '../lib/native.js';

const FIXTURE = new URL('./fixtures/radgraph/model/', import.meta.url).pathname;
const vocab = WordPieceVocab.fromText(readFileSync(path.join(FIXTURE, 'vocab.txt'), 'utf8'));
const dir = mkdtempSync(path.join(tmpdir(), 'bert-batch-radgraph-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface NativeRadgraph {
  info(): { nCtx: number; nEmbd: number; nVocab: number };
  encode(ids: Int32Array): Promise<Float32Array>;
  encodeBatch(ids: Int32Array, counts: Int32Array): Promise<Float32Array>;
  dispose(): Promise<void>;
}

let rg: NativeRadgraph;
beforeAll(async () => {
  const gguf = path.join(dir, 'radgraph.gguf');
  await convertRadgraph(path.join(FIXTURE, 'radgraph-tiny.tar.gz'), gguf, { vocab, headCount: 4 });
  rg = await (native() as unknown as { loadRadgraph(p: string, o: object): Promise<NativeRadgraph> }).loadRadgraph(gguf, { threads: 2 });
});
afterAll(async () => { await rg?.dispose(); });

const segment = (n: number) => Array.from({ length: n }, (_, i) => (i * 37 + 5) % vocab.size);

it('each segment of a batch gives its tokens\' states alone within 1e-5 relative', async () => {
  const { nCtx, nEmbd: D } = rg.info();
  const segments = [1, 16, 2, nCtx, 9].map(segment);
  const counts = Int32Array.from(segments, (s) => s.length);
  const hidden = await rg.encodeBatch(Int32Array.from(segments.flat()), counts);
  expect(hidden.length).toBe(segments.flat().length * D);
  let worst = 0;
  let row = 0;
  for (const s of segments) {
    const alone = await rg.encode(Int32Array.from(s));
    const mine = hidden.subarray(row * D, (row + s.length) * D);
    for (let i = 0; i < alone.length; i++) worst = Math.max(worst, Math.abs(mine[i]! - alone[i]!) / Math.max(1, Math.abs(alone[i]!)));
    row += s.length;
  }
  expect(worst, `batched vs alone: ${worst} (tolerance 1e-5 relative)`).toBeLessThanOrEqual(1e-5);
  const one = await rg.encodeBatch(Int32Array.from(segments[2]!), Int32Array.of(2));
  expect(Array.from(one), 'a batch of one').toEqual(Array.from(await rg.encode(Int32Array.from(segments[2]!))));
});

it('refuses bad batches with INVALID_ARGUMENT and stays usable', async () => {
  const { nCtx, nVocab } = rg.info();
  const code = async (call: () => Promise<unknown>) => { try { await call(); return 'resolved'; } catch (e) { return fromNative(e).code; } };
  expect(await code(() => rg.encodeBatch(new Int32Array(0), new Int32Array(0))), 'empty batch').toBe('INVALID_ARGUMENT');
  expect(await code(() => rg.encodeBatch(Int32Array.from(segment(nCtx + 1)), Int32Array.of(nCtx + 1))), 'too long').toBe('INVALID_ARGUMENT');
  expect(await code(() => rg.encodeBatch(Int32Array.of(1, 2), Int32Array.of(1))), 'counts short of the ids').toBe('INVALID_ARGUMENT');
  expect(await code(() => rg.encodeBatch(Int32Array.of(1, nVocab), Int32Array.of(1, 1))), 'id outside the vocabulary').toBe('INVALID_ARGUMENT');
  expect((await rg.encodeBatch(Int32Array.of(1, 2), Int32Array.of(1, 1))).length).toBe(2 * rg.info().nEmbd);
});
