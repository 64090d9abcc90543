// What a release may declare, checked before the converter allocates or writes anything (issue #20):
// the numbers of its JSON configs (a table of field -> range below), the size of the output they imply, and
// whether the tensors a checkpoint supplies fit in the bytes of its file(s).
//
//   const cfg = await readJsonObject('vicuna/config.json', 'model config');
//   const nEmbd = configNumber(cfg, 'hidden_size', 'vicuna/config.json');          // LLAMA_LIMITS.hidden_size
//   checkConfigNumbers(cfg, LLAMA_LIMITS, 'vicuna/config.json');                     // every key present
//
// The ranges are generous enough for LLaMA-7B..70B-class decoders (LLaMA-2-70B: hidden 8192, 80 layers, 64
// heads, 8 KV heads, FFN 28672; LLaMA-3-70B: vocabulary 128256, rope_theta 500000, 8192 positions; LLaMA-3.1:
// 131072 positions), for LLaVA-Rad's tower (width 768, 12 blocks, patch 14, 518 px), and for tiny test models
// (hidden 32, 2 layers, 2 heads). Every refusal is BAD_CHECKPOINT naming the file, the field, what was
// expected and what came (a short description of the value, never the file's text).

import { LlavaRadError, describeValue } from '../errors.js';
import { ggmlTensorBytes, type GgmlType } from '../gguf/types.js';
import { readRegularFile } from '../regular-file.js';
import { DTYPE_SIZE, type LazyTensor } from './tensor.js';

/** A numeric config field: an integer, or a finite number where a float is meant. */
export interface NumberRule {
  kind: 'int' | 'float';
  min: number;
  max: number;
  /** `min` itself is refused (a float that must be strictly positive) */
  minExclusive?: boolean;
}

const int = (min: number, max: number): NumberRule => ({ kind: 'int', min, max });
const float = (min: number, max: number, minExclusive = false): NumberRule => ({ kind: 'float', min, max, minExclusive });

/** the limits on a field's value, in words ("an integer from 1 to 256") */
export function describeRule(r: NumberRule): string {
  if (r.kind === 'int') return `an integer from ${r.min} to ${r.max}`;
  return `a finite number ${r.minExclusive ? 'greater than' : 'at least'} ${r.min} and at most ${r.max}`;
}

/** the base decoder's config.json (HF LLaMA); also the same keys in LLaVA-Rad's config.json */
export const LLAMA_LIMITS = {
  hidden_size: int(1, 65_536),
  num_hidden_layers: int(1, 256),
  num_attention_heads: int(1, 1024),
  num_key_value_heads: int(1, 1024),
  intermediate_size: int(1, 262_144),
  vocab_size: int(1, 1_048_576),
  /** the context length (llama.context_length, a uint32 in the GGUF) */
  max_position_embeddings: int(1, 1_048_576),
  rms_norm_eps: float(0, 0.1, true),
  rope_theta: float(1, 1e9),
} as const satisfies Record<string, NumberRule>;

/** LLaVA-Rad's config.json: the multimodal keys (its LLaMA keys use LLAMA_LIMITS) */
export const LLAVA_LIMITS = {
  mm_hidden_size: int(1, 65_536),
  /** which tower layer feeds the projector (negative: from the end) */
  mm_vision_select_layer: int(-256, 256),
  tokenizer_model_max_length: int(1, 1_048_576),
} as const satisfies Record<string, NumberRule>;

/** peft's adapter_config.json */
export const ADAPTER_LIMITS = {
  /** LoRA rank (LLaVA-Rad: 64) */
  r: int(1, 4096),
  /** LoRA alpha (LLaVA-Rad: 128; the merge scale is alpha / r, or alpha / sqrt(r) with rsLoRA) */
  lora_alpha: float(0, 4096, true),
} as const satisfies Record<string, NumberRule>;

/** the open_clip config: top level */
export const CLIP_LIMITS = {
  embed_dim: int(1, 65_536),
} as const satisfies Record<string, NumberRule>;

/** the open_clip config: vision_cfg (image_mean / image_std are checked by configTriple) */
export const CLIP_VISION_LIMITS = {
  image_size: int(1, 8192),
  patch_size: int(1, 1024),
  head_width: int(1, 4096),
  width: int(1, 65_536),
  layers: int(1, 256),
  mlp_ratio: float(0, 64, true),
} as const satisfies Record<string, NumberRule>;

/** the open_clip config: text_cfg (not converted, but refused when absurd) */
export const CLIP_TEXT_LIMITS = {
  context_length: int(1, 65_536),
  vocab_size: int(1, 1_048_576),
  width: int(1, 65_536),
  heads: int(1, 1024),
  layers: int(1, 256),
} as const satisfies Record<string, NumberRule>;

/** the vision tower's sizes as read from its tensors' shapes */
export const TOWER_LIMITS = {
  width: int(1, 65_536),
  patch: int(1, 1024),
  ffn: int(1, 262_144),
  blocks: int(1, 256),
} as const satisfies Record<string, NumberRule>;

/** per-channel normalization of the image (open_clip's image_mean / image_std: pixels scaled to [0, 1]) */
export const IMAGE_MEAN_RULE = float(-10, 10);
export const IMAGE_STD_RULE = float(0.001, 100);

/** the most bytes the two output GGUFs may take together: a LLaMA-70B-class decoder in f32 is about 280 GB */
export const MAX_OUTPUT_BYTES = 300e9;

/** the most values one tensor may have: the converter holds tensors as float32, and Node's Buffers end at
 *  4 GiB (LLaMA-3-70B's 128256 x 8192 embedding has 1.05e9) */
export const MAX_TENSOR_VALUES = 2 ** 30;

/** the most bytes the tensors taken from one checkpoint may claim, as a multiple of its file(s)' size (shared
 *  storage and a DEFLATEd zip may legitimately claim somewhat more than the file holds; a broadcast
 *  (stride-0) view can claim any amount) */
export const MAX_CLAIM_RATIO = 2;

/** the largest JSON config / index read */
export const MAX_JSON_BYTES = 16 * 1024 * 1024;

const bad = (msg: string) => new LlavaRadError('BAD_CHECKPOINT', msg);

// ------------------------------------------------------------------------------------------------
// reading

/**
 * Reads a JSON object from a regular file of at most `maxBytes` (checked before reading: a FIFO or a huge
 * file is refused without being read; the open is non-blocking, so a FIFO without a writer does not wait).
 * Missing, unreadable, not a regular file: IO; too large, not JSON, not an object: BAD_CHECKPOINT.
 */
export async function readJsonObject(file: string, what: string, maxBytes = MAX_JSON_BYTES): Promise<Record<string, unknown>> {
  const text = (await readRegularFile(file, `the ${what}`, maxBytes,
    (size) => bad(`${file}: a ${what} of ${size} bytes is too large (at most ${maxBytes})`))).toString('utf8');
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(`${file}: a ${what} must be JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(`${file}: a ${what} must be a JSON object, got ${describeValue(v)}`);
  return v as Record<string, unknown>;
}

// ------------------------------------------------------------------------------------------------
// config numbers

function checkNumber(v: unknown, rule: NumberRule, file: string, field: string): number {
  const ok = typeof v === 'number' && Number.isFinite(v) &&
    (rule.kind === 'float' || Number.isSafeInteger(v)) &&
    (rule.minExclusive ? v > rule.min : v >= rule.min) && v <= rule.max;
  if (!ok) throw bad(`${file}: "${field}" must be ${describeRule(rule)}, got ${describeValue(v)}`);
  return v as number;
}

/**
 * The value of cfg[key] checked against `rule` (`field` names it in messages, e.g. "vision_cfg.image_size").
 * Absent (undefined or null): `def` when given, else refused.
 */
export function configNumber(
  cfg: Record<string, unknown>, key: string, rule: NumberRule, file: string, def?: number, field = key,
): number {
  const v = cfg[key];
  if ((v === undefined || v === null) && def !== undefined) return def;
  if (v === undefined) throw bad(`${file}: "${field}" is missing (expected ${describeRule(rule)})`);
  return checkNumber(v, rule, file, field);
}

/** Checks every key of `rules` that cfg has (null counts as absent); `prefix` names a nested object. */
export function checkConfigNumbers(cfg: Record<string, unknown>, rules: Readonly<Record<string, NumberRule>>, file: string, prefix = ''): void {
  for (const [key, rule] of Object.entries(rules)) {
    const v = cfg[key];
    if (v !== undefined && v !== null) checkNumber(v, rule, file, prefix + key);
  }
}

/** cfg[key] as an object (absent: {}), for nested configs like open_clip's vision_cfg */
export function configObject(cfg: Record<string, unknown>, key: string, file: string): Record<string, unknown> {
  const v = cfg[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`${file}: "${key}" must be an object, got ${describeValue(v)}`);
  return v as Record<string, unknown>;
}

/** cfg[key] as 3 numbers (one per RGB channel) inside `rule`; absent: `def` */
export function configTriple(
  cfg: Record<string, unknown>, key: string, rule: NumberRule, file: string, def: readonly number[], field = key,
): number[] {
  const v = cfg[key];
  if (v === undefined || v === null) return [...def];
  if (!Array.isArray(v) || v.length !== 3) throw bad(`${file}: "${field}" must be an array of 3 numbers (R, G, B), got ${describeValue(v)}`);
  return v.map((x, i) => checkNumber(x, rule, file, `${field}[${i}]`));
}

/** a size read from a tensor's shape, checked against `rule` (what: "the tower's width") */
export function checkTensorSize(v: number, rule: NumberRule, file: string, what: string): number {
  if (!Number.isSafeInteger(v) || v < rule.min || v > rule.max) {
    throw bad(`${file}: ${what} must be ${describeRule(rule)}, got ${describeValue(v)}`);
  }
  return v;
}

// ------------------------------------------------------------------------------------------------
// sizes

const GB = (n: number) => `${(n / 1e9).toFixed(n < 1e9 ? 3 : 1)} GB`;

/** an output tensor as planned: GGUF name, ggml type, ggml shape */
export interface OutputTensor {
  readonly name: string;
  readonly type: GgmlType;
  readonly shape: readonly number[];
}

/**
 * Refuses output tensors of more than MAX_TENSOR_VALUES values each, or over MAX_OUTPUT_BYTES together
 * (`why` says where their sizes came from); returns their bytes.
 */
export function checkOutputTensors(tensors: readonly OutputTensor[], why: string): number {
  let bytes = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, d) => a * d, 1);
    if (n > MAX_TENSOR_VALUES) {
      throw bad(`${why} imply a tensor ${t.name} [${t.shape.join(', ')}] of ${n} values, more than the ${MAX_TENSOR_VALUES} one tensor may have`);
    }
    bytes += Number(ggmlTensorBytes(t.type, t.shape));
  }
  if (!(bytes <= MAX_OUTPUT_BYTES)) {
    throw bad(`${why} imply ${GB(bytes)} of output, over the converter's ceiling of ${GB(MAX_OUTPUT_BYTES)}`);
  }
  return bytes;
}

/** what a checkpoint supplies, for checkClaimedBytes */
export interface ClaimSource {
  readonly path: string;
  /** the size of its file(s) */
  readonly fileBytes: number;
}

/**
 * Checks the tensors taken from one checkpoint against its files: each at most MAX_TENSOR_VALUES values, and
 * together (each distinct tensor once) at most MAX_CLAIM_RATIO times the bytes of the file(s). A view that
 * repeats its storage (stride 0, overlapping strides) would otherwise turn a few KB into GBs of output.
 */
export function checkClaimedBytes(source: ClaimSource, tensors: Iterable<LazyTensor>): void {
  let claimed = 0;
  for (const t of new Set(tensors)) {
    if (t.numel > MAX_TENSOR_VALUES) {
      throw bad(`${source.path}: tensor "${shortName(t.name)}" [${t.shape.join(', ')}] has ${t.numel} values, more than the ${MAX_TENSOR_VALUES} one tensor may have`);
    }
    claimed += t.numel * DTYPE_SIZE[t.dtype];
  }
  if (claimed > MAX_CLAIM_RATIO * source.fileBytes) {
    throw bad(`${source.path}: its tensors claim ${claimed} bytes but the checkpoint holds ${source.fileBytes} ` +
      `(at most ${MAX_CLAIM_RATIO}x is accepted): broadcast (stride-0) or overlapping views, or a config that does not describe this checkpoint`);
  }
}

/** a tensor name for a message: long names are cut (they come from the file) */
export function shortName(name: string): string {
  return name.length <= 100 ? name : `${name.slice(0, 80)}... (${name.length} characters)`;
}
