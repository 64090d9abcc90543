// `llava-rad eval`: the --json shape, batch records (findings, failed studies), --paired, and bad input
// giving one-line typed errors with the CLI's exit codes (1 error, 2 usage).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../lib/cli.js';
import { evaluate, evaluatePaired, isLlavaRadError } from '../lib/index.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fixture = (name: string) => path.join(root, 'test', 'fixtures', 'eval', name);
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-eval-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await main(['eval', ...args], { out: (s) => void (out += s), err: (s) => void (err += s) });
  return { code, out, err };
}
const lastJson = (s: string) => JSON.parse(s.trim().split('\n').at(-1)!) as Record<string, any>;
function write(name: string, text: string): string {
  const p = path.join(tmp, name);
  writeFileSync(p, text);
  return p;
}
const devLines = readFileSync(fixture('dev.jsonl'), 'utf8').trim().split('\n');

describe('llava-rad eval', () => {
  const built = path.join(root, 'dist', 'cli.js');
  beforeAll(() => {
    if (!existsSync(built)) {
      const b = spawnSync('npm', ['run', 'build:ts'], { cwd: root, encoding: 'utf8' });
      if (b.status !== 0) throw new Error(`could not build dist/: ${b.stderr}`);
    }
  }, 300_000);

  it('dist/cli.js eval --json: the last stdout line is {n, skipped, metrics: {bleu1, bleu4, rougeL: {score, ci}}}', () => {
    const r = spawnSync(process.execPath, [built, 'eval', fixture('dev.jsonl'), '--json', '--bootstrap', '100'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.n).toBe(60);
    expect(j.skipped).toBe(0);
    expect(Object.keys(j.metrics)).toEqual(['bleu1', 'bleu4', 'rougeL']);
    for (const m of Object.values(j.metrics) as Array<{ score: number; ci: [number, number] }>) {
      expect(typeof m.score).toBe('number');
      expect(m.ci).toHaveLength(2);
      expect(m.ci[0]).toBeLessThanOrEqual(m.ci[1]);
    }
  });

  it('the human table and --metrics rouge', async () => {
    const r = await cli([fixture('dev.jsonl'), '--metrics', 'rouge', '--bootstrap', '50']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^60 studies, 50 bootstrap resamples\nmetric +score +95% CI\nROUGE-L +0\.\d{4} +\[0\.\d{4}, 0\.\d{4}\]\n$/);
  });

  it('batch records: "findings" stands for "prediction", failed studies are skipped and counted (60 + 3 records)', async () => {
    const batch = devLines.map((l) => {
      const { id, reference, prediction } = JSON.parse(l) as Record<string, string>;
      return JSON.stringify({ id, image: `${id}.png`, reason: null, findings: prediction, reference, research_use_only: true });
    });
    batch.splice(5, 0, JSON.stringify({ id: 'x1', image: 'x1.png', error: { code: 'INVALID_IMAGE', message: 'bad' } }));
    batch.push(JSON.stringify({ id: 'x2', error: { code: 'IO', message: 'gone' } }), JSON.stringify({ id: 'x3', reference: 'r', error: { code: 'IO', message: 'gone' } }), '');
    const p = write('batch.jsonl', batch.join('\n') + '\n');
    const r = await cli([p, '--json', '--bootstrap', '100']);
    expect(r.code).toBe(0);
    expect(r.err).toBe('llava-rad eval: skipped 3 record(s) with an error (failed studies)\n');
    const j = lastJson(r.out);
    expect(j.n).toBe(60);
    expect(j.skipped).toBe(3);
    // the same numbers as the official-format file
    const ref = await evaluate(fixture('dev.jsonl'), { bootstrap: 100 });
    expect(j.metrics).toEqual(JSON.parse(JSON.stringify(ref.metrics)));
  });

  it('a study scored more than once (files of two runs joined): every record scored, a warning names how many and the first id', async () => {
    const lines = [...devLines, devLines[3]!, devLines[10]!, devLines[3]!];
    const p = write('repeated.jsonl', lines.join('\n') + '\n');
    const r = await cli([p, '--json', '--bootstrap', '50', '--metrics', 'rouge']);
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/^llava-rad eval: warning: 3 record\(s\) score a study already scored \(the first: id "dev-0003"\); every record is scored, as the official evaluation does \(of a `llava-rad batch` file, `llava-rad merge OUT.jsonl FILE` keeps one record per study\)\n$/);
    const j = lastJson(r.out);
    expect(j.n).toBe(63);
    expect(j.repeated).toEqual({ count: 3, first: 'dev-0003' });
    const records = lines.map((l) => JSON.parse(l) as Record<string, string>);
    const lib = await evaluate(records, { bootstrap: 50, metrics: ['rouge'] });
    expect(lib.repeated).toEqual({ count: 3, first: 'dev-0003' });
    expect(j.metrics).toEqual(JSON.parse(JSON.stringify(lib.metrics)));
    expect((await evaluate(fixture('dev.jsonl'), { bootstrap: 50, metrics: ['rouge'] })).repeated).toEqual({ count: 0 });
  });

  it('a file a batch is still appending to: an unterminated last line that is not JSON is left out with a warning; anywhere else it is BAD_PREDICTIONS', async () => {
    const torn = devLines[7]!.slice(0, 50);
    const p = write('appending.jsonl', devLines.join('\n') + '\n' + torn);
    const r = await cli([p, '--json', '--bootstrap', '50', '--metrics', 'rouge']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe(`llava-rad eval: left out the last line of ${p}: it has no newline and is not JSON (a record still being written?)\n`);
    const j = lastJson(r.out);
    expect(j.n).toBe(60);
    expect(j.tornLastLine).toBe(true);
    expect(j.metrics).toEqual(JSON.parse(JSON.stringify((await evaluate(fixture('dev.jsonl'), { bootstrap: 50, metrics: ['rouge'] })).metrics)));
    const paired = await cli(['--paired', fixture('dev.jsonl'), p, '--json', '--bootstrap', '50', '--metrics', 'rouge']);
    expect(paired.code, paired.err).toBe(0);
    expect(paired.err).toBe(`llava-rad eval: left out the last line of ${p}: it has no newline and is not JSON (a record still being written?)\n`);
    expect(lastJson(paired.out)).toMatchObject({ n: 60, tornLastLine: { a: false, b: true } });
    for (const [name, text] of [['with its newline', devLines.join('\n') + '\n' + torn + '\n'], ['in the middle', [devLines[0], torn, devLines[1]].join('\n')]] as const) {
      const bad = await cli([write(`bad-${name.replace(/ /g, '-')}.jsonl`, text), '--json', '--metrics', 'rouge']);
      expect(bad.code, name).toBe(1);
      expect(bad.err, name).toMatch(/\[BAD_PREDICTIONS\].* line (61|2): not JSON/);
    }
  });

  it('--paired on dev.jsonl (A) and dev-b.jsonl (B: other order, one study missing, one extra, one failed) equals the numpy golden', async () => {
    const golden = JSON.parse(readFileSync(fixture('paired-golden.json'), 'utf8')) as Record<string, any>;
    const r = await cli([fixture('dev.jsonl'), fixture('dev-b.jsonl'), '--paired', '--json']);
    expect(r.code).toBe(0);
    expect(r.err).toContain('skipped records with an error: 0 in A, 1 in B');
    expect(r.err).toContain('studies in one file only (left out): 2 in A, 1 in B');
    const j = lastJson(r.out);
    expect(j.n).toBe(golden.n); // 58 studies in both, 500 resamples
    expect(j.unmatched).toEqual(golden.unmatched);
    for (const m of ['bleu1', 'bleu4', 'rougeL']) {
      const g = golden.metrics[m];
      expect(j.metrics[m].a, `${m} A`).toBeCloseTo(g.a, 10);
      expect(j.metrics[m].b, `${m} B`).toBeCloseTo(g.b, 10);
      expect(j.metrics[m].mean, `${m} mean difference`).toBeCloseTo(g.mean, 10);
      expect(j.metrics[m].ci[0], `${m} ci low`).toBeCloseTo(g.ci[0], 10);
      expect(j.metrics[m].ci[1], `${m} ci high`).toBeCloseTo(g.ci[1], 10);
      expect(j.metrics[m].bBelowA, `${m} share B < A`).toBe(g.bBelowA);
    }
    const human = await cli([fixture('dev.jsonl'), fixture('dev-b.jsonl'), '--paired', '--bootstrap', '20']);
    expect(human.out).toMatch(/^58 studies in both files, 20 paired resamples \(B minus A\)\nmetric +A +B +B - A +mean +95% CI +P\(B < A\)\nBLEU-1 /);
  });

  it('paired needs ids: a typed error', async () => {
    const p = write('noid.jsonl', '{"reference":"a b","prediction":"a"}\n');
    await expect(evaluatePaired(p, p)).rejects.toSatisfy((e) => isLlavaRadError(e, 'BAD_PREDICTIONS') && /has no "id"/.test((e as Error).message));
  });

  const bad: Array<[string, string[] | (() => string[]), number, RegExp]> = [
    ['a non-JSON line', () => [write('nonjson.jsonl', `${devLines[0]}\n{"reference": "x", "prediction": \n`)], 1, /^llava-rad: error \[BAD_PREDICTIONS\]: .*nonjson\.jsonl line 2: not JSON \(.*\); expected one JSON object per line\n$/],
    ['a missing reference', () => [write('noref.jsonl', `${devLines[0]}\n{"id":"a","prediction":"x"}\n`)], 1, /^llava-rad: error \[BAD_PREDICTIONS\]: .*noref\.jsonl line 2: expected a string "reference" .*got undefined\n$/],
    ['a missing prediction', () => [write('nopred.jsonl', '{"id":"a","reference":"x","findings":3}\n')], 1, /^llava-rad: error \[BAD_PREDICTIONS\]: .*nopred\.jsonl line 1: expected a string "prediction" or "findings", got 3\n$/],
    // ROUGE-L is quadratic in the words: before the limit, two 256 KB texts took 9 s, two 4 MB ones about 40 minutes
    ['a prediction over 64 KiB', () => [write('longpred.jsonl', `${JSON.stringify({ id: 'a', reference: 'x', prediction: 'no '.repeat(30000) })}\n`)], 1, /^llava-rad: error \[BAD_PREDICTIONS\]: .*longpred\.jsonl line 1: the prediction has 90000 bytes; at most 65536 are scored/],
    ['a reference over 64 KiB in UTF-8', () => [write('longref.jsonl', `${devLines[0]}\n${JSON.stringify({ id: 'b', reference: 'é'.repeat(40000), findings: 'x' })}\n`)], 1, /^llava-rad: error \[BAD_PREDICTIONS\]: .*longref\.jsonl line 2: the reference has 80000 bytes; at most 65536 are scored/],
    ['a line that is not an object', () => [write('arr.jsonl', '[1,2]\n')], 1, /^llava-rad: error \[BAD_PREDICTIONS\]: .*arr\.jsonl line 1: expected a JSON object .*got an array of length 2\n$/],
    ['only failed records', () => [write('failed.jsonl', '{"id":"a","error":{"code":"IO","message":"x"}}\n')], 1, /^llava-rad: error \[BAD_PREDICTIONS\]: no records to score \(all 1 records carry an error\)\n$/],
    ['an empty file', () => [write('empty.jsonl', '\n')], 1, /^llava-rad: error \[BAD_PREDICTIONS\]: no records to score\n$/],
    ['a nonexistent file', ['/nonexistent/preds.jsonl'], 2, /^llava-rad: eval: predictions file not found: \/nonexistent\/preds\.jsonl\n$/],
    ['a folder', [tmpdir()], 2, /^llava-rad: eval: predictions must be a file, got the folder /],
    ['--bootstrap 0', [fixture('dev.jsonl'), '--bootstrap', '0'], 2, /^llava-rad: --bootstrap must be an integer between 2 and 100000, got '0'\n$/],
    ['--bootstrap x', [fixture('dev.jsonl'), '--bootstrap', 'x'], 2, /^llava-rad: --bootstrap must be an integer between 2 and 100000, got 'x'\n$/],
    ['--bootstrap -5', [fixture('dev.jsonl'), '--bootstrap', '-5'], 2, /^llava-rad: --bootstrap must be an integer between 2 and 100000, got '-5'\n$/],
    ['--metrics bleu,nope', [fixture('dev.jsonl'), '--metrics', 'bleu,nope'], 2, /^llava-rad: metrics must be among bleu, rouge, chexbert, radgraph, chexprompt, green, got "nope"\n$/],
    ['--metrics bertscore (planned)', [fixture('dev.jsonl'), '--metrics', 'bertscore'], 1, /^llava-rad: error \[UNSUPPORTED\]: the bertscore metric is not implemented yet/],
    ['two files without --paired', [fixture('dev.jsonl'), fixture('dev-b.jsonl')], 2, /^llava-rad: eval: two files need --paired\n$/],
    ['--paired with one file', [fixture('dev.jsonl'), '--paired'], 2, /^llava-rad: eval: --paired needs two predictions files/],
    ['no file', [], 2, /^llava-rad: eval: expected a predictions file \(JSONL\)\n$/],
    ['an unknown option', [fixture('dev.jsonl'), '--nope'], 2, /^llava-rad: eval: Unknown option '--nope'/],
  ];
  for (const [what, args, code, message] of bad) {
    it(`${what}: exit ${code}, one line`, async () => {
      const r = await cli(typeof args === 'function' ? args() : args);
      expect(r.code).toBe(code);
      expect(r.out).toBe('');
      expect(r.err).toMatch(message);
      expect(r.err.trim().split('\n')).toHaveLength(1);
    });
  }

  it('library errors are typed: INVALID_ARGUMENT for options, IO for a missing file', async () => {
    await expect(evaluate(fixture('dev.jsonl'), { bootstrap: 1 })).rejects.toSatisfy((e) => isLlavaRadError(e, 'INVALID_ARGUMENT'));
    await expect(evaluate(fixture('dev.jsonl'), { bootstrap: 2.5 })).rejects.toSatisfy((e) => isLlavaRadError(e, 'INVALID_ARGUMENT'));
    await expect(evaluate(fixture('dev.jsonl'), { metrics: [] })).rejects.toSatisfy((e) => isLlavaRadError(e, 'INVALID_ARGUMENT'));
    await expect(evaluate('/nonexistent.jsonl')).rejects.toSatisfy((e) => isLlavaRadError(e, 'IO'));
    await expect(evaluate([{ reference: 'a' }])).rejects.toSatisfy((e) => isLlavaRadError(e, 'BAD_PREDICTIONS') && /^record 0: /.test((e as Error).message));
    const r = await evaluate([{ reference: 'The lungs are clear.', prediction: 'The lungs are clear.' }, { reference: 'x', error: { code: 'IO' } }], { bootstrap: 10 });
    expect(r.n).toBe(1);
    expect(r.skipped).toBe(1);
    expect(r.metrics.bleu4!.score).toBeCloseTo(100, 10);
    expect(r.metrics.rougeL!.score).toBe(1);
  });

  it('is listed in llava-rad --help', async () => {
    let out = '';
    await main(['--help'], { out: (s) => void (out += s), err: () => {} });
    expect(out).toMatch(/\n {2}eval +score predictions/);
  });
});
