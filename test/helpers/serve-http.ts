// HTTP helpers for the server tests: a tiny model served on 127.0.0.1, requests shaped as curl and OpenAI's
// clients send them, and Server-Sent Events read back into events.
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { contextPerStudy } from '../../lib/batch/engine.js';
import { loadLlavaRad, type LlavaRad } from '../../lib/llava-rad.js';
import { createServer, type LlavaRadServer, type ServeOptions } from '../../lib/serve/server.js';
import { tinyLlamaPath } from './tiny-llama.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURES = path.join(here, '..', 'fixtures');
export const VISION = path.join(FIXTURES, 'vision', 'tiny-vision-f32.gguf');
export const PORTRAIT_PNG = path.join(FIXTURES, 'images', 'grey_517x1033.png');
export const LANDSCAPE_JPG = path.join(FIXTURES, 'images', 'grey_2000x1600.jpg');
export const DICOM = path.join(FIXTURES, 'dicom', 's16_mono2.dcm');

/** the tiny f32 decoder + tiny vision tower, `parallel` sequences, room for `maxTokens` */
export async function loadTinyLlavaRad(parallel: number, maxTokens: number): Promise<LlavaRad> {
  return loadLlavaRad({ decoder: await tinyLlamaPath('f32'), vision: VISION, threads: 2, parallel, contextSize: contextPerStudy(maxTokens) });
}

export interface Served {
  server: LlavaRadServer;
  url: string;
  logs: string[];
  close(): Promise<void>;
}

export async function serve(options: ServeOptions): Promise<Served> {
  const logs: string[] = [];
  const server = await createServer({ log: (l) => logs.push(l), ...options });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = server.app.server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${addr.port}`, logs, close: () => server.app.close() };
}

/** multipart/form-data as `curl -F image=@FILE -F reason=...` sends it */
export function form(file: string, fields: Record<string, string> = {}, bytes: Uint8Array = readFileSync(file)): FormData {
  const fd = new FormData();
  fd.append('image', new Blob([bytes]), path.basename(file));
  for (const [k, v] of Object.entries(fields)) fd.append(k, v);
  return fd;
}

/** the body OpenAI's Python / JS clients send for one user message with text and an image data URI */
export function chatBody(file: string, text: string | null, extra: Record<string, unknown> = {}) {
  const mime = file.endsWith('.png') ? 'image/png' : file.endsWith('.jpg') ? 'image/jpeg' : 'application/dicom';
  const content: unknown[] = [];
  if (text !== null) content.push({ type: 'text', text });
  content.push({ type: 'image_url', image_url: { url: `data:${mime};base64,${readFileSync(file).toString('base64')}` } });
  return { model: 'llava-rad', messages: [{ role: 'user', content }], ...extra };
}

export const jsonPost = (body: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
  body: JSON.stringify(body),
});

export interface SseEvent {
  event: string | null;
  data: string;
}

/** splits a complete event-stream body into events (checks the framing: "field: value" lines, blank-line separated) */
export function parseSse(text: string): SseEvent[] {
  if (!text.endsWith('\n\n')) throw new Error(`an event stream must end with a blank line, got ...${JSON.stringify(text.slice(-40))}`);
  return text.slice(0, -2).split('\n\n').map((block) => {
    let event: string | null = null;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      const m = /^(event|data): (.*)$/.exec(line);
      if (!m) throw new Error(`not an event-stream line: ${JSON.stringify(line)}`);
      if (m[1] === 'event') event = m[2]!;
      else data.push(m[2]!);
    }
    return { event, data: data.join('\n') };
  });
}

/** an event-stream response read as it comes: until(pred) reads until pred(events) holds (false if it ended first) */
export function sseReader(res: Response) {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  const events: SseEvent[] = [];
  return {
    events,
    async until(pred: (events: SseEvent[]) => boolean): Promise<boolean> {
      while (!pred(events)) {
        const { value, done } = await reader.read();
        if (done) return false;
        buf += value;
        const cut = buf.lastIndexOf('\n\n');
        if (cut >= 0) {
          events.push(...parseSse(buf.slice(0, cut + 2)));
          buf = buf.slice(cut + 2);
        }
      }
      return true;
    },
    cancel: () => reader.cancel().catch(() => {}),
  };
}

/** reads a streaming response until `until` says stop, then aborts it (a client going away) */
export async function readSseUntil(res: Response, until: (events: SseEvent[]) => boolean, abort?: AbortController): Promise<SseEvent[]> {
  const r = sseReader(res);
  await r.until(until);
  abort?.abort();
  await r.cancel();
  return r.events;
}

/** a metric's value from the Prometheus text (0 when the series is absent) */
export async function metric(url: string, series: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

/** polls `f` until it is true (no timing assertion: the test's own timeout bounds it) */
export async function waitFor(f: () => Promise<boolean> | boolean, stepMs = 20): Promise<void> {
  while (!(await f())) await new Promise((r) => setTimeout(r, stepMs));
}

export interface RawAnswer {
  /** the status line's code, or 0 when the server closed without answering */
  status: number;
  /** the response body (what follows the blank line) */
  body: string;
  /** whether the server closed the connection (rather than the `waitMs` limit) */
  closedByServer: boolean;
}

/**
 * Sends `head` over a raw TCP connection, then one byte of `drip` every `dripMs` (if given), and collects what the
 * server writes until it closes the connection or `waitMs` passes: for requests no HTTP client would send.
 */
export function rawRequest(url: string, head: string, opts: { drip?: string; dripMs?: number; waitMs: number }): Promise<RawAnswer> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    let out = '';
    let timer: NodeJS.Timeout | undefined;
    let drip: NodeJS.Timeout | undefined;
    const done = (closedByServer: boolean) => {
      clearTimeout(timer);
      clearInterval(drip);
      c.destroy();
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(out)?.[1] ?? 0);
      resolve({ status, body: out.slice(out.indexOf('\r\n\r\n') + 4), closedByServer });
    };
    const c = connect(Number(port), '127.0.0.1', () => {
      c.write(head);
      if (opts.drip !== undefined) drip = setInterval(() => c.writable && c.write(opts.drip!), opts.dripMs ?? 100);
      timer = setTimeout(() => done(false), opts.waitMs);
    });
    c.setEncoding('utf8');
    c.on('data', (d: string) => (out += d));
    c.on('error', () => {});
    c.on('close', () => done(true));
  });
}
