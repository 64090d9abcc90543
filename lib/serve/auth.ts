// The API key (--api-key): "Authorization: Bearer K" (what OpenAI's clients send) or "X-API-Key: K", compared
// in constant time (both sides hashed to 32 bytes first, so neither the key's length nor its prefix leaks).
// The page (GET /) and GET /health need no key; the page asks for one and sends it.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ServeError } from './http-errors.js';

const OPEN = new Set(['/', '/health']);
const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

function presentedKey(request: FastifyRequest): string | null {
  const auth = request.headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
    if (m) return m[1]!;
  }
  const x = request.headers['x-api-key'];
  return typeof x === 'string' ? x : null;
}

export function installApiKey(app: FastifyInstance, apiKey: string): void {
  const want = digest(apiKey);
  app.addHook('onRequest', async (request) => {
    if (request.method === 'GET' && OPEN.has(request.url.split('?')[0]!)) return;
    const got = presentedKey(request);
    if (got === null || !timingSafeEqual(digest(got), want)) {
      throw new ServeError('UNAUTHORIZED', 'this server needs an API key: send "Authorization: Bearer KEY" or "X-API-Key: KEY"', { 'www-authenticate': 'Bearer' });
    }
  });
}
