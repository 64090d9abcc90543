// `llava-rad embed`: BiomedCLIP-CXR embeddings of images or texts, one JSON line each.

import { readImageFile } from '../image/read-file.js';
import { CLIP_MODEL_OPTIONS, CLIP_MODEL_USAGE, loadClipFromArgs } from '../clip/cli-load.js';
import { parseWithPositionals, requireFile, UsageError, type Command } from './args.js';

const MAX_INPUTS = 1024;
/** image files read at a time: 1024 opened at once passed the usual limit of 1024 descriptors (EMFILE) */
const READ_CHUNK = 16;

export const embedCommand: Command = {
  name: 'embed',
  summary: 'BiomedCLIP-CXR embeddings (L2-normalized) of chest X-rays or texts, as JSON lines',
  usage: `Usage: llava-rad embed IMAGE... [options]
       llava-rad embed --text TEXT [--text TEXT ...] [options]

Prints one JSON line per input: {"image": FILE} or {"text": TEXT}, with "dim" and "embedding" (floats).
Images are decoded and preprocessed as for findings (518 px); texts are cleaned and tokenized as open_clip
does (at most 256 tokens).

Options:
      --text TEXT         a text to embed (repeat for more); no IMAGE then
${CLIP_MODEL_USAGE}
  -h, --help              this help`,
  async run(args, io, signal) {
    const { values: v, positionals } = parseWithPositionals(args, { ...CLIP_MODEL_OPTIONS, text: { type: 'string', multiple: true } }, 'embed', MAX_INPUTS);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const texts = (v.text as unknown as string[] | undefined) ?? [];
    if (texts.length > 0 && positionals.length > 0) throw new UsageError('embed: give IMAGE files or --text, not both');
    if (texts.length === 0 && positionals.length === 0) throw new UsageError('embed: an IMAGE file or --text TEXT is required');
    if (texts.length > MAX_INPUTS) throw new UsageError(`embed: at most ${MAX_INPUTS} texts, got ${texts.length}`);
    for (const f of positionals) requireFile('embed', 'image', f);
    const clip = await loadClipFromArgs(v, 'embed');
    try {
      const opts = signal ? { signal } : {};
      const rows: Float32Array[] = [];
      if (texts.length > 0) rows.push(...await clip.embedTexts(texts, opts));
      for (let i = 0; i < positionals.length; i += READ_CHUNK) {
        const bytes: Buffer[] = [];
        for (const f of positionals.slice(i, i + READ_CHUNK)) bytes.push(await readImageFile(f));
        rows.push(...await clip.embedImages(bytes, opts));
      }
      rows.forEach((e, i) => {
        const key = texts.length > 0 ? { text: texts[i] } : { image: positionals[i] };
        io.out(JSON.stringify({ ...key, dim: e.length, model_id: clip.modelId, embedding: Array.from(e) }) + '\n');
      });
    } finally {
      await clip.dispose();
    }
    return 0;
  },
};
