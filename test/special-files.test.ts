// Files a user names that are not regular files: a FIFO no process writes to, /dev/zero, a folder. Every
// reader of a model, index, archive, vocabulary, image or of a file of the official release the converter reads
// refuses them at once with a typed IO error. Before lib/regular-file.ts, each probe marked "hung" below blocked
// for ever on the FIFO (the index and `search --image` in a synchronous open, blocking the whole event loop), and
// `index build` was still reading /dev/zero after 120 s, at 5.9 GB. The converter's three "hung" probes blocked
// the same way on 7291725 (an asynchronous open of the FIFO waited for a writer), and BiomedBERT's
// vocab.txt as /dev/zero was read whole (3 s, then "Invalid string length"). The probes run in a child process
// with a time limit, so that a regression fails here instead of hanging the suite.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-special-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const fifo = path.join(tmp, 'fifo');
execFileSync('mkfifo', [fifo]);
const folder = path.join(tmp, 'folder');
mkdirSync(folder);
const lib = (p: string) => JSON.stringify(path.join(root, 'lib', p));

/** the probes: name -> code run with SPECIAL set to the special file's path (awaited; its error is reported) */
const PROBES: Record<string, string> = {
  'RetrievalIndex.open (hung)': `const { RetrievalIndex } = await import(${lib('retrieval/index-file.ts')}); RetrievalIndex.open(SPECIAL);`,
  'readGgufMetadata (hung)': `const { readGgufMetadata } = await import(${lib('gguf/read-metadata.ts')}); await readGgufMetadata(SPECIAL);`,
  'ChexbertLabeler.load (hung)': `const { ChexbertLabeler } = await import(${lib('bert/chexbert.ts')}); await ChexbertLabeler.load(SPECIAL);`,
  'RadgraphModel.load (hung)': `const { RadgraphModel } = await import(${lib('radgraph/radgraph.ts')}); await RadgraphModel.load(SPECIAL);`,
  'convertRadgraph (hung)': `const { convertRadgraph } = await import(${lib('convert/radgraph.ts')}); await convertRadgraph(SPECIAL, ${JSON.stringify(path.join(tmp, 'rg.gguf'))});`,
  'buildIndex of a study whose image it is (hung; /dev/zero: read without end)': `
    const { buildIndex } = await import(${lib('retrieval/build.ts')});
    const { testEmbedder } = await import(${lib('retrieval/test-embedder.ts')});
    const fs = await import('node:fs');
    const m = ${JSON.stringify(path.join(tmp, 'm'))} + Math.random() + '.jsonl';
    fs.writeFileSync(m, JSON.stringify({ id: 'a', image: SPECIAL }) + '\\n');
    await buildIndex(m, testEmbedder('hash:8'), { out: m + '.lrindex', kinds: ['image'] });`,
  'readImageFile': `const { readImageFile } = await import(${lib('image/read-file.ts')}); await readImageFile(SPECIAL);`,
  // the official release with one of its files replaced by the special one (a copy of test/fixtures/release)
  ...Object.fromEntries(['vicuna/tokenizer_config.json (hung)', 'vicuna/pytorch_model.bin.index.json (hung)', 'biomedbert/vocab.txt (hung)', 'vicuna/config.json',
    'vicuna/tokenizer.model', 'llava-rad/adapter_config.json', 'llava-rad/biomedclipcxr_518.json'].map((entry) => {
    const file = entry.replace(/ \(hung\)$/, '');
    return [`convertRelease, ${entry}`, `
    const { convertRelease } = await import(${lib('convert/convert.ts')});
    const fs = await import('node:fs');
    const dir = fs.mkdtempSync(${JSON.stringify(path.join(tmp, 'release-'))});
    fs.cpSync(${JSON.stringify(path.join(root, 'test', 'fixtures', 'release'))}, dir, { recursive: true });
    fs.rmSync(dir + '/${file}');
    fs.symlinkSync(SPECIAL, dir + '/${file}');
    await convertRelease({ base: dir + '/vicuna', adapter: dir + '/llava-rad', clipText: dir + '/biomedbert', out: dir + '/out', type: 'q8_0', threads: 1 });`];
  })),
};

function runProbes(special: string): Record<string, { code?: string; message?: string; accepted?: boolean }> {
  const code = `const SPECIAL = ${JSON.stringify(special)}; const out = {};
    for (const [name, body] of Object.entries(${JSON.stringify(PROBES)})) {
      try { await (0, eval)('(async (SPECIAL) => {' + body + '})')(SPECIAL); out[name] = { accepted: true }; }
      catch (e) { out[name] = { code: e.code, message: String(e.message).slice(0, 300) }; }
    }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--import', path.join(root, 'scripts', 'ts-hooks.mjs'), '--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  expect(r.signal, `the probes of ${special} ended by ${r.signal} (a probe hung): ${r.stderr.slice(-500)}`).toBeNull();
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

describe('a FIFO, /dev/zero or a folder where a file is expected: a typed IO error at once', () => {
  for (const [what, special] of [['a FIFO with no writer', fifo], ['/dev/zero', '/dev/zero'], ['a folder', folder]] as const) {
    it(what, () => {
      const results = runProbes(special);
      for (const name of Object.keys(PROBES)) {
        expect(results[name], `${name} on ${what}`).toMatchObject({ code: 'IO', message: expect.stringMatching(/not a regular file/) });
      }
    }, 90_000);
  }
});
