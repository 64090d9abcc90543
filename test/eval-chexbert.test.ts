// CheXbert as a metric of evaluate() / `llava-rad eval`, on the tiny random-weight checkpoint converted to an
// f32 GGUF, against the float64 PyTorch reference of scripts/make-chexbert-fixtures.py (goldens.json):
//   (a) the labels of the 20 golden reports equal the reference's (with the vocabulary read from the GGUF);
//   (b) evaluate()'s chexbert scores equal chexbertF1() (the exact sklearn/scipy port, tested on its own in
//       eval-chexbert-f1.test.ts) applied to the float64 reference's labels;
//   (c) SembScore equals the mean cosine of the reference's float64 [CLS] vectors to 1e-5;
//   (d) the CLI: --json shape with --chexbert, LLAVA_RAD_CHEXBERT and the model-home default, the
//       missing-model error, --html, --paired, and convert-chexbert (byte-identical to the library's GGUF);
//   (e) the GGUF-embedded vocabulary (read by lib/gguf/read-metadata.ts) is the test vocabulary and gives
//       the same ids.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChexbertLabeler, readChexbertVocab } from '../lib/bert/chexbert.js';
import { chexbertInputIds } from '../lib/bert/chexbert-input.js';
import { BertTokenizer, WordPieceVocab } from '../lib/bert/wordpiece.js';
import { runCliInProcess } from './helpers/cli-in-process.js';
import { convertChexbert } from '../lib/convert/chexbert.js';
import { chexbertF1, CHEXBERT_CONDITIONS, CHEXBERT_SUMMARY_KEYS, type ChexbertClass } from '../lib/eval/chexbert-f1.js';
import { evaluate, evaluatePaired, isLlavaRadError, readGgufMetadata } from '../lib/index.js';
import { bertBaseUncasedVocabText } from './fixtures/wordpiece/vocab.js';

const FIXTURE = new URL('./fixtures/chexbert/', import.meta.url).pathname;
const PTH = path.join(FIXTURE, 'chexbert-tiny.pth');
interface Case { text: string; ids: number[]; cls_hidden: number[]; labels: number[] }
const golden = JSON.parse(readFileSync(path.join(FIXTURE, 'goldens.json'), 'utf8')) as { hparams: { heads: number }; cases: Case[] };
const cases = golden.cases;
const N = cases.length;
const vocabText = bertBaseUncasedVocabText();
const vocab = WordPieceVocab.fromText(vocabText);
const dir = mkdtempSync(path.join(tmpdir(), 'eval-chexbert-'));
const gguf = path.join(dir, 'chexbert-f32.gguf');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// the predictions set: study i has reference i and prediction PRED[i]; some predictions equal their reference
const PRED = cases.map((_, i) => (i % 5 === 0 ? i : (i * 7 + 3) % N));
const PRED_B = cases.map((_, i) => (i % 3 === 0 ? i : (i * 11 + 5) % N));
const records = (pred: number[]) => cases.map((c, i) => ({ id: `s${i}`, reference: c.text, prediction: cases[pred[i]!]!.text }));
const goldenLabels = (idx: number[]) => idx.map((j) => cases[j]!.labels as ChexbertClass[]);
const all = cases.map((_, i) => i);

function cosine64(a: number[], b: number[]): number {
  let d = 0;
  let x = 0;
  let y = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i]! * b[i]!;
    x += a[i]! * a[i]!;
    y += b[i]! * b[i]!;
  }
  return d / Math.sqrt(x * y);
}
const goldenSemb = (pred: number[]) => cases.reduce((s, c, i) => s + cosine64(c.cls_hidden, cases[pred[i]!]!.cls_hidden), 0) / N;

let labeler: ChexbertLabeler;
beforeAll(async () => {
  await convertChexbert(PTH, vocab, gguf, { type: 'f32', headCount: golden.hparams.heads });
  labeler = await ChexbertLabeler.load(gguf, { threads: 2 });
});
afterAll(async () => { await labeler?.dispose(); });

describe('the GGUF-embedded vocabulary', () => {
  it('(e) is the test vocabulary, piece for piece, and gives the same ids as it on the 20 reports', async () => {
    const embedded = await readChexbertVocab(gguf);
    expect(embedded.size).toBe(vocab.size);
    expect(embedded.pieces).toEqual(vocab.pieces);
    const fromTest = new BertTokenizer(vocab);
    for (const c of cases) {
      expect(chexbertInputIds(labeler.tokenizer, c.text)).toEqual(chexbertInputIds(fromTest, c.text));
      expect(chexbertInputIds(labeler.tokenizer, c.text)).toEqual(c.ids);
    }
  });

  it('a vocab override still loads (the older load(path, vocab, params) form too); a GGUF without the vocabulary is BAD_GGUF', async () => {
    const a = await ChexbertLabeler.load(gguf, { vocab, threads: 1 });
    const b = await ChexbertLabeler.load(gguf, vocab, { threads: 1 });
    try {
      expect((await a.label(cases[1]!.text)).labels).toEqual(cases[1]!.labels);
      expect((await b.label(cases[1]!.text)).labels).toEqual(cases[1]!.labels);
    } finally {
      await a.dispose();
      await b.dispose();
    }
    const notGguf = path.join(dir, 'not.gguf');
    writeFileSync(notGguf, 'GGUF but not really, just bytes...');
    await expect(readChexbertVocab(notGguf)).rejects.toSatisfy((e) => isLlavaRadError(e, 'BAD_GGUF'));
    await expect(ChexbertLabeler.load(path.join(dir, 'missing.gguf'))).rejects.toSatisfy((e) => isLlavaRadError(e, 'IO'));
  });

  it('readGgufMetadata: the header keys; a truncated header or an unknown version is BAD_GGUF', async () => {
    const meta = await readGgufMetadata(gguf);
    expect(meta.version).toBe(3);
    expect(meta.kv.get('general.architecture')).toBe('bert');
    expect(meta.kv.get('bert.attention.head_count')).toBe(golden.hparams.heads);
    expect(meta.kv.get('chexbert.head_classes')).toEqual([...Array(13).fill(4), 2]);
    const bytes = readFileSync(gguf);
    const cut = path.join(dir, 'cut.gguf');
    writeFileSync(cut, bytes.subarray(0, 100_000)); // inside the vocabulary array: caught at its length, or when reading
    await expect(readGgufMetadata(cut)).rejects.toSatisfy((e) => isLlavaRadError(e, 'BAD_GGUF') && /truncated|do not fit in the file/.test((e as Error).message));
    const v99 = Buffer.from(bytes.subarray(0, 64));
    v99.writeUInt32LE(99, 4);
    writeFileSync(cut, v99);
    await expect(readGgufMetadata(cut)).rejects.toSatisfy((e) => isLlavaRadError(e, 'BAD_GGUF') && /version 99/.test((e as Error).message));
  });
});

describe('labelMany', () => {
  it("(a) gives the float64 reference's labels for the 20 golden reports, in order, each distinct text encoded once", async () => {
    const texts = [...cases.map((c) => c.text), cases[3]!.text, `  ${cases[3]!.text}\n`];
    const progress: number[] = [];
    const r = await labeler.labelMany(texts, { onProgress: (done, total) => progress.push(done, total) });
    expect(r.map((x) => x.labels)).toEqual([...cases.map((c) => c.labels), cases[3]!.labels, cases[3]!.labels]);
    // the official cleaning makes the last two the same text as report 3: one encode, one result object
    expect(r[N]).toBe(r[3]);
    expect(r[N + 1]).toBe(r[3]);
    expect(progress.at(-1)).toBe(N);
    expect(progress.at(-2)).toBe(N);
  });

  it('stops with ABORTED when the signal is aborted', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(labeler.labelMany(cases.map((c) => c.text), { signal: ac.signal })).rejects.toSatisfy((e) => isLlavaRadError(e, 'ABORTED'));
  });
});

describe('evaluate() with chexbert', () => {
  it("(b) scores equal chexbertF1() on the float64 reference's labels; (c) SembScore equals the reference [CLS] cosines' mean", async () => {
    const r = await evaluate(records(PRED), { metrics: ['chexbert'], chexbert: labeler });
    expect(r.n).toBe(N);
    expect(Object.keys(r.metrics).sort()).toEqual(['chexbert', 'sembScore']);
    // the reference's labels through the exact F1 code (sklearn classification_report + scipy.stats.bootstrap port)
    const expected = chexbertF1(goldenLabels(all), goldenLabels(PRED), { bootstrap: 500 });
    expect(r.metrics.chexbert).toEqual(expected);
    for (const k of CHEXBERT_SUMMARY_KEYS) {
      expect(r.metrics.chexbert!.summary[k].median).toBeTypeOf('number');
      expect(r.metrics.chexbert!.summary[k].ci).toHaveLength(2);
    }
    expect(Object.keys(r.metrics.chexbert!.reports.f14.labels)).toEqual([...CHEXBERT_CONDITIONS]);
    expect(Math.abs(r.metrics.sembScore!.score - goldenSemb(PRED))).toBeLessThan(1e-5);
  });

  it('loads a GGUF path itself (and disposes it); --bootstrap carries to the CheXbert bootstrap', async () => {
    const r = await evaluate(records(PRED), { metrics: ['bleu', 'chexbert'], chexbert: gguf, chexbertParams: { threads: 1 }, bootstrap: 40 });
    expect(Object.keys(r.metrics).sort()).toEqual(['bleu1', 'bleu4', 'chexbert', 'sembScore']);
    expect(r.metrics.chexbert).toEqual(chexbertF1(goldenLabels(all), goldenLabels(PRED), { bootstrap: 40 }));
  });

  it('chexbert without a labeler is INVALID_ARGUMENT', async () => {
    await expect(evaluate(records(PRED), { metrics: ['chexbert'] })).rejects.toSatisfy((e) => isLlavaRadError(e, 'INVALID_ARGUMENT') && /needs a CheXbert labeler/.test((e as Error).message));
  });

  it('paired: A and B scores are the unpaired F1s / SembScores; identical systems differ by 0 in every resample', async () => {
    const p = await evaluatePaired(records(PRED), records(PRED_B), { metrics: ['chexbert'], chexbert: labeler, bootstrap: 50 });
    const fa = chexbertF1(goldenLabels(all), goldenLabels(PRED), { bootstrap: 0 }).summary;
    const fb = chexbertF1(goldenLabels(all), goldenLabels(PRED_B), { bootstrap: 0 }).summary;
    for (const k of CHEXBERT_SUMMARY_KEYS) {
      expect(p.metrics.chexbert![k].a).toBe(fa[k].f1);
      expect(p.metrics.chexbert![k].b).toBe(fb[k].f1);
      expect(p.metrics.chexbert![k].diff).toBe(fb[k].f1 - fa[k].f1);
    }
    expect(Math.abs(p.metrics.sembScore!.a - goldenSemb(PRED))).toBeLessThan(1e-5);
    expect(Math.abs(p.metrics.sembScore!.b - goldenSemb(PRED_B))).toBeLessThan(1e-5);
    const same = await evaluatePaired(records(PRED), records(PRED), { metrics: ['chexbert'], chexbert: labeler, bootstrap: 20 });
    for (const k of CHEXBERT_SUMMARY_KEYS) expect(same.metrics.chexbert![k]).toMatchObject({ diff: 0, mean: 0, ci: [0, 0], bBelowA: 0 });
  });
});

describe('llava-rad eval --metrics chexbert / convert-chexbert', () => {
  const cli = runCliInProcess;
  const jsonl = (name: string, pred: number[]) => {
    const p = path.join(dir, name);
    writeFileSync(p, records(pred).map((r) => JSON.stringify(r)).join('\n') + '\n');
    return p;
  };
  const emptyHome = path.join(dir, 'empty-home');
  const noEnv = { LLAVA_RAD_CHEXBERT: undefined, LLAVA_RAD_HOME: emptyHome };

  it('(d) --json with --chexbert: BLEU, ROUGE-L, the 8 CheXbert scores with per-condition reports, SembScore', async () => {
    const preds = jsonl('preds.jsonl', PRED);
    const html = path.join(dir, 'report.html');
    const r = await cli(['eval', preds, '--metrics', 'bleu,rouge,chexbert', '--chexbert', gguf, '--threads', '2', '--json', '--html', html], noEnv);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out.trim().split('\n').at(-1)!);
    expect(Object.keys(j.metrics).sort()).toEqual(['bleu1', 'bleu4', 'chexbert', 'rougeL', 'sembScore']);
    expect(j.metrics.chexbert).toEqual(JSON.parse(JSON.stringify(chexbertF1(goldenLabels(all), goldenLabels(PRED)))));
    expect(Object.keys(j.metrics.chexbert.summary)).toEqual([...CHEXBERT_SUMMARY_KEYS]);
    expect(Object.keys(j.metrics.chexbert.reports).sort()).toEqual(['f14', 'f14+', 'f5', 'f5+']);
    expect(Math.abs(j.metrics.sembScore.score - goldenSemb(PRED))).toBeLessThan(1e-5);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<h2>CheXbert F1</h2>');
    expect(page).toContain('Per condition, uncertain as positive');
    const text = await cli(['eval', preds, '--chexbert', gguf], noEnv); // --chexbert alone adds chexbert to bleu,rouge
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^ROUGE-L /m);
    expect(text.out).toMatch(/^CheXbert Micro-F1-14 +\d\.\d{4} +\[\d\.\d{4}, \d\.\d{4}\]$/m);
    expect(text.out).toMatch(/^CheXbert Macro-F1-5\+ +\d\.\d{4} /m);
    expect(text.out).toMatch(/^SembScore +\d\.\d{4} +-$/m);
  });

  it('(d) finds the model through LLAVA_RAD_CHEXBERT and at $LLAVA_RAD_HOME/eval/chexbert-f16.gguf', async () => {
    const preds = jsonl('preds-env.jsonl', PRED);
    const viaEnv = await cli(['eval', preds, '--metrics', 'chexbert', '--json', '--bootstrap', '20'], { LLAVA_RAD_CHEXBERT: gguf, LLAVA_RAD_HOME: emptyHome });
    expect(viaEnv.code).toBe(0);
    const home = path.join(dir, 'home');
    mkdirSync(path.join(home, 'eval'), { recursive: true });
    copyFileSync(gguf, path.join(home, 'eval', 'chexbert-f16.gguf'));
    const viaHome = await cli(['eval', preds, '--metrics', 'chexbert', '--json', '--bootstrap', '20'], { LLAVA_RAD_CHEXBERT: undefined, LLAVA_RAD_HOME: home });
    expect(viaHome.code).toBe(0);
    expect(JSON.parse(viaHome.out).metrics).toEqual(JSON.parse(viaEnv.out).metrics);
  });

  it('(d) no model: exit 2, one line naming the flag, the env var, the default path and convert-chexbert', async () => {
    const r = await cli(['eval', jsonl('p2.jsonl', PRED), '--metrics', 'bleu,chexbert'], noEnv);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err.split('\n')).toHaveLength(2);
    expect(r.err).toMatch(/^llava-rad: eval: the chexbert metric needs CheXbert's model as a GGUF: pass --chexbert FILE\.gguf, set LLAVA_RAD_CHEXBERT, or put it at .*empty-home\/eval\/chexbert-f16\.gguf; make it from CheXbert's chexbert\.pth with `llava-rad convert-chexbert chexbert\.pth --vocab vocab\.txt --out FILE\.gguf`\n$/);
    const missing = await cli(['eval', jsonl('p3.jsonl', PRED), '--metrics', 'chexbert', '--chexbert', path.join(dir, 'nope.gguf')], noEnv);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^llava-rad: eval: CheXbert model not found: .*nope\.gguf \(from --chexbert\)\n$/);
  });

  it('(d) --paired with chexbert: the eight scores and SembScore as B - A rows', async () => {
    const r = await cli(['eval', jsonl('a.jsonl', PRED), jsonl('b.jsonl', PRED_B), '--paired', '--metrics', 'rouge,chexbert', '--chexbert', gguf, '--bootstrap', '30', '--json'], noEnv);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(Object.keys(j.metrics).sort()).toEqual(['chexbert', 'rougeL', 'sembScore']);
    expect(Object.keys(j.metrics.chexbert)).toEqual([...CHEXBERT_SUMMARY_KEYS]);
  });

  it('(d) convert-chexbert writes the same bytes as convertChexbert(); bad arguments are one-line usage errors', async () => {
    const vocabFile = path.join(dir, 'vocab.txt');
    writeFileSync(vocabFile, vocabText);
    const out = path.join(dir, 'cli-f32.gguf');
    const r = await cli(['convert-chexbert', PTH, '--vocab', vocabFile, '--out', out, '--type', 'f32', '--heads', String(golden.hparams.heads), '--json']);
    expect(r.err).toBe(''); // the vocabulary is bert-base-uncased's: no warning
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ out, type: 'f32', hparams: { blockCount: 2, embeddingLength: 32, headCount: golden.hparams.heads, vocabSize: 30522 } });
    const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
    expect(sha(out)).toBe(sha(gguf));
    const other = path.join(dir, 'other-vocab.txt');
    writeFileSync(other, vocabText.replace('[unused0]', '[unused_x]'));
    const w = await cli(['convert-chexbert', PTH, '--vocab', other, '--out', path.join(dir, 'w.gguf'), '--heads', '4']);
    expect(w.code).toBe(0);
    expect(w.err).toMatch(/^llava-rad convert-chexbert: warning: .*other-vocab\.txt is not bert-base-uncased's vocab\.txt/);
    for (const [args, message] of [
      [[PTH, '--out', out], /^llava-rad: convert-chexbert: --vocab FILE is required\n$/],
      [[PTH, '--vocab', vocabFile], /^llava-rad: convert-chexbert: --out FILE is required\n$/],
      [[path.join(dir, 'none.pth'), '--vocab', vocabFile, '--out', out], /^llava-rad: convert-chexbert: checkpoint file not found: /],
      [[PTH, '--vocab', vocabFile, '--out', out, '--type', 'q8_0'], /^llava-rad: convert-chexbert: --type must be f16 or f32, got 'q8_0'\n$/],
      [[], /^llava-rad: convert-chexbert: expected the checkpoint/],
    ] as Array<[string[], RegExp]>) {
      const e = await cli(['convert-chexbert', ...args]);
      expect(e.code).toBe(2);
      expect(e.err).toMatch(message);
    }
  });
});
