// Batch manifests: the studies to run. Three forms, one study per entry with `id`, `image`, optional
// `reason` (indication) and optional `reference` (the radiologist's findings, for evaluation):
//   - JSONL: one JSON object per line;
//   - CSV: a header row naming the columns (id, image, reason, reference; other columns are ignored);
//   - JSON: an array of such objects, or the LLaVA-Rad annotation file (chat_test_MIMIC_CXR_*.json), whose
//     entries are {id, image, reason, conversations: [{from: 'human', ...}, {from: 'gpt', value: REFERENCE}]}.
// Relative image paths resolve against --image-root, or else the manifest's own folder.
//
// Limits (MANIFEST_LIMITS): every field a study's records copy is bounded (UTF-8 bytes: id 256, image path
// 4096, reason 4096 = MAX_REASON_BYTES, which options.ts's validateReason also applies for generateFindings,
// reference 65536), and so is one JSONL line or CSV record (1 MiB; the keys or columns that are ignored are
// bounded by it). JSONL and CSV are read in 1 MiB chunks and a line / record is refused as soon as it passes
// the limit, so a line without a newline is never buffered whole. Any entry over a limit fails the whole
// manifest up front with BAD_MANIFEST naming the line, the field and its length (never its contents), before
// a model is loaded or a study run, as every other malformed entry does: a batch of thousands of studies
// stops in a second with the line to fix rather than after hours, and no record ever holds a truncated reason
// or image path. A JSON manifest is one JSON text: it is read whole (at most 1 GiB) and its entries' fields
// are bounded the same.
//
// Named pipes: a manifest may be a FIFO (mkfifo, fed by another process) or a shell's process substitution
// (`--manifest <(make-manifest)` passes /dev/fd/63, a pipe). The manifest is opened non-blocking, so a FIFO
// that no process ever opens for writing cannot hold the reader (nor the process's exit) forever: its first
// writer is waited for at most fifoWaitMs (default 10 s, LLAVA_RAD_FIFO_WAIT_MS), then IO names the path.
// Once a writer is seen the pipe is read to its end with no time limit, under the same line / record limits.
// An anonymous pipe (/dev/fd/N, /proc/self/fd/N) has its writer from the start: an empty one ends at once.

import { closeSync, constants, fstatSync, openSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { LlavaRadError, describeValue } from '../errors.js';
import { MAX_REASON_BYTES } from '../options.js';
import { CsvParser, CsvRecordTooLongError, CsvSyntaxError, type CsvRow } from './csv.js';
import { CHUNK_BYTES, ChunkSource, LineSplitter, LineTooLongError, NoWriterError } from './lines.js';

/** Most UTF-8 bytes of each manifest field, and of one JSONL line / CSV record. */
export const MANIFEST_LIMITS = {
  /** a study id */
  idBytes: 256,
  /** an image path as the manifest gives it (Linux's PATH_MAX) */
  imageBytes: 4096,
  /** the reason for the exam (indication): a few sentences */
  reasonBytes: MAX_REASON_BYTES,
  /** the radiologist's findings, for evaluation (MIMIC-CXR's run to a few KB) */
  referenceBytes: 65536,
  /** one JSONL line or CSV record, without its newline */
  lineBytes: 1 << 20,
  /** a JSON manifest (one JSON text, read whole) */
  jsonBytes: 1 << 30,
} as const;

const FIELD_WHY = {
  id: 'an identifier',
  image: 'an image path',
  reason: 'a reason for the exam is a few sentences',
  reference: 'a findings section is a few KB',
} as const;

export type ManifestFormat = 'jsonl' | 'csv' | 'json';
export const MANIFEST_FORMATS: readonly ManifestFormat[] = ['jsonl', 'csv', 'json'];

export interface Study {
  id: string;
  /** the image path to read (resolved) */
  image: string;
  /** the image path as the manifest names it */
  source: string;
  reason: string | null;
  reference: string | null;
  /** 1-based line (JSONL, CSV) or entry index (JSON) in the manifest, for messages */
  line: number;
}

export interface ManifestOptions {
  /** default: from the extension (.jsonl/.ndjson, .csv, .json), else sniffed from the first character */
  format?: ManifestFormat;
  /** folder that relative image paths are under (default: the manifest's folder) */
  imageRoot?: string;
  /**
   * keep only what the official evaluation's `mimic_test_findings` loader keeps (generate_method "gpt4",
   * view AP or PA, a reference that is a string) and drop a leading "mimic/" from image paths, as it does
   */
  mimicTestFilter?: boolean;
  /**
   * a named pipe's first writer is waited for this long (ms), then the read fails with IO (default:
   * $LLAVA_RAD_FIFO_WAIT_MS, else MANIFEST_FIFO_WAIT_MS); once a writer is seen there is no time limit
   */
  fifoWaitMs?: number;
  /**
   * which studies to hold (a shard's: `(id) => inShard(id, shard)`); the others are still checked, duplicates
   * included, but not kept, so a job that runs a part of a large manifest holds only that part (and an id per
   * study of the rest)
   */
  keep?: (id: string) => boolean;
}

/** How long (ms) a named-pipe manifest's first writer is waited for, unless fifoWaitMs / LLAVA_RAD_FIFO_WAIT_MS say. */
export const MANIFEST_FIFO_WAIT_MS = 10_000;

/** fifoWaitMs, else $LLAVA_RAD_FIFO_WAIT_MS, else MANIFEST_FIFO_WAIT_MS; INVALID_ARGUMENT when not a count of ms */
export function fifoWaitMs(options: ManifestOptions = {}, env: NodeJS.ProcessEnv = process.env): number {
  const check = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new LlavaRadError('INVALID_ARGUMENT', `${what} must be a number of milliseconds >= 0, got ${describeValue(v)}`);
    }
    return v;
  };
  if (options.fifoWaitMs !== undefined) return check(options.fifoWaitMs, 'fifoWaitMs');
  const e = env.LLAVA_RAD_FIFO_WAIT_MS;
  if (e !== undefined && e.trim() !== '') return check(/^\s*\d+(\.\d+)?\s*$/.test(e) ? Number(e) : e, 'LLAVA_RAD_FIFO_WAIT_MS');
  return MANIFEST_FIFO_WAIT_MS;
}

export interface Manifest {
  file: string;
  format: ManifestFormat;
  studies: Study[];
  /** entries left out by mimicTestFilter */
  filtered: number;
  /** studies checked but left out by `keep` */
  notKept: number;
}

interface RawEntry {
  line: number;
  obj: Record<string, unknown>;
}

function bad(file: string, line: number | null, msg: string): LlavaRadError {
  return new LlavaRadError('BAD_MANIFEST', `${file}${line === null ? '' : `:${line}`}: ${msg}`);
}

function formatOfExtension(file: string): ManifestFormat | null {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.json') return 'json';
  return null;
}

export function detectFormat(file: string, text: string): ManifestFormat {
  const byExt = formatOfExtension(file);
  if (byExt) return byExt;
  const first = text.replace(/^\uFEFF/, '').trimStart()[0];
  return first === '[' ? 'json' : first === '{' ? 'jsonl' : 'csv';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** a short quote of text for messages: at most 40 characters, else its start and its length */
function clip(text: string): string {
  return text.length <= 40 ? JSON.stringify(text) : `${JSON.stringify(text.slice(0, 40))}... (${text.length} characters)`;
}

function jsonlEntry(file: string, text: string, line: number, onEntry: (e: RawEntry) => void): void {
  if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.trim() === '') return;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(file, line, `not JSON (${(e as Error).message})`);
  }
  if (!isObject(v)) throw bad(file, line, `each line must be a JSON object, got ${describeValue(v)}`);
  onEntry({ line, obj: v });
}

/** Turns CSV rows (the header first) into entries, one row at a time. */
class CsvEntries {
  names: string[] | null = null;
  constructor(readonly file: string, readonly onEntry: (e: RawEntry) => void) {}

  row(r: CsvRow): void {
    const file = this.file;
    if (this.names === null) {
      const names = r.fields.map((f) => f.trim().toLowerCase());
      for (const need of ['id', 'image']) {
        if (!names.includes(need)) throw bad(file, r.line, `the CSV header must name the columns id and image, got ${clip(r.fields.join(','))}`);
      }
      this.names = names;
      return;
    }
    const names = this.names;
    if (r.fields.length !== names.length) throw bad(file, r.line, `expected ${names.length} fields as in the header, got ${r.fields.length}`);
    const obj: Record<string, unknown> = {};
    names.forEach((n, i) => {
      const v = r.fields[i]!;
      // an empty reason / reference cell means "none"
      obj[n] = v === '' && n !== 'id' && n !== 'image' ? null : v;
    });
    this.onEntry({ line: r.line, obj });
  }

  end(): void {
    if (this.names === null) throw bad(this.file, null, 'the CSV is empty (expected a header row: id,image[,reason][,reference])');
  }
}

function jsonEntries(file: string, text: string, onEntry: (e: RawEntry) => void): void {
  let v: unknown;
  try {
    v = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (e) {
    throw bad(file, null, `not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(v)) throw bad(file, null, `a JSON manifest must be an array of studies, got ${describeValue(v)}`);
  v.forEach((o, i) => {
    if (!isObject(o)) throw bad(file, i + 1, `entry ${i + 1} must be an object, got ${describeValue(o)}`);
    onEntry({ line: i + 1, obj: o });
  });
}

/** IO for a failed read; a named pipe that no process opened for writing says so */
function readError(file: string, e: unknown): LlavaRadError {
  if (e instanceof NoWriterError) {
    return new LlavaRadError('IO', `cannot read the manifest ${file}: it is a named pipe that no process opened for writing within ` +
      `${e.waitMs / 1000} s (or its writer closed it without writing anything); fifoWaitMs / LLAVA_RAD_FIFO_WAIT_MS sets the wait`);
  }
  return new LlavaRadError('IO', `cannot read the manifest ${file}: ${(e as Error).message}`);
}

/**
 * Hands the entries from `src` (its first bytes already read: `first`) to `onEntry` in order. JSONL and CSV
 * stream with the line / record limit; JSON is read whole up to MANIFEST_LIMITS.jsonBytes.
 */
function rawEntries(file: string, src: ChunkSource, first: Buffer, format: ManifestFormat, onEntry: (e: RawEntry) => void): void {
  const L = MANIFEST_LIMITS;
  const read = (onChunk: (chunk: Buffer) => void) => {
    if (first.length === 0) return;
    onChunk(first);
    for (;;) {
      let chunk: Buffer | null;
      try {
        chunk = src.next();
      } catch (e) {
        throw readError(file, e);
      }
      if (chunk === null) return;
      onChunk(chunk);
    }
  };
  if (format === 'jsonl') {
    const lines = new LineSplitter((text, line) => jsonlEntry(file, text, line, onEntry), L.lineBytes);
    try {
      read((chunk) => lines.push(chunk));
      lines.end(true);
    } catch (e) {
      if (e instanceof LineTooLongError) throw bad(file, e.line, `a line longer than ${L.lineBytes} bytes (the most one study's line may be; MANIFEST_LIMITS.lineBytes)`);
      throw e;
    }
    return;
  }
  if (format === 'csv') {
    const entries = new CsvEntries(file, onEntry);
    const csv = new CsvParser((r) => entries.row(r), L.lineBytes);
    try {
      read((chunk) => csv.push(chunk));
      csv.end();
    } catch (e) {
      if (e instanceof CsvRecordTooLongError) {
        throw bad(file, e.line, `a record longer than ${e.limit} bytes (the most one study's record may be; MANIFEST_LIMITS.lineBytes)${e.inQuotes ? ': is a quote not closed?' : ''}`);
      }
      if (e instanceof CsvSyntaxError) throw bad(file, e.line, e.message);
      throw e;
    }
    entries.end();
    return;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  read((chunk) => {
    total += chunk.length;
    if (total > L.jsonBytes) throw bad(file, null, `a JSON manifest larger than ${L.jsonBytes} bytes (MANIFEST_LIMITS.jsonBytes): give the studies as JSONL, which is read line by line`);
    chunks.push(Buffer.from(chunk));
  });
  let text: string;
  try {
    text = Buffer.concat(chunks, total).toString('utf8');
  } catch (e) {
    throw bad(file, null, `too large to read as one JSON text (${total} bytes: ${(e as Error).message}): give the studies as JSONL`);
  }
  jsonEntries(file, text, onEntry);
}

/** "field" must be at most `max` UTF-8 bytes; says the length, never the contents */
function bounded(file: string, line: number, field: keyof typeof FIELD_WHY, value: string, max: number): void {
  // UTF-8 never takes fewer bytes than UTF-16 code units, so a short string needs no count
  if (value.length * 3 <= max) return;
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes > max) throw bad(file, line, `"${field}" must be at most ${max} bytes of UTF-8 (${FIELD_WHY[field]}), got ${bytes} bytes`);
}

function referenceOf(o: Record<string, unknown>): unknown {
  if ('reference' in o) return o.reference;
  if (!Array.isArray(o.conversations)) return null;
  const gpt = o.conversations.find((c) => isObject(c) && c.from === 'gpt') as Record<string, unknown> | undefined;
  // the official loaders skip entries whose findings are not a string (NaN in the source table)
  return gpt && typeof gpt.value === 'string' ? gpt.value : null;
}

function keepOfficialTest(o: Record<string, unknown>): boolean {
  return o.generate_method === 'gpt4' && typeof referenceOf(o) === 'string' && (o.view === 'AP' || o.view === 'PA');
}

function toStudy(file: string, e: RawEntry, root: string, mimic: boolean): Study {
  const o = e.obj;
  const id = typeof o.id === 'number' && Number.isSafeInteger(o.id) ? String(o.id) : o.id;
  if (typeof id !== 'string' || id.trim() === '') throw bad(file, e.line, `"id" must be a non-empty string, got ${describeValue(o.id)}`);
  bounded(file, e.line, 'id', id, MANIFEST_LIMITS.idBytes);
  const image = o.image;
  if (typeof image !== 'string' || image.trim() === '') throw bad(file, e.line, `"image" must be a non-empty path, got ${describeValue(o.image)}`);
  bounded(file, e.line, 'image', image, MANIFEST_LIMITS.imageBytes);
  let source = image;
  if (mimic && source.startsWith('mimic/')) source = source.slice('mimic/'.length);
  const reason = o.reason ?? null;
  if (reason !== null && typeof reason !== 'string') throw bad(file, e.line, `"reason" must be a string or null, got ${describeValue(reason)}`);
  if (reason !== null) bounded(file, e.line, 'reason', reason, MANIFEST_LIMITS.reasonBytes);
  const reference = referenceOf(o) ?? null;
  if (reference !== null && typeof reference !== 'string') throw bad(file, e.line, `"reference" must be a string or null, got ${describeValue(reference)}`);
  if (reference !== null) bounded(file, e.line, 'reference', reference, MANIFEST_LIMITS.referenceBytes);
  return { id, image: path.resolve(root, source), source, reason: reason === '' ? null : reason, reference, line: e.line };
}

/** whether `file` is a link to an anonymous pipe (/dev/fd/N, /proc/self/fd/N on Linux: "pipe:[inode]") */
function anonymousPipe(file: string): boolean {
  try {
    return readlinkSync(file).startsWith('pipe:');
  } catch {
    return false;
  }
}

/**
 * Reads and checks a manifest (a file, or a named pipe: see fifoWaitMs). Throws BAD_MANIFEST (with the
 * line), IO, or INVALID_ARGUMENT (fifoWaitMs).
 */
export function readManifest(file: string, options: ManifestOptions = {}): Manifest {
  const waitMs = fifoWaitMs(options);
  // the options are checked before the open, which nothing would close after a throw
  const keep = options.keep;
  if (keep !== undefined && typeof keep !== 'function') throw new LlavaRadError('INVALID_ARGUMENT', `keep must be a function of a study id, got ${describeValue(keep)}`);
  if (options.imageRoot !== undefined && typeof options.imageRoot !== 'string') throw new LlavaRadError('INVALID_ARGUMENT', `imageRoot must be a folder path, got ${describeValue(options.imageRoot)}`);
  const mimic = options.mimicTestFilter === true;
  const root = path.resolve(options.imageRoot ?? path.dirname(file));
  let fd: number;
  try {
    // non-blocking: a FIFO's open does not wait for a writer (ChunkSource does, a bounded time); no
    // effect on a regular file
    fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw new LlavaRadError('IO', `cannot read the manifest ${file}: ${(e as Error).message}`);
  }
  // every id, for duplicates across the whole manifest (also those a `keep` leaves out: a shard refuses a
  // manifest the others refuse); only the studies kept are held whole
  const seen = new Map<string, number>();
  const studies: Study[] = [];
  let filtered = 0;
  let notKept = 0;
  let format: ManifestFormat | undefined;
  const onEntry = (e: RawEntry) => {
    if (mimic && !keepOfficialTest(e.obj)) {
      filtered++;
      return;
    }
    const study = toStudy(file, e, root, mimic);
    const prev = seen.get(study.id);
    if (prev !== undefined) {
      const hint = format === 'json' && !mimic ? ' (annotation files hold a study more than once; --mimic-test-filter keeps the official test set)' : '';
      throw bad(file, study.line, `duplicate id ${JSON.stringify(study.id)} (first at ${prev})${hint}`);
    }
    seen.set(study.id, study.line);
    if (keep === undefined || keep(study.id)) studies.push(study);
    else notKept++;
  };
  try {
    let src: ChunkSource;
    try {
      const fifo = fstatSync(fd).isFIFO();
      src = new ChunkSource(fd, { fifo, writerWaitMs: waitMs, writerSeen: fifo && anonymousPipe(file) });
    } catch (e) {
      throw readError(file, e);
    }
    // the first bytes name the format when the extension does not (works on a pipe: nothing is read twice);
    // a slow writer's first bytes may be blanks only, so they are read until a character that is not
    const sniff = options.format === undefined && formatOfExtension(file) === null;
    const parts: Buffer[] = [];
    let total = 0;
    try {
      for (let c = src.next(); c !== null; c = sniff && total < CHUNK_BYTES ? src.next() : null) {
        parts.push(Buffer.from(c));
        total += c.length;
        if (c.toString('utf8').replace(/^\uFEFF/, '').trimStart() !== '') break;
      }
    } catch (e) {
      throw readError(file, e);
    }
    const first = Buffer.concat(parts, total);
    format = options.format ?? detectFormat(file, first.toString('utf8'));
    rawEntries(file, src, first, format, onEntry);
  } finally {
    closeSync(fd);
  }
  return { file, format, studies, filtered, notKept };
}
