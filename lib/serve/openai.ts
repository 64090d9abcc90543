// POST /v1/chat/completions, shaped as OpenAI's Chat Completions API so that its SDKs, LangChain and curl
// recipes work: one user message whose content holds one image_url part (a base64 data: URI) and optional
// text parts (the reason for the exam). System and developer messages are accepted and ignored (LLaVA-Rad's
// conversation template is fixed); sampling is greedy, as the official evaluation, unless temperature is
// given. stream: true answers chat.completion.chunk events and "data: [DONE]".

import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { describeValue } from '../errors.js';
import type { FindingsResult } from '../llava-rad.js';
import { ServeError, toHttpError } from './http-errors.js';
import { decodeBase64Image } from './input.js';
import { noteRequest } from './request-log.js';
import { clientGoneSignal, SseStream } from './sse.js';
import type { StudyRequest, StudyRunner } from './study.js';

interface ChatRequest {
  image: Buffer;
  reason: string | null;
  maxTokens: unknown;
  stream: boolean;
  includeUsage: boolean;
  temperature?: number;
  topP?: number;
  seed?: number;
}

const bad = (message: string) => new ServeError('INVALID_ARGUMENT', message);

function numberIn(v: unknown, name: string, lo: number, hi: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) throw bad(`${name} must be a number from ${lo} to ${hi}, got ${describeValue(v)}`);
  return v;
}

/** the one user message's image and text */
function userContent(messages: unknown): { image: Buffer; text: string } {
  if (!Array.isArray(messages) || messages.length === 0) throw bad(`messages must be a non-empty array, got ${describeValue(messages)}`);
  const users = [];
  for (const [i, m] of messages.entries()) {
    const role: unknown = (m as { role?: unknown } | null)?.role;
    if (role === 'user') users.push(m as { content?: unknown });
    else if (role !== 'system' && role !== 'developer') {
      throw bad(`messages[${i}].role must be "user" (or "system", ignored): LLaVA-Rad answers one user turn, got ${describeValue(role)}`);
    }
  }
  if (users.length !== 1) throw bad(`messages must hold exactly one user message (an image_url and optional text), got ${users.length}`);
  const content = users[0]!.content;
  if (!Array.isArray(content)) throw bad('the user message\'s content must be an array of parts with one {"type": "image_url", "image_url": {"url": "data:image/...;base64,..."}}: LLaVA-Rad needs a chest X-ray');
  const images: Buffer[] = [];
  const texts: string[] = [];
  for (const [i, part] of content.entries()) {
    const p = part as { type?: unknown; text?: unknown; image_url?: unknown } | null;
    if (p?.type === 'text') {
      if (typeof p.text !== 'string') throw bad(`content[${i}].text must be a string, got ${describeValue(p.text)}`);
      texts.push(p.text);
    } else if (p?.type === 'image_url') {
      const url = typeof p.image_url === 'string' ? p.image_url : (p.image_url as { url?: unknown } | null)?.url;
      images.push(decodeBase64Image(url, `content[${i}].image_url.url`));
    } else {
      throw bad(`content[${i}].type must be "text" or "image_url", got ${describeValue(p?.type)}`);
    }
  }
  if (images.length !== 1) throw bad(`the user message must carry exactly one image_url part, got ${images.length}`);
  return { image: images[0]!, text: texts.join(' ').trim() };
}

export function parseChatRequest(body: unknown): ChatRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw bad(`the body must be a JSON object, got ${describeValue(body)}`);
  const b = body as Record<string, unknown>;
  const { image, text } = userContent(b.messages);
  if (b.n !== undefined && b.n !== null && b.n !== 1) throw bad(`n must be 1, got ${describeValue(b.n)}`);
  if (b.stream !== undefined && b.stream !== null && typeof b.stream !== 'boolean') throw bad(`stream must be true or false, got ${describeValue(b.stream)}`);
  const seed = b.seed;
  if (seed !== undefined && seed !== null && (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)) {
    throw bad(`seed must be an integer from 0 to 4294967295, got ${describeValue(seed)}`);
  }
  const temperature = numberIn(b.temperature, 'temperature', 0, 2);
  const topP = numberIn(b.top_p, 'top_p', 0, 1);
  return {
    image,
    reason: text === '' ? null : text,
    maxTokens: b.max_completion_tokens ?? b.max_tokens,
    stream: b.stream === true,
    includeUsage: (b.stream_options as { include_usage?: unknown } | null | undefined)?.include_usage === true,
    ...(temperature !== undefined ? { temperature } : {}),
    ...(topP !== undefined ? { topP } : {}),
    ...(typeof seed === 'number' ? { seed } : {}),
  };
}

const finishReason = (r: FindingsResult) => (r.stopReason === 'eos' ? 'stop' : 'length');

function usage(r: FindingsResult) {
  const prompt = r.prompt.before.length + r.prompt.imageRows + r.prompt.after.length;
  return { prompt_tokens: prompt, completion_tokens: r.tokens.length, total_tokens: prompt + r.tokens.length };
}

/** what LLaVA-Rad adds to a completion: ignored by OpenAI's clients, there for ours */
const extension = (r: FindingsResult) => ({ warnings: r.warnings, stop_reason: r.stopReason, research_use_only: true, notice: r.notice });

export function openaiRoute(app: FastifyInstance, runner: StudyRunner, modelId: string): void {
  app.post('/v1/chat/completions', async (request: FastifyRequest, reply: FastifyReply) => {
    const chat = parseChatRequest(request.body);
    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const head = { id, object: 'chat.completion.chunk', created, model: modelId, system_fingerprint: null };
    const sse: { s: SseStream | null; started: boolean } = { s: null, started: false };
    const delta = (content: string) => {
      if (!sse.s) return;
      // the first words lose their leading space, as the findings do (post-processing strips them)
      const text = sse.started ? content : content.trimStart();
      if (text === '') return;
      sse.started = true;
      sse.s.send({ ...head, choices: [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }] });
    };
    const study: StudyRequest = {
      image: chat.image,
      source: 'upload',
      reason: chat.reason,
      maxTokens: runner.maxTokensFor(chat.maxTokens),
      clientGone: clientGoneSignal(reply),
      ...(chat.temperature !== undefined ? { temperature: chat.temperature } : {}),
      ...(chat.topP !== undefined ? { topP: chat.topP } : {}),
      ...(chat.seed !== undefined ? { seed: chat.seed } : {}),
      ...(chat.stream ? { onToken: (e) => delta(e.text) } : {}),
    };
    const outcome = runner.start(study);
    if (!chat.stream) {
      const { result } = await outcome;
      noteRequest(request, { tokens: result.tokens.length });
      return reply.send({
        id, object: 'chat.completion', created, model: modelId, system_fingerprint: null,
        choices: [{ index: 0, message: { role: 'assistant', content: result.findings, refusal: null }, logprobs: null, finish_reason: finishReason(result) }],
        usage: usage(result),
        llava_rad: extension(result),
      });
    }
    sse.s = new SseStream(reply);
    sse.s.send({ ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
    try {
      const { result } = await outcome;
      noteRequest(request, { tokens: result.tokens.length });
      sse.s.send({ ...head, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finishReason(result) }], llava_rad: extension(result) });
      if (chat.includeUsage) sse.s.send({ ...head, choices: [], usage: usage(result) });
      sse.s.send('[DONE]');
    } catch (e) {
      const err = toHttpError(e);
      noteRequest(request, { code: err.body.error.code });
      sse.s.send(err.body); // as OpenAI does mid-stream: an error object, no [DONE]
    }
    sse.s.end();
    return reply;
  });
}
