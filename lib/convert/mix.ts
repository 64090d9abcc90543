// Which ggml type each decoder tensor gets for a conversion type, following llama.cpp's quantizer
// (src/llama-quant.cpp of the pinned bundle; re-implemented from reading it, for the LLaMA architecture,
// no importance matrix, no expert layers):
//
//   f32 / f16      every 2-D weight in that type; 1-D tensors (norms) f32 (as llama.cpp's converter writes).
//   q8_0           every 2-D weight q8_0 (the output too).
//   q4_k_m         default q4_K; output q6_K; attn_v and ffn_down q6_K in the layers where use_more_bits(i, n)
//                  holds (i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2); token_embd stays q4_K.
//   q5_k_m         default q5_K; output q6_K; attn_v and ffn_down q6_K where use_more_bits holds.
// then, for every quantized choice, llama.cpp's shape fallback: a row length (ne[0]) that is not a multiple
// of the type's block demotes q4_K -> q5_0, q5_K -> q5_1, q6_K -> q8_0 (the output: straight to q8_0), and a
// 32-block type that still does not fit -> f16.

import { GgmlType, LLAMA_FTYPE, ggmlTypeTraits } from '../gguf/types.js';

export const CONVERT_TYPES = ['f32', 'f16', 'q8_0', 'q5_k_m', 'q4_k_m'] as const;
export type ConvertType = (typeof CONVERT_TYPES)[number];

export function isConvertType(s: string): s is ConvertType {
  return (CONVERT_TYPES as readonly string[]).includes(s);
}

/** general.file_type (llama_ftype) of each conversion type */
export const CONVERT_FILE_TYPE: Readonly<Record<ConvertType, number>> = {
  f32: LLAMA_FTYPE.ALL_F32,
  f16: LLAMA_FTYPE.MOSTLY_F16,
  q8_0: LLAMA_FTYPE.MOSTLY_Q8_0,
  q5_k_m: LLAMA_FTYPE.MOSTLY_Q5_K_M,
  q4_k_m: LLAMA_FTYPE.MOSTLY_Q4_K_M,
};

const DEFAULT_TYPE: Readonly<Record<ConvertType, GgmlType>> = {
  f32: GgmlType.F32,
  f16: GgmlType.F16,
  q8_0: GgmlType.Q8_0,
  q5_k_m: GgmlType.Q5_K,
  q4_k_m: GgmlType.Q4_K,
};

/** llama.cpp's use_more_bits(i_layer, n_layers) */
export function useMoreBits(i: number, n: number): boolean {
  const n8 = Math.trunc(n / 8);
  return i < n8 || i >= Math.trunc((7 * n) / 8) || (i - n8) % 3 === 2;
}

const isQuantized = (t: GgmlType): boolean => t !== GgmlType.F32 && t !== GgmlType.F16 && t !== GgmlType.BF16;
const blockOf = (t: GgmlType): number => ggmlTypeTraits(t)!.blockSize;

/** llama.cpp's tensor_type_fallback for a row length that does not fit the type's block */
export function fallbackType(t: GgmlType, rowLength: number): GgmlType {
  if (!isQuantized(t) || rowLength % blockOf(t) === 0) return t;
  let r: GgmlType;
  switch (t) {
    case GgmlType.Q4_K: r = GgmlType.Q5_0; break;
    case GgmlType.Q5_K: r = GgmlType.Q5_1; break;
    case GgmlType.Q6_K: r = GgmlType.Q8_0; break;
    case GgmlType.Q2_K:
    case GgmlType.Q3_K: r = GgmlType.Q4_0; break;
    default: r = t; // already a 32-block type
  }
  return rowLength % blockOf(r) === 0 ? r : GgmlType.F16;
}

/**
 * The ggml type of one decoder tensor. `name` is the GGUF name (blk.N.attn_v.weight, output.weight ...),
 * `shape` ggml order (shape[0] = row length), `nLayer` the block count.
 */
export function decoderTensorType(type: ConvertType, name: string, shape: readonly number[], nLayer: number): GgmlType {
  if (shape.length < 2) return GgmlType.F32;
  const def = DEFAULT_TYPE[type];
  if (!isQuantized(def)) return def;
  const nx = shape[0]!;
  let t = def;
  const layer = /^blk\.(\d+)\./.exec(name);
  const i = layer ? Number(layer[1]) : -1;
  if (name === 'output.weight') {
    if (nx % blockOf(def) !== 0) t = GgmlType.Q8_0;
    else if (def !== GgmlType.Q8_0) t = GgmlType.Q6_K;
  } else if (name.endsWith('.attn_v.weight')) {
    if ((type === 'q4_k_m' || type === 'q5_k_m') && useMoreBits(i, nLayer)) t = GgmlType.Q6_K;
  } else if (name.endsWith('.ffn_down.weight')) {
    if ((type === 'q4_k_m' || type === 'q5_k_m') && useMoreBits(i, nLayer)) t = GgmlType.Q6_K;
  }
  return fallbackType(t, nx);
}
