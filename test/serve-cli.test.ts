// `llava-rad serve` as users run it (dist/cli.js in a child process, tiny models, 127.0.0.1, port 0): curl's
// multipart and OpenAI's client request shape answer the library's findings; SIGTERM drains (the study in
// flight finishes, nothing new is taken, exit 0) or, past the grace period, cancels; bad arguments exit 2.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FindingsResult, LlavaRad } from '../lib/index.js';
import type { PredictionRecord } from '../lib/batch/record.js';
import { chatBody, form, jsonPost, loadTinyLlavaRad, PORTRAIT_PNG, sseReader, VISION, waitFor } from './helpers/serve-http.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cli.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-serve-cli-'));
const REASON = 'Fever and cough';

let model: LlavaRad;
let ref: FindingsResult;
beforeAll(async () => {
  symlinkSync(await tinyLlamaPath('f32'), path.join(tmp, 'tiny-decoder.gguf'));
  symlinkSync(VISION, path.join(tmp, 'tiny-vision.gguf'));
  model = await loadTinyLlavaRad(1, 16);
  ref = await model.generateFindings(readFileSync(PORTRAIT_PNG), REASON, { maxTokens: 16 });
});
afterAll(async () => {
  await model?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

interface Child {
  proc: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
  exit: Promise<number | null>;
}

async function start(extra: string[]): Promise<Child> {
  const proc = spawn(process.execPath, [cli, 'serve', '--model', tmp, '--port', '0', '--threads', '2', '--concurrency', '2', '--max-tokens', '1024', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  let err = '';
  let buf = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
  });
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  await Promise.race([
    waitFor(() => lines.some((l) => l.event === 'listening')),
    exit.then((code) => { throw new Error(`serve exited (${code}) before listening: ${err}`); }),
  ]);
  const url = String(lines.find((l) => l.event === 'listening')!.url).replace(/\/$/, '');
  return { proc, url, lines, exit };
}

const longStream = (url: string) => fetch(`${url}/v1/findings`, {
  method: 'POST', headers: { accept: 'text/event-stream' }, body: form(PORTRAIT_PNG, { max_tokens: '1024', ignore_eos: 'true' }),
});

describe('llava-rad serve (the CLI)', () => {
  it('binds 127.0.0.1; curl multipart and the OpenAI clients\' request shape answer the library\'s findings', async () => {
    const c = await start([]);
    try {
      expect(c.lines[0]).toMatchObject({ event: 'listening', host: '127.0.0.1', concurrency: 2, queue: 16, api_key: false });
      const r = (await (await fetch(`${c.url}/v1/findings`, { method: 'POST', body: form(PORTRAIT_PNG, { reason: REASON, max_tokens: '16' }) })).json()) as PredictionRecord;
      expect(r.findings, 'multipart: the library\'s findings').toBe(ref.findings);
      expect(r.tokens).toEqual(ref.tokens);
      const chat = (await (await fetch(`${c.url}/v1/chat/completions`, jsonPost(chatBody(PORTRAIT_PNG, REASON, { max_tokens: 16 }), { authorization: 'Bearer unused' }))).json()) as Record<string, any>;
      expect(chat.choices[0].message.content, 'chat completion: the library\'s findings').toBe(ref.findings);
      const page = await fetch(`${c.url}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('Research use only');
    } finally {
      c.proc.kill('SIGTERM');
      expect(await c.exit).toBe(0);
    }
    const logs = c.lines.filter((l) => l.method !== undefined);
    expect(logs.map((l) => [l.method, l.url, l.status]), 'one log line per request').toEqual([['POST', '/v1/findings', 200], ['POST', '/v1/chat/completions', 200], ['GET', '/', 200]]);
  });

  it('the reader of its log (stdout) going away does not end the server: it answers on, then drains on SIGTERM, exit 0 (was: exit at the next log line)', async () => {
    const c = await start([]);
    c.proc.stdout!.destroy(); // the pipe's read end closed: the next log line gets EPIPE
    for (let i = 0; i < 3; i++) expect((await fetch(`${c.url}/health`)).status, `request ${i + 1} after the log reader left`).toBe(200);
    const r = (await (await fetch(`${c.url}/v1/findings`, { method: 'POST', body: form(PORTRAIT_PNG, { reason: REASON, max_tokens: '16' }) })).json()) as PredictionRecord;
    expect(r.tokens).toEqual(ref.tokens);
    c.proc.kill('SIGTERM');
    expect(await c.exit).toBe(0);
  });

  it('SIGTERM drains: the study in flight finishes, new requests are refused, then exit 0', async () => {
    const c = await start(['--drain-grace-ms', '120000']);
    const stream = sseReader(await longStream(c.url));
    await stream.until((ev) => ev.length > 0);
    expect(stream.events[0]!.event).toBe('token');
    c.proc.kill('SIGTERM');
    await waitFor(() => c.lines.some((l) => l.event === 'draining'));
    expect(c.lines.find((l) => l.event === 'draining')).toMatchObject({ in_flight: 1 });
    const late = await fetch(`${c.url}/health`).then((r) => r.status, (e: Error) => e.message);
    expect([503, 'fetch failed'], `a request after SIGTERM is refused (got ${late})`).toContain(late);
    expect(await stream.until((ev) => ev.some((e) => e.event !== 'token')), 'the stream goes on to its end').toBe(true);
    const last = stream.events[stream.events.length - 1]!;
    expect(last.event, 'the study in flight ends with its record').toBe('record');
    expect((JSON.parse(last.data) as PredictionRecord).tokens).toHaveLength(1024);
    expect(await c.exit, 'exit status after the drain').toBe(0);
    expect(c.lines.some((l) => l.event === 'closed')).toBe(true);
    const done = c.lines.find((l) => l.url === '/v1/findings')!;
    expect(done, 'the study in flight finished: 200 with all its tokens').toMatchObject({ status: 200, tokens: 1024 });
  });

  it('past --drain-grace-ms the study in flight is cancelled with a SHUTTING_DOWN error event', async () => {
    const c = await start(['--drain-grace-ms', '100']);
    const stream = sseReader(await longStream(c.url));
    await stream.until((ev) => ev.length > 0);
    c.proc.kill('SIGTERM');
    await stream.until((ev) => ev.some((e) => e.event !== 'token'));
    const last = stream.events[stream.events.length - 1]!;
    expect(last.event, 'the cancelled study ends with an error event').toBe('error');
    expect(JSON.parse(last.data).error.code).toBe('SHUTTING_DOWN');
    expect(stream.events.length - 1, 'tokens streamed before the cancel, of 1024').toBeLessThan(1024);
    expect(await c.exit).toBe(0);
    expect(c.lines.find((l) => l.url === '/v1/findings')).toMatchObject({ code: 'SHUTTING_DOWN' });
  });

  it('bad arguments exit 2 with a message that says what was expected', () => {
    const r = spawnSync(process.execPath, [cli, 'serve', '--model', tmp, '--port', '70000'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--port must be an integer between 0 and 65535, got '70000'/);
    const q = spawnSync(process.execPath, [cli, 'serve', '--model', tmp, '--queue', '-1'], { encoding: 'utf8' });
    expect(q.status).toBe(2);
    expect(q.stderr).toMatch(/--queue/);
    const t = spawnSync(process.execPath, [cli, 'serve', '--model', tmp, '--request-timeout-ms', '-5'], { encoding: 'utf8' });
    expect(t.status).toBe(2);
    expect(t.stderr).toMatch(/--request-timeout-ms must be an integer between 0 and 86400000, got '-5'/);
    const u = spawnSync(process.execPath, [cli, 'serve', '--model', tmp, '--upload-budget-mb', '0'], { encoding: 'utf8' });
    expect(u.status).toBe(2);
    expect(u.stderr).toMatch(/--upload-budget-mb must be an integer between 1 and 1048576, got '0'/);
  });
});
