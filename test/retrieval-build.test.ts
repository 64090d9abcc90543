// `index build` (lib/retrieval/build.ts): what it writes, and that a build cut short at any point (a thrown
// error, a torn journal line, a crash between the rename and the journal's removal, SIGKILL of the CLI) loses
// nothing and duplicates nothing when rerun: the result is byte for byte the one-shot build's.
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Embedder } from '../lib/clip/embedder.js';
import { buildIndex } from '../lib/retrieval/build.js';
import { RetrievalIndex } from '../lib/retrieval/index-file.js';
import { hashVector, testEmbedder } from '../lib/retrieval/test-embedder.js';
import { acquireLock } from '../lib/batch/lock.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cli.js');
const dir = mkdtempSync(path.join(tmpdir(), 'lr-build-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const N = 11;
const studies = Array.from({ length: N }, (_, i) => ({ id: `s${i}`, image: `img/${i}.png`, ...(i % 4 === 3 ? {} : { reference: `report of study ${i}` }) }));
const manifest = path.join(dir, 'm.jsonl');
mkdirSync(path.join(dir, 'img'));
studies.forEach((s, i) => writeFileSync(path.join(dir, s.image), `pixels of ${i}`));
writeFileSync(manifest, studies.map((s) => JSON.stringify(s)).join('\n') + '\n');
const withReport = studies.filter((s) => 'reference' in s).length;

let runs = 0;
const out = () => path.join(dir, `run-${runs++}`, 'x.lrindex');

/** the hash embedder, counting inputs; throws on call number `failAt` (1-based) */
function counting(dim = 8, failAt = Infinity): Embedder & { inputs: number } {
  const inner = testEmbedder(`hash:${dim}`);
  let calls = 0;
  const e = {
    dim, modelId: inner.modelId, inputs: 0,
    async embedImages(b: readonly Uint8Array[]) {
      if (++calls === failAt) throw new Error('embedder died');
      e.inputs += b.length;
      return inner.embedImages(b);
    },
    async embedTexts(t: readonly string[]) {
      if (++calls === failAt) throw new Error('embedder died');
      e.inputs += t.length;
      return inner.embedTexts(t);
    },
  };
  return e;
}

let oneShot: Buffer;
beforeAll(async () => {
  const f = out();
  await buildIndex(manifest, counting(), { out: f, batchSize: 3 });
  oneShot = readFileSync(f);
});

describe('index build', () => {
  it('embeds every image and every report, in manifest order (images first), as the embedder made them', async () => {
    const f = out();
    const e = counting();
    const r = await buildIndex(manifest, e, { out: f, batchSize: 3 });
    expect(r, 'result').toEqual({ file: f, count: N + withReport, added: N + withReport, recovered: 0, noReport: N - withReport });
    const index = RetrievalIndex.open(f);
    const expectIds = [...studies.map((s) => s.id), ...studies.filter((s) => 'reference' in s).map((s) => s.id)];
    expect(index.ids, 'ids').toEqual(expectIds);
    expect(index.counts(), 'kinds').toEqual({ image: N, text: withReport });
    expect(Array.from(index.vector(2)), 'image vector = the embedder\'s').toEqual(Array.from(hashVector('image', Buffer.from('pixels of 2'), 8)));
    expect(Array.from(index.vector(N)), 'text vector = the embedder\'s').toEqual(Array.from(hashVector('text', Buffer.from('report of study 0'), 8)));
    expect(existsSync(`${f}.journal`), 'the journal is removed').toBe(false);
    expect(existsSync(`${f}.lock`), 'the lock is released').toBe(false);
    index.close();
    expect(readFileSync(f).equals(oneShot), 'deterministic: same bytes as another build').toBe(true);
  });

  it('kinds: text only; a rerun with nothing to do adds nothing', async () => {
    const f = out();
    expect((await buildIndex(manifest, counting(), { out: f, kinds: ['text'] })).count).toBe(withReport);
    const e = counting();
    expect((await buildIndex(manifest, e, { out: f, kinds: ['text'] })).added, 'nothing new').toBe(0);
    expect(e.inputs, 'nothing embedded').toBe(0);
  });

  it('a build that failed resumes from its journal: same bytes as the one-shot build, nothing embedded twice', async () => {
    for (const failAt of [1, 2, 4, 6]) {
      const f = out();
      await expect(buildIndex(manifest, counting(8, failAt), { out: f, batchSize: 3 }), `fails at call ${failAt}`).rejects.toThrow('embedder died');
      expect(existsSync(f), 'no index yet').toBe(false);
      const e = counting();
      const r = await buildIndex(manifest, e, { out: f, batchSize: 3 });
      // batches of 3: the 11 images in 3, 3, 3, 2, then the 9 reports in 3, 3, 3
      const journaled = [3, 3, 3, 2, 3, 3, 3].slice(0, failAt - 1).reduce((a, b) => a + b, 0);
      expect(r.recovered, `failAt ${failAt}: the batches before the failure were journaled`).toBe(journaled);
      expect(e.inputs + r.recovered, `failAt ${failAt}: each entry embedded once over the two runs`).toBe(N + withReport);
      expect(readFileSync(f).equals(oneShot), `failAt ${failAt}: same bytes as the one-shot build`).toBe(true);
    }
  });

  it('a torn last journal line (a crash mid-write) is cut off; a bad line before the last is BAD_INDEX and nothing is touched', async () => {
    const f = out();
    await expect(buildIndex(manifest, counting(8, 3), { out: f, batchSize: 3 })).rejects.toThrow();
    const journal = `${f}.journal`;
    const saved = readFileSync(journal);
    appendFileSync(journal, '{"id":"s6","kind":"image","v":"AAAA');
    await buildIndex(manifest, counting(), { out: f, batchSize: 3 });
    expect(readFileSync(f).equals(oneShot), 'torn tail: same bytes as the one-shot build').toBe(true);

    const g = out();
    mkdirSync(path.dirname(g), { recursive: true });
    const lines = saved.toString().split('\n');
    writeFileSync(`${g}.journal`, [lines[0], 'not json', ...lines.slice(1)].join('\n'));
    const before = readFileSync(`${g}.journal`);
    await expect(buildIndex(manifest, counting(), { out: g })).rejects.toMatchObject({ code: 'BAD_INDEX' });
    expect(readFileSync(`${g}.journal`).equals(before), 'the journal is left as it was').toBe(true);
    expect(existsSync(`${g}.lock`), 'the lock is released after the error').toBe(false);
  });

  it('a journal that is not ours (another file, a huge line, a vector of the wrong length) is BAD_INDEX', async () => {
    const header = JSON.stringify({ llava_rad_index_journal: 1, modelId: 'test-hash-8', dim: 8 });
    const wrongLength = JSON.stringify({ id: 's0', kind: 'image', v: Buffer.alloc(4 * 7).toString('base64') });
    for (const [what, text] of [
      ['not a journal', 'hello\n'],
      ['a huge line', 'x'.repeat(3 << 20)],
      ['a vector of 7 floats, then another line', `${header}\n${wrongLength}\n${wrongLength}\n`],
    ] as const) {
      const f = out();
      mkdirSync(path.dirname(f), { recursive: true });
      writeFileSync(`${f}.journal`, text);
      await expect(buildIndex(manifest, counting(), { out: f }), what).rejects.toMatchObject({ code: 'BAD_INDEX' });
      expect(readFileSync(`${f}.journal`, 'utf8'), `${what}: left as it was`).toBe(text);
    }
  });

  it('a crash after the index was renamed but before the journal was removed duplicates nothing', async () => {
    const f = out();
    await expect(buildIndex(manifest, counting(8, 3), { out: f, batchSize: 3 })).rejects.toThrow();
    const copy = `${f}.saved`;
    copyFileSync(`${f}.journal`, copy);
    await buildIndex(manifest, counting(), { out: f, batchSize: 3 });
    copyFileSync(copy, `${f}.journal`); // as if the process died just before deleting it
    const e = counting();
    const r = await buildIndex(manifest, e, { out: f, batchSize: 3 });
    expect([r.added, e.inputs, r.count], 'nothing added, nothing embedded').toEqual([0, 0, N + withReport]);
    expect(readFileSync(f).equals(oneShot), 'same bytes as the one-shot build').toBe(true);
    expect(existsSync(`${f}.journal`), 'journal removed').toBe(false);
  });

  it('adds a manifest\'s new studies to an existing index, each (id, kind) once', async () => {
    const f = out();
    const small = path.join(dir, 'small.jsonl');
    writeFileSync(small, studies.slice(0, 4).map((s) => JSON.stringify(s)).join('\n'));
    const first = await buildIndex(small, counting(), { out: f });
    const e = counting();
    const r = await buildIndex(manifest, e, { out: f });
    expect(r.added, 'only the new entries').toBe(N + withReport - first.count);
    expect(e.inputs).toBe(r.added);
    const index = RetrievalIndex.open(f);
    const keys = index.ids.map((id, i) => `${index.kind(i)}:${id}`);
    expect(new Set(keys).size, 'no entry twice').toBe(keys.length);
    expect(keys.length).toBe(N + withReport);
    index.close();
  });

  it('takes over the INDEX.lock of a build on another machine once its heartbeat has stopped (onLockWait told), then builds', async () => {
    const f = out();
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(`${f}.lock`, JSON.stringify({ pid: 7, host: 'another-node', token: 'c'.repeat(32), started: '2026-12-01T00:00:00.000Z' }) + '\n');
    const waits: string[] = [];
    const saved = process.env.LLAVA_RAD_LOCK_STALE_MS;
    process.env.LLAVA_RAD_LOCK_STALE_MS = '300';
    try {
      const r = await buildIndex(manifest, counting(8), { out: f, onLockWait: (m) => waits.push(m) });
      expect(r.count).toBe(studies.length + withReport);
    } finally {
      if (saved === undefined) delete process.env.LLAVA_RAD_LOCK_STALE_MS;
      else process.env.LLAVA_RAD_LOCK_STALE_MS = saved;
    }
    expect(waits).toEqual([expect.stringMatching(/x\.lrindex\.lock is held by process 7 on another-node .*watching its heartbeat for up to 0\.3 s$/)]);
    expect(existsSync(`${f}.lock`)).toBe(false);
  });

  it('refuses another model\'s index or journal (MODEL_MISMATCH), a held lock (IO), a bad embedder (INTERNAL), a bad argument', async () => {
    const f = out();
    await buildIndex(manifest, counting(8), { out: f });
    await expect(buildIndex(manifest, counting(16), { out: f }), 'index of another model').rejects.toMatchObject({ code: 'MODEL_MISMATCH' });
    const g = out();
    await expect(buildIndex(manifest, counting(8, 2), { out: g, batchSize: 3 })).rejects.toThrow();
    await expect(buildIndex(manifest, counting(16), { out: g }), 'journal of another model').rejects.toMatchObject({ code: 'MODEL_MISMATCH' });
    const release = await acquireLock(g);
    try {
      await expect(buildIndex(manifest, counting(8), { out: g }), 'locked').rejects.toMatchObject({ code: 'IO' });
    } finally {
      release();
    }
    const unnormalized: Embedder = { ...counting(8), embedImages: async (b) => b.map(() => new Float32Array(8).fill(1)) };
    await expect(buildIndex(manifest, unnormalized, { out: out() }), 'not normalized').rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(buildIndex(manifest, counting(), { out: out(), kinds: ['report' as 'text'] })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(buildIndex(manifest, counting(), { out: out(), batchSize: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('an abort stops between batches (ABORTED) and keeps what was journaled', async () => {
    const f = out();
    const ac = new AbortController();
    await expect(buildIndex(manifest, counting(), { out: f, batchSize: 2, signal: ac.signal, onProgress: (p) => p.done >= 4 && ac.abort() }))
      .rejects.toMatchObject({ code: 'ABORTED' });
    const r = await buildIndex(manifest, counting(), { out: f, batchSize: 3 });
    expect(r.recovered, 'two batches of 2 journaled').toBe(4);
  });
});

describe('llava-rad index build (CLI), a batch larger than the open-file limit', () => {
  it('--batch-size 200 of 200 studies in a process allowed 64 open files: every entry (EMFILE before: a batch\'s files were opened at once)', () => {
    const big = mkdtempSync(path.join(dir, 'big-'));
    const many = Array.from({ length: 200 }, (_, i) => ({ id: `b${i}`, image: `${i}.png` }));
    many.forEach((s, i) => writeFileSync(path.join(big, s.image), `pixels of ${i}`));
    writeFileSync(path.join(big, 'm.jsonl'), many.map((s) => JSON.stringify(s)).join('\n') + '\n');
    const f = path.join(big, 'x.lrindex');
    const node = [process.execPath, cli, 'index', 'build', path.join(big, 'm.jsonl'), '--out', f, '--model', 'unused', '--batch-size', '200', '--json'];
    const r = spawnSync('bash', ['-c', 'ulimit -n 64 && exec "$@"', 'bash', ...node], { encoding: 'utf8', env: { ...process.env, LLAVA_RAD_TEST_EMBEDDER: 'hash:8' } });
    expect(r.status, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { count: number }).count).toBe(200);
    const index = RetrievalIndex.open(f);
    expect(index.count).toBe(200);
  });
});

describe('llava-rad index build (CLI), killed with SIGKILL mid-build', () => {
  beforeAll(() => {
    if (!existsSync(cli) || !readFileSync(cli, 'utf8').includes('llava_rad_index_journal')) {
      const b = spawnSync('npx', ['tsup'], { cwd: root, encoding: 'utf8' });
      if (b.status !== 0) throw new Error(`could not build dist/: ${b.stderr}`);
    }
  });

  it('rerun finishes it: the one-shot build\'s bytes', async () => {
    const f = out();
    const args = [cli, 'index', 'build', manifest, '--out', f, '--model', 'unused', '--batch-size', '3'];
    const child = spawn(process.execPath, args, { env: { ...process.env, LLAVA_RAD_TEST_EMBEDDER: 'hash:8:300' } });
    let err = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (/embedded 6\//.test(err)) resolve();
      });
      child.on('exit', (code) => reject(new Error(`ended (code ${code}) before it was killed: ${err}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    expect(existsSync(f), 'no index after the kill').toBe(false);
    const r = spawnSync(process.execPath, [...args, '--json'], { encoding: 'utf8', env: { ...process.env, LLAVA_RAD_TEST_EMBEDDER: 'hash:8' } });
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as { count: number; added: number; recovered: number };
    expect(summary.recovered, 'the journaled batches were kept').toBeGreaterThanOrEqual(6);
    expect(summary.added + summary.recovered, 'each entry embedded once').toBe(N + withReport);
    expect(readFileSync(f).equals(oneShot), 'same bytes as the one-shot build').toBe(true);
  });
});
