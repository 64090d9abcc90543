// BLEU (sacrebleu 2.6.0) and ROUGE-L (rouge_score) reproduced in TypeScript, on the development report set
// (test/fixtures/eval/dev.jsonl), against goldens the real scorers made (scripts/make-eval-fixtures.py).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bleuCorpusStats, bleuFromStats, corpusBleu, preprocessBleuSegment, tokenize13a } from '../lib/eval/bleu.js';
import { bleuBootstrap, percentile, rougeBootstrap } from '../lib/eval/bootstrap.js';
import { evaluate } from '../lib/eval/evaluate.js';
import { readPredictions } from '../lib/eval/read-predictions.js';
import { rougeL, rougeTokenize } from '../lib/eval/rouge.js';
import { fsum, pyRstrip, pySplit, pyStrip } from '../lib/eval/text.js';

const fixture = (name: string) => new URL(`./fixtures/eval/${name}`, import.meta.url).pathname;
interface Official { median: number; ci_l: number; ci_h: number; mean?: number; half_width?: number }
interface DevGolden {
  versions: Record<string, string>;
  n: number;
  tokens13a: Array<[string, string]>;
  rouge_tokens: Array<[string[], string[]]>;
  stats4: number[][];
  stats1: number[][];
  corpus: Record<'bleu1' | 'bleu4', { score: number; precisions: number[]; bp: number }>;
  bootstrap_scores: Record<'bleu1' | 'bleu4', number[]>;
  rouge_pairs: Array<[number, number, number]>;
  rouge_means: number[];
  rouge_mean_f: number;
  official: Record<'bleu1' | 'bleu4' | 'rougeL', Official>;
  official_b100: Record<'bleu1' | 'bleu4' | 'rougeL', Official>;
}
const golden = JSON.parse(readFileSync(fixture('dev-golden.json'), 'utf8')) as DevGolden;
const { pairs } = readPredictions(fixture('dev.jsonl'));
const preds = pairs.map((p) => p.prediction);
const refs = pairs.map((p) => p.reference);

describe(`sacrebleu ${golden.versions.sacrebleu} BLEU on ${golden.n} dev pairs`, () => {
  it('reads the 60 dev pairs', () => expect(pairs.length).toBe(golden.n));

  it('reads the same pairs through a BOM, CRLF line ends, blank lines and a last line without a newline', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'llava-rad-eval-read-'));
    try {
      const lines = readFileSync(fixture('dev.jsonl'), 'utf8').split('\n').filter((l) => l !== '');
      const file = path.join(dir, 'odd.jsonl');
      writeFileSync(file, '\ufeff' + lines.map((l, i) => (i % 7 === 3 ? `\r\n  \n${l}` : l)).join('\r\n'));
      const odd = readPredictions(file);
      expect(odd.pairs, `${golden.n} pairs compared`).toEqual(pairs);
      expect(odd.skipped).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(`13a tokenization of ${golden.n} predictions and ${golden.n} references (punctuation, numbers, unicode, <skipped>, &amp;, -\\n)`, () => {
    for (let i = 0; i < golden.n; i++) {
      expect(preprocessBleuSegment(preds[i]!), `prediction ${i}`).toBe(golden.tokens13a[i]![0]);
      expect(preprocessBleuSegment(refs[i]!), `reference ${i}`).toBe(golden.tokens13a[i]![1]);
    }
  });

  it('13a on hand-made cases', () => {
    expect(tokenize13a('Tip 4.5 cm, 3-4 ribs; e.g. (R) “x”!')).toBe('Tip 4.5 cm , 3 - 4 ribs ; e . g . ( R ) “x” !'); // sacrebleu 2.6.0's output
    expect(tokenize13a('a&amp;b &lt;c&gt; &quot;q&quot;')).toBe('a & b < c > " q "');
    expect(pySplit('a\u00a0b\u3000c\x1cd\u200be')).toEqual(['a', 'b', 'c', 'd\u200be']);
  });

  // Python 3.11: [c for c in range(0x110000) if chr(c).isspace()]
  const PY_WHITESPACE = [0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
    0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000];
  it(`strip() and rstrip() take Python's ${PY_WHITESPACE.length} whitespace characters, no other of the BMP`, () => {
    const ws = String.fromCharCode(...PY_WHITESPACE);
    expect(pyStrip(`${ws}x${ws}y${ws}`)).toBe(`x${ws}y`);
    expect(pyRstrip(`${ws}x${ws}`)).toBe(`${ws}x`);
    const kept: number[] = [];
    for (let c = 0; c < 0x10000; c++) if (pyStrip(String.fromCharCode(c)) === '') kept.push(c);
    expect(kept, 'the characters strip() removes').toEqual(PY_WHITESPACE);
    expect(pyStrip('\ufeffx'), 'U+FEFF is not whitespace to Python (it is to JavaScript\'s \\s)').toBe('\ufeffx');
  });

  it('rstrip of a long run of whitespace inside a segment takes one pass (it took 5.4 s for 64,000 spaces)', () => {
    const s = `a${' '.repeat(1 << 20)}b ${'\t'.repeat(1 << 20)}`;
    expect(pyRstrip(s)).toBe(`a${' '.repeat(1 << 20)}b`);
    expect(preprocessBleuSegment(`a${' '.repeat(1 << 16)}b  `)).toBe('a b');
  });

  it(`per-segment statistics, orders 4 and 1 (${golden.n} segments each)`, () => {
    expect(bleuCorpusStats(preds, refs, 4)).toEqual(golden.stats4);
    expect(bleuCorpusStats(preds, refs, 1)).toEqual(golden.stats1);
  });

  it('corpus BLEU-4 and BLEU-1: score, precisions and brevity penalty to 1e-12', () => {
    for (const [name, order] of [['bleu4', 4], ['bleu1', 1]] as const) {
      const c = corpusBleu(bleuCorpusStats(preds, refs, order), order);
      const g = golden.corpus[name];
      expect(c.score).toBeCloseTo(g.score, 12);
      expect(c.bp).toBeCloseTo(g.bp, 12);
      c.precisions.forEach((p, i) => expect(p).toBeCloseTo(g.precisions[i]!, 12));
    }
  });

  it('the 500 bootstrap resample scores of each order equal sacrebleu\'s, in order, to 1e-9 (1000 scores)', () => {
    for (const [name, order] of [['bleu4', 4], ['bleu1', 1]] as const) {
      const bs = bleuBootstrap(bleuCorpusStats(preds, refs, order), order, 500);
      expect(bs.scores.length).toBe(500);
      bs.scores.forEach((s, i) => expect(s, `${name} resample ${i}`).toBeCloseTo(golden.bootstrap_scores[name][i]!, 9));
      expect(bs.mean).toBeCloseTo(golden.official[name].mean!, 10);
      expect(bs.halfWidth).toBeCloseTo(golden.official[name].half_width!, 10);
    }
  });

  it('exp smoothing, zero matches and an empty hypothesis', () => {
    // no 3- or 4-gram matches: smoothed as 100 / (2 * total), 100 / (4 * total)
    const s = bleuFromStats([4, 4, 3, 1, 0, 0, 4, 3, 2, 1]);
    expect(s.precisions).toEqual([75, 100 / 3, 100 / (2 * 2), 100 / (4 * 1)]);
    expect(bleuFromStats([0, 5, 0, 0, 0, 0, 0, 0, 0, 0]).score).toBe(0);
  });
});

describe(`rouge_score ROUGE-L on ${golden.n} dev pairs`, () => {
  it(`tokens and precision / recall / F-measure of ${golden.n} pairs to 1e-15`, () => {
    for (let i = 0; i < golden.n; i++) {
      expect(rougeTokenize(refs[i]!), `reference ${i}`).toEqual(golden.rouge_tokens[i]![0]);
      expect(rougeTokenize(preds[i]!), `prediction ${i}`).toEqual(golden.rouge_tokens[i]![1]);
      const r = rougeL(refs[i]!, preds[i]!);
      const [p, rc, f] = golden.rouge_pairs[i]!;
      expect(r.precision).toBeCloseTo(p, 15);
      expect(r.recall).toBeCloseTo(rc, 15);
      expect(r.fmeasure).toBeCloseTo(f, 15);
    }
  });

  it('the 500 bootstrap means equal BootstrapAggregator\'s after np.random.seed(3), in order, to 1e-15; percentiles to 1e-15', () => {
    const f = golden.rouge_pairs.map((x) => x[2]);
    const bs = rougeBootstrap(f, 500);
    bs.means.forEach((m, i) => expect(m, `resample ${i}`).toBeCloseTo(golden.rouge_means[i]!, 15));
    expect(bs.median).toBeCloseTo(golden.official.rougeL.median, 15);
    expect(bs.low).toBeCloseTo(golden.official.rougeL.ci_l, 15);
    expect(bs.high).toBeCloseTo(golden.official.rougeL.ci_h, 15);
    expect(fsum(f) / f.length).toBeCloseTo(golden.rouge_mean_f, 14);
  });

  it('numpy percentile (linear) on small cases', () => {
    expect(percentile([1, 2, 3, 4], 50)).toBe(2.5);
    expect(percentile([3, 1, 2], 100)).toBe(3);
    expect(percentile([5], 2.5)).toBe(5);
    expect(percentile([0, 10], 2.5)).toBeCloseTo(0.25, 15);
  });
});

describe('evaluate() on the dev set equals run.py', () => {
  for (const [label, B, key] of [['500 resamples', 500, 'official'], ['100 resamples', 100, 'official_b100']] as const) {
    it(`BLEU-1, BLEU-4, ROUGE-L scores and CIs with ${label} (${golden.n} pairs) to 1e-9`, async () => {
      const r = await evaluate(fixture('dev.jsonl'), { bootstrap: B });
      expect(r.n).toBe(golden.n);
      expect(r.skipped).toBe(0);
      for (const m of ['bleu1', 'bleu4', 'rougeL'] as const) {
        const g = golden[key][m];
        expect(r.metrics[m]!.score, `${m} score`).toBeCloseTo(g.median, 9);
        expect(r.metrics[m]!.ci[0], `${m} ci low`).toBeCloseTo(g.ci_l, 9);
        expect(r.metrics[m]!.ci[1], `${m} ci high`).toBeCloseTo(g.ci_h, 9);
      }
    });
  }
});

describe('bootstraps of many resamples hold one resample at a time', () => {
  // evaluate() allows 100,000 resamples; before the resamples were drawn row by row, 3,000 studies at that
  // setting ended the process (V8: heap out of memory) while the 3e8 indices were drawn into one array. Here
  // 500 studies x 10,000 resamples (5e6 indices per metric) run in a child whose JS heap may hold 32 MB:
  // before, it aborted there (exit 134). That the numbers are numpy's, sacrebleu's and scipy's is checked
  // above and in eval-numpy-random / eval-chexbert-f1 (the same row-by-row draws).
  it('evaluate (BLEU, ROUGE-L), evaluatePaired and chexbertF1: 5e6 indices each in a 32 MB heap', async () => {
    const { spawnSync } = await import('node:child_process');
    const path = await import('node:path');
    const root = new URL('..', import.meta.url).pathname;
    const code = `
      const { evaluate } = await import(${JSON.stringify(path.join(root, 'lib/eval/evaluate.ts'))});
      const { evaluatePaired } = await import(${JSON.stringify(path.join(root, 'lib/eval/paired.ts'))});
      const { chexbertF1 } = await import(${JSON.stringify(path.join(root, 'lib/eval/chexbert-f1.ts'))});
      const n = 500, B = 10000;
      const preds = ['No effusion.', 'Mild cardiomegaly.', 'Heart size normal.', 'Small left pleural effusion.'];
      const a = Array.from({ length: n }, (_, i) => ({ id: String(i), reference: preds[(i * 7) % 4] + ' No pneumothorax.', prediction: preds[i % 4] }));
      const b = a.map((r, i) => ({ ...r, prediction: preds[(i + 1) % 4] }));
      const labels = (k) => Array.from({ length: 14 }, (_, c) => [null, 1, 2, 3][(k * 5 + c * 3) % 4]);
      const e = await evaluate(a, { bootstrap: B });
      const p = await evaluatePaired(a, b, { bootstrap: B });
      const c = chexbertF1(a.map((_, i) => labels(i)), a.map((_, i) => labels(i % 3 ? i : i + 1)), { bootstrap: B });
      console.log(JSON.stringify({ bleu4: e.metrics.bleu4, rougeL: e.metrics.rougeL, paired: p.metrics, chexbert: c.summary }));`;
    const run = (heap: string[]) => {
      const r = spawnSync(process.execPath, [...heap, '--import', path.join(root, 'scripts/ts-hooks.mjs'), '--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 300_000 });
      expect(r.status, `${heap.join(' ') || 'default heap'}: exit ${r.status} ${r.signal ?? ''}: ${r.stderr.split('\n').filter((l) => /FATAL|Error/.test(l)).join(' ').slice(0, 400)}`).toBe(0);
      return JSON.parse(r.stdout.trim().split('\n').pop()!);
    };
    const child = run(['--max-old-space-size=32']);
    expect(child.bleu4.ci[0]).toBeLessThan(child.bleu4.ci[1]);
    expect(child.chexbert['Micro-F1-14'].ci[0]).toBeLessThan(child.chexbert['Micro-F1-14'].ci[1]);
  }, 300_000);
});
