// The input of `evaluate`: JSONL lines with a reference and a prediction. Both the official evaluation's
// records ({id, query, reference, prediction}) and `llava-rad batch` records ({id, findings, reference?,
// prediction?, error?}) are accepted; a record with an `error` (a study that failed) is skipped and
// counted. Anything else is a BAD_PREDICTIONS error naming the file, the line and what was expected.
//
// A reference or prediction may hold at most MAX_TEXT_BYTES (a manifest's reference limit): ROUGE-L's longest
// common subsequence is quadratic in the words, so one record of two 256 KB texts took 9 s and of two 4 MB ones
// would take about 40 minutes; a findings section is a few KB.

import { existsSync, statSync } from 'node:fs';
import { LineTooLongError, scanLines } from '../batch/lines.js';
import { MANIFEST_LIMITS } from '../batch/manifest.js';
import { MAX_RECORD_BYTES } from '../batch/record.js';
import { describeValue, LlavaRadError } from '../errors.js';

/** the most bytes of UTF-8 a reference or a prediction may hold */
export const MAX_TEXT_BYTES = MANIFEST_LIMITS.referenceBytes;

function checkLength(where: string, field: string, text: string): void {
  // a UTF-16 string's UTF-8 bytes are at most 3 per unit: only a long one needs counting
  if (text.length * 3 <= MAX_TEXT_BYTES) return;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_TEXT_BYTES) {
    throw new LlavaRadError('BAD_PREDICTIONS', `${where}: the ${field} has ${bytes} bytes; at most ${MAX_TEXT_BYTES} are scored (a findings section has a few thousand)`);
  }
}

/** one record as a caller may pass it to evaluate() */
export interface EvalRecord {
  id?: string;
  reference?: string;
  /** the official evaluation's field */
  prediction?: string;
  /** `llava-rad batch`'s field (used when `prediction` is absent) */
  findings?: string;
  /** a failed study (batch): skipped */
  error?: unknown;
}

/** a record ready to score */
export interface ScoredPair {
  id: string | undefined;
  reference: string;
  prediction: string;
}

export interface ReadPredictions {
  pairs: ScoredPair[];
  /** records with an `error` (failed studies), not scored */
  skipped: number;
  /** scored records whose id an earlier scored record has (see repeatedIds) */
  repeated: RepeatedIds;
  /**
   * the file's last line, without a newline, was not JSON and was left out: a record being written (a batch
   * still appending), as batch and merge treat it; an unparsable line anywhere else is BAD_PREDICTIONS
   */
  tornLastLine: boolean;
}

export interface RepeatedIds {
  /** how many */
  count: number;
  /** the first id scored more than once */
  first?: string;
}

/**
 * Scored records whose id an earlier scored record has: a study scored twice (files of two runs joined, say).
 * Each is scored, as the official evaluation scores every row; `llava-rad merge` keeps one record per study.
 */
export function repeatedIds(pairs: readonly ScoredPair[]): RepeatedIds {
  const seen = new Set<string>();
  let count = 0;
  let first: string | undefined;
  for (const p of pairs) {
    if (p.id === undefined) continue;
    if (seen.has(p.id)) {
      count++;
      first ??= p.id;
    } else {
      seen.add(p.id);
    }
  }
  return first === undefined ? { count } : { count, first };
}

/** checks one parsed record; `where` names it in errors ("FILE line 3", "record 2") */
export function toPair(rec: unknown, where: string): ScoredPair | null {
  if (rec === null || typeof rec !== 'object' || Array.isArray(rec)) {
    throw new LlavaRadError('BAD_PREDICTIONS', `${where}: expected a JSON object with "reference" and "prediction" (or "findings"), got ${describeValue(rec)}`);
  }
  const r = rec as Record<string, unknown>;
  if (r.error !== undefined && r.error !== null) return null;
  if (typeof r.reference !== 'string') {
    throw new LlavaRadError('BAD_PREDICTIONS', `${where}: expected a string "reference" (the ground-truth findings; batch writes it when the manifest has a reference), got ${describeValue(r.reference)}`);
  }
  const prediction = r.prediction !== undefined ? r.prediction : r.findings;
  if (typeof prediction !== 'string') {
    const field = r.prediction !== undefined ? '"prediction"' : '"prediction" or "findings"';
    throw new LlavaRadError('BAD_PREDICTIONS', `${where}: expected a string ${field}, got ${describeValue(prediction)}`);
  }
  checkLength(where, 'reference', r.reference);
  checkLength(where, r.prediction !== undefined ? 'prediction' : 'findings', prediction);
  if (r.id !== undefined && typeof r.id !== 'string' && typeof r.id !== 'number') {
    throw new LlavaRadError('BAD_PREDICTIONS', `${where}: expected "id" to be a string, got ${describeValue(r.id)}`);
  }
  return { id: r.id === undefined ? undefined : String(r.id), reference: r.reference, prediction };
}

/** reads a predictions JSONL file (blank lines are ignored), a line at a time */
export function readPredictions(path: string): ReadPredictions {
  if (!existsSync(path)) throw new LlavaRadError('IO', `predictions file not found: ${path}`);
  if (!statSync(path).isFile()) throw new LlavaRadError('IO', `predictions must be a file: ${path}`);
  const pairs: ScoredPair[] = [];
  let skipped = 0;
  // a line that is not JSON: an error unless it turns out to be the unterminated last line
  let notJson: LlavaRadError | null = null;
  let tornLastLine = false;
  try {
    const scan = scanLines(path, (text, n) => {
      if (notJson) throw notJson;
      let line = text.replace(/\r$/, '');
      if (n === 1 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
      if (line.trim() === '') return;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        notJson = new LlavaRadError('BAD_PREDICTIONS', `${path} line ${n}: not JSON (${why}); expected one JSON object per line`);
        return;
      }
      const pair = toPair(rec, `${path} line ${n}`);
      if (pair === null) skipped++;
      else pairs.push(pair);
    }, { maxLineBytes: MAX_RECORD_BYTES, lastLine: true });
    if (notJson) {
      if (scan.tailBytes === 0) throw notJson;
      tornLastLine = true;
    }
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    if (e instanceof LineTooLongError) {
      throw new LlavaRadError('BAD_PREDICTIONS', `${path} line ${e.line}: longer than ${MAX_RECORD_BYTES >> 20} MiB; expected one JSON object per line (a reference or prediction has at most ${MAX_TEXT_BYTES} bytes)`);
    }
    throw new LlavaRadError('IO', `cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return { pairs, skipped, repeated: repeatedIds(pairs), tornLastLine };
}

/** the pairs of records given in memory */
export function pairsOf(records: readonly EvalRecord[]): ReadPredictions {
  if (!Array.isArray(records)) throw new LlavaRadError('INVALID_ARGUMENT', `records must be an array or a file path, got ${describeValue(records)}`);
  const pairs: ScoredPair[] = [];
  let skipped = 0;
  records.forEach((rec, i) => {
    const pair = toPair(rec, `record ${i}`);
    if (pair === null) skipped++;
    else pairs.push(pair);
  });
  return { pairs, skipped, repeated: repeatedIds(pairs), tornLastLine: false };
}
