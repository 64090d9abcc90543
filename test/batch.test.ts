// `llava-rad batch` and `llava-rad merge` (issue #5): manifests, sharding, the journal, and the CLI run as a
// child process on the tiny models — resume after SIGKILL (three kills at the journal's LLAVA_RAD_TEST_PAUSE
// points), SIGINT, torn lines, sharding + merge equal to one run, several worker processes (--devices cpu,cpu),
// --retry-failed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, watch, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCsv } from '../lib/batch/csv.js';
import { parseDevices } from '../lib/batch/devices.js';
import { Journal, readPredictions, testPauseSpec } from '../lib/batch/journal.js';
import { writePredictions } from '../lib/batch/merge.js';
import { readManifest } from '../lib/batch/manifest.js';
import { officialQuery, type PredictionRecord } from '../lib/batch/record.js';
import { inShard, parseShard, shardOf } from '../lib/batch/shard.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const cli = path.join(root, 'dist', 'cli.js');
const VISION = path.join(here, 'fixtures', 'vision', 'tiny-vision-f32.gguf');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-batch-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sha256 = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

function lines(file: string): string[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, 'utf8');
  return text === '' ? [] : text.slice(0, text.lastIndexOf('\n') + 1).split('\n').slice(0, -1);
}
const records = (file: string) => lines(file).map((l) => JSON.parse(l) as PredictionRecord);

/** what must be equal between two runs of a study (timings, device and dates may differ) */
function essence(r: PredictionRecord) {
  return {
    id: r.id, image: r.image, reason: r.reason, findings: r.findings, tokens: r.tokens, stop_reason: r.stop_reason,
    query: r.query, reference: r.reference, prediction: r.prediction, error: r.error?.code, model: r.model, params: r.params,
  };
}
const byId = (rs: PredictionRecord[]) => Object.fromEntries(rs.map((r) => [r.id, essence(r)]));

// ---------------------------------------------------------------------------------------------------------
describe('manifests', () => {
  const dir = path.join(tmp, 'manifests');
  beforeAll(() => mkdirSync(dir, { recursive: true }));

  it('JSONL, CSV and the LLaVA-Rad annotation JSON give the same studies; relative images resolve against --image-root or the manifest', () => {
    const jsonl = path.join(dir, 'm.jsonl');
    writeFileSync(jsonl, [
      { id: 'a', image: 'img/a.png', reason: 'Cough, fever', reference: 'No acute process.\nHeart normal.' },
      { id: 7, image: '/abs/b.jpg' },
      { id: 'c', image: 'img/c.png', reason: '', reference: null },
    ].map((o) => JSON.stringify(o)).join('\n') + '\n\n');
    const csv = path.join(dir, 'm.csv');
    writeFileSync(csv, '\uFEFFid,image,reason,reference,extra\r\na,img/a.png,"Cough, fever","No acute process.\nHeart normal.",x\r\n7,/abs/b.jpg,,,y\r\nc,img/c.png,,,\r\n');
    const json = path.join(dir, 'chat_test_MIMIC_CXR_sample.json');
    const human = (q: string) => ({ from: 'human', value: `<image>\n${q}` });
    writeFileSync(json, JSON.stringify([
      { id: 'a', image: 'img/a.png', reason: 'Cough, fever', conversations: [human('q'), { from: 'gpt', value: 'No acute process.\nHeart normal.' }] },
      { id: 7, image: '/abs/b.jpg', reason: null, conversations: [human('q'), { from: 'gpt', value: null }] },
      { id: 'c', image: 'img/c.png', conversations: [human('q')] },
    ]));
    const a = readManifest(jsonl);
    expect(a.format).toBe('jsonl');
    expect(a.studies).toEqual([
      { id: 'a', image: path.join(dir, 'img/a.png'), source: 'img/a.png', reason: 'Cough, fever', reference: 'No acute process.\nHeart normal.', line: 1 },
      { id: '7', image: '/abs/b.jpg', source: '/abs/b.jpg', reason: null, reference: null, line: 2 },
      { id: 'c', image: path.join(dir, 'img/c.png'), source: 'img/c.png', reason: null, reference: null, line: 3 },
    ]);
    const strip = (m: ReturnType<typeof readManifest>) => m.studies.map(({ line: _, ...s }) => s);
    expect(strip(readManifest(csv))).toEqual(strip(a));
    expect(strip(readManifest(json))).toEqual(strip(a));
    expect(readManifest(jsonl, { imageRoot: '/data/mimic' }).studies[0]!.image).toBe('/data/mimic/img/a.png');
    // format by content when the extension says nothing
    const noext = path.join(dir, 'studies');
    writeFileSync(noext, readFileSync(csv));
    expect(strip(readManifest(noext))).toEqual(strip(a));
    // keep: the others checked but not held
    const kept = readManifest(jsonl, { keep: (id) => id !== '7' });
    expect([kept.studies.map((x) => x.id), kept.notKept]).toEqual([['a', 'c'], 1]);
    // options checked before the manifest is opened (a throw after the open left its descriptor open)
    expect(() => readManifest(jsonl, { keep: 5 as never })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: 'keep must be a function of a study id, got 5' }));
    expect(() => readManifest(jsonl, { imageRoot: 5 as never })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT', message: 'imageRoot must be a folder path, got 5' }));
  });

  it('--mimic-test-filter keeps what the official mimic_test_findings loader keeps', () => {
    const json = path.join(dir, 'chat_test_MIMIC_CXR_all.json');
    const e = (id: string, gm: string, view: string, ref: string | null) => ({
      id, image: `mimic/p10/${id}.jpg`, reason: null, generate_method: gm, view, conversations: [{ from: 'human', value: '<image>\nq' }, { from: 'gpt', value: ref }],
    });
    writeFileSync(json, JSON.stringify([e('s1', 'gpt4', 'PA', 'Clear.'), e('s1', 'rule-based', 'PA', 'Clear'), e('s2', 'gpt4', 'LATERAL', 'x'), e('s3', 'gpt4', 'AP', null), e('s4', 'gpt4', 'AP', 'Edema.')]));
    expect(() => readManifest(json)).toThrow(/duplicate id "s1".*--mimic-test-filter/);
    const m = readManifest(json, { mimicTestFilter: true, imageRoot: '/files' });
    expect(m.studies.map((s) => [s.id, s.image, s.reference])).toEqual([['s1', '/files/p10/s1.jpg', 'Clear.'], ['s4', '/files/p10/s4.jpg', 'Edema.']]);
    expect(m.filtered).toBe(3);
  });

  it('bad manifests: BAD_MANIFEST with the file and line', () => {
    const cases: [string, string, RegExp][] = [
      ['x.jsonl', '{"id":"a","image":"a.png"}\n{"id":"b",\n', /x\.jsonl:2: not JSON/],
      ['x.jsonl', '{"id":"a","image":"a.png"}\n[1]\n', /:2: each line must be a JSON object, got an array/],
      ['x.jsonl', '{"id":"a","image":"a.png"}\n{"id":"a","image":"b.png"}\n', /:2: duplicate id "a" \(first at 1\)/],
      ['x.jsonl', '{"id":"","image":"a.png"}\n', /:1: "id" must be a non-empty string, got ""/],
      ['x.jsonl', '{"id":"a"}\n', /:1: "image" must be a non-empty path, got undefined/],
      ['x.jsonl', '{"id":"a","image":"a.png","reason":3}\n', /"reason" must be a string or null, got 3/],
      ['x.csv', 'id,path\na,b\n', /must name the columns id and image/],
      ['x.csv', 'id,image\na,b,c\n', /x\.csv:2: expected 2 fields as in the header, got 3/],
      ['x.csv', 'id,image\n"a,b\n', /x\.csv:2: a quoted field is not closed/],
      ['x.csv', '', /the CSV is empty/],
      ['x.json', '{"id":"a"}', /must be an array of studies, got an object/],
    ];
    for (const [name, text, re] of cases) {
      const f = path.join(dir, name);
      writeFileSync(f, text);
      expect(() => readManifest(f), text).toThrow(re);
      try {
        readManifest(f);
      } catch (e) {
        expect((e as { code: string }).code).toBe('BAD_MANIFEST');
      }
    }
  });

  it('CSV: quotes, doubled quotes, newlines and commas in quoted fields, CRLF', () => {
    expect(parseCsv('a,b\r\n"x,""y""\nz",\n\n1,2')).toEqual([
      { line: 1, fields: ['a', 'b'] },
      { line: 2, fields: ['x,"y"\nz', ''] },
      { line: 5, fields: ['1', '2'] },
    ]);
  });
});

describe('shards and devices', () => {
  const ids = Array.from({ length: 300 }, (_, i) => `study-${i}`);

  it('--shard I/N splits by a hash of the id: disjoint, complete, independent of order and of the other ids', () => {
    const n = 4;
    const shards = Array.from({ length: n }, (_, i) => ids.filter((id) => inShard(id, { index: i, count: n })));
    expect(shards.flat().sort()).toEqual([...ids].sort());
    for (const s of shards) expect(s.length).toBeGreaterThan(40); // roughly even
    const reversed = [...ids].reverse().filter((id) => inShard(id, { index: 2, count: n }));
    expect(reversed.reverse()).toEqual(shards[2]);
    expect(shardOf('study-17', n)).toBe(createHash('sha256').update('study-17').digest().readUInt32BE(0) % n);
  });

  it('--shard auto reads Slurm array and Kubernetes indexed Job variables', () => {
    expect(parseShard('2/5', {})).toEqual({ index: 2, count: 5 });
    expect(parseShard('auto', { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_COUNT: '4' })).toEqual({ index: 3, count: 4 });
    expect(parseShard('auto', { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '4' })).toEqual({ index: 3, count: 4 });
    expect(parseShard('auto/8', { JOB_COMPLETION_INDEX: '7' })).toEqual({ index: 7, count: 8 });
    expect(parseShard('auto', { JOB_COMPLETION_INDEX: '1', LLAVA_RAD_SHARD_COUNT: '3' })).toEqual({ index: 1, count: 3 });
    expect(() => parseShard('5/5', {})).toThrow(/index must be between 0 and 4, got 5/);
    expect(() => parseShard('1of2', {})).toThrow(/--shard must be I\/N .* got '1of2'/);
    expect(() => parseShard('auto', {})).toThrow(/neither SLURM_ARRAY_TASK_ID .* nor JOB_COMPLETION_INDEX/);
    expect(() => parseShard('auto', { JOB_COMPLETION_INDEX: '1' })).toThrow(/needs the count/);
    expect(() => parseShard('auto/3', { SLURM_ARRAY_TASK_ID: '0', SLURM_ARRAY_TASK_COUNT: '4' })).toThrow(/SLURM_ARRAY_TASK_COUNT is 4/);
  });

  it('--devices: cpu, cuda, cuda:N (CUDA_VISIBLE_DEVICES for its worker), auto', () => {
    expect(parseDevices('cuda:0,cuda:3,cpu')).toEqual([
      { name: 'cuda:0', backend: 'cuda', visible: '0' },
      { name: 'cuda:3', backend: 'cuda', visible: '3' },
      { name: 'cpu', backend: 'cpu', visible: '' },
    ]);
    expect(() => parseDevices('cuda:0,cuda:0')).toThrow(/cuda:0 twice/);
    expect(() => parseDevices('gpu0')).toThrow(/cpu, cuda, cuda:N or auto, got 'gpu0'/);
    expect(() => parseDevices('cpu,')).toThrow(/comma-separated/);
  });
});

describe('the journal', () => {
  const rec = (id: string, extra: Partial<PredictionRecord> = {}): PredictionRecord => ({
    id, image: `${id}.png`, reason: null, findings: 'Clear.', tokens: [1], stop_reason: 'eos', warnings: [],
    model: { decoder: { file: 'd', bytes: 1, sha256: 'aa' }, vision: { file: 'v', bytes: 1, sha256: 'bb' } },
    params: { max_tokens: 8, dicom_window: false, skip_lateral: false, high_bit_depth: 'msb', kv_type: 'auto' }, device: 'cpu', finished_at: '2025-01-01T00:00:00.000Z', research_use_only: true, ...extra,
  });

  it('appends whole lines; a torn or unparsable last line is cut off on open; the last record of an id wins', () => {
    const f = path.join(tmp, 'journal', 'p.jsonl');
    const { journal } = Journal.open(f); // creates the folder and the file
    journal.append(rec('a', { findings: undefined, tokens: undefined, error: { code: 'IO', message: 'x' } }));
    journal.append(rec('b'));
    journal.append(rec('a'));
    journal.close();
    const good = readFileSync(f, 'utf8');
    for (const tail of ['{"id":"c","find', '{"id":"c"}\n', '\n', '\0\0\0\0']) {
      writeFileSync(f, good + tail);
      const { journal: j, predictions: p } = Journal.open(f);
      j.close();
      expect(p.damaged, JSON.stringify(tail)).not.toBeNull();
      expect(readFileSync(f, 'utf8')).toBe(good);
      expect([...p.latest.keys()]).toEqual(['a', 'b']);
      expect(p.latest.get('a')!.error).toBeUndefined();
      expect(p.records).toBe(3);
    }
    // a bad line that is not the last: refused, nothing touched
    writeFileSync(f, '{"id":"x"}\n' + good);
    expect(() => Journal.open(f)).toThrow(expect.objectContaining({ code: 'BAD_PREDICTIONS', message: expect.stringMatching(/p\.jsonl:1: not a prediction record/) }));
    expect(readFileSync(f, 'utf8')).toBe('{"id":"x"}\n' + good);
  });

  it('never writes through a symbolic link or over a file that is not a predictions file; a torn first record is cut off', () => {
    const d = path.join(tmp, 'journal-hostile');
    mkdirSync(d, { recursive: true });
    const victim = path.join(d, 'victim.txt');
    writeFileSync(victim, 'precious\n');
    const link = path.join(d, 'out.jsonl');
    symlinkSync(victim, link);
    expect(() => Journal.open(link)).toThrow(expect.objectContaining({ code: 'IO', message: expect.stringMatching(/symbolic link/) }));
    const dangling = path.join(d, 'dangling.jsonl');
    symlinkSync(path.join(d, 'would-be-created.txt'), dangling);
    expect(() => Journal.open(dangling)).toThrow(expect.objectContaining({ code: 'IO' }));
    expect(existsSync(path.join(d, 'would-be-created.txt'))).toBe(false);
    // one line without a newline (someone's notes): its "torn line" would be cut off to nothing
    const notes = path.join(d, 'notes.txt');
    for (const text of ['remember the milk', 'x', '\n']) {
      writeFileSync(notes, text);
      expect(() => Journal.open(notes), JSON.stringify(text)).toThrow(expect.objectContaining({ code: 'BAD_PREDICTIONS', message: expect.stringMatching(/holds no prediction record/) }));
      expect(readFileSync(notes, 'utf8')).toBe(text);
    }
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    // a crash during the very first record leaves '{"id":...' without a newline: that is cut off
    const first = path.join(d, 'first.jsonl');
    for (const torn of ['{"id":"a","fin', '{"i']) {
      writeFileSync(first, torn);
      const { journal, predictions } = Journal.open(first);
      journal.close();
      expect(predictions.records).toBe(0);
      expect(readFileSync(first, 'utf8')).toBe('');
    }
  });

  it('merge\'s temporary file: a link planted under the old predictable name is not written through', () => {
    const d = path.join(tmp, 'merge-hostile');
    mkdirSync(d, { recursive: true });
    const victim = path.join(d, 'victim.txt');
    writeFileSync(victim, 'precious\n');
    const out = path.join(d, 'merged.jsonl');
    symlinkSync(victim, path.join(d, `.merged.jsonl.${process.pid}.tmp`));
    writePredictions(out, [rec('a'), rec('b')]);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(out).isFile()).toBe(true);
    expect(readPredictions(out).records).toBe(2);
    expect(readdirSync(d).filter((f) => f.endsWith('.tmp'))).toEqual([`.merged.jsonl.${process.pid}.tmp`]); // ours cleaned up
  });

  it('"query" is the human turn of the official evaluation\'s conversation', () => {
    expect(officialQuery(null)).toBe('<image>\nProvide a description of the findings in the radiology image.');
    expect(officialQuery('Cough\nfever')).toBe('<image>\nProvide a description of the findings in the radiology image given the following indication: Cough fever');
  });
});

// ---------------------------------------------------------------------------------------------------------
describe('llava-rad batch / merge (CLI, tiny models)', () => {
  const dir = path.join(tmp, 'cli');
  const manifest = path.join(dir, 'studies.jsonl');
  let decoder: string;
  let model: string[];
  let expected: Record<string, ReturnType<typeof essence>>;
  const ids: string[] = [];
  const MAX_TOKENS = '10';

  function run(args: string[]) {
    const r = spawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8', timeout: 240_000 });
    return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }
  const batch = (out: string, ...more: string[]) => ['batch', manifest, ...model, '--out', out, '--max-tokens', MAX_TOKENS, ...more];

  function start(args: string[], env: NodeJS.ProcessEnv = process.env) {
    const child = spawn(process.execPath, [cli, ...args], { cwd: dir, env });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.resume();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal, stderr })));
    return { child, exited };
  }
  /**
   * Freezes the child (SIGSTOP) as soon as `file` holds n records, on the change event of its folder (inotify;
   * a 50 ms poll as a fallback), waits until the kernel shows it stopped (/proc/PID/stat state T: kill() returns
   * before a child running on another core has stopped, and it could append one more record in between), and
   * returns the records the file holds then. While frozen the child writes nothing, so what the test asserts
   * next is that state, not a race with the rest of the run.
   */
  async function freezeAt(child: ChildProcess, file: string, n: number, exited: Promise<unknown>): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const watcher = watch(path.dirname(file), () => check());
      const poll = setInterval(() => check(), 50);
      const finish = () => {
        settled = true;
        watcher.close();
        clearInterval(poll);
      };
      function check() {
        if (settled || lines(file).length < n) return;
        child.kill('SIGSTOP');
        finish();
        resolve();
      }
      void exited.then(() => {
        if (settled) return;
        finish();
        reject(new Error(`${file} did not reach ${n} records before the process ended (${lines(file).length})`));
      });
      check();
    });
    const stat = `/proc/${child.pid}/stat`;
    if (existsSync(stat)) {
      // the state is the field after the command's parenthesised name
      const state = () => readFileSync(stat, 'utf8').replace(/^.*\) /s, '')[0];
      for (let i = 0; state() !== 'T'; i++) {
        if (i > 2000) throw new Error(`process ${child.pid} not stopped 10 s after SIGSTOP (state ${state()})`);
        await new Promise((r) => setTimeout(r, 5));
      }
    } else {
      await new Promise((r) => setTimeout(r, 200)); // no procfs: give the signal time to land
    }
    return lines(file).length;
  }

  const PAUSED = /llava-rad: test pause at ([a-z-]+):(\d+) \(study ("(?:[^"\\]|\\.)*"); (\d+) records in .*?(?:; (\d+) bytes of its line written)?\)\n/;
  /**
   * Runs `batch` with LLAVA_RAD_TEST_PAUSE=spec (the journal's test-only hook): the process reports the point on
   * stderr and blocks there, its event loop included, so the SIGKILL sent on that report lands exactly at that
   * point, whatever the speed of the machine. Returns what it reported and how it ended.
   */
  async function killAtPause(out: string, spec: string, ...more: string[]) {
    const { child, exited } = start(batch(out, ...more), { ...process.env, LLAVA_RAD_TEST_PAUSE: spec });
    let seen = '';
    const m = await new Promise<RegExpExecArray>((resolve, reject) => {
      child.stderr!.on('data', (d: Buffer) => {
        seen += d.toString();
        const hit = PAUSED.exec(seen);
        if (hit) resolve(hit);
      });
      void exited.then((e) => reject(new Error(`batch with LLAVA_RAD_TEST_PAUSE=${spec} ended (code ${e.code}, signal ${e.signal}) without pausing: ${e.stderr}`)));
    });
    child.kill('SIGKILL');
    const end = await exited;
    const pause = { point: `${m[1]}:${m[2]}`, id: JSON.parse(m[3]!) as string, records: Number(m[4]), tornBytes: m[5] === undefined ? 0 : Number(m[5]) };
    return { pause, end };
  }

  beforeAll(async () => {
    if (!existsSync(cli)) {
      const b = spawnSync('npx', ['tsup'], { cwd: root, encoding: 'utf8' });
      if (b.status !== 0) throw new Error(`could not build dist/: ${b.stderr}`);
    }
    decoder = await tinyLlamaPath('f32');
    model = ['--model', decoder, '--mmproj', VISION];
    mkdirSync(path.join(dir, 'img'), { recursive: true });
    const pick = [
      'findings/radiograph-grey-900x1100.png', 'findings/radiograph-rgb-1100x900.jpg', 'findings/square-rgb-600x600.png',
      'images/grey_517x1033.png', 'images/grey_2000x1600.jpg', 'images/grey_518x777.png', 'images/grey_700x600.png',
      'images/rgb_600x700.png', 'images/cmyk_360x300.jpg', 'images/exif6_560x500.jpg', 'images/palette_280x310.png',
      'images/rgb16_150x170.png', 'images/rgb_progressive_420_450x500.jpg',
    ];
    const entries: object[] = [];
    pick.forEach((p, i) => {
      const name = path.basename(p);
      copyFileSync(path.join(here, 'fixtures', p), path.join(dir, 'img', name));
      const reason = i % 3 === 0 ? 'Shortness of breath.' : i % 3 === 1 ? null : 'Fever,\ncough';
      entries.push({ id: `study-${String(i).padStart(2, '0')}`, image: `img/${name}`, reason, ...(i % 2 === 0 ? { reference: `Reference findings ${i}.` } : {}) });
    });
    writeFileSync(path.join(dir, 'img', 'corrupt.png'), readFileSync(path.join(dir, 'img', 'rgb_600x700.png')).subarray(0, 300));
    entries.push({ id: 'corrupt', image: 'img/corrupt.png', reference: 'x' });
    entries.push({ id: 'missing', image: 'img/missing.png' });
    writeFileSync(manifest, entries.map((e) => JSON.stringify(e)).join('\n') + '\n');
    for (const e of entries) ids.push((e as { id: string }).id);
  }, 300_000);

  it('an uninterrupted run: one record per study, the official fields, the model identity, error records; exit 3', () => {
    const out = path.join(dir, 'full.jsonl');
    const r = run(batch(out, '--concurrency', '2'));
    expect(r.code, r.stderr).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/15 studies, 0 already in .*full\.jsonl, 15 to run/);
    expect(r.stderr).toMatch(/13 done, 2 failed this run; of 15 studies 13 have findings, 2 failed/);
    const rs = records(out);
    expect(rs.map((x) => x.id).sort()).toEqual([...ids].sort());
    const identity = { decoder: { file: path.basename(decoder), bytes: readFileSync(decoder).length, sha256: sha256(decoder) }, vision: { file: 'tiny-vision-f32.gguf', bytes: readFileSync(VISION).length, sha256: sha256(VISION) } };
    for (const x of rs) {
      expect(x.model).toEqual(identity);
      expect(x.params).toEqual({ max_tokens: 10, dicom_window: false, skip_lateral: false, high_bit_depth: 'msb', kv_type: 'auto' });
      expect(x.research_use_only).toBe(true);
    }
    const s0 = rs.find((x) => x.id === 'study-00')!;
    expect(s0).toMatchObject({
      image: 'img/radiograph-grey-900x1100.png', reason: 'Shortness of breath.', reference: 'Reference findings 0.',
      query: '<image>\nProvide a description of the findings in the radiology image given the following indication: Shortness of breath.',
    });
    expect(s0.prediction).toBe(s0.findings);
    expect(s0.tokens!.length).toBeGreaterThan(0);
    expect(s0.timings_ms!.total).toBeGreaterThan(0);
    const s1 = rs.find((x) => x.id === 'study-01')!;
    expect(s1.reason).toBeNull();
    expect('query' in s1 || 'reference' in s1 || 'prediction' in s1).toBe(false); // no reference known
    expect(rs.find((x) => x.id === 'corrupt')).toMatchObject({ error: { code: 'INVALID_IMAGE' } });
    expect(rs.find((x) => x.id === 'missing')).toMatchObject({ error: { code: 'IO', message: expect.stringMatching(/missing\.png/) } });
    expect(rs.find((x) => x.id === 'missing')!.findings).toBeUndefined();
    expected = byId(rs);

    // the same command again: nothing to do, nothing written, still exit 3
    const again = run(batch(out, '--concurrency', '2'));
    expect(again.code, again.stderr).toBe(3);
    expect(again.stderr).toMatch(/15 already in/);
    expect(records(out)).toEqual(rs);
  }, 240_000);

  it('the f16 vision tower: --concurrency 4 (images batched through the tower) gives --concurrency 1\'s findings and stop reasons', () => {
    const f16 = ['--model', decoder, '--mmproj', path.join(here, 'fixtures', 'vision', 'tiny-vision-f16.gguf')];
    const outs = ['1', '4'].map((c) => {
      const out = path.join(dir, `f16-c${c}.jsonl`);
      const r = run(['batch', manifest, ...f16, '--out', out, '--max-tokens', MAX_TOKENS, '--concurrency', c]);
      expect(r.code, r.stderr).toBe(3); // the two broken images
      return byId(records(out));
    });
    expect(Object.keys(outs[0]!)).toHaveLength(ids.length);
    expect(Object.values(outs[0]!).filter((x) => x.findings !== undefined)).toHaveLength(13);
    expect(outs[1]).toEqual(outs[0]);
  }, 300_000);

  it('image paths that are a device, a FIFO or a folder: IO error records at once, the other studies done', () => {
    const hostile = path.join(dir, 'hostile');
    mkdirSync(hostile, { recursive: true });
    const fifo = path.join(hostile, 'image.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const m = path.join(hostile, 'studies.jsonl');
    writeFileSync(m, [
      { id: 'zero', image: '/dev/zero' },
      { id: 'fifo', image: fifo },
      { id: 'folder', image: hostile },
      { id: 'good', image: path.join(dir, 'img', 'grey_700x600.png') },
    ].map((e) => JSON.stringify(e)).join('\n') + '\n');
    const out = path.join(hostile, 'out.jsonl');
    const r = run(['batch', m, ...model, '--out', out, '--max-tokens', MAX_TOKENS]);
    expect(r.code, r.stderr).toBe(3);
    const rs = byId(records(out));
    expect(rs.zero!.error).toBe('IO');
    expect(rs.fifo!.error).toBe('IO');
    expect(rs.folder!.error).toBe('IO');
    expect(rs.good!.findings).toBeDefined();
    const msgs = records(out).filter((x) => x.error).map((x) => x.error!.message);
    expect(msgs.join('\n')).toMatch(/\/dev\/zero: it is a character device/);
    expect(msgs.join('\n')).toMatch(/image\.fifo: it is a FIFO/);
  }, 120_000);

  it('killed with SIGKILL three times mid-run and restarted: exactly one record per study, each equal to the uninterrupted run\'s', async () => {
    // three kills at points the journal's test-only hook (LLAVA_RAD_TEST_PAUSE) stops the process at, then an
    // uninterrupted restart: after a record is durable, in the middle of a record's line, and after a study is
    // done but before its record is written
    const out = path.join(dir, 'killed.jsonl');
    const ids_ = (file: string) => records(file).map((x) => x.id);
    const assertClean = (what: string) => {
      const notJson = lines(out).filter((l) => { try { JSON.parse(l); return false; } catch { return true; } });
      expect(notJson.map((l) => l.slice(0, 80)), `${what}: lines of the file that are not JSON (a torn line left in)`).toEqual([]);
      const rs = records(out);
      expect(new Set(rs.map((x) => x.id)).size, `${what}: distinct ids against records in the file`).toBe(rs.length);
      for (const r of rs) expect(essence(r), `${what}: record of ${r.id} against the uninterrupted run's`).toEqual(expected[r.id]);
    };

    // 1. killed just after its 4th record was appended and fsync'd: all 4 are in the file, whole
    const a = await killAtPause(out, 'after-record:4', '--concurrency', '2');
    expect(a.end.signal, `first run's end against SIGKILL: ${a.end.stderr}`).toBe('SIGKILL');
    expect(a.pause, 'first run: where it paused against after-record:4 with 4 records').toMatchObject({ point: 'after-record:4', records: 4, tornBytes: 0 });
    expect(lines(out).length, 'first run: complete lines in the file against the 4 appended').toBe(4);
    expect(readFileSync(out, 'utf8').endsWith('\n'), 'first run: the file ends with a newline').toBe(true);
    assertClean('after the first kill');
    expect(ids_(out).at(-1), 'first run: the last line\'s id against the study the pause reported').toBe(a.pause.id);

    // 2. restarted, killed in the middle of its 3rd record's line: 2 more whole records, then a torn line
    const before2 = readFileSync(out).length;
    const b = await killAtPause(out, 'mid-record:3', '--concurrency', '2');
    expect(b.end.signal, `second run's end against SIGKILL: ${b.end.stderr}`).toBe('SIGKILL');
    expect(b.end.stderr, 'second run: the resume line against 4 already in').toMatch(/15 studies, 4 already in .*killed\.jsonl, 11 to run/);
    expect(b.pause, 'second run: where it paused against mid-record:3 with 6 records').toMatchObject({ point: 'mid-record:3', records: 6 });
    expect(b.pause.tornBytes, 'second run: bytes of the torn line it wrote').toBeGreaterThan(0);
    expect(lines(out).length, 'second run: complete lines in the file against 4 + 2').toBe(6);
    const text2 = readFileSync(out, 'utf8');
    const tail = text2.slice(text2.lastIndexOf('\n') + 1);
    expect(Buffer.byteLength(tail), 'second run: bytes after the last newline against the torn bytes the pause reported').toBe(b.pause.tornBytes);
    expect(tail.startsWith(`{"id":${JSON.stringify(b.pause.id)},`), `second run: the torn line ${JSON.stringify(tail.slice(0, 40))} against the start of ${b.pause.id}'s record`).toBe(true);
    expect(readFileSync(out).length, 'second run: file length against the first run\'s + 2 lines + the torn part').toBeGreaterThan(before2 + b.pause.tornBytes);
    assertClean('after the second kill');
    expect(ids_(out), 'second run: the torn study has no complete record').not.toContain(b.pause.id);

    // 3. restarted: the torn line is cut off; killed once its 2nd study is done but before its record is written
    const c = await killAtPause(out, 'before-record:2', '--concurrency', '2');
    expect(c.end.signal, `third run's end against SIGKILL: ${c.end.stderr}`).toBe('SIGKILL');
    expect(c.end.stderr, 'third run: the cut reported against the torn bytes of the second run')
      .toMatch(new RegExp(`cut off a damaged last line of .*killed\\.jsonl \\(${b.pause.tornBytes} bytes: a last line without a newline`));
    expect(c.end.stderr, 'third run: the resume line against 6 already in').toMatch(/15 studies, 6 already in .*killed\.jsonl, 9 to run/);
    expect(c.pause, 'third run: where it paused against before-record:2 with 7 records').toMatchObject({ point: 'before-record:2', records: 7, tornBytes: 0 });
    expect(lines(out).length, 'third run: complete lines in the file against 6 + 1').toBe(7);
    expect(readFileSync(out, 'utf8').endsWith('\n'), 'third run: the file ends with a newline (the torn line cut, nothing torn since)').toBe(true);
    assertClean('after the third kill');
    expect(ids_(out), 'third run: the study done but not written has no record').not.toContain(c.pause.id);

    // 4. an uninterrupted restart finishes the rest
    const last = run(batch(out, '--concurrency', '2'));
    expect(last.code, `last run's exit code against 3 (two studies fail): ${last.stderr}`).toBe(3);
    expect(last.stderr, 'last run: the resume line against 7 already in').toMatch(/15 studies, 7 already in .*killed\.jsonl, 8 to run/);
    expect(last.stderr, 'last run: nothing to cut').not.toMatch(/cut off/);
    expect(readFileSync(out, 'utf8').endsWith('\n'), 'last run: the file ends with a newline').toBe(true);
    const rs = records(out);
    expect(rs.length, 'records in the file against the 15 studies').toBe(15);
    expect(rs.map((x) => x.id).sort(), 'ids in the file against the manifest\'s').toEqual([...ids].sort());
    for (const id of [b.pause.id, c.pause.id]) expect(rs.filter((x) => x.id === id).length, `records of ${id} (torn / done but unwritten when killed)`).toBe(1);
    expect(byId(rs), 'every record against the uninterrupted run\'s').toEqual(expected);
  }, 240_000);

  it('LLAVA_RAD_TEST_PAUSE (test-only): parsed once; a value that does not parse stops batch with INVALID_ARGUMENT, nothing written', () => {
    expect(testPauseSpec(undefined)).toBeNull();
    expect(testPauseSpec('')).toBeNull();
    expect(testPauseSpec('mid-record:5')).toEqual({ point: 'mid-record', n: 5 });
    for (const bad of ['mid-record', 'after-record:0', 'during-record:3', 'before-record:-1', 'after-record:2x']) {
      expect(testPauseSpec(bad), bad).toBeInstanceOf(Error);
    }
    const out = path.join(dir, 'bad-pause.jsonl');
    const r = spawnSync(process.execPath, [cli, ...batch(out)], { cwd: dir, encoding: 'utf8', env: { ...process.env, LLAVA_RAD_TEST_PAUSE: 'after-record' } });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/error \[INVALID_ARGUMENT\]: LLAVA_RAD_TEST_PAUSE \(test-only\) must be/);
    expect(existsSync(out), 'no predictions file created').toBe(false);
  }, 60_000);

  it('a torn last line is cut off on restart; a bad line elsewhere stops the run with BAD_PREDICTIONS, file untouched', () => {
    const full = lines(path.join(dir, 'full.jsonl'));
    const out = path.join(dir, 'torn.jsonl');
    writeFileSync(out, full.slice(0, 10).join('\n') + '\n' + full[10]!.slice(0, 57));
    const r = run(batch(out, '--concurrency', '2'));
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/cut off a damaged last line of .*torn\.jsonl \(57 bytes: a last line without a newline/);
    expect(byId(records(out))).toEqual(expected);
    expect(records(out).length).toBe(15);

    const edited = path.join(dir, 'edited.jsonl');
    const text = `${full[0]}\n{"note": "hand-edited"}\n${full[1]}\n`;
    writeFileSync(edited, text);
    const e = run(batch(edited));
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/error \[BAD_PREDICTIONS\]: .*edited\.jsonl:2: not a prediction record/);
    expect(readFileSync(edited, 'utf8')).toBe(text);
  }, 240_000);

  it('resuming with another model or other settings is refused (MODEL_MISMATCH), nothing appended', () => {
    const out = path.join(dir, 'mismatch.jsonl');
    writeFileSync(out, lines(path.join(dir, 'full.jsonl')).slice(0, 4).join('\n') + '\n');
    const before = readFileSync(out, 'utf8');
    const r = run(['batch', manifest, ...model, '--out', out, '--max-tokens', '12']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error \[MODEL_MISMATCH\]: .*mismatch\.jsonl holds predictions made with another model or settings.*max_tokens 10.*max_tokens 12/);
    expect(readFileSync(out, 'utf8')).toBe(before);
  }, 240_000);

  it('SIGINT with two worker processes (--devices cpu,cpu): complete lines, exit 130; a second batch on the same file is refused; the re-run finishes equal', async () => {
    const out = path.join(dir, 'interrupted.jsonl');
    const { child, exited } = start(batch(out, '--devices', 'cpu,cpu', '--concurrency', '1'));
    const frozen = await freezeAt(child, out, 2, exited);
    const second = run(batch(out)); // while the first is frozen, holding the lock
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/error \[IO\]: .*interrupted\.jsonl is being written by process \d+ on /);
    child.kill('SIGINT'); // handled once it runs again: at most the 2 studies in flight are still recorded
    child.kill('SIGCONT');
    const end = await exited;
    expect(end.code, end.stderr).toBe(130);
    expect(end.stderr).toMatch(/interrupted: re-run the same command to resume/);
    const text = readFileSync(out, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const partial = records(out);
    expect(partial.length, `records: ${frozen} when frozen, then at most the 2 in flight`).toBeLessThanOrEqual(frozen + 2);
    expect(partial.length).toBeLessThan(15);
    expect(new Set(partial.map((x) => x.device))).toEqual(new Set(['cpu']));
    expect(existsSync(`${out}.lock`)).toBe(false);

    const rest = run(batch(out, '--devices', 'cpu,cpu', '--concurrency', '1', '--json-progress'));
    expect(rest.code, rest.stderr).toBe(3);
    const events = rest.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events[0]).toMatchObject({ event: 'start', total: 15, done: partial.length, todo: 15 - partial.length, devices: ['cpu', 'cpu'] });
    expect(events.filter((e) => e.event === 'study')).toHaveLength(15 - partial.length);
    expect(events.at(-1)).toMatchObject({ event: 'end', with_findings: 13, failed_total: 2, not_run: 0, exit_code: 3 });
    expect(typeof events.at(-1)!.tokens_per_s).toBe('number');
    expect(byId(records(out))).toEqual(expected);
    expect(records(out).length).toBe(15);
  }, 240_000);

  it('SIGTERM (a scheduler stopping the job) stops as cleanly: exit 143, complete lines, no lock left', async () => {
    const out = path.join(dir, 'terminated.jsonl');
    const { child, exited } = start(batch(out, '--concurrency', '2'));
    const frozen = await freezeAt(child, out, 1, exited);
    child.kill('SIGTERM'); // handled once it runs again: at most the 2 studies in flight are still recorded
    child.kill('SIGCONT');
    const end = await exited;
    expect(end.code, end.stderr).toBe(143);
    expect(end.stderr).toMatch(/terminated: re-run the same command to resume/);
    expect(readFileSync(out, 'utf8').endsWith('\n')).toBe(true);
    const rs = records(out);
    expect(rs.length, `records: ${frozen} when frozen, then at most the 2 in flight`).toBeLessThanOrEqual(frozen + 2);
    for (const r of rs) expect(essence(r)).toEqual(expected[r.id]);
    expect(existsSync(`${out}.lock`)).toBe(false);
  }, 240_000);

  it('the reader of its progress going away (`2>&1 | head`) does not end the job: every record, exit 3 as uninterrupted, no lock left (was: exit 1 at its next line)', async () => {
    const out = path.join(dir, 'reader-gone.jsonl');
    const child = spawn(process.execPath, [cli, ...batch(out, '--concurrency', '1', '--json-progress')], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // the first progress line read, then the pipe's read end closed: the child's next write gets EPIPE
    await new Promise<void>((resolve) => child.stderr!.once('data', () => resolve()));
    child.stderr!.destroy();
    expect(await exited).toBe(3);
    expect(records(out).map((x) => x.id).sort(), 'one record per study').toEqual([...ids].sort());
    for (const r of records(out)) expect(essence(r)).toEqual(expected[r.id]);
    expect(existsSync(`${out}.lock`)).toBe(false);
  }, 240_000);

  it('a lock left by a batch on another machine (a pod rescheduled after its node died): watched, taken over once its heartbeat has stopped, the run resumed', () => {
    const out = path.join(dir, 'rescheduled.jsonl');
    const first = run(batch(out, '--shard', '0/2'));
    expect(first.code, first.stderr).toBeLessThanOrEqual(3);
    const before = records(out).length;
    // the lock the dead pod left behind: another host, no heartbeat
    writeFileSync(`${out}.lock`, JSON.stringify({ pid: 7, host: 'llava-rad-batch-0-x7k2p', boot: 'another-node', token: 'a'.repeat(32), started: '2026-12-01T00:00:00.000Z' }) + '\n');
    const r = spawnSync(process.execPath, [cli, ...batch(out)], { cwd: dir, encoding: 'utf8', timeout: 240_000, env: { ...process.env, LLAVA_RAD_LOCK_STALE_MS: '500' } });
    expect(r.status, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/rescheduled\.jsonl\.lock is held by process 7 on llava-rad-batch-0-x7k2p .*watching its heartbeat for up to 0\.5 s/);
    expect(r.stderr).toMatch(new RegExp(`15 studies, ${before} already in`));
    expect(records(out).map((x) => x.id).sort(), 'one record per study').toEqual([...ids].sort());
    expect(existsSync(`${out}.lock`)).toBe(false);
  }, 240_000);

  it('a run whose lock is taken over while it is stopped (its heartbeat gone) writes nothing more when it runs again: IO, exit 1', async () => {
    const out = path.join(dir, 'taken-over.jsonl');
    const { child, exited } = start(batch(out, '--concurrency', '1'), { ...process.env, LLAVA_RAD_LOCK_STALE_MS: '600' });
    const frozen = await freezeAt(child, out, 2, exited);
    // what a batch on another machine does once this one's heartbeat has stopped for 0.6 s: takes the lock over
    rmSync(`${out}.lock`);
    writeFileSync(`${out}.lock`, JSON.stringify({ pid: 4242, host: 'another-node', token: 'b'.repeat(32), started: new Date().toISOString() }) + '\n');
    child.kill('SIGCONT');
    const end = await exited;
    expect(end.code, end.stderr).toBe(1);
    expect(end.stderr).toMatch(/taken-over\.jsonl\.lock was taken over by process 4242 on another-node .*it stops writing/);
    // a record whose check ran before the freeze may still land: at most the one in flight
    expect(records(out).length, `records: ${frozen} when frozen, then at most the 1 in flight`).toBeLessThanOrEqual(frozen + 1);
    expect(readFileSync(`${out}.lock`, 'utf8'), 'the new owner\'s lock left in place').toMatch(/"pid":4242/);
  }, 240_000);

  it('three shards (JSONL, CSV and JSON manifests, one on two workers) merged equal one run; merge reports missing ids and refuses mixed models', () => {
    // the same studies as CSV and as a JSON array
    const entries = readFileSync(manifest, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, string | null>);
    const q = (s: string | null | undefined) => (s == null ? '' : `"${s.replace(/"/g, '""')}"`);
    const csv = path.join(dir, 'studies.csv');
    writeFileSync(csv, 'id,image,reason,reference\n' + entries.map((e) => [e.id, e.image, q(e.reason), q(e.reference)].join(',')).join('\n') + '\n');
    const json = path.join(dir, 'studies.json');
    writeFileSync(json, JSON.stringify(entries));
    const shards = [0, 1, 2].map((i) => path.join(dir, `shard-${i}.jsonl`));
    const runs = [
      run(['batch', manifest, ...model, '--out', shards[0]!, '--max-tokens', MAX_TOKENS, '--shard', '0/3']),
      run(['batch', csv, ...model, '--out', shards[1]!, '--max-tokens', MAX_TOKENS, '--shard', '1/3', '--devices', 'cpu,cpu', '-c', '1']),
      run(['batch', json, ...model, '--out', shards[2]!, '--max-tokens', MAX_TOKENS, '--shard', '2/3']),
    ];
    for (const [i, r] of runs.entries()) {
      expect([0, 3], r.stderr).toContain(r.code);
      const got = records(shards[i]!).map((x) => x.id).sort();
      expect(got).toEqual(ids.filter((id) => shardOf(id, 3) === i).sort());
    }

    const merged = path.join(dir, 'merged.jsonl');
    const m = run(['merge', merged, ...shards, '--manifest', manifest, '--json']);
    expect(m.code, m.stderr).toBe(3); // two studies failed
    expect(JSON.parse(m.stdout)).toMatchObject({ records: 15, ok: 13, failed: 2, missing: [], duplicates: [] });
    const rs = records(merged);
    expect(rs.map((x) => x.id)).toEqual(ids); // manifest order
    expect(byId(rs)).toEqual(expected);

    // metric-ready: failed records left out; a shard merged twice is deduplicated
    const clean = path.join(dir, 'clean.jsonl');
    const d = run(['merge', clean, ...shards, shards[0]!, '--drop-failed']);
    expect(d.stderr).toMatch(/id\(s\) in more than one file/);
    expect(records(clean).map((x) => x.id).sort()).toEqual(ids.filter((id) => id !== 'corrupt' && id !== 'missing').sort());
    expect(records(clean).every((x) => typeof x.findings === 'string')).toBe(true);

    // a missing shard is reported
    const partial = run(['merge', path.join(dir, 'partial.jsonl'), shards[0]!, shards[1]!, '--manifest', manifest]);
    expect(partial.code).toBe(3);
    const missing = ids.filter((id) => shardOf(id, 3) === 2);
    expect(partial.stderr).toMatch(new RegExp(`${missing.length} study id\\(s\\) of the manifest have no record`));

    // another model's (or other settings') records are refused, nothing written
    const other = path.join(dir, 'other.jsonl');
    writeFileSync(other, lines(shards[2]!).map((l) => { const x = JSON.parse(l) as PredictionRecord; x.model.decoder.sha256 = '0'.repeat(64); return JSON.stringify(x); }).join('\n') + '\n');
    const bad = run(['merge', path.join(dir, 'never.jsonl'), shards[0]!, other]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/error \[MODEL_MISMATCH\]: .*other\.jsonl .*come from different models or settings/);
    expect(existsSync(path.join(dir, 'never.jsonl'))).toBe(false);
  }, 300_000);

  it('--retry-failed runs failed studies again and appends a newer record; readers and merge take the last', () => {
    const out = path.join(dir, 'retry.jsonl');
    writeFileSync(out, readFileSync(path.join(dir, 'full.jsonl')));
    copyFileSync(path.join(dir, 'img', 'grey_700x600.png'), path.join(dir, 'img', 'missing.png'));
    try {
      const plain = run(batch(out));
      expect(plain.code).toBe(3); // failures are not retried by default
      expect(records(out).length).toBe(15);
      const r = run(batch(out, '--retry-failed'));
      expect(r.code, r.stderr).toBe(3); // the corrupt image still fails
      expect(r.stderr).toMatch(/1 done, 1 failed this run; of 15 studies 14 have findings, 1 failed/);
      const rs = records(out);
      expect(rs.length).toBe(17);
      const latest = readPredictions(out).latest;
      expect(latest.size).toBe(15);
      expect(latest.get('missing')!.findings).toEqual(expect.any(String));
      expect(latest.get('corrupt')!.error!.code).toBe('INVALID_IMAGE');
      const merged = path.join(dir, 'retry-merged.jsonl');
      expect(run(['merge', merged, out]).code).toBe(3);
      expect(records(merged).map((x) => x.id)).toEqual([...latest.keys()]);
    } finally {
      rmSync(path.join(dir, 'img', 'missing.png'));
    }
  }, 240_000);

  it('usage errors: exit 2, one line', () => {
    const out = path.join(dir, 'u.jsonl');
    const cases: [string[], RegExp][] = [
      [['batch', manifest, ...model], /--out PREDICTIONS\.jsonl is required/],
      [['batch', ...model, '--out', out], /the MANIFEST file is required/],
      [['batch', path.join(dir, 'nope.jsonl'), ...model, '--out', out], /manifest file not found/],
      [['batch', manifest, '--out', out, '--model', path.join(dir, 'none')], /model not found/],
      [['batch', manifest, ...model, '--out', out, '--kv-type', 'f8'], /--kv-type must be one of auto, f16, f32, q8_0, got 'f8'/],
      [['batch', manifest, ...model, '--out', out, '--shard', '3/3'], /shard index must be between 0 and 2, got 3/],
      [['batch', manifest, ...model, '--out', out, '--devices', 'tpu'], /a device must be cpu, cuda, cuda:N or auto, got 'tpu'/],
      [['batch', manifest, ...model, '--out', out, '--device', 'cpu', '--devices', 'cpu'], /not both/],
      [['batch', manifest, ...model, '--out', out, '--concurrency', '0'], /--concurrency must be an integer between 1 and 256, got '0'/],
      [['batch', manifest, ...model, '--out', out, '--format', 'xml'], /--format must be one of jsonl, csv, json, got 'xml'/],
      [['batch', manifest, ...model, '--out', out, '--quiet', '--json-progress'], /not both/],
      [['batch', manifest, ...model, '--out', out, '--ipc-worker'], /--ipc-worker is internal/],
      [['merge', out], /expected OUT\.jsonl and at least one predictions file/],
      [['merge', out, path.join(dir, 'nope.jsonl')], /predictions file not found/],
    ];
    for (const [args, re] of cases) {
      const r = run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
    expect(existsSync(out)).toBe(false);
    expect(run(['batch', '--help']).stdout).toMatch(/Exit status: 0 every study has findings; 3 /);
    expect(run(['--help']).stdout).toMatch(/batch .*\n.*merge/);
  }, 120_000);
});
