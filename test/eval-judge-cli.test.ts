// `llava-rad eval --metrics ...,chexprompt`: the CheXprompt judge from the command line against a mock
// OpenAI-compatible chat server on 127.0.0.1, with a fake chexprompt checkout holding our own made-up prompt
// text (as test/eval-judge.test.ts). Checks the --json shape (metrics.chexprompt), the table, --html's
// section, a per-study unparseable answer counted, retries reported on stderr, the usage errors, and that
// the key is never printed.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../lib/cli.js';
import { loadChexpromptTemplate } from '../lib/eval/judge/index.js';
import { pairedMeans } from '../lib/eval/paired.js';

const KEY = 'sk-test-CLI-KEY-MUST-NEVER-BE-PRINTED-0987654321';

const FAKE_EVALUATOR = [
  'SYSTEM_INSTRUCTIONS = "An invented grader for llava-rad\'s CLI tests."',
  '',
  'USER_INSTRUCTIONS = """Count made-up mistakes.',
  '{examples_formatted}',
  'REF: \\"\\"\\"{eval_reference}\\"\\"\\"',
  'CAND: \\"\\"\\"{eval_candidate}\\"\\"\\"',
  'Counts:"""',
  '',
  'EXAMPLES_FORMATTED = "no real example here"',
  '',
].join('\n');

const SIG = 'Number of clinically significant errors by type:';
const INSIG = 'Number of clinically insignificant errors by type:';
const answer = (sig: number[], insig: number[]) => {
  const list = (c: number[]) => `[${'ABCDEF'.split('').map((l, i) => `(${l}, ${c[i] ?? 0})`).join(', ')}]`;
  return `${SIG} ${list(sig)}\n${INSIG} ${list(insig)}`;
};
const completion = (content: string) => JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }] });

interface Seen { url: string; headers: IncomingMessage['headers']; body: any }

// studies: candidate "cand k" gets k % 3 significant errors (as A) and 1 insignificant (as B); "GARBLED" never
// gets an answer in CheXprompt's format; "FLAKY" gets a 503 the first time
const STUDIES = [0, 1, 2, 3, 4].map((k) => ({ id: `s${k}`, reference: `reference ${k}`, prediction: `cand ${k}` }));
const GARBLED = { id: 'bad-study', reference: 'reference g', prediction: 'GARBLED' };
const FLAKY = { id: 'flaky', reference: 'reference f', prediction: 'FLAKY' };
const SIG_COUNTS = [0, 1, 2, 0, 1, 0]; // s0..s4, flaky (0)

let tmp: string;
let cxpDir: string;
let preds: string;
let server: Server;
let base = '';
let seen: Seen[] = [];
let flakyServed = false;

function handle(s: Seen, res: ServerResponse): void {
  const user: string = s.body.messages[1].content;
  const cand = /CAND: """([\s\S]*?)"""/.exec(user)![1]!;
  if (cand === 'GARBLED') return void res.end(completion('I would rather not count anything.'));
  if (cand === 'FLAKY' && !flakyServed) {
    flakyServed = true;
    res.writeHead(503, { 'retry-after-ms': '10', 'content-type': 'application/json' });
    return void res.end(JSON.stringify({ error: { message: `overloaded (your key ${KEY})` } }));
  }
  const k = cand === 'FLAKY' ? 0 : Number(cand.split(' ')[1]) % 3;
  res.end(completion(answer([k], [0, 1])));
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'lr-judge-cli-'));
  cxpDir = join(tmp, 'chexprompt');
  mkdirSync(join(cxpDir, 'src', 'chexprompt'), { recursive: true });
  writeFileSync(join(cxpDir, 'src', 'chexprompt', 'evaluator.py'), FAKE_EVALUATOR);
  preds = join(tmp, 'preds.jsonl');
  const failed = { id: 'failed-study', error: { code: 'IO', message: 'gone' } };
  writeFileSync(preds, [...STUDIES.slice(0, 3), GARBLED, failed, ...STUDIES.slice(3), FLAKY].map((r) => JSON.stringify(r)).join('\n') + '\n');
  server = createServer((req, res) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (data += c));
    req.on('end', () => {
      const s: Seen = { url: req.url ?? '', headers: req.headers, body: JSON.parse(data) };
      seen.push(s);
      handle(s, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  vi.stubEnv('OPENAI_API_KEY', KEY);
  vi.stubEnv('AZURE_OPENAI_API_KEY', KEY);
});
afterEach(() => {
  vi.unstubAllEnvs();
  seen = [];
  flakyServed = false;
});

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await main(['eval', ...args], { out: (s) => void (out += s), err: (s) => void (err += s) });
  expect(out + err).not.toContain(KEY);
  expect(out + err).not.toContain('CLI-KEY');
  return { code, out, err };
}
const judgeFlags = () => ['--judge-url', `${base}/v1`, '--judge-model', 'judge-m', '--chexprompt-dir', cxpDir, '--judge-rpm', '100000'];
const lastJson = (s: string) => JSON.parse(s.trim().split('\n').at(-1)!) as Record<string, any>;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('llava-rad eval --metrics ...,chexprompt', () => {
  it('--json: metrics.chexprompt with score = significant errors per report, its CI, the summary, the prompt sha256 and the failures', async () => {
    const r = await cli([preds, '--metrics', 'rouge,chexprompt', ...judgeFlags(), '--json', '--bootstrap', '50']);
    expect(r.code, r.err).toBe(0);
    const j = lastJson(r.out);
    expect(j.n).toBe(7);
    expect(j.skipped).toBe(1);
    expect(Object.keys(j.metrics)).toEqual(['rougeL', 'chexprompt']);
    const c = j.metrics.chexprompt;
    expect(c.n).toBe(7);
    expect(c.rated).toBe(6);
    expect(c.failed).toBe(1);
    expect(c.score).toBeCloseTo(mean(SIG_COUNTS), 12);
    expect(c.significant.mean).toBe(c.score);
    expect(c.ci).toEqual(c.significant.ci);
    expect(c.ci[0]).toBeLessThanOrEqual(c.score);
    expect(c.ci[1]).toBeGreaterThanOrEqual(c.score);
    expect(c.insignificant.mean).toBeCloseTo(1, 12);
    expect(c.total.mean).toBeCloseTo(mean(SIG_COUNTS) + 1, 12);
    expect(c.noSignificantErrors).toBeCloseTo(3 / 6, 12);
    expect(c.byType.clinically_significant.false_positive_finding).toBeCloseTo(mean(SIG_COUNTS), 12);
    expect(c.judge.model).toBe('judge-m');
    expect(c.judge.provider).toBe('openai');
    expect(c.judge.params.temperature).toBe(0);
    expect(c.judge.prompt.sha256).toBe(loadChexpromptTemplate(cxpDir).sha256);
    expect(c.failures).toEqual([{ id: 'bad-study', index: 3, code: 'BAD_JUDGE_RESPONSE', message: expect.stringContaining("CheXprompt's format") }]);
    // the unparseable study was asked twice (chexprompt's max_retries 1), the flaky one retried after its 503
    expect(seen.filter((s) => s.body.messages[1].content.includes('GARBLED'))).toHaveLength(2);
    expect(seen.filter((s) => s.body.messages[1].content.includes('FLAKY'))).toHaveLength(2);
    expect(seen).toHaveLength(6 + 2 + 1);
    expect(seen[0]!.url).toBe('/v1/chat/completions');
    expect(seen[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(seen[0]!.body.model).toBe('judge-m');
    // stderr: the skipped record, the retry (reason only), the failure count; no progress with --json
    expect(r.err).toContain('skipped 1 record(s) with an error');
    expect(r.err).toMatch(/CheXprompt judge: HTTP 503 \(attempt 1\), retrying in \d+\.\ds\n/);
    expect(r.err).toContain('CheXprompt: 1 of 7 studies without a usable rating (left out; first: bad-study: BAD_JUDGE_RESPONSE');
    expect(r.err).not.toContain('studies judged');
    expect(r.err).not.toContain(base);
  });

  it('the table: significant / insignificant / total means with CIs and the share without a significant error; progress on stderr', async () => {
    const r = await cli([preds, '--metrics', 'chexprompt', ...judgeFlags(), '--bootstrap', '40', '--judge-temperature', '0.4']);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('7 studies, 40 bootstrap resamples');
    expect(lines[1]).toMatch(/^metric +score +95% CI$/);
    const m = mean(SIG_COUNTS).toFixed(4);
    expect(r.out).toMatch(new RegExp(`\\nCheXprompt significant errors/report +${m.replace('.', '\\.')} +\\[\\d\\.\\d{4}, \\d\\.\\d{4}\\]\\n`));
    expect(r.out).toMatch(/\nCheXprompt insignificant errors\/report +1\.0000 +\[1\.0000, 1\.0000\]\n/);
    expect(r.out).toMatch(/\nCheXprompt total errors\/report +\d\.\d{4} +\[\d\.\d{4}, \d\.\d{4}\]\n/);
    expect(r.out).toMatch(/\nCheXprompt share without significant error +0\.5000 +-\n$/);
    expect(r.out).not.toMatch(/BLEU|ROUGE/);
    expect(r.err).toMatch(/llava-rad eval: CheXprompt: 7\/7 studies judged, 1 without a rating, \d+s\n/);
    expect(seen[0]!.body.temperature).toBe(0.4);
    // -q: neither progress nor retries
    const q = await cli([preds, '--metrics', 'chexprompt', ...judgeFlags(), '--bootstrap', '20', '-q']);
    expect(q.code).toBe(0);
    expect(q.err).not.toMatch(/studies judged|retrying/);
  });

  it('--judge-url alone adds chexprompt to bleu,rouge; --html has the judge summary (no key, no URL)', async () => {
    const html = join(tmp, 'report.html');
    const r = await cli([preds, ...judgeFlags(), '--json', '--bootstrap', '30', '--html', html]);
    expect(r.code, r.err).toBe(0);
    const j = lastJson(r.out);
    expect(Object.keys(j.metrics)).toEqual(['bleu1', 'bleu4', 'rougeL', 'chexprompt']);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<h2>CheXprompt (LLM judge)</h2>');
    expect(page).toContain('6 of 7 studies rated, 1 without a usable rating (left out).');
    expect(page).toContain(j.metrics.chexprompt.judge.prompt.sha256);
    const c = j.metrics.chexprompt;
    expect(page).toContain(`<th scope="row">clinically significant</th><td>${c.significant.mean.toFixed(4)}</td><td>[${c.ci[0].toFixed(4)}, ${c.ci[1].toFixed(4)}]</td>`);
    expect(page).toContain('<th scope="row">reports with no clinically significant error (share)</th><td>0.5000</td>');
    expect(page).toContain('<th scope="row">false_positive_finding</th>');
    expect(page).toContain('<th scope="row">ROUGE-L</th>');
    expect(page).not.toContain(KEY);
    expect(page).not.toContain(base);
  });

  it('Azure OpenAI with --judge-api-version: the deployment URL and the api-key header', async () => {
    const r = await cli([preds, '--metrics', 'chexprompt', ...judgeFlags(), '--judge-api-version', '2024-06-01', '--json', '--bootstrap', '10', '--judge-concurrency', '1']);
    expect(r.code, r.err).toBe(0);
    expect(lastJson(r.out).metrics.chexprompt.judge.provider).toBe('azure');
    expect(seen[0]!.url).toBe('/v1/openai/deployments/judge-m/chat/completions?api-version=2024-06-01');
    expect(seen[0]!.headers['api-key']).toBe(KEY);
    expect(seen[0]!.headers.authorization).toBeUndefined();
  });

  it('--paired: both files judged, errors per report compared on the studies rated in both, with the paired resamples', async () => {
    const a = join(tmp, 'a.jsonl');
    const b = join(tmp, 'b.jsonl');
    writeFileSync(a, [...STUDIES, GARBLED].map((r) => JSON.stringify(r)).join('\n') + '\n');
    // B: study k gets candidate "cand k+1", so (k + 1) % 3 significant errors; bad-study garbled in both
    writeFileSync(b, [...STUDIES.map((s, k) => ({ ...s, prediction: `cand ${k + 1}` })), GARBLED].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = await cli([a, b, '--paired', '--metrics', 'rouge,chexprompt', ...judgeFlags(), '--json', '--bootstrap', '200']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/1 of 6 studies without a usable rating in A or B/);
    const j = lastJson(r.out);
    expect(j.n).toBe(6);
    expect(j.metrics.rougeL).toBeDefined();
    const sigA = [0, 1, 2, 0, 1];
    const sigB = [1, 2, 0, 1, 2];
    const c = j.metrics.chexprompt;
    expect(c.rated).toBe(5);
    expect(c.significant).toEqual(pairedMeans(sigA, sigB, 200));
    expect(c.significant.a).toBeCloseTo(mean(sigA), 12);
    expect(c.significant.b).toBeCloseTo(mean(sigB), 12);
    expect(c.insignificant).toMatchObject({ a: 1, b: 1, diff: 0, ci: [0, 0] });
    const table = await cli([a, b, '--paired', '--metrics', 'chexprompt', ...judgeFlags()]);
    expect(table.code, table.err).toBe(0);
    expect(table.out).toMatch(/CheXprompt significant errors\/report\s+0\.8000\s+1\.2000\s+0\.4000/);
  });

  it('usage errors (exit 2, one line, nothing sent): missing judge flags, --paired, bad values, unknown metric', async () => {
    const oneLine = (r: { code: number; err: string; out: string }) => {
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      expect(r.err.trim().split('\n')).toHaveLength(1);
      return r.err;
    };
    expect(oneLine(await cli([preds, '--metrics', 'chexprompt']))).toMatch(/needs --judge-url URL, --judge-model NAME, --chexprompt-dir DIR/);
    const noDir = oneLine(await cli([preds, '--judge-url', `${base}/v1`, '--judge-model', 'm']));
    expect(noDir).toMatch(/needs --chexprompt-dir DIR/);
    expect(noDir).not.toMatch(/--judge-url URL/);
    expect(oneLine(await cli([preds, '--metrics', 'chexprompt', ...judgeFlags(), '--judge-concurrency', '0']))).toMatch(/--judge-concurrency/);
    expect(oneLine(await cli([preds, '--metrics', 'chexprompt', ...judgeFlags(), '--judge-timeout', 'soon']))).toMatch(/--judge-timeout/);
    expect(oneLine(await cli([preds, '--metrics', 'chexprompt', '--judge-url', 'ftp://127.0.0.1/v1', '--judge-model', 'm', '--chexprompt-dir', cxpDir]))).toMatch(/judge url/);
    expect(oneLine(await cli([preds, '--metrics', 'chexprompt', '--judge-url', `${base}/v1`, '--judge-model', 'm', '--chexprompt-dir', join(tmp, 'nope')]))).toMatch(/not a directory/);
    // an unknown name is a usage error naming every metric the CLI knows, before the judge is asked anything
    expect(oneLine(await cli([preds, '--metrics', 'rouge,judge,chexprompt', ...judgeFlags()]))).toMatch(/metrics must be among bleu, rouge, chexbert, radgraph, chexprompt, green, got "judge"/);
    expect(seen).toHaveLength(0);
  });
});
