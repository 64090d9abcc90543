// An OpenAI-compatible chat completions client on Node's fetch, for LLM judges (CheXprompt).
//
// - OpenAI and anything speaking its protocol (llama-server, vLLM, our own `serve` later):
//   POST {url}/chat/completions, `Authorization: Bearer KEY` when a key is set (OPENAI_API_KEY), none otherwise.
// - Azure OpenAI (an apiVersion given, or a *.openai.azure.com host):
//   POST {url}/openai/deployments/{model}/chat/completions?api-version=V with an `api-key` header
//   (AZURE_OPENAI_API_KEY, else OPENAI_API_KEY, the variable chexprompt's own scripts read).
//
// Every attempt has a timeout (headers and body); 429, 408, 5xx, network errors and timeouts are retried up
// to `maxAttempts` with exponential backoff and jitter, or after the server's Retry-After / retry-after-ms when
// it sends one (a 429's pause holds every request of this client). Requests go through a RateLimiter (requests
// per minute, requests in flight). The key is never logged and never appears in an error: any text that could
// echo it (a response body) is scrubbed before it is used.

import { abortedError, invalidArgument, LlavaRadError } from '../../errors.js';
import { RateLimiter } from './rate-limit.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** the sampling parameters of one request (OpenAI names; undefined ones are not sent) */
export interface ChatParams {
  temperature?: number;
  max_tokens?: number;
  top_p?: number;
  frequency_penalty?: number;
  presence_penalty?: number;
  stop?: string[];
  seed?: number;
}

export interface ChatCompletion {
  /** choices[0].message.content ('' when the server sent null) */
  content: string;
  finishReason: string | undefined;
  /** HTTP attempts this completion took */
  attempts: number;
}

/** what onRetry hears before each retry's wait (never the key) */
export interface ChatRetryInfo {
  /** the attempt that failed (1-based) */
  attempt: number;
  /** the wait before the next attempt */
  delayMs: number;
  /** "HTTP 429", "HTTP 503", "timeout after 30000 ms", "network error: ..." */
  reason: string;
}

export type ChatProvider = 'openai' | 'azure';

export interface ChatClientOptions {
  /** OpenAI-style base URL (https://api.openai.com/v1, http://127.0.0.1:8080/v1) or an Azure OpenAI endpoint */
  url: string;
  /** the model name (OpenAI, llama-server) or the deployment name (Azure) */
  model: string;
  /** Azure OpenAI's api-version; giving it selects Azure */
  apiVersion?: string;
  /** forces the protocol; by default Azure when apiVersion is given or the host is *.openai.azure.com */
  provider?: ChatProvider;
  /** the key; by default from `env` (see above). Never logged. */
  apiKey?: string;
  /** where keys are read from (default process.env) */
  env?: Record<string, string | undefined>;
  /** per-attempt timeout, headers and body (default 120 000 ms) */
  timeoutMs?: number;
  /** HTTP attempts per request, first included (default 5, as chexprompt's loop) */
  maxAttempts?: number;
  /** first backoff (default 1000 ms); attempt k waits baseDelayMs * 2^(k-1), capped, times a jitter in [0.5, 1] */
  baseDelayMs?: number;
  /** backoff cap (default 60 000 ms) */
  maxDelayMs?: number;
  /** the longest Retry-After honored; a longer one fails the request (default 300 000 ms) */
  maxRetryAfterMs?: number;
  /** request starts per minute (default 30, chexprompt's) */
  rpm?: number;
  /** requests in flight at once (default 4) */
  concurrency?: number;
  /** stops every request of this client */
  signal?: AbortSignal;
  onRetry?: (info: ChatRetryInfo) => void;
  /** jitter source (default Math.random) */
  random?: () => number;
  /** the fetch to use (default globalThis.fetch) */
  fetch?: typeof fetch;
}

const RETRYABLE_STATUS = new Set([408, 429]);
/** the most bytes of an answer read: a chat completion is a few KB; an endpoint that sends more is not a judge */
export const MAX_JUDGE_ANSWER_BYTES = 16 << 20;
const REDACTED = '[redacted]';

/** ms to wait from a Retry-After value (delta-seconds or an HTTP date), or undefined when absent / unreadable */
export function parseRetryAfter(value: string | null | undefined, nowMs: number = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - nowMs);
}

function retryAfterMs(headers: Headers): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.round(Number(ms.trim()));
  return parseRetryAfter(headers.get('retry-after'));
}

function isAzureHost(url: URL): boolean {
  return url.hostname.toLowerCase().endsWith('.openai.azure.com');
}

/** the client's endpoint and headers (without the key), exported for tests and `--dry-run`-like displays */
export function chatEndpoint(options: Pick<ChatClientOptions, 'url' | 'model' | 'apiVersion' | 'provider' | 'env'>): { provider: ChatProvider; url: string } {
  const { url, model } = options;
  if (typeof url !== 'string' || url === '') throw invalidArgument('the judge url', 'an http(s) URL', url);
  if (typeof model !== 'string' || model === '') throw invalidArgument('the judge model', 'a non-empty string', model);
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw invalidArgument('the judge url', 'an http(s) URL', url);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw invalidArgument('the judge url', 'an http(s) URL', url);
  if (base.username !== '' || base.password !== '') {
    throw new LlavaRadError('INVALID_ARGUMENT', 'the judge url must not carry credentials; put the key in the environment');
  }
  const env = options.env ?? process.env;
  const apiVersion = options.apiVersion ?? (options.provider === 'azure' || isAzureHost(base) ? env.AZURE_OPENAI_API_VERSION ?? env.OPENAI_API_VERSION : undefined);
  const provider: ChatProvider = options.provider ?? (options.apiVersion !== undefined || isAzureHost(base) ? 'azure' : 'openai');
  const trimmed = base.href.replace(/[?#].*$/, '').replace(/\/+$/, '');
  if (provider === 'azure') {
    if (apiVersion === undefined || apiVersion === '') {
      throw new LlavaRadError('INVALID_ARGUMENT', 'Azure OpenAI needs an api-version (apiVersion / --judge-api-version, or AZURE_OPENAI_API_VERSION)');
    }
    const root = trimmed.replace(/\/openai$/, '');
    return {
      provider,
      url: `${root}/openai/deployments/${encodeURIComponent(model)}/chat/completions?api-version=${encodeURIComponent(apiVersion)}`,
    };
  }
  return { provider, url: trimmed.endsWith('/chat/completions') ? trimmed : `${trimmed}/chat/completions` };
}

/** a signal that aborts when any of `signals` does; `dispose` detaches it */
function linkSignals(signals: Array<AbortSignal | undefined>): { controller: AbortController; dispose: () => void } {
  const controller = new AbortController();
  const detach: Array<() => void> = [];
  for (const s of signals) {
    if (!s) continue;
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    const on = () => controller.abort(s.reason);
    s.addEventListener('abort', on, { once: true });
    detach.push(() => s.removeEventListener('abort', on));
  }
  return { controller, dispose: () => detach.forEach((d) => d()) };
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(abortedError(signal, 'the judge request'));
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(abortedError(signal, 'the judge request'));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

class TimeoutMarker extends Error {}

/** an answer's body as text (UTF-8, as Response.text() decodes it), or null past `max` bytes (not read on) */
async function boundedText(res: Response, max: number): Promise<string | null> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) {
    await res.body?.cancel().catch(() => {});
    return null;
  }
  if (res.body === null) return ''; // no body (Response.text() gives '' too)
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > max) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** an attempt's outcome that may be retried */
interface Retryable {
  reason: string;
  retryAfterMs: number | undefined;
  error: LlavaRadError;
}

export class ChatClient {
  readonly provider: ChatProvider;
  /** the request URL (no key in it) */
  readonly endpoint: string;
  readonly model: string;
  readonly limiter: RateLimiter;
  private readonly key: string | undefined;
  private readonly timeoutMs: number;
  private readonly maxAttempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly signal: AbortSignal | undefined;
  private readonly onRetry: ((info: ChatRetryInfo) => void) | undefined;
  private readonly random: () => number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: ChatClientOptions) {
    const { provider, url } = chatEndpoint(options);
    this.provider = provider;
    this.endpoint = url;
    this.model = options.model;
    const env = options.env ?? process.env;
    const key = options.apiKey ?? (provider === 'azure' ? env.AZURE_OPENAI_API_KEY ?? env.OPENAI_API_KEY : env.OPENAI_API_KEY);
    this.key = key === undefined || key === '' ? undefined : key;
    if (provider === 'azure' && this.key === undefined) {
      throw new LlavaRadError('INVALID_ARGUMENT', 'Azure OpenAI needs a key: set AZURE_OPENAI_API_KEY (or OPENAI_API_KEY)');
    }
    const positive = (name: string, v: number | undefined, dflt: number, integer = false): number => {
      if (v === undefined) return dflt;
      if (typeof v !== 'number' || !(v >= (integer ? 1 : 0)) || (integer && !Number.isInteger(v))) {
        throw invalidArgument(name, integer ? 'an integer >= 1' : 'a number >= 0', v);
      }
      return v;
    };
    this.timeoutMs = positive('timeoutMs', options.timeoutMs, 120_000);
    this.maxAttempts = positive('maxAttempts', options.maxAttempts, 5, true);
    this.baseDelayMs = positive('baseDelayMs', options.baseDelayMs, 1000);
    this.maxDelayMs = positive('maxDelayMs', options.maxDelayMs, 60_000);
    this.maxRetryAfterMs = positive('maxRetryAfterMs', options.maxRetryAfterMs, 300_000);
    this.limiter = new RateLimiter({ rpm: options.rpm ?? 30, concurrency: options.concurrency ?? 4 });
    this.signal = options.signal;
    this.onRetry = options.onRetry;
    this.random = options.random ?? Math.random;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  /** removes the key from any text that could have echoed it */
  private scrub(text: string): string {
    if (this.key === undefined || this.key.length === 0) return text;
    return text.split(this.key).join(REDACTED);
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.key !== undefined) {
      if (this.provider === 'azure') h['api-key'] = this.key;
      else h.authorization = `Bearer ${this.key}`;
    }
    return h;
  }

  /** the request body for `messages` and `params` */
  body(messages: readonly ChatMessage[], params: ChatParams = {}): Record<string, unknown> {
    const body: Record<string, unknown> = {};
    // Azure takes the deployment from the path
    if (this.provider === 'openai') body.model = this.model;
    body.messages = messages.map((m) => ({ role: m.role, content: m.content }));
    for (const [k, v] of Object.entries(params)) if (v !== undefined) body[k] = v;
    return body;
  }

  /** one chat completion, retried as described above */
  async complete(messages: readonly ChatMessage[], params: ChatParams = {}, options: { signal?: AbortSignal } = {}): Promise<ChatCompletion> {
    const signals = [this.signal, options.signal];
    const aborted = () => signals.find((s) => s?.aborted);
    const payload = JSON.stringify(this.body(messages, params));
    for (let attempt = 1; ; attempt++) {
      const a = aborted();
      if (a) throw abortedError(a, 'the judge request');
      const outcome = await this.attempt(payload, signals, attempt);
      if (!('retry' in outcome)) return outcome.done;
      const { reason, retryAfterMs: ra, error } = outcome.retry;
      if (attempt >= this.maxAttempts) {
        throw new LlavaRadError(error.code, `${error.message} (after ${attempt} attempt${attempt === 1 ? '' : 's'})`, { cause: error.cause });
      }
      let delayMs: number;
      if (ra !== undefined) {
        if (ra > this.maxRetryAfterMs) {
          throw new LlavaRadError(error.code, `${error.message}: the server asked to retry after ${Math.round(ra / 1000)} s, more than the ${Math.round(this.maxRetryAfterMs / 1000)} s allowed`);
        }
        delayMs = ra;
        if (reason === 'HTTP 429') this.limiter.pauseUntil(Date.now() + ra);
      } else {
        const exp = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1));
        delayMs = Math.round(exp * (0.5 + 0.5 * this.random()));
      }
      this.onRetry?.({ attempt, delayMs, reason });
      const { controller, dispose } = linkSignals(signals);
      try {
        await sleep(delayMs, controller.signal);
      } finally {
        dispose();
      }
    }
  }

  private async attempt(payload: string, signals: Array<AbortSignal | undefined>, attempt: number): Promise<{ done: ChatCompletion } | { retry: Retryable }> {
    const { controller, dispose } = linkSignals(signals);
    const release = await this.limiter.acquire(controller.signal).catch((e: unknown) => {
      dispose();
      throw e;
    });
    const timer = setTimeout(() => controller.abort(new TimeoutMarker()), this.timeoutMs);
    const where = `the judge at ${this.endpoint}`;
    try {
      let res: Response;
      let body: string | null;
      try {
        res = await this.fetchImpl(this.endpoint, { method: 'POST', headers: this.headers(), body: payload, signal: controller.signal });
        body = await boundedText(res, MAX_JUDGE_ANSWER_BYTES);
      } catch (e) {
        if (controller.signal.reason instanceof TimeoutMarker) {
          const reason = `timeout after ${this.timeoutMs} ms`;
          return { retry: { reason, retryAfterMs: undefined, error: new LlavaRadError('DOWNLOAD', `${where}: no answer within ${this.timeoutMs} ms`) } };
        }
        if (controller.signal.aborted) throw abortedError(controller.signal, 'the judge request');
        const detail = this.scrub(e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e));
        return { retry: { reason: `network error: ${detail}`, retryAfterMs: undefined, error: new LlavaRadError('DOWNLOAD', `${where}: ${detail}`) } };
      }
      if (body === null) {
        throw new LlavaRadError('BAD_JUDGE_RESPONSE', `${where} answered HTTP ${res.status} with more than ${MAX_JUDGE_ANSWER_BYTES >> 20} MiB: not a chat completion (read no further)`);
      }
      const text = body;
      if (!res.ok) {
        const snippet = this.scrub(text.slice(0, 300)).replace(/\s+/g, ' ').trim();
        const msg = `${where} answered HTTP ${res.status}${snippet ? `: ${snippet}` : ''}`;
        if (res.status === 401 || res.status === 403) {
          throw new LlavaRadError('ACCESS_DENIED', `${msg} (check the key in ${this.provider === 'azure' ? 'AZURE_OPENAI_API_KEY' : 'OPENAI_API_KEY'})`);
        }
        if (RETRYABLE_STATUS.has(res.status) || res.status >= 500) {
          return { retry: { reason: `HTTP ${res.status}`, retryAfterMs: retryAfterMs(res.headers), error: new LlavaRadError('DOWNLOAD', msg) } };
        }
        throw new LlavaRadError('DOWNLOAD', msg);
      }
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new LlavaRadError('BAD_JUDGE_RESPONSE', `${where} answered HTTP ${res.status} with a body that is not JSON (${text.length} bytes)`);
      }
      const choice = (json as { choices?: unknown } | null)?.choices;
      const first = Array.isArray(choice) ? (choice[0] as { message?: { content?: unknown }; finish_reason?: unknown } | undefined) : undefined;
      const content = first?.message?.content;
      if (first === undefined || first.message === undefined || (content !== null && typeof content !== 'string')) {
        throw new LlavaRadError('BAD_JUDGE_RESPONSE', `${where} answered JSON without choices[0].message.content`);
      }
      return {
        done: {
          content: content ?? '',
          finishReason: typeof first.finish_reason === 'string' ? first.finish_reason : undefined,
          attempts: attempt,
        },
      };
    } finally {
      clearTimeout(timer);
      dispose();
      release();
    }
  }
}
