// DyGIE's decoding (radgraph/dygie/models/{ner,relation,entity_beam_pruner}.py) and radgraph's annotation
// dict (radgraph/utils.py get_entity), on the scores the engine computed.

import type { RadgraphAnnotation, RadgraphEntity } from '../eval/radgraph-reward.js';

/** every span of 1..maxWidth words, start-major then end (allennlp enumerate_spans), end inclusive */
export function enumerateSpans(nWords: number, maxWidth: number): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (let s = 0; s < nWords; s++) for (let e = s; e < Math.min(s + maxWidth, nWords); e++) spans.push([s, e]);
  return spans;
}

/** ceil(words x spans_per_word) in float32 as torch computes it, at least 1: how many spans the pruner keeps */
export function keptSpanCount(nWords: number, spansPerWord: number): number {
  return Math.max(Math.ceil(Math.fround(Math.fround(nWords) * Math.fround(spansPerWord))), 1);
}

/**
 * the spans kept for relations: ceil(words x spans_per_word) computed in float32 as torch does
 * (sentence_lengths.float() * spans_per_word), the highest mention scores (ties: the earlier span), returned
 * in span order (the pruner sorts the kept indices)
 */
export function pruneSpans(mention: Float32Array, nWords: number, spansPerWord: number): number[] {
  const keep = Math.min(keptSpanCount(nWords, spansPerWord), mention.length);
  const order = Array.from(mention.keys()).sort((a, b) => mention[b]! - mention[a]! || a - b);
  return order.slice(0, keep).sort((a, b) => a - b);
}

/** argmax over [0 (the null class), ...scores]: 0 for null, else 1 + the scored class; the first maximum wins */
function argmaxWithNull(scores: Float32Array, offset: number, n: number): number {
  let best = 0;
  let bestScore = 0;
  for (let k = 0; k < n; k++) {
    const v = scores[offset + k]!;
    if (v > bestScore) { bestScore = v; best = k + 1; }
  }
  return best;
}

export interface PredictedNer { start: number; end: number; label: string }
export interface PredictedRelation { start1: number; end1: number; start2: number; end2: number; label: string }

/** NERTagger.predict: every span whose best class is not null, in span order */
export function decodeNer(spans: ReadonlyArray<[number, number]>, ner: Float32Array, labels: readonly string[]): PredictedNer[] {
  const L = labels.length - 1;
  const out: PredictedNer[] = [];
  spans.forEach(([start, end], i) => {
    const c = argmaxWithNull(ner, i * L, L);
    if (c !== 0) out.push({ start, end, label: labels[c]! });
  });
  return out;
}

/** RelationExtractor._predict_sentence: every ordered pair (i, j) of kept spans, row-major, whose best class is not null */
export function decodeRelations(top: ReadonlyArray<[number, number]>, scores: Float32Array, labels: readonly string[]): PredictedRelation[] {
  const K = top.length;
  const R = labels.length;
  const out: PredictedRelation[] = [];
  for (let i = 0; i < K; i++) {
    for (let j = 0; j < K; j++) {
      const c = argmaxWithNull(scores, (i * K + j) * R, R);
      if (c !== 0) out.push({ start1: top[i]![0], end1: top[i]![1], start2: top[j]![0], end2: top[j]![1], label: labels[c - 1]! });
    }
  }
  return out;
}

/**
 * radgraph's get_entity: entities keyed "1", "2", ... in NER order; an entity's relations are the predicted
 * relations whose first span is its span, in prediction order, pointing at the entity whose span is the
 * second one (relations to a span that is not an entity are dropped)
 */
export function annotation(words: readonly string[], ner: readonly PredictedNer[], relations: readonly PredictedRelation[]): RadgraphAnnotation {
  // both lookups hashed by span: a scan per entity made this cubic in the words (relations grow with their square)
  const spanKey = (s: number, e: number) => `${s},${e}`;
  const firstEntity = new Map<string, number>();
  ner.forEach((n, idx) => {
    const k = spanKey(n.start, n.end);
    if (!firstEntity.has(k)) firstEntity.set(k, idx);
  });
  const fromSpan = new Map<string, PredictedRelation[]>();
  for (const r of relations) {
    const k = spanKey(r.start1, r.end1);
    const list = fromSpan.get(k);
    if (list) list.push(r);
    else fromSpan.set(k, [r]);
  }
  const entities: Record<string, RadgraphEntity> = {};
  ner.forEach((n, idx) => {
    const rels: Array<[string, string]> = [];
    for (const r of fromSpan.get(spanKey(n.start, n.end)) ?? []) {
      const target = firstEntity.get(spanKey(r.start2, r.end2));
      if (target !== undefined) rels.push([r.label, String(target + 1)]);
    }
    entities[String(idx + 1)] = { tokens: words.slice(n.start, n.end + 1).join(' '), label: n.label, start_ix: n.start, end_ix: n.end, relations: rels };
  });
  return { text: words.join(' '), entities, data_source: null, data_split: 'inference' };
}
