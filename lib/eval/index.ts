// `llava-rad eval` as a library: the official LLaVA-Rad evaluation's report metrics (BLEU-1, BLEU-4,
// ROUGE-L with the official bootstrap) and a paired bootstrap of two systems.

export {
  evaluate,
  EVAL_METRICS,
  DEFAULT_BOOTSTRAP,
  type EvalMetric,
  type EvalOptions,
  type EvalResult,
  type MetricResult,
  type BleuResult,
  type RougeResult,
} from './evaluate.js';
export { evaluatePaired, type PairedResult, type PairedMetric } from './paired.js';
export type { EvalRecord } from './read-predictions.js';
