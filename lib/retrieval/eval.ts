// `eval-retrieval`: retrieval metrics (metrics.ts) over a manifest's image-report pairs, the vectors either
// embedded now or looked up in an index built from that manifest (`index build`, both kinds).
// Studies without a report are left out (counted in `noReport`); at least one pair is needed.

import type { Embedder } from '../clip/embedder.js';
import { LlavaRadError } from '../errors.js';
import { readManifest, type ManifestOptions, type Study } from '../batch/manifest.js';
import { checkEmbeddings } from './embeddings.js';
import { entryKey, type EntryKind } from './format.js';
import type { RetrievalIndex } from './index-file.js';
import { retrievalMetrics, type RetrievalMetrics } from './metrics.js';
import { checkBatchSize, readStudyImages } from './build.js';

export interface EvalRetrievalOptions extends ManifestOptions {
  /** studies per call to the embedder (default 16) */
  batchSize?: number;
  signal?: AbortSignal;
}

export interface EvalRetrievalResult extends RetrievalMetrics {
  /** studies of the manifest without a report, left out */
  noReport: number;
  /** the vectors' model */
  modelId: string;
}

async function embedAll(embedder: Embedder, studies: readonly Study[], kind: EntryKind, options: EvalRetrievalOptions): Promise<Float32Array[]> {
  const size = checkBatchSize(options.batchSize);
  const out: Float32Array[] = [];
  for (let i = 0; i < studies.length; i += size) {
    const part = studies.slice(i, i + size);
    const v = kind === 'image'
      ? await embedder.embedImages(await readStudyImages(part), { signal: options.signal })
      : await embedder.embedTexts(part.map((s) => s.reference!), { signal: options.signal });
    checkEmbeddings(v, part.length, embedder.dim, kind === 'image' ? 'embedImages' : 'embedTexts');
    out.push(...v);
  }
  return out;
}

function fromIndex(index: RetrievalIndex, studies: readonly Study[], kind: EntryKind): Float32Array[] {
  const where = new Map<string, number>();
  index.ids.forEach((id, i) => where.set(entryKey(id, index.kind(i)), i));
  return studies.map((s) => {
    const i = where.get(entryKey(s.id, kind));
    if (i === undefined) {
      throw new LlavaRadError('INVALID_ARGUMENT', `${index.file} has no ${kind} entry for study ${JSON.stringify(s.id)} (manifest line ${s.line}): build the index from this manifest with both kinds`);
    }
    return index.vector(i);
  });
}

/** Evaluates image <-> report retrieval on a manifest's pairs, with an embedder or an index's vectors. */
export async function evalRetrieval(manifest: string, source: { embedder: Embedder } | { index: RetrievalIndex }, options: EvalRetrievalOptions = {}): Promise<EvalRetrievalResult> {
  if ('embedder' in source) checkBatchSize(options.batchSize);
  const all = readManifest(manifest, options).studies;
  const studies = all.filter((s) => s.reference !== null);
  if (studies.length === 0) throw new LlavaRadError('BAD_MANIFEST', `${manifest}: no study has a report ("reference"): retrieval needs image-report pairs`);
  let images: Float32Array[];
  let texts: Float32Array[];
  let modelId: string;
  if ('index' in source) {
    images = fromIndex(source.index, studies, 'image');
    texts = fromIndex(source.index, studies, 'text');
    modelId = source.index.modelId;
  } else {
    images = await embedAll(source.embedder, studies, 'image', options);
    texts = await embedAll(source.embedder, studies, 'text', options);
    modelId = source.embedder.modelId;
  }
  return { ...retrievalMetrics(images, texts), noReport: all.length - studies.length, modelId };
}
