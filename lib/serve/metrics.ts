// The server's Prometheus metrics, kept in memory and written in the text exposition format (version 0.0.4):
// counters and gauges with labels, and cumulative histograms. No client library: this is the whole of it.

type Labels = Record<string, string>;

const escapeLabel = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const labelText = (l: Labels) => {
  const keys = Object.keys(l);
  return keys.length ? `{${keys.map((k) => `${k}="${escapeLabel(l[k]!)}"`).join(',')}}` : '';
};
const num = (x: number) => (Number.isFinite(x) ? String(x) : x > 0 ? '+Inf' : x < 0 ? '-Inf' : 'NaN');

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

export class Counter implements Family {
  readonly type = 'counter';
  #values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = labelText(labels);
    const v = this.#values.get(key);
    if (v) v.value += by;
    else this.#values.set(key, { labels, value: by });
  }

  get(labels: Labels = {}): number {
    return this.#values.get(labelText(labels))?.value ?? 0;
  }

  render(): string[] {
    return [...this.#values.values()].map((v) => `${this.name}${labelText(v.labels)} ${num(v.value)}`);
  }
}

/** a gauge whose value is read when the metrics are scraped */
export class Gauge implements Family {
  readonly type = 'gauge';
  constructor(readonly name: string, readonly help: string, readonly read: () => number) {}

  render(): string[] {
    return [`${this.name} ${num(this.read())}`];
  }
}

export class Histogram implements Family {
  readonly type = 'histogram';
  #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  /** upper bounds, ascending (+Inf is implied) */
  constructor(readonly name: string, readonly help: string, readonly bounds: readonly number[]) {}

  observe(value: number, labels: Labels = {}): void {
    const key = labelText(labels);
    let s = this.#series.get(key);
    if (!s) this.#series.set(key, (s = { labels, counts: this.bounds.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]!) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  render(): string[] {
    const out: string[] = [];
    for (const s of this.#series.values()) {
      this.bounds.forEach((b, i) => out.push(`${this.name}_bucket${labelText({ ...s.labels, le: num(b) })} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`${this.name}_sum${labelText(s.labels)} ${num(s.sum)}`);
      out.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return out;
  }
}

/** seconds: from 10 ms to 10 minutes */
const LATENCY_BOUNDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export interface ServerGauges {
  inFlight: () => number;
  queued: () => number;
  capacity: () => number;
  draining: () => boolean;
}

/** every metric the server exports */
export class ServeMetrics {
  readonly requests = new Counter('llava_rad_http_requests_total', 'HTTP requests answered, by route and status code');
  readonly errors = new Counter('llava_rad_errors_total', 'requests answered with an error, by error code');
  readonly studies = new Counter('llava_rad_studies_total', 'studies run, by outcome (ok, error, cancelled, timeout)');
  readonly tokens = new Counter('llava_rad_generated_tokens_total', 'tokens generated, cancelled studies included');
  readonly completedTokens = new Counter('llava_rad_completed_tokens_total', 'tokens of the studies that finished');
  readonly decodeSeconds = new Counter('llava_rad_decode_seconds_total', 'seconds the finished studies spent decoding, summed');
  readonly latency = new Histogram('llava_rad_request_duration_seconds', 'HTTP request latency, by route', LATENCY_BOUNDS);
  readonly firstToken = new Histogram('llava_rad_time_to_first_token_seconds', 'from a study\'s admission to its first generated token', LATENCY_BOUNDS);
  readonly queueWait = new Histogram('llava_rad_queue_wait_seconds', 'time a study waited for a decoder slot', LATENCY_BOUNDS);
  #families: Family[];

  constructor(g: ServerGauges) {
    const tokensPerSecond = new Gauge('llava_rad_decode_tokens_per_second', 'tokens per second of decoding, over the finished studies so far', () => {
      const s = this.decodeSeconds.get();
      return s > 0 ? this.completedTokens.get() / s : 0;
    });
    this.#families = [
      this.requests, this.errors, this.studies, this.tokens, this.completedTokens, this.decodeSeconds, tokensPerSecond,
      new Gauge('llava_rad_requests_in_flight', 'studies admitted and not yet answered (running + queued)', g.inFlight),
      new Gauge('llava_rad_queue_depth', 'studies admitted and waiting for a decoder slot', g.queued),
      new Gauge('llava_rad_queue_capacity', 'most studies admitted at once (concurrency + queue)', g.capacity),
      new Gauge('llava_rad_draining', '1 while the server drains for shutdown', () => (g.draining() ? 1 : 0)),
      this.latency, this.firstToken, this.queueWait,
    ];
  }

  render(): string {
    const lines: string[] = [];
    for (const f of this.#families) lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.render());
    return lines.join('\n') + '\n';
  }
}
