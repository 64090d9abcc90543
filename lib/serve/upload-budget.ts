// Request bodies held in memory at once. Each upload is read whole before its study is admitted (the image
// must be decoded to be run), and a JSON body lives as a string of up to 4/3 of the image, then as its bytes:
// without a bound, a hundred clients posting large images together hold a hundred bodies (7 GB for 80 MB
// bodies, measured) and enough of them end the process (V8's heap limit, or the kernel's OOM killer). A
// request with a body is charged its Content-Length (the body limit when it has none, for chunked uploads)
// before a byte of it is read, and refused with 429 when the bodies in flight would pass the budget; the
// charge is returned when its response ends or its connection closes. One body of the largest size always
// fits an idle server.

import { getHeapStatistics } from 'node:v8';
import type { FastifyInstance } from 'fastify';
import { ServeError } from './http-errors.js';

/** the default budget: 1 GiB, or a quarter of V8's heap limit where that is less (a JSON body takes about
 *  2.7 times its size in the heap while it is parsed and decoded) */
export function defaultUploadBudget(): number {
  return Math.min(1 << 30, Math.floor(getHeapStatistics().heap_size_limit / 4));
}

export class UploadBudget {
  #used = 0;

  constructor(readonly bytes: number) {}

  /** bytes of request bodies charged now */
  get used(): number {
    return this.#used;
  }

  /** charges `n` bytes, or returns false when that would pass the budget (an idle budget takes any size) */
  tryTake(n: number): boolean {
    if (this.#used > 0 && this.#used + n > this.bytes) return false;
    this.#used += n;
    return true;
  }

  give(n: number): void {
    this.#used = Math.max(0, this.#used - n);
  }
}

const MiB = 1 << 20;

/** charges each request's body to `budget` before it is read (fastify's preParsing: after the key check) */
export function installUploadBudget(app: FastifyInstance, budget: UploadBudget, bodyLimit: number): void {
  app.addHook('preParsing', async (request, reply, payload) => {
    const length = request.headers['content-length'];
    const declared = typeof length === 'string' && /^\d+$/.test(length) ? Number(length) : undefined;
    const hasBody = declared !== undefined ? declared > 0 : request.headers['transfer-encoding'] !== undefined;
    if (!hasBody) return payload;
    const charge = Math.min(declared ?? bodyLimit, bodyLimit);
    if (!budget.tryTake(charge)) {
      throw new ServeError('QUEUE_FULL',
        `the server holds ${(budget.used / MiB).toFixed(1)} MiB of request bodies (its budget: ${(budget.bytes / MiB).toFixed(0)} MiB) ` +
        `and this one is ${declared !== undefined ? `${(charge / MiB).toFixed(1)} MiB` : `chunked (counted as the ${(bodyLimit / MiB).toFixed(0)} MiB limit)`}: retry later`,
        { 'retry-after': '1', connection: 'close' });
    }
    let returned = false;
    reply.raw.once('close', () => {
      if (returned) return;
      returned = true;
      budget.give(charge);
    });
    return payload;
  });
}
