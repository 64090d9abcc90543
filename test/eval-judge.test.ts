// CheXprompt over an OpenAI-compatible endpoint (lib/eval/judge/): a mock chat server on 127.0.0.1 checks the
// requests (OpenAI, Azure OpenAI and llama-server shapes) and injects 429s with Retry-After, 500s, a hang, a
// body that is not JSON and answers that do not parse; the prompt comes from a fake chexprompt checkout laid
// out as the real repository (src/chexprompt/evaluator.py) but holding our own made-up text.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { isLlavaRadError, LlavaRadError } from '../lib/errors.js';
import {
  ChatClient, chatEndpoint, chexpromptJudge, chexpromptMessages, loadChexpromptTemplate, parseChexpromptCompletion,
  parseErrorTuples, parseRetryAfter, type ChatRetryInfo,
} from '../lib/eval/judge/index.js';

const KEY = 'sk-test-THIS-KEY-MUST-NEVER-LEAK-1234567890';

// ---------------------------------------------------------------- a fake chexprompt checkout (our own words)

const FAKE_EVALUATOR = [
  'import json',
  '',
  'SYSTEM_INSTRUCTIONS = "You are a made-up grader used only by llava-rad\'s tests."',
  '',
  'USER_INSTRUCTIONS = """Count the mistakes of a fake report in six made-up categories.',
  'Answer on two lines.',
  '{examples_formatted}',
  'REF: \\"\\"\\"{eval_reference}\\"\\"\\"',
  'CAND: \\"\\"\\"{eval_candidate}\\"\\"\\"',
  'Braces stay braces: {{x}}',
  'Counts:"""',
  '',
  'EXAMPLES_FORMATTED = ("first invented example; "',
  '    \'second invented example\\tend\')  # adjacent literals, as Python joins them',
  '',
  'class ReportEvaluator:',
  '    pass',
  '',
].join('\n');

let tmp: string;
let cxpDir: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'lr-judge-'));
  cxpDir = join(tmp, 'chexprompt');
  mkdirSync(join(cxpDir, 'src', 'chexprompt'), { recursive: true });
  writeFileSync(join(cxpDir, 'src', 'chexprompt', 'evaluator.py'), FAKE_EVALUATOR);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------- answers in chexprompt's format

const SIG = 'Number of clinically significant errors by type:';
const INSIG = 'Number of clinically insignificant errors by type:';
function answer(sig: number[], insig: number[], style: 'paren' | 'bracket' = 'bracket'): string {
  const list = (c: number[]) => {
    const items = 'ABCDEF'.split('').map((l, i) => `(${l}, ${c[i] ?? 0})`).join(', ');
    return style === 'bracket' ? `[${items}]` : `(${items})`;
  };
  return `${SIG} ${list(sig)}\n${INSIG} ${list(insig)}`;
}
function completionBody(content: string): string {
  return JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] });
}

// ---------------------------------------------------------------- the mock server

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: any;
  at: number;
}
type Handler = (seen: Seen, res: ServerResponse, n: number) => void;

class MockServer {
  server!: Server;
  base = '';
  seen: Seen[] = [];
  inFlight = 0;
  maxInFlight = 0;
  handler: Handler = (_s, res) => res.end(completionBody(answer([], [])));

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let data = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (data += c));
      req.on('end', () => {
        let body: unknown;
        try {
          body = JSON.parse(data);
        } catch {
          body = data;
        }
        const seen: Seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, at: Date.now() };
        this.seen.push(seen);
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        res.on('close', () => this.inFlight--);
        this.handler(seen, res, this.seen.length);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  reset(): void {
    this.seen = [];
    this.inFlight = 0;
    this.maxInFlight = 0;
    this.handler = (_s, res) => res.end(completionBody(answer([], [])));
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** the candidate text of a request's user message (our fake template's CAND: """...""") */
function candidateOf(s: Seen): string {
  const user: string = s.body.messages[1].content;
  return /CAND: """([\s\S]*?)"""/.exec(user)![1]!;
}

const srv = new MockServer();
beforeAll(() => srv.start());
afterAll(() => srv.stop());
afterEach(() => srv.reset());

const records = (cands: string[]) => cands.map((c, i) => ({ id: `s${i}`, reference: `reference ${i}`, prediction: c }));
const noKeyEnv = {};
const keyEnv = { OPENAI_API_KEY: KEY };
const fast = { timeoutMs: 5000, baseDelayMs: 5, maxDelayMs: 20 };

// ---------------------------------------------------------------- the prompt

describe('the prompt from --chexprompt-dir', () => {
  it('reads the three constants of src/chexprompt/evaluator.py and fills them as str.format does', () => {
    const t = loadChexpromptTemplate(cxpDir);
    expect(t.path).toBe(join(cxpDir, 'src', 'chexprompt', 'evaluator.py'));
    expect(t.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(t.system).toBe("You are a made-up grader used only by llava-rad's tests.");
    expect(t.examples).toBe('first invented example; second invented example\tend');
    const [sys, user] = chexpromptMessages(t, 'ref with {braces}', 'cand');
    expect(sys).toEqual({ role: 'system', content: t.system });
    expect(user.role).toBe('user');
    expect(user.content).toBe([
      'Count the mistakes of a fake report in six made-up categories.',
      'Answer on two lines.',
      'first invented example; second invented example\tend',
      'REF: """ref with {braces}"""',
      'CAND: """cand"""',
      'Braces stay braces: {x}',
      'Counts:',
    ].join('\n'));
  });

  it('also takes the package directory itself', () => {
    expect(loadChexpromptTemplate(join(cxpDir, 'src', 'chexprompt')).system).toContain('made-up grader');
  });

  it('names the file it expected when the directory is not a chexprompt checkout', () => {
    const empty = join(tmp, 'not-chexprompt');
    mkdirSync(empty, { recursive: true });
    let err: unknown;
    try {
      loadChexpromptTemplate(empty);
    } catch (e) {
      err = e;
    }
    expect(isLlavaRadError(err, 'IO')).toBe(true);
    expect((err as Error).message).toContain(join(empty, 'src', 'chexprompt', 'evaluator.py'));
    expect(() => loadChexpromptTemplate(join(tmp, 'missing'))).toThrow(/not a directory/);
  });

  it('refuses a template without the fields chexprompt fills', () => {
    const bad = join(tmp, 'bad', 'src', 'chexprompt');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'evaluator.py'), 'SYSTEM_INSTRUCTIONS = "s"\nUSER_INSTRUCTIONS = "{eval_reference} only"\nEXAMPLES_FORMATTED = ""\n');
    expect(() => loadChexpromptTemplate(join(tmp, 'bad'))).toThrow(expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringContaining('{examples_formatted}') }));
    writeFileSync(join(bad, 'evaluator.py'), 'SYSTEM_INSTRUCTIONS = f"s"\n');
    expect(() => loadChexpromptTemplate(join(tmp, 'bad'))).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
  });
});

// ---------------------------------------------------------------- the parser

describe("chexprompt's parser", () => {
  it('reads both lists, with parentheses or brackets, and drops an explanation', () => {
    const r = parseChexpromptCompletion(answer([1, 0, 0, 2, 0, 0], [0, 1, 0, 0, 0, 0], 'paren'));
    expect(r.clinically_significant).toEqual({
      false_positive_finding: 1, omission_finding: 0, incorrect_location: 0, incorrect_severity: 2, false_positive_comparison: 0, omission_comparison: 0,
    });
    expect(r.clinically_insignificant!.omission_finding).toBe(1);
    const expl = parseChexpromptCompletion(`Errors: ${answer([3], [])}\nExplanation of errors: (A, 9) was wrong`);
    expect(expl.clinically_significant!.false_positive_finding).toBe(3);
    expect(expl.clinically_insignificant!.false_positive_finding).toBe(0);
  });

  it('tolerates what Python tolerates and fails where Python fails', () => {
    expect(parseErrorTuples('[( A ,  +2 ), (B,0_1)]')).toEqual({ false_positive_finding: 2, omission_finding: 1 });
    expect(parseErrorTuples('[(G, 1)]')).toEqual({ G: 1 }); // unknown keys are kept as written
    expect(parseErrorTuples('[(A, 1), (A, 4)]')).toEqual({ false_positive_finding: 4 });
    expect(parseErrorTuples('[(A, one)]')).toBeNull();
    expect(parseErrorTuples('[(A, 1.0)]')).toBeNull();
    expect(parseErrorTuples('')).toBeNull();
    expect(parseChexpromptCompletion('no errors at all')).toEqual({ clinically_significant: null, clinically_insignificant: null });
    expect(parseChexpromptCompletion(`${SIG} [(A, 1)]`)).toEqual({ clinically_significant: null, clinically_insignificant: null });
    const half = parseChexpromptCompletion(`${SIG} [(A, 1)]\n${INSIG} [(A, x)]`);
    expect(half).toEqual({ clinically_significant: { false_positive_finding: 1 }, clinically_insignificant: null });
  });
});

// ---------------------------------------------------------------- the client

describe('the chat client', () => {
  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:59:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });

  it('builds OpenAI, llama-server and Azure endpoints', () => {
    expect(chatEndpoint({ url: 'https://api.openai.com/v1/', model: 'gpt-4o', env: {} })).toEqual({ provider: 'openai', url: 'https://api.openai.com/v1/chat/completions' });
    expect(chatEndpoint({ url: 'http://127.0.0.1:8080/v1/chat/completions', model: 'm', env: {} }).url).toBe('http://127.0.0.1:8080/v1/chat/completions');
    expect(chatEndpoint({ url: 'https://res.openai.azure.com/', model: 'gpt-4 turbo', apiVersion: '2024-06-01' })).toEqual({
      provider: 'azure', url: 'https://res.openai.azure.com/openai/deployments/gpt-4%20turbo/chat/completions?api-version=2024-06-01',
    });
    expect(chatEndpoint({ url: 'https://res.openai.azure.com', model: 'd', env: { AZURE_OPENAI_API_VERSION: '2024-02-01' } }).url).toContain('api-version=2024-02-01');
    expect(() => chatEndpoint({ url: 'https://res.openai.azure.com', model: 'd', env: {} })).toThrow(/api-version/);
    expect(() => chatEndpoint({ url: 'ftp://x', model: 'd', env: {} })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => chatEndpoint({ url: `https://user:${KEY}@x/v1`, model: 'd', env: {} })).toThrow(expect.objectContaining({ message: expect.not.stringContaining(KEY) }));
  });

  it('sends a llama-server request without a key when none is set', async () => {
    const client = new ChatClient({ url: `${srv.base}/v1`, model: 'local', env: noKeyEnv, ...fast });
    const c = await client.complete([{ role: 'user', content: 'hi' }], { temperature: 0 });
    expect(c).toMatchObject({ content: answer([], []), finishReason: 'stop', attempts: 1 });
    expect(srv.seen[0]!.headers.authorization).toBeUndefined();
    expect(srv.seen[0]!.headers['api-key']).toBeUndefined();
    expect(srv.seen[0]!.body).toEqual({ model: 'local', messages: [{ role: 'user', content: 'hi' }], temperature: 0 });
  });
});

// ---------------------------------------------------------------- the judge

describe('chexpromptJudge', () => {
  it('sends chexprompt requests (OpenAI shape) and aggregates the parsed counts', async () => {
    srv.handler = (s, res) => {
      const c = candidateOf(s);
      res.setHeader('content-type', 'application/json');
      if (c === 'clean') res.end(completionBody(answer([], [])));
      else if (c === 'one fp') res.end(completionBody(answer([1], [0, 1])));
      else res.end(completionBody(`Errors: ${answer([0, 2, 0, 1], [], 'paren')}\nExplanation: made up`));
    };
    const progress: number[] = [];
    const result = await chexpromptJudge(records(['clean', 'one fp', 'bad', 'clean']), {
      url: `${srv.base}/v1`, model: 'judge-model', chexpromptDir: cxpDir, concurrency: 2, rpm: Infinity,
      client: { env: keyEnv, ...fast }, onProgress: (d) => progress.push(d), bootstrap: 200,
    });
    expect(srv.seen).toHaveLength(4);
    for (const s of srv.seen) {
      expect(s.method).toBe('POST');
      expect(s.url).toBe('/v1/chat/completions');
      expect(s.headers.authorization).toBe(`Bearer ${KEY}`);
      expect(s.headers['content-type']).toContain('application/json');
      expect(s.body).toMatchObject({ model: 'judge-model', temperature: 0, max_tokens: 128, top_p: 0.9, frequency_penalty: 0, presence_penalty: 0 });
      expect(s.body.messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user']);
      expect(s.body.messages[0].content).toContain('made-up grader');
      expect(s.body.messages[1].content).toMatch(/^Count the mistakes/);
      expect('stop' in s.body).toBe(false);
    }
    expect(srv.seen.map(candidateOf).sort()).toEqual(['bad', 'clean', 'clean', 'one fp']);
    expect(progress).toEqual([1, 2, 3, 4]);
    expect(result.studies.map((s) => s.id)).toEqual(['s0', 's1', 's2', 's3']);
    expect(result.studies[2]!.rating!.clinically_significant).toMatchObject({ omission_finding: 2, incorrect_severity: 1 });
    const sum = result.summary;
    expect(sum).toMatchObject({ n: 4, rated: 4, failed: 0, noSignificantErrors: 0.5 });
    expect(sum.significant.mean).toBe((0 + 1 + 3 + 0) / 4);
    expect(sum.insignificant.mean).toBe(1 / 4);
    expect(sum.total.mean).toBe(5 / 4);
    expect(sum.byType.clinically_significant.omission_finding).toBe(0.5);
    expect(sum.byType.clinically_significant.false_positive_finding).toBe(0.25);
    expect(sum.significant.ci[0]).toBeLessThanOrEqual(sum.significant.mean);
    expect(sum.significant.ci[1]).toBeGreaterThanOrEqual(sum.significant.mean);
    expect(result.judge).toMatchObject({ provider: 'openai', model: 'judge-model', url: `${srv.base}/v1/chat/completions` });
    expect(result.judge.prompt.path).toBe(join(cxpDir, 'src', 'chexprompt', 'evaluator.py'));
    expect(JSON.stringify(result)).not.toContain(KEY);
  });

  it('uses the Azure OpenAI path, api-version and api-key header', async () => {
    const result = await chexpromptJudge(records(['clean']), {
      url: srv.base, model: 'my-deployment', apiVersion: '2024-06-01', chexpromptDir: cxpDir,
      client: { env: { AZURE_OPENAI_API_KEY: KEY }, ...fast }, bootstrap: 0,
    });
    expect(result.judge.provider).toBe('azure');
    const s = srv.seen[0]!;
    expect(s.url).toBe('/openai/deployments/my-deployment/chat/completions?api-version=2024-06-01');
    expect(s.headers['api-key']).toBe(KEY);
    expect(s.headers.authorization).toBeUndefined();
    expect(s.body.model).toBeUndefined();
    expect(result.summary.significant).toEqual({ mean: 0, ci: [0, 0] });
    await expect(chexpromptJudge(records(['x']), { url: srv.base, model: 'd', apiVersion: 'v', chexpromptDir: cxpDir, client: { env: {} } }))
      .rejects.toThrow(/AZURE_OPENAI_API_KEY/);
  });

  it('retries 429 after its Retry-After and 500s with backoff, then fails after maxAttempts', async () => {
    srv.handler = (s, res, n) => {
      const c = candidateOf(s);
      if (c === 'throttled' && n === 1) {
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end('{"error":{"message":"slow down"}}');
      } else if (c === 'flaky' && srv.seen.filter((x) => candidateOf(x) === 'flaky').length <= 2) {
        res.writeHead(500).end('oops');
      } else if (c === 'down') {
        res.writeHead(503).end();
      } else res.end(completionBody(answer([], [])));
    };
    const retries: Array<ChatRetryInfo> = [];
    const t0 = Date.now();
    const result = await chexpromptJudge(records(['throttled']), {
      url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, concurrency: 1, rpm: Infinity,
      client: { env: keyEnv, ...fast, maxAttempts: 3 }, onRetry: (r) => retries.push(r), bootstrap: 0,
    });
    const waited = srv.seen[1]!.at - srv.seen[0]!.at;
    expect(waited).toBeGreaterThanOrEqual(950);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(retries).toEqual([{ attempt: 1, delayMs: 1000, reason: 'HTTP 429' }]);
    expect(result.studies[0]).toMatchObject({ requests: 1, rating: { clinically_significant: { false_positive_finding: 0 } } });
    expect(result.studies[0]!.error).toBeUndefined();

    srv.seen = [];
    retries.length = 0;
    const r2 = await chexpromptJudge(records(['flaky', 'down']), {
      url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, concurrency: 1, rpm: Infinity,
      client: { env: keyEnv, ...fast, maxAttempts: 3 }, onRetry: (r) => retries.push(r), bootstrap: 0,
    });
    expect(srv.seen.map(candidateOf)).toEqual(['flaky', 'flaky', 'flaky', 'down', 'down', 'down']);
    expect(retries.map((r) => [r.attempt, r.reason])).toEqual([[1, 'HTTP 500'], [2, 'HTTP 500'], [1, 'HTTP 503'], [2, 'HTTP 503']]);
    // exponential backoff with jitter in [0.5, 1]: 5 ms then 10 ms at most
    expect(retries[0]!.delayMs).toBeGreaterThanOrEqual(2);
    expect(retries[0]!.delayMs).toBeLessThanOrEqual(5);
    expect(retries[1]!.delayMs).toBeGreaterThanOrEqual(5);
    expect(retries[1]!.delayMs).toBeLessThanOrEqual(10);
    expect(r2.studies[0]!.error).toBeUndefined();
    expect(r2.studies[1]!.error).toMatchObject({ code: 'DOWNLOAD', message: expect.stringContaining('HTTP 503') });
    expect(r2.studies[1]!.error!.message).toContain('after 3 attempts');
    expect(r2.summary).toMatchObject({ n: 2, rated: 1, failed: 1 });
  });

  it('gives up on a hung request at the timeout and retries it', async () => {
    srv.handler = (_s, res, n) => {
      if (n === 1) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"choices": ['); // then nothing: a hang mid-body
        return;
      }
      res.end(completionBody(answer([2], [])));
    };
    const retries: ChatRetryInfo[] = [];
    const result = await chexpromptJudge(records(['x']), {
      url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, rpm: Infinity,
      client: { env: keyEnv, ...fast, timeoutMs: 300 }, onRetry: (r) => retries.push(r), bootstrap: 0,
    });
    expect(retries.map((r) => r.reason)).toEqual(['timeout after 300 ms']);
    expect(srv.seen).toHaveLength(2);
    expect(result.summary.significant.mean).toBe(2);
  });

  it('asks again once (chexprompt max_retries) after a body that is not JSON or an answer that does not parse', async () => {
    srv.handler = (s, res) => {
      const c = candidateOf(s);
      const k = srv.seen.filter((x) => candidateOf(x) === c).length;
      if (c === 'json' && k === 1) res.end('{"choices": [ not json');
      else if (c === 'prose') res.end(completionBody('The candidate looks fine to me.'));
      else if (c === 'prose-once' && k === 1) res.end(completionBody(`${SIG} [(A, 1)]`));
      else res.end(completionBody(answer([0, 1], [])));
    };
    const result = await chexpromptJudge(records(['json', 'prose', 'prose-once']), {
      url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, concurrency: 1, rpm: Infinity, client: { env: keyEnv, ...fast }, bootstrap: 0,
    });
    const [json, prose, once] = result.studies;
    expect(json).toMatchObject({ requests: 2, rating: { clinically_significant: { omission_finding: 1 } } });
    expect(json!.error).toBeUndefined();
    expect(prose).toMatchObject({ requests: 2, text: 'The candidate looks fine to me.', error: { code: 'BAD_JUDGE_RESPONSE' } });
    expect(prose!.rating).toEqual({ clinically_significant: null, clinically_insignificant: null });
    expect(once).toMatchObject({ requests: 2 });
    expect(once!.error).toBeUndefined();
    expect(srv.seen).toHaveLength(6);
    expect(result.summary).toMatchObject({ n: 3, rated: 2, failed: 1, significant: { mean: 1 } });
    // ratingRetries: 0 records the first unparseable answer
    srv.seen = [];
    const r0 = await chexpromptJudge(records(['prose']), {
      url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, rpm: Infinity, ratingRetries: 0, client: { env: keyEnv, ...fast }, bootstrap: 0,
    });
    expect(r0.studies[0]).toMatchObject({ requests: 1, error: { code: 'BAD_JUDGE_RESPONSE' } });
  });

  it('stops reading an answer past 16 MiB (an endpoint that is no judge: before, the whole body was held)', async () => {
    const MIB = 1 << 20;
    const sent: number[] = [];
    srv.handler = (_s, res) => {
      // 100 MiB of JSON-looking bytes, written as the client reads them; the count is what it took
      res.writeHead(200, { 'content-type': 'application/json' });
      const chunk = Buffer.alloc(MIB, 0x20);
      let n = 0;
      const i = sent.push(0) - 1;
      const pump = () => {
        while (n < 100) {
          n++;
          sent[i] = n;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      res.on('close', () => res.removeAllListeners('drain'));
      pump();
    };
    const result = await chexpromptJudge(records(['x']), {
      url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, rpm: Infinity, client: { env: keyEnv, ...fast }, bootstrap: 0,
    });
    expect(result.studies[0]).toMatchObject({ requests: 2, error: { code: 'BAD_JUDGE_RESPONSE', message: expect.stringMatching(/answered HTTP 200 with more than 16 MiB: not a chat completion/) } });
    expect(sent).toHaveLength(2);
    // the reader stopped at 16 MiB: what the server got out is that plus the socket buffers, far from the 100 MiB
    for (const mib of sent) expect(mib).toBeLessThan(64);
  });

  it('keeps at most `concurrency` requests in flight and spaces starts by 60 s / rpm', async () => {
    srv.handler = (_s, res) => setTimeout(() => res.end(completionBody(answer([], []))), 40);
    await chexpromptJudge(records(Array.from({ length: 8 }, (_, i) => `c${i}`)), {
      url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, concurrency: 2, rpm: Infinity, client: { env: keyEnv, ...fast }, bootstrap: 0,
    });
    expect(srv.seen).toHaveLength(8);
    expect(srv.maxInFlight).toBe(2);

    srv.reset();
    srv.handler = (_s, res) => res.end(completionBody(answer([], [])));
    await chexpromptJudge(records(['a', 'b', 'c', 'd']), {
      url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, concurrency: 4, rpm: 600, client: { env: keyEnv, ...fast }, bootstrap: 0,
    });
    const at = srv.seen.map((s) => s.at);
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(85);
    expect(at[3]! - at[0]!).toBeLessThan(3000);
  });

  it('never puts the key in an error, a retry report or a log line', async () => {
    const logs: string[] = [];
    const spies = (['log', 'warn', 'error', 'info', 'debug'] as const).map((m) =>
      vi.spyOn(console, m).mockImplementation((...a: unknown[]) => void logs.push(a.map(String).join(' '))));
    try {
      srv.handler = (s, res) => {
        const c = candidateOf(s);
        if (c === 'denied') res.writeHead(401).end(`{"error": "Incorrect API key provided: ${KEY}"}`);
        else if (c === 'echo') res.writeHead(500).end(`internal error for key ${KEY}`);
        else res.writeHead(400).end(`bad request from ${s.headers.authorization}`);
      };
      const retries: ChatRetryInfo[] = [];
      const result = await chexpromptJudge(records(['denied', 'echo', 'bad']), {
        url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, concurrency: 1, rpm: Infinity,
        client: { env: keyEnv, ...fast, maxAttempts: 2 }, onRetry: (r) => retries.push(r), bootstrap: 0,
      });
      expect(result.studies.map((s) => s.error?.code)).toEqual(['ACCESS_DENIED', 'DOWNLOAD', 'DOWNLOAD']);
      expect(result.studies[0]!.requests).toBe(1); // a refused key is not asked again
      expect(result.studies[0]!.error!.message).toContain('[redacted]');
      expect(result.studies[2]!.error!.message).toContain('Bearer [redacted]');
      expect(srv.seen).toHaveLength(1 + 2 + 1);
      const everything = JSON.stringify({ result, retries, logs });
      expect(everything).not.toContain(KEY);
      expect(everything).not.toContain(KEY.slice(3, 20));
    } finally {
      spies.forEach((s) => s.mockRestore());
    }
    // a network error (nothing listening) does not carry it either
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const client = new ChatClient({ url: `http://127.0.0.1:${port}/v1`, model: 'm', env: keyEnv, ...fast, maxAttempts: 2, rpm: Infinity });
    const err = await client.complete([{ role: 'user', content: 'x' }]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlavaRadError);
    expect((err as LlavaRadError).code).toBe('DOWNLOAD');
    expect(JSON.stringify({ m: (err as Error).message, s: (err as Error).stack })).not.toContain(KEY);
  });

  it('stops every request at once on abort, leaving none pending', async () => {
    srv.handler = () => {
      /* never answers */
    };
    const ac = new AbortController();
    const done = chexpromptJudge(records(Array.from({ length: 10 }, (_, i) => `h${i}`)), {
      url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, concurrency: 3, rpm: Infinity, signal: ac.signal,
      client: { env: keyEnv, ...fast, timeoutMs: 60_000 }, bootstrap: 0,
    });
    const t0 = Date.now();
    while (srv.seen.length < 3 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    expect(srv.seen).toHaveLength(3);
    expect(srv.inFlight).toBe(3);
    const abortedAt = Date.now();
    ac.abort();
    const err = await done.catch((e: unknown) => e);
    expect(isLlavaRadError(err, 'ABORTED')).toBe(true);
    expect(Date.now() - abortedAt).toBeLessThan(1000);
    const t1 = Date.now();
    while (srv.inFlight > 0 && Date.now() - t1 < 2000) await new Promise((r) => setTimeout(r, 10));
    expect(srv.inFlight).toBe(0);
    await new Promise((r) => setTimeout(r, 150));
    expect(srv.seen).toHaveLength(3);
    // an already-aborted signal sends nothing
    await expect(chexpromptJudge(records(['x']), { url: `${srv.base}/v1`, model: 'm', chexpromptDir: cxpDir, signal: ac.signal, client: { env: keyEnv } }))
      .rejects.toMatchObject({ code: 'ABORTED' });
    expect(srv.seen).toHaveLength(3);
  });
});
