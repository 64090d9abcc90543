// A predictions file with a line longer than any record (MAX_RECORD_BYTES, 16 MiB): `batch` (its journal),
// `merge` and `eval` refuse it as soon as the line passes the limit, without holding it, and leave it as it is.
// Before, each held the whole line: one record followed by 3 GiB of zeros (a sparse file: no disk) took 3.2 GB
// of memory in batch's journal (cut off as a torn tail) and 4.3 GB in eval (which read the file whole), and with a
// 1 GiB data limit (bash `ulimit -d`, as a container's might be) both processes aborted (SIGABRT, no message).
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-long-lines-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const GIB = 1024 ** 3;
const RECORD = JSON.stringify({
  id: 's0', image: 'img/s0.png', reason: null, findings: 'No acute process.', query: '<image>\nx', reference: 'No acute process.', prediction: 'No acute process.',
  model: { decoder: { file: 'd.gguf', bytes: 1, sha256: 'a'.repeat(64) }, vision: { file: 'v.gguf', bytes: 1, sha256: 'b'.repeat(64) } },
  params: { max_tokens: 4, dicom_window: false, skip_lateral: false, high_bit_depth: 'msb', kv_type: 'auto' },
  device: 'cpu', finished_at: '2026-12-07T00:00:00.000Z', research_use_only: true,
}) + '\n';

/** a predictions file: one record, then zeros (no newline) up to 3 GiB, sparse */
function hugeTail(name: string): string {
  const file = path.join(tmp, name);
  writeFileSync(file, RECORD);
  truncateSync(file, 3 * GIB);
  return file;
}

/** the CLI (lib/ through the TypeScript hooks) with the process's data segment limited to 1 GiB */
function underDataLimit(args: string[]) {
  const node = [process.execPath, '--import', path.join(root, 'scripts', 'ts-hooks.mjs'), path.join(root, 'lib', 'cli.ts'), ...args];
  const quoted = node.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('bash', ['-c', `ulimit -d ${1024 * 1024}; exec ${quoted}`], { cwd: tmp, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, signal: r.signal, stderr: r.stderr };
}

/** the file is as it was: its size and its first record */
function expectUntouched(file: string) {
  expect(statSync(file).size).toBe(3 * GIB);
  const head = Buffer.alloc(RECORD.length);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  expect(head.toString()).toBe(RECORD);
}

function expectRefused(r: ReturnType<typeof underDataLimit>, message: RegExp) {
  expect(r.signal, r.stderr.slice(-2000)).toBeNull();
  expect(r.status, r.stderr.slice(-2000)).toBe(1);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr.slice(-2000)).toHaveLength(1);
  expect(lines[0]).toMatch(/^llava-rad: error \[BAD_PREDICTIONS\]: /);
  expect(lines[0]).toMatch(message);
}

describe('a predictions file with a line longer than any record', () => {
  it('batch: refused when opening its journal, before any model loads; nothing cut off', () => {
    const out = hugeTail('batch.jsonl');
    writeFileSync(path.join(tmp, 'manifest.jsonl'), JSON.stringify({ id: 's0', image: 'img/s0.png' }) + '\n');
    // the journal is opened before the models load: these are never read
    for (const f of ['decoder.gguf', 'vision.gguf']) writeFileSync(path.join(tmp, f), 'not read');
    const r = underDataLimit(['batch', path.join(tmp, 'manifest.jsonl'), '--model', path.join(tmp, 'decoder.gguf'), '--mmproj', path.join(tmp, 'vision.gguf'), '--out', out, '--quiet']);
    expectRefused(r, /batch\.jsonl:2: a line longer than 16 MiB, which no record is: .*\(nothing was changed\)$/);
    expectUntouched(out);
  });

  it('merge: refused naming the file and the line', () => {
    const shard = hugeTail('shard.jsonl');
    const r = underDataLimit(['merge', path.join(tmp, 'merged.jsonl'), shard]);
    expectRefused(r, /shard\.jsonl:2: a line longer than 16 MiB/);
    expectUntouched(shard);
  });

  it('eval: refused naming the file and the line, the record before it read', () => {
    const preds = hugeTail('eval.jsonl');
    const r = underDataLimit(['eval', preds, '--metrics', 'bleu']);
    expectRefused(r, /eval\.jsonl line 2: longer than 16 MiB; expected one JSON object per line/);
    expectUntouched(preds);
  });
});
