// Load on 127.0.0.1: 200 requests at once (multipart JSON, JSON base64, SSE, OpenAI stream), every one
// answered exactly once with the library's tokens for its reason, none lost or doubled (responses, log lines,
// metrics), RSS flat between the two halves. Bounded by the test timeout, no timing assertions.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LlavaRad } from '../lib/index.js';
import type { PredictionRecord } from '../lib/batch/record.js';
import { chatBody, form, jsonPost, loadTinyLlavaRad, metric, parseSse, PORTRAIT_PNG, serve, waitFor, type Served } from './helpers/serve-http.js';

const TOKENS = 4;
const REASONS = ['Cough', 'Fever', 'Chest pain', 'Trauma'];
const portrait = readFileSync(PORTRAIT_PNG);

let model: LlavaRad;
let s: Served;
const ref = new Map<string, number[]>();

beforeAll(async () => {
  model = await loadTinyLlavaRad(4, TOKENS);
  s = await serve({ model, concurrency: 4, queue: 256, maxTokens: TOKENS });
  for (const r of REASONS) ref.set(r, (await model.generateFindings(portrait, r, { maxTokens: TOKENS })).tokens);
});
afterAll(async () => {
  await s?.close();
  await model?.dispose();
});

/** request i, answered: the tokens it got and the reason it asked with */
async function one(i: number): Promise<{ i: number; reason: string; tokens: number[] }> {
  const reason = REASONS[i % REASONS.length]!;
  switch (i % 4) {
    case 0: {
      const r = (await (await fetch(`${s.url}/v1/findings`, { method: 'POST', body: form(PORTRAIT_PNG, { reason }) })).json()) as PredictionRecord;
      return { i, reason: r.reason!, tokens: r.tokens! };
    }
    case 1: {
      const r = (await (await fetch(`${s.url}/v1/findings`, jsonPost({ image: portrait.toString('base64'), reason }))).json()) as PredictionRecord;
      return { i, reason: r.reason!, tokens: r.tokens! };
    }
    case 2: {
      const events = parseSse(await (await fetch(`${s.url}/v1/findings`, { method: 'POST', headers: { accept: 'text/event-stream' }, body: form(PORTRAIT_PNG, { reason }) })).text());
      const records = events.filter((e) => e.event === 'record');
      if (records.length !== 1) throw new Error(`request ${i}: ${records.length} record events`);
      const r = JSON.parse(records[0]!.data) as PredictionRecord;
      return { i, reason: r.reason!, tokens: r.tokens! };
    }
    default: {
      const events = parseSse(await (await fetch(`${s.url}/v1/chat/completions`, jsonPost(chatBody(PORTRAIT_PNG, reason, { stream: true, stream_options: { include_usage: true } })))).text());
      if (events.filter((e) => e.data === '[DONE]').length !== 1) throw new Error(`request ${i}: not one [DONE]`);
      const usage = JSON.parse(events[events.length - 2]!.data) as { usage: { completion_tokens: number } };
      return { i, reason, tokens: Array.from({ length: usage.usage.completion_tokens }, () => -1) };
    }
  }
}

const rssMB = () => process.memoryUsage().rss / 2 ** 20;

it('200 concurrent requests: each answered exactly once with the library\'s tokens, nothing lost, RSS flat', async () => {
  await Promise.all(Array.from({ length: 20 }, (_, i) => one(i))); // warm-up: buffers, caches, JIT
  const logsBefore = s.logs.length;
  const rss0 = rssMB();
  const first = await Promise.all(Array.from({ length: 100 }, (_, i) => one(i)));
  const rss1 = rssMB();
  const second = await Promise.all(Array.from({ length: 100 }, (_, i) => one(100 + i)));
  const rss2 = rssMB();
  const answers = [...first, ...second];

  expect(answers.map((a) => a.i), 'every request answered, in its own promise').toEqual(Array.from({ length: 200 }, (_, i) => i));
  for (const a of answers) {
    expect(a.reason, `request ${a.i}: its own reason came back`).toBe(REASONS[a.i % REASONS.length]);
    const want = ref.get(a.reason)!;
    if (a.i % 4 === 3) expect(a.tokens.length, `request ${a.i}: completion_tokens`).toBe(want.length);
    else expect(a.tokens, `request ${a.i}: the library's tokens for "${a.reason}"`).toEqual(want);
  }
  await waitFor(() => s.logs.length >= logsBefore + 200);
  const lines = s.logs.slice(logsBefore).map((l) => JSON.parse(l) as { id: string; status: number });
  expect(lines.length, 'one log line per request, no more').toBe(200);
  expect(new Set(lines.map((l) => l.id)).size, 'distinct request ids').toBe(200);
  expect(lines.every((l) => l.status === 200), 'every request 200').toBe(true);
  expect(await metric(s.url, 'llava_rad_studies_total{outcome="ok"}'), 'studies run: 20 warm-up + 200').toBe(220);
  expect(await metric(s.url, 'llava_rad_requests_in_flight')).toBe(0);
  expect(rss2 - rss1, `RSS after the warm-up ${rss0.toFixed(0)} MB, after 100 ${rss1.toFixed(0)} MB, after 200 ${rss2.toFixed(0)} MB: the second 100 may add at most 150 MB`).toBeLessThan(150);
}, 600_000);
