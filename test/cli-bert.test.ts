// `llava-rad-cli bert` (the standalone C++ CLI's BERT check, used by bench/device/cuda.sh to compare a GPU with
// the CPU where no Node runs) on the tiny random-weight CheXbert of scripts/make-chexbert-fixtures.py converted
// to an f32 GGUF: its dump of the goldens' 20 sequences, batched and one at a time, is within 1e-5 of the float64
// PyTorch goldens ([CLS] states and every head's logits); pseudo-random ids are reproducible by seed; bad
// arguments exit 2 with a message.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { convertChexbert } from '../lib/convert/chexbert.js';
import { bertBaseUncasedVocabText } from './fixtures/wordpiece/vocab.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const exe = path.join(root, process.env.LLAVA_RAD_BUILD_DIR ?? 'build', 'llava-rad-cli');
const FIXTURE = path.join(here, 'fixtures', 'chexbert');
interface Case { ids: number[]; cls_hidden: number[]; logits: number[][] }
const golden = JSON.parse(readFileSync(path.join(FIXTURE, 'goldens.json'), 'utf8')) as { hparams: { heads: number }; cases: Case[] };

const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-cli-bert-'));
const gguf = path.join(tmp, 'chexbert-f32.gguf');
const idsFile = path.join(tmp, 'ids.txt');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[]) {
  const r = spawnSync(exe, args, { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function floats(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

beforeAll(async () => {
  expect(existsSync(exe), `${exe} was not built (npm run build:native, or set LLAVA_RAD_BUILD_DIR)`).toBe(true);
  await convertChexbert(path.join(FIXTURE, 'chexbert-tiny.pth'), WordPieceVocab.fromText(bertBaseUncasedVocabText()), gguf,
    { type: 'f32', headCount: golden.hparams.heads });
  // one sequence a line; commas and spaces both separate ids
  writeFileSync(idsFile, golden.cases.map((c, i) => c.ids.join(i % 2 ? ',' : ' ')).join('\n') + '\n');
}, 120_000);

describe('llava-rad-cli bert', () => {
  for (const batch of ['1', '0']) {
    it(`--ids-file --batch ${batch}: every [CLS] state and logit within 1e-5 of the float64 PyTorch goldens`, () => {
      const dump = path.join(tmp, `dump-${batch}.f32`);
      const r = run(['bert', '--model', gguf, '--ids-file', idsFile, '--batch', batch, '--backend', 'cpu', '--threads', '2', '--dump', dump, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const j = JSON.parse(r.stdout.trim()) as { sequences: number; n_embd: number; n_logits: number; backend: string; batch: boolean };
      const n = golden.cases.length;
      expect(j).toMatchObject({ sequences: n, backend: 'CPU', batch: batch === '1' });
      const v = floats(dump);
      expect(v.length).toBe(n * (j.n_embd + j.n_logits));
      let worst = 0, compared = 0;
      golden.cases.forEach((c, i) => {
        const want = [...c.cls_hidden.map((x, k) => [x, v[i * j.n_embd + k]!]), ...c.logits.flat().map((x, k) => [x, v[n * j.n_embd + i * j.n_logits + k]!])];
        for (const [x, y] of want) {
          worst = Math.max(worst, Math.abs(x! - y!) / Math.max(1, Math.abs(x!)));
          compared++;
        }
      });
      expect(compared, 'values compared').toBe(n * (j.n_embd + j.n_logits));
      expect(worst, `largest relative difference over ${compared} values`).toBeLessThan(1e-5);
    });
  }

  it('pseudo-random sequences: the same seed gives the same dump, another seed another', () => {
    const dumps = ['7', '7', '8'].map((seed, i) => {
      const f = path.join(tmp, `rand-${i}.f32`);
      const r = run(['bert', '--model', gguf, '--seqs', '3', '--len', '20', '--seed', seed, '--dump', f, '--threads', '2']);
      expect(r.code, r.stderr).toBe(0);
      // lengths 20, 17, 14
      expect(r.stdout).toMatch(/^3 sequence\(s\), 51 tokens in .* ms \(one batch\), backend CPU/);
      return Buffer.from(readFileSync(f));
    });
    expect(dumps[0]!.equals(dumps[1]!)).toBe(true);
    expect(dumps[0]!.equals(dumps[2]!)).toBe(false);
  });

  it('bad arguments and files exit 2 or 1 with a message', () => {
    const badIds = path.join(tmp, 'bad-ids.txt');
    writeFileSync(badIds, '101 abc 102\n');
    const outOfVocab = path.join(tmp, 'oov-ids.txt');
    writeFileSync(outOfVocab, '101 99999999\n');
    const cases: [string[], number, RegExp][] = [
      [['bert', '--model', gguf, '--len', '600'], 2, /--len must be an integer between 1 and 512, got '600'/],
      [['bert', '--model', gguf, '--batch', '2'], 2, /--batch must be an integer between 0 and 1/],
      [['bert', '--model', gguf, '--ids-file', badIds], 2, /--ids-file: '101 abc 102' is not a list of integers/],
      [['bert', '--model', gguf, '--ids-file', path.join(tmp, 'missing.txt')], 1, /cannot read .*missing\.txt/],
      [['bert', '--model', gguf, '--ids-file', outOfVocab], 1, /error \[INVALID_ARGUMENT\]: encoding failed/],
      [['bert', '--model', path.join(tmp, 'nope.gguf')], 2, /model file not found/],
    ];
    for (const [args, code, message] of cases) {
      const r = run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });
});
