// BiomedCLIP-CXR's CLIP parts (biomedclipcxr_518_checkpoint.pt + biomedclipcxr_518.json + the PubMedBERT Hub
// folder's vocab.txt / config.json) -> llava-rad-clip-text-TYPE.gguf: the text tower, its projection, the
// tokenizer vocabulary, logit_scale, and the image head (trunk.norm + head.proj).
//
// The image head lives in this file, not in the vision GGUF, so the vision GGUF stays byte-identical to what
// the findings pipeline was validated on; the CLIP model loads both (the tower's blocks from the vision GGUF).
//
// GGUF: general.architecture 'bert' (native/src/bert_model.cpp loads the encoder as it does CheXbert's),
// tokenizer keys as llama.cpp's BERT, and
//   clip.embedding_length (E)  clip.logit_scale (f32, log of the scale)  clip.text.context_length (256)
//   clip.text.pooler ("cls")  clip.text.projection ("mlp")  clip.vision.embedding_length (Dv)
//   clip.vision.layer_norm_epsilon (1e-6)  clip.vision.pool ("token")
//   clip.text_proj.0.weight [Dt, M]  clip.text_proj.2.weight [M, E]     M = (Dt + E) / 2 (ggml order)
//   clip.vision_norm.{weight, bias} [Dv]  clip.vision_head.weight [Dv, E]
// Matrices in the requested type (f32 / f16), norms and biases f32.

import { join } from 'node:path';
import { WordPieceVocab } from '../bert/wordpiece.js';
import { LlavaRadError, describeValue } from '../errors.js';
import { MAX_VOCAB_FILE_BYTES, readRegularFile } from '../regular-file.js';
import { openCheckpoint, stripModulePrefix } from './checkpoint.js';
import { addBertMetadata, planBertEncoder, writeBertTensors, writeGgufFile, type PlannedBertTensor } from './bert-gguf.js';
import { CLIP_LIMITS, CLIP_TEXT_LIMITS, configNumber, configObject, readJsonObject } from './config-check.js';
import type { LazyTensor } from './tensor.js';

export type ClipConvertType = 'f32' | 'f16';

export interface ConvertClipOptions {
  /** biomedclipcxr_518_checkpoint.pt (state_dict or not, 'module.' or not, optimizer state ignored) */
  checkpoint: string;
  /** biomedclipcxr_518.json (open_clip's model config) */
  config: string;
  /** the PubMedBERT Hub folder: vocab.txt and config.json */
  textModel: string;
  /** the GGUF to write (temporary name, renamed when complete) */
  out: string;
  type?: ClipConvertType;
}

export interface ClipHparams {
  embedDim: number;
  logitScale: number;
  contextLength: number;
  text: { vocabSize: number; contextLength: number; tokenTypeCount: number; embeddingLength: number;
    feedForwardLength: number; blockCount: number; headCount: number; eps: number; projHidden: number };
  visionWidth: number;
}

/** open_clip's CLIPTextCfg.context_length default */
const OPEN_CLIP_CONTEXT_DEFAULT = 77;
/** timm's DINOv2 LayerNorm epsilon (trunk.norm) */
const TRUNK_NORM_EPS = 1e-6;
const HF_BERT_EPS_DEFAULT = 1e-12;

const bad = (msg: string) => new LlavaRadError('BAD_CHECKPOINT', msg);
const unsupported = (msg: string) => new LlavaRadError('UNSUPPORTED', msg);


function checkConfig(cfg: Record<string, unknown>, file: string): { embedDim: number; contextLength: number } {
  const embedDim = configNumber(cfg, 'embed_dim', CLIP_LIMITS.embed_dim, file);
  const text = configObject(cfg, 'text_cfg', file);
  const vision = configObject(cfg, 'vision_cfg', file);
  const expect = (obj: Record<string, unknown>, key: string, want: unknown, field: string) => {
    if (obj[key] !== want) throw unsupported(`${file}: "${field}" is ${describeValue(obj[key])}, only ${JSON.stringify(want)} is supported`);
  };
  expect(text, 'hf_proj_type', 'mlp', 'text_cfg.hf_proj_type');
  expect(text, 'hf_pooler_type', 'cls_last_hidden_state_pooler', 'text_cfg.hf_pooler_type');
  expect(vision, 'timm_pool', '', 'vision_cfg.timm_pool');
  expect(vision, 'timm_proj', 'linear', 'vision_cfg.timm_proj');
  const contextLength = configNumber(text, 'context_length', CLIP_TEXT_LIMITS.context_length, file, OPEN_CLIP_CONTEXT_DEFAULT, 'text_cfg.context_length');
  return { embedDim, contextLength };
}

/** Converts the CLIP parts of BiomedCLIP-CXR to one GGUF (see the top of this file). */
export async function convertClip(options: ConvertClipOptions): Promise<ClipHparams> {
  const type = options.type ?? 'f16';
  if (type !== 'f32' && type !== 'f16') throw new LlavaRadError('INVALID_ARGUMENT', `CLIP GGUF type must be f32 or f16, got ${String(type)}`);
  const cfg = await readJsonObject(options.config, 'open_clip config');
  const { embedDim, contextLength } = checkConfig(cfg, options.config);
  const textCfgFile = join(options.textModel, 'config.json');
  const textCfg = await readJsonObject(textCfgFile, 'text model config');
  const vocabFile = join(options.textModel, 'vocab.txt');
  const vocab = WordPieceVocab.fromText((await readRegularFile(vocabFile, 'the vocabulary', MAX_VOCAB_FILE_BYTES)).toString('utf8'));

  const ckpt = await openCheckpoint(options.checkpoint);
  try {
    const tensors = stripModulePrefix(ckpt.tensors);
    const get = (key: string, rank: number): LazyTensor => {
      const t = tensors.get(key);
      if (t === undefined) throw bad(`${options.checkpoint}: no tensor "${key}" (a CLIP checkpoint needs its text tower and heads)`);
      if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16' && t.dtype !== 'F64') throw bad(`${options.checkpoint}: "${key}" is ${t.dtype}, expected floating point`);
      if (t.shape.length !== rank) throw bad(`${options.checkpoint}: "${key}" has shape [${t.shape.join(', ')}], expected rank ${rank}`);
      return t;
    };
    const T = 'text.transformer.';
    const [vocabSize, dt] = get(T + 'embeddings.word_embeddings.weight', 2).shape as [number, number];
    let blockCount = 0;
    while (tensors.has(`${T}encoder.layer.${blockCount}.attention.self.query.weight`)) blockCount++;
    if (blockCount === 0) throw bad(`${options.checkpoint}: no text encoder layers ("${T}encoder.layer.N.*")`);
    const headCount = configNumber(textCfg, 'num_attention_heads', CLIP_TEXT_LIMITS.heads, textCfgFile);
    if (dt % headCount !== 0) throw bad(`${textCfgFile}: num_attention_heads ${headCount} does not divide the text width ${dt}`);
    const act = textCfg.hidden_act ?? 'gelu';
    if (act !== 'gelu') throw unsupported(`${textCfgFile}: hidden_act ${describeValue(act)}, only "gelu" (exact) is supported`);
    const eps = textCfg.layer_norm_eps === undefined ? HF_BERT_EPS_DEFAULT : Number(textCfg.layer_norm_eps);
    if (!(Number.isFinite(eps) && eps > 0 && eps < 1)) throw bad(`${textCfgFile}: layer_norm_eps ${describeValue(textCfg.layer_norm_eps)} is invalid`);
    if (vocab.size !== vocabSize) throw bad(`${options.checkpoint} has ${vocabSize} token embeddings, ${vocabFile} ${vocab.size} pieces`);
    const positions = get(T + 'embeddings.position_embeddings.weight', 2).shape[0]!;
    if (contextLength > positions) throw bad(`${options.config}: context_length ${contextLength} exceeds the text tower's ${positions} positions`);
    const text = {
      vocabSize, embeddingLength: dt, blockCount, headCount, eps, contextLength: positions,
      tokenTypeCount: get(T + 'embeddings.token_type_embeddings.weight', 2).shape[0]!,
      feedForwardLength: get(T + 'encoder.layer.0.intermediate.dense.weight', 2).shape[0]!,
      projHidden: Math.floor((dt + embedDim) / 2),
    };
    const visionWidth = get('visual.trunk.norm.weight', 1).shape[0]!;
    const logitScaleT = tensors.get('logit_scale');
    if (logitScaleT === undefined || logitScaleT.shape.reduce((a, b) => a * b, 1) !== 1) throw bad(`${options.checkpoint}: no scalar "logit_scale"`);
    const logitScale = (await logitScaleT.readFloat32())[0]!;
    if (!Number.isFinite(logitScale) || Math.abs(logitScale) > 20) throw bad(`${options.checkpoint}: logit_scale ${logitScale} is invalid`);

    const planned: PlannedBertTensor[] = [];
    const take = (name: string, key: string, shape: number[]): void => {
      const t = get(key, shape.length);
      if (t.shape.some((d, i) => d !== shape[i])) throw bad(`${options.checkpoint}: "${key}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
      planned.push({ name, source: t, matrix: shape.length === 2 });
    };
    planBertEncoder(take, text, T); // the pooler is not taken (open_clip's cls pooler does not use it)
    take('clip.text_proj.0.weight', 'text.proj.0.weight', [text.projHidden, dt]);
    take('clip.text_proj.2.weight', 'text.proj.2.weight', [embedDim, text.projHidden]);
    take('clip.vision_norm.weight', 'visual.trunk.norm.weight', [visionWidth]);
    take('clip.vision_norm.bias', 'visual.trunk.norm.bias', [visionWidth]);
    take('clip.vision_head.weight', 'visual.head.proj.weight', [embedDim, visionWidth]);

    await writeGgufFile(options.out, async (w) => {
      addBertMetadata(w, text, vocab, { name: 'BiomedCLIP-CXR 518: PubMedBERT text tower, projections and image head', fileType: type === 'f16' ? 1 : 0, poolingType: 'cls', eps });
      const U32 = (key: string, v: number) => w.addUint32(key, v);
      U32('clip.embedding_length', embedDim);
      w.addFloat32('clip.logit_scale', logitScale);
      U32('clip.text.context_length', contextLength);
      w.addString('clip.text.pooler', 'cls');
      w.addString('clip.text.projection', 'mlp');
      U32('clip.vision.embedding_length', visionWidth);
      w.addFloat32('clip.vision.layer_norm_epsilon', TRUNK_NORM_EPS);
      w.addString('clip.vision.pool', 'token');
      await writeBertTensors(w, planned, type);
    });
    return { embedDim, logitScale, contextLength, text, visionWidth };
  } finally {
    await ckpt.close();
  }
}
