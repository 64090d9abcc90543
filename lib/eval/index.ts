// `llava-rad eval` as a library: the official LLaVA-Rad evaluation's report metrics (BLEU-1, BLEU-4,
// ROUGE-L with the official bootstrap), a paired bootstrap of two systems, the CheXbert F1 scoring (from
// CheXbert labels) with scipy.stats.bootstrap as the official code calls it, the chexbert metric and
// SembScore (CheXbert's labeler run on the texts), and the HTML report.

export {
  evaluate,
  EVAL_METRICS,
  DEFAULT_METRICS,
  DEFAULT_BOOTSTRAP,
  type EvalMetric,
  type EvalOptions,
  type EvalResult,
  type MetricResult,
  type BleuResult,
  type RougeResult,
} from './evaluate.js';
export {
  cosineSimilarity,
  type ChexbertSource,
  type ChexbertMetricResult,
  type ChexbertMetricOptions,
  type SembScoreResult,
} from './chexbert-metric.js';
export { evaluatePaired, type PairedResult, type PairedMetric } from './paired.js';
export type { EvalRecord } from './read-predictions.js';
export {
  chexbertF1,
  classificationReport,
  averageF1,
  binaryMatrix,
  normalizeChexbertLabels,
  toBinary,
  CHEXBERT_CONDITIONS,
  CHEXBERT_CONDITIONS_5,
  CHEXBERT_CLASS,
  CHEXBERT_SUMMARY_KEYS,
  type ChexbertF1Result,
  type ChexbertF1Options,
  type ChexbertLabels,
  type ChexbertLabelValue,
  type ChexbertClass,
  type ChexbertCondition,
  type ChexbertSummaryKey,
  type ChexbertSummaryScore,
  type ClassificationReport,
  type LabelScores,
  type AverageScores,
  type BinaryMatrix,
  type BinaryMode,
} from './chexbert-f1.js';
export {
  scipyBootstrap,
  scipyBootstrapIndices,
  radgraphMeanStatistic,
  pairwiseSum,
  numpyMean,
  numpyMedian,
  numpyStd,
  SCIPY_BOOTSTRAP_SEED,
  SCIPY_BOOTSTRAP_RESAMPLES,
  type ScipyBootstrapOptions,
  type ScipyBootstrapResult,
} from './scipy-bootstrap.js';
export { renderEvalHtml, escapeHtml, type EvalHtmlInput, type EvalHtmlStudy } from './html-report.js';
export {
  radgraphF1,
  radgraphReward,
  radgraphRewards,
  RADGRAPH_ENTITY_LABELS,
  RADGRAPH_RELATION_TYPES,
  RADGRAPH_REWARD_LEVELS,
  type RadgraphAnnotation,
  type RadgraphEntity,
  type RadgraphReward,
  type RadgraphRewardLevel,
  type RadgraphRewardOptions,
  type RadgraphF1Options,
  type RadgraphF1Result,
} from './radgraph-reward.js';
export {
  chexpromptJudge,
  summarizeChexprompt,
  loadChexpromptTemplate,
  parseChexpromptCompletion,
  ChatClient,
  CHEXPROMPT_PARAMS,
  type ChexpromptJudgeOptions,
  type ChexpromptResult,
  type ChexpromptStudy,
  type ChexpromptSummary,
  type JudgeRecord,
} from './judge/index.js';
export {
  scoreGreen,
  summarizeGreen,
  loadGreenPrompt,
  makeGreenPrompt,
  greenCounts,
  greenScoreOf,
  cleanGreenResponse,
  GREEN_MAX_LENGTH,
  GREEN_SUB_CATEGORIES,
  type GreenOptions,
  type GreenResult,
  type GreenStudy,
  type GreenPrompt,
  type GreenCounts,
} from './green/index.js';
