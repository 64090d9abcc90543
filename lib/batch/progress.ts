// Progress of a batch on stderr: a redrawn bar on a TTY; plain log lines every LOG_EVERY_MS (and every
// LOG_EVERY_STUDIES) otherwise; one JSON object per line with --json-progress; nothing with --quiet.

import type { PredictionRecord } from './record.js';

export type ProgressMode = 'tty' | 'log' | 'json' | 'quiet';

const LOG_EVERY_MS = 10_000;
const LOG_EVERY_STUDIES = 100;
const REDRAW_MS = 200;

export interface ProgressStart {
  /** studies in this shard of the manifest */
  total: number;
  /** to run now */
  todo: number;
  /** already done (skipped) */
  done: number;
  shard: string | null;
  devices: string[];
  concurrency: number;
  out: string;
}

export function fmtDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  s = Math.round(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export class Progress {
  #t0 = performance.now();
  #done = 0;
  #ok = 0;
  #failed = 0;
  #tokens = 0;
  #todo = 0;
  #lastDraw = 0;
  #lastLogAt = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly mode: ProgressMode, readonly write: (s: string) => void, readonly columns = 80) {}

  #stats() {
    const elapsed = (performance.now() - this.#t0) / 1000;
    const rate = elapsed > 0 ? this.#done / elapsed : 0;
    return {
      done: this.#done,
      ok: this.#ok,
      failed: this.#failed,
      todo: this.#todo,
      elapsed_s: Math.round(elapsed * 10) / 10,
      studies_per_s: Math.round(rate * 1000) / 1000,
      tokens_per_s: elapsed > 0 ? Math.round((this.#tokens / elapsed) * 10) / 10 : 0,
      eta_s: rate > 0 ? Math.round((this.#todo - this.#done) / rate) : null,
    };
  }

  #line(): string {
    const s = this.#stats();
    return `${s.done}/${s.todo} studies${s.failed ? ` (${s.failed} failed)` : ''}, ${s.studies_per_s.toFixed(2)} studies/s, ${s.tokens_per_s.toFixed(1)} tokens/s, ETA ${s.eta_s === null ? '?' : fmtDuration(s.eta_s)}`;
  }

  #draw(force = false): void {
    const now = performance.now();
    if (!force && now - this.#lastDraw < REDRAW_MS) return;
    this.#lastDraw = now;
    const text = this.#line();
    const width = Math.max(10, Math.min(40, this.columns - text.length - 4));
    const filled = this.#todo ? Math.round((width * this.#done) / this.#todo) : width;
    this.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
  }

  #log(): void {
    this.#lastLogAt = performance.now();
    this.write(`llava-rad batch: ${this.#line()}\n`);
  }

  start(s: ProgressStart): void {
    this.#todo = s.todo;
    this.#t0 = performance.now();
    if (this.mode === 'json') this.write(JSON.stringify({ event: 'start', ...s }) + '\n');
    else if (this.mode !== 'quiet') {
      this.write(`llava-rad batch: ${s.total} studies${s.shard ? ` in shard ${s.shard}` : ''}, ${s.done} already in ${s.out}, ${s.todo} to run on ${s.devices.join(', ')} (${s.concurrency} at a time per device)\n`);
    }
    if (this.mode === 'tty') {
      this.#draw(true);
      this.#timer = setInterval(() => this.#draw(), 1000);
    } else if (this.mode === 'log') {
      this.#timer = setInterval(() => this.#log(), LOG_EVERY_MS);
      this.#lastLogAt = performance.now();
    }
    this.#timer?.unref();
  }

  study(r: PredictionRecord): void {
    this.#done++;
    if (r.error) this.#failed++;
    else this.#ok++;
    this.#tokens += r.tokens?.length ?? 0;
    if (this.mode === 'json') {
      this.write(JSON.stringify({ event: 'study', id: r.id, success: !r.error, ...(r.error ? { error: r.error } : { tokens: r.tokens?.length ?? 0 }), ...this.#stats() }) + '\n');
    } else if (this.mode === 'tty') {
      this.#draw();
    } else if (this.mode === 'log' && (this.#done % LOG_EVERY_STUDIES === 0)) {
      this.#log();
    }
  }

  /** a message for people (a warning); JSON mode wraps it */
  notice(message: string): void {
    if (this.mode === 'quiet') return;
    if (this.mode === 'json') this.write(JSON.stringify({ event: 'notice', message }) + '\n');
    else this.write(`${this.mode === 'tty' && this.#timer ? '\r\x1b[K' : ''}llava-rad batch: ${message}\n`);
  }

  end(summary: Record<string, unknown>, message: string): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.mode === 'json') this.write(JSON.stringify({ event: 'end', ...this.#stats(), ...summary }) + '\n');
    else if (this.mode !== 'quiet') {
      if (this.mode === 'tty') this.#draw(true);
      this.write(`${this.mode === 'tty' ? '\n' : ''}llava-rad batch: ${message}\n`);
    }
  }
}
