// Large jobs: `batch` resuming, and `merge` joining the shards of, a job of many studies keep little per study
// (lib/batch/done-studies.ts: one number; lib/batch/merge.ts: where each chosen line is), not the parsed
// records. Before, every record was held parsed (about 2.7 KB of heap each: a 787 MB file of 370,000 records
// took 990 MB of heap and 12 s to read), so a job of some 1.6 million studies could be neither resumed nor merged
// in V8's default 4 GB heap: the process aborted, and the job could never finish. Here a job of 60,000 studies (a
// 126 MB file) is resumed and merged with the heap limited to 96 MB (on 7291725: heap out of memory, SIGABRT);
// every study is done, so `batch` loads no model and the model files only need hashing.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { inShard } from '../lib/batch/shard.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-resume-scale-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const STUDIES = 60_000;
const FAILED_EVERY = 1000; // study ids divisible by it have a failed record

function identity(file: string, text: string) {
  writeFileSync(file, text);
  return { file: path.basename(file), bytes: Buffer.byteLength(text), sha256: createHash('sha256').update(text).digest('hex') };
}

describe('a job of 60,000 studies', () => {
  it('with a 96 MB heap: batch finds every study done (59,940 with findings, 60 failed; exit 3, nothing appended); merge writes the same records', () => {
    const model = { decoder: identity(path.join(tmp, 'decoder.gguf'), 'a decoder'), vision: identity(path.join(tmp, 'vision.gguf'), 'a vision tower') };
    const params = { max_tokens: 256, dicom_window: false, skip_lateral: false, high_bit_depth: 'msb', kv_type: 'auto' };
    const findings = 'The lungs are clear without focal consolidation, effusion, or pneumothorax. The cardiomediastinal silhouette is within normal limits. ';
    const manifest: string[] = [];
    const records: string[] = [];
    for (let i = 0; i < STUDIES; i++) {
      const id = `p10/p${10_000_000 + i}/s${50_000_000 + i}`;
      manifest.push(JSON.stringify({ id, image: `files/${id}/view.jpg` }));
      const base = { id, image: `files/${id}/view.jpg`, reason: 'Cough and fever.', model, params, device: 'cpu', finished_at: '2026-12-07T00:00:00.000Z', research_use_only: true };
      records.push(JSON.stringify(i % FAILED_EVERY === 0
        ? { ...base, error: { code: 'IO', message: 'no such file' } }
        : { ...base, findings, tokens: Array.from({ length: 60 }, (_, k) => 300 + ((i * 7 + k * 13) % 30_000)), stop_reason: 'eos', warnings: [],
          timings_ms: { preprocess: 12.3, vision: 456.7, queue: 0.1, prompt: 1234.5, decode: 4567.8, total: 6271.4 } }));
    }
    writeFileSync(path.join(tmp, 'manifest.jsonl'), manifest.join('\n') + '\n');
    const out = path.join(tmp, 'predictions.jsonl');
    writeFileSync(out, records.join('\n') + '\n');
    const size = statSync(out).size;
    const r = spawnSync(process.execPath, ['--max-old-space-size=96', '--import', path.join(root, 'scripts', 'ts-hooks.mjs'), path.join(root, 'lib', 'cli.ts'),
      'batch', path.join(tmp, 'manifest.jsonl'), '--model', model.decoder.file, '--mmproj', model.vision.file, '--out', out, '--json-progress'], { cwd: tmp, encoding: 'utf8', timeout: 300_000 });
    expect(r.signal, r.stderr.slice(-1500)).toBeNull();
    expect(r.status, r.stderr.slice(-1500)).toBe(3);
    const end = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.event === 'end');
    expect(end).toMatchObject({ ok: 0, failed: 0, total: STUDIES, with_findings: STUDIES - STUDIES / FAILED_EVERY, failed_total: STUDIES / FAILED_EVERY, not_run: 0, exit_code: 3 });
    expect(statSync(out).size).toBe(size);

    // merged (as one shard of the job, against its manifest): the same lines, in manifest order
    const merged = path.join(tmp, 'merged.jsonl');
    const m = spawnSync(process.execPath, ['--max-old-space-size=96', '--import', path.join(root, 'scripts', 'ts-hooks.mjs'), path.join(root, 'lib', 'cli.ts'),
      'merge', merged, out, '--manifest', path.join(tmp, 'manifest.jsonl'), '--json'], { cwd: tmp, encoding: 'utf8', timeout: 300_000 });
    expect(m.signal, m.stderr.slice(-1500)).toBeNull();
    expect(m.status, m.stderr.slice(-1500)).toBe(3);
    expect(JSON.parse(m.stdout)).toMatchObject({ records: STUDIES, ok: STUDIES - STUDIES / FAILED_EVERY, failed: STUDIES / FAILED_EVERY, missing: [], duplicates: [], exit_code: 3 });
    expect(readFileSync(merged).equals(readFileSync(out)), `${STUDIES} records compared byte for byte`).toBe(true);
  }, 300_000);
});

describe('a job of many shards', () => {
  it('merge of 300 shard files in a process allowed 128 open files: every record, in manifest order (EMFILE before: it held every input open)', () => {
    const dir = mkdtempSync(path.join(tmp, 'shards-'));
    const SHARDS = 300;
    const model = { decoder: { file: 'd.gguf', bytes: 1, sha256: 'a'.repeat(64) }, vision: { file: 'v.gguf', bytes: 1, sha256: 'b'.repeat(64) } };
    const params = { max_tokens: 256, dicom_window: false, skip_lateral: false, high_bit_depth: 'msb', kv_type: 'auto' };
    const line = (id: string) => JSON.stringify({ id, image: `${id}.png`, reason: null, model, params, device: 'cpu', finished_at: '2026-12-08T00:00:00.000Z',
      research_use_only: true, findings: `findings of ${id}`, tokens: [1], stop_reason: 'eos', warnings: [], timings_ms: { total: 1 } });
    const ids: string[] = [];
    const files: string[] = [];
    for (let s = 0; s < SHARDS; s++) {
      const mine = [s, SHARDS + s].map((k) => `study-${k}`);
      const f = path.join(dir, `shard-${s}.jsonl`);
      writeFileSync(f, mine.map(line).join('\n') + '\n');
      files.push(f);
    }
    for (let k = 0; k < 2 * SHARDS; k++) ids.push(`study-${k}`);
    writeFileSync(path.join(dir, 'manifest.jsonl'), ids.map((id) => JSON.stringify({ id, image: `${id}.png` })).join('\n') + '\n');
    const merged = path.join(dir, 'merged.jsonl');
    const node = [process.execPath, '--import', path.join(root, 'scripts', 'ts-hooks.mjs'), path.join(root, 'lib', 'cli.ts'), 'merge', merged, ...files, '--manifest', path.join(dir, 'manifest.jsonl'), '--json'];
    const m = spawnSync('bash', ['-c', 'ulimit -n 128 && exec "$@"', 'bash', ...node], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
    expect(m.status, m.stderr.slice(-1500)).toBe(0);
    expect(JSON.parse(m.stdout)).toMatchObject({ records: 2 * SHARDS, ok: 2 * SHARDS, missing: [], duplicates: [] });
    expect(readFileSync(merged, 'utf8'), `${2 * SHARDS} records compared`).toBe(ids.map(line).join('\n') + '\n');
  }, 300_000);
});

describe('one shard of a large manifest', () => {
  // 150,000 studies with a 600-byte reference each (a 110 MB manifest): held whole they take some 170 MB of heap,
  // so before `keep` every shard's process aborted under a 96 MB heap (heap out of memory), whatever its share.
  // Shard 0/16 now holds its ~9,400 studies and an id per study of the others.
  it('batch --shard 0/16 under a 96 MB heap holds its own studies only: every one found done, exit 0; merge --manifest holds the ids only; a duplicate id in another shard\'s part is still refused', () => {
    const dir = mkdtempSync(path.join(tmp, 'big-shard-'));
    const N = 150_000;
    const shard = { index: 0, count: 16 };
    const model = { decoder: identity(path.join(dir, 'decoder.gguf'), 'a decoder'), vision: identity(path.join(dir, 'vision.gguf'), 'a vision tower') };
    const params = { max_tokens: 256, dicom_window: false, skip_lateral: false, high_bit_depth: 'msb', kv_type: 'auto' };
    const reference = 'The lungs are clear without focal consolidation, effusion, or pneumothorax. '.repeat(8);
    const manifest: string[] = [];
    const records: string[] = [];
    for (let i = 0; i < N; i++) {
      const id = `p1${i % 10}/p${10_000_000 + i}/s${50_000_000 + i}`;
      manifest.push(JSON.stringify({ id, image: `files/${id}/view.jpg`, reason: 'Cough and fever.', reference }));
      if (inShard(id, shard)) {
        records.push(JSON.stringify({ id, image: `files/${id}/view.jpg`, reason: 'Cough and fever.', model, params, device: 'cpu', finished_at: '2026-12-08T00:00:00.000Z',
          research_use_only: true, findings: 'No acute process.', tokens: [1, 2, 3], stop_reason: 'eos', warnings: [], timings_ms: { total: 1 } }));
      }
    }
    const file = path.join(dir, 'manifest.jsonl');
    writeFileSync(file, manifest.join('\n') + '\n');
    const out = path.join(dir, 'shard-0.jsonl');
    writeFileSync(out, records.join('\n') + '\n');
    const size = statSync(out).size;
    const batch = (m: string) => spawnSync(process.execPath, ['--max-old-space-size=96', '--import', path.join(root, 'scripts', 'ts-hooks.mjs'), path.join(root, 'lib', 'cli.ts'),
      'batch', m, '--model', model.decoder.file, '--mmproj', model.vision.file, '--out', out, '--shard', '0/16', '--json-progress'], { cwd: dir, encoding: 'utf8', timeout: 300_000 });
    const r = batch(file);
    expect(r.signal, r.stderr.slice(-1500)).toBeNull();
    expect(r.status, r.stderr.slice(-1500)).toBe(0);
    const end = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.event === 'end');
    expect(end).toMatchObject({ ok: 0, failed: 0, total: records.length, with_findings: records.length, not_run: 0, exit_code: 0 });
    expect(statSync(out).size).toBe(size);

    // merged against the whole manifest under the same heap: merge holds its ids in order, not its studies
    const merged = path.join(dir, 'merged.jsonl');
    const m = spawnSync(process.execPath, ['--max-old-space-size=96', '--import', path.join(root, 'scripts', 'ts-hooks.mjs'), path.join(root, 'lib', 'cli.ts'),
      'merge', merged, out, '--manifest', file, '--json'], { cwd: dir, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
    expect(m.signal, m.stderr.slice(-1500)).toBeNull();
    expect(m.status, m.stderr.slice(-1500)).toBe(3);
    const report = JSON.parse(m.stdout) as { records: number; missing: string[] };
    expect([report.records, report.missing.length]).toEqual([records.length, N - records.length]);
    expect(readFileSync(merged).equals(readFileSync(out)), `${records.length} records compared byte for byte`).toBe(true);

    // the last study repeated: it is not in shard 0, and the shard still refuses the manifest, as every shard does
    const last = manifest.findLastIndex((l) => !inShard((JSON.parse(l) as { id: string }).id, shard));
    writeFileSync(file, [...manifest, manifest[last]].join('\n') + '\n');
    const d = batch(file);
    expect(d.status, d.stderr.slice(-1500)).toBe(1);
    expect(d.stderr).toContain(`manifest.jsonl:${N + 1}: duplicate id ${JSON.stringify((JSON.parse(manifest[last]!) as { id: string }).id)} (first at ${last + 1})`);
  }, 300_000);
});
