// `llava-rad eval`: score a predictions file with the official LLaVA-Rad evaluation's report metrics
// (lib/eval/), or compare two systems on the same studies with a paired bootstrap.

import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LlavaRadError } from '../errors.js';
import { DEFAULT_BOOTSTRAP, EVAL_METRICS, evaluate, loadPairs, MAX_BOOTSTRAP, type EvalMetric, type EvalResult } from '../eval/evaluate.js';
import { renderEvalHtml, type EvalHtmlInput } from '../eval/html-report.js';
import { evaluatePaired, type PairedResult } from '../eval/paired.js';
import { rougeL } from '../eval/rouge.js';
import { asUsageAsync, describeNonFile, intArg, parseWithPositionals, UsageError, type Command } from './args.js';

const LABELS: Record<'bleu1' | 'bleu4' | 'rougeL', string> = { bleu1: 'BLEU-1', bleu4: 'BLEU-4', rougeL: 'ROUGE-L' };

function metricsArg(v: string | boolean | undefined): EvalMetric[] | undefined {
  if (v === undefined) return undefined;
  const names = String(v).split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new UsageError(`--metrics must list some of ${EVAL_METRICS.join(', ')}, got '${String(v)}'`);
  return names as EvalMetric[]; // the library checks the names (INVALID_ARGUMENT -> usage error; UNSUPPORTED for planned ones)
}

function requireFile(p: string): void {
  if (!existsSync(p)) throw new UsageError(`eval: predictions file not found: ${p}`);
  if (!statSync(p).isFile()) throw new UsageError(`eval: predictions must be a file, got ${describeNonFile(p)}`);
}

const f4 = (x: number) => x.toFixed(4);

/** studies listed in the HTML report: the lowest ROUGE-L F-measures */
const HTML_STUDIES = 10;

/** --html FILE: checked before scoring (a missing folder is a usage error) */
function htmlArg(v: string | boolean | undefined): string | undefined {
  if (v === undefined) return undefined;
  const p = String(v);
  if (p === '' || v === true) throw new UsageError('--html needs a file name, e.g. --html report.html');
  const dir = path.dirname(path.resolve(p));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--html: folder not found: ${dir}`);
  if (existsSync(p) && statSync(p).isDirectory()) throw new UsageError(`--html must name a file, got the folder ${p}`);
  return p;
}

function writeHtml(file: string, input: EvalHtmlInput): void {
  try {
    writeFileSync(file, renderEvalHtml(input));
  } catch (e) {
    throw new LlavaRadError('IO', `could not write the HTML report ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** the studies of a predictions file with the lowest ROUGE-L F-measure */
function lowestRouge(file: string): EvalHtmlInput['studies'] {
  const { pairs } = loadPairs(file);
  const rows = pairs.map((p) => ({ ...(p.id !== undefined ? { id: p.id } : {}), reference: p.reference, prediction: p.prediction, score: rougeL(p.reference, p.prediction).fmeasure }));
  rows.sort((a, b) => a.score - b.score);
  return { caption: `The ${Math.min(HTML_STUDIES, rows.length)} studies with the lowest ROUGE-L F-measure`, rows: rows.slice(0, HTML_STUDIES) };
}

/** a left-aligned first column, the others right-aligned, two spaces apart */
function renderTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

const present = <T extends object>(metrics: T) => (Object.keys(LABELS) as Array<keyof typeof LABELS>).filter((k) => k in metrics);

function table(r: EvalResult): string {
  return renderTable(['metric', 'score', '95% CI'], present(r.metrics).map((k) => {
    const m = r.metrics[k]!;
    return [LABELS[k], f4(m.score), `[${f4(m.ci[0])}, ${f4(m.ci[1])}]`];
  }));
}

function pairedTable(r: PairedResult): string {
  return renderTable(['metric', 'A', 'B', 'B - A', 'mean', '95% CI', 'P(B < A)'], present(r.metrics).map((k) => {
    const m = r.metrics[k]!;
    return [LABELS[k], f4(m.a), f4(m.b), f4(m.diff), f4(m.mean), `[${f4(m.ci[0])}, ${f4(m.ci[1])}]`, m.bBelowA.toFixed(3)];
  }));
}

export const evalCommand: Command = {
  name: 'eval',
  summary: 'score predictions (BLEU-1/4, ROUGE-L with the official bootstrap); --paired compares two files; --html writes a report page',
  usage: `Usage: llava-rad eval PREDICTIONS.jsonl [options]
       llava-rad eval A.jsonl B.jsonl --paired [options]

Scores each line's "prediction" (or batch's "findings") against its "reference" as the official LLaVA-Rad
evaluation (llava/eval/rrg_eval/run.py) does, with the same numbers:
  BLEU-1, BLEU-4  sacrebleu (13a tokens, case kept, exp smoothing); score = the corpus BLEU (0-100),
                  CI = the bootstrap mean -/+ sacrebleu's half-width (numpy default_rng(12345))
  ROUGE-L         rouge_score F-measure; score = the median of the bootstrap means (0-1), CI = their
                  2.5th and 97.5th percentiles (numpy's global generator seeded 3)
Records with an "error" (failed studies) are skipped and counted.

--paired matches the studies of A and B by id and bootstraps the difference B - A (the same resamples for
both systems, numpy default_rng(12345).choice(n, size=(B, n))): A's and B's scores, the difference, the
mean and 95% CI of the resampled differences, and the share of resamples where B scored below A.

Options:
      --metrics LIST   among ${EVAL_METRICS.join(', ')} (default: all)
      --bootstrap N    resamples, 2 to ${MAX_BOOTSTRAP} (default ${DEFAULT_BOOTSTRAP}, as the official evaluation)
      --paired         two files: paired bootstrap of B - A
      --json           print the result as one JSON object (the last line of stdout)
      --html FILE      also write the results as one self-contained HTML page (no scripts, nothing
                       fetched), with the ${HTML_STUDIES} lowest ROUGE-L studies when ROUGE-L is scored
  -h, --help           this help

Exit status: 0 scored; 1 an error (e.g. BAD_PREDICTIONS: a line that is not JSON or lacks a field); 2 bad
arguments or a missing file.`,
  async run(args, io) {
    const { values: v, positionals } = parseWithPositionals(args, {
      metrics: { type: 'string' },
      bootstrap: { type: 'string' },
      paired: { type: 'boolean' },
      json: { type: 'boolean' },
      html: { type: 'string' },
    }, 'eval', 2);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const bootstrap = intArg(v.bootstrap, '--bootstrap', 2, MAX_BOOTSTRAP);
    const metrics = metricsArg(v.metrics);
    const html = htmlArg(v.html);
    const options = { ...(metrics ? { metrics } : {}), ...(bootstrap !== undefined ? { bootstrap } : {}) };
    if (v.paired) {
      if (positionals.length !== 2) throw new UsageError('eval: --paired needs two predictions files, A.jsonl and B.jsonl');
      positionals.forEach(requireFile);
      const r = await asUsageAsync(() => evaluatePaired(positionals[0]!, positionals[1]!, options));
      if (r.skipped.a || r.skipped.b) io.err(`llava-rad eval: skipped records with an error: ${r.skipped.a} in A, ${r.skipped.b} in B\n`);
      if (r.unmatched.a || r.unmatched.b) io.err(`llava-rad eval: studies in one file only (left out): ${r.unmatched.a} in A, ${r.unmatched.b} in B\n`);
      if (html) writeHtml(html, { source: `${positionals[0]} (A), ${positionals[1]} (B)`, paired: r });
      if (v.json) io.out(JSON.stringify(r) + '\n');
      else io.out(`${r.n} studies in both files, ${r.bootstrap} paired resamples (B minus A)\n` + pairedTable(r));
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'eval: expected a predictions file (JSONL)' : 'eval: two files need --paired');
    requireFile(positionals[0]!);
    const r = await asUsageAsync(() => evaluate(positionals[0]!, options));
    if (r.skipped) io.err(`llava-rad eval: skipped ${r.skipped} record(s) with an error (failed studies)\n`);
    if (html) writeHtml(html, { source: positionals[0]!, result: r, ...(r.metrics.rougeL ? { studies: lowestRouge(positionals[0]!) } : {}) });
    if (v.json) io.out(JSON.stringify(r) + '\n');
    else io.out(`${r.n} studies, ${r.bootstrap} bootstrap resamples\n` + table(r));
    return 0;
  },
};
