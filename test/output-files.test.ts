// Files put in place by renaming a temporary file over the destination (lib/replace-file.ts: the converters,
// the retrieval index and its export, merge), and the command line's checks of the paths it is given.
//
// On 54afbf1 a destination that was not a regular file was replaced: `convert-radgraph --out /dev/null` run as
// root put a 121 KB GGUF where the device node /dev/null was (checked with a node made by mknod); here a FIFO
// stands in for it (no root needed). And the converters' temporary files had guessable names
// (OUT.tmp-PID-MILLISECONDS) opened with truncation: a link planted under such a name had the GGUF written
// through it, over whatever it pointed to. And the CLI said "image file not found: DIR" of a folder that exists.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { writePredictions } from '../lib/batch/merge.js';
import { convertRadgraph } from '../lib/convert/radgraph.js';
import { isLlavaRadError } from '../lib/errors.js';
import { GgufWriter } from '../lib/gguf/writer.js';
import { exportJsonl } from '../lib/retrieval/export.js';
import { RetrievalIndex, writeIndexFile } from '../lib/retrieval/index-file.js';
import { runCliInProcess } from './helpers/cli-in-process.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const RADGRAPH = path.join(here, 'fixtures', 'radgraph', 'model');
const vocab = WordPieceVocab.fromText(readFileSync(path.join(RADGRAPH, 'vocab.txt'), 'utf8'));
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-output-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function fifo(name: string): string {
  const p = path.join(tmp, name);
  execFileSync('mkfifo', [p]);
  return p;
}

async function codeOf(f: () => unknown): Promise<string> {
  try {
    await f();
  } catch (e) {
    if (isLlavaRadError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

const convert = (out: string) => convertRadgraph(path.join(RADGRAPH, 'radgraph-tiny.tar.gz'), out, { vocab, headCount: 4 });

function tinyIndex(file: string): void {
  writeIndexFile(file, { modelId: 'a model', dim: 2, ids: ['s1', 's2'], kinds: ['image', 'text'], vectors: (put) => put(new Float32Array([1, 0, 0, 1])) });
}

describe('a writer that renames its finished file into place', () => {
  it('refuses a destination that is a FIFO (INVALID_ARGUMENT), which stays a FIFO: RadGraph converter, index, index export, merge', async () => {
    const index = path.join(tmp, 'index.lrix');
    tinyIndex(index);
    const opened = RetrievalIndex.open(index);
    const cases: [string, (out: string) => unknown][] = [
      ['convertRadgraph', convert],
      ['writeIndexFile', tinyIndex],
      ['exportJsonl', (out) => exportJsonl(opened, out)],
      ['writePredictions', (out) => writePredictions(out, [])],
    ];
    try {
      for (const [name, write] of cases) {
        const out = fifo(`${name}.out`);
        expect(await codeOf(() => write(out)), name).toBe('INVALID_ARGUMENT');
        expect(statSync(out).isFIFO(), `${name}: the FIFO is still there`).toBe(true);
      }
    } finally {
      opened.close();
    }
    // nothing left behind: the FIFOs and the index only
    expect(readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('never writes through a link planted where its temporary file might be', async () => {
    const dir = path.join(tmp, 'planted');
    mkdirSync(dir);
    const victim = path.join(dir, 'victim.txt');
    writeFileSync(victim, 'precious\n');
    const out = path.join(dir, 'radgraph.gguf');
    // the names the converters used to take (OUT.tmp-PID-MS) for the next 20 s, each a link to the victim
    const now = Date.now();
    for (let ms = now - 1000; ms < now + 20_000; ms++) symlinkSync(victim, `${out}.tmp-${process.pid}-${ms}`);
    await convert(out);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(readFileSync(out).subarray(0, 4).toString('latin1')).toBe('GGUF');

    // and a GgufWriter told to create its file exclusively will not open one that is there, a link included
    const link = path.join(dir, 'link.gguf');
    symlinkSync(victim, link);
    const w = new GgufWriter(link, { exclusive: true });
    w.addUint32('x', 1);
    expect(await codeOf(() => w.writeHeader())).toBe('IO');
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
  });
});

describe('the command line says what a path is when it is not what was asked for (exit 2, one line)', () => {
  it('folders, FIFOs and devices given as files; files given as folders; missing ones', async () => {
    const dir = path.join(tmp, 'cli');
    mkdirSync(dir);
    const file = path.join(dir, 'a.gguf');
    writeFileSync(file, 'not a GGUF');
    const manifest = path.join(dir, 'm.jsonl');
    writeFileSync(manifest, '{"id": "a", "image": "a.png"}\n');
    const preds = path.join(dir, 'p.jsonl');
    writeFileSync(preds, '');
    const pipe = fifo('cli.fifo');
    const q = (p: string) => p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    const cases: [string[], RegExp][] = [
      [['findings', dir, '--model', file, '--mmproj', file], new RegExp(`^findings: image must be a file, got the folder ${q(dir)}$`)],
      [['findings', pipe, '--model', file, '--mmproj', file], /^findings: image must be a file, got the FIFO /],
      [['findings', file, '--model', file, '--mmproj', dir], /^findings: --mmproj must be a file, got the folder /],
      [['findings', file, '--model', '/dev/null', '--mmproj', file], /^findings: --model must be a file, got the character device \/dev\/null$/],
      [['findings', file, '--model', path.join(dir, 'none')], /^findings: model not found: /],
      [['batch', dir, '--out', path.join(dir, 'o.jsonl'), '--model', file, '--mmproj', file], /^batch: manifest must be a file or a named pipe, got the folder /],
      [['batch', path.join(dir, 'none.jsonl'), '--out', path.join(dir, 'o.jsonl'), '--model', file, '--mmproj', file], /^batch: manifest file not found: /],
      [['batch', manifest, '--out', pipe, '--model', file, '--mmproj', file], /^batch: --out must be a file, got the FIFO /],
      [['batch', manifest, '--out', path.join(dir, 'o.jsonl'), '--image-root', file, '--model', file, '--mmproj', file], /^batch: --image-root must be a folder, got the file /],
      [['merge', path.join(dir, 'o.jsonl'), dir], /^merge: predictions must be a file, got the folder /],
      [['merge', path.join(dir, 'o.jsonl'), preds, '--manifest', dir], /^merge: --manifest must be a file or a named pipe, got the folder /],
      [['merge', pipe, preds], /^merge: OUT must be a file, got the FIFO /],
      [['merge', path.join(dir, 'no', 'o.jsonl'), preds], /^merge: OUT folder not found: /],
      [['eval', dir], /^eval: predictions must be a file, got the folder /],
      [['eval', preds, '--html', dir], /^eval: --html must be a file, got the folder /],
      [['classify', dir, '--labels', 'a,b'], /^classify: image must be a file, got the folder /],
      [['embed', dir], /^embed: image must be a file, got the folder /],
      [['embed', '--text', 'x', '--clip', dir, '--mmproj', file], /^embed: --clip must be a file, got the folder /],
      [['embed', '--text', 'x', '--model', file], /^embed: model must be a folder, got the file /],
      [['search', dir, '--text', 'x'], /^search: INDEX must be a file, got the folder /],
      [['index', 'build', dir, '--out', path.join(dir, 'i.lrix'), '--model', dir], /^index build: MANIFEST must be a file or a named pipe, got the folder /],
      [['index', 'build', manifest, '--out', pipe, '--model', dir], /^index build: --out must be a file, got the FIFO /],
      [['eval-retrieval', dir, '--index', file], /^eval-retrieval: MANIFEST must be a file or a named pipe, got the folder /],
      [['convert-radgraph', dir, '--out', path.join(dir, 'r.gguf')], /^convert-radgraph: archive must be a file, got the folder /],
      [['convert-radgraph', path.join(RADGRAPH, 'radgraph-tiny.tar.gz'), '--out', pipe], /^convert-radgraph: --out must be a file, got the FIFO /],
      [['convert-chexbert', file, '--vocab', dir, '--out', path.join(dir, 'c.gguf')], /^convert-chexbert: --vocab must be a file, got the folder /],
      [['generate', '--model', pipe, '--prompt', 'x'], /^generate: --model must be a file, got the FIFO /],
    ];
    for (const [args, re] of cases) {
      const r = await runCliInProcess(args);
      const line = r.err.replace(/^llava-rad: /, '').trimEnd();
      expect(r.code, `${args.join(' ')}: ${r.err}`).toBe(2);
      expect(line, args.join(' ')).toMatch(re);
      expect(line.split('\n'), args.join(' ')).toHaveLength(1);
    }
    expect(statSync(pipe).isFIFO()).toBe(true);
    expect(existsSync(path.join(dir, 'o.jsonl'))).toBe(false);
  });
});
