// The RadGraph reward ("RadGraph F1") of the official LLaVA-Rad evaluation, from RadGraph annotations
// already computed (the RadGraph model itself is elsewhere).
//
// The official scorer is microsoft/LLaVA-Rad llava/eval/rrg_eval/rrg_eval/f1radgraph.py: F1RadGraphv2, a
// subclass of radgraph 0.0.9's F1RadGraph whose forward() and compute_reward() are its own copy, called by
// run.py as `F1RadGraphv2(reward_level="partial", batch_size=1)(hyps=predictions, refs=references)`. Only
// the annotations come from the radgraph package. What that copy does, per report:
//
// - the report text is "" (hypothesis or reference): reward (0, 0, 0), the report is not annotated;
// - either annotation has no entity: (0, 0, 0);
// - else each side becomes a *set* of tuples, one or more per entity, and
//   precision = |hyp ∩ ref| / |hyp|, recall = |ref ∩ hyp| / |ref|, F1 = 2 * p * r / (p + r) (0 where p + r = 0):
//     simple:   (tokens, label) for every entity;
//     partial:  (tokens, label) for an entity without relations, (tokens, label, True) for one with any;
//     complete: (tokens, label) for an entity without relations, and for one with relations one tuple per
//               relation (tokens.lower(), label, relation, target entity's tokens.lower()), none without.
//   `tokens` is the entity's words joined by one space, compared case-sensitively except where .lower()
//   is written above (the official copy, and radgraph up to 0.1.18). Stanford-AIMI/radgraph b5ab8d0 (2026,
//   "Fix case-sensitivity bug") lowercases the tokens of every tuple: `lowercase: true`.
//   Duplicates collapse (sets); entity keys and order do not matter, except as relation targets.
// - reward_level "partial" (etc.) gives per report the tuple (F1, precision, recall); the corpus value is
//   `np.mean(reward_list, axis=0)` of the (n, 3) array, i.e. per column the sum over reports in order, then
//   / n ({'f1-radgraph', 'precision-radgraph', 'recall-radgraph'}); empty reports count as zeros.
// - bootstrap (run.py radgraph(..., bootstrap_ci=True)): scipy.stats.bootstrap over report indices of
//   `np.mean(rewards[indices], axis=0)[0]` (the F1 column; percentile, 500 resamples, random_state=3),
//   reported as np.median(bootstrap_distribution) and confidence_interval.low / .high.
// - reward_level "all" is not reproduced: there compute_reward returns three (f, p, r) tuples but empty
//   reports (0., 0., 0.), so forward's np.mean fails on the ragged list whenever a report is empty.
// The upstream package's own F1RadGraph (0.0.9 to 0.1.18) returns the F1 only, with np.mean of the 1-D F1
// list (pairwise sum: may differ from the row sum here in the last bits).
//
// Annotation shape: what `RadGraph(...)(reports)` returns per report (radgraph/utils.py postprocess_reports
// and get_entity):
//
//   { "text": "no pleural effusion", "data_source": null, "data_split": "inference",
//     "entities": { "1": { "tokens": "pleural", "label": "ANAT-DP", "start_ix": 1, "end_ix": 1, "relations": [] },
//                   "2": { "tokens": "effusion", "label": "OBS-DA", "start_ix": 2, "end_ix": 2,
//                          "relations": [["located_at", "1"]] } } }
//
// entities are keyed "1", "2", ... in the model's span order; `tokens` is the span's words joined by " ";
// label is ANAT-DP, OBS-DP, OBS-U or OBS-DA; relations are [type, target key] with type located_at,
// suggestive_of or modify. Only tokens, label and relations are read here. A report whose text was empty
// (never annotated) is given as null.

import { describeValue, invalidArgument, LlavaRadError } from '../errors.js';
import { radgraphMeanStatistic, scipyBootstrap, SCIPY_BOOTSTRAP_RESAMPLES } from './scipy-bootstrap.js';

export const RADGRAPH_ENTITY_LABELS = ['ANAT-DP', 'OBS-DP', 'OBS-U', 'OBS-DA'] as const;
export const RADGRAPH_RELATION_TYPES = ['located_at', 'suggestive_of', 'modify'] as const;
export const RADGRAPH_REWARD_LEVELS = ['simple', 'partial', 'complete'] as const;
export type RadgraphRewardLevel = (typeof RADGRAPH_REWARD_LEVELS)[number];

export interface RadgraphEntity {
  /** the span's words joined by one space */
  tokens: string;
  /** ANAT-DP, OBS-DP, OBS-U or OBS-DA (any string is compared as given) */
  label: string;
  start_ix?: number;
  end_ix?: number;
  /** [relation type, target entity key] */
  relations: ReadonlyArray<readonly [string, string]>;
}

export interface RadgraphAnnotation {
  text?: string;
  entities: Readonly<Record<string, RadgraphEntity>>;
  data_source?: unknown;
  data_split?: unknown;
}

/** one report's reward, as the official tuple (F1, precision, recall) */
export interface RadgraphReward {
  f1: number;
  precision: number;
  recall: number;
}

export interface RadgraphRewardOptions {
  /** "simple", "partial" (the official evaluation's) or "complete"; default "partial" */
  rewardLevel?: RadgraphRewardLevel;
  /** lowercase every tuple's tokens (radgraph since b5ab8d0, 2026); default false, as the official copy */
  lowercase?: boolean;
}

export interface RadgraphF1Options extends RadgraphRewardOptions {
  /** bootstrap resamples (default 500, as the official evaluation; 0 = none) */
  bootstrap?: number;
}

export interface RadgraphF1Result extends RadgraphReward {
  n: number;
  rewardLevel: RadgraphRewardLevel;
  lowercase: boolean;
  /** resamples (0: none) */
  bootstrap: number;
  /** per report, in order */
  rewards: RadgraphReward[];
  /** run.py's F1-RadGraph with bootstrap_ci: median of the resampled mean F1s, the 95% percentile interval */
  resampled?: { median: number; ci: [number, number]; standardError: number };
}

const ZERO: RadgraphReward = Object.freeze({ f1: 0, precision: 0, recall: 0 });

function checkLevel(v: unknown): RadgraphRewardLevel {
  const level = v ?? 'partial';
  if (!(RADGRAPH_REWARD_LEVELS as readonly unknown[]).includes(level)) throw invalidArgument('rewardLevel', '"simple", "partial" or "complete"', level);
  return level as RadgraphRewardLevel;
}

function checkAnnotation(a: unknown, what: string): RadgraphAnnotation {
  if (a === null || typeof a !== 'object' || Array.isArray(a)) throw invalidArgument(what, 'a RadGraph annotation ({ entities: { ... } }) or null', a);
  const entities = (a as { entities?: unknown }).entities;
  if (entities === null || typeof entities !== 'object' || Array.isArray(entities)) throw invalidArgument(`${what}.entities`, 'an object keyed by entity id', entities);
  for (const [key, e] of Object.entries(entities)) {
    const w = `${what}.entities[${JSON.stringify(key)}]`;
    if (e === null || typeof e !== 'object') throw invalidArgument(w, 'an entity ({ tokens, label, relations })', e);
    const { tokens, label, relations } = e as Partial<RadgraphEntity>;
    if (typeof tokens !== 'string') throw invalidArgument(`${w}.tokens`, 'a string', tokens);
    if (typeof label !== 'string') throw invalidArgument(`${w}.label`, 'a string', label);
    if (!Array.isArray(relations)) throw invalidArgument(`${w}.relations`, 'an array of [type, target key]', relations);
    for (const r of relations as unknown[]) {
      if (!Array.isArray(r) || r.length < 2 || typeof r[0] !== 'string' || typeof r[1] !== 'string') {
        throw new LlavaRadError('INVALID_ARGUMENT', `${w}.relations has an entry that is not [type, target key]: ${describeValue(r)}`);
      }
    }
  }
  return a as RadgraphAnnotation;
}

// a tuple as a string key: JSON of the tuple's elements, so tuples of different lengths never collide
function tupleSet(ann: RadgraphAnnotation, level: RadgraphRewardLevel, lowercase: boolean, what: string): Set<string> {
  const out = new Set<string>();
  const tok = (s: string) => (lowercase ? s.toLowerCase() : s);
  for (const e of Object.values(ann.entities)) {
    const hasRel = e.relations.length > 0;
    if (level === 'simple' || !hasRel) out.add(JSON.stringify([tok(e.tokens), e.label]));
    else if (level === 'partial') out.add(JSON.stringify([tok(e.tokens), e.label, true]));
    else {
      for (const [rel, target] of e.relations) {
        // the official code indexes annotation["entities"][target] (a KeyError there)
        const t = Object.prototype.hasOwnProperty.call(ann.entities, target) ? ann.entities[target] : undefined;
        if (!t) throw new LlavaRadError('INVALID_ARGUMENT', `${what}: a relation of entity "${e.tokens}" points to entity ${JSON.stringify(target)}, which does not exist`);
        out.add(JSON.stringify([e.tokens.toLowerCase(), e.label, rel, t.tokens.toLowerCase()]));
      }
    }
  }
  return out;
}

function overlap(a: Set<string>, b: Set<string>): number {
  let k = 0;
  for (const x of a) if (b.has(x)) k++;
  return k;
}

/**
 * The official per-report reward (f1radgraph.py compute_reward) of one hypothesis against its reference;
 * null for a report whose text was empty.
 */
export function radgraphReward(hypothesis: RadgraphAnnotation | null, reference: RadgraphAnnotation | null, options: RadgraphRewardOptions = {}): RadgraphReward {
  if (options === null || typeof options !== 'object') throw invalidArgument('options', 'an object', options);
  const level = checkLevel(options.rewardLevel);
  const lowercase = options.lowercase ?? false;
  if (typeof lowercase !== 'boolean') throw invalidArgument('lowercase', 'a boolean', lowercase);
  return rewardOf(hypothesis, reference, level, lowercase, 'hypothesis', 'reference');
}

function rewardOf(hyp: unknown, ref: unknown, level: RadgraphRewardLevel, lowercase: boolean, hw: string, rw: string): RadgraphReward {
  if (hyp === null || hyp === undefined || ref === null || ref === undefined) return { ...ZERO };
  const h = checkAnnotation(hyp, hw);
  const r = checkAnnotation(ref, rw);
  if (Object.keys(h.entities).length === 0 || Object.keys(r.entities).length === 0) return { ...ZERO };
  const hs = tupleSet(h, level, lowercase, hw);
  const rs = tupleSet(r, level, lowercase, rw);
  const precision = hs.size > 0 ? overlap(hs, rs) / hs.size : 0;
  const recall = rs.size > 0 ? overlap(rs, hs) / rs.size : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { f1, precision, recall };
}

/** the per-report rewards and their mean (np.mean(reward_list, axis=0): a sum in report order, then / n) */
export function radgraphRewards(
  references: ReadonlyArray<RadgraphAnnotation | null>,
  hypotheses: ReadonlyArray<RadgraphAnnotation | null>,
  options: RadgraphRewardOptions = {},
): { rewards: RadgraphReward[]; mean: RadgraphReward } {
  if (!Array.isArray(references) || !Array.isArray(hypotheses)) throw invalidArgument('references and hypotheses', 'arrays of RadGraph annotations', Array.isArray(references) ? hypotheses : references);
  if (references.length !== hypotheses.length) throw new LlavaRadError('INVALID_ARGUMENT', `references (${references.length}) and hypotheses (${hypotheses.length}) must annotate the same reports`);
  if (references.length === 0) throw new LlavaRadError('INVALID_ARGUMENT', 'no reports to score');
  if (options === null || typeof options !== 'object') throw invalidArgument('options', 'an object', options);
  const level = checkLevel(options.rewardLevel);
  const lowercase = options.lowercase ?? false;
  if (typeof lowercase !== 'boolean') throw invalidArgument('lowercase', 'a boolean', lowercase);
  const rewards = references.map((r, i) => rewardOf(hypotheses[i], r, level, lowercase, `hypotheses[${i}]`, `references[${i}]`));
  let f = 0;
  let p = 0;
  let q = 0;
  for (const r of rewards) {
    f += r.f1;
    p += r.precision;
    q += r.recall;
  }
  const n = rewards.length;
  return { rewards, mean: { f1: f / n, precision: p / n, recall: q / n } };
}

/**
 * What the official evaluation reports as F1-RadGraph from the annotations of the references and of the
 * predictions (same order; null = an empty report): the mean F1 / precision / recall of
 * `F1RadGraphv2(reward_level)` and, unless bootstrap is 0, run.py's bootstrap median and 95% interval of
 * the mean F1 (scipy.stats.bootstrap, percentile, 500 resamples, random_state=3).
 */
export function radgraphF1(
  references: ReadonlyArray<RadgraphAnnotation | null>,
  predictions: ReadonlyArray<RadgraphAnnotation | null>,
  options: RadgraphF1Options = {},
): RadgraphF1Result {
  if (options === null || typeof options !== 'object') throw invalidArgument('options', 'an object', options);
  const B = options.bootstrap ?? SCIPY_BOOTSTRAP_RESAMPLES;
  if (typeof B !== 'number' || !Number.isInteger(B) || B < 0 || B === 1 || B > 100_000) throw invalidArgument('bootstrap', '0 (none) or an integer between 2 and 100000', B);
  const { rewards, mean } = radgraphRewards(references, predictions, options);
  const n = rewards.length;
  const result: RadgraphF1Result = { ...mean, n, rewardLevel: checkLevel(options.rewardLevel), lowercase: options.lowercase ?? false, bootstrap: B, rewards };
  if (B > 0) {
    if (n < 2) throw new LlavaRadError('INVALID_ARGUMENT', 'the bootstrap needs at least two reports (or bootstrap: 0)');
    const bs = scipyBootstrap(n, radgraphMeanStatistic(Float64Array.from(rewards, (r) => r.f1)), { nResamples: B });
    result.resampled = { median: bs.median, ci: [bs.ci.low, bs.ci.high], standardError: bs.standardError };
  }
  return result;
}
