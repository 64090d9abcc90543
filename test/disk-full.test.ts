// A disk that fills while the CLI writes: every writer stops with one line naming IO and the file, exit 1, and
// leaves nothing half-written. The disk is made to fill without root or a small file system: the child runs
// with a file-size limit (bash `ulimit -f`) and SIGXFSZ ignored, so a write past the limit fails with EFBIG
// as a write to a full disk fails with ENOSPC (checked by hand on a 2 MB tmpfs: the same messages, ENOSPC).
// Before: `convert` and `convert-llama` reported "unexpected error [INTERNAL]" with a stack trace;
// `convert-radgraph` exited 0 having written nothing (its archive reader waited for ever for a 'drain' of the
// file that had failed, and the process ran out of work); output to a full stdout (`eval --json > file`) was
// lost with exit 0.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { checkWriteSpace, freeBytes } from '../lib/disk-space.js';
import { isLlavaRadError } from '../lib/errors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FX = path.join(root, 'test', 'fixtures');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-disk-full-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** the CLI (lib/ through the TypeScript hooks) with files limited to `kib` KiB; stdout into `stdoutFile` if given */
function underFileLimit(kib: number, args: string[], stdoutFile?: string) {
  const node = [process.execPath, '--import', path.join(root, 'scripts', 'ts-hooks.mjs'), path.join(root, 'lib', 'cli.ts'), ...args];
  const quoted = node.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const script = `trap '' XFSZ; ulimit -f ${kib}; exec ${quoted}${stdoutFile ? ` > '${stdoutFile}'` : ''}`;
  const r = spawnSync('bash', ['-c', script], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function expectIoFailure(r: ReturnType<typeof underFileLimit>, file: RegExp) {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.status, r.stderr).toBe(1);
  const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('llava-rad: error') || l.includes('unexpected'));
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^llava-rad: error \[IO\]: /);
  expect(lines[0]).toMatch(file);
  expect(lines[0]).toMatch(/EFBIG: file too large/);
}

describe('a disk that fills while the CLI writes', () => {
  it('convert: IO naming the decoder file; no output folder left', () => {
    const out = path.join(tmp, 'release-out');
    const r = underFileLimit(1024, ['convert', '--base', path.join(FX, 'release', 'vicuna'), '--adapter', path.join(FX, 'release', 'llava-rad'), '--out', out, '--type', 'q8_0']);
    expectIoFailure(r, /cannot write .*release-out\/\.llava-rad-decoder-q8_0\.gguf\.[0-9a-f]{16}\.tmp/);
    expect(existsSync(out)).toBe(false);
  });

  it('convert-llama: IO naming the file; no temporary file left', () => {
    const r = underFileLimit(64, ['convert-llama', path.join(FX, 'release', 'vicuna'), '--out', path.join(tmp, 'vicuna.gguf'), '--type', 'q8_0']);
    expectIoFailure(r, /cannot write .*\/\.vicuna\.gguf\.[0-9a-f]{16}\.tmp/);
    expect(readdirSync(tmp).filter((f) => /^\.?vicuna/.test(f))).toEqual([]);
  });

  it('convert-radgraph: IO naming the weights copy (it exited 0 having written nothing); the same command converts without the limit', () => {
    const args = ['convert-radgraph', path.join(FX, 'radgraph', 'model', 'radgraph-tiny.tar.gz'), '--vocab', path.join(FX, 'radgraph', 'model', 'vocab.txt'), '--heads', '4', '--out', path.join(tmp, 'rg.gguf')];
    expectIoFailure(underFileLimit(64, args), /could not copy weights\.th out of .*radgraph-tiny\.tar\.gz/);
    expect(existsSync(path.join(tmp, 'rg.gguf'))).toBe(false);
    const ok = underFileLimit(4096, args);
    expect(ok.status, ok.stderr).toBe(0);
    expect(existsSync(path.join(tmp, 'rg.gguf'))).toBe(true);
  });

  it('eval --json into a file that cannot grow: IO, exit 1 (it exited 0 with an empty file)', () => {
    const preds = path.join(tmp, 'preds.jsonl');
    writeFileSync(preds, '{"reference":"No effusion.","prediction":"No pleural effusion."}\n{"reference":"Mild cardiomegaly.","prediction":"Normal heart size."}\n');
    const out = path.join(tmp, 'scores.json');
    expectIoFailure(underFileLimit(0, ['eval', preds, '--json', '--bootstrap', '10'], out), /cannot write the standard output/);
    const ok = underFileLimit(64, ['eval', preds, '--json', '--bootstrap', '10'], out);
    expect(ok.status, ok.stderr).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8').trim().split('\n').pop()!)).toMatchObject({ n: 2 });
  });
});

describe('room checked before writing (lib/disk-space.ts)', () => {
  it('checkWriteSpace: 1 GB more than the free space is IO naming the folder and both sizes; half of it is fine', () => {
    const dir = path.join(tmp, 'not-made-yet', 'out');
    const free = freeBytes(dir); // of the nearest folder that exists
    expect(free).toBeGreaterThan(0);
    expect(() => checkWriteSpace(dir, free + 1e9, 'the conversion')).toThrow(/^not enough disk space for the conversion: [\d.]+ GB to write into .*not-made-yet\/out, [\d.]+ GB free there/);
    try {
      checkWriteSpace(dir, free + 1e9, 'the conversion');
    } catch (e) {
      expect(isLlavaRadError(e, 'IO')).toBe(true);
    }
    expect(() => checkWriteSpace(dir, Math.floor(free / 2), 'the conversion')).not.toThrow();
  });
});
