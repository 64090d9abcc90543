// `llava-rad search INDEX (--image F | --text T)`: the k entries nearest a query (lib/retrieval/search.ts).

import { readImageFile } from '../image/read-file.js';
import { search, DEFAULT_K, MAX_K, type KindFilter } from '../retrieval/search.js';
import { intArg, parseWithPositionals, requireFile, UsageError, type Command } from './args.js';
import { withEmbedder, openIndexArg } from './retrieval-args.js';

export const searchCommand: Command = {
  name: 'search',
  summary: 'the nearest images / reports in a retrieval index to an image or a text (exact search)',
  usage: `Usage: llava-rad search INDEX (--image FILE | --text TEXT) --model DIR [options]

Embeds the query with the CLIP model that built INDEX and ranks the index's entries by cosine similarity,
exactly (every entry is scored). Equal scores rank by position in the index (the earlier first).

Options:
      --image FILE        the query is an image (PNG / JPEG / DICOM)
      --text TEXT         the query is a text (e.g. a findings sentence)
      --model DIR         the CLIP model's folder (must be the one that built INDEX: else MODEL_MISMATCH)
      --k N               results (default ${DEFAULT_K}, at most ${MAX_K}; fewer when the index has fewer)
      --kind K            image | text | all: which entries to rank (default: the other modality than the
                          query's: a text finds images, an image finds reports)
      --json              print one JSON object: {"query", "kind", "k", "results": [{"rank", "id", "kind", "score"}]}
  -h, --help              this help`,
  async run(args, io, signal) {
    const { values: v, positionals } = parseWithPositionals(args, {
      image: { type: 'string' },
      text: { type: 'string' },
      model: { type: 'string' },
      k: { type: 'string' },
      kind: { type: 'string' },
      json: { type: 'boolean' },
    }, 'search', 1);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    if ((v.image === undefined) === (v.text === undefined)) throw new UsageError('search: give exactly one query: --image FILE or --text TEXT');
    if (typeof v.text === 'string' && v.text.trim() === '') throw new UsageError('search: --text must not be empty');
    const k = intArg(v.k, '--k', 1, MAX_K) ?? DEFAULT_K;
    if (v.kind !== undefined && v.kind !== 'image' && v.kind !== 'text' && v.kind !== 'all') throw new UsageError(`search: --kind must be image, text or all, got '${String(v.kind)}'`);
    const query = typeof v.image === 'string' ? { image: await readImageFile(requireFile('search', '--image', v.image)) } : { text: v.text as string };
    const index = openIndexArg(positionals[0], 'search');
    try {
      const kind = (v.kind ?? ('text' in query ? 'image' : 'text')) as KindFilter;
      const hits = await withEmbedder(v, 'search', (embedder) => search(index, embedder, query, { k, kind, signal }));
      if (v.json) {
        io.out(JSON.stringify({
          query: 'text' in query ? { text: query.text } : { image: v.image }, kind, k,
          results: hits.map((h, i) => ({ rank: i + 1, id: h.id, kind: h.kind, score: h.score })),
        }) + '\n');
      } else {
        hits.forEach((h, i) => io.out(`${String(i + 1).padStart(4)}  ${h.score.toFixed(4)}  ${h.kind.padEnd(5)}  ${h.id}\n`));
      }
      return 0;
    } finally {
      index.close();
    }
  },
};
