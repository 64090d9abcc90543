// `llava-rad eval-retrieval MANIFEST`: image <-> report Recall@1/5/10 and median rank (lib/retrieval/metrics.ts).

import { evalRetrieval } from '../retrieval/eval.js';
import type { DirectionMetrics } from '../retrieval/metrics.js';
import { parseWithPositionals, requireFile, UsageError, type Command } from './args.js';
import { MANIFEST_OPTIONS, MANIFEST_USAGE, withEmbedder, manifestOptions, openIndexArg, pct } from './retrieval-args.js';

const row = (name: string, m: DirectionMetrics) =>
  `${name.padEnd(14)} ${pct(m.r1).padStart(6)} ${pct(m.r5).padStart(6)} ${pct(m.r10).padStart(6)} ${String(m.medianRank).padStart(7)} ${m.meanRank.toFixed(1).padStart(8)}\n`;
const json = (m: DirectionMetrics) => ({ 'R@1': m.r1, 'R@5': m.r5, 'R@10': m.r10, median_rank: m.medianRank, mean_rank: m.meanRank });

export const evalRetrievalCommand: Command = {
  name: 'eval-retrieval',
  summary: 'image <-> report retrieval on a manifest of pairs: Recall@1/5/10, median rank',
  usage: `Usage: llava-rad eval-retrieval MANIFEST (--model DIR | --index INDEX) [options]

Each study of MANIFEST with a report ("reference") is a pair. For every image its report is ranked among
all the reports (image->text), and for every report its image among all the images (text->image), by
cosine similarity; ties rank by manifest order. Recall@K is the share of pairs ranked K or better; the
median rank is open_clip's (floor of the median).

Options:
      --model DIR         embed the images and reports with this CLIP model
      --index INDEX       or take their vectors from an index built from MANIFEST (both kinds)
${MANIFEST_USAGE}
      --json              print one JSON object (recalls as fractions 0..1)
  -h, --help              this help`,
  async run(args, io, signal) {
    const { values: v, positionals } = parseWithPositionals(args, { ...MANIFEST_OPTIONS, model: { type: 'string' }, index: { type: 'string' }, json: { type: 'boolean' } }, 'eval-retrieval', 1);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const manifest = requireFile('eval-retrieval', 'MANIFEST', positionals[0], { fifo: true });
    if ((v.model === undefined) === (v.index === undefined)) throw new UsageError('eval-retrieval: give exactly one of --model DIR and --index INDEX');
    const options = { ...manifestOptions(v, 'eval-retrieval'), signal };
    let r;
    if (typeof v.index === 'string') {
      const index = openIndexArg(v.index, 'eval-retrieval');
      try {
        r = await evalRetrieval(manifest, { index }, options);
      } finally {
        index.close();
      }
    } else {
      r = await withEmbedder(v, 'eval-retrieval', (embedder) => evalRetrieval(manifest, { embedder }, options));
    }
    if (v.json) {
      io.out(JSON.stringify({ n: r.n, no_report: r.noReport, model_id: r.modelId, image_to_text: json(r.imageToText), text_to_image: json(r.textToImage) }) + '\n');
    } else {
      io.out(`${r.n} image-report pairs${r.noReport ? ` (${r.noReport} studies without a report left out)` : ''}, model ${r.modelId}\n`);
      io.out(`${'direction'.padEnd(14)} ${'R@1'.padStart(6)} ${'R@5'.padStart(6)} ${'R@10'.padStart(6)} ${'med.rank'.padStart(7)} ${'mean'.padStart(8)}\n`);
      io.out(row('image->text', r.imageToText) + row('text->image', r.textToImage));
    }
    return 0;
  },
};
