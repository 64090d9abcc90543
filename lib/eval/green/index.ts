// GREEN on our engine (lib/eval/green/): prompt, parsing, scoring.
export {
  GREEN_ASSISTANT_TAG, GREEN_DEFAULT_MAX_WORDS, GREEN_MAX_LENGTH, GREEN_MODULE_PATHS, GREEN_USER_TAG,
  greenChatPieces, loadGreenPrompt, makeGreenPrompt, type GreenPrompt,
} from './green-prompt.js';
export {
  GREEN_CATEGORIES, GREEN_SUB_CATEGORIES, cleanGreenResponse, greenCategoryCounts, greenCounts, greenScoreOf, greenSection,
  hfCleanUpTokenization, pyInt, type GreenCategory, type GreenCounts,
} from './green-parse.js';
export { greenPromptTokens, scoreGreen, summarizeGreen, type GreenOptions, type GreenResult, type GreenStudy } from './green.js';
