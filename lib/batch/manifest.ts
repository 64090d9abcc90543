// Batch manifests: the studies to run. Three forms, one study per entry with `id`, `image`, optional
// `reason` (indication) and optional `reference` (the radiologist's findings, for evaluation):
//   - JSONL: one JSON object per line;
//   - CSV: a header row naming the columns (id, image, reason, reference; other columns are ignored);
//   - JSON: an array of such objects, or the LLaVA-Rad annotation file (chat_test_MIMIC_CXR_*.json), whose
//     entries are {id, image, reason, conversations: [{from: 'human', ...}, {from: 'gpt', value: REFERENCE}]}.
// Relative image paths resolve against --image-root, or else the manifest's own folder.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { LlavaRadError, describeValue } from '../errors.js';
import { CsvSyntaxError, parseCsv } from './csv.js';

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
}

export interface Manifest {
  file: string;
  format: ManifestFormat;
  studies: Study[];
  /** entries left out by mimicTestFilter */
  filtered: number;
}

interface RawEntry {
  line: number;
  obj: Record<string, unknown>;
}

function bad(file: string, line: number | null, msg: string): LlavaRadError {
  return new LlavaRadError('BAD_MANIFEST', `${file}${line === null ? '' : `:${line}`}: ${msg}`);
}

export function detectFormat(file: string, text: string): ManifestFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.csv') return 'csv';
  if (ext === '.json') return 'json';
  const first = text.replace(/^\uFEFF/, '').trimStart()[0];
  return first === '[' ? 'json' : first === '{' ? 'jsonl' : 'csv';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function rawEntries(file: string, text: string, format: ManifestFormat): RawEntry[] {
  if (format === 'jsonl') {
    const out: RawEntry[] = [];
    text.replace(/^\uFEFF/, '').split('\n').forEach((l, i) => {
      if (l.trim() === '') return;
      let v: unknown;
      try {
        v = JSON.parse(l);
      } catch (e) {
        throw bad(file, i + 1, `not JSON (${(e as Error).message})`);
      }
      if (!isObject(v)) throw bad(file, i + 1, `each line must be a JSON object, got ${describeValue(v)}`);
      out.push({ line: i + 1, obj: v });
    });
    return out;
  }
  if (format === 'json') {
    let v: unknown;
    try {
      v = JSON.parse(text.replace(/^\uFEFF/, ''));
    } catch (e) {
      throw bad(file, null, `not JSON (${(e as Error).message})`);
    }
    if (!Array.isArray(v)) throw bad(file, null, `a JSON manifest must be an array of studies, got ${describeValue(v)}`);
    return v.map((o, i) => {
      if (!isObject(o)) throw bad(file, i + 1, `entry ${i + 1} must be an object, got ${describeValue(o)}`);
      return { line: i + 1, obj: o };
    });
  }
  let rows;
  try {
    rows = parseCsv(text);
  } catch (e) {
    if (e instanceof CsvSyntaxError) throw bad(file, e.line, e.message);
    throw e;
  }
  const header = rows.shift();
  if (!header) throw bad(file, null, 'the CSV is empty (expected a header row: id,image[,reason][,reference])');
  const names = header.fields.map((f) => f.trim().toLowerCase());
  for (const need of ['id', 'image']) {
    if (!names.includes(need)) throw bad(file, header.line, `the CSV header must name the columns id and image, got ${JSON.stringify(header.fields.join(','))}`);
  }
  return rows.map((r) => {
    if (r.fields.length !== names.length) throw bad(file, r.line, `expected ${names.length} fields as in the header, got ${r.fields.length}`);
    const obj: Record<string, unknown> = {};
    names.forEach((n, i) => {
      const v = r.fields[i]!;
      // an empty reason / reference cell means "none"
      obj[n] = v === '' && n !== 'id' && n !== 'image' ? null : v;
    });
    return { line: r.line, obj };
  });
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
  const image = o.image;
  if (typeof image !== 'string' || image.trim() === '') throw bad(file, e.line, `"image" must be a non-empty path, got ${describeValue(o.image)}`);
  let source = image;
  if (mimic && source.startsWith('mimic/')) source = source.slice('mimic/'.length);
  const reason = o.reason ?? null;
  if (reason !== null && typeof reason !== 'string') throw bad(file, e.line, `"reason" must be a string or null, got ${describeValue(reason)}`);
  const reference = referenceOf(o) ?? null;
  if (reference !== null && typeof reference !== 'string') throw bad(file, e.line, `"reference" must be a string or null, got ${describeValue(reference)}`);
  return { id, image: path.resolve(root, source), source, reason: reason === '' ? null : reason, reference, line: e.line };
}

/** Reads and checks a manifest. Throws BAD_MANIFEST (with the line) or IO. */
export function readManifest(file: string, options: ManifestOptions = {}): Manifest {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new LlavaRadError('IO', `cannot read the manifest ${file}: ${(e as Error).message}`);
  }
  const format = options.format ?? detectFormat(file, text);
  let entries = rawEntries(file, text, format);
  const before = entries.length;
  if (options.mimicTestFilter) entries = entries.filter((e) => keepOfficialTest(e.obj));
  const root = path.resolve(options.imageRoot ?? path.dirname(file));
  const studies = entries.map((e) => toStudy(file, e, root, options.mimicTestFilter === true));
  const seen = new Map<string, number>();
  for (const s of studies) {
    const prev = seen.get(s.id);
    if (prev !== undefined) {
      const hint = format === 'json' && !options.mimicTestFilter ? ' (annotation files hold a study more than once; --mimic-test-filter keeps the official test set)' : '';
      throw bad(file, s.line, `duplicate id ${JSON.stringify(s.id)} (first at ${prev})${hint}`);
    }
    seen.set(s.id, s.line);
  }
  return { file, format, studies, filtered: before - entries.length };
}
