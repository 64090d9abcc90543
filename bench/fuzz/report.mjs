// Tallies the results of a campaign: counts per target and outcome (typed errors per code), the cases to
// replay (every signal, hang, peak, exit, uncaught and harness error; untyped errors grouped by message
// shape with a few seeds each), the peaks and times; prints the table and builds the results line.

const DEFECTS = ['signal', 'hang', 'peak', 'exit', 'uncaught', 'untyped', 'harness'];

/** a message with its numbers, paths and quoted values blanked, for grouping */
function shape(d) {
  const msg = String(d.message ?? d.signal ?? (d.input ? `input: ${d.input}` : '')).replace(/\/[^\s:'"]+/g, '<path>').replace(/"[^"]*"/g, '"…"').replace(/\d+/g, 'N');
  const at = String(d.stack ?? '').replace(/^at /, '').replace(/\(?file:\/\/|\(/g, '').replace(/:\d+\)?$/, '').replace(/\)$/, '');
  return `${d.name ? `${d.name}: ` : ''}${msg.replace(/\s+/g, ' ').slice(0, 160)}${at ? ` @ ${at}` : ''}`;
}

export class Tally {
  constructor() {
    this.targets = {};
    this.cases = [];
    this.groups = new Map();
  }

  add(r) {
    const t = (this.targets[r.target] ??= { inputs: 0, ok: 0, typed: 0, codes: {}, untyped: 0, signal: 0, hang: 0, peak: 0, exit: 0, uncaught: 0, harness: 0, maxPeakKiB: 0, totalMs: 0, maxMs: 0, slowestSeed: null });
    t.inputs++;
    t[r.outcome] = (t[r.outcome] ?? 0) + 1;
    if (r.outcome === 'typed') t.codes[r.detail.code] = (t.codes[r.detail.code] ?? 0) + 1;
    t.maxPeakKiB = Math.max(t.maxPeakKiB, r.peakKiB || 0);
    t.totalMs += r.ms || 0;
    if ((r.ms || 0) > t.maxMs) [t.maxMs, t.slowestSeed] = [r.ms, r.seed];
    if (!DEFECTS.includes(r.outcome)) return;
    const key = `${r.target} ${r.outcome} ${shape(r.detail)}`;
    let g = this.groups.get(key);
    if (!g) this.groups.set(key, (g = { target: r.target, outcome: r.outcome, shape: shape(r.detail), count: 0, seeds: [], first: r.detail }));
    g.count++;
    if (g.seeds.length < 8) g.seeds.push(r.seed);
    if (r.outcome !== 'untyped') this.cases.push({ target: r.target, seed: r.seed, outcome: r.outcome, ms: Math.round(r.ms), message: r.detail.message ?? r.detail.signal ?? '', detail: r.detail });
  }

  totals() {
    const sum = (k) => Object.values(this.targets).reduce((a, t) => a + (t[k] ?? 0), 0);
    return Object.fromEntries(['inputs', 'ok', 'typed', ...DEFECTS].map((k) => [k, sum(k)]));
  }

  table() {
    const rows = [['target', 'inputs', 'ok', 'typed', 'untyped', 'signal', 'hang', 'peak', 'exit/uncaught', 'harness', 'max peak MB', 'mean ms', 'max ms (seed)']];
    for (const [name, t] of Object.entries(this.targets)) {
      rows.push([name, t.inputs, t.ok, t.typed, t.untyped, t.signal, t.hang, t.peak, t.exit + t.uncaught, t.harness, (t.maxPeakKiB / 1024).toFixed(0),
        (t.totalMs / t.inputs).toFixed(0), `${t.maxMs.toFixed(0)} (${t.slowestSeed})`]);
    }
    const T = this.totals();
    rows.push(['total', T.inputs, T.ok, T.typed, T.untyped, T.signal, T.hang, T.peak, T.exit + T.uncaught, T.harness, '', '', '']);
    const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
    const lines = rows.map((r) => r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  '));
    lines.splice(1, 0, w.map((n) => '-'.repeat(n)).join('  '));
    const codes = Object.entries(this.targets).map(([n, t]) => `  ${n}: ${Object.entries(t.codes).sort((a, b) => b[1] - a[1]).map(([c, k]) => `${c} ${k}`).join(', ') || '-'}`);
    const defects = [...this.groups.values()].sort((a, b) => b.count - a.count).map((g) =>
      `  [${g.outcome}] ${g.target} x${g.count}: ${g.shape}\n      replay: node bench/fuzz.mjs --replay ${g.seeds.slice(0, 3).map((s) => `${g.target}:${s}`).join(',')}`);
    return [...lines, '', 'typed errors by code:', ...codes, '', defects.length ? 'defects (grouped):' : 'defects: none', ...defects].join('\n');
  }

  record() {
    return {
      targets: this.targets,
      totals: this.totals(),
      groups: [...this.groups.values()].map((g) => ({ ...g, replay: g.seeds.map((s) => `${g.target}:${s}`).join(',') })),
      cases: this.cases.slice(0, 500),
    };
  }
}
