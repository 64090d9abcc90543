// LLM judges of generated reports over an OpenAI-compatible chat endpoint: CheXprompt (GREEN comes later).
export { ChatClient, chatEndpoint, parseRetryAfter, type ChatClientOptions, type ChatCompletion, type ChatMessage, type ChatParams, type ChatProvider, type ChatRetryInfo } from './chat-client.js';
export { RateLimiter, type RateLimiterOptions } from './rate-limit.js';
export {
  CHEXPROMPT_ERROR_NAMES, CHEXPROMPT_ERROR_TYPES, parseChexpromptCompletion, parseErrorTuples, totalErrors,
  type ChexpromptCounts, type ChexpromptErrorType, type ChexpromptRating,
} from './chexprompt-parse.js';
export { CHEXPROMPT_MODULE_PATHS, chexpromptMessages, loadChexpromptTemplate, type ChexpromptTemplate } from './chexprompt-template.js';
export {
  CHEXPROMPT_PARAMS, CHEXPROMPT_RATING_RETRIES, CHEXPROMPT_RPM, chexpromptJudge, summarizeChexprompt,
  type ChexpromptJudgeOptions, type ChexpromptResult, type ChexpromptStudy, type ChexpromptSummary, type JudgeRecord, type MeanWithCi,
} from './chexprompt.js';
