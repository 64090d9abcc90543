// `llava-rad eval`: score a predictions file with the official LLaVA-Rad evaluation's report metrics
// (lib/eval/), or compare two systems on the same studies with a paired bootstrap.

import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LlavaRadError } from '../errors.js';
import { CHEXBERT_SUMMARY_KEYS } from '../eval/chexbert-f1.js';
import { DEFAULT_BOOTSTRAP, DEFAULT_METRICS, EVAL_METRICS, evaluate, loadPairs, MAX_BOOTSTRAP, PLANNED_METRICS, type EvalMetric, type EvalResult } from '../eval/evaluate.js';
import { llavaRadHome } from '../pull/home.js';
import { renderEvalHtml, type EvalHtmlInput, type JudgedPairedResult } from '../eval/html-report.js';
import { chatEndpoint } from '../eval/judge/chat-client.js';
import { CHEXPROMPT_RPM, chexpromptJudge, type ChexpromptResult, type ChexpromptSummary } from '../eval/judge/chexprompt.js';
import { loadChexpromptTemplate } from '../eval/judge/chexprompt-template.js';
import { evaluatePaired, matchPairs, pairedMeans, type PairedMetric } from '../eval/paired.js';
import type { ScoredPair } from '../eval/read-predictions.js';
import { scoreGreen, type GreenResult } from '../eval/green/green.js';
import { GREEN_MAX_LENGTH, loadGreenPrompt } from '../eval/green/green-prompt.js';
import { RADGRAPH_REWARD_LEVELS, type RadgraphRewardLevel } from '../eval/radgraph-reward.js';
import { rougeL } from '../eval/rouge.js';
import { asUsageAsync, describeNonFile, intArg, parseWithPositionals, requireFile, requireOutputFile, UsageError, type Command } from './args.js';

const LABELS: Record<'bleu1' | 'bleu4' | 'rougeL', string> = { bleu1: 'BLEU-1', bleu4: 'BLEU-4', rougeL: 'ROUGE-L' };

/** the metrics the CLI knows: evaluate()'s, the CheXprompt judge (run here, by chexpromptJudge) and GREEN (run here, by scoreGreen) */
const CLI_METRICS = [...EVAL_METRICS, 'chexprompt', 'green'] as const;

function metricsArg(v: string | boolean | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  const names = String(v).split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new UsageError(`--metrics must list some of ${CLI_METRICS.join(', ')}, got '${String(v)}'`);
  // 'chexprompt' and 'green' are taken out later and run here; a planned metric (radgraph, ...) is left for evaluate() to call
  // UNSUPPORTED; any other unknown name is a usage error naming all the CLI knows
  for (const n of names) {
    if (!(CLI_METRICS as readonly string[]).includes(n) && !PLANNED_METRICS.includes(n)) {
      throw new UsageError(`metrics must be among ${CLI_METRICS.join(', ')}, got "${n}"`);
    }
  }
  return [...new Set(names)];
}

/** positive integer flag with a default */
function judgeInt(v: string | boolean | undefined, flag: string, min: number, max: number, dflt: number): number {
  return intArg(v, flag, min, max) ?? dflt;
}

function numberArg(v: string | boolean | undefined, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(x) || x < min || x > max) throw new UsageError(`${flag} must be a number from ${min} to ${max}, got '${String(v)}'`);
  return x;
}

interface JudgeArgs {
  url: string;
  model: string;
  chexpromptDir: string;
  apiVersion: string | undefined;
  concurrency: number;
  rpm: number;
  timeoutMs: number;
  attempts: number;
  temperature: number;
}

/** the --judge-* flags, checked before anything is scored (missing ones: one usage line naming them) */
function judgeArgs(v: Record<string, string | boolean | undefined>): JudgeArgs {
  const str = (k: string) => (typeof v[k] === 'string' && v[k] !== '' ? (v[k] as string) : undefined);
  const url = str('judge-url');
  const model = str('judge-model');
  const chexpromptDir = str('chexprompt-dir');
  const missing = [url ? '' : '--judge-url URL', model ? '' : '--judge-model NAME', chexpromptDir ? '' : '--chexprompt-dir DIR'].filter((m) => m !== '');
  if (missing.length) throw new UsageError(`eval: the chexprompt metric needs ${missing.join(', ')} (the chat endpoint, its model or Azure deployment, and a clone of microsoft/chexprompt); the key comes from OPENAI_API_KEY or AZURE_OPENAI_API_KEY`);
  if (v['judge-api-version'] !== undefined && str('judge-api-version') === undefined) throw new UsageError('--judge-api-version needs a value, e.g. --judge-api-version 2024-06-01');
  const apiVersion = str('judge-api-version');
  // the URL and the prompt are checked now, not after the other metrics ran
  asUsage(() => chatEndpoint({ url: url!, model: model!, ...(apiVersion !== undefined ? { apiVersion } : {}) }));
  asUsage(() => loadChexpromptTemplate(chexpromptDir!), true);
  return {
    url: url!,
    model: model!,
    chexpromptDir: chexpromptDir!,
    apiVersion,
    concurrency: judgeInt(v['judge-concurrency'], '--judge-concurrency', 1, 256, 4),
    rpm: judgeInt(v['judge-rpm'], '--judge-rpm', 1, 1_000_000, CHEXPROMPT_RPM),
    timeoutMs: (numberArg(v['judge-timeout'], '--judge-timeout', 1, 3600) ?? 120) * 1000,
    attempts: judgeInt(v['judge-attempts'], '--judge-attempts', 1, 100, 5),
    temperature: numberArg(v['judge-temperature'], '--judge-temperature', 0, 2) ?? 0,
  };
}

/** INVALID_ARGUMENT (and, with io, IO: a missing chexprompt dir) as a usage error */
function asUsage(f: () => unknown, io = false): void {
  try {
    f();
  } catch (e) {
    if (e instanceof LlavaRadError && (e.code === 'INVALID_ARGUMENT' || (io && e.code === 'IO'))) throw new UsageError(e.message);
    throw e;
  }
}

/** metrics.chexprompt of --json: score = clinically significant errors per report (mean), ci its 95% interval */
export interface ChexpromptMetric extends ChexpromptSummary {
  score: number;
  ci: [number, number];
  judge: { model: string; provider: ChexpromptResult['judge']['provider']; params: ChexpromptResult['judge']['params']; prompt: { path: string; sha256: string } };
  /** the studies without a usable rating */
  failures: Array<{ id: string | undefined; index: number; code: string; message: string }>;
}

function chexpromptMetric(r: ChexpromptResult): ChexpromptMetric {
  return {
    score: r.summary.significant.mean,
    ci: r.summary.significant.ci,
    ...r.summary,
    judge: { model: r.judge.model, provider: r.judge.provider, params: r.judge.params, prompt: r.judge.prompt },
    failures: r.studies.filter((s) => s.error).map((s) => ({ id: s.id, index: s.index, code: s.error!.code, message: s.error!.message })),
  };
}

const JUDGE_LOG_EVERY_MS = 10_000;

/** runs the judge with progress on stderr (a redrawn line on a terminal, a line every 10 s otherwise; none with --quiet / --json) and retries reported */
async function runJudge(pairs: readonly ScoredPair[], j: JudgeArgs, bootstrap: number, io: { err: (s: string) => void }, opts: { progress: boolean; retries: boolean; signal: AbortSignal | undefined }): Promise<ChexpromptResult> {
  const tty = process.stderr.isTTY === true;
  const t0 = Date.now();
  let lastLog = t0;
  let failed = 0;
  const line = (done: number, total: number) => `CheXprompt: ${done}/${total} studies judged${failed ? `, ${failed} without a rating` : ''}, ${Math.round((Date.now() - t0) / 1000)}s`;
  const r = await chexpromptJudge(pairs.map((p) => ({ ...(p.id !== undefined ? { id: p.id } : {}), reference: p.reference, prediction: p.prediction })), {
    url: j.url,
    model: j.model,
    chexpromptDir: j.chexpromptDir,
    ...(j.apiVersion !== undefined ? { apiVersion: j.apiVersion } : {}),
    concurrency: j.concurrency,
    rpm: j.rpm,
    bootstrap,
    params: { temperature: j.temperature },
    client: { timeoutMs: j.timeoutMs, maxAttempts: j.attempts },
    ...(opts.signal ? { signal: opts.signal } : {}),
    onProgress: (done, total, study) => {
      if (study.error) failed++;
      if (!opts.progress) return;
      if (tty) io.err(`\r${line(done, total)}\x1b[K${done === total ? '\n' : ''}`);
      else if (done === total || Date.now() - lastLog >= JUDGE_LOG_EVERY_MS) {
        lastLog = Date.now();
        io.err(`llava-rad eval: ${line(done, total)}\n`);
      }
    },
    // the reason and the wait only: no key, no URL
    ...(opts.retries ? { onRetry: (info) => io.err(`${tty && opts.progress ? '\r\x1b[K' : ''}llava-rad eval: CheXprompt judge: ${info.reason} (attempt ${info.attempt}), retrying in ${(info.delayMs / 1000).toFixed(1)}s\n`) } : {}),
  });
  return r;
}

type Env = Record<string, string | undefined>;

/** the CheXbert GGUFs looked for in the model home when neither --chexbert nor LLAVA_RAD_CHEXBERT is given, most precise first */
export function defaultChexbertPaths(env: Env = process.env): string[] {
  return ['chexbert-f32.gguf', 'chexbert-f16.gguf'].map((f) => path.join(llavaRadHome(env), 'eval', f));
}

/** --chexbert FILE, else $LLAVA_RAD_CHEXBERT, else the first default path that exists; a usage error naming all three when none */
export function resolveChexbertPath(flag: string | boolean | undefined, env: Env = process.env): string {
  const given = typeof flag === 'string' && flag !== '' ? ['--chexbert', flag] : env.LLAVA_RAD_CHEXBERT ? ['LLAVA_RAD_CHEXBERT', env.LLAVA_RAD_CHEXBERT] : undefined;
  if (flag === true || flag === '') throw new UsageError('--chexbert needs a file name, e.g. --chexbert chexbert-f16.gguf');
  if (given) {
    const [from, p] = given as [string, string];
    if (!existsSync(p)) throw new UsageError(`eval: CheXbert model not found: ${p} (from ${from})`);
    if (!statSync(p).isFile()) throw new UsageError(`eval: the CheXbert model (${from}) must be a GGUF file, got ${describeNonFile(p)}`);
    return p;
  }
  const found = defaultChexbertPaths(env).find((p) => existsSync(p) && statSync(p).isFile());
  if (found) return found;
  throw new UsageError(`eval: the chexbert metric needs CheXbert's model as a GGUF: pass --chexbert FILE.gguf, set LLAVA_RAD_CHEXBERT, or put it at ${defaultChexbertPaths(env)[1]}; make it from CheXbert's chexbert.pth with \`llava-rad convert-chexbert chexbert.pth --vocab vocab.txt --out FILE.gguf\``);
}

/** the GREEN GGUFs looked for in the model home when neither --green nor LLAVA_RAD_GREEN is given */
export function defaultGreenPaths(env: Env = process.env): string[] {
  return ['green-f16.gguf', 'green-q8_0.gguf'].map((f) => path.join(llavaRadHome(env), 'eval', f));
}

interface GreenArgs {
  model: string;
  greenDir: string;
  parallel: number;
  maxLength: number;
}

/** --green FILE (else $LLAVA_RAD_GREEN, else the model home) and --green-dir, checked before anything is scored */
function greenArgs(v: Record<string, string | boolean | undefined>, env: Env = process.env): GreenArgs {
  if (v.green === true || v.green === '') throw new UsageError('--green needs a file name, e.g. --green green-f16.gguf');
  const given = typeof v.green === 'string' ? ['--green', v.green] : env.LLAVA_RAD_GREEN ? ['LLAVA_RAD_GREEN', env.LLAVA_RAD_GREEN] : undefined;
  let model: string | undefined;
  if (given) {
    const [from, p] = given as [string, string];
    if (!existsSync(p)) throw new UsageError(`eval: GREEN model not found: ${p} (from ${from})`);
    if (!statSync(p).isFile()) throw new UsageError(`eval: the GREEN model (${from}) must be a GGUF file, got ${describeNonFile(p)}`);
    model = p;
  } else {
    model = defaultGreenPaths(env).find((p) => existsSync(p) && statSync(p).isFile());
  }
  const greenDir = typeof v['green-dir'] === 'string' && v['green-dir'] !== '' ? v['green-dir'] : undefined;
  const missing = [model ? '' : '--green FILE.gguf', greenDir ? '' : '--green-dir DIR'].filter((m) => m !== '');
  if (missing.length) {
    throw new UsageError(`eval: the green metric needs ${missing.join(' and ')} (StanfordAIMI/GREEN-RadLlama2-7b as a LLaMA GGUF, default ${defaultGreenPaths(env)[0]}; and a clone of Stanford-AIMI/GREEN, whose prompt is read)`);
  }
  asUsage(() => loadGreenPrompt(greenDir!), true);
  return {
    model: model!, greenDir: greenDir!, parallel: judgeInt(v['green-parallel'], '--green-parallel', 1, 64, 4),
    maxLength: judgeInt(v['green-max-length'], '--green-max-length', 16, 1 << 20, GREEN_MAX_LENGTH),
  };
}

/** metrics.green of --json */
export interface GreenMetric extends Omit<GreenResult, 'studies'> {
  model: string;
  prompt: { path: string; sha256: string };
  /** per study, in input order: score, the counts and the analysis */
  studies: Array<{ id: string | undefined } & GreenResult['studies'][number]>;
}

async function runGreen(pairs: readonly ScoredPair[], g: GreenArgs, bootstrap: number, threads: number | undefined, io: { err: (s: string) => void }, progress: boolean, signal: AbortSignal | undefined): Promise<GreenMetric> {
  const prompt = loadGreenPrompt(g.greenDir);
  const t0 = Date.now();
  let lastLog = t0;
  const r = await scoreGreen(pairs, {
    model: g.model, prompt, parallel: g.parallel, maxLength: g.maxLength, bootstrap,
    ...(threads !== undefined ? { loadParams: { threads } } : {}),
    ...(signal ? { signal } : {}),
    onStudy: (done, total) => {
      if (!progress || (done !== total && Date.now() - lastLog < JUDGE_LOG_EVERY_MS)) return;
      lastLog = Date.now();
      io.err(`llava-rad eval: GREEN: ${done}/${total} studies, ${Math.round((Date.now() - t0) / 1000)}s\n`);
    },
  });
  return { ...r, model: g.model, prompt: { path: prompt.path, sha256: prompt.sha256 }, studies: r.studies.map((s, i) => ({ id: pairs[i]!.id, ...s })) };
}

/** the RadGraph GGUF looked for in the model home when neither --radgraph nor LLAVA_RAD_RADGRAPH is given */
export function defaultRadgraphPath(env: Env = process.env): string {
  return path.join(llavaRadHome(env), 'eval', 'radgraph-f32.gguf');
}

/** --radgraph FILE, else $LLAVA_RAD_RADGRAPH, else the default path if it exists; a usage error naming all three when none */
export function resolveRadgraphPath(flag: string | boolean | undefined, env: Env = process.env): string {
  if (flag === true || flag === '') throw new UsageError('--radgraph needs a file name, e.g. --radgraph radgraph-f32.gguf');
  const given = typeof flag === 'string' ? ['--radgraph', flag] : env.LLAVA_RAD_RADGRAPH ? ['LLAVA_RAD_RADGRAPH', env.LLAVA_RAD_RADGRAPH] : ['the default', defaultRadgraphPath(env)];
  const [from, p] = given as [string, string];
  if (existsSync(p) && statSync(p).isFile()) return p;
  if (from !== 'the default') throw new UsageError(existsSync(p) ? `eval: the RadGraph model (${from}) must be a GGUF file, got ${describeNonFile(p)}` : `eval: RadGraph model not found: ${p} (from ${from})`);
  throw new UsageError(`eval: the radgraph metric needs RadGraph's model as a GGUF: pass --radgraph FILE.gguf, set LLAVA_RAD_RADGRAPH, or put it at ${p}; make it from radgraph.tar.gz (llava-rad pull-eval) with \`llava-rad convert-radgraph radgraph.tar.gz --vocab vocab.txt --out ${p}\``);
}

const tornLineWarning = (file: string) => `llava-rad eval: left out the last line of ${file}: it has no newline and is not JSON (a record still being written?)\n`;

const f4 = (x: number) => x.toFixed(4);

/** studies listed in the HTML report: the lowest ROUGE-L F-measures */
const HTML_STUDIES = 10;

/** --html FILE: checked before scoring (a missing folder is a usage error) */
function htmlArg(v: string | boolean | undefined): string | undefined {
  if (v === undefined) return undefined;
  const p = String(v);
  if (p === '' || v === true) throw new UsageError('--html needs a file name, e.g. --html report.html');
  return requireOutputFile('eval', '--html', p, { stream: true });
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

const ciText = (c: readonly [number, number] | undefined) => (c ? `[${f4(c[0])}, ${f4(c[1])}]` : '-');

type CliEvalResult = Omit<EvalResult, 'metrics'> & { metrics: EvalResult['metrics'] & { chexprompt?: ChexpromptMetric; green?: GreenMetric } };

function table(r: CliEvalResult): string {
  const rows = present(r.metrics).map((k) => {
    const m = r.metrics[k]!;
    return [LABELS[k], f4(m.score), ciText(m.ci)];
  });
  const c = r.metrics.chexbert;
  // run.py's CheXbert numbers: the bootstrap median with its 95% interval (the F1 of all studies when not bootstrapped)
  if (c) for (const k of CHEXBERT_SUMMARY_KEYS) rows.push([`CheXbert ${k}`, f4(c.summary[k].median ?? c.summary[k].f1), ciText(c.summary[k].ci)]);
  if (r.metrics.sembScore) rows.push(['SembScore', f4(r.metrics.sembScore.score), '-']);
  const rg = r.metrics.radgraph;
  if (rg) rows.push([`RadGraph F1 (${rg.rewardLevel}${rg.lowercase ? ', lowercase' : ''})`, f4(rg.score), ciText(rg.ci)]);
  const j = r.metrics.chexprompt;
  if (j) {
    // CheXprompt: mean errors per report (lower is better) with their 95% bootstrap intervals
    rows.push(['CheXprompt significant errors/report', f4(j.significant.mean), ciText(j.significant.ci)]);
    rows.push(['CheXprompt insignificant errors/report', f4(j.insignificant.mean), ciText(j.insignificant.ci)]);
    rows.push(['CheXprompt total errors/report', f4(j.total.mean), ciText(j.total.ci)]);
    rows.push(['CheXprompt share without significant error', f4(j.noSignificantErrors), '-']);
  }
  const g = r.metrics.green;
  if (g) {
    rows.push(['GREEN', f4(g.score), ciText(g.ci)]);
    rows.push(['GREEN std', f4(g.std), '-']);
  }
  return renderTable(['metric', 'score', '95% CI'], rows);
}

/** --paired's result: evaluatePaired's, plus the judges run here on the matched studies */
type CliPairedResult = JudgedPairedResult;

/** CheXprompt and GREEN on both files' matched studies, compared with the paired bootstrap (same resamples) */
async function pairedJudges(r: CliPairedResult, pa: ScoredPair[], pb: ScoredPair[], judge: JudgeArgs | undefined, green: GreenArgs | undefined,
  threads: number | undefined, io: { err: (s: string) => void }, v: Record<string, unknown>, signal: AbortSignal | undefined): Promise<void> {
  if (judge) {
    const run = (pairs: ScoredPair[]) => runJudge(pairs, judge, 0, io, { progress: !v.quiet && !v.json, retries: !v.quiet, signal });
    const [ja, jb] = [await run(pa), await run(pb)];
    const counts = (s: ChexpromptResult['studies'][number], k: 'clinically_significant' | 'clinically_insignificant') =>
      s.error === undefined && s.rating?.clinically_significant && s.rating.clinically_insignificant ? Object.values(s.rating[k]!).reduce((a, b) => a + b, 0) : undefined;
    const keep = ja.studies.map((s, i) => counts(s, 'clinically_significant') !== undefined && counts(jb.studies[i]!, 'clinically_significant') !== undefined);
    const rated = keep.filter(Boolean).length;
    if (rated < pa.length) io.err(`llava-rad eval: CheXprompt: ${pa.length - rated} of ${pa.length} studies without a usable rating in A or B (left out of the paired comparison)\n`);
    if (rated > 0) {
      const list = (st: ChexpromptResult['studies'], k: 'clinically_significant' | 'clinically_insignificant') => st.filter((_, i) => keep[i]).map((s) => counts(s, k)!);
      r.metrics.chexprompt = {
        rated,
        significant: pairedMeans(list(ja.studies, 'clinically_significant'), list(jb.studies, 'clinically_significant'), r.bootstrap),
        insignificant: pairedMeans(list(ja.studies, 'clinically_insignificant'), list(jb.studies, 'clinically_insignificant'), r.bootstrap),
      };
    }
  }
  if (green) {
    const ga = await runGreen(pa, green, 0, threads, io, !v.quiet && !v.json, signal);
    const gb = await runGreen(pb, green, 0, threads, io, !v.quiet && !v.json, signal);
    r.metrics.green = pairedMeans(ga.studies.map((s) => s.score), gb.studies.map((s) => s.score), r.bootstrap);
  }
}

function pairedTable(r: CliPairedResult): string {
  const row = (label: string, m: PairedMetric) => [label, f4(m.a), f4(m.b), f4(m.diff), f4(m.mean), `[${f4(m.ci[0])}, ${f4(m.ci[1])}]`, m.bBelowA.toFixed(3)];
  const rows = present(r.metrics).map((k) => row(LABELS[k], r.metrics[k]!));
  const c = r.metrics.chexbert;
  if (c) for (const k of CHEXBERT_SUMMARY_KEYS) rows.push(row(`CheXbert ${k}`, c[k]));
  if (r.metrics.sembScore) rows.push(row('SembScore', r.metrics.sembScore));
  if (r.metrics.radgraph) rows.push(row('RadGraph F1 (mean)', r.metrics.radgraph));
  const j = r.metrics.chexprompt;
  if (j) {
    rows.push(row('CheXprompt significant errors/report', j.significant));
    rows.push(row('CheXprompt insignificant errors/report', j.insignificant));
  }
  if (r.metrics.green) rows.push(row('GREEN', r.metrics.green));
  return renderTable(['metric', 'A', 'B', 'B - A', 'mean', '95% CI', 'P(B < A)'], rows);
}

export const evalCommand: Command = {
  name: 'eval',
  summary: 'score predictions (BLEU-1/4, ROUGE-L, CheXbert F1 with the official bootstrap, SembScore, the CheXprompt LLM judge); --paired compares two files; --html writes a report page',
  usage: `Usage: llava-rad eval PREDICTIONS.jsonl [options]
       llava-rad eval A.jsonl B.jsonl --paired [options]

Scores each line's "prediction" (or batch's "findings") against its "reference" as the official LLaVA-Rad
evaluation (llava/eval/rrg_eval/run.py) does, with the same numbers:
  BLEU-1, BLEU-4  sacrebleu (13a tokens, case kept, exp smoothing); score = the corpus BLEU (0-100),
                  CI = the bootstrap mean -/+ sacrebleu's half-width (numpy default_rng(12345))
  ROUGE-L         rouge_score F-measure; score = the median of the bootstrap means (0-1), CI = their
                  2.5th and 97.5th percentiles (numpy's global generator seeded 3)
  CheXbert        (--metrics chexbert) CheXbert's labeler on each reference and prediction, then
                  rrg_eval/chexbert.py's F1 scores: Micro-/Macro-F1 over the 14 conditions and the 5
                  (Cardiomegaly, Edema, Consolidation, Atelectasis, Pleural Effusion), positive only and
                  positive-or-uncertain ("+"); score = the median of scipy.stats.bootstrap (percentile,
                  random_state=3), CI = its 95% interval; JSON and --html add the per-condition tables
  SembScore       (with chexbert) the mean cosine similarity of the CheXbert [CLS] states of reference and
                  prediction (CXR-Report-Metric's s_emb; not bootstrapped)
  CheXprompt      (--metrics chexprompt, or --judge-url given) an LLM judge on any OpenAI-compatible chat
                  endpoint counts each report's clinically significant and insignificant errors with the
                  prompt of your clone of microsoft/chexprompt; score = significant errors per report (mean,
                  lower is better), CI = its 95% bootstrap interval; studies without a usable answer are
                  counted and left out. The key comes from OPENAI_API_KEY (AZURE_OPENAI_API_KEY for Azure)
                  and is never printed. With --paired, both files are judged and the errors per report
                  compared on the studies rated in both.
  GREEN           (--metrics green, or --green given) GREEN-RadLlama2-7b on this engine writes an error
                  analysis per study with the prompt of your clone of Stanford-AIMI/GREEN; score = the mean
                  of matched / (matched + clinically significant errors), as GREEN reports it, with its std
                  and, per error kind, the share of studies without one; CI = the 95% percentile interval
                  of scipy.stats.bootstrap of the mean (ours: GREEN reports none). With --paired, both
                  files are scored and their per-study GREEN compared.
Records with an "error" (failed studies) are skipped and counted.

--paired matches the studies of A and B by id and bootstraps the difference B - A (the same resamples for
both systems, numpy default_rng(12345).choice(n, size=(B, n))): A's and B's scores, the difference, the
mean and 95% CI of the resampled differences, and the share of resamples where B scored below A.

Options:
      --metrics LIST   among ${CLI_METRICS.join(', ')} (default: ${DEFAULT_METRICS.join(',')})
      --chexbert FILE  CheXbert's GGUF (llava-rad convert-chexbert; given without --metrics, adds chexbert
                       to the default metrics); default $LLAVA_RAD_CHEXBERT, else
                       $LLAVA_RAD_HOME/eval/chexbert-f32.gguf or chexbert-f16.gguf
      --radgraph FILE  RadGraph's GGUF (llava-rad convert-radgraph; given without --metrics, adds radgraph
                       to the default metrics); default $LLAVA_RAD_RADGRAPH, else
                       $LLAVA_RAD_HOME/eval/radgraph-f32.gguf
      --radgraph-level L  simple, partial (default, the official evaluation's) or complete
      --lowercase      RadGraph: compare entity tokens lowercased (upstream radgraph since 2026; the
                       official LLaVA-Rad copy is case-sensitive)
      --threads N      CPU threads for CheXbert and RadGraph (default: the engine's)
      --bootstrap N    resamples, 2 to ${MAX_BOOTSTRAP} (default ${DEFAULT_BOOTSTRAP}, as the official evaluation)
      --paired         two files: paired bootstrap of B - A
      --judge-url URL  CheXprompt's chat endpoint: an OpenAI base URL (https://api.openai.com/v1), a
                       llama-server's http://127.0.0.1:8080/v1, or an Azure OpenAI endpoint
      --judge-model NAME      the model, or the Azure deployment
      --chexprompt-dir DIR    a clone of microsoft/chexprompt (the prompt is read from it)
      --judge-api-version V   Azure OpenAI's api-version (selects Azure)
      --judge-concurrency N   requests in flight (default 4)
      --judge-rpm N           requests per minute (default ${CHEXPROMPT_RPM}, chexprompt's)
      --judge-timeout S       seconds per HTTP attempt (default 120)
      --judge-attempts N      HTTP attempts per request, retrying 429 / 5xx / timeouts (default 5)
      --judge-temperature T   sampling temperature (default 0, chexprompt's evaluator)
      --green FILE     GREEN's GGUF (a LLaMA GGUF of StanfordAIMI/GREEN-RadLlama2-7b); default $LLAVA_RAD_GREEN,
                       else $LLAVA_RAD_HOME/eval/green-f16.gguf or green-q8_0.gguf
      --green-dir DIR  a clone of Stanford-AIMI/GREEN (the prompt is read from green_score/utils.py)
      --green-parallel N      studies generated at once (default 4)
      --green-max-length N    tokens per study, prompt and analysis (default 2048, GREEN's; less cuts long analyses)
  -q, --quiet          no judge progress or retry lines on stderr
      --json           print the result as one JSON object (the last line of stdout)
      --html FILE      also write the results as one self-contained HTML page (no scripts, nothing
                       fetched), with the ${HTML_STUDIES} lowest ROUGE-L studies when ROUGE-L is scored
  -h, --help           this help

Exit status: 0 scored; 1 an error (e.g. BAD_PREDICTIONS: a line that is not JSON or lacks a field); 2 bad
arguments or a missing file.`,
  async run(args, io, signal) {
    const { values: v, positionals } = parseWithPositionals(args, {
      metrics: { type: 'string' },
      bootstrap: { type: 'string' },
      paired: { type: 'boolean' },
      json: { type: 'boolean' },
      html: { type: 'string' },
      chexbert: { type: 'string' },
      radgraph: { type: 'string' },
      'radgraph-level': { type: 'string' },
      lowercase: { type: 'boolean' },
      threads: { type: 'string' },
      'judge-url': { type: 'string' },
      'judge-model': { type: 'string' },
      'chexprompt-dir': { type: 'string' },
      'judge-api-version': { type: 'string' },
      'judge-concurrency': { type: 'string' },
      'judge-rpm': { type: 'string' },
      'judge-timeout': { type: 'string' },
      'judge-attempts': { type: 'string' },
      'judge-temperature': { type: 'string' },
      green: { type: 'string' },
      'green-dir': { type: 'string' },
      'green-parallel': { type: 'string' },
      'green-max-length': { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
    }, 'eval', 2);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const bootstrap = intArg(v.bootstrap, '--bootstrap', 2, MAX_BOOTSTRAP);
    // --chexbert without --metrics: the default families and chexbert
    const modelFlags = [...(typeof v.chexbert === 'string' && v.chexbert !== '' ? ['chexbert'] : []), ...(typeof v.radgraph === 'string' && v.radgraph !== '' ? ['radgraph'] : [])];
    const named = metricsArg(v.metrics) ?? (modelFlags.length > 0 ? [...DEFAULT_METRICS, ...modelFlags] : undefined);
    // --judge-url adds the judge to the metrics (given or default); the judge runs here, not in evaluate()
    const wantsJudge = (named ?? []).includes('chexprompt') || v['judge-url'] !== undefined;
    const wantsGreen = (named ?? []).includes('green') || (typeof v.green === 'string' && v.metrics === undefined);
    const libNamed = named?.filter((m) => m !== 'chexprompt' && m !== 'green') as EvalMetric[] | undefined;
    const metrics = libNamed !== undefined && libNamed.length === 0 ? undefined : libNamed;
    const judgeOnly = (wantsJudge || wantsGreen) && named !== undefined && metrics === undefined;
    const judge = wantsJudge ? judgeArgs(v) : undefined;
    const green = wantsGreen ? greenArgs(v) : undefined;
    const html = htmlArg(v.html);
    const threads = intArg(v.threads, '--threads', 1, 1024);
    const wantsChexbert = !judgeOnly && (metrics ?? DEFAULT_METRICS).includes('chexbert');
    const chexbert = wantsChexbert ? resolveChexbertPath(v.chexbert) : undefined;
    const wantsRadgraph = !judgeOnly && (metrics ?? DEFAULT_METRICS).includes('radgraph');
    const levelArg = v['radgraph-level'];
    if (levelArg !== undefined && !(RADGRAPH_REWARD_LEVELS as readonly unknown[]).includes(levelArg)) throw new UsageError(`--radgraph-level must be simple, partial or complete, got '${String(levelArg)}'`);
    const level = levelArg as RadgraphRewardLevel | undefined;
    const radgraph = wantsRadgraph ? resolveRadgraphPath(v.radgraph) : undefined;
    const options = {
      ...(metrics ? { metrics } : {}),
      ...(bootstrap !== undefined ? { bootstrap } : {}),
      ...(chexbert !== undefined ? { chexbert, ...(threads !== undefined ? { chexbertParams: { threads } } : {}) } : {}),
      ...(radgraph !== undefined ? {
        radgraph, ...(threads !== undefined ? { radgraphParams: { threads } } : {}),
        ...(level !== undefined ? { radgraphLevel: level } : {}), ...(v.lowercase === true ? { radgraphLowercase: true } : {}),
      } : {}),
      signal,
    };
    if (v.paired) {
      if (positionals.length !== 2) throw new UsageError('eval: --paired needs two predictions files, A.jsonl and B.jsonl');
      for (const p of positionals) requireFile('eval', 'predictions', p);
      const [fileA, fileB] = positionals as [string, string];
      let r: CliPairedResult;
      if (judgeOnly) {
        const m = await asUsageAsync(async () => matchPairs(fileA, fileB));
        r = { n: m.pa.length, skipped: m.skipped, unmatched: m.unmatched, tornLastLine: m.tornLastLine, bootstrap: bootstrap ?? DEFAULT_BOOTSTRAP, metrics: {} };
      } else {
        r = await asUsageAsync(() => evaluatePaired(fileA, fileB, options));
      }
      if (r.skipped.a || r.skipped.b) io.err(`llava-rad eval: skipped records with an error: ${r.skipped.a} in A, ${r.skipped.b} in B\n`);
      for (const [which, file] of [['a', fileA], ['b', fileB]] as const) {
        if (r.tornLastLine[which]) io.err(tornLineWarning(file));
      }
      if (r.unmatched.a || r.unmatched.b) io.err(`llava-rad eval: studies in one file only (left out): ${r.unmatched.a} in A, ${r.unmatched.b} in B\n`);
      if (judge || green) {
        const { pa, pb } = matchPairs(fileA, fileB);
        await pairedJudges(r, pa, pb, judge, green, threads, io, v, signal);
      }
      if (html) writeHtml(html, { source: `${fileA} (A), ${fileB} (B)`, paired: r });
      if (v.json) io.out(JSON.stringify(r) + '\n');
      else io.out(`${r.n} studies in both files, ${r.bootstrap} paired resamples (B minus A)\n` + pairedTable(r));
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'eval: expected a predictions file (JSONL)' : 'eval: two files need --paired');
    const file = requireFile('eval', 'predictions', positionals[0]);
    let r: CliEvalResult;
    if (judgeOnly) {
      // the judge alone: the predictions are read (and checked) as evaluate() reads them
      const { pairs, skipped, repeated, tornLastLine } = await asUsageAsync(async () => loadPairs(file));
      if (pairs.length === 0) throw new LlavaRadError('BAD_PREDICTIONS', `no records to score${skipped ? ` (all ${skipped} records carry an error)` : ''}`);
      r = { n: pairs.length, skipped, repeated, tornLastLine, bootstrap: bootstrap ?? DEFAULT_BOOTSTRAP, metrics: {} };
    } else {
      r = await asUsageAsync(() => evaluate(file, options));
    }
    if (r.skipped) io.err(`llava-rad eval: skipped ${r.skipped} record(s) with an error (failed studies)\n`);
    if (r.tornLastLine) io.err(tornLineWarning(file));
    if (r.repeated.count) {
      io.err(`llava-rad eval: warning: ${r.repeated.count} record(s) score a study already scored (the first: id ${JSON.stringify(r.repeated.first)}); ` +
        'every record is scored, as the official evaluation does (of a `llava-rad batch` file, `llava-rad merge OUT.jsonl FILE` keeps one record per study)\n');
    }
    let judged: ChexpromptResult | undefined;
    if (judge) {
      judged = await runJudge(loadPairs(file).pairs, judge, r.bootstrap, io, { progress: !v.quiet && !v.json, retries: !v.quiet, signal });
      r.metrics.chexprompt = chexpromptMetric(judged);
      const s = judged.summary;
      if (s.failed) {
        const first = r.metrics.chexprompt.failures[0]!;
        io.err(`llava-rad eval: CheXprompt: ${s.failed} of ${s.n} studies without a usable rating (left out; first: ${first.id ?? `#${first.index}`}: ${first.code}: ${first.message})\n`);
      }
    }
    if (green) r.metrics.green = await runGreen(loadPairs(file).pairs, green, r.bootstrap, threads, io, !v.quiet && !v.json, signal);
    if (html) writeHtml(html, { source: file, result: r, ...(r.metrics.green ? { green: r.metrics.green } : {}), ...(r.metrics.chexbert ? { chexbert: r.metrics.chexbert } : {}), ...(judged ? { chexprompt: judged } : {}), ...(r.metrics.rougeL ? { studies: lowestRouge(file) } : {}) });
    if (v.json) io.out(JSON.stringify(r) + '\n');
    else io.out(`${r.n} studies, ${r.bootstrap} bootstrap resamples\n` + table(r));
    return 0;
  },
};
