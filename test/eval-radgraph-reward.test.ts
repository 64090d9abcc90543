// The RadGraph reward (simple / partial / complete, case-sensitive and lowercase) and the official
// F1-RadGraph with its scipy bootstrap, against the official code's own outputs on synthetic annotations
// (test/fixtures/radgraph/reward-golden.json, made by scripts/make-radgraph-fixtures.py, which runs
// LLaVA-Rad's f1radgraph.py F1RadGraphv2.forward / bootstrap_confidence_interval and radgraph's rewards.py).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  radgraphF1, radgraphReward, radgraphRewards, RADGRAPH_REWARD_LEVELS, type RadgraphAnnotation, type RadgraphReward, type RadgraphRewardLevel,
} from '../lib/eval/radgraph-reward.js';

interface LevelGolden {
  rewards: Array<[number, number, number]>;
  mean: RadgraphReward;
  bootstrap: { median: number; ci_l: number; ci_h: number; standard_error: number };
  upstream_f1?: number[];
  upstream_mean?: number;
}
interface Golden {
  versions: Record<string, string>;
  sources: Record<string, string>;
  n_resamples: number;
  pairs: Array<{ ref: RadgraphAnnotation | null; hyp: RadgraphAnnotation | null }>;
  levels: Record<RadgraphRewardLevel, LevelGolden>;
  lowercase: Record<RadgraphRewardLevel, LevelGolden>;
}
const golden = JSON.parse(readFileSync(new URL('./fixtures/radgraph/reward-golden.json', import.meta.url), 'utf8')) as Golden;
const refs = golden.pairs.map((p) => p.ref);
const hyps = golden.pairs.map((p) => p.hyp);
const n = golden.pairs.length;
const v = golden.versions;

const close = (a: number, b: number, tol: number, what: string) => expect(Math.abs(a - b), `${what}: ${a} vs ${b}`).toBeLessThanOrEqual(tol);
const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

function comparePerReport(level: RadgraphRewardLevel, lowercase: boolean, g: LevelGolden): number {
  let compared = 0;
  for (let i = 0; i < n; i++) {
    const ours = radgraphReward(hyps[i]!, refs[i]!, { rewardLevel: level, lowercase });
    const [f1, p, r] = g.rewards[i]!;
    close(ours.f1, f1, 1e-12, `${level}${lowercase ? ' lowercase' : ''} report ${i} f1`);
    close(ours.precision, p, 1e-12, `${level}${lowercase ? ' lowercase' : ''} report ${i} precision`);
    close(ours.recall, r, 1e-12, `${level}${lowercase ? ' lowercase' : ''} report ${i} recall`);
    compared++;
  }
  return compared;
}

describe(`RadGraph reward vs ${golden.sources.llavarad} (numpy ${v.numpy}, scipy ${v.scipy}), ${n} synthetic annotation pairs`, () => {
  it('the pairs cover empty reports, reports without entities, relations, duplicates and case variants', () => {
    expect(n, 'pairs').toBeGreaterThanOrEqual(300);
    const empty = golden.pairs.filter((p) => p.ref === null || p.hyp === null).length;
    const noEntities = golden.pairs.filter((p) => p.ref && p.hyp && (Object.keys(p.ref.entities).length === 0 || Object.keys(p.hyp.entities).length === 0)).length;
    const withRelations = golden.pairs.filter((p) => p.ref && Object.values(p.ref.entities).some((e) => e.relations.length > 1)).length;
    expect(empty, 'pairs with an empty report').toBeGreaterThanOrEqual(5);
    expect(noEntities, 'pairs with an entity-less side').toBeGreaterThanOrEqual(5);
    expect(withRelations, 'references with an entity of several relations').toBeGreaterThanOrEqual(20);
    // the lowercase variant changes rewards somewhere at every level
    for (const level of RADGRAPH_REWARD_LEVELS) {
      const differing = golden.levels[level].rewards.filter((r, i) => r[0] !== golden.lowercase[level].rewards[i]![0]).length;
      expect(differing, `${level}: reports whose F1 changes when lowercased`).toBeGreaterThan(0);
    }
  });

  for (const level of RADGRAPH_REWARD_LEVELS) {
    it(`${level}: every report's (F1, precision, recall) within 1e-12 of compute_reward (case-sensitive)`, () => {
      const compared = comparePerReport(level, false, golden.levels[level]);
      expect(compared, `${level}: ${compared} of ${n} reports compared (3 values each)`).toBe(n);
    });

    it(`${level}: every report's reward within 1e-12 of radgraph's lowercased rewards (lowercase: true)`, () => {
      const g = golden.lowercase[level];
      const compared = comparePerReport(level, true, g);
      expect(compared, `${level} lowercase: ${compared} of ${n} reports compared (3 values each)`).toBe(n);
      // the F1s also equal upstream radgraph's own compute_reward (b5ab8d0), which returns the F1 only
      let upstream = 0;
      for (let i = 0; i < n; i++) {
        close(radgraphReward(hyps[i]!, refs[i]!, { rewardLevel: level, lowercase: true }).f1, g.upstream_f1![i]!, 1e-12, `${level} upstream report ${i}`);
        upstream++;
      }
      expect(upstream, `${level}: ${upstream} of ${n} upstream F1s compared`).toBe(n);
    });

    it(`${level}: corpus F1 / precision / recall (np.mean(reward_list, axis=0)) and the bootstrap, case-sensitive and lowercase`, () => {
      for (const lowercase of [false, true]) {
        const g = lowercase ? golden.lowercase[level] : golden.levels[level];
        const what = `${level}${lowercase ? ' lowercase' : ''} over ${n} reports`;
        const { mean } = radgraphRewards(refs, hyps, { rewardLevel: level, lowercase });
        close(mean.f1, g.mean.f1, 1e-12, `${what} mean f1`);
        close(mean.precision, g.mean.precision, 1e-12, `${what} mean precision`);
        close(mean.recall, g.mean.recall, 1e-12, `${what} mean recall`);
        if (lowercase) close(mean.f1, g.upstream_mean!, 1e-12, `${what} upstream np.mean`);
        const res = radgraphF1(refs, hyps, { rewardLevel: level, lowercase });
        expect(res.n, what).toBe(n);
        expect(res.bootstrap, what).toBe(golden.n_resamples);
        expect(res.f1, `${what} result f1`).toBe(mean.f1);
        const bs = res.resampled!;
        expect(round4(bs.median), `${what}: bootstrap median (500 resamples of ${n}) to 4 decimals`).toBe(round4(g.bootstrap.median));
        expect(round4(bs.ci[0]), `${what}: ci low to 4 decimals`).toBe(round4(g.bootstrap.ci_l));
        expect(round4(bs.ci[1]), `${what}: ci high to 4 decimals`).toBe(round4(g.bootstrap.ci_h));
        // in fact far closer: same resamples, sums in the same order
        close(bs.median, g.bootstrap.median, 1e-12, `${what} median`);
        close(bs.ci[0], g.bootstrap.ci_l, 1e-12, `${what} ci low`);
        close(bs.ci[1], g.bootstrap.ci_h, 1e-12, `${what} ci high`);
        close(bs.standardError, g.bootstrap.standard_error, 1e-12, `${what} standard error`);
      }
    });
  }

  it('the default is the official call: partial, case-sensitive, 500 resamples', () => {
    const res = radgraphF1(refs, hyps);
    expect(res.rewardLevel).toBe('partial');
    expect(res.lowercase).toBe(false);
    close(res.f1, golden.levels.partial.mean.f1, 1e-12, `partial mean over ${n} reports`);
    close(res.resampled!.median, golden.levels.partial.bootstrap.median, 1e-12, `partial median over ${n} reports`);
    expect(radgraphF1(refs, hyps, { bootstrap: 0 }).resampled, 'bootstrap: 0').toBeUndefined();
  });

  it('hand-made cases: sets, relation tuples, case and empty reports', () => {
    const ann = (entities: Record<string, { tokens: string; label: string; relations?: Array<[string, string]> }>): RadgraphAnnotation => ({
      entities: Object.fromEntries(Object.entries(entities).map(([k, e]) => [k, { ...e, relations: e.relations ?? [] }])),
    });
    const ref = ann({ 1: { tokens: 'pleural', label: 'ANAT-DP' }, 2: { tokens: 'effusion', label: 'OBS-DA', relations: [['located_at', '1']] } });
    const hyp = ann({ 7: { tokens: 'effusion', label: 'OBS-DA', relations: [['located_at', '8']] }, 8: { tokens: 'Pleural', label: 'ANAT-DP' }, 9: { tokens: 'Pleural', label: 'ANAT-DP' } });
    // simple: hyp {(effusion, OBS-DA), (Pleural, ANAT-DP)} vs ref {(pleural, ANAT-DP), (effusion, OBS-DA)}: 1 of 2 each way
    expect(radgraphReward(hyp, ref, { rewardLevel: 'simple' })).toEqual({ f1: 0.5, precision: 0.5, recall: 0.5 });
    expect(radgraphReward(hyp, ref, { rewardLevel: 'simple', lowercase: true })).toEqual({ f1: 1, precision: 1, recall: 1 });
    // complete: the relation tuple lowercases both ends even case-sensitively; the relation-less entity does not
    expect(radgraphReward(hyp, ref, { rewardLevel: 'complete' })).toEqual({ f1: 0.5, precision: 0.5, recall: 0.5 });
    expect(radgraphReward(null, ref)).toEqual({ f1: 0, precision: 0, recall: 0 });
    expect(radgraphReward(ann({}), ref)).toEqual({ f1: 0, precision: 0, recall: 0 });
    const dangling = ann({ 1: { tokens: 'effusion', label: 'OBS-DA', relations: [['located_at', '5']] } });
    // partial never looks the target up: {(effusion, OBS-DA, True)} vs the reference's two tuples
    expect(radgraphReward(dangling, ref, { rewardLevel: 'partial' })).toEqual({ f1: 2 / 3, precision: 1, recall: 0.5 });
    expect(() => radgraphReward(dangling, ref, { rewardLevel: 'complete' })).toThrow(/does not exist/);
    expect(() => radgraphReward(hyp, ref, { rewardLevel: 'all' as never })).toThrow(/rewardLevel/);
    expect(() => radgraphRewards([ref], [hyp, hyp])).toThrow(/same reports/);
    expect(() => radgraphF1([ref], [hyp])).toThrow(/two reports/);
    expect(radgraphF1([ref], [hyp], { bootstrap: 0 }).f1).toBe(radgraphReward(hyp, ref).f1);
  });
});
