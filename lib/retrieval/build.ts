// `index build`: embeds a manifest's images and/or reports into an index file, resumably.
//
// Each study gives up to two entries, (id, image) and (id, text); the text is the study's report: the
// manifest's `reference` field (lib/batch/manifest.ts; the same field `eval` reads). A study without a report gets no text entry (counted in
// `noReport`). The steps:
//   1. take OUT.lock (lib/batch/lock.ts: one build per index);
//   2. open OUT if it exists (verified; another model's index is MODEL_MISMATCH) and OUT.journal if a build
//      was cut short (build-journal.ts); what either holds is done and is not embedded again;
//   3. embed the rest in batches (images first, then reports, in manifest order), each batch appended to the
//      journal and fsync'd before the next;
//   4. write OUT anew: its old entries, then the journal's, in that order (index-file.ts: temporary file and
//      rename), then delete the journal. A crash between the rename and the delete leaves a journal whose
//      entries OUT already has: the next run skips them, so nothing is ever there twice.
// An entry is known by (id, kind) only: a study whose image or report changed since it was indexed keeps its
// old vector (as `batch` keeps a study's old findings); build a new index to re-embed.

import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Embedder } from '../clip/embedder.js';
import { LlavaRadError, abortedError, describeValue, isLlavaRadError } from '../errors.js';
import { readImageFile } from '../image/read-file.js';
import { acquireLock } from '../batch/lock.js';
import { readManifest, type ManifestOptions, type Study } from '../batch/manifest.js';
import { checkWriteSpace } from '../disk-space.js';
import { BuildJournal, type JournalEntry } from './build-journal.js';
import { entryKey, type EntryKind } from './format.js';
import { RetrievalIndex, writeIndexFile } from './index-file.js';
import { checkSameModel } from './search.js';
import { checkEmbeddings } from './embeddings.js';

export const DEFAULT_BUILD_BATCH = 16;

export interface BuildIndexOptions extends ManifestOptions {
  /** the index file to write (or to add to) */
  out: string;
  /** what to embed (default both): 'image', 'text' */
  kinds?: readonly EntryKind[];
  /** studies per call to the embedder (default 16) */
  batchSize?: number;
  signal?: AbortSignal;
  /** after each batch is journaled: entries done in this run and to do in all */
  onProgress?: (p: { done: number; total: number }) => void;
  /** told when INDEX.lock is another host's and its heartbeat is being watched (lib/batch/lock.ts) */
  onLockWait?: (message: string) => void;
}

export interface BuildIndexResult {
  file: string;
  /** entries in the index now */
  count: number;
  /** entries embedded by this run */
  added: number;
  /** entries a cut-short earlier run had journaled, now in the index */
  recovered: number;
  /** studies of the manifest without a report (no text entry) */
  noReport: number;
}

interface Todo {
  study: Study;
  kind: EntryKind;
}

function checkKinds(kinds: unknown): EntryKind[] {
  if (!Array.isArray(kinds) || kinds.length === 0 || kinds.some((k) => k !== 'image' && k !== 'text')) {
    throw new LlavaRadError('INVALID_ARGUMENT', `kinds must be a non-empty array of 'image' and/or 'text', got ${describeValue(kinds)}`);
  }
  return [...new Set(kinds as EntryKind[])];
}

/** batchSize (default DEFAULT_BUILD_BATCH), or INVALID_ARGUMENT */
export function checkBatchSize(batchSize: unknown = DEFAULT_BUILD_BATCH): number {
  if (typeof batchSize !== 'number' || !Number.isInteger(batchSize) || batchSize < 1 || batchSize > 4096) {
    throw new LlavaRadError('INVALID_ARGUMENT', `batchSize must be an integer from 1 to 4096, got ${describeValue(batchSize)}`);
  }
  return batchSize;
}

/** a study's image bytes (a regular file of bounded size, as batch reads it); IO names the study */
export async function readStudyImage(s: Study): Promise<Uint8Array> {
  try {
    return await readImageFile(s.image);
  } catch (e) {
    if (isLlavaRadError(e) && e.code !== 'IO') throw e;
    throw new LlavaRadError('IO', `study ${JSON.stringify(s.id)} (manifest line ${s.line}): ${(e as Error).message}`);
  }
}

/** a batch's image files, read one after another (a batch of up to 4096 opened at once passed the usual
 *  limit of 1024 descriptors: EMFILE) */
export async function readStudyImages(studies: readonly Study[]): Promise<Uint8Array[]> {
  const images: Uint8Array[] = [];
  for (const s of studies) images.push(await readStudyImage(s));
  return images;
}

async function embed(embedder: Embedder, kind: EntryKind, batch: readonly Todo[], signal?: AbortSignal): Promise<JournalEntry[]> {
  const vectors = kind === 'image'
    ? await embedder.embedImages(await readStudyImages(batch.map((t) => t.study)), { signal })
    : await embedder.embedTexts(batch.map((t) => t.study.reference!), { signal });
  checkEmbeddings(vectors, batch.length, embedder.dim, kind === 'image' ? 'embedImages' : 'embedTexts');
  return batch.map((t, i) => ({ id: t.study.id, kind, vector: vectors[i]! }));
}

/** Builds or extends an index from a manifest (see the top of this file). */
export async function buildIndex(manifest: string, embedder: Embedder, options: BuildIndexOptions): Promise<BuildIndexResult> {
  const kinds = checkKinds(options.kinds ?? ['image', 'text']);
  const batchSize = checkBatchSize(options.batchSize);
  if (typeof options.out !== 'string' || options.out === '') throw new LlavaRadError('INVALID_ARGUMENT', `out must be the index file's path, got ${describeValue(options.out)}`);
  const { studies } = readManifest(manifest, options);
  const out = options.out;
  const lock = await acquireLock(out, { ...(options.signal ? { signal: options.signal } : {}), ...(options.onLockWait ? { onWait: options.onLockWait } : {}) });
  let journal: BuildJournal | null = null;
  let existing: RetrievalIndex | null = null;
  try {
    if (existsSync(out)) {
      existing = RetrievalIndex.open(out);
      checkSameModel(existing, embedder);
    }
    journal = BuildJournal.open(`${out}.journal`, embedder.modelId, embedder.dim);
    const done = journal.keys();
    if (existing) existing.ids.forEach((id, i) => done.add(entryKey(id, existing!.kind(i))));
    const recovered = journal.entries.length;
    const noReport = studies.filter((s) => s.reference === null).length;
    const todo: Todo[] = [];
    for (const kind of kinds) {
      for (const study of studies) {
        if (kind === 'text' && study.reference === null) continue;
        if (!done.has(entryKey(study.id, kind))) todo.push({ study, kind });
      }
    }
    let added = 0;
    for (let i = 0; i < todo.length;) {
      if (options.signal?.aborted) throw abortedError(options.signal, 'index build');
      const kind = todo[i]!.kind;
      let j = i;
      while (j < todo.length && j - i < batchSize && todo[j]!.kind === kind) j++;
      const entries = await embed(embedder, kind, todo.slice(i, j), options.signal);
      lock.verify();
      journal.append(entries);
      added += j - i;
      i = j;
      options.onProgress?.({ done: added, total: todo.length });
    }
    lock.verify();
    const count = fold(out, embedder, existing, journal);
    existing?.close();
    existing = null;
    journal.remove();
    journal = null;
    return { file: out, count, added, recovered, noReport };
  } finally {
    existing?.close();
    journal?.close();
    lock();
  }
}

/** Writes OUT with its old entries and then the journal's (each (id, kind) once); returns the count. */
function fold(out: string, embedder: Embedder, existing: RetrievalIndex | null, journal: BuildJournal): number {
  const ids: string[] = existing ? [...existing.ids] : [];
  const kinds: EntryKind[] = existing ? ids.map((_, i) => existing.kind(i)) : [];
  const seen = new Set(ids.map((id, i) => entryKey(id, kinds[i]!)));
  // which journal lines to take: each key's first, unless OUT has it already
  const take: boolean[] = journal.entries.map((e) => {
    const key = entryKey(e.id, e.kind);
    if (seen.has(key)) return false;
    seen.add(key);
    ids.push(e.id);
    kinds.push(e.kind);
    return true;
  });
  checkWriteSpace(path.dirname(path.resolve(out)), ids.length * embedder.dim * Float32Array.BYTES_PER_ELEMENT, 'the index');
  writeIndexFile(out, {
    modelId: embedder.modelId,
    dim: embedder.dim,
    ids,
    kinds,
    vectors: (put) => {
      existing?.forEachChunk((rows) => put(rows));
      let line = 0;
      journal.forEach((e) => {
        if (take[line++]) put(e.vector);
      });
    },
  });
  return ids.length;
}
