// `llava-rad classify`: zero-shot labels of a chest X-ray with BiomedCLIP-CXR.

import { readImageFile } from '../image/read-file.js';
import { CLIP_MODEL_OPTIONS, CLIP_MODEL_USAGE, loadClipFromArgs } from '../clip/cli-load.js';
import { DEFAULT_CLIP_TEMPLATES } from '../clip/zero-shot.js';
import { parseWithPositionals, requireFile, UsageError, type Command } from './args.js';

export const classifyCommand: Command = {
  name: 'classify',
  summary: 'zero-shot labels of a chest X-ray (BiomedCLIP-CXR; research use only)',
  usage: `Usage: llava-rad classify IMAGE --labels "pleural effusion,pneumothorax,..." [options]

Each label becomes a prompt per template; a label's embedding is the mean of its prompts' (normalized), and
the probabilities are the softmax over labels of exp(logit_scale) * image . label, as open_clip's zero-shot
classifier computes them.

Options:
  -l, --labels LIST       comma-separated labels (at least 2)
      --template T        a prompt template, {} standing for the label (repeat for more);
                          default "${DEFAULT_CLIP_TEMPLATES.join('", "')}" (BiomedCLIP's own zero-shot prompt)
      --json              print one JSON object
${CLIP_MODEL_USAGE}
  -h, --help              this help

Research use only: not for clinical care.`,
  async run(args, io, signal) {
    const { values: v, positionals } = parseWithPositionals(args, {
      ...CLIP_MODEL_OPTIONS,
      labels: { type: 'string', short: 'l' },
      template: { type: 'string', multiple: true },
      json: { type: 'boolean' },
    }, 'classify', 1);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const image = positionals[0];
    if (!image) throw new UsageError('classify: the IMAGE file is required');
    requireFile('classify', 'image', image);
    if (typeof v.labels !== 'string') throw new UsageError('classify: --labels "a,b,..." is required');
    const labels = v.labels.split(',').map((l) => l.trim()).filter((l) => l !== '');
    if (labels.length < 2) throw new UsageError(`classify: --labels needs at least 2 labels, got ${JSON.stringify(labels)}`);
    const templates = (v.template as unknown as string[] | undefined) ?? [...DEFAULT_CLIP_TEMPLATES];
    for (const t of templates) if (!t.includes('{}')) throw new UsageError(`classify: --template must hold {} (where the label goes), got ${JSON.stringify(t)}`);
    const bytes = await readImageFile(image);
    const clip = await loadClipFromArgs(v, 'classify');
    try {
      const r = await clip.classify(bytes, labels, { templates, ...(signal ? { signal } : {}) });
      if (v.json === true) {
        io.out(JSON.stringify({ image, best: r.best, labels: r.labels, templates: r.templates, model_id: clip.modelId }) + '\n');
      } else {
        const width = Math.max(...labels.map((l) => l.length));
        for (const l of [...r.labels].sort((a, b) => b.probability - a.probability)) {
          io.out(`${l.label.padEnd(width)}  ${l.probability.toFixed(4)}\n`);
        }
      }
    } finally {
      await clip.dispose();
    }
    return 0;
  },
};
