// The official release -> the two GGUF files our engine loads.
//
//   await convertRelease({ base: 'vicuna-7b-v1.5/', adapter: 'llava-rad/', out: 'models/llava-rad', type: 'q4_k_m' });
//
// base (lmsys/vicuna-7b-v1.5): config.json, tokenizer.model, tokenizer_config.json (optional), and the weights as
//   pytorch_model.bin.index.json (+ shards), model.safetensors.index.json (+ shards), pytorch_model.bin or
//   model.safetensors.
// adapter (microsoft/llava-rad): config.json, adapter_config.json, adapter_model.bin | .safetensors,
//   non_lora_trainables.bin (the projector), the open_clip checkpoint and config (config.json's
//   vision_tower_checkpoint / vision_tower_config, default biomedclipcxr_518_checkpoint.pt / biomedclipcxr_518.json).
//
// Decoder GGUF (llama.cpp's LLaMA conventions, runs unchanged in llama.cpp): every LoRA target merged as the
// official loader does (W + alpha/r * B @ A computed in f32, then rounded to fp16: the model the official
// code runs is fp16), q_proj / k_proj rows permuted for ggml's RoPE (rotate_half pairs (i, i + d/2) of each
// head become adjacent pairs (2i, 2i+1)), then stored in the mix's types (lib/convert/mix.ts); the
// SentencePiece vocabulary from tokenizer.model.
// Vision GGUF: the layout documented in native/src/vision_model.h; the tower's fused qkv split into q, k, v;
// values rounded to fp16 (the official loader holds the tower and projector in fp16); matrices in `visionType`
// (f16 default), biases, norms, LayerScale, class and position embeddings f32.
//
// Streaming: tensors are read, transformed, encoded and written one at a time, one tensor ahead (the next
// tensor is read and LoRA-merged while the current one is encoded): in memory at once are at most two source
// tensors as float32 (the 32000 x 4096 embedding / lm head: 0.5 GB each) plus the blocks the worker threads
// hold (lib/convert/workers.ts: LoRA merges, fp16 encoding and quantization in row blocks of ~4M values, in
// parallel, with results identical to a single thread's). Checkpoints are read by positional reads, never
// mapped, so file pages stay in the page cache, outside the process's RSS. A 7B-shaped release (16.2 GB of
// sources) converts with a peak RSS of about 1.2 GB (bench/convert-memory.mjs). Output files are written under
// temporary names and renamed into place at the end, so a failed conversion leaves no half-written model behind.

import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LlavaRadError } from '../errors.js';
import { GgufWriter } from '../gguf/writer.js';
import { GgmlType, GgufValueType, f16BitsToF32, f32ToF16Bits, ggmlTensorBytes, ggmlTypeTraits } from '../gguf/types.js';
import { openCheckpoint, stripModulePrefix, type Checkpoint } from './checkpoint.js';
import { CONVERT_FILE_TYPE, decoderTensorType, isConvertType, type ConvertType } from './mix.js';
import { readSentencePiece } from './sentencepiece.js';
import type { LazyTensor } from './tensor.js';
import { ConvertPool, defaultConvertThreads } from './workers.js';

export { CONVERT_TYPES, isConvertType, type ConvertType } from './mix.js';

/** bump when the converter's output changes */
export const CONVERTER_VERSION = '1';

export interface ConvertProgress {
  phase: 'decoder' | 'vision';
  /** GGUF name of the tensor just written */
  tensor: string;
  /** tensors written so far in this phase, and the phase's total */
  done: number;
  total: number;
  /** output bytes written so far over both files, and the expected total */
  bytesDone: number;
  bytesTotal: number;
}

export interface ConvertOptions {
  /** the Vicuna folder */
  base: string;
  /** the LLaVA-Rad folder */
  adapter: string;
  /** output folder (created) */
  out: string;
  /** decoder type (default f16) */
  type?: ConvertType;
  /** vision matrices: f16 (default) or f32 */
  visionType?: 'f16' | 'f32';
  /** worker threads for LoRA merges, fp16 encoding and quantization (default: $LLAVA_RAD_CONVERT_THREADS, else
   *  the CPUs available, at most 8); the output does not depend on it */
  threads?: number;
  onProgress?: (p: ConvertProgress) => void;
}

export interface ConvertResult {
  out: string;
  decoder: string;
  vision: string;
  manifest: string;
  type: ConvertType;
  /** ggml type name of every decoder tensor */
  decoderTypes: Record<string, string>;
  /** merged LoRA targets */
  loraMerged: number;
  loraScale: number;
}

const bad = (msg: string) => new LlavaRadError('BAD_CHECKPOINT', msg);

// ------------------------------------------------------------------------------------------------
// small file helpers

function need(dir: string, file: string, what: string): string {
  const p = path.join(dir, file);
  if (!existsSync(p)) throw new LlavaRadError('IO', `${what}: ${p} is missing`);
  return p;
}

async function readJson(file: string, what: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    const buf = await readFile(file);
    if (buf.length > 16 * 1024 * 1024) throw bad(`${file}: too large for a ${what}`);
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(`${file}: expected a JSON object`);
  return v as Record<string, unknown>;
}

function int(cfg: Record<string, unknown>, key: string, file: string, def?: number): number {
  const v = cfg[key] ?? def;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) throw bad(`${file}: "${key}" must be a positive integer, got ${JSON.stringify(cfg[key])}`);
  return v;
}

function firstExisting(dir: string, names: readonly string[]): string | undefined {
  for (const n of names) if (existsSync(path.join(dir, n))) return path.join(dir, n);
  return undefined;
}

// ------------------------------------------------------------------------------------------------
// numeric helpers

/** rounds every value to the nearest fp16 (what a torch .half() holds), in place */
function roundF16InPlace(a: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] = f16BitsToF32(f32ToF16Bits(a[i]!));
}

/**
 * llama.cpp's q/k permutation: within each head of `headDim` rows, HF row (j * headDim/2 + i) goes to row
 * (2i + j), so ggml's NORM RoPE (adjacent pairs) computes what HF's rotate_half (pairs i, i + d/2) does.
 */
export function permuteQK(w: Float32Array, nHead: number, rowLen: number): Float32Array {
  const rows = w.length / rowLen;
  if (!Number.isInteger(rows) || rows % nHead !== 0 || (rows / nHead) % 2 !== 0) {
    throw bad(`cannot split ${rows} rows into ${nHead} heads of an even size`);
  }
  const hd = rows / nHead;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = (h * hd + j * half + i) * rowLen;
        const to = (h * hd + 2 * i + j) * rowLen;
        out.set(w.subarray(from, from + rowLen), to);
      }
    }
  }
  return out;
}

/** encodes values (rows of rowLen) as `type` on the pool and writes them to the GGUF in order, block by block */
async function writeEncoded(pool: ConvertPool, w: GgufWriter, name: string, type: GgmlType, values: Float32Array, rowLen: number): Promise<void> {
  for (const block of pool.encode(name, type, values, rowLen)) await w.writeTensorChunk(name, await block);
}

function checkShape(t: LazyTensor, shape: readonly number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw bad(`${what}: "${t.name}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
}

function floatTensor(t: LazyTensor, what: string): void {
  if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16' && t.dtype !== 'F64') {
    throw bad(`${what}: "${t.name}" is ${t.dtype}, expected a floating-point tensor`);
  }
}

// ------------------------------------------------------------------------------------------------
// the plan: every output tensor, its source and transformation, decided before anything is written

interface PlannedTensor {
  name: string;
  /** ggml order */
  shape: number[];
  type: GgmlType;
  /** produces the float values (row-major, ggml rows); CPU-heavy steps run on the pool */
  values: (pool: ConvertPool) => Promise<Float32Array>;
}

interface DecoderPlan {
  hp: {
    nEmbd: number; nLayer: number; nHead: number; nHeadKv: number; nFf: number; nVocab: number; nCtx: number;
    eps: number; ropeBase: number;
  };
  tensors: PlannedTensor[];
  loraMerged: number;
  loraScale: number;
  loraR: number;
}

const HF_TO_GGUF: ReadonlyArray<[string, string]> = [
  ['input_layernorm.weight', 'attn_norm.weight'],
  ['self_attn.q_proj.weight', 'attn_q.weight'],
  ['self_attn.k_proj.weight', 'attn_k.weight'],
  ['self_attn.v_proj.weight', 'attn_v.weight'],
  ['self_attn.o_proj.weight', 'attn_output.weight'],
  ['post_attention_layernorm.weight', 'ffn_norm.weight'],
  ['mlp.gate_proj.weight', 'ffn_gate.weight'],
  ['mlp.up_proj.weight', 'ffn_up.weight'],
  ['mlp.down_proj.weight', 'ffn_down.weight'],
];

async function planDecoder(
  baseCfgFile: string, baseCfg: Record<string, unknown>, base: Checkpoint,
  adapterCfgFile: string, adapterCfg: Record<string, unknown>, lora: Checkpoint, llavaCfg: Record<string, unknown>, llavaCfgFile: string,
  type: ConvertType,
): Promise<DecoderPlan> {
  const mt = baseCfg.model_type;
  if (mt !== undefined && mt !== 'llama') throw new LlavaRadError('UNSUPPORTED', `${baseCfgFile}: model_type "${String(mt)}", expected "llama"`);
  if (baseCfg.rope_scaling !== undefined && baseCfg.rope_scaling !== null) {
    throw new LlavaRadError('UNSUPPORTED', `${baseCfgFile}: rope_scaling is not supported`);
  }
  const nEmbd = int(baseCfg, 'hidden_size', baseCfgFile);
  const nLayer = int(baseCfg, 'num_hidden_layers', baseCfgFile);
  const nHead = int(baseCfg, 'num_attention_heads', baseCfgFile);
  const nHeadKv = int(baseCfg, 'num_key_value_heads', baseCfgFile, nHead);
  const nFf = int(baseCfg, 'intermediate_size', baseCfgFile);
  const nVocab = int(baseCfg, 'vocab_size', baseCfgFile);
  const nCtx = int(baseCfg, 'max_position_embeddings', baseCfgFile, 4096);
  const eps = typeof baseCfg.rms_norm_eps === 'number' ? baseCfg.rms_norm_eps : 1e-6;
  const ropeBase = typeof baseCfg.rope_theta === 'number' ? baseCfg.rope_theta : 10000;
  if (nEmbd % nHead !== 0 || nHead % nHeadKv !== 0 || (nEmbd / nHead) % 2 !== 0) {
    throw bad(`${baseCfgFile}: hidden_size ${nEmbd}, ${nHead} heads, ${nHeadKv} KV heads do not fit together`);
  }
  if (baseCfg.tie_word_embeddings === true) throw new LlavaRadError('UNSUPPORTED', `${baseCfgFile}: tied word embeddings are not expected for LLaMA-2`);
  // the LLaVA-Rad config describes the decoder it was trained on
  for (const [k, v] of [['hidden_size', nEmbd], ['num_hidden_layers', nLayer], ['num_attention_heads', nHead],
    ['intermediate_size', nFf], ['vocab_size', nVocab]] as const) {
    if (llavaCfg[k] !== undefined && llavaCfg[k] !== v) {
      throw bad(`the adapter is for another base: ${llavaCfgFile} has ${k} ${JSON.stringify(llavaCfg[k])}, ${baseCfgFile} has ${v}`);
    }
  }

  // ---- base tensors ----
  const bt = base.tensors;
  const get = (name: string): LazyTensor => {
    const t = bt.get(name);
    if (!t) throw bad(`${base.path}: tensor "${name}" is missing`);
    floatTensor(t, base.path);
    return t;
  };
  const kvDim = (nEmbd / nHead) * nHeadKv;
  const hfShapes = new Map<string, number[]>();
  hfShapes.set('model.embed_tokens.weight', [nVocab, nEmbd]);
  hfShapes.set('lm_head.weight', [nVocab, nEmbd]);
  hfShapes.set('model.norm.weight', [nEmbd]);
  for (let i = 0; i < nLayer; i++) {
    const p = `model.layers.${i}.`;
    hfShapes.set(p + 'input_layernorm.weight', [nEmbd]);
    hfShapes.set(p + 'post_attention_layernorm.weight', [nEmbd]);
    hfShapes.set(p + 'self_attn.q_proj.weight', [nEmbd, nEmbd]);
    hfShapes.set(p + 'self_attn.k_proj.weight', [kvDim, nEmbd]);
    hfShapes.set(p + 'self_attn.v_proj.weight', [kvDim, nEmbd]);
    hfShapes.set(p + 'self_attn.o_proj.weight', [nEmbd, nEmbd]);
    hfShapes.set(p + 'mlp.gate_proj.weight', [nFf, nEmbd]);
    hfShapes.set(p + 'mlp.up_proj.weight', [nFf, nEmbd]);
    hfShapes.set(p + 'mlp.down_proj.weight', [nEmbd, nFf]);
  }
  for (const [name, shape] of hfShapes) checkShape(get(name), shape, base.path);
  for (const name of bt.keys()) {
    if (hfShapes.has(name) || name.endsWith('.rotary_emb.inv_freq')) continue;
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m && Number(m[1]) >= nLayer) throw bad(`${base.path}: "${name}" is beyond the ${nLayer} layers config.json declares`);
    throw bad(`${base.path}: unexpected tensor "${name}" (not part of a LLaMA decoder)`);
  }

  // ---- LoRA ----
  if (adapterCfg.peft_type !== undefined && adapterCfg.peft_type !== 'LORA') {
    throw new LlavaRadError('UNSUPPORTED', `${adapterCfgFile}: peft_type "${String(adapterCfg.peft_type)}", expected "LORA"`);
  }
  if (adapterCfg.use_dora === true) throw new LlavaRadError('UNSUPPORTED', `${adapterCfgFile}: DoRA adapters are not supported`);
  if (adapterCfg.fan_in_fan_out === true) throw new LlavaRadError('UNSUPPORTED', `${adapterCfgFile}: fan_in_fan_out adapters are not supported`);
  const r = int(adapterCfg, 'r', adapterCfgFile);
  const alpha = adapterCfg.lora_alpha;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha)) throw bad(`${adapterCfgFile}: "lora_alpha" must be a number`);
  const scale = adapterCfg.use_rslora === true ? alpha / Math.sqrt(r) : alpha / r;
  const pairs = new Map<string, { a?: LazyTensor; b?: LazyTensor }>();
  for (const [name, t] of lora.tensors) {
    const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(name);
    if (!m) {
      if (/lora_(embedding_)?[AB]|lora_magnitude/.test(name)) throw new LlavaRadError('UNSUPPORTED', `${lora.path}: unsupported LoRA tensor "${name}"`);
      continue; // e.g. modules_to_save copies: not part of the merge
    }
    const target = `${m[1]}.weight`;
    if (!hfShapes.has(target) || !target.startsWith('model.layers.')) {
      const lm = /^model\.layers\.(\d+)\./.exec(target);
      if (lm && Number(lm[1]) >= nLayer) throw bad(`the adapter is for another base: ${lora.path} has "${name}" but the base has ${nLayer} layers`);
      throw bad(`the adapter is for another base: ${lora.path} targets "${target}", which the base does not have`);
    }
    floatTensor(t, lora.path);
    let e = pairs.get(target);
    if (!e) pairs.set(target, (e = {}));
    if (m[2] === 'A') e.a = t; else e.b = t;
  }
  for (const [target, e] of pairs) {
    if (!e.a || !e.b) throw bad(`${lora.path}: "${target}" has lora_${e.a ? 'A' : 'B'} but no lora_${e.a ? 'B' : 'A'}`);
    const [out, inn] = hfShapes.get(target)!;
    if (e.a.shape.length !== 2 || e.a.shape[0] !== r || e.a.shape[1] !== inn || e.b.shape.length !== 2 || e.b.shape[0] !== out || e.b.shape[1] !== r) {
      throw bad(`the adapter is for another base: LoRA of "${target}" has A [${e.a.shape.join(', ')}] and B [${e.b.shape.join(', ')}], ` +
        `expected A [${r}, ${inn}] and B [${out}, ${r}] (r ${r} from ${adapterCfgFile}, base weight [${out}, ${inn}])`);
    }
  }
  if (pairs.size === 0) throw bad(`${lora.path}: no LoRA tensors (base_model.model.*.lora_A.weight / lora_B.weight)`);

  // ---- the output tensors ----
  const tensors: PlannedTensor[] = [];
  const add = (hf: string, gguf: string, permuteHeads = 0): void => {
    const src = get(hf);
    const hfShape = hfShapes.get(hf)!;
    const shape = [...hfShape].reverse();
    const pair = pairs.get(hf);
    tensors.push({
      name: gguf,
      shape,
      type: decoderTensorType(type, gguf, shape, nLayer),
      values: async (pool) => {
        let v = await src.readFloat32();
        if (pair) {
          // fp16(W + scale * B @ A): the official loader's merged fp16 model
          const [out, inn] = hfShape as [number, number];
          v = await pool.mergeLora(v, await pair.a!.readFloat32(), await pair.b!.readFloat32(), out, inn, r, scale);
        } else if (src.dtype !== 'F16') {
          roundF16InPlace(v); // the official loader's fp16 model
        }
        if (permuteHeads) v = permuteQK(v, permuteHeads, hfShape[1]!);
        return v;
      },
    });
  };
  add('model.embed_tokens.weight', 'token_embd.weight');
  for (let i = 0; i < nLayer; i++) {
    for (const [hf, g] of HF_TO_GGUF) {
      const heads = g === 'attn_q.weight' ? nHead : g === 'attn_k.weight' ? nHeadKv : 0;
      add(`model.layers.${i}.${hf}`, `blk.${i}.${g}`, heads);
    }
  }
  add('model.norm.weight', 'output_norm.weight');
  add('lm_head.weight', 'output.weight');
  return { hp: { nEmbd, nLayer, nHead, nHeadKv, nFf, nVocab, nCtx, eps, ropeBase }, tensors, loraMerged: pairs.size, loraScale: scale, loraR: r };
}

// ------------------------------------------------------------------------------------------------
// vision

const OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_STD = [0.26862954, 0.26130258, 0.27577711];

interface VisionPlan {
  hp: { imageSize: number; patch: number; dim: number; depth: number; heads: number; ff: number; nOut: number; selectLayer: number; mean: number[]; std: number[] };
  tensors: PlannedTensor[];
}

function planVision(
  tower: Checkpoint, projector: Checkpoint, clipCfg: Record<string, unknown>, clipCfgFile: string,
  llavaCfg: Record<string, unknown>, llavaCfgFile: string, nEmbdDecoder: number, matrixType: GgmlType,
): VisionPlan {
  // ---- the trunk: (module.)visual.trunk.* inside (state_dict) ----
  const all = stripModulePrefix(tower.tensors);
  const PFX = 'visual.trunk.';
  const trunk = new Map<string, LazyTensor>();
  for (const [k, t] of all) if (k.startsWith(PFX)) trunk.set(k.slice(PFX.length), t);
  if (trunk.size === 0) throw bad(`${tower.path}: no vision tower tensors ("visual.trunk.*" or "module.visual.trunk.*")`);
  const get = (k: string): LazyTensor => {
    const t = trunk.get(k);
    if (!t) throw bad(`${tower.path}: tensor "${PFX}${k}" is missing`);
    floatTensor(t, tower.path);
    return t;
  };
  const cls = get('cls_token');
  if (cls.shape.length !== 3 || cls.shape[0] !== 1 || cls.shape[1] !== 1) throw bad(`${tower.path}: cls_token has shape [${cls.shape.join(', ')}], expected [1, 1, width]`);
  const dim = cls.shape[2]!;
  const pw = get('patch_embed.proj.weight');
  if (pw.shape.length !== 4 || pw.shape[0] !== dim || pw.shape[1] !== 3 || pw.shape[2] !== pw.shape[3]) {
    throw bad(`${tower.path}: patch_embed.proj.weight has shape [${pw.shape.join(', ')}], expected [${dim}, 3, P, P]`);
  }
  const patch = pw.shape[2]!;
  const vcfg = (clipCfg.vision_cfg ?? {}) as Record<string, unknown>;
  if (typeof vcfg !== 'object' || vcfg === null) throw bad(`${clipCfgFile}: "vision_cfg" must be an object`);
  const pos = get('pos_embed');
  const imageSize = typeof vcfg.image_size === 'number' ? vcfg.image_size : Math.round(Math.sqrt((pos.shape[1] ?? 1) - 1)) * patch;
  if (!Number.isSafeInteger(imageSize) || imageSize % patch !== 0) throw bad(`${clipCfgFile}: image_size ${String(imageSize)} is not a multiple of the patch size ${patch}`);
  const grid = imageSize / patch;
  checkShape(pos, [1, grid * grid + 1, dim], `${tower.path} (image_size ${imageSize}, patch ${patch}: CLS + ${grid}x${grid} positions; interpolation is not supported)`);
  const headWidth = typeof vcfg.head_width === 'number' ? vcfg.head_width : 64;
  const heads = dim / headWidth;
  if (!Number.isSafeInteger(heads) || heads < 1) throw bad(`${clipCfgFile}: width ${dim} is not a multiple of head_width ${headWidth}`);
  let depth = 0;
  while (trunk.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
  if (depth === 0) throw bad(`${tower.path}: no transformer blocks (visual.trunk.blocks.N.*)`);
  for (const k of trunk.keys()) {
    const m = /^blocks\.(\d+)\./.exec(k);
    if (m && Number(m[1]) >= depth) throw bad(`${tower.path}: block ${m[1]} without block ${depth} before it`);
    if (/^(reg_token|register_tokens)/.test(k)) throw new LlavaRadError('UNSUPPORTED', `${tower.path}: register tokens are not supported`);
  }
  if (trunk.has('norm_pre.weight')) throw new LlavaRadError('UNSUPPORTED', `${tower.path}: a pre-norm (norm_pre) is not supported`);
  const fc1 = get('blocks.0.mlp.fc1.weight');
  const ff = fc1.shape[0]!;
  const selectLayer = typeof llavaCfg.mm_vision_select_layer === 'number' ? llavaCfg.mm_vision_select_layer : -2;
  if (!Number.isInteger(selectLayer) || selectLayer >= 0 || -selectLayer > depth) {
    throw new LlavaRadError('UNSUPPORTED', `${llavaCfgFile}: mm_vision_select_layer ${selectLayer} (expected -1 .. -${depth})`);
  }
  const mmHidden = llavaCfg.mm_hidden_size;
  if (mmHidden !== undefined && mmHidden !== dim) throw bad(`${llavaCfgFile}: mm_hidden_size ${String(mmHidden)} but the tower's width is ${dim}`);
  const mean = Array.isArray(vcfg.image_mean) ? (vcfg.image_mean as number[]) : OPENAI_MEAN;
  const std = Array.isArray(vcfg.image_std) ? (vcfg.image_std as number[]) : OPENAI_STD;

  // ---- projector ----
  const proj = stripModulePrefix(projector.tensors);
  const pget = (i: 0 | 2, what: 'weight' | 'bias'): LazyTensor => {
    const keys = [`base_model.model.model.mm_projector.${i}.${what}`, `model.mm_projector.${i}.${what}`];
    for (const k of keys) {
      const t = proj.get(k);
      if (t) { floatTensor(t, projector.path); return t; }
    }
    throw bad(`${projector.path}: projector tensor "${keys[0]}" is missing`);
  };
  const p0w = pget(0, 'weight');
  const nOut = p0w.shape[0]!;
  checkShape(p0w, [nOut, dim], `${projector.path}`);
  if (nOut !== nEmbdDecoder) throw bad(`the adapter is for another base: its projector writes ${nOut}-wide rows, the decoder's hidden size is ${nEmbdDecoder}`);
  checkShape(pget(0, 'bias'), [nOut], projector.path);
  checkShape(pget(2, 'weight'), [nOut, nOut], projector.path);
  checkShape(pget(2, 'bias'), [nOut], projector.path);

  // ---- output tensors ----
  const tensors: PlannedTensor[] = [];
  const F32 = GgmlType.F32;
  const plain = (name: string, src: LazyTensor, shape: number[], type: GgmlType, rows?: [number, number]): void => {
    tensors.push({
      name, shape, type,
      values: async () => {
        let v = await src.readFloat32();
        if (rows) v = v.slice(rows[0], rows[1]);
        roundF16InPlace(v);
        return v;
      },
    });
  };
  const mat = (k: string, shape: number[]) => {
    const t = get(k);
    checkShape(t, shape, tower.path);
    return t;
  };
  plain('v.patch_embd.weight', pw, [patch, patch, 3, dim], matrixType);
  plain('v.patch_embd.bias', mat('patch_embed.proj.bias', [dim]), [dim], F32);
  plain('v.class_embd', cls, [dim], F32);
  plain('v.position_embd.weight', pos, [dim, grid * grid + 1], F32);
  for (let i = 0; i < depth; i++) {
    const p = `blocks.${i}.`;
    const b = `v.blk.${i}.`;
    plain(b + 'ln1.weight', mat(p + 'norm1.weight', [dim]), [dim], F32);
    plain(b + 'ln1.bias', mat(p + 'norm1.bias', [dim]), [dim], F32);
    const qkvW = mat(p + 'attn.qkv.weight', [3 * dim, dim]);
    const qkvB = mat(p + 'attn.qkv.bias', [3 * dim]);
    ['attn_q', 'attn_k', 'attn_v'].forEach((n, j) => {  // fused rows are q, k, v
      plain(`${b}${n}.weight`, qkvW, [dim, dim], matrixType, [j * dim * dim, (j + 1) * dim * dim]);
      plain(`${b}${n}.bias`, qkvB, [dim], F32, [j * dim, (j + 1) * dim]);
    });
    plain(b + 'attn_out.weight', mat(p + 'attn.proj.weight', [dim, dim]), [dim, dim], matrixType);
    plain(b + 'attn_out.bias', mat(p + 'attn.proj.bias', [dim]), [dim], F32);
    plain(b + 'ls1.weight', mat(p + 'ls1.gamma', [dim]), [dim], F32);
    plain(b + 'ln2.weight', mat(p + 'norm2.weight', [dim]), [dim], F32);
    plain(b + 'ln2.bias', mat(p + 'norm2.bias', [dim]), [dim], F32);
    plain(b + 'ffn_up.weight', mat(p + 'mlp.fc1.weight', [ff, dim]), [dim, ff], matrixType);
    plain(b + 'ffn_up.bias', mat(p + 'mlp.fc1.bias', [ff]), [ff], F32);
    plain(b + 'ffn_down.weight', mat(p + 'mlp.fc2.weight', [dim, ff]), [ff, dim], matrixType);
    plain(b + 'ffn_down.bias', mat(p + 'mlp.fc2.bias', [dim]), [dim], F32);
    plain(b + 'ls2.weight', mat(p + 'ls2.gamma', [dim]), [dim], F32);
  }
  plain('mm.0.weight', p0w, [dim, nOut], matrixType);
  plain('mm.0.bias', pget(0, 'bias'), [nOut], F32);
  plain('mm.2.weight', pget(2, 'weight'), [nOut, nOut], matrixType);
  plain('mm.2.bias', pget(2, 'bias'), [nOut], F32);
  return { hp: { imageSize, patch, dim, depth, heads, ff, nOut, selectLayer, mean, std }, tensors };
}

// ------------------------------------------------------------------------------------------------

interface SourceFile { name: string; size: number }

function sourceEntry(root: string, label: string, file: string): SourceFile {
  return { name: `${label}/${path.relative(root, file).split(path.sep).join('/')}`, size: statSync(file).size };
}

/** Converts the official release into DIR/{decoder, vision}.gguf + DIR/llava-rad.json. */
export async function convertRelease(options: ConvertOptions): Promise<ConvertResult> {
  if (options === null || typeof options !== 'object') throw new LlavaRadError('INVALID_ARGUMENT', 'convertRelease needs an options object');
  const { base: baseDir, adapter: adapterDir, out } = options;
  for (const [k, v] of [['base', baseDir], ['adapter', adapterDir], ['out', out]] as const) {
    if (typeof v !== 'string' || v.length === 0) throw new LlavaRadError('INVALID_ARGUMENT', `convertRelease: "${k}" must be a folder path`);
  }
  const type = options.type ?? 'f16';
  if (!isConvertType(type)) throw new LlavaRadError('INVALID_ARGUMENT', `convertRelease: unknown type "${String(type)}" (f32, f16, q8_0, q5_k_m, q4_k_m)`);
  const visionType = options.visionType ?? 'f16';
  if (visionType !== 'f16' && visionType !== 'f32') throw new LlavaRadError('INVALID_ARGUMENT', `convertRelease: visionType must be f16 or f32`);
  const threads = options.threads ?? defaultConvertThreads(); // checks $LLAVA_RAD_CONVERT_THREADS
  if (!Number.isSafeInteger(threads) || threads < 1 || threads > 256) {
    throw new LlavaRadError('INVALID_ARGUMENT', `convertRelease: threads must be an integer from 1 to 256, got ${String(threads)}`);
  }
  for (const [what, dir] of [['base', baseDir], ['adapter', adapterDir]] as const) {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new LlavaRadError('IO', `the ${what} folder ${dir} does not exist`);
  }

  // ---- inputs ----
  const baseCfgFile = need(baseDir, 'config.json', 'the base (Vicuna) folder');
  const tokFile = need(baseDir, 'tokenizer.model', 'the base (Vicuna) folder');
  const weightsFile = firstExisting(baseDir, ['pytorch_model.bin.index.json', 'model.safetensors.index.json', 'pytorch_model.bin', 'model.safetensors']);
  if (!weightsFile) throw new LlavaRadError('IO', `the base folder ${baseDir} has no weights (pytorch_model.bin.index.json, model.safetensors.index.json, pytorch_model.bin or model.safetensors)`);
  const llavaCfgFile = need(adapterDir, 'config.json', 'the LLaVA-Rad folder');
  const adapterCfgFile = need(adapterDir, 'adapter_config.json', 'the LLaVA-Rad folder');
  const loraFile = firstExisting(adapterDir, ['adapter_model.bin', 'adapter_model.safetensors']);
  if (!loraFile) throw new LlavaRadError('IO', `the LLaVA-Rad folder ${adapterDir} has no adapter_model.bin / adapter_model.safetensors`);
  const projFile = need(adapterDir, 'non_lora_trainables.bin', 'the LLaVA-Rad folder');
  const baseCfg = await readJson(baseCfgFile, 'model config');
  const llavaCfg = await readJson(llavaCfgFile, 'model config');
  const adapterCfg = await readJson(adapterCfgFile, 'adapter config');
  const clipCfgName = typeof llavaCfg.vision_tower_config === 'string' ? path.basename(llavaCfg.vision_tower_config) : 'biomedclipcxr_518.json';
  const clipCkptName = typeof llavaCfg.vision_tower_checkpoint === 'string' ? path.basename(llavaCfg.vision_tower_checkpoint) : 'biomedclipcxr_518_checkpoint.pt';
  const clipCfgFile = need(adapterDir, clipCfgName, 'the LLaVA-Rad folder');
  const clipCkptFile = need(adapterDir, clipCkptName, 'the LLaVA-Rad folder');
  const clipCfg = await readJson(clipCfgFile, 'open_clip config');
  if (llavaCfg.mm_projector_type !== undefined && llavaCfg.mm_projector_type !== 'mlp2x_gelu') {
    throw new LlavaRadError('UNSUPPORTED', `${llavaCfgFile}: mm_projector_type "${String(llavaCfg.mm_projector_type)}", expected "mlp2x_gelu"`);
  }
  if (llavaCfg.mm_vision_select_feature !== undefined && llavaCfg.mm_vision_select_feature !== 'patch') {
    throw new LlavaRadError('UNSUPPORTED', `${llavaCfgFile}: mm_vision_select_feature "${String(llavaCfg.mm_vision_select_feature)}", expected "patch"`);
  }
  for (const k of ['mm_use_im_start_end', 'mm_use_im_patch_token']) {
    if (llavaCfg[k] === true) throw new LlavaRadError('UNSUPPORTED', `${llavaCfgFile}: ${k} true is not supported`);
  }
  let addBos = true;
  const tokCfgFile = path.join(baseDir, 'tokenizer_config.json');
  if (existsSync(tokCfgFile)) {
    const tc = await readJson(tokCfgFile, 'tokenizer config');
    if (typeof tc.add_bos_token === 'boolean') addBos = tc.add_bos_token;
  }
  const sp = await readSentencePiece(tokFile);

  const opened: Checkpoint[] = [];
  const openCk = async (f: string) => {
    const c = await openCheckpoint(f);
    opened.push(c);
    return c;
  };
  const outDir = path.resolve(out);
  const decoderName = `llava-rad-decoder-${type}.gguf`;
  const visionName = `llava-rad-vision-${visionType}.gguf`;
  const tmpTag = `.tmp-${process.pid}-${Date.now()}`;
  const decTmp = path.join(outDir, decoderName + tmpTag);
  const visTmp = path.join(outDir, visionName + tmpTag);
  let dw: GgufWriter | undefined;
  let vw: GgufWriter | undefined;
  let pool: ConvertPool | undefined;
  try {
    const base = await openCk(weightsFile);
    const lora = await openCk(loraFile);
    const projector = await openCk(projFile);
    const towerCk = await openCk(clipCkptFile);
    const dec = await planDecoder(baseCfgFile, baseCfg, base, adapterCfgFile, adapterCfg, lora, llavaCfg, llavaCfgFile, type);
    if (sp.tokens.length !== dec.hp.nVocab) {
      throw bad(`${tokFile} has ${sp.tokens.length} pieces, ${baseCfgFile} declares vocab_size ${dec.hp.nVocab}`);
    }
    if (sp.modelTypeName !== 'bpe') throw new LlavaRadError('UNSUPPORTED', `${tokFile}: a ${sp.modelTypeName} SentencePiece model, expected BPE (LLaMA)`);
    const vis = planVision(towerCk, projector, clipCfg, clipCfgFile, llavaCfg, llavaCfgFile, dec.hp.nEmbd,
      visionType === 'f16' ? GgmlType.F16 : GgmlType.F32);

    // provenance
    const sources: SourceFile[] = [];
    const baseFiles = [baseCfgFile, tokFile, weightsFile];
    if (weightsFile.endsWith('.index.json')) {
      const idx = await readJson(weightsFile, 'index');
      const wm = idx.weight_map as Record<string, string>;
      for (const f of new Set(Object.values(wm))) baseFiles.push(path.join(baseDir, f));
    }
    for (const f of baseFiles) sources.push(sourceEntry(baseDir, 'base', f));
    for (const f of [llavaCfgFile, adapterCfgFile, loraFile, projFile, clipCkptFile, clipCfgFile]) sources.push(sourceEntry(adapterDir, 'adapter', f));

    await mkdir(outDir, { recursive: true });

    // ---- decoder header ----
    const hp = dec.hp;
    dw = new GgufWriter(decTmp);
    const U32 = GgufValueType.UINT32;
    dw.addString('general.architecture', 'llama');
    dw.addString('general.name', 'LLaVA-Rad decoder (Vicuna-7B v1.5 + LLaVA-Rad LoRA, merged)');
    dw.addUint32('general.file_type', CONVERT_FILE_TYPE[type]);
    if (type !== 'f32' && type !== 'f16') dw.addUint32('general.quantization_version', 2);
    dw.addString('general.license', 'Microsoft Research License (LLaVA-Rad); Llama 2 Community License (Vicuna). Research use only.');
    dw.addUint32('llama.context_length', hp.nCtx);
    dw.addUint32('llama.embedding_length', hp.nEmbd);
    dw.addUint32('llama.block_count', hp.nLayer);
    dw.addUint32('llama.feed_forward_length', hp.nFf);
    dw.addUint32('llama.attention.head_count', hp.nHead);
    dw.addUint32('llama.attention.head_count_kv', hp.nHeadKv);
    dw.addFloat32('llama.attention.layer_norm_rms_epsilon', hp.eps);
    dw.addFloat32('llama.rope.freq_base', hp.ropeBase);
    dw.addUint32('llama.rope.dimension_count', hp.nEmbd / hp.nHead);
    dw.addUint32('llama.vocab_size', hp.nVocab);
    dw.addString('tokenizer.ggml.model', 'llama');
    dw.addArray('tokenizer.ggml.tokens', GgufValueType.STRING, sp.tokens);
    dw.addArray('tokenizer.ggml.scores', GgufValueType.FLOAT32, sp.scores);
    dw.addArray('tokenizer.ggml.token_type', GgufValueType.INT32, sp.types);
    if (sp.bosId >= 0) dw.addUint32('tokenizer.ggml.bos_token_id', sp.bosId);
    if (sp.eosId >= 0) dw.addUint32('tokenizer.ggml.eos_token_id', sp.eosId);
    if (sp.unkId >= 0) dw.addUint32('tokenizer.ggml.unknown_token_id', sp.unkId);
    if (sp.padId >= 0) dw.addUint32('tokenizer.ggml.padding_token_id', sp.padId);
    dw.addBool('tokenizer.ggml.add_bos_token', addBos);
    dw.addBool('tokenizer.ggml.add_eos_token', false);
    dw.addBool('tokenizer.ggml.add_space_prefix', sp.addDummyPrefix);
    addProvenance(dw, type, sources, { r: dec.loraR, scale: dec.loraScale, merged: dec.loraMerged });
    for (const t of dec.tensors) dw.addTensorInfo(t.name, t.type, t.shape);

    // ---- vision header ----
    const v = vis.hp;
    vw = new GgufWriter(visTmp);
    vw.addString('general.architecture', 'clip');
    vw.addString('general.name', 'LLaVA-Rad vision tower (BiomedCLIP-CXR 518) + mlp2x_gelu projector');
    vw.addUint32('general.file_type', visionType === 'f16' ? 1 : 0);
    vw.addBool('clip.has_vision_encoder', true);
    vw.addBool('clip.has_text_encoder', false);
    vw.addString('clip.projector_type', 'mlp');
    vw.addBool('clip.use_gelu', true);
    vw.addUint32('clip.vision.image_size', v.imageSize);
    vw.addUint32('clip.vision.patch_size', v.patch);
    vw.addUint32('clip.vision.embedding_length', v.dim);
    vw.addUint32('clip.vision.feed_forward_length', v.ff);
    vw.addUint32('clip.vision.block_count', v.depth);
    vw.addUint32('clip.vision.attention.head_count', v.heads);
    vw.addFloat32('clip.vision.attention.layer_norm_epsilon', 1e-6);
    vw.addUint32('clip.vision.projection_dim', v.nOut);
    vw.addArray('clip.vision.image_mean', GgufValueType.FLOAT32, Float32Array.from(v.mean));
    vw.addArray('clip.vision.image_std', GgufValueType.FLOAT32, Float32Array.from(v.std));
    vw.addInt32('llava_rad.vision.select_layer', v.selectLayer);
    vw.addBool('llava_rad.vision.layer_scale', true);
    vw.addString('llava_rad.vision.gelu', 'erf');
    vw.addString('llava_rad.vision.cls_position', 'first');
    vw.addString('llava_rad.vision.crop_mode', 'resize_short_center_crop');
    vw.addString('llava_rad.projector.type', 'mlp2x_gelu');
    addProvenance(vw, visionType, sources);
    for (const t of vis.tensors) vw.addTensorInfo(t.name, t.type, t.shape);

    const size = (ts: PlannedTensor[]) => ts.reduce((a, t) => a + Number(ggmlTensorBytes(t.type, t.shape)), 0);
    const bytesTotal = size(dec.tensors) + size(vis.tensors);
    let bytesDone = 0;
    const decoderTypes: Record<string, string> = {};
    pool = new ConvertPool({ threads });
    const p = pool;
    for (const [w, ts, phase] of [[dw, dec.tensors, 'decoder'], [vw, vis.tensors, 'vision']] as const) {
      await w.writeHeader();
      let done = 0;
      // one tensor ahead: the next tensor is read (and merged) while this one is encoded and written
      const start = (i: number): Promise<Float32Array> | undefined => {
        if (i >= ts.length) return undefined;
        const pr = ts[i]!.values(p);
        pr.catch(() => {}); // awaited below, or abandoned when an earlier tensor fails
        return pr;
      };
      let next = start(0);
      for (let i = 0; i < ts.length; i++) {
        const t = ts[i]!;
        const values = await next!;
        next = start(i + 1);
        await writeEncoded(p, w, t.name, t.type, values, t.shape[0]!);
        if (phase === 'decoder') decoderTypes[t.name] = ggmlTypeTraits(t.type)!.name;
        bytesDone += Number(ggmlTensorBytes(t.type, t.shape));
        options.onProgress?.({ phase, tensor: t.name, done: ++done, total: ts.length, bytesDone, bytesTotal });
      }
      await w.close();
    }
    await rename(decTmp, path.join(outDir, decoderName));
    await rename(visTmp, path.join(outDir, visionName));
    const manifest = path.join(outDir, 'llava-rad.json');
    await writeFile(manifest, JSON.stringify({
      decoder: decoderName,
      vision: visionName,
      type,
      vision_type: visionType,
      converter: { name: 'llava-rad', version: CONVERTER_VERSION },
      sources,
      research_use_only: true,
    }, null, 2) + '\n');
    return {
      out: outDir, decoder: path.join(outDir, decoderName), vision: path.join(outDir, visionName), manifest, type,
      decoderTypes, loraMerged: dec.loraMerged, loraScale: dec.loraScale,
    };
  } catch (e) {
    await dw?.abort();
    await vw?.abort();
    await rm(decTmp, { force: true });
    await rm(visTmp, { force: true });
    throw e;
  } finally {
    await pool?.close();
    await Promise.all(opened.map((c) => c.close().catch(() => {})));
  }
}

function addProvenance(w: GgufWriter, type: string, sources: SourceFile[], lora?: { r: number; scale: number; merged: number }): void {
  w.addString('llava_rad.converter.name', 'llava-rad convert');
  w.addString('llava_rad.converter.version', CONVERTER_VERSION);
  w.addString('llava_rad.converter.type', type);
  w.addArray('llava_rad.source.files', GgufValueType.STRING, sources.map((s) => s.name));
  w.addArray('llava_rad.source.sizes', GgufValueType.UINT64, sources.map((s) => BigInt(s.size)));
  w.addString('general.source.huggingface.repository', 'lmsys/vicuna-7b-v1.5 + microsoft/llava-rad');
  if (lora) {
    w.addUint32('llava_rad.lora.r', lora.r);
    w.addFloat32('llava_rad.lora.scale', lora.scale);
    w.addUint32('llava_rad.lora.merged_tensors', lora.merged);
  }
}
