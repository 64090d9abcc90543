// A FIFO of requests for slots of a fixed capacity: at most `capacity` slots are held at once; a request
// may ask for several slots (an exclusive one asks for all). Strict FIFO: a waiter that does not fit yet
// blocks the ones behind it, so nothing starves.

import { LlavaRadError, abortedError } from './errors.js';

interface Waiter {
  weight: number;
  resolve: (release: () => void) => void;
  reject: (e: Error) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class SlotQueue {
  readonly capacity: number;
  #inUse = 0;
  #waiters: Waiter[] = [];
  #closed: Error | undefined;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** slots held now */
  get inUse(): number {
    return this.#inUse;
  }

  /** requests waiting */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Resolves with a release function once `weight` slots are free and every earlier request was served.
   * Rejects with ABORTED when the signal aborts first, or with the close error once closed.
   */
  acquire(weight = 1, signal?: AbortSignal, what = 'the request'): Promise<() => void> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (signal?.aborted) return Promise.reject(abortedError(signal, what));
    const w = Math.min(Math.max(1, weight), this.capacity);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { weight: w, resolve, reject, signal, onAbort: undefined };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) {
            this.#waiters.splice(i, 1);
            reject(abortedError(signal, what));
            this.#pump();
          }
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
      this.#pump();
    });
  }

  /** rejects every waiter (and future acquire calls) with `error` */
  close(error: Error = new LlavaRadError('DISPOSED', 'the queue was closed')): void {
    if (this.#closed) return;
    this.#closed = error;
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) {
      if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
      w.reject(error);
    }
  }

  #pump(): void {
    while (this.#waiters.length > 0) {
      const head = this.#waiters[0]!;
      if (this.#inUse + head.weight > this.capacity) return;
      this.#waiters.shift();
      if (head.onAbort) head.signal?.removeEventListener('abort', head.onAbort);
      this.#inUse += head.weight;
      let released = false;
      head.resolve(() => {
        if (released) return;
        released = true;
        this.#inUse -= head.weight;
        this.#pump();
      });
    }
  }
}
