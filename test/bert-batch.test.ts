// The batched BERT encoder (lr_bert_encode_batch: sequences padded to the longest, padding keys masked with
// -inf) on the tiny random-weight CheXbert of scripts/make-chexbert-fixtures.py, converted to an f32 GGUF:
//  - each sequence's [CLS] state and logits in a batch equal the single-sequence encode's within 1e-5
//    (|a - b| <= 1e-5 * max(1, |b|): the same math, float summation order aside), for mixed lengths 1, 2, ...,
//    512 and a batch of one;
//  - labelMany's batched results stay within 1e-5 of the float64 PyTorch goldens (as test/chexbert-engine does
//    for label()), whatever the batch size, and give the goldens' labels;
//  - bad batches (empty, a sequence too long, too many token slots, ids outside the vocabulary, batch options
//    out of range) are refused with INVALID_ARGUMENT and leave the model usable.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planBertBatches } from '../lib/bert/batch-plan.js';
import { ChexbertLabeler, type ChexbertResult } from '../lib/bert/chexbert.js';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { convertChexbert } from '../lib/convert/chexbert.js';
import { fromNative, LlavaRadError } from '../lib/errors.js';
import { native } from '../lib/native.js';
import { bertBaseUncasedVocabText } from './fixtures/wordpiece/vocab.js';

const FIXTURE = new URL('./fixtures/chexbert/', import.meta.url).pathname;
interface Case { text: string; ids: number[]; cls_hidden: number[]; logits: number[][]; labels: number[] }
const golden = JSON.parse(readFileSync(path.join(FIXTURE, 'goldens.json'), 'utf8')) as { hparams: { heads: number }; cases: Case[] };
const vocab = WordPieceVocab.fromText(bertBaseUncasedVocabText());
const dir = mkdtempSync(path.join(tmpdir(), 'bert-batch-'));
const gguf = path.join(dir, 'chexbert-f32.gguf');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Encoded { cls: Float32Array; logits: Float32Array }
interface NativeBert {
  info(): { nEmbd: number; nLogits: number; nCtx: number; nVocab: number };
  encode(ids: Int32Array): Promise<Encoded>;
  encodeBatch(ids: Int32Array, counts: Int32Array): Promise<Encoded>;
  dispose(): Promise<void>;
}

/** the largest |a - b| / max(1, |b|) */
const relDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return m;
};

/** the error code a call gives (thrown at once or rejected), 'resolved' when it succeeds */
const code = async (call: () => Promise<unknown>) => {
  try {
    await call();
    return 'resolved';
  } catch (e) {
    return fromNative(e).code;
  }
};

let bert: NativeBert;
let labeler: ChexbertLabeler;
beforeAll(async () => {
  await convertChexbert(path.join(FIXTURE, 'chexbert-tiny.pth'), vocab, gguf, { type: 'f32', headCount: golden.hparams.heads });
  bert = await (native() as unknown as { loadBert(p: string, o: object): Promise<NativeBert> }).loadBert(gguf, { threads: 2 });
  labeler = await ChexbertLabeler.load(gguf, vocab, { threads: 2 });
});
afterAll(async () => {
  await bert?.dispose();
  await labeler?.dispose();
});

describe('lr_bert_encode_batch', () => {
  const longest = golden.cases.reduce((a, c) => (c.ids.length > a.ids.length ? c : a)).ids;
  const batches: [string, number[][]][] = [
    ['mixed lengths 1, 2, 7, 512 and 23', [[101], [101, 102], golden.cases[3]!.ids.slice(0, 7), longest, golden.cases[5]!.ids]],
    ['every golden report (2 to 512 ids)', golden.cases.map((c) => c.ids)],
    ['a batch of one', [golden.cases[7]!.ids]],
    ['equal lengths (no padding)', [golden.cases[1]!.ids.slice(0, 9), golden.cases[2]!.ids.slice(0, 9)]],
  ];
  for (const [name, seqs] of batches) {
    it(`${name}: each sequence's [CLS] state and logits equal its single encode within 1e-5 relative`, async () => {
      const { nEmbd: D, nLogits: L } = bert.info();
      expect(longest.length).toBe(512);
      const out = await bert.encodeBatch(Int32Array.from(seqs.flat()), Int32Array.from(seqs, (s) => s.length));
      expect(out.cls.length).toBe(seqs.length * D);
      expect(out.logits.length).toBe(seqs.length * L);
      let worst = 0;
      for (const [b, s] of seqs.entries()) {
        const alone = await bert.encode(Int32Array.from(s));
        worst = Math.max(worst, relDiff(out.cls.subarray(b * D, (b + 1) * D), alone.cls));
        worst = Math.max(worst, relDiff(out.logits.subarray(b * L, (b + 1) * L), alone.logits));
      }
      expect(worst, `batched vs single: ${worst} (tolerance 1e-5 relative)`).toBeLessThanOrEqual(1e-5);
    });
  }

  it('refuses bad batches with INVALID_ARGUMENT and stays usable', async () => {
    const { nCtx, nVocab } = bert.info();
    expect(await code(() => bert.encodeBatch(new Int32Array(0), new Int32Array(0))), 'empty batch').toBe('INVALID_ARGUMENT');
    expect(await code(() => bert.encodeBatch(new Int32Array(nCtx + 1).fill(101), Int32Array.of(nCtx + 1))), 'too long').toBe('INVALID_ARGUMENT');
    expect(await code(() => bert.encodeBatch(Int32Array.of(101, 102), Int32Array.of(2, 0))), 'an empty sequence').toBe('INVALID_ARGUMENT');
    expect(await code(() => bert.encodeBatch(Int32Array.of(101, 102), Int32Array.of(3))), 'counts past the ids').toBe('INVALID_ARGUMENT');
    expect(await code(() => bert.encodeBatch(Int32Array.of(101, nVocab), Int32Array.of(2))), 'id outside the vocabulary').toBe('INVALID_ARGUMENT');
    // 33 x 512 token slots > LR_BERT_MAX_BATCH_TOKENS (16384)
    const tooMany = Array.from({ length: 33 }, () => new Array<number>(512).fill(101));
    expect(await code(() => bert.encodeBatch(Int32Array.from(tooMany.flat()), new Int32Array(33).fill(512))), '33 x 512 slots').toBe('INVALID_ARGUMENT');
    const again = await bert.encodeBatch(Int32Array.of(101, 102), Int32Array.of(2));
    expect(again.cls.every(Number.isFinite)).toBe(true);
  });
});

describe('ChexbertLabeler.labelMany in batches', () => {
  const texts = golden.cases.map((c) => c.text);
  const options = [{ batchSize: 1 }, { batchSize: 8 }, {}, { batchSize: 32, maxBatchTokens: 16384 }];
  for (const opt of options) {
    it(`${JSON.stringify(opt)}: within 1e-5 of the float64 goldens and of label(), the goldens' labels`, async () => {
      const many = await labeler.labelMany(texts, opt);
      let vsGolden = 0;
      let vsSingle = 0;
      for (const [i, c] of golden.cases.entries()) {
        const r: ChexbertResult = many[i]!;
        expect(r.ids).toEqual(c.ids);
        expect(r.labels).toEqual(c.labels);
        vsGolden = Math.max(vsGolden, relDiff(r.cls, c.cls_hidden), ...r.logits.map((row, h) => relDiff(row, c.logits[h]!)));
        const alone = await labeler.label(c.text);
        vsSingle = Math.max(vsSingle, relDiff(r.cls, alone.cls), relDiff(r.logits.flat(), alone.logits.flat()));
      }
      expect(vsGolden, `vs float64 PyTorch: ${vsGolden} (tolerance 1e-5)`).toBeLessThan(1e-5);
      expect(vsSingle, `vs label(): ${vsSingle} (tolerance 1e-5 relative)`).toBeLessThanOrEqual(1e-5);
    });
  }

  it('reports progress once per distinct text, and refuses bad batch options', async () => {
    const seen: number[] = [];
    await labeler.labelMany([...texts, texts[0]!], { batchSize: 4, onProgress: (d) => seen.push(d) });
    expect(seen).toEqual(texts.map((_, i) => i + 1));
    for (const bad of [{ batchSize: 0 }, { batchSize: 2.5 }, { maxBatchTokens: 100 }, { maxBatchTokens: 20000 }]) {
      const e = await labeler.labelMany(texts, bad).catch((x: unknown) => x);
      expect(e, JSON.stringify(bad)).toBeInstanceOf(LlavaRadError);
      expect((e as LlavaRadError).code).toBe('INVALID_ARGUMENT');
    }
  });
});

describe('planBertBatches', () => {
  it('covers every index once, longest first, within the count and token-slot bounds', () => {
    const lengths = [5, 512, 1, 40, 40, 2, 300, 17, 17, 17, 260];
    const batches = planBertBatches(lengths, 3, 1024);
    expect(batches.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
    for (const b of batches) {
      expect(b.length).toBeLessThanOrEqual(3);
      expect(b.length * Math.max(...b.map((i) => lengths[i]!))).toBeLessThanOrEqual(1024);
    }
    expect(batches[0]).toEqual([1, 6]); // 512 and 300 take 2 x 512 slots; a third (260) would make 3 x 512
  });
});
