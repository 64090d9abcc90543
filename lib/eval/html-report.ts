// `llava-rad eval --html`: one self-contained HTML page of the evaluation's results (inline CSS, no
// scripts, no fonts or anything else fetched), every text from the input escaped.

import { CHEXBERT_SUMMARY_KEYS, type ChexbertF1Result, type ClassificationReport } from './chexbert-f1.js';
import type { EvalResult } from './evaluate.js';
import { CHEXPROMPT_ERROR_NAMES } from './judge/chexprompt-parse.js';
import type { ChexpromptResult } from './judge/chexprompt.js';
import { GREEN_SUB_CATEGORIES } from './green/green-parse.js';
import type { GreenResult } from './green/green.js';
import type { PairedMetric, PairedResult } from './paired.js';

export interface EvalHtmlStudy {
  id?: string;
  reference: string;
  prediction: string;
  /** a per-study score shown next to it (e.g. ROUGE-L F-measure) */
  score?: number;
}

/** evaluatePaired()'s result with the judges' paired rows `llava-rad eval --paired` adds */
export type JudgedPairedResult = Omit<PairedResult, 'metrics'> & {
  metrics: PairedResult['metrics'] & { green?: PairedMetric; chexprompt?: { rated: number; significant: PairedMetric; insignificant: PairedMetric } };
};

export interface EvalHtmlInput {
  /** page title (default "LLaVA-Rad evaluation") */
  title?: string;
  /** where the predictions came from (a file name), shown as given */
  source?: string;
  /** BLEU / ROUGE results of evaluate() */
  result?: EvalResult;
  /** a paired comparison of evaluatePaired() (plus the judges' paired rows `llava-rad eval --paired` adds) */
  paired?: JudgedPairedResult;
  /** GREEN's summary (scoreGreen()) */
  green?: Pick<GreenResult, 'score' | 'ci' | 'std' | 'accuracy' | 'studies'>;
  /** CheXbert F1 results of chexbertF1() */
  chexbert?: ChexbertF1Result;
  /** the CheXprompt judge's summary (chexpromptJudge(); its judge description is optional, the URL is never shown) */
  chexprompt?: Pick<ChexpromptResult, 'summary'> & { judge?: Pick<ChexpromptResult['judge'], 'model' | 'provider' | 'prompt'> };
  /** studies to list (e.g. the lowest scoring), with a caption */
  studies?: { caption: string; rows: readonly EvalHtmlStudy[] };
  /** the time shown as generated (default now) */
  generatedAt?: Date;
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** HTML text / attribute escaping */
export function escapeHtml(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

const num = (x: number | undefined, digits = 4) => (x === undefined || !Number.isFinite(x) ? '&ndash;' : x.toFixed(digits));
const ci = (c: readonly [number, number] | undefined) => (c ? `[${num(c[0])}, ${num(c[1])}]` : '&ndash;');

function table(caption: string, head: string[], rows: string[][], cls = ''): string {
  const th = head.map((h) => `<th scope="col">${escapeHtml(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c, i) => (i === 0 ? `<th scope="row">${c}</th>` : `<td>${c}</td>`)).join('')}</tr>`).join('\n');
  return `<table${cls ? ` class="${cls}"` : ''}>\n<caption>${escapeHtml(caption)}</caption>\n<thead><tr>${th}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

const LABELS = { bleu1: 'BLEU-1', bleu4: 'BLEU-4', rougeL: 'ROUGE-L' } as const;

function reportSection(r: EvalResult): string {
  const rows = (Object.keys(LABELS) as Array<keyof typeof LABELS>).filter((k) => r.metrics[k]).map((k) => {
    const m = r.metrics[k]!;
    return [LABELS[k], num(m.score), ci(m.ci)];
  });
  const g = r.metrics.radgraph;
  if (g) rows.push([escapeHtml(`RadGraph F1 (${g.rewardLevel}${g.lowercase ? ', lowercase' : ''}; 0-1, bootstrap median)`), num(g.score), ci(g.ci)]);
  // no BLEU / ROUGE / RadGraph scored (e.g. --metrics chexbert): the counts only, no empty table
  const t = rows.length > 0 ? `\n${table('BLEU (0-100, corpus score with the bootstrap mean ± half-width), ROUGE-L and RadGraph F1 (0-1, bootstrap median with 2.5th / 97.5th percentiles)', ['metric', 'score', '95% CI'], rows)}` : '';
  const semb = r.metrics.sembScore ? ` SembScore (mean cosine of the CheXbert [CLS] states, not bootstrapped): ${num(r.metrics.sembScore.score)}.` : '';
  return `<section>\n<h2>Report metrics</h2>\n<p>${r.n} studies scored${r.skipped ? `, ${r.skipped} skipped (records with an error)` : ''}; ${r.bootstrap} bootstrap resamples.${semb}</p>${t}\n</section>`;
}

function pairedSection(r: JudgedPairedResult): string {
  const row = (label: string, m: NonNullable<PairedResult['metrics']['rougeL']>) => [escapeHtml(label), num(m.a), num(m.b), num(m.diff), num(m.mean), ci(m.ci), num(m.bBelowA, 3)];
  const rows = (Object.keys(LABELS) as Array<keyof typeof LABELS>).filter((k) => r.metrics[k]).map((k) => row(LABELS[k], r.metrics[k]!));
  const c = r.metrics.chexbert;
  if (c) for (const k of CHEXBERT_SUMMARY_KEYS) if (c[k]) rows.push(row(`CheXbert ${k}`, c[k]));
  if (r.metrics.sembScore) rows.push(row('SembScore', r.metrics.sembScore));
  if (r.metrics.radgraph) rows.push(row('RadGraph F1 (mean)', r.metrics.radgraph));
  const j = r.metrics.chexprompt;
  if (j) rows.push(row(`CheXprompt significant errors/report (${j.rated} rated)`, j.significant), row('CheXprompt insignificant errors/report', j.insignificant));
  if (r.metrics.green) rows.push(row('GREEN', r.metrics.green));
  return `<section>\n<h2>Paired comparison (B minus A)</h2>\n<p>${r.n} studies in both files, ${r.bootstrap} paired resamples.</p>\n${table('Paired bootstrap of B - A', ['metric', 'A', 'B', 'B - A', 'mean', '95% CI', 'P(B < A)'], rows)}\n</section>`;
}

function chexpromptSection(c: NonNullable<EvalHtmlInput['chexprompt']>): string {
  const s = c.summary;
  const rows = ([['clinically significant', s.significant], ['clinically insignificant', s.insignificant], ['total', s.total]] as const)
    .map(([label, m]) => [label, num(m.mean), ci(m.ci)]);
  rows.push(['reports with no clinically significant error (share)', num(s.noSignificantErrors), '&ndash;']);
  const byType = table('Mean errors per report by type', ['error type', 'clinically significant', 'clinically insignificant'],
    CHEXPROMPT_ERROR_NAMES.map((k) => [escapeHtml(k), num(s.byType.clinically_significant[k]), num(s.byType.clinically_insignificant[k])]));
  const judge = c.judge ? ` Judge: <code>${escapeHtml(c.judge.model)}</code> (${escapeHtml(c.judge.provider)}); prompt sha256 <code>${escapeHtml(c.judge.prompt.sha256)}</code>.` : '';
  return `<section>\n<h2>CheXprompt (LLM judge)</h2>\n<p>${s.rated} of ${s.n} studies rated${s.failed ? `, ${s.failed} without a usable rating (left out)` : ''}.${judge}</p>\n${table('Errors per report: mean with 95% bootstrap interval', ['errors per report', 'mean', '95% CI'], rows)}\n${byType}\n</section>`;
}

function greenSection(g: NonNullable<EvalHtmlInput['green']>): string {
  const rows = [['GREEN (mean of matched / (matched + clinically significant errors))', num(g.score), ci(g.ci)], ['standard deviation', num(g.std), '&ndash;']];
  const acc = table('Share of studies without each clinically significant error', ['error', 'share'],
    GREEN_SUB_CATEGORIES.map((k) => [escapeHtml(k), num(g.accuracy[k])]));
  return `<section>\n<h2>GREEN</h2>\n<p>${g.studies.length} studies.</p>\n${table('GREEN: mean with 95% bootstrap interval', ['score', 'value', '95% CI'], rows)}\n${acc}\n</section>`;
}

const SUMMARY_GROUPS = [
  ['positive only (uncertain as negative)', ['Micro-F1-14', 'Macro-F1-14', 'Micro-F1-5', 'Macro-F1-5']],
  ['positive or uncertain ("+")', ['Micro-F1-14+', 'Macro-F1-14+', 'Micro-F1-5+', 'Macro-F1-5+']],
] as const;

function breakdown(rep: ClassificationReport, caption: string): string {
  const names = Object.keys(rep.labels).sort(); // run.py prints sorted(CONDITIONS)
  const rows = names.map((name) => {
    const s = rep.labels[name]!;
    return [escapeHtml(name), num(s.f1), num(s.precision), num(s.recall), String(s.support), '&ndash;'];
  });
  for (const [label, a] of [['micro avg', rep.micro], ['macro avg', rep.macro]] as const) {
    rows.push([label, num(a.f1), num(a.precision), num(a.recall), String(a.support), a.bootstrap ? `${num(a.bootstrap.median)} ${ci(a.bootstrap.ci)}` : '&ndash;']);
  }
  return table(caption, ['condition', 'F1', 'precision', 'recall', 'support', 'bootstrap median [95% CI]'], rows, 'breakdown');
}

function chexbertSection(c: ChexbertF1Result): string {
  const summary = SUMMARY_GROUPS.map(([caption, keys]) => table(`CheXbert F1, ${caption}`, ['score', 'F1 (all studies)', 'bootstrap median', '95% CI'],
    keys.map((k) => {
      const s = c.summary[k];
      return [escapeHtml(k), num(s.f1), num(s.median), ci(s.ci)];
    }))).join('\n');
  return `<section>\n<h2>CheXbert F1</h2>\n<p>${c.n} studies; ${c.bootstrap ? `${c.bootstrap} bootstrap resamples (scipy.stats.bootstrap, percentile, random_state=3)` : 'no bootstrap'}. 14: all CheXbert conditions; 5: Cardiomegaly, Edema, Consolidation, Atelectasis, Pleural Effusion.</p>\n${summary}\n${breakdown(c.reports['f14+'], 'Per condition, uncertain as positive')}\n${breakdown(c.reports.f14, 'Per condition, uncertain as negative')}\n</section>`;
}

function studiesSection(s: NonNullable<EvalHtmlInput['studies']>): string {
  const rows = s.rows.map((r) => [escapeHtml(r.id ?? ''), r.score === undefined ? '&ndash;' : num(r.score), `<span class="text">${escapeHtml(r.reference)}</span>`, `<span class="text">${escapeHtml(r.prediction)}</span>`]);
  return `<section>\n<h2>Studies</h2>\n${table(s.caption, ['id', 'score', 'reference', 'prediction'], rows, 'studies')}\n</section>`;
}

const CSS = `body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1b1f24;background:#fff;margin:2rem auto;max-width:72rem;padding:0 1rem}
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:2rem 0 .5rem;border-bottom:1px solid #d0d7de;padding-bottom:.25rem}
.meta{color:#57606a;margin:0 0 1rem}.notice{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.6rem .8rem;margin:1rem 0}
table{border-collapse:collapse;margin:.75rem 0 1.25rem;font-variant-numeric:tabular-nums}caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:right;vertical-align:top}thead th{background:#f6f8fa}tbody th{text-align:left;font-weight:normal}
table.studies td:nth-child(3),table.studies td:nth-child(4){text-align:left;max-width:28rem}.text{white-space:pre-wrap;overflow-wrap:anywhere}
@media print{body{margin:0;max-width:none}}`;

/** the evaluation as one self-contained HTML document */
export function renderEvalHtml(input: EvalHtmlInput): string {
  const title = input.title ?? 'LLaVA-Rad evaluation';
  const when = (input.generatedAt ?? new Date()).toISOString();
  const parts: string[] = [];
  if (input.result) parts.push(reportSection(input.result));
  if (input.paired) parts.push(pairedSection(input.paired));
  if (input.chexbert) parts.push(chexbertSection(input.chexbert));
  if (input.chexprompt) parts.push(chexpromptSection(input.chexprompt));
  if (input.green) parts.push(greenSection(input.green));
  if (input.studies && input.studies.rows.length > 0) parts.push(studiesSection(input.studies));
  if (parts.length === 0) parts.push('<p>No results to show.</p>');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">${input.source !== undefined ? `Predictions: <code>${escapeHtml(input.source)}</code> &middot; ` : ''}generated ${escapeHtml(when)} by llava-rad eval, with the metrics and bootstrap of the official LLaVA-Rad evaluation (llava/eval/rrg_eval/run.py).</p>
<p class="notice"><strong>For research use only.</strong> These are automatic metrics of machine-generated reports; they are not a clinical validation, and neither the model nor this report is for diagnosis or patient care.</p>
${parts.join('\n')}
</body>
</html>
`;
}
