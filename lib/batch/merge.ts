// Merging predictions files (the shards of one job): the last record per id within a file; across files
// a successful record wins over a failed one, then the later one. Every record must come from the same
// model (GGUF sha256) and settings. The result is written atomically (temporary file, fsync, rename).

import { randomBytes } from 'node:crypto';
import { closeSync, constants, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { LlavaRadError } from '../errors.js';
import { fsyncDir, readPredictions } from './journal.js';
import { identityKey, type PredictionRecord } from './record.js';

export interface MergeOptions {
  inputs: string[];
  /** the manifest's ids in order: the output follows it, and ids it lacks are reported missing */
  manifestIds?: string[];
  /** leave failed records out (the official metric scripts need a prediction on every line) */
  dropFailed?: boolean;
}

export interface MergeResult {
  records: PredictionRecord[];
  ok: number;
  failed: number;
  /** failed records left out by dropFailed */
  dropped: number;
  /** ids present in more than one input */
  duplicates: string[];
  /** manifest ids with no record */
  missing: string[];
  /** ids not in the manifest (kept) */
  extra: string[];
  /** inputs whose damaged last line was ignored */
  damaged: { file: string; why: string }[];
}

function better(a: PredictionRecord, b: PredictionRecord): PredictionRecord {
  const aOk = a.error === undefined;
  const bOk = b.error === undefined;
  if (aOk !== bOk) return aOk ? a : b;
  return b.finished_at > a.finished_at ? b : a;
}

export function mergePredictions(o: MergeOptions): MergeResult {
  const merged = new Map<string, PredictionRecord>();
  const seenIn = new Map<string, number>();
  const damaged: MergeResult['damaged'] = [];
  let key: { value: string; file: string } | null = null;
  for (const file of o.inputs) {
    const p = readPredictions(file);
    if (p.damaged) damaged.push({ file, why: p.damaged.why });
    for (const r of p.latest.values()) {
      const k = identityKey(r);
      if (key === null) key = { value: k, file };
      else if (k !== key.value) {
        throw new LlavaRadError('MODEL_MISMATCH', `${file} (record ${JSON.stringify(r.id)}: ${k}) and ${key.file} (${key.value}) come from different models or settings; merge only the shards of one job`);
      }
      const prev = merged.get(r.id);
      merged.set(r.id, prev ? better(prev, r) : r);
      seenIn.set(r.id, (seenIn.get(r.id) ?? 0) + 1);
    }
  }
  const duplicates = [...seenIn].filter(([, n]) => n > 1).map(([id]) => id);
  let order = [...merged.keys()];
  let missing: string[] = [];
  let extra: string[] = [];
  if (o.manifestIds) {
    const inManifest = new Set(o.manifestIds);
    missing = o.manifestIds.filter((id) => !merged.has(id));
    extra = order.filter((id) => !inManifest.has(id));
    order = [...o.manifestIds.filter((id) => merged.has(id)), ...extra];
  }
  const all = order.map((id) => merged.get(id)!);
  const failed = all.filter((r) => r.error !== undefined).length;
  const records = o.dropFailed ? all.filter((r) => r.error === undefined) : all;
  return { records, ok: all.length - failed, failed, dropped: all.length - records.length, duplicates, missing, extra, damaged };
}

/**
 * writes records as JSONL atomically: a temporary file beside `out` (a random name, created exclusively, so a
 * file or link planted under a guessable name is never written through), fsync, rename, fsync the folder
 */
export function writePredictions(out: string, records: PredictionRecord[]): void {
  const tmp = path.join(path.dirname(path.resolve(out)), `.${path.basename(out)}.${randomBytes(8).toString('hex')}.tmp`);
  let created = false;
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    created = true;
    try {
      const flush = (text: string) => {
        const buf = Buffer.from(text, 'utf8');
        for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
      };
      let chunk = '';
      for (const r of records) {
        chunk += JSON.stringify(r) + '\n';
        if (chunk.length > 1 << 20) {
          flush(chunk);
          chunk = '';
        }
      }
      flush(chunk);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, out);
    fsyncDir(path.dirname(path.resolve(out)));
  } catch (e) {
    if (created) rmSync(tmp, { force: true });
    throw new LlavaRadError('IO', `cannot write ${out}: ${(e as Error).message}`);
  }
}
