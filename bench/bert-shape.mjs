// The BERT-base encoder's tensors (12 heads of 64, hidden 768, feed-forward 3072) with random weights, for the
// benches that build a real-shape model (bench/radgraph.mjs, bench/bert-batch.mjs): a plan of tensors in llama.cpp's
// BERT names, to which a model adds its own heads, and the writer of the plan as f32.
import { GgmlType } from '../lib/gguf/types.js';

export const BERT_BASE = { D: 768, FF: 3072, HEADS: 12, CTX: 512 };

/** tensors: { name, shape (ggml order), scale } rows; linear / norm add a layer's weight and bias */
export function bertTensorPlan(vocabSize, layers) {
  const { D, FF, CTX } = BERT_BASE;
  const tensors = [];
  const t = (name, shape, scale) => tensors.push({ name, shape, scale });
  const linear = (name, nIn, nOut) => { t(`${name}.weight`, [nIn, nOut], 1 / Math.sqrt(nIn)); t(`${name}.bias`, [nOut], 0.1); };
  const norm = (name) => { t(`${name}.weight`, [D], 1); t(`${name}.bias`, [D], 0.1); };
  t('bert.token_embd.weight', [D, vocabSize], 1); t('bert.position_embd.weight', [D, CTX], 1); t('bert.token_types.weight', [D, 2], 1);
  norm('bert.token_embd_norm');
  for (let i = 0; i < layers; i++) {
    for (const n of ['attn_q', 'attn_k', 'attn_v', 'attn_output']) linear(`bert.blk.${i}.${n}`, D, D);
    norm(`bert.blk.${i}.attn_output_norm`); linear(`bert.blk.${i}.ffn_up`, D, FF); linear(`bert.blk.${i}.ffn_down`, FF, D); norm(`bert.blk.${i}.layer_output_norm`);
  }
  return { tensors, t, linear };
}

/** writes the plan's tensors as f32, uniform in [-scale, scale] from a fixed seed, and closes the writer */
export async function writeRandomTensors(w, tensors) {
  let seed = 1;
  const rand = (n, scale) => Float32Array.from({ length: n }, () => { seed = (seed * 1103515245 + 12345) % 2147483648; return (seed / 2147483648 - 0.5) * 2 * scale; });
  for (const x of tensors) w.addTensorInfo(x.name, GgmlType.F32, x.shape);
  await w.writeHeader();
  for (const x of tensors) await w.writeTensorData(x.name, rand(x.shape.reduce((a, b) => a * b, 1), x.scale));
  await w.close();
}
