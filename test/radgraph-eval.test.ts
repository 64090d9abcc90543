// The radgraph metric through evaluate() and `llava-rad eval`, and `llava-rad convert-radgraph`, on the tiny
// archive: RadGraph's model annotates references and predictions on the engine, and the per-report rewards
// and their mean equal those the float64 reference (scripts/make-radgraph-model-fixtures.py: its own
// annotations, and the official compute_reward's semantics written anew) gives, within 1e-12, for the
// simple / partial / complete levels and the lowercase variant; the bootstrap median and interval are
// radgraphF1's on the reference's annotations (radgraph-reward.ts, itself checked against scipy).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { convertRadgraph } from '../lib/convert/radgraph.js';
import { evaluate, type EvalRecord } from '../lib/eval/evaluate.js';
import { evaluatePaired, pairedMeans } from '../lib/eval/paired.js';
import { radgraphF1, radgraphRewards, type RadgraphAnnotation, type RadgraphRewardLevel } from '../lib/eval/radgraph-reward.js';
import { RadgraphModel } from '../lib/radgraph/radgraph.js';
import { runCliInProcess } from './helpers/cli-in-process.js';

const FIXTURE = new URL('./fixtures/radgraph/model/', import.meta.url).pathname;
interface EvalGolden {
  pairs: Array<{ reference: string; prediction: string }>;
  levels: Record<string, { rewards: number[][]; mean: number[] }>;
  annotations: Array<[RadgraphAnnotation | null, RadgraphAnnotation | null]>;
}
const golden = (JSON.parse(readFileSync(path.join(FIXTURE, 'goldens.json'), 'utf8')) as { eval: EvalGolden }).eval;
const records: EvalRecord[] = golden.pairs.map((p, i) => ({ id: `s${i}`, reference: p.reference, prediction: p.prediction }));
const dir = mkdtempSync(path.join(tmpdir(), 'radgraph-eval-'));
const gguf = path.join(dir, 'radgraph-f32.gguf');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  const vocab = WordPieceVocab.fromText(readFileSync(path.join(FIXTURE, 'vocab.txt'), 'utf8'));
  await convertRadgraph(path.join(FIXTURE, 'radgraph-tiny.tar.gz'), gguf, { vocab, headCount: 4 });
});
const B = 50;
const TOL = 1e-12;

function expected(level: RadgraphRewardLevel, lowercase: boolean) {
  const g = golden.levels[`${level}${lowercase ? ' lowercase' : ''}`]!;
  const refs = golden.annotations.map((a) => a[0]);
  const preds = golden.annotations.map((a) => a[1]);
  const r = radgraphF1(refs, preds, { rewardLevel: level, lowercase, bootstrap: B });
  return { mean: g.mean, score: r.resampled!.median, ci: r.resampled!.ci };
}

describe('the radgraph metric of evaluate()', () => {
  for (const [level, lowercase] of [['partial', false], ['simple', false], ['complete', false], ['partial', true]] as const) {
    it(`equals the float64 reference at level ${level}${lowercase ? ', lowercase' : ''} (mean within ${TOL}; bootstrap of the reference's annotations)`, async () => {
      const r = await evaluate(records, { metrics: ['radgraph'], radgraph: gguf, radgraphParams: { threads: 2 }, bootstrap: B, ...(level !== 'partial' ? { radgraphLevel: level } : {}), ...(lowercase ? { radgraphLowercase: true } : {}) });
      const m = r.metrics.radgraph!;
      const e = expected(level, lowercase);
      expect(m.rewardLevel).toBe(level);
      expect(m.lowercase).toBe(lowercase);
      expect(Math.abs(m.f1 - e.mean[0]!), 'mean F1 within 1e-12').toBeLessThan(TOL);
      expect(Math.abs(m.precision - e.mean[1]!), 'mean precision within 1e-12').toBeLessThan(TOL);
      expect(Math.abs(m.recall - e.mean[2]!), 'mean recall within 1e-12').toBeLessThan(TOL);
      expect(m.score).toBe(e.score);
      expect(m.ci).toEqual(e.ci);
    });
  }

  it('takes a loaded RadgraphModel and leaves it usable', async () => {
    const model = await RadgraphModel.load(gguf, { threads: 2 });
    try {
      const r = await evaluate(records, { metrics: ['bleu', 'radgraph'], radgraph: model, bootstrap: B });
      expect(Math.abs(r.metrics.radgraph!.f1 - golden.levels.partial!.mean[0]!)).toBeLessThan(TOL);
      expect(r.metrics.bleu1).toBeDefined();
      expect((await model.annotate(golden.pairs[0]!.reference)).entities).toEqual(golden.annotations[0]![0]!.entities);
    } finally {
      await model.dispose();
    }
  });

  it('refuses a missing model and a bad level with typed errors', async () => {
    await expect(evaluate(records, { metrics: ['radgraph'] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(evaluate(records, { metrics: ['radgraph'], radgraph: gguf, radgraphLevel: 'all' as RadgraphRewardLevel })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(evaluate(records, { metrics: ['radgraph'], radgraph: path.join(dir, 'missing.gguf') })).rejects.toMatchObject({ code: 'IO' });
  });

  it('a record past RadGraph\'s 4096 words is BAD_PREDICTIONS naming it, before any metric is computed', async () => {
    const long = Array.from({ length: 4097 }, () => 'effusion').join(' ');
    const file = path.join(dir, 'long.jsonl');
    writeFileSync(file, [...records, { id: 'long', reference: 'No effusion.', prediction: long }].map((r) => JSON.stringify(r)).join('\n') + '\n');
    // a missing model file is not even opened: the lengths are checked first
    await expect(evaluate(file, { metrics: ['bleu', 'radgraph'], radgraph: path.join(dir, 'missing.gguf') })).rejects.toMatchObject({
      code: 'BAD_PREDICTIONS',
      message: `${file}: record ${records.length + 1} of those scored (id "long"): the prediction has 4097 words; the radgraph metric reads reports of at most 4096 (RadGraph scores every pair of its kept spans, so the time grows with the square of the words; a findings section has a few hundred)`,
    });
    await expect(evaluatePaired(records, [...records.slice(1), { ...records[0]!, prediction: long }], { metrics: ['radgraph'], radgraph: gguf })).rejects.toMatchObject({
      code: 'BAD_PREDICTIONS', message: expect.stringMatching(/^B: record 1 of those scored \(id "s0"\): the prediction has 4097 words/),
    });
    // without the radgraph metric the record is scored
    expect((await evaluate(file, { metrics: ['bleu'], bootstrap: B })).n).toBe(records.length + 1);
  });

  it('the paired bootstrap: A and B are the mean per-report F1 of the reference\'s rewards, resampled with the paired rows', async () => {
    // B: the predictions rotated by one (another system on the same studies)
    const rotated = records.map((r, i) => ({ ...r, prediction: records[(i + 1) % records.length]!.prediction }));
    const r = await evaluatePaired(records, rotated, { metrics: ['radgraph'], radgraph: gguf, bootstrap: B });
    const m = r.metrics.radgraph!;
    const refs = golden.annotations.map((a) => a[0]);
    const preds = golden.annotations.map((a) => a[1]);
    const fa = radgraphRewards(refs, preds, { rewardLevel: 'partial' }).rewards.map((x) => x.f1);
    const fb = radgraphRewards(refs, preds.map((_, i) => preds[(i + 1) % preds.length]!), { rewardLevel: 'partial' }).rewards.map((x) => x.f1);
    const want = pairedMeans(fa, fb, B);
    expect(Math.abs(m.a - want.a), 'A: mean F1 of the reference annotations').toBeLessThan(TOL);
    expect(Math.abs(m.b - want.b), 'B: mean F1').toBeLessThan(TOL);
    expect(Math.abs(m.mean - want.mean), 'mean of the resampled differences').toBeLessThan(TOL);
    expect(m.ci[0]).toBeCloseTo(want.ci[0], 12);
    expect(m.ci[1]).toBeCloseTo(want.ci[1], 12);
    expect(m.a).not.toBe(m.b);
  });
});

describe('llava-rad eval --metrics radgraph and convert-radgraph', () => {
  it('converts the archive and scores a predictions file with the official partial level', async () => {
    const out = path.join(dir, 'cli.gguf');
    const conv = await runCliInProcess(['convert-radgraph', path.join(FIXTURE, 'radgraph-tiny.tar.gz'), '--vocab', path.join(FIXTURE, 'vocab.txt'), '--out', out, '--heads', '4', '--json']);
    expect(conv.code, conv.err).toBe(0);
    expect(JSON.parse(conv.out.trim()).config.maxSpanWidth).toBe(4);
    const jsonl = path.join(dir, 'preds.jsonl');
    writeFileSync(jsonl, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const html = path.join(dir, 'report.html');
    const r = await runCliInProcess(['eval', jsonl, '--radgraph', out, '--metrics', 'radgraph', '--bootstrap', String(B), '--json', '--html', html]);
    expect(r.code, r.err).toBe(0);
    const m = JSON.parse(r.out.trim().split('\n').at(-1)!).metrics.radgraph;
    const e = expected('partial', false);
    expect(Math.abs(m.f1 - e.mean[0]!)).toBeLessThan(TOL);
    expect(m.score).toBe(e.score);
    expect(readFileSync(html, 'utf8')).toContain(`RadGraph F1 (partial; 0-1, bootstrap median)</th><td>${m.score.toFixed(4)}</td>`);
    const text = await runCliInProcess(['eval', jsonl, '--radgraph', out, '--radgraph-level', 'complete', '--lowercase', '--bootstrap', String(B)]);
    expect(text.code, text.err).toBe(0);
    expect(text.out).toMatch(/RadGraph F1 \(complete, lowercase\)\s+\d\.\d{4}\s+\[/);
    expect(text.out).toMatch(/BLEU-1/); // --radgraph without --metrics adds radgraph to the defaults
  });

  it('gives usage errors for a bad level, a missing model and a missing --out', async () => {
    const jsonl = path.join(dir, 'one.jsonl');
    writeFileSync(jsonl, JSON.stringify(records[0]) + '\n');
    expect((await runCliInProcess(['eval', jsonl, '--radgraph', gguf, '--radgraph-level', 'all'])).code).toBe(2);
    const missing = await runCliInProcess(['eval', jsonl, '--metrics', 'radgraph'], { LLAVA_RAD_RADGRAPH: undefined, LLAVA_RAD_HOME: dir + '/nowhere' });
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/convert-radgraph/);
    expect((await runCliInProcess(['eval', jsonl, '--radgraph', gguf, '--paired'])).code, '--paired needs two files').toBe(2);
    const paired = await runCliInProcess(['eval', jsonl, jsonl, '--paired', '--metrics', 'radgraph', '--radgraph', gguf, '--bootstrap', '20']);
    expect(paired.code, paired.err).toBe(0);
    expect(paired.out).toMatch(/RadGraph F1 \(mean\)\s+\d\.\d{4}\s+\d\.\d{4}\s+0\.0000/);
    expect((await runCliInProcess(['convert-radgraph', path.join(FIXTURE, 'radgraph-tiny.tar.gz')])).code).toBe(2);
  });
});
