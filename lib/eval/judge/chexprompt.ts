// CheXprompt (Zambrano Chaves et al., Nature Communications 2025; microsoft/chexprompt) against any
// OpenAI-compatible chat endpoint: per study, chexprompt's [system, user] prompt read from the user's
// chexprompt checkout, one chat completion with chexprompt's parameters, chexprompt's parser; a study whose
// answer does not parse is asked again `ratingRetries` times (chexprompt's max_retries, 1), then recorded as a
// per-study error. Over the corpus: the mean error counts per report with 95% bootstrap intervals (the paper's
// Fig. 4 reports means with bootstrap CIs), per error type, and the share of reports without a clinically
// significant error.

import { abortedError, invalidArgument, isLlavaRadError, LlavaRadError, type LlavaRadErrorCode } from '../../errors.js';
import { rougeBootstrap } from '../bootstrap.js';
import { RandomState } from '../numpy-random.js';
import { ChatClient, type ChatParams, type ChatRetryInfo } from './chat-client.js';
import {
  CHEXPROMPT_ERROR_NAMES, parseChexpromptCompletion, totalErrors, type ChexpromptErrorType, type ChexpromptRating,
} from './chexprompt-parse.js';
import { chexpromptMessages, loadChexpromptTemplate } from './chexprompt-template.js';

/** chexprompt's ReportEvaluator defaults (its rate_reports.py script uses temperature 0.4 and top_p 0.95) */
export const CHEXPROMPT_PARAMS: Readonly<Required<Pick<ChatParams, 'temperature' | 'max_tokens' | 'top_p' | 'frequency_penalty' | 'presence_penalty'>>> = {
  temperature: 0,
  max_tokens: 128,
  top_p: 0.9,
  frequency_penalty: 0,
  presence_penalty: 0,
};
/** chexprompt's requests_per_minute default */
export const CHEXPROMPT_RPM = 30;
/** chexprompt's max_retries default: extra requests for a study whose answer does not parse */
export const CHEXPROMPT_RATING_RETRIES = 1;

/** one study to judge: the reference and the generated report (`prediction`, or `findings` as `batch` writes) */
export interface JudgeRecord {
  id?: string;
  reference?: string;
  prediction?: string;
  findings?: string;
}

export interface ChexpromptJudgeOptions {
  /** the chat endpoint (see ChatClient: OpenAI base URL, llama-server's /v1, or an Azure OpenAI endpoint) */
  url: string;
  /** the model, or the Azure deployment */
  model: string;
  /** a clone of microsoft/chexprompt (its src/chexprompt/evaluator.py holds the prompt) */
  chexpromptDir: string;
  /** Azure OpenAI api-version (selects Azure) */
  apiVersion?: string;
  /** requests in flight (default 4) */
  concurrency?: number;
  /** requests per minute (default 30, chexprompt's) */
  rpm?: number;
  signal?: AbortSignal;
  /** after each study: done / total, and that study's result */
  onProgress?: (done: number, total: number, study: ChexpromptStudy) => void;
  /** before each HTTP retry (no key in it) */
  onRetry?: (info: ChatRetryInfo) => void;
  /** sampling parameters over chexprompt's (CHEXPROMPT_PARAMS) */
  params?: ChatParams;
  /** extra requests for an answer that does not parse (default 1, chexprompt's) */
  ratingRetries?: number;
  /** bootstrap resamples for the intervals (default 500; 0 for none) */
  bootstrap?: number;
  /** ChatClient's knobs: key, env, timeout, attempts, backoff, fetch */
  client?: Omit<ConstructorParameters<typeof ChatClient>[0], 'url' | 'model' | 'apiVersion' | 'rpm' | 'concurrency' | 'signal' | 'onRetry'>;
}

export interface ChexpromptStudy {
  index: number;
  id: string | undefined;
  /** the parsed rating (lists chexprompt could not parse are null); null when no answer came */
  rating: ChexpromptRating | null;
  /** the judge's last answer */
  text: string | undefined;
  /** chat requests made for this study (answers that did not parse included) */
  requests: number;
  /** why the study has no usable rating */
  error?: { code: LlavaRadErrorCode; message: string };
}

export interface MeanWithCi {
  /** mean over the rated studies */
  mean: number;
  /** 95% percentile bootstrap interval of the mean ([mean, mean] without bootstrap) */
  ci: [number, number];
}

export interface ChexpromptSummary {
  /** studies given */
  n: number;
  /** studies with both lists parsed (the aggregates are over these) */
  rated: number;
  /** studies without a usable rating */
  failed: number;
  /** clinically significant errors per report */
  significant: MeanWithCi;
  /** clinically insignificant errors per report */
  insignificant: MeanWithCi;
  /** all errors per report */
  total: MeanWithCi;
  /** share of reports with no clinically significant error */
  noSignificantErrors: number;
  /** mean count per report by error type */
  byType: { clinically_significant: Record<ChexpromptErrorType, number>; clinically_insignificant: Record<ChexpromptErrorType, number> };
}

export interface ChexpromptResult {
  metric: 'chexprompt';
  judge: { url: string; model: string; provider: 'openai' | 'azure'; params: ChatParams; prompt: { path: string; sha256: string } };
  summary: ChexpromptSummary;
  studies: ChexpromptStudy[];
}

function meanCi(values: readonly number[], bootstrap: number): MeanWithCi {
  if (values.length === 0) return { mean: Number.NaN, ci: [Number.NaN, Number.NaN] };
  let s = 0;
  for (const v of values) s += v;
  const mean = s / values.length;
  if (bootstrap <= 0) return { mean, ci: [mean, mean] };
  const b = rougeBootstrap(values, bootstrap, new RandomState(3));
  return { mean, ci: [b.low, b.high] };
}

/** the corpus aggregates of per-study ratings */
export function summarizeChexprompt(studies: readonly ChexpromptStudy[], bootstrap = 500): ChexpromptSummary {
  const ok = studies.filter((s) => s.error === undefined && s.rating?.clinically_significant && s.rating.clinically_insignificant);
  const sig = ok.map((s) => totalErrors(s.rating!.clinically_significant!));
  const insig = ok.map((s) => totalErrors(s.rating!.clinically_insignificant!));
  const byType = (which: 'clinically_significant' | 'clinically_insignificant') => {
    const out = {} as Record<ChexpromptErrorType, number>;
    for (const k of CHEXPROMPT_ERROR_NAMES) {
      let s = 0;
      for (const st of ok) s += st.rating![which]![k] ?? 0;
      out[k] = ok.length === 0 ? Number.NaN : s / ok.length;
    }
    return out;
  };
  return {
    n: studies.length,
    rated: ok.length,
    failed: studies.length - ok.length,
    significant: meanCi(sig, bootstrap),
    insignificant: meanCi(insig, bootstrap),
    total: meanCi(sig.map((v, i) => v + insig[i]!), bootstrap),
    noSignificantErrors: ok.length === 0 ? Number.NaN : sig.filter((v) => v === 0).length / ok.length,
    byType: { clinically_significant: byType('clinically_significant'), clinically_insignificant: byType('clinically_insignificant') },
  };
}

function checkRecords(records: readonly JudgeRecord[]): Array<{ id: string | undefined; reference: string; candidate: string }> {
  if (!Array.isArray(records)) throw invalidArgument('records', 'an array of {reference, prediction}', records);
  return records.map((r, i) => {
    const candidate = r?.prediction ?? r?.findings;
    if (typeof r?.reference !== 'string' || typeof candidate !== 'string') {
      throw new LlavaRadError('INVALID_ARGUMENT', `record ${i}: expected string "reference" and "prediction" (or "findings")`);
    }
    return { id: typeof r.id === 'string' ? r.id : undefined, reference: r.reference, candidate };
  });
}

/** judges every record with CheXprompt; per-study failures are recorded, an abort rejects with ABORTED */
export async function chexpromptJudge(records: readonly JudgeRecord[], options: ChexpromptJudgeOptions): Promise<ChexpromptResult> {
  const pairs = checkRecords(records);
  const ratingRetries = options.ratingRetries ?? CHEXPROMPT_RATING_RETRIES;
  if (!Number.isInteger(ratingRetries) || ratingRetries < 0) throw invalidArgument('ratingRetries', 'an integer >= 0', ratingRetries);
  const bootstrap = options.bootstrap ?? 500;
  if (!Number.isInteger(bootstrap) || bootstrap < 0) throw invalidArgument('bootstrap', 'an integer >= 0', bootstrap);
  const template = loadChexpromptTemplate(options.chexpromptDir);
  const params: ChatParams = { ...CHEXPROMPT_PARAMS, ...options.params };
  const concurrency = options.concurrency ?? 4;
  // our own controller, so that the first abort (the caller's) stops every request of this run
  const run = new AbortController();
  const onOuterAbort = () => run.abort(options.signal?.reason);
  if (options.signal?.aborted) throw abortedError(options.signal, 'CheXprompt');
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const client = new ChatClient({
    ...options.client,
    url: options.url,
    model: options.model,
    ...(options.apiVersion !== undefined ? { apiVersion: options.apiVersion } : {}),
    rpm: options.rpm ?? CHEXPROMPT_RPM,
    concurrency,
    signal: run.signal,
    ...(options.onRetry ? { onRetry: options.onRetry } : {}),
  });

  const studies: ChexpromptStudy[] = new Array(pairs.length);
  let done = 0;
  const judgeOne = async (index: number): Promise<void> => {
    const { id, reference, candidate } = pairs[index]!;
    const messages = chexpromptMessages(template, reference, candidate);
    const study: ChexpromptStudy = { index, id, rating: null, text: undefined, requests: 0 };
    for (let round = 0; round <= ratingRetries; round++) {
      study.requests++;
      try {
        const completion = await client.complete(messages, params, { signal: run.signal });
        study.text = completion.content;
        study.rating = parseChexpromptCompletion(completion.content);
        delete study.error;
        if (study.rating.clinically_significant && study.rating.clinically_insignificant) break;
        study.error = { code: 'BAD_JUDGE_RESPONSE', message: `the judge's answer is not in CheXprompt's format (${completion.content.length} characters${completion.finishReason === 'length' ? ', cut at max_tokens' : ''})` };
      } catch (e) {
        if (run.signal.aborted) throw abortedError(run.signal, 'CheXprompt');
        if (!isLlavaRadError(e)) throw e;
        study.error = { code: e.code, message: e.message };
        // a refused key or request will be refused again; a malformed answer is asked again, as chexprompt does
        if (e.code !== 'BAD_JUDGE_RESPONSE') break;
      }
    }
    studies[index] = study;
    done++;
    options.onProgress?.(done, pairs.length, study);
  };

  try {
    let next = 0;
    const workers = Array.from({ length: Math.min(concurrency, pairs.length) }, async () => {
      try {
        while (next < pairs.length && !run.signal.aborted) await judgeOne(next++);
      } catch (e) {
        // the first failure (an abort, or a bug) stops the other workers' requests at once
        run.abort(e);
        throw e;
      }
    });
    const settled = await Promise.allSettled(workers);
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failure) throw failure.reason;
    if (run.signal.aborted) throw abortedError(run.signal, 'CheXprompt');
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort);
  }
  return {
    metric: 'chexprompt',
    judge: { url: client.endpoint, model: options.model, provider: client.provider, params, prompt: { path: template.path, sha256: template.sha256 } },
    summary: summarizeChexprompt(studies, bootstrap),
    studies,
  };
}
