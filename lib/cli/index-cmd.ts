// `llava-rad index build | export | info`: the retrieval index file (lib/retrieval/, docs/retrieval.md).

import { buildIndex } from '../retrieval/build.js';
import { exportJsonl } from '../retrieval/export.js';
import type { EntryKind } from '../retrieval/format.js';
import { asUsage, intArg, parseWithPositionals, requireFile, requireOutputFile, UsageError, type Command, type Io } from './args.js';
import { MANIFEST_OPTIONS, MANIFEST_USAGE, withEmbedder, manifestOptions, openIndexArg } from './retrieval-args.js';

const USAGE = `Usage: llava-rad index build MANIFEST --out INDEX --model DIR [options]
       llava-rad index export INDEX --out FILE.jsonl
       llava-rad index info INDEX [--json]

build   embeds the manifest's images and/or reports (its "reference" field) with the CLIP model and writes
        them to INDEX. Resumable: what INDEX (or INDEX.journal, after a crash or Ctrl-C) holds is not
        embedded again; rerun the same command to finish or to add a manifest's new studies. INDEX must
        come from the same model (else error MODEL_MISMATCH).
export  writes one JSON line per entry, {"id", "kind", "vector": [...]}, for pgvector, Qdrant and others
info    prints the model, dim and counts

Options:
      --out PATH          build: the index file; export: the JSONL file
      --model DIR         build: the CLIP model's folder
      --kinds K           build: image, text or image,text (default image,text)
      --batch-size N      build: studies per call to the model (default 16)
${MANIFEST_USAGE}
      --json              info / build: print a JSON object on stdout
  -h, --help              this help`;

function kindsArg(v: string | boolean | undefined): EntryKind[] | undefined {
  if (v === undefined) return undefined;
  const kinds = String(v).split(',').map((s) => s.trim());
  if (kinds.length === 0 || kinds.some((k) => k !== 'image' && k !== 'text')) throw new UsageError(`index build: --kinds must be image, text or image,text, got '${String(v)}'`);
  return kinds as EntryKind[];
}

async function build(manifest: string | undefined, v: Record<string, string | boolean | undefined>, io: Io, signal: AbortSignal): Promise<number> {
  const file = requireFile('index build', 'MANIFEST', manifest, { fifo: true });
  if (typeof v.out !== 'string' || v.out === '') throw new UsageError('index build: --out INDEX is required');
  requireOutputFile('index build', '--out', v.out, { makesFolder: true });
  const kinds = kindsArg(v.kinds);
  const batchSize = intArg(v['batch-size'], '--batch-size', 1, 4096);
  const options = manifestOptions(v, 'index build');
  const r = await withEmbedder(v, 'index build', (embedder) => buildIndex(file, embedder, {
    ...options, out: v.out as string, signal,
    ...(kinds ? { kinds } : {}), ...(batchSize ? { batchSize } : {}),
    onProgress: (p) => io.err(`llava-rad index: embedded ${p.done}/${p.total}\n`),
    onLockWait: (m) => io.err(`llava-rad index: ${m}\n`),
  }));
  io.err(`llava-rad index: ${r.file} holds ${r.count} entries (${r.added} embedded now${r.recovered ? `, ${r.recovered} recovered from an interrupted build` : ''}${r.noReport ? `; ${r.noReport} studies without a report` : ''})\n`);
  if (v.json) io.out(JSON.stringify({ file: r.file, count: r.count, added: r.added, recovered: r.recovered, no_report: r.noReport }) + '\n');
  return 0;
}

export const indexCommand: Command = {
  name: 'index',
  summary: 'build, export or describe a retrieval index of image / report embeddings',
  usage: USAGE,
  async run(args, io, signal) {
    const { values: v, positionals } = parseWithPositionals(args, {
      ...MANIFEST_OPTIONS,
      out: { type: 'string' },
      model: { type: 'string' },
      kinds: { type: 'string' },
      'batch-size': { type: 'string' },
      json: { type: 'boolean' },
    }, 'index', 2);
    if (v.help) {
      io.out(USAGE + '\n');
      return 0;
    }
    const [sub, target] = positionals;
    if (sub === 'build') return build(target, v, io, signal);
    if (sub === 'export') {
      if (typeof v.out !== 'string' || v.out === '') throw new UsageError('index export: --out FILE.jsonl is required');
      requireOutputFile('index export', '--out', v.out);
      const index = openIndexArg(target, 'index export');
      try {
        const n = asUsage(() => exportJsonl(index, v.out as string));
        io.err(`llava-rad index: wrote ${n} entries to ${String(v.out)}\n`);
      } finally {
        index.close();
      }
      return 0;
    }
    if (sub === 'info') {
      const index = openIndexArg(target, 'index info');
      const c = index.counts();
      index.close();
      if (v.json) io.out(JSON.stringify({ file: index.file, model_id: index.modelId, dim: index.dim, count: index.count, images: c.image, texts: c.text }) + '\n');
      else io.out(`${index.file}: ${index.count} entries (${c.image} images, ${c.text} reports), ${index.dim} floats each, model ${index.modelId}\n`);
      return 0;
    }
    throw new UsageError(`index: expected build, export or info, got ${sub === undefined ? 'nothing' : `'${sub}'`} (see llava-rad index --help)`);
  },
};
