// `llava-rad eval --html` and renderEvalHtml: the metrics with their values, CheXbert per-label F1 with
// intervals, the paired CheXbert / SembScore rows, no empty BLEU / ROUGE table when only CheXbert is scored,
// the CheXprompt section, escaping of hostile ids / texts, and no external URL, script or font.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../lib/cli.js';
import { CHEXBERT_SUMMARY_KEYS, type ChexbertSummaryKey } from '../lib/eval/chexbert-f1.js';
import type { EvalResult } from '../lib/eval/evaluate.js';
import type { PairedMetric, PairedResult } from '../lib/eval/paired.js';
import { chexbertF1, evaluate, renderEvalHtml } from '../lib/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixture = (name: string) => path.join(root, 'test', 'fixtures', 'eval', name);
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-html-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>';

/** what a self-contained, script-free page must not contain */
function expectSelfContained(html: string): void {
  expect(html).not.toMatch(/<script/i);
  expect(html).not.toMatch(/<img/i);
  expect(html).not.toMatch(/\bon\w+\s*=/i); // no event handler attributes
  expect(html).not.toMatch(/(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i); // no URL of any host
  expect(html).not.toMatch(/@import|@font-face|url\(/i);
  expect(html).not.toMatch(/<link\b/i);
  expect(html).toMatch(/For research use only/);
}

describe('renderEvalHtml', () => {
  it('shows BLEU / ROUGE-L with their values and the per-label CheXbert F1 table with intervals', async () => {
    const result = await evaluate(fixture('dev.jsonl'), { bootstrap: 50 });
    const golden = JSON.parse(readFileSync(fixture('chexbert-f1-golden.json'), 'utf8')) as { references: number[][]; predictions: number[][] };
    const chexbert = chexbertF1(golden.references as never, golden.predictions as never, { bootstrap: 50 });
    const html = renderEvalHtml({ result, chexbert, source: 'dev.jsonl' });
    for (const [label, m] of [['BLEU-1', result.metrics.bleu1!], ['BLEU-4', result.metrics.bleu4!], ['ROUGE-L', result.metrics.rougeL!]] as const) {
      expect(html).toContain(`<th scope="row">${label}</th><td>${m.score.toFixed(4)}</td><td>[${m.ci[0].toFixed(4)}, ${m.ci[1].toFixed(4)}]</td>`);
    }
    const s = chexbert.summary['Micro-F1-14'];
    expect(html).toContain(`<th scope="row">Micro-F1-14</th><td>${s.f1.toFixed(4)}</td><td>${s.median!.toFixed(4)}</td><td>[${s.ci![0].toFixed(4)}, ${s.ci![1].toFixed(4)}]</td>`);
    const card = chexbert.reports['f14+'].labels['Cardiomegaly']!;
    expect(html).toContain(`<th scope="row">Cardiomegaly</th><td>${card.f1.toFixed(4)}</td><td>${card.precision.toFixed(4)}</td><td>${card.recall.toFixed(4)}</td><td>${card.support}</td>`);
    const macro = chexbert.reports.f14.macro;
    expect(html).toContain(`<th scope="row">macro avg</th><td>${macro.f1.toFixed(4)}</td>`);
    expect(html).toContain(`${macro.bootstrap!.median.toFixed(4)} [${macro.bootstrap!.ci[0].toFixed(4)}, ${macro.bootstrap!.ci[1].toFixed(4)}]`);
    for (const k of Object.keys(chexbert.summary)) expect(html).toContain(`<th scope="row">${k}</th>`);
    expectSelfContained(html);
  });

  it('--paired: the paired CheXbert rows (the eight F1 scores) and SembScore are shown next to BLEU / ROUGE-L', () => {
    const pm = (a: number, b: number) => ({ a, b, diff: b - a, mean: b - a + 0.001, ci: [b - a - 0.05, b - a + 0.05] as [number, number], bBelowA: 0.25 });
    const chexbert = Object.fromEntries(CHEXBERT_SUMMARY_KEYS.map((k, i) => [k, pm(0.3 + i / 100, 0.35 + i / 100)])) as Record<ChexbertSummaryKey, PairedMetric>;
    const paired: PairedResult = { n: 12, skipped: { a: 0, b: 0 }, unmatched: { a: 0, b: 0 }, bootstrap: 30, metrics: { rougeL: pm(0.25, 0.2), chexbert, sembScore: pm(0.8, 0.85) } };
    const html = renderEvalHtml({ paired });
    expect(html).toContain('<th scope="row">ROUGE-L</th><td>0.2500</td><td>0.2000</td><td>-0.0500</td>');
    CHEXBERT_SUMMARY_KEYS.forEach((k, i) => {
      const m = chexbert[k];
      expect(html).toContain(`<th scope="row">CheXbert ${k}</th><td>${m.a.toFixed(4)}</td><td>${m.b.toFixed(4)}</td><td>${m.diff.toFixed(4)}</td><td>${m.mean.toFixed(4)}</td><td>[${m.ci[0].toFixed(4)}, ${m.ci[1].toFixed(4)}]</td><td>0.250</td>`);
      expect(m.a).toBeCloseTo(0.3 + i / 100, 12);
    });
    expect(html).toContain('<th scope="row">SembScore</th><td>0.8000</td><td>0.8500</td><td>0.0500</td>');
    expectSelfContained(html);
  });

  it('--metrics chexbert alone: no empty BLEU / ROUGE table, the CheXbert section and SembScore', () => {
    const golden = JSON.parse(readFileSync(fixture('chexbert-f1-golden.json'), 'utf8')) as { references: number[][]; predictions: number[][] };
    const chexbert = chexbertF1(golden.references as never, golden.predictions as never, { bootstrap: 20 });
    const result: EvalResult = { n: golden.references.length, skipped: 2, bootstrap: 20, metrics: { chexbert, sembScore: { score: 0.875 } } };
    const html = renderEvalHtml({ result, chexbert });
    expect(html).not.toContain('BLEU');
    expect(html).not.toContain('ROUGE');
    expect(html).not.toMatch(/<tbody>\s*<\/tbody>/);
    expect(html).toContain(`<p>${golden.references.length} studies scored, 2 skipped (records with an error); 20 bootstrap resamples. SembScore (mean cosine of the CheXbert [CLS] states, not bootstrapped): 0.8750.</p>`);
    expect(html).toContain('<h2>CheXbert F1</h2>');
    expect(html).toContain('<th scope="row">Micro-F1-14</th>');
    expectSelfContained(html);
  });

  it('the CheXprompt section: errors per report with intervals, the share without a significant error, by type, the prompt sha256', () => {
    const byType = (x: number) => Object.fromEntries(['false_positive_finding', 'omission_finding', 'incorrect_location', 'incorrect_severity', 'false_positive_comparison', 'omission_comparison'].map((k, i) => [k, x * i])) as never;
    const summary = {
      n: 10, rated: 9, failed: 1,
      significant: { mean: 0.5, ci: [0.25, 0.75] as [number, number] }, insignificant: { mean: 1.25, ci: [1, 1.5] as [number, number] }, total: { mean: 1.75, ci: [1.5, 2] as [number, number] },
      noSignificantErrors: 0.6, byType: { clinically_significant: byType(0.1), clinically_insignificant: byType(0.2) },
    };
    const html = renderEvalHtml({ chexprompt: { summary, judge: { model: `gpt${HOSTILE}`, provider: 'azure', prompt: { path: '/x/evaluator.py', sha256: 'ab'.repeat(32) } } } });
    expect(html).toContain('<h2>CheXprompt (LLM judge)</h2>');
    expect(html).toContain('9 of 10 studies rated, 1 without a usable rating (left out).');
    expect(html).toContain('<th scope="row">clinically significant</th><td>0.5000</td><td>[0.2500, 0.7500]</td>');
    expect(html).toContain('<th scope="row">clinically insignificant</th><td>1.2500</td><td>[1.0000, 1.5000]</td>');
    expect(html).toContain('<th scope="row">total</th><td>1.7500</td><td>[1.5000, 2.0000]</td>');
    expect(html).toContain('<th scope="row">reports with no clinically significant error (share)</th><td>0.6000</td>');
    expect(html).toContain('<th scope="row">incorrect_severity</th><td>0.3000</td><td>0.6000</td>');
    expect(html).toContain(`prompt sha256 <code>${'ab'.repeat(32)}</code>`);
    expect(html).not.toContain('<script>');
    expect(html).not.toContain('Report metrics');
  });

  it('escapes a hostile <script> in a study id, its texts, the title and the source name', () => {
    const html = renderEvalHtml({
      title: `Eval ${HOSTILE}`,
      source: `preds${HOSTILE}.jsonl`,
      studies: { caption: `worst ${HOSTILE}`, rows: [{ id: HOSTILE, reference: `ref ${HOSTILE} & "quoted" 'single'`, prediction: HOSTILE, score: 0.125 }] },
    });
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('ref &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt; &amp; &quot;quoted&quot; &#39;single&#39;');
    expect(html).toContain('<td>0.1250</td>');
    expect(html).not.toContain('<script>');
    // the only "onerror" left is inside escaped text (no tag can start there)
    expect(html.replace(/&lt;img src=x onerror=alert\(1\)&gt;/g, '')).not.toMatch(/onerror/);
    expect(html.replace(/&lt;img src=x onerror=alert\(1\)&gt;/g, '')).not.toMatch(/\bon\w+\s*=/i);
    expect(html).not.toMatch(/<img/i);
    expect(html).not.toMatch(/https?:/i);
  });
});

describe('llava-rad eval --html', () => {
  async function cli(args: string[]) {
    let out = '';
    let err = '';
    const code = await main(['eval', ...args], { out: (s) => void (out += s), err: (s) => void (err += s) });
    return { code, out, err };
  }

  it('writes the page next to the usual output: metrics, the 10 lowest ROUGE-L studies (hostile id escaped)', async () => {
    const lines = readFileSync(fixture('dev.jsonl'), 'utf8').trim().split('\n').slice(0, 30).map((l) => JSON.parse(l) as Record<string, unknown>);
    lines[0] = { ...lines[0], id: HOSTILE, prediction: `${HOSTILE} nothing alike` };
    const preds = path.join(tmp, 'preds.jsonl');
    writeFileSync(preds, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const out = path.join(tmp, 'report.html');
    const r = await cli([preds, '--bootstrap', '20', '--json', '--html', out]);
    expect(r.code, r.err).toBe(0);
    const json = JSON.parse(r.out.trim().split('\n').at(-1)!) as { metrics: Record<string, { score: number }> };
    const html = readFileSync(out, 'utf8');
    expect(html).toContain(`<th scope="row">ROUGE-L</th><td>${json.metrics.rougeL!.score.toFixed(4)}</td>`);
    expect(html).toContain(`<th scope="row">BLEU-4</th><td>${json.metrics.bleu4!.score.toFixed(4)}</td>`);
    expect(html).toContain('The 10 studies with the lowest ROUGE-L F-measure');
    expect(html).toContain('<th scope="row">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;</th>');
    expectSelfContained(html.replace(/&lt;img src=x onerror=alert\(1\)&gt;/g, ''));
  });

  it('--paired --html writes the paired table; a missing folder or no file name is a usage error', async () => {
    const out = path.join(tmp, 'paired.html');
    const r = await cli([fixture('dev.jsonl'), fixture('dev-b.jsonl'), '--paired', '--bootstrap', '20', '--metrics', 'rouge', '--html', out]);
    expect(r.code, r.err).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('Paired comparison (B minus A)');
    expect(html).toMatch(/<th scope="row">ROUGE-L<\/th><td>\d\.\d{4}<\/td>/);
    expectSelfContained(html);
    const missing = await cli([fixture('dev.jsonl'), '--html', path.join(tmp, 'no', 'such', 'r.html')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/folder not found/);
    const folder = await cli([fixture('dev.jsonl'), '--html', tmp]);
    expect(folder.code).toBe(2);
  });
});
