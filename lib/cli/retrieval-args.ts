// Options shared by the retrieval commands (index, search, eval-retrieval).

import type { ManifestOptions } from '../batch/manifest.js';
import type { Embedder } from '../clip/embedder.js';
import { openEmbedder } from '../retrieval/open-embedder.js';
import { RetrievalIndex } from '../retrieval/index-file.js';
import { requireFile, requireFolder, UsageError, type Options } from './args.js';
import { formatArg } from './batch.js';

export const MANIFEST_OPTIONS: Options = {
  'image-root': { type: 'string' },
  format: { type: 'string' },
  'mimic-test-filter': { type: 'boolean' },
};

export const MANIFEST_USAGE = `      --image-root DIR    folder that relative image paths are under (default: the manifest's folder)
      --format F          the manifest's format: jsonl | csv | json (default: from the extension)
      --mimic-test-filter keep the official MIMIC-CXR test studies only (see llava-rad batch --help)`;

type Values = Record<string, string | boolean | undefined>;

export function manifestOptions(v: Values, command: string): ManifestOptions {
  const root = v['image-root'];
  if (root !== undefined) requireFolder(command, '--image-root', root);
  const format = formatArg(v.format);
  return { ...(format ? { format } : {}), ...(typeof root === 'string' ? { imageRoot: root } : {}), mimicTestFilter: v['mimic-test-filter'] === true };
}

/** runs fn with the CLIP model of --model DIR, disposed after */
export async function withEmbedder<T>(v: Values, command: string, fn: (e: Embedder) => Promise<T>): Promise<T> {
  if (typeof v.model !== 'string' || v.model === '') throw new UsageError(`${command}: --model DIR (the CLIP model's folder) is required`);
  const embedder = await openEmbedder(v.model);
  try {
    return await fn(embedder);
  } finally {
    await embedder.dispose?.();
  }
}

export function openIndexArg(p: string | undefined, command: string): RetrievalIndex {
  return RetrievalIndex.open(requireFile(command, 'INDEX', p));
}

export const pct = (x: number) => (100 * x).toFixed(1);
