// CheXbert F1 scoring and scipy.stats.bootstrap, against real sklearn classification_report outputs and
// real scipy.stats.bootstrap results computed as the official evaluation does
// (test/fixtures/eval/chexbert-f1*.json, made by scripts/make-chexbert-f1-fixtures.py; versions recorded there).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  averageF1, binaryMatrix, CHEXBERT_CONDITIONS, CHEXBERT_CONDITIONS_5, chexbertF1, normalizeChexbertLabels, type ClassificationReport,
} from '../lib/eval/chexbert-f1.js';
import { numpyMean, pairwiseSum, radgraphMeanStatistic, scipyBootstrap, scipyBootstrapIndices } from '../lib/eval/scipy-bootstrap.js';
import * as lib from '../lib/index.js';

interface SkRow { precision: number; recall: number; 'f1-score': number; support: number; median?: number; ci_l?: number; ci_h?: number; bootstrap_distribution?: number[]; standard_error?: number }
interface Golden {
  versions: Record<string, string>;
  conditions: string[];
  conditions5: string[];
  n_resamples: number;
  references: number[][];
  predictions: number[][];
  reports: Record<'f14' | 'f5' | 'f14+' | 'f5+', Record<string, SkRow>>;
}
interface BootGolden {
  versions: Record<string, string>;
  indices: Array<{ n: number; n_resamples: number; batch: number | null; indices: number[][]; distribution: number[]; ci_l: number; ci_h: number }>;
  radgraph: { rewards: number[][]; median: number; ci_l: number; ci_h: number; distribution: number[] };
}
const read = <T>(name: string) => JSON.parse(readFileSync(new URL(`./fixtures/eval/${name}`, import.meta.url), 'utf8')) as T;
const golden = read<Golden>('chexbert-f1-golden.json');
const boot = read<BootGolden>('chexbert-f1-bootstrap-golden.json');
const v = golden.versions;
const n = golden.references.length;

const close = (a: number, b: number, tol: number, what: string) => expect(Math.abs(a - b), `${what}: ${a} vs ${b}`).toBeLessThanOrEqual(tol);

function compareReport(ours: ClassificationReport, sk: Record<string, SkRow>, names: readonly string[], what: string): number {
  let compared = 0;
  const cmp = (o: { precision: number; recall: number; f1: number; support: number }, s: SkRow, w: string) => {
    close(o.precision, s.precision, 1e-12, `${w} precision`);
    close(o.recall, s.recall, 1e-12, `${w} recall`);
    close(o.f1, s['f1-score'], 1e-12, `${w} f1`);
    expect(o.support, `${w} support`).toBe(s.support);
    compared += 4;
  };
  expect(Object.keys(ours.labels)).toEqual([...names]);
  for (const name of names) cmp(ours.labels[name]!, sk[name]!, `${what} ${name}`);
  cmp(ours.micro, sk['micro avg']!, `${what} micro`);
  cmp(ours.macro, sk['macro avg']!, `${what} macro`);
  cmp(ours.weighted, sk['weighted avg']!, `${what} weighted`);
  cmp(ours.samples, sk['samples avg']!, `${what} samples`);
  return compared;
}

describe(`CheXbert F1 vs sklearn ${v.sklearn} classification_report(zero_division=0) and scipy ${v.scipy} bootstrap (numpy ${v.numpy}), ${n} synthetic studies`, () => {
  const result = chexbertF1(golden.references as never, golden.predictions as never);

  it('the label set exercises all four classes and conditions that are never positive', () => {
    expect(golden.conditions).toEqual([...CHEXBERT_CONDITIONS]);
    expect(golden.conditions5).toEqual([...CHEXBERT_CONDITIONS_5]);
    expect(n).toBeGreaterThanOrEqual(300);
    const seen = new Set(golden.references.flat().concat(golden.predictions.flat()));
    expect([...seen].sort()).toEqual([0, 1, 2, 3]);
    expect(golden.reports.f14['Pleural Other']!.support).toBe(0);
    expect(golden.reports.f14['Fracture']!.support).toBe(0);
  });

  it('per-label precision / recall / F1 / support and micro / macro / weighted / samples averages, 14 and 5, both conventions, to 1e-12', () => {
    let compared = 0;
    compared += compareReport(result.reports.f14, golden.reports.f14, CHEXBERT_CONDITIONS, 'f14');
    compared += compareReport(result.reports.f5, golden.reports.f5, CHEXBERT_CONDITIONS_5, 'f5');
    compared += compareReport(result.reports['f14+'], golden.reports['f14+'], CHEXBERT_CONDITIONS, 'f14+');
    compared += compareReport(result.reports['f5+'], golden.reports['f5+'], CHEXBERT_CONDITIONS_5, 'f5+');
    expect(compared).toBe(4 * (14 + 4) * 2 + 4 * (5 + 4) * 2);
  });

  it(`bootstrap (${golden.n_resamples} resamples of ${n} studies): median and 95% CI equal to scipy to 4 decimals, the whole distribution to 1e-12`, () => {
    for (const key of ['f14', 'f5', 'f14+', 'f5+'] as const) {
      for (const avg of ['micro', 'macro'] as const) {
        const sk = golden.reports[key][`${avg} avg`]!;
        const bs = result.reports[key][avg].bootstrap!;
        const w = `${key} ${avg}`;
        expect(bs.median.toFixed(4), `${w} median`).toBe(sk.median!.toFixed(4));
        expect(bs.ci[0].toFixed(4), `${w} ci_l`).toBe(sk.ci_l!.toFixed(4));
        expect(bs.ci[1].toFixed(4), `${w} ci_h`).toBe(sk.ci_h!.toFixed(4));
        close(bs.median, sk.median!, 1e-12, `${w} median`);
        close(bs.ci[0], sk.ci_l!, 1e-12, `${w} ci_l`);
        close(bs.ci[1], sk.ci_h!, 1e-12, `${w} ci_h`);
        close(bs.standardError, sk.standard_error!, 1e-12, `${w} standard error`);
        // the distribution itself, resample by resample
        const yTrue = binaryMatrix(golden.references.map((r) => normalizeChexbertLabels(r)), key.endsWith('+') ? 'rrg+' : 'rrg', key.startsWith('f14') ? CHEXBERT_CONDITIONS.map((_, i) => i) : CHEXBERT_CONDITIONS_5.map((c) => CHEXBERT_CONDITIONS.indexOf(c)));
        const yPred = binaryMatrix(golden.predictions.map((r) => normalizeChexbertLabels(r)), key.endsWith('+') ? 'rrg+' : 'rrg', key.startsWith('f14') ? CHEXBERT_CONDITIONS.map((_, i) => i) : CHEXBERT_CONDITIONS_5.map((c) => CHEXBERT_CONDITIONS.indexOf(c)));
        const dist = scipyBootstrap(n, (idx) => averageF1(yTrue, yPred, avg, idx)).distribution;
        expect(dist.length).toBe(sk.bootstrap_distribution!.length);
        dist.forEach((x, k) => close(x, sk.bootstrap_distribution![k]!, 1e-12, `${w} resample ${k}`));
      }
    }
    expect(Object.keys(result.summary)).toEqual(['Micro-F1-14', 'Macro-F1-14', 'Micro-F1-5', 'Macro-F1-5', 'Micro-F1-14+', 'Macro-F1-14+', 'Micro-F1-5+', 'Macro-F1-5+']);
    expect(result.summary['Micro-F1-5+'].median).toBe(result.reports['f5+'].micro.bootstrap!.median);
    expect(result.summary['Macro-F1-14'].f1).toBe(result.reports.f14.macro.f1);
  });

  it('bootstrap: 0 gives the reports without intervals; labels by name / object / null are the same classes', () => {
    const r0 = chexbertF1(golden.references.slice(0, 20) as never, golden.predictions.slice(0, 20) as never, { bootstrap: 0 });
    expect(r0.bootstrap).toBe(0);
    expect(r0.reports.f14.micro.bootstrap).toBeUndefined();
    expect(r0.summary['Micro-F1-14'].median).toBeUndefined();
    const names = ['blank', 'positive', 'negative', 'uncertain'] as const;
    const byName = golden.references.slice(0, 20).map((r) => r.map((c) => (c === 0 ? null : names[c]!)));
    const byObject = golden.predictions.slice(0, 20).map((r) => Object.fromEntries(r.map((c, i) => [CHEXBERT_CONDITIONS[i], names[c]!.toUpperCase()]).filter(([, c]) => c !== 'BLANK')));
    expect(chexbertF1(byName as never, byObject as never, { bootstrap: 0 })).toEqual(r0);
  });

  it('typed errors for bad labels and shapes', () => {
    const ok = golden.references[0]!;
    expect(() => chexbertF1([ok], [ok, ok] as never)).toThrow(/same studies/);
    expect(() => chexbertF1([ok.slice(1)] as never, [ok] as never)).toThrow(/14 CheXbert labels/);
    expect(() => chexbertF1([[...ok.slice(0, 13), -1]] as never, [ok] as never, { bootstrap: 0 })).toThrow(/references\[0\]\[13\] \(No Finding\)/);
    expect(() => chexbertF1([{ Cardiomegally: 1 }] as never, [ok] as never)).toThrow(/Cardiomegally/);
    expect(() => chexbertF1([ok, ok] as never, [ok, ok] as never, { bootstrap: 1 })).toThrow(/bootstrap/);
    expect(() => chexbertF1([], [])).toThrow(/no studies/);
    try {
      chexbertF1([ok], [ok], { bootstrap: 'many' as never });
      expect.unreachable();
    } catch (e) {
      expect((e as { code?: string }).code).toBe('INVALID_ARGUMENT');
    }
  });
});

describe(`scipy.stats.bootstrap resampling vs scipy ${boot.versions.scipy}`, () => {
  for (const c of boot.indices) {
    it(`indices for n=${c.n}, ${c.n_resamples} resamples${c.batch ? `, batch=${c.batch}` : ''} equal scipy's (recorded inside the statistic), and the percentile CI`, () => {
      const idx = scipyBootstrapIndices(c.n, { nResamples: c.n_resamples, ...(c.batch ? { batch: c.batch } : {}) });
      const rows = Array.from({ length: c.n_resamples }, (_, k) => Array.from(idx.subarray(k * c.n, (k + 1) * c.n)));
      expect(rows).toEqual(c.indices);
      const bs = scipyBootstrap(c.n, (i) => numpyMean(Float64Array.from(i)), { nResamples: c.n_resamples });
      Array.from(bs.distribution).forEach((x, k) => close(x, c.distribution[k]!, 1e-12, `resample ${k}`));
      close(bs.ci.low, c.ci_l, 1e-12, 'ci_l');
      close(bs.ci.high, c.ci_h, 1e-12, 'ci_h');
    });
  }

  it(`RadGraph's statistic (np.mean(rewards[indices], axis=0)[0]), ${boot.radgraph.rewards.length} studies x 500 resamples: median and CI to 4 decimals, distribution to 1e-12`, () => {
    const col = boot.radgraph.rewards.map((r) => r[0]!);
    const bs = scipyBootstrap(col.length, radgraphMeanStatistic(col));
    expect(bs.median.toFixed(4)).toBe(boot.radgraph.median.toFixed(4));
    expect(bs.ci.low.toFixed(4)).toBe(boot.radgraph.ci_l.toFixed(4));
    expect(bs.ci.high.toFixed(4)).toBe(boot.radgraph.ci_h.toFixed(4));
    close(bs.median, boot.radgraph.median, 1e-12, 'median');
    Array.from(bs.distribution).forEach((x, k) => close(x, boot.radgraph.distribution[k]!, 1e-12, `resample ${k}`));
  });

  it('pairwiseSum is numpy\'s blocked summation (differs from a running sum where numpy does)', () => {
    const x = Array.from({ length: 300 }, (_, i) => 1 / (i + 1) + (i % 7) * 1e-3);
    expect(pairwiseSum(x)).toBe(pairwiseSum(x.slice(0, 144)) + pairwiseSum(x.slice(144)));
    expect(pairwiseSum([1, 2, 3])).toBe(6);
  });

  it('is exported from the package entry point', () => {
    expect(typeof lib.chexbertF1).toBe('function');
    expect(typeof lib.scipyBootstrap).toBe('function');
    expect(typeof lib.renderEvalHtml).toBe('function');
  });
});
