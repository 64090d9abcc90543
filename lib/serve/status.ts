// GET /health (200 while serving, 503 while draining), GET /metrics (Prometheus text), GET /v1/models (the
// OpenAI list with our one model).

import type { FastifyInstance } from 'fastify';
import type { Admission } from './admission.js';
import type { ServeMetrics } from './metrics.js';

export function statusRoutes(app: FastifyInstance, admission: Admission, metrics: ServeMetrics, modelId: string, startedAt: number): void {
  app.get('/health', async (_request, reply) => {
    const draining = admission.draining;
    return reply.code(draining ? 503 : 200).send({
      status: draining ? 'draining' : 'ok',
      model: modelId,
      in_flight: admission.inFlight,
      queued: admission.queued,
      capacity: admission.capacity,
      uptime_s: Math.round((Date.now() - startedAt) / 1000),
    });
  });

  app.get('/metrics', async (_request, reply) => reply.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render()));

  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: modelId, object: 'model', created: Math.floor(startedAt / 1000), owned_by: 'llava-rad' }],
  }));
}
