// Admission: at most `concurrency` studies run (the decoder's parallel sequences) and at most `queue` more
// wait; anything beyond is refused at once (429) instead of joining an unbounded backlog. While draining for
// shutdown nothing new is admitted. The model's own scheduler does the waiting; this only counts.

export class Admission {
  #active = 0;
  #draining = false;
  #idle: (() => void)[] = [];

  constructor(readonly concurrency: number, readonly queue: number) {}

  /** studies admitted and not yet released (running + waiting) */
  get inFlight(): number {
    return this.#active;
  }

  /** admitted studies beyond the running ones */
  get queued(): number {
    return Math.max(0, this.#active - this.concurrency);
  }

  get capacity(): number {
    return this.concurrency + this.queue;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** true when the study may run (call release() once when it ends); false when full or draining */
  tryEnter(): boolean {
    if (this.#draining || this.#active >= this.capacity) return false;
    this.#active++;
    return true;
  }

  release(): void {
    if (this.#active <= 0) throw new Error('Admission.release() without a matching tryEnter()');
    this.#active--;
    if (this.#active === 0) for (const f of this.#idle.splice(0)) f();
  }

  /** refuse new studies from now on */
  startDraining(): void {
    this.#draining = true;
  }

  /** resolves when no study is in flight */
  idle(): Promise<void> {
    return this.#active === 0 ? Promise.resolve() : new Promise((resolve) => this.#idle.push(resolve));
  }

  /** seconds a refused client should wait: a rough turn of the queue */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.queued / Math.max(1, this.concurrency)));
  }
}
