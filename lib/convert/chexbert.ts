// CheXbert's labeler checkpoint (chexbert.pth) -> one GGUF: the BERT encoder, the 14 heads and the WordPiece
// vocabulary.
//
// The checkpoint (stanfordmlgroup/CheXbert src/run_bert.py) is torch.save({'epoch', 'model_state_dict',
// 'optimizer_state_dict'}) of an nn.DataParallel(bert_labeler): keys 'module.bert.<transformers BertModel>'
// and 'module.linear_heads.N.{weight,bias}' (13 heads of 4 classes: blank, positive, negative, uncertain;
// the 14th, No Finding, of 2). It is read with our restricted unpickler (zip or legacy format); the optimizer
// state is never read. Every tensor of the state dict must map to a GGUF tensor: anything else is refused.
//
// GGUF: general.architecture 'bert'; tensors in llama.cpp's BERT names under 'bert.' and the heads as
// 'chexbert.head.N.{weight,bias}'; matrices in the requested type (f32 / f16), norms and biases f32.

import { rename, rm } from 'node:fs/promises';
import { chexbertConditions, chexbertHeadClasses } from '../bert/chexbert-labels.js';
import { CHEXBERT_MAX_IDS } from '../bert/chexbert-input.js';
import type { WordPieceVocab } from '../bert/wordpiece.js';
import { LlavaRadError } from '../errors.js';
import { GgmlType, GgufValueType, f32ArrayToF16 } from '../gguf/types.js';
import { GgufWriter } from '../gguf/writer.js';
import { openCheckpoint, stripModulePrefix } from './checkpoint.js';
import type { LazyTensor } from './tensor.js';

export type ChexbertConvertType = 'f32' | 'f16';

/** BERT's LayerNorm epsilon (transformers BertConfig.layer_norm_eps; the checkpoint does not record it) */
export const BERT_LAYER_NORM_EPS = 1e-12;
/** BERT's attention head size: head_count = hidden / 64 unless the caller says otherwise */
const BERT_HEAD_DIM = 64;

export interface ChexbertHparams {
  vocabSize: number;
  contextLength: number;
  tokenTypeCount: number;
  embeddingLength: number;
  feedForwardLength: number;
  blockCount: number;
  headCount: number;
  headClasses: number[];
}

export interface ConvertChexbertOptions {
  type?: ChexbertConvertType;
  /** attention heads; default embedding_length / 64 (bert-base: 12) */
  headCount?: number;
}

export interface ConvertChexbertResult {
  hparams: ChexbertHparams;
  /** GGUF tensor name -> checkpoint tensor name (as stored, 'module.' included) */
  tensorSources: Map<string, string>;
}

const bad = (msg: string) => new LlavaRadError('BAD_CHECKPOINT', msg);

export interface Planned { name: string; source: LazyTensor; matrix: boolean }

/** the encoder's GGUF tensors (what native/src/bert_model.cpp loads), with their checkpoint names under `prefix`
 *  (transformers' BertModel names) and shapes (torch order) */
export interface BertSlot { name: string; key: string; shape: number[] }

export function bertEncoderSlots(
  hp: Pick<ChexbertHparams, 'vocabSize' | 'contextLength' | 'tokenTypeCount' | 'embeddingLength' | 'feedForwardLength' | 'blockCount'>,
  prefix: string,
): BertSlot[] {
  const slots: BertSlot[] = [];
  const H = hp.embeddingLength;
  const take = (name: string, key: string, shape: number[]) => slots.push({ name, key: prefix + key, shape });
  const linear = (name: string, key: string, nOut: number, nIn: number): void => {
    take(`${name}.weight`, `${key}.weight`, [nOut, nIn]);
    take(`${name}.bias`, `${key}.bias`, [nOut]);
  };
  const norm = (name: string, key: string): void => {
    take(`${name}.weight`, `${key}.weight`, [H]);
    take(`${name}.bias`, `${key}.bias`, [H]);
  };
  take('bert.token_embd.weight', 'embeddings.word_embeddings.weight', [hp.vocabSize, H]);
  take('bert.position_embd.weight', 'embeddings.position_embeddings.weight', [hp.contextLength, H]);
  take('bert.token_types.weight', 'embeddings.token_type_embeddings.weight', [hp.tokenTypeCount, H]);
  norm('bert.token_embd_norm', 'embeddings.LayerNorm');
  for (let i = 0; i < hp.blockCount; i++) {
    const src = `encoder.layer.${i}`;
    const dst = `bert.blk.${i}`;
    linear(`${dst}.attn_q`, `${src}.attention.self.query`, H, H);
    linear(`${dst}.attn_k`, `${src}.attention.self.key`, H, H);
    linear(`${dst}.attn_v`, `${src}.attention.self.value`, H, H);
    linear(`${dst}.attn_output`, `${src}.attention.output.dense`, H, H);
    norm(`${dst}.attn_output_norm`, `${src}.attention.output.LayerNorm`);
    linear(`${dst}.ffn_up`, `${src}.intermediate.dense`, hp.feedForwardLength, H);
    linear(`${dst}.ffn_down`, `${src}.output.dense`, H, hp.feedForwardLength);
    norm(`${dst}.layer_output_norm`, `${src}.output.LayerNorm`);
  }
  return slots;
}

/** the WordPiece vocabulary and its special ids (llama.cpp's BERT tokenizer keys) */
export function addBertTokenizer(w: GgufWriter, vocab: WordPieceVocab): void {
  const U32 = (key: string, v: number) => w.addUint32(key, v);
  w.addString('tokenizer.ggml.model', 'bert');
  w.addArray('tokenizer.ggml.tokens', GgufValueType.STRING, vocab.pieces);
  U32('tokenizer.ggml.unknown_token_id', vocab.specialId('[UNK]'));
  U32('tokenizer.ggml.seperator_token_id', vocab.specialId('[SEP]')); // llama.cpp's spelling
  U32('tokenizer.ggml.padding_token_id', vocab.specialId('[PAD]'));
  U32('tokenizer.ggml.cls_token_id', vocab.specialId('[CLS]'));
  U32('tokenizer.ggml.mask_token_id', vocab.specialId('[MASK]'));
  w.addBool('tokenizer.ggml.lowercase', true);
}

/** every GGUF tensor, from which checkpoint tensor, checked against the shapes the hparams imply */
function planTensors(tensors: ReadonlyMap<string, LazyTensor>, hp: ChexbertHparams): Planned[] {
  const planned: Planned[] = [];
  const used = new Set<string>();
  const take = (name: string, key: string, shape: number[]): void => {
    const t = tensors.get(key);
    if (t === undefined) throw bad(`CheXbert checkpoint: no tensor "${key}"`);
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16' && t.dtype !== 'F64') {
      throw bad(`CheXbert checkpoint: "${key}" is ${t.dtype}, expected a floating-point tensor`);
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw bad(`CheXbert checkpoint: "${key}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    planned.push({ name, source: t, matrix: shape.length === 2 });
    used.add(key);
  };
  const linear = (name: string, key: string, nOut: number, nIn: number): void => {
    take(`${name}.weight`, `${key}.weight`, [nOut, nIn]);
    take(`${name}.bias`, `${key}.bias`, [nOut]);
  };
  for (const slot of bertEncoderSlots(hp, 'bert.')) take(slot.name, slot.key, slot.shape);
  const H = hp.embeddingLength;
  linear('bert.pooler', 'bert.pooler.dense', H, H);
  hp.headClasses.forEach((classes, i) => linear(`chexbert.head.${i}`, `linear_heads.${i}`, classes, H));
  used.add('bert.embeddings.position_ids'); // a buffer of transformers >= 3.x: arange(context), not a weight
  const extra = [...tensors.keys()].filter((k) => !used.has(k));
  if (extra.length > 0) throw bad(`CheXbert checkpoint: unexpected tensors ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}`);
  return planned;
}

/** the shapes the checkpoint implies (head count aside: BERT's weights do not record it) */
function readHparams(tensors: ReadonlyMap<string, LazyTensor>, options: ConvertChexbertOptions): ChexbertHparams {
  const shape = (key: string): readonly number[] => {
    const t = tensors.get(key);
    if (t === undefined) throw bad(`CheXbert checkpoint: no tensor "${key}" (is this CheXbert's chexbert.pth?)`);
    return t.shape;
  };
  const [vocabSize, embeddingLength] = shape('bert.embeddings.word_embeddings.weight');
  let blockCount = 0;
  while (tensors.has(`bert.encoder.layer.${blockCount}.attention.self.query.weight`)) blockCount++;
  const headClasses: number[] = [];
  while (tensors.has(`linear_heads.${headClasses.length}.weight`)) headClasses.push(shape(`linear_heads.${headClasses.length}.weight`)[0]!);
  const expected = chexbertHeadClasses();
  if (headClasses.join() !== expected.join()) {
    throw bad(`CheXbert checkpoint: heads with [${headClasses.join(', ')}] classes, expected [${expected.join(', ')}]`);
  }
  if (blockCount === 0 || vocabSize === undefined || embeddingLength === undefined) throw bad('CheXbert checkpoint: no encoder layers');
  const headCount = options.headCount ?? embeddingLength / BERT_HEAD_DIM;
  if (!Number.isInteger(headCount) || headCount <= 0 || embeddingLength % headCount !== 0) {
    throw new LlavaRadError('INVALID_ARGUMENT', `head count ${headCount} does not divide the embedding length ${embeddingLength}: pass headCount`);
  }
  return {
    vocabSize, embeddingLength, blockCount, headCount, headClasses,
    contextLength: shape('bert.embeddings.position_embeddings.weight')[0]!,
    tokenTypeCount: shape('bert.embeddings.token_type_embeddings.weight')[0]!,
    feedForwardLength: shape('bert.encoder.layer.0.intermediate.dense.weight')[0]!,
  };
}

/** general.* and the encoder's bert.* keys (what native/src/bert_model.cpp reads), then the tokenizer's */
export function addBertHeader(
  w: GgufWriter, name: string, hp: Omit<ChexbertHparams, 'headClasses' | 'vocabSize'>, eps: number, vocab: WordPieceVocab, type: ChexbertConvertType,
): void {
  const U32 = (key: string, v: number) => w.addUint32(key, v);
  w.addString('general.architecture', 'bert');
  w.addString('general.name', name);
  U32('general.file_type', type === 'f16' ? 1 : 0);
  U32('bert.context_length', hp.contextLength);
  U32('bert.embedding_length', hp.embeddingLength);
  U32('bert.feed_forward_length', hp.feedForwardLength);
  U32('bert.block_count', hp.blockCount);
  U32('bert.attention.head_count', hp.headCount);
  w.addFloat32('bert.attention.layer_norm_epsilon', eps);
  w.addBool('bert.attention.causal', false);
  U32('bert.token_type_count', hp.tokenTypeCount);
  w.addString('bert.pooling_type', 'cls');
  addBertTokenizer(w, vocab);
}

/** every planned tensor's info, the header, then the tensors' data: matrices in `type`, the rest f32 */
export async function writeBertTensors(w: GgufWriter, planned: readonly Planned[], type: ChexbertConvertType): Promise<void> {
  const ggmlType = (p: Planned) => (p.matrix && type === 'f16' ? GgmlType.F16 : GgmlType.F32);
  for (const p of planned) w.addTensorInfo(p.name, ggmlType(p), [...p.source.shape].reverse());
  await w.writeHeader();
  for (const p of planned) {
    const values = await p.source.readFloat32();
    await w.writeTensorData(p.name, ggmlType(p) === GgmlType.F16 ? f32ArrayToF16(values) : values);
  }
}

function addMetadata(w: GgufWriter, hp: ChexbertHparams, vocab: WordPieceVocab, type: ChexbertConvertType): void {
  const U32 = (key: string, v: number) => w.addUint32(key, v);
  addBertHeader(w, 'CheXbert labeler (stanfordmlgroup/CheXbert)', hp, BERT_LAYER_NORM_EPS, vocab, type);
  w.addArray('chexbert.conditions', GgufValueType.STRING, chexbertConditions());
  w.addArray('chexbert.head_classes', GgufValueType.UINT32, hp.headClasses);
  U32('chexbert.max_input_ids', CHEXBERT_MAX_IDS);
}

/**
 * Converts chexbert.pth to a GGUF at `outPath` (written to a temporary name, renamed when complete).
 * `vocab` is bert-base-uncased's vocabulary; its size must equal the checkpoint's embedding rows.
 */
export async function convertChexbert(
  checkpointPath: string, vocab: WordPieceVocab, outPath: string, options: ConvertChexbertOptions = {},
): Promise<ConvertChexbertResult> {
  const type = options.type ?? 'f16';
  if (type !== 'f32' && type !== 'f16') throw new LlavaRadError('INVALID_ARGUMENT', `CheXbert GGUF type must be f32 or f16, got ${String(type)}`);
  const ckpt = await openCheckpoint(checkpointPath, { wrappers: ['model_state_dict'] });
  try {
    const tensors = stripModulePrefix(ckpt.tensors);
    const hp = readHparams(tensors, options);
    if (vocab.size !== hp.vocabSize) throw bad(`CheXbert checkpoint has ${hp.vocabSize} token embeddings, the vocabulary ${vocab.size} pieces`);
    const planned = planTensors(tensors, hp);
    await writeGgufFile(outPath, async (writer) => {
      addMetadata(writer, hp, vocab, type);
      await writeBertTensors(writer, planned, type);
    });
    return { hparams: hp, tensorSources: new Map(planned.map((p) => [p.name, p.source.name])) };
  } finally {
    await ckpt.close();
  }
}

/** writes a GGUF through `write` under a temporary name, renamed to outPath when complete (removed on failure) */
export async function writeGgufFile(outPath: string, write: (w: GgufWriter) => Promise<void>): Promise<void> {
  const tmp = `${outPath}.tmp-${process.pid}-${Date.now()}`;
  let writer: GgufWriter | undefined = new GgufWriter(tmp);
  try {
    await write(writer);
    await writer.close();
    writer = undefined;
    await rename(tmp, outPath);
  } catch (e) {
    await writer?.abort().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}
