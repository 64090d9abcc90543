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
//
// Hostile releases (issue #20): everything the release declares is checked before the output folder is
// created (lib/convert/config-check.ts: every config number inside a documented range, every tensor's shape
// as its config says, the tensors taken from each checkpoint no larger than its file(s) allow, the output under
// MAX_OUTPUT_BYTES); the folder is created only then, and removed again on failure when this call created it.

import { existsSync, statSync } from 'node:fs';
import { mkdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LlavaRadError, describeValue, ioError } from '../errors.js';
import { fileKind } from '../regular-file.js';
import { checkReplaceable, tempPathFor } from '../replace-file.js';
import { checkWriteSpace } from '../disk-space.js';
import { GgufWriter } from '../gguf/writer.js';
import { GgmlType, GgufValueType, f16BitsToF32, f32ToF16Bits, ggmlTensorBytes, ggmlTypeTraits } from '../gguf/types.js';
import { convertClip } from './clip.js';
import { openCheckpoint, stripModulePrefix, type Checkpoint } from './checkpoint.js';
import {
  ADAPTER_LIMITS, CLIP_LIMITS, CLIP_TEXT_LIMITS, CLIP_VISION_LIMITS, IMAGE_MEAN_RULE, IMAGE_STD_RULE, LLAMA_LIMITS, LLAVA_LIMITS,
  TOWER_LIMITS, checkClaimedBytes, checkConfigNumbers, checkOutputTensors, checkTensorSize, configNumber, configObject, configTriple,
  readJsonObject, shortName,
} from './config-check.js';
import { CONVERT_FILE_TYPE, decoderTensorType, isConvertType, type ConvertType } from './mix.js';
import { MAX_TOKENIZER_BYTES, readSentencePiece, type SentencePieceModel } from './sentencepiece.js';
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
  /** the PubMedBERT Hub folder (vocab.txt, config.json): also writes llava-rad-clip-text-CLIPTYPE.gguf (the CLIP
   *  text tower, projections and image head, lib/convert/clip.ts) and names it "clip" in llava-rad.json */
  clipText?: string;
  /** the CLIP GGUF's matrices: f32 (default: zero-shot probabilities within 1e-3 of float64 need it, see
   *  docs/validation.md) or f16 (half the size; embeddings within about 1e-5 cosine distance) */
  clipType?: 'f32' | 'f16';
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
  /** the CLIP GGUF, when options.clipText was given */
  clip?: string;
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

export { MAX_TOKENIZER_BYTES };

/** DIR/FILE, which must exist and be a regular file (IO: a FIFO would block its reader) of at most maxBytes (BAD_CHECKPOINT) */
export function need(dir: string, file: string, what: string, maxBytes = Infinity): string {
  const p = path.join(dir, file);
  if (!existsSync(p)) throw new LlavaRadError('IO', `${what}: ${p} is missing`);
  const st = statSync(p);
  if (!st.isFile()) throw new LlavaRadError('IO', `${what}: ${p} is ${fileKind(st)}, not a regular file`);
  if (st.size > maxBytes) throw bad(`${p}: ${st.size} bytes, expected at most ${maxBytes}`);
  return p;
}

export function firstExisting(dir: string, names: readonly string[]): string | undefined {
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

/**
 * Writes the header, then each planned tensor in order, one tensor ahead (the next tensor is read, merged and
 * rounded while this one is encoded and written), then closes the file; `onTensor` after each tensor.
 */
export async function writeTensors(pool: ConvertPool, w: GgufWriter, ts: readonly PlannedTensor[], onTensor: (t: PlannedTensor, done: number) => void): Promise<void> {
  await w.writeHeader();
  const start = (i: number): Promise<Float32Array> | undefined => {
    if (i >= ts.length) return undefined;
    const pr = ts[i]!.values(pool);
    pr.catch(() => {}); // awaited below, or abandoned when an earlier tensor fails
    return pr;
  };
  let next = start(0);
  for (let i = 0; i < ts.length; i++) {
    const t = ts[i]!;
    const values = await next!;
    next = start(i + 1);
    await writeEncoded(pool, w, t.name, t.type, values, t.shape[0]!);
    onTensor(t, i + 1);
  }
  await w.close();
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

export interface PlannedTensor {
  name: string;
  /** ggml order */
  shape: number[];
  type: GgmlType;
  /** the checkpoint tensors it is made from (checked against their files' sizes before anything is written) */
  sources: LazyTensor[];
  /** produces the float values (row-major, ggml rows); CPU-heavy steps run on the pool */
  values: (pool: ConvertPool) => Promise<Float32Array>;
}

export interface DecoderHparams {
  nEmbd: number; nLayer: number; nHead: number; nHeadKv: number; nFf: number; nVocab: number; nCtx: number;
  eps: number; ropeBase: number;
}

interface DecoderPlan {
  hp: DecoderHparams;
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

/**
 * The decoder's hyperparameters from the base config.json, every number inside LLAMA_LIMITS and consistent
 * (heads divide the width into even head widths, KV heads divide the heads), and the LLaVA-Rad config's
 * copies of them equal (it describes the decoder it was trained on; absent for a plain LLaMA). Reads no tensor.
 */
export function decoderHparams(baseCfgFile: string, baseCfg: Record<string, unknown>, llavaCfg?: Record<string, unknown>, llavaCfgFile = ''): DecoderHparams {
  const mt = baseCfg.model_type;
  if (mt !== undefined && mt !== 'llama') throw new LlavaRadError('UNSUPPORTED', `${baseCfgFile}: model_type ${describeValue(mt)}, expected "llama"`);
  if (baseCfg.rope_scaling !== undefined && baseCfg.rope_scaling !== null) {
    throw new LlavaRadError('UNSUPPORTED', `${baseCfgFile}: rope_scaling is not supported`);
  }
  checkConfigNumbers(baseCfg, LLAMA_LIMITS, baseCfgFile);
  const num = (key: keyof typeof LLAMA_LIMITS, def?: number) => configNumber(baseCfg, key, LLAMA_LIMITS[key], baseCfgFile, def);
  const nEmbd = num('hidden_size');
  const nLayer = num('num_hidden_layers');
  const nHead = num('num_attention_heads');
  const nHeadKv = num('num_key_value_heads', nHead);
  const nFf = num('intermediate_size');
  const nVocab = num('vocab_size');
  const nCtx = num('max_position_embeddings', 4096);
  const eps = num('rms_norm_eps', 1e-6);
  const ropeBase = num('rope_theta', 10000);
  if (nEmbd % nHead !== 0 || (nEmbd / nHead) % 2 !== 0) {
    throw bad(`${baseCfgFile}: "hidden_size" must be num_attention_heads (${nHead}) times an even head width, got ${nEmbd}`);
  }
  if (nHeadKv > nHead || nHead % nHeadKv !== 0) {
    throw bad(`${baseCfgFile}: "num_key_value_heads" must divide num_attention_heads (${nHead}), got ${nHeadKv}`);
  }
  if (baseCfg.tie_word_embeddings === true) throw new LlavaRadError('UNSUPPORTED', `${baseCfgFile}: tied word embeddings are not expected for LLaMA-2`);
  const hp = { nEmbd, nLayer, nHead, nHeadKv, nFf, nVocab, nCtx, eps, ropeBase };
  if (llavaCfg === undefined) return hp;
  // the LLaVA-Rad config describes the decoder it was trained on
  checkConfigNumbers(llavaCfg, { ...LLAMA_LIMITS, ...LLAVA_LIMITS }, llavaCfgFile);
  for (const [k, v] of [['hidden_size', nEmbd], ['num_hidden_layers', nLayer], ['num_attention_heads', nHead],
    ['intermediate_size', nFf], ['vocab_size', nVocab]] as const) {
    if (llavaCfg[k] !== undefined && llavaCfg[k] !== v) {
      throw bad(`the adapter is for another base: ${llavaCfgFile} has ${k} ${describeValue(llavaCfg[k])}, ${baseCfgFile} has ${v}`);
    }
  }
  return hp;
}

/** one decoder tensor as the hyperparameters and the conversion type say: HF name and shape, GGUF name, shape and type */
interface DecoderSlot {
  hf: string;
  /** PyTorch order */
  hfShape: number[];
  gguf: string;
  /** ggml order */
  shape: number[];
  type: GgmlType;
  /** q / k rows are permuted for ggml's RoPE in heads of this many (0: not permuted) */
  permuteHeads: number;
}

/** every tensor of the decoder, in output order (needs no checkpoint: sizes are checked before any is opened) */
export function decoderLayout(hp: DecoderHparams, type: ConvertType): DecoderSlot[] {
  const { nEmbd, nLayer, nFf, nVocab } = hp;
  const kvDim = (nEmbd / hp.nHead) * hp.nHeadKv;
  const layerShapes: Readonly<Record<string, number[]>> = {
    'attn_norm.weight': [nEmbd], 'ffn_norm.weight': [nEmbd],
    'attn_q.weight': [nEmbd, nEmbd], 'attn_k.weight': [kvDim, nEmbd], 'attn_v.weight': [kvDim, nEmbd], 'attn_output.weight': [nEmbd, nEmbd],
    'ffn_gate.weight': [nFf, nEmbd], 'ffn_up.weight': [nFf, nEmbd], 'ffn_down.weight': [nEmbd, nFf],
  };
  const slots: DecoderSlot[] = [];
  const slot = (hf: string, gguf: string, hfShape: number[], permuteHeads = 0): void => {
    const shape = [...hfShape].reverse();
    slots.push({ hf, hfShape, gguf, shape, type: decoderTensorType(type, gguf, shape, nLayer), permuteHeads });
  };
  slot('model.embed_tokens.weight', 'token_embd.weight', [nVocab, nEmbd]);
  for (let i = 0; i < nLayer; i++) {
    for (const [hf, g] of HF_TO_GGUF) {
      const heads = g === 'attn_q.weight' ? hp.nHead : g === 'attn_k.weight' ? hp.nHeadKv : 0;
      slot(`model.layers.${i}.${hf}`, `blk.${i}.${g}`, layerShapes[g]!, heads);
    }
  }
  slot('model.norm.weight', 'output_norm.weight', [nEmbd]);
  slot('lm_head.weight', 'output.weight', [nVocab, nEmbd]);
  return slots;
}

/** the LoRA pairs of the adapter (into `pairs`, keyed by the HF weight they target), checked against the base */
function planLora(
  hp: DecoderHparams, hfShapes: ReadonlyMap<string, number[]>, adapterCfgFile: string, adapterCfg: Record<string, unknown>, lora: Checkpoint,
  pairs: Map<string, { a?: LazyTensor; b?: LazyTensor }>,
): { r: number; scale: number } {
  const { nLayer } = hp;
  if (adapterCfg.peft_type !== undefined && adapterCfg.peft_type !== 'LORA') {
    throw new LlavaRadError('UNSUPPORTED', `${adapterCfgFile}: peft_type ${describeValue(adapterCfg.peft_type)}, expected "LORA"`);
  }
  if (adapterCfg.use_dora === true) throw new LlavaRadError('UNSUPPORTED', `${adapterCfgFile}: DoRA adapters are not supported`);
  if (adapterCfg.fan_in_fan_out === true) throw new LlavaRadError('UNSUPPORTED', `${adapterCfgFile}: fan_in_fan_out adapters are not supported`);
  const r = configNumber(adapterCfg, 'r', ADAPTER_LIMITS.r, adapterCfgFile);
  const alpha = configNumber(adapterCfg, 'lora_alpha', ADAPTER_LIMITS.lora_alpha, adapterCfgFile);
  const scale = adapterCfg.use_rslora === true ? alpha / Math.sqrt(r) : alpha / r;
  for (const [name, t] of lora.tensors) {
    const m = /^base_model\.model\.(.+)\.lora_([AB])(?:\.default)?\.weight$/.exec(name);
    if (!m) {
      if (/lora_(embedding_)?[AB]|lora_magnitude/.test(name)) throw new LlavaRadError('UNSUPPORTED', `${lora.path}: unsupported LoRA tensor "${shortName(name)}"`);
      continue; // e.g. modules_to_save copies: not part of the merge
    }
    const target = `${m[1]}.weight`;
    if (!hfShapes.has(target) || !target.startsWith('model.layers.')) {
      const lm = /^model\.layers\.(\d+)\./.exec(target);
      if (lm && Number(lm[1]) >= nLayer) throw bad(`the adapter is for another base: ${lora.path} has "${shortName(name)}" but the base has ${nLayer} layers`);
      throw bad(`the adapter is for another base: ${lora.path} targets "${shortName(target)}", which the base does not have`);
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
  return { r, scale };
}

export async function planDecoder(
  hp: DecoderHparams, layout: DecoderSlot[], base: Checkpoint, adapter?: { cfgFile: string; cfg: Record<string, unknown>; lora: Checkpoint },
): Promise<DecoderPlan> {
  const { nLayer } = hp;

  // ---- base tensors ----
  const bt = base.tensors;
  const get = (name: string): LazyTensor => {
    const t = bt.get(name);
    if (!t) throw bad(`${base.path}: tensor "${name}" is missing`);
    floatTensor(t, base.path);
    return t;
  };
  const hfShapes = new Map(layout.map((s) => [s.hf, s.hfShape]));
  for (const [name, shape] of hfShapes) checkShape(get(name), shape, base.path);
  for (const name of bt.keys()) {
    if (hfShapes.has(name) || name.endsWith('.rotary_emb.inv_freq')) continue;
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m && Number(m[1]) >= nLayer) throw bad(`${base.path}: "${shortName(name)}" is beyond the ${nLayer} layers config.json declares`);
    throw bad(`${base.path}: unexpected tensor "${shortName(name)}" (not part of a LLaMA decoder)`);
  }

  // ---- LoRA (a plain LLaMA has none) ----
  const pairs = new Map<string, { a?: LazyTensor; b?: LazyTensor }>();
  let r = 0;
  let scale = 0;
  if (adapter) ({ r, scale } = planLora(hp, hfShapes, adapter.cfgFile, adapter.cfg, adapter.lora, pairs));

  // ---- the output tensors ----
  const tensors = layout.map(({ hf, hfShape, gguf, shape, type, permuteHeads }): PlannedTensor => {
    const src = get(hf);
    const pair = pairs.get(hf);
    return {
      name: gguf,
      shape,
      type,
      sources: pair ? [src, pair.a!, pair.b!] : [src],
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
    };
  });
  return { hp, tensors, loraMerged: pairs.size, loraScale: scale, loraR: r };
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
  const dim = checkTensorSize(cls.shape[2]!, TOWER_LIMITS.width, tower.path, "the tower's width (cls_token [1, 1, width])");
  const pw = get('patch_embed.proj.weight');
  if (pw.shape.length !== 4 || pw.shape[0] !== dim || pw.shape[1] !== 3 || pw.shape[2] !== pw.shape[3]) {
    throw bad(`${tower.path}: patch_embed.proj.weight has shape [${pw.shape.join(', ')}], expected [${dim}, 3, P, P]`);
  }
  const patch = checkTensorSize(pw.shape[2]!, TOWER_LIMITS.patch, tower.path, 'the patch size (patch_embed.proj.weight [width, 3, P, P])');
  // the numbers of vision_cfg were range-checked by checkClipConfig
  const vcfg = visionCfg(clipCfg, clipCfgFile);
  // open_clip's own ViT is built from width / patch_size / layers (a timm trunk ignores them): they must be the tensors'
  const named = (key: string, value: number) => {
    if (typeof vcfg.timm_model_name === 'string') return;
    if (vcfg[key] !== undefined && vcfg[key] !== null && vcfg[key] !== value) {
      throw bad(`${clipCfgFile}: "vision_cfg.${key}" is ${describeValue(vcfg[key])} but the tower's tensors have ${value}`);
    }
  };
  named('width', dim);
  named('patch_size', patch);
  const pos = get('pos_embed');
  const imageSize = vcfg.image_size !== undefined && vcfg.image_size !== null
    ? configNumber(vcfg, 'image_size', CLIP_VISION_LIMITS.image_size, clipCfgFile, undefined, 'vision_cfg.image_size')
    : Math.round(Math.sqrt((pos.shape[1] ?? 1) - 1)) * patch;
  if (!Number.isSafeInteger(imageSize) || imageSize % patch !== 0) throw bad(`${clipCfgFile}: image_size ${imageSize} is not a multiple of the patch size ${patch}`);
  const grid = imageSize / patch;
  checkShape(pos, [1, grid * grid + 1, dim], `${tower.path} (image_size ${imageSize}, patch ${patch}: CLS + ${grid}x${grid} positions; interpolation is not supported)`);
  const headWidth = configNumber(vcfg, 'head_width', CLIP_VISION_LIMITS.head_width, clipCfgFile, 64, 'vision_cfg.head_width');
  if (dim % headWidth !== 0) throw bad(`${clipCfgFile}: "vision_cfg.head_width" must divide the tower's width ${dim}, got ${headWidth}`);
  const heads = dim / headWidth;
  let depth = 0;
  while (trunk.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
  if (depth === 0) throw bad(`${tower.path}: no transformer blocks (visual.trunk.blocks.N.*)`);
  checkTensorSize(depth, TOWER_LIMITS.blocks, tower.path, 'the number of blocks');
  named('layers', depth);
  for (const k of trunk.keys()) {
    const m = /^blocks\.(\d+)\./.exec(k);
    if (m && Number(m[1]) >= depth) throw bad(`${tower.path}: block ${shortName(m[1]!)} without block ${depth} before it`);
    if (/^(reg_token|register_tokens)/.test(k)) throw new LlavaRadError('UNSUPPORTED', `${tower.path}: register tokens are not supported`);
  }
  if (trunk.has('norm_pre.weight')) throw new LlavaRadError('UNSUPPORTED', `${tower.path}: a pre-norm (norm_pre) is not supported`);
  const fc1 = get('blocks.0.mlp.fc1.weight');
  const ff = checkTensorSize(fc1.shape[0]!, TOWER_LIMITS.ffn, tower.path, 'the MLP width (blocks.0.mlp.fc1.weight [ffn, width])');
  const selectLayer = configNumber(llavaCfg, 'mm_vision_select_layer', LLAVA_LIMITS.mm_vision_select_layer, llavaCfgFile, -2);
  if (selectLayer >= 0 || -selectLayer > depth) {
    throw new LlavaRadError('UNSUPPORTED', `${llavaCfgFile}: mm_vision_select_layer ${selectLayer} (expected -1 .. -${depth})`);
  }
  const mmHidden = llavaCfg.mm_hidden_size;
  if (mmHidden !== undefined && mmHidden !== dim) throw bad(`${llavaCfgFile}: mm_hidden_size ${describeValue(mmHidden)} but the tower's width is ${dim}`);
  const mean = configTriple(vcfg, 'image_mean', IMAGE_MEAN_RULE, clipCfgFile, OPENAI_MEAN, 'vision_cfg.image_mean');
  const std = configTriple(vcfg, 'image_std', IMAGE_STD_RULE, clipCfgFile, OPENAI_STD, 'vision_cfg.image_std');

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
      name, shape, type, sources: [src],
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

export interface SourceFile { name: string; size: number }

export function sourceEntry(root: string, label: string, file: string): SourceFile {
  return { name: `${label}/${path.relative(root, file).split(path.sep).join('/')}`, size: statSync(file).size };
}

/** the decoder GGUF's metadata in llama.cpp's LLaMA conventions: hyperparameters and the SentencePiece vocabulary */
export function addDecoderHeader(
  dw: GgufWriter, hp: DecoderHparams, sp: SentencePieceModel, addBos: boolean, type: ConvertType, meta: { name: string; license: string },
): void {
  dw.addString('general.architecture', 'llama');
  dw.addString('general.name', meta.name);
  dw.addUint32('general.file_type', CONVERT_FILE_TYPE[type]);
  if (type !== 'f32' && type !== 'f16') dw.addUint32('general.quantization_version', 2);
  dw.addString('general.license', meta.license);
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
}

/** tokenizer_config.json's add_bos_token, where the folder has one (default true, LLaMA's) */
export async function readAddBos(dir: string): Promise<boolean> {
  const tokCfgFile = path.join(dir, 'tokenizer_config.json');
  if (!existsSync(tokCfgFile)) return true;
  const tc = await readJsonObject(tokCfgFile, 'tokenizer config');
  return typeof tc.add_bos_token === 'boolean' ? tc.add_bos_token : true;
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

  // ---- inputs: every config read and checked before any checkpoint is opened ----
  const baseCfgFile = need(baseDir, 'config.json', 'the base (Vicuna) folder');
  const tokFile = need(baseDir, 'tokenizer.model', 'the base (Vicuna) folder', MAX_TOKENIZER_BYTES);
  const weightsFile = firstExisting(baseDir, ['pytorch_model.bin.index.json', 'model.safetensors.index.json', 'pytorch_model.bin', 'model.safetensors']);
  if (!weightsFile) throw new LlavaRadError('IO', `the base folder ${baseDir} has no weights (pytorch_model.bin.index.json, model.safetensors.index.json, pytorch_model.bin or model.safetensors)`);
  const llavaCfgFile = need(adapterDir, 'config.json', 'the LLaVA-Rad folder');
  const adapterCfgFile = need(adapterDir, 'adapter_config.json', 'the LLaVA-Rad folder');
  const loraFile = firstExisting(adapterDir, ['adapter_model.bin', 'adapter_model.safetensors']);
  if (!loraFile) throw new LlavaRadError('IO', `the LLaVA-Rad folder ${adapterDir} has no adapter_model.bin / adapter_model.safetensors`);
  const projFile = need(adapterDir, 'non_lora_trainables.bin', 'the LLaVA-Rad folder');
  const baseCfg = await readJsonObject(baseCfgFile, 'model config');
  const llavaCfg = await readJsonObject(llavaCfgFile, 'model config');
  const adapterCfg = await readJsonObject(adapterCfgFile, 'adapter config');
  const clipCfgName = typeof llavaCfg.vision_tower_config === 'string' ? path.basename(llavaCfg.vision_tower_config) : 'biomedclipcxr_518.json';
  const clipCkptName = typeof llavaCfg.vision_tower_checkpoint === 'string' ? path.basename(llavaCfg.vision_tower_checkpoint) : 'biomedclipcxr_518_checkpoint.pt';
  const clipCfgFile = need(adapterDir, clipCfgName, 'the LLaVA-Rad folder');
  const clipCkptFile = need(adapterDir, clipCkptName, 'the LLaVA-Rad folder');
  const clipCfg = await readJsonObject(clipCfgFile, 'open_clip config');
  if (llavaCfg.mm_projector_type !== undefined && llavaCfg.mm_projector_type !== 'mlp2x_gelu') {
    throw new LlavaRadError('UNSUPPORTED', `${llavaCfgFile}: mm_projector_type ${describeValue(llavaCfg.mm_projector_type)}, expected "mlp2x_gelu"`);
  }
  if (llavaCfg.mm_vision_select_feature !== undefined && llavaCfg.mm_vision_select_feature !== 'patch') {
    throw new LlavaRadError('UNSUPPORTED', `${llavaCfgFile}: mm_vision_select_feature ${describeValue(llavaCfg.mm_vision_select_feature)}, expected "patch"`);
  }
  for (const k of ['mm_use_im_start_end', 'mm_use_im_patch_token']) {
    if (llavaCfg[k] === true) throw new LlavaRadError('UNSUPPORTED', `${llavaCfgFile}: ${k} true is not supported`);
  }
  const hp = decoderHparams(baseCfgFile, baseCfg, llavaCfg, llavaCfgFile);
  const layout = decoderLayout(hp, type);
  checkOutputTensors(layout.map((t) => ({ name: t.gguf, type: t.type, shape: t.shape })), `${baseCfgFile} (as ${type})`);
  checkConfigNumbers(adapterCfg, ADAPTER_LIMITS, adapterCfgFile);
  checkClipConfig(clipCfg, clipCfgFile);
  const addBos = await readAddBos(baseDir);
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
  const manifestName = 'llava-rad.json';
  const clipType = options.clipType ?? 'f32';
  if (clipType !== 'f16' && clipType !== 'f32') throw new LlavaRadError('INVALID_ARGUMENT', `convertRelease: clipType must be f16 or f32`);
  const clipName = options.clipText === undefined ? undefined : `llava-rad-clip-text-${clipType}.gguf`;
  if (options.clipText !== undefined && (typeof options.clipText !== 'string' || options.clipText.length === 0)) {
    throw new LlavaRadError('INVALID_ARGUMENT', `convertRelease: "clipText" must be a folder path, got ${describeValue(options.clipText)}`);
  }
  for (const n of [decoderName, visionName, manifestName, ...(clipName === undefined ? [] : [clipName])]) checkReplaceable(path.join(outDir, n), 'an output file');
  const temps = [decoderName, visionName, manifestName].map((n) => tempPathFor(path.join(outDir, n)));
  const clipTmp = clipName === undefined ? undefined : tempPathFor(path.join(outDir, clipName));
  if (clipTmp !== undefined) temps.push(clipTmp);
  const [decTmp, visTmp, manifestTmp] = temps as [string, string, string];
  let dw: GgufWriter | undefined;
  let vw: GgufWriter | undefined;
  let pool: ConvertPool | undefined;
  /** the first folder this call created (removed again on failure), and the files it moved into place */
  let createdDir: string | undefined;
  const placed: string[] = [];
  try {
    const base = await openCk(weightsFile);
    const lora = await openCk(loraFile);
    const projector = await openCk(projFile);
    const towerCk = await openCk(clipCkptFile);
    const dec = await planDecoder(hp, layout, base, { cfgFile: adapterCfgFile, cfg: adapterCfg, lora });
    if (sp.tokens.length !== dec.hp.nVocab) {
      throw bad(`${tokFile} has ${sp.tokens.length} pieces, ${baseCfgFile} declares vocab_size ${dec.hp.nVocab}`);
    }
    if (sp.modelTypeName !== 'bpe') throw new LlavaRadError('UNSUPPORTED', `${tokFile}: a ${sp.modelTypeName} SentencePiece model, expected BPE (LLaMA)`);
    const vis = planVision(towerCk, projector, clipCfg, clipCfgFile, llavaCfg, llavaCfgFile, dec.hp.nEmbd,
      visionType === 'f16' ? GgmlType.F16 : GgmlType.F32);

    // ---- sizes, before anything is allocated or written ----
    const used = new Set([...dec.tensors, ...vis.tensors].flatMap((t) => t.sources));
    for (const ck of opened) checkClaimedBytes(ck, [...ck.tensors.values()].filter((t) => used.has(t)));
    const bytesTotal = checkOutputTensors([...dec.tensors, ...vis.tensors], `${baseCfgFile} (as ${type}) and the vision tower`);
    checkWriteSpace(outDir, bytesTotal, 'the conversion');

    // provenance
    const sources: SourceFile[] = [];
    for (const f of [baseCfgFile, tokFile, weightsFile, ...(base.format === 'sharded' ? base.files : [])]) sources.push(sourceEntry(baseDir, 'base', f));
    for (const f of [llavaCfgFile, adapterCfgFile, loraFile, projFile, clipCkptFile, clipCfgFile]) sources.push(sourceEntry(adapterDir, 'adapter', f));

    // ---- decoder header ----
    dw = new GgufWriter(decTmp, { exclusive: true });
    addDecoderHeader(dw, dec.hp, sp, addBos, type, {
      name: 'LLaVA-Rad decoder (Vicuna-7B v1.5 + LLaVA-Rad LoRA, merged)',
      license: 'Microsoft Research License (LLaVA-Rad); Llama 2 Community License (Vicuna). Research use only.',
    });
    addProvenance(dw, type, sources, { r: dec.loraR, scale: dec.loraScale, merged: dec.loraMerged });
    for (const t of dec.tensors) dw.addTensorInfo(t.name, t.type, t.shape);

    // ---- vision header ----
    const v = vis.hp;
    vw = new GgufWriter(visTmp, { exclusive: true });
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

    // ---- everything is checked: only now is the output folder created ----
    createdDir = await makeOutputFolder(outDir);
    let bytesDone = 0;
    const decoderTypes: Record<string, string> = {};
    pool = new ConvertPool({ threads });
    const p = pool;
    for (const [w, ts, phase] of [[dw, dec.tensors, 'decoder'], [vw, vis.tensors, 'vision']] as const) {
      await writeTensors(p, w, ts, (t, done) => {
        if (phase === 'decoder') decoderTypes[t.name] = ggmlTypeTraits(t.type)!.name;
        bytesDone += Number(ggmlTensorBytes(t.type, t.shape));
        options.onProgress?.({ phase, tensor: t.name, done, total: ts.length, bytesDone, bytesTotal });
      });
    }
    if (clipName !== undefined) {
      await convertClip({ checkpoint: clipCkptFile, config: clipCfgFile, textModel: options.clipText!, out: clipTmp!, type: clipType });
    }
    await writeFile(manifestTmp, JSON.stringify({
      decoder: decoderName,
      vision: visionName,
      ...(clipName === undefined ? {} : { clip: clipName }),
      type,
      vision_type: visionType,
      converter: { name: 'llava-rad', version: CONVERTER_VERSION },
      sources,
      research_use_only: true,
    }, null, 2) + '\n', { flag: 'wx' }).catch((e: unknown) => { throw ioError(e, `cannot write ${manifestTmp}`); });
    const moves: [string, string][] = [[decTmp, decoderName], [visTmp, visionName]];
    if (clipName !== undefined) moves.push([clipTmp!, clipName]);
    moves.push([manifestTmp, manifestName]);
    for (const [tmp, name] of moves) {
      const dest = path.join(outDir, name);
      await rename(tmp, dest).catch((e: unknown) => { throw ioError(e, `cannot move ${tmp} to ${dest}`); });
      placed.push(dest);
    }
    return {
      out: outDir, decoder: path.join(outDir, decoderName), vision: path.join(outDir, visionName), manifest: path.join(outDir, manifestName), type,
      ...(clipName === undefined ? {} : { clip: path.join(outDir, clipName) }),
      decoderTypes, loraMerged: dec.loraMerged, loraScale: dec.loraScale,
    };
  } catch (e) {
    await dw?.abort();
    await vw?.abort();
    // no half-made model: neither temporary files, nor some of the three files without the others
    await Promise.all([...temps, ...placed].map((f) => rm(f, { force: true }).catch(() => {})));
    if (createdDir !== undefined) await removeCreatedFolders(outDir, createdDir);
    throw e;
  } finally {
    await pool?.close();
    await Promise.all(opened.map((c) => c.close().catch(() => {})));
  }
}

/** creates the output folder (and its missing parents); returns the first folder it created, if any */
export async function makeOutputFolder(outDir: string): Promise<string | undefined> {
  try {
    return await mkdir(outDir, { recursive: true });
  } catch (e) {
    throw new LlavaRadError('IO', `cannot create the output folder ${outDir}: ${(e as Error).message}`, { cause: e });
  }
}

/** removes outDir and its parents up to `first` (what makeOutputFolder created), each only if it is empty */
export async function removeCreatedFolders(outDir: string, first: string): Promise<void> {
  for (let d = outDir; ; d = path.dirname(d)) {
    try {
      await rmdir(d);
    } catch {
      return; // not empty (someone else's files) or gone: leave it and its parents
    }
    if (d === first || path.dirname(d) === d) return;
  }
}

/** the open_clip config's vision_cfg; open_clip also writes image_size as [h, w]: a square one is read as h */
function visionCfg(clipCfg: Record<string, unknown>, file: string): Record<string, unknown> {
  const v = configObject(clipCfg, 'vision_cfg', file);
  const size = v.image_size;
  if (Array.isArray(size) && size.length === 2 && size[0] === size[1]) return { ...v, image_size: size[0] };
  return v;
}

/** every number of the open_clip config inside its range (config-check.ts), before any checkpoint is opened */
function checkClipConfig(clipCfg: Record<string, unknown>, file: string): void {
  checkConfigNumbers(clipCfg, CLIP_LIMITS, file);
  const vcfg = visionCfg(clipCfg, file);
  checkConfigNumbers(vcfg, CLIP_VISION_LIMITS, file, 'vision_cfg.');
  configTriple(vcfg, 'image_mean', IMAGE_MEAN_RULE, file, OPENAI_MEAN, 'vision_cfg.image_mean');
  configTriple(vcfg, 'image_std', IMAGE_STD_RULE, file, OPENAI_STD, 'vision_cfg.image_std');
  checkConfigNumbers(configObject(clipCfg, 'text_cfg', file), CLIP_TEXT_LIMITS, file, 'text_cfg.');
}

export function addProvenance(
  w: GgufWriter, type: string, sources: SourceFile[], lora?: { r: number; scale: number; merged: number }, repository = 'lmsys/vicuna-7b-v1.5 + microsoft/llava-rad',
): void {
  w.addString('llava_rad.converter.name', 'llava-rad convert');
  w.addString('llava_rad.converter.version', CONVERTER_VERSION);
  w.addString('llava_rad.converter.type', type);
  w.addArray('llava_rad.source.files', GgufValueType.STRING, sources.map((s) => s.name));
  w.addArray('llava_rad.source.sizes', GgufValueType.UINT64, sources.map((s) => BigInt(s.size)));
  w.addString('general.source.huggingface.repository', repository);
  if (lora) {
    w.addUint32('llava_rad.lora.r', lora.r);
    w.addFloat32('llava_rad.lora.scale', lora.scale);
    w.addUint32('llava_rad.lora.merged_tensors', lora.merged);
  }
}
