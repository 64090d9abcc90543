// Issue #20 item 7: every manifest field is bounded when the manifest is read (id 256, image 4096, reason
// 4096, reference 65536 UTF-8 bytes; a JSONL line or CSV record 1 MiB), so a hostile 100 MB reason is never
// tokenized nor copied into a record. A field just over its limit proves what a 100 MB one would: the whole
// manifest is refused up front (BAD_MANIFEST with the line, the field and its length, never its contents).
// A line without a newline is refused as it streams in: a FIFO whose writer never closes shows the error
// comes before the end of the input. generateFindings' reason check (validateReason) is the same limit.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCsv } from '../lib/batch/csv.js';
import { MANIFEST_LIMITS, readManifest, type ManifestFormat } from '../lib/batch/manifest.js';
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
    expect(() => validateReason(42)).toThrow(/reason must be a string, null or undefined, got number/);
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
