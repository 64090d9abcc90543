// One JSON line per request when its connection is done with it (answered, or the client went away), and the
// request counters and latency histogram that go with it.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServeMetrics } from './metrics.js';

export interface RequestNote {
  /** the error code answered, if any */
  code?: string;
  /** tokens generated for it */
  tokens?: number;
}

const notes = new WeakMap<FastifyRequest, RequestNote>();

/** adds to what the request's log line will say */
export function noteRequest(request: FastifyRequest, note: RequestNote): void {
  notes.set(request, { ...notes.get(request), ...note });
}

export function installRequestLog(app: FastifyInstance, metrics: ServeMetrics, log: (line: string) => void): void {
  app.addHook('onRequest', async (request, reply) => {
    const t0 = performance.now();
    reply.raw.once('close', () => {
      const seconds = (performance.now() - t0) / 1000;
      const note = notes.get(request) ?? {};
      const completed = reply.raw.writableFinished;
      const status = completed ? reply.raw.statusCode : 499; // 499: the client closed the connection first
      const route = request.routeOptions.url ?? 'unmatched';
      metrics.requests.inc({ route, status: String(status) });
      metrics.latency.observe(seconds, { route });
      const code = note.code ?? (completed ? undefined : 'ABORTED');
      if (code) metrics.errors.inc({ code });
      log(JSON.stringify({
        time: new Date().toISOString(),
        id: request.id,
        remote: request.ip,
        method: request.method,
        url: request.url.length > 200 ? request.url.slice(0, 200) : request.url,
        status,
        ms: Math.round(seconds * 1e6) / 1e3,
        ...(code ? { code } : {}),
        ...(note.tokens !== undefined ? { tokens: note.tokens } : {}),
      }));
    });
  });
}
