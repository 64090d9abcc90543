// Server-Sent Events on a hijacked fastify reply, and the signal that says the client went away.

import type { FastifyReply } from 'fastify';

/** aborts when the connection closes before the response was completely written */
export function clientGoneSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) ac.abort(new Error('the client closed the connection'));
  });
  return ac.signal;
}

export class SseStream {
  readonly #reply: FastifyReply;

  /** answers 200 text/event-stream now: from here on errors are events, not HTTP statuses */
  constructor(reply: FastifyReply) {
    this.#reply = reply;
    reply.hijack();
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // nginx: do not buffer the stream
    });
  }

  get open(): boolean {
    return !this.#reply.raw.destroyed && !this.#reply.raw.writableEnded;
  }

  /** one event; `data` is written as JSON unless it is a string (one line) */
  send(data: unknown, event?: string): void {
    if (!this.open) return;
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    this.#reply.raw.write(`${event ? `event: ${event}\n` : ''}data: ${text}\n\n`);
  }

  end(): void {
    if (this.open) this.#reply.raw.end();
  }
}
