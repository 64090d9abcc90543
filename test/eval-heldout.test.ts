// The acceptance test of issue #16's first part: on the held-out synthetic set (220 report pairs that no
// other test reads), `llava-rad eval --json` gives BLEU-1, BLEU-4 and ROUGE-L, their bootstrap medians
// and CIs equal to the official computation (run.py's procedure on sacrebleu 2.6.0, rouge_score and
// numpy 1.24: test/fixtures/eval/heldout-golden.json, made by scripts/make-eval-fixtures.py).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cli.js');
const fixture = (name: string) => path.join(root, 'test', 'fixtures', 'eval', name);

beforeAll(() => {
  if (!existsSync(cli)) {
    const b = spawnSync('npm', ['run', 'build:ts'], { cwd: root, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`could not build dist/: ${b.stderr}`);
  }
}, 300_000);

it('llava-rad eval --json on 220 held-out pairs: 3 metrics x (score, CI low, CI high) = 9 values equal to the official ones to 4 decimals (and to 1e-9)', () => {
  const golden = JSON.parse(readFileSync(fixture('heldout-golden.json'), 'utf8')) as {
    n: number;
    bootstrap: number;
    official: Record<string, { median: number; ci_l: number; ci_h: number }>;
  };
  expect(golden.n).toBeGreaterThanOrEqual(200);
  const r = spawnSync(process.execPath, [cli, 'eval', fixture('heldout.jsonl'), '--json'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const j = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { n: number; bootstrap: number; metrics: Record<string, { score: number; ci: [number, number] }> };
  expect(j.n).toBe(golden.n);
  expect(j.bootstrap).toBe(golden.bootstrap); // 500 resamples, the default
  let compared = 0;
  for (const m of ['bleu1', 'bleu4', 'rougeL']) {
    const g = golden.official[m]!;
    const ours = [j.metrics[m]!.score, j.metrics[m]!.ci[0], j.metrics[m]!.ci[1]];
    const theirs = [g.median, g.ci_l, g.ci_h];
    for (let k = 0; k < 3; k++) {
      expect(ours[k]!.toFixed(4), `${m} ${['score', 'ci low', 'ci high'][k]}`).toBe(theirs[k]!.toFixed(4));
      expect(Math.abs(ours[k]! - theirs[k]!), `${m} ${['score', 'ci low', 'ci high'][k]}`).toBeLessThan(1e-9);
      compared++;
    }
  }
  expect(compared).toBe(9);
});
