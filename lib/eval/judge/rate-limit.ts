// A client-side limiter for the judge's HTTP requests: at most `concurrency` requests in flight and
// request starts spaced at least 60 s / rpm apart (smooth, no burst), plus a shared pause that a 429's
// Retry-After sets for every caller, so one throttled request holds the others back too.

import { abortedError, invalidArgument } from '../../errors.js';

export interface RateLimiterOptions {
  /** request starts per minute (> 0; Infinity for no limit) */
  rpm: number;
  /** requests in flight at once (integer >= 1) */
  concurrency: number;
  /** the clock (ms), for tests */
  now?: () => number;
}

interface Waiter {
  resolve: (release: () => void) => void;
  reject: (e: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

export class RateLimiter {
  readonly rpm: number;
  readonly concurrency: number;
  private readonly now: () => number;
  private readonly intervalMs: number;
  private active = 0;
  private nextStart = 0;
  private pausedUntil = 0;
  private readonly queue: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(options: RateLimiterOptions) {
    const { rpm, concurrency } = options;
    if (typeof rpm !== 'number' || !(rpm > 0)) throw invalidArgument('rpm', 'a number > 0', rpm);
    if (!Number.isInteger(concurrency) || concurrency < 1) throw invalidArgument('concurrency', 'an integer >= 1', concurrency);
    this.rpm = rpm;
    this.concurrency = concurrency;
    this.intervalMs = Number.isFinite(rpm) ? 60_000 / rpm : 0;
    this.now = options.now ?? Date.now;
  }

  /** requests holding a slot now */
  get inFlight(): number {
    return this.active;
  }

  /** holds every start until `untilMs` (a 429's Retry-After) */
  pauseUntil(untilMs: number): void {
    if (untilMs > this.pausedUntil) this.pausedUntil = untilMs;
    this.schedule();
  }

  /** waits for a slot; resolves with the function that frees it (call it exactly once) */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(abortedError(signal, 'the judge request'));
    return new Promise((resolve, reject) => {
      const w: Waiter = { resolve, reject, signal, onAbort: undefined };
      if (signal) {
        w.onAbort = () => {
          const i = this.queue.indexOf(w);
          if (i >= 0) this.queue.splice(i, 1);
          reject(abortedError(signal, 'the judge request'));
          this.schedule();
        };
        signal.addEventListener('abort', w.onAbort, { once: true });
      }
      this.queue.push(w);
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    while (this.queue.length > 0 && this.active < this.concurrency) {
      const t = this.now();
      const at = Math.max(this.nextStart, this.pausedUntil);
      if (at > t) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.schedule();
        }, at - t);
        return;
      }
      const w = this.queue.shift()!;
      if (w.signal && w.onAbort) w.signal.removeEventListener('abort', w.onAbort);
      this.active++;
      this.nextStart = t + this.intervalMs;
      let released = false;
      w.resolve(() => {
        if (released) return;
        released = true;
        this.active--;
        this.schedule();
      });
    }
  }
}
