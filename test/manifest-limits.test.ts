// Issue #20 item 7: every manifest field is bounded when the manifest is read (id 256, image 4096, reason
// 4096, reference 65536 UTF-8 bytes; a JSONL line or CSV record 1 MiB), so a hostile 100 MB reason is never
// tokenized nor copied into a record. A field just over its limit proves what a 100 MB one would: the whole
// manifest is refused up front (BAD_MANIFEST with the line, the field and its length, never its contents).
// A line without a newline is refused as it streams in: a FIFO whose writer never closes shows the error
// comes before the end of the input. generateFindings' reason check (validateReason) is the same limit.
// Issue #20 (hostile files): a named pipe is a legitimate manifest (mkfifo, a shell's <(...)), but one that
// no process opens for writing must not hold the reader forever: its first writer is waited for a bounded
// time (fifoWaitMs / LLAVA_RAD_FIFO_WAIT_MS), then IO names the path; a slow writer is read to its end.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCsv } from '../lib/batch/csv.js';
import { MANIFEST_FIFO_WAIT_MS, MANIFEST_LIMITS, fifoWaitMs, readManifest, type ManifestFormat } from '../lib/batch/manifest.js';
import { scanLines } from '../lib/batch/lines.js';
import { LlavaRadError } from '../lib/errors.js';
import { MAX_REASON_BYTES, validateReason } from '../lib/options.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const VISION = path.join(here, 'fixtures', 'vision', 'tiny-vision-f32.gguf');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-manifest-limits-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Entry = Record<string, string | null>;

function csvCell(v: string | null): string {
  if (v === null) return '';
  return /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}

/** the entries as a manifest of the given format; returns its path */
function write(name: string, format: ManifestFormat, entries: Entry[]): string {
  const file = path.join(tmp, `${name}.${format}`);
  if (format === 'jsonl') writeFileSync(file, entries.map((e) => JSON.stringify(e)).join('\n') + '\n');
  else if (format === 'json') writeFileSync(file, JSON.stringify(entries));
  else {
    const cols = ['id', 'image', 'reason', 'reference'];
    writeFileSync(file, [cols.join(','), ...entries.map((e) => cols.map((c) => csvCell(e[c] ?? null)).join(','))].join('\r\n') + '\r\n');
  }
  return file;
}

function manifestError(file: string): LlavaRadError {
  try {
    readManifest(file);
  } catch (e) {
    expect(e).toBeInstanceOf(LlavaRadError);
    return e as LlavaRadError;
  }
  throw new Error(`${file} was accepted`);
}

/** the line (JSONL, CSV) or entry (JSON) number of the second study */
const secondAt = (format: ManifestFormat) => (format === 'csv' ? 3 : 2);

const ok: Entry = { id: 'ok', image: 'ok.png', reason: 'Cough.', reference: 'Clear lungs.' };

describe('manifest fields are bounded (JSONL, CSV, JSON)', () => {
  const L = MANIFEST_LIMITS;
  const cases: { field: string; max: number; at: string; over: string }[] = [
    { field: 'id', max: L.idBytes, at: 'i'.repeat(L.idBytes), over: 'i'.repeat(L.idBytes + 1) },
    { field: 'image', max: L.imageBytes, at: `${'d/'.repeat(L.imageBytes / 2 - 3)}ab.png`, over: `${'d/'.repeat(L.imageBytes / 2 - 3)}abc.png` },
    // two-byte characters: the limit counts UTF-8 bytes, not characters (2049 characters, 4098 bytes)
    { field: 'reason', max: L.reasonBytes, at: 'é'.repeat(L.reasonBytes / 2), over: `${'é'.repeat(L.reasonBytes / 2)}!` },
    { field: 'reference', max: L.referenceBytes, at: 'r'.repeat(L.referenceBytes), over: 'r'.repeat(L.referenceBytes + 1) },
  ];

  it('the documented limits', () => {
    expect(L).toMatchObject({ idBytes: 256, imageBytes: 4096, reasonBytes: 4096, referenceBytes: 65536, lineBytes: 1 << 20 });
    expect(MAX_REASON_BYTES).toBe(L.reasonBytes);
    for (const c of cases) {
      expect(Buffer.byteLength(c.at)).toBe(c.max);
      expect(Buffer.byteLength(c.over)).toBeGreaterThan(c.max);
    }
  });

  for (const format of ['jsonl', 'csv', 'json'] as const) {
    it(`${format}: a field at its limit is read; one byte over refuses the manifest with the line, the field and its length only`, () => {
      for (const c of cases) {
        const at = readManifest(write(`at-${c.field}`, format, [ok, { ...ok, id: 'two', [c.field]: c.at }]));
        const got = at.studies[1]!;
        expect(c.field === 'image' ? got.source : got[c.field as 'id' | 'reason' | 'reference']).toBe(c.at);

        const file = write(`over-${c.field}`, format, [ok, { ...ok, id: 'two', [c.field]: c.over }]);
        const e = manifestError(file);
        expect(e.code).toBe('BAD_MANIFEST');
        expect(e.message).toBe(`${file}:${secondAt(format)}: "${c.field}" must be at most ${c.max} bytes of UTF-8 ` +
          `(${{ id: 'an identifier', image: 'an image path', reason: 'a reason for the exam is a few sentences', reference: 'a findings section is a few KB' }[c.field]}), ` +
          `got ${Buffer.byteLength(c.over)} bytes`);
      }
    });
  }

  it('JSON: the annotation file\'s reference (the gpt turn) is bounded too; entries --mimic-test-filter drops are not checked', () => {
    const L2 = MANIFEST_LIMITS.referenceBytes;
    const entry = (id: string, view: string, ref: string) => ({
      id, image: `mimic/p/${id}.jpg`, reason: null, generate_method: 'gpt4', view,
      conversations: [{ from: 'human', value: '<image>\nq' }, { from: 'gpt', value: ref }],
    });
    const file = path.join(tmp, 'annotations.json');
    writeFileSync(file, JSON.stringify([entry('s1', 'PA', 'Clear.'), entry('s2', 'LATERAL', 'x'.repeat(L2 + 1))]));
    expect(manifestError(file).message).toMatch(/:2: "reference" must be at most 65536 bytes of UTF-8 .*got 65537 bytes$/);
    expect(readManifest(file, { mimicTestFilter: true }).studies.map((s) => s.id)).toEqual(['s1']);
  });
});

describe('one JSONL line / CSV record is bounded as it is read', () => {
  const max = MANIFEST_LIMITS.lineBytes;

  /** a JSONL line of exactly `bytes` bytes (a study with an ignored key padding it) */
  function jsonlLine(bytes: number): string {
    const head = '{"id":"two","image":"b.png","note":"';
    const line = head + 'n'.repeat(bytes - head.length - 2) + '"}';
    expect(Buffer.byteLength(line)).toBe(bytes);
    return line;
  }

  it('JSONL: a line of 1 MiB is read; one byte more is BAD_MANIFEST at its line, though the key is one that is ignored', () => {
    const first = JSON.stringify({ id: 'one', image: 'a.png' });
    const at = path.join(tmp, 'line-at.jsonl');
    writeFileSync(at, `${first}\n${jsonlLine(max)}\n`);
    expect(readManifest(at).studies.map((s) => s.id)).toEqual(['one', 'two']);
    const over = path.join(tmp, 'line-over.jsonl');
    writeFileSync(over, `${first}\n${jsonlLine(max + 1)}\n${first.replace('one', 'three')}\n`);
    const e = manifestError(over);
    expect(e.code).toBe('BAD_MANIFEST');
    expect(e.message).toBe(`${over}:2: a line longer than ${max} bytes (the most one study's line may be; MANIFEST_LIMITS.lineBytes)`);
    // the last line, without a newline, too
    writeFileSync(over, `${first}\n${jsonlLine(max + 1)}`);
    expect(manifestError(over).message).toMatch(/:2: a line longer than 1048576 bytes/);
  });

  it('CSV: a record of 1 MiB is read (a CRLF\'s CR not counted); one byte more is BAD_MANIFEST at its line; a quote left open says so', () => {
    const head = 'id,image,note\r\none,a.png,x\r\n';
    const rec = (bytes: number) => 'two,b.png,' + 'n'.repeat(bytes - 'two,b.png,'.length);
    const at = path.join(tmp, 'record-at.csv');
    writeFileSync(at, `${head}${rec(max)}\r\nthree,c.png,\r\n`);
    expect(readManifest(at).studies.map((s) => s.id)).toEqual(['one', 'two', 'three']);
    const over = path.join(tmp, 'record-over.csv');
    writeFileSync(over, `${head}${rec(max + 1)}\r\nthree,c.png,\r\n`);
    const e = manifestError(over);
    expect(e.code).toBe('BAD_MANIFEST');
    expect(e.message).toBe(`${over}:3: a record longer than ${max} bytes (the most one study's record may be; MANIFEST_LIMITS.lineBytes)`);
    // a quoted field may hold newlines: the record's bytes count across them
    const open = path.join(tmp, 'record-open-quote.csv');
    writeFileSync(open, `${head}two,b.png,"${'many lines\n'.repeat(Math.ceil(max / 11) + 1)}`);
    expect(manifestError(open).message).toBe(`${open}:3: a record longer than ${max} bytes (the most one study's record may be; MANIFEST_LIMITS.lineBytes): is a quote not closed?`);
    // a small unclosed quote is still named as such at the end of the file
    writeFileSync(open, `${head}two,b.png,"not closed\n`);
    expect(manifestError(open).message).toBe(`${open}:3: a quoted field is not closed`);
    expect(() => parseCsv('a,b\r\n"x,""y""\nz",\n', 11)).toThrow(/a record longer than 11 bytes/);
    expect(parseCsv('a,b\r\n"x,""y""\nz",\n', 12)).toEqual([{ line: 1, fields: ['a', 'b'] }, { line: 2, fields: ['x,"y"\nz', ''] }]);
  });

  it('messages never echo a long header or line', () => {
    const f = path.join(tmp, 'long-header.csv');
    writeFileSync(f, `name,${'h'.repeat(100_000)}\nx,y\n`);
    const e = manifestError(f);
    expect(e.message).toMatch(/the CSV header must name the columns id and image, got "name,h{35}"\.\.\. \(100005 characters\)$/);
    const j = path.join(tmp, 'not-json.jsonl');
    writeFileSync(j, `{"id":"a","image":"${'z'.repeat(500_000)}" oops}\n`);
    expect(manifestError(j).message.length).toBeLessThan(300);
  });

  it('scanLines (the predictions reader) has no limit unless asked', () => {
    const f = path.join(tmp, 'lines.txt');
    writeFileSync(f, `a\n${'b'.repeat(3 << 20)}\nc`);
    const seen: [number, number][] = [];
    expect(scanLines(f, (t, n) => seen.push([n, t.length]))).toEqual({ completeBytes: 2 + (3 << 20) + 1, tailBytes: 1 });
    expect(seen).toEqual([[1, 1], [2, 3 << 20]]);
    const last: number[] = [];
    scanLines(f, (t) => last.push(t.length), { lastLine: true });
    expect(last).toEqual([1, 3 << 20, 1]);
    expect(() => scanLines(f, () => {}, { maxLineBytes: 1 << 20 })).toThrow(/line 2 is longer than 1048576 bytes/);
  });
});

describe.skipIf(process.platform === 'win32')('a line without a newline is refused as it streams in, before the input ends', () => {
  /**
   * A FIFO fed by a child that writes `head` and then 8 MiB of "x" without a newline, and does not close it:
   * only after 20 s (a hang guard) does it write `closed` beside the FIFO and close, so a reader that waits
   * for the end of the line would see that file. The child stops when the reader closes the FIFO (EPIPE).
   */
  function feeder(name: string, head: string): { fifo: string; closed: string; child: ChildProcess } {
    const fifo = path.join(tmp, name);
    const closed = `${fifo}.closed`;
    const mk = spawnSync('mkfifo', [fifo]);
    expect(mk.status, String(mk.stderr)).toBe(0);
    const script = `
const fs = require('node:fs');
const fd = fs.openSync(${JSON.stringify(fifo)}, 'w');
try {
  fs.writeSync(fd, ${JSON.stringify(head)});
  const x = Buffer.alloc(1 << 20, 'x');
  for (let i = 0; i < 8; i++) fs.writeSync(fd, x);
} catch { process.exit(0); }
setTimeout(() => { fs.writeFileSync(${JSON.stringify(closed)}, 'closed'); fs.closeSync(fd); }, 20000);`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    return { fifo, closed, child };
  }

  it('JSONL: an unending reason', () => {
    const { fifo, closed, child } = feeder('endless-jsonl', '{"id":"a","image":"a.png"}\n{"id":"b","image":"b.png","reason":"');
    try {
      // no extension: the format is sniffed from the first bytes (JSONL)
      const e = manifestError(fifo);
      expect(e.code).toBe('BAD_MANIFEST');
      expect(e.message).toBe(`${fifo}:2: a line longer than ${MANIFEST_LIMITS.lineBytes} bytes (the most one study's line may be; MANIFEST_LIMITS.lineBytes)`);
      expect(existsSync(closed)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);

  it('CSV: a quote never closed', () => {
    const { fifo, closed, child } = feeder('endless-csv', 'id,image,reason\na,a.png,"');
    try {
      let e: unknown;
      try {
        readManifest(fifo, { format: 'csv' });
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(LlavaRadError);
      expect((e as LlavaRadError).code).toBe('BAD_MANIFEST');
      expect((e as LlavaRadError).message).toMatch(/endless-csv:2: a record longer than 1048576 bytes .*: is a quote not closed\?$/);
      expect(existsSync(closed)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});

describe.skipIf(process.platform === 'win32')('a named pipe as the manifest: its writer is waited for a bounded time', () => {
  const hooks = pathToFileURL(path.join(root, 'scripts', 'ts-hooks.mjs')).href;
  /** a shell word */
  const sh = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;

  function mkfifo(name: string): string {
    const fifo = path.join(tmp, name);
    const mk = spawnSync('mkfifo', [fifo]);
    expect(mk.status, String(mk.stderr)).toBe(0);
    return fifo;
  }

  /**
   * A hang guard: after `ms` a child opens the FIFO for writing and closes it at once, so a reader stuck in
   * a blocking open gets an empty input (and the test fails on what it read) rather than hanging vitest.
   */
  function guard(fifo: string, ms: number): ChildProcess {
    const script = `setTimeout(() => require('node:fs').closeSync(require('node:fs').openSync(${JSON.stringify(fifo)}, 'w')), ${ms});`;
    return spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  }

  /** whether this process has `file` open (its descriptors, as /proc/self/fd names them) */
  function holds(file: string): boolean {
    return readdirSync('/proc/self/fd').some((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === file;
      } catch {
        return false;
      }
    });
  }

  function errorOf(f: () => unknown): LlavaRadError {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(LlavaRadError);
      return e as LlavaRadError;
    }
    throw new Error('no error');
  }

  /** a shell writing `pieces` into the FIFO: it opens it after `openAfterS`, then sleeps `gapS` between pieces */
  function slowWriter(fifo: string, openAfterS: number, gapS: number, pieces: string[]): ChildProcess {
    const script = `sleep ${openAfterS}; exec 3>${sh(fifo)}; ${pieces.map((p) => `printf '%s' ${sh(p)} >&3`).join(`; sleep ${gapS}; `)}; exec 3>&-`;
    return spawn('sh', ['-c', script], { stdio: 'ignore' });
  }

  const valid = [
    '{"id":"s1","image":"a.png"}\n',
    '{"id":"s2","image":"b.png","reason":"Cough."}\n',
    '{"id":"s3","image":"c.png","reference":"Clear lungs."}',
  ];
  const expected = ['s1', 's2', 's3'];

  it('the wait: fifoWaitMs, else $LLAVA_RAD_FIFO_WAIT_MS, else 10 s; anything but a count of ms is INVALID_ARGUMENT', () => {
    expect(MANIFEST_FIFO_WAIT_MS).toBe(10_000);
    expect(fifoWaitMs({}, {})).toBe(10_000);
    expect(fifoWaitMs({}, { LLAVA_RAD_FIFO_WAIT_MS: '250' })).toBe(250);
    expect(fifoWaitMs({ fifoWaitMs: 0 }, { LLAVA_RAD_FIFO_WAIT_MS: '250' })).toBe(0);
    for (const bad of [{ fifoWaitMs: -1 }, { fifoWaitMs: Number.NaN }, { fifoWaitMs: '300' as unknown as number }]) {
      expect(errorOf(() => fifoWaitMs(bad, {})).code).toBe('INVALID_ARGUMENT');
    }
    const e = errorOf(() => fifoWaitMs({}, { LLAVA_RAD_FIFO_WAIT_MS: 'soon' }));
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.message).toMatch(/^LLAVA_RAD_FIFO_WAIT_MS must be a number of milliseconds >= 0/);
  });

  it('no process opens the FIFO for writing: IO naming it after the wait, the FIFO closed, the process reads on', () => {
    const fifo = mkfifo('no-writer.jsonl');
    const g = guard(fifo, 20_000);
    try {
      const t0 = performance.now();
      const e = errorOf(() => readManifest(fifo, { fifoWaitMs: 300 }));
      const ms = performance.now() - t0;
      expect(e.code).toBe('IO');
      expect(e.message).toBe(`cannot read the manifest ${fifo}: it is a named pipe that no process opened for writing within 0.3 s ` +
        '(or its writer closed it without writing anything); fifoWaitMs / LLAVA_RAD_FIFO_WAIT_MS sets the wait');
      expect(ms).toBeGreaterThanOrEqual(300); // it waited the whole bound
      expect(ms).toBeLessThan(15_000); // hang guard (the guard child would end a blocking open at 20 s)
      expect(holds(fifo)).toBe(false);
      // healthy after: a file is read, and so is the same FIFO once a process writes it
      expect(readManifest(write('after-fifo', 'jsonl', [ok])).studies.map((s) => s.id)).toEqual(['ok']);
      const w = slowWriter(fifo, 0, 0, valid);
      try {
        expect(readManifest(fifo, { fifoWaitMs: 10_000 }).studies.map((s) => s.id)).toEqual(expected);
      } finally {
        w.kill('SIGKILL');
      }
    } finally {
      g.kill('SIGKILL');
    }
  }, 60_000);

  it('a writer that comes after ~200 ms and writes slowly, in pieces split inside lines, is read to its end', () => {
    // no extension: the format is sniffed, past a first piece of blanks only
    const fifo = mkfifo('slow-writer');
    const g = guard(fifo, 30_000);
    const text = `\n${valid.join('')}`;
    const pieces = [text.slice(0, 1), text.slice(1, 12), text.slice(12, 40), text.slice(40, 70), text.slice(70, 71), text.slice(71)];
    expect(pieces.join('')).toBe(text);
    // the writer is done ~1.2 s after it opens, longer than the wait: once a writer is seen there is no time limit
    const w = slowWriter(fifo, 0.2, 0.2, pieces);
    try {
      const m = readManifest(fifo, { fifoWaitMs: 1000 });
      expect(m.format).toBe('jsonl');
      expect(m.studies.map((s) => [s.id, s.reason, s.reference])).toEqual([['s1', null, null], ['s2', 'Cough.', null], ['s3', null, 'Clear lungs.']]);
      expect(holds(fifo)).toBe(false);
    } finally {
      w.kill('SIGKILL');
      g.kill('SIGKILL');
    }
  }, 60_000);

  it('a slow writer still meets the line limit: an endless line is refused as it streams in', () => {
    const fifo = mkfifo('slow-endless.jsonl');
    const g = guard(fifo, 30_000);
    const w = spawn('sh', ['-c', `sleep 0.2; exec 3>${sh(fifo)}; printf '%s' ${sh(valid[0]!)} >&3; sleep 0.3; head -c 3000000 /dev/zero | tr '\\0' x >&3; exec sleep 30`], { stdio: 'ignore' });
    try {
      const e = errorOf(() => readManifest(fifo, { fifoWaitMs: 5000 }));
      expect(e.code).toBe('BAD_MANIFEST');
      expect(e.message).toBe(`${fifo}:2: a line longer than ${MANIFEST_LIMITS.lineBytes} bytes (the most one study's line may be; MANIFEST_LIMITS.lineBytes)`);
    } finally {
      w.kill('SIGKILL');
      g.kill('SIGKILL');
    }
  }, 60_000);

  it('process substitution (/dev/fd/N, an anonymous pipe): read to its end; an empty one ends at once, without the wait', () => {
    const script = path.join(tmp, 'read-manifest.mjs');
    writeFileSync(script, `import { readManifest } from ${JSON.stringify(pathToFileURL(path.join(root, 'lib', 'batch', 'manifest.ts')).href)};
try {
  const m = readManifest(process.argv[2]);
  console.log(JSON.stringify({ file: m.file, format: m.format, ids: m.studies.map((s) => s.id) }));
} catch (e) {
  console.log(JSON.stringify({ code: e.code, message: e.message }));
}`);
    const run = (producer: string) => {
      const r = spawnSync('bash', ['-c', `exec ${sh(process.execPath)} --import ${sh(hooks)} ${sh(script)} <(${producer})`], {
        encoding: 'utf8', timeout: 30_000, env: { ...process.env, LLAVA_RAD_FIFO_WAIT_MS: '60000' },
      });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout);
    };
    const got = run(`printf '%s' ${sh(valid[0]!)}; sleep 0.5; printf '%s' ${sh(valid[1]! + valid[2]!)}`);
    expect(got.file).toMatch(/^\/dev\/fd\/\d+$/);
    expect(got).toMatchObject({ format: 'jsonl', ids: expected });
    // nothing written: the writer is gone (an anonymous pipe's cannot come back), so it is the end, not a
    // wait of LLAVA_RAD_FIFO_WAIT_MS (60 s, past spawnSync's 30 s guard)
    expect(run('true')).toMatchObject({ code: 'BAD_MANIFEST', message: expect.stringMatching(/the CSV is empty/) });
  }, 90_000);

  it('llava-rad batch with a FIFO no process writes: exits 1 with IO after LLAVA_RAD_FIFO_WAIT_MS, before a model is loaded', () => {
    const fifo = mkfifo('cli-no-writer.jsonl');
    const g = guard(fifo, 40_000);
    const out = path.join(tmp, 'cli-fifo-out.jsonl');
    try {
      const r = spawnSync(process.execPath, ['--import', hooks, path.join(root, 'lib', 'cli.ts'),
        'batch', fifo, '--model', VISION, '--mmproj', VISION, '--out', out, '--quiet'],
      { cwd: tmp, encoding: 'utf8', timeout: 60_000, env: { ...process.env, LLAVA_RAD_FIFO_WAIT_MS: '300' } });
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/IO.*cli-no-writer\.jsonl: it is a named pipe that no process opened for writing within 0\.3 s/);
      expect(existsSync(out)).toBe(false);
      expect(existsSync(`${out}.lock`)).toBe(false);
    } finally {
      g.kill('SIGKILL');
    }
  }, 90_000);
});

describe('generateFindings\' reason: validateReason', () => {
  it('at most MAX_REASON_BYTES UTF-8 bytes; INVALID_ARGUMENT with the length, never the text', () => {
    expect(validateReason(undefined)).toBe(null);
    expect(validateReason(null)).toBe(null);
    expect(validateReason('')).toBe(null);
    expect(validateReason('Shortness of breath.')).toBe('Shortness of breath.');
    const at = 'é'.repeat(MAX_REASON_BYTES / 2);
    expect(validateReason(at)).toBe(at);
    for (const [over, bytes] of [[`${at}!`, MAX_REASON_BYTES + 1], ['x'.repeat(10 << 20), 10 << 20], ['\u{1F600}'.repeat(1025), 4100]] as const) {
      let e: unknown;
      try {
        validateReason(over);
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(LlavaRadError);
      expect((e as LlavaRadError).code).toBe('INVALID_ARGUMENT');
      expect((e as LlavaRadError).message).toBe(`reason must be at most 4096 bytes of UTF-8 (a reason for the exam is a few sentences), got a string of ${bytes} bytes`);
    }
    expect(() => validateReason(42)).toThrow(/reason must be a string, null or undefined, got 42/);
  });
});

describe('llava-rad batch with a reason over the limit', () => {
  it('exits 1 with BAD_MANIFEST before a model is loaded; no predictions file, a short message', () => {
    const manifest = write('cli-over', 'jsonl', [ok, { ...ok, id: 'two', reason: 'r'.repeat(MANIFEST_LIMITS.reasonBytes + 1) }]);
    const out = path.join(tmp, 'cli-out.jsonl');
    const r = spawnSync(process.execPath, ['--import', pathToFileURL(path.join(root, 'scripts', 'ts-hooks.mjs')).href, path.join(root, 'lib', 'cli.ts'),
      'batch', manifest, '--model', VISION, '--mmproj', VISION, '--out', out, '--quiet'], { cwd: tmp, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/BAD_MANIFEST.*cli-over\.jsonl:2: "reason" must be at most 4096 bytes of UTF-8 .*got 4097 bytes/);
    expect(r.stderr.length).toBeLessThan(1000);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.lock`)).toBe(false);
    expect(readFileSync(manifest, 'utf8').length).toBeGreaterThan(4097);
  }, 60_000);
});
