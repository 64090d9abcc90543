// POST /v1/findings: one study (multipart: an "image" file and a "reason" field; or JSON with the image as
// base64). Answers the record `batch` writes, as JSON; or, with Accept: text/event-stream, a "token" event per
// generated token and then a "record" event (an "error" event instead when the study fails).

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { toHttpError } from './http-errors.js';
import { optionalBool, optionalInt, optionalString, readImageInput } from './input.js';
import { clientGoneSignal, SseStream } from './sse.js';
import type { StudyRequest, StudyRunner } from './study.js';
import { noteRequest } from './request-log.js';

export const wantsEventStream = (request: FastifyRequest) => /\btext\/event-stream\b/i.test(request.headers.accept ?? '');

export function findingsRoute(app: FastifyInstance, runner: StudyRunner): void {
  app.post('/v1/findings', async (request: FastifyRequest, reply: FastifyReply) => {
    const input = await readImageInput(request);
    const stream = wantsEventStream(request);
    const sse: { s: SseStream | null } = { s: null };
    const study: StudyRequest = {
      image: input.image,
      source: input.source,
      reason: optionalString(input.fields, 'reason'),
      maxTokens: runner.maxTokensFor(optionalInt(input.fields, 'max_tokens')),
      ignoreEos: optionalBool(input.fields, 'ignore_eos'),
      clientGone: clientGoneSignal(reply),
      ...(stream ? { onToken: (e) => sse.s?.send({ index: e.index, token: e.token, text: e.text }, 'token') } : {}),
    };
    const outcome = runner.start(study); // refused here: a plain HTTP error (429, 503)
    if (!stream) {
      const { record } = await outcome;
      noteRequest(request, { tokens: record.tokens?.length ?? 0 });
      return reply.send(record);
    }
    sse.s = new SseStream(reply);
    try {
      const { record } = await outcome;
      noteRequest(request, { tokens: record.tokens?.length ?? 0 });
      sse.s.send(record, 'record');
    } catch (e) {
      const err = toHttpError(e);
      noteRequest(request, { code: err.body.error.code });
      sse.s.send(err.body, 'error');
    }
    sse.s.end();
    return reply;
  });
}
