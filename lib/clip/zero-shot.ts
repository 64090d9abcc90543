// Zero-shot classification with a CLIP model, as open_clip's build_zero_shot_classifier does it: each label's
// prompts (one per template) are embedded, their normalized embeddings averaged and renormalized; the image's
// logits against the labels are exp(logit_scale) * image . label, and the probabilities their softmax.

import { LlavaRadError } from '../errors.js';

/** BiomedCLIP's own zero-shot prompt (its model card: 'this is a photo of ' + label); `{}` is the label */
export const DEFAULT_CLIP_TEMPLATES: readonly string[] = Object.freeze(['this is a photo of {}']);

/** the prompts of one label: each template with `{}` replaced by the label */
export function labelPrompts(label: string, templates: readonly string[]): string[] {
  return templates.map((t) => t.split('{}').join(label));
}

export function checkTemplates(templates: unknown): readonly string[] {
  if (!Array.isArray(templates) || templates.length === 0 || templates.some((t) => typeof t !== 'string' || !t.includes('{}'))) {
    throw new LlavaRadError('INVALID_ARGUMENT', `templates must be a non-empty array of strings each holding "{}" (where the label goes), got ${JSON.stringify(templates)}`);
  }
  return templates as string[];
}

export function checkLabels(labels: unknown): readonly string[] {
  if (!Array.isArray(labels) || labels.length < 2 || labels.some((l) => typeof l !== 'string' || l.trim() === '')) {
    throw new LlavaRadError('INVALID_ARGUMENT', `labels must be an array of at least 2 non-empty strings, got ${JSON.stringify(labels)}`);
  }
  if (new Set(labels).size !== labels.length) throw new LlavaRadError('INVALID_ARGUMENT', `labels must be distinct, got ${JSON.stringify(labels)}`);
  return labels as string[];
}

/** mean of normalized rows, renormalized (float64 sums) */
export function meanDirection(rows: readonly Float32Array[]): Float32Array {
  const n = rows[0]!.length;
  const sum = new Float64Array(n);
  for (const r of rows) for (let i = 0; i < n; i++) sum[i] = sum[i]! + r[i]! / rows.length;
  let norm = 0;
  for (let i = 0; i < n; i++) norm += sum[i]! * sum[i]!;
  const scale = 1 / Math.max(Math.sqrt(norm), 1e-12);
  return Float32Array.from(sum, (v) => v * scale);
}

/** softmax over labels of exp(logitScale) * image . label */
export function zeroShotProbabilities(image: Float32Array, labels: readonly Float32Array[], logitScale: number): number[] {
  const scale = Math.exp(logitScale);
  const logits = labels.map((l) => {
    let dot = 0;
    for (let i = 0; i < l.length; i++) dot += image[i]! * l[i]!;
    return scale * dot;
  });
  const max = Math.max(...logits);
  const exps = logits.map((x) => Math.exp(x - max));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / total);
}
