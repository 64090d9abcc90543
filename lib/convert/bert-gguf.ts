// The BERT encoder's part of a BERT GGUF (llama.cpp's BERT names under "bert.", read by
// native/src/bert_model.cpp): the tensor plan from a transformers BertModel state dict and the metadata.
// Shared by the CheXbert, RadGraph and CLIP converters.

import { rename, rm } from 'node:fs/promises';
import type { WordPieceVocab } from '../bert/wordpiece.js';
import { GgmlType, GgufValueType, f32ArrayToF16 } from '../gguf/types.js';
import { GgufWriter } from '../gguf/writer.js';
import { checkReplaceable, tempPathFor } from '../replace-file.js';
import type { LazyTensor } from './tensor.js';

/** BERT's LayerNorm epsilon (transformers BertConfig.layer_norm_eps; checkpoints do not record it) */
export const BERT_LAYER_NORM_EPS = 1e-12;

export interface BertEncoderHparams {
  vocabSize: number;
  contextLength: number;
  tokenTypeCount: number;
  embeddingLength: number;
  feedForwardLength: number;
  blockCount: number;
  headCount: number;
}

/**
 * Calls take(GGUF name, checkpoint key, PyTorch shape) for every encoder tensor, the checkpoint's
 * transformers BertModel keys under `prefix` (e.g. "bert."); the pooler and the position_ids buffer are not
 * taken: their keys come back, for the caller to accept as known.
 */
export function planBertEncoder(take: (name: string, key: string, shape: number[]) => void, hp: BertEncoderHparams, prefix: string): string[] {
  const H = hp.embeddingLength;
  const linear = (name: string, key: string, nOut: number, nIn: number): void => {
    take(`${name}.weight`, `${prefix}${key}.weight`, [nOut, nIn]);
    take(`${name}.bias`, `${prefix}${key}.bias`, [nOut]);
  };
  const norm = (name: string, key: string): void => {
    take(`${name}.weight`, `${prefix}${key}.weight`, [H]);
    take(`${name}.bias`, `${prefix}${key}.bias`, [H]);
  };
  take('bert.token_embd.weight', `${prefix}embeddings.word_embeddings.weight`, [hp.vocabSize, H]);
  take('bert.position_embd.weight', `${prefix}embeddings.position_embeddings.weight`, [hp.contextLength, H]);
  take('bert.token_types.weight', `${prefix}embeddings.token_type_embeddings.weight`, [hp.tokenTypeCount, H]);
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
  // a buffer of transformers >= 3.x (arange(context)), and the pooler, which neither model reads
  return ['embeddings.position_ids', 'pooler.dense.weight', 'pooler.dense.bias'].map((k) => prefix + k);
}

export interface BertMetadataOptions {
  name: string;
  /** GGUF general.file_type: 0 f32, 1 f16 matrices */
  fileType: number;
  /** bert.pooling_type, when the model has one */
  poolingType?: string;
  /** the LayerNorm epsilon (default BERT_LAYER_NORM_EPS) */
  eps?: number;
}

/** general.*, bert.* and tokenizer.* keys (the WordPiece vocabulary, uncased) */
export function addBertMetadata(w: GgufWriter, hp: BertEncoderHparams, vocab: WordPieceVocab, options: BertMetadataOptions): void {
  const U32 = (key: string, v: number) => w.addUint32(key, v);
  w.addString('general.architecture', 'bert');
  w.addString('general.name', options.name);
  U32('general.file_type', options.fileType);
  U32('bert.context_length', hp.contextLength);
  U32('bert.embedding_length', hp.embeddingLength);
  U32('bert.feed_forward_length', hp.feedForwardLength);
  U32('bert.block_count', hp.blockCount);
  U32('bert.attention.head_count', hp.headCount);
  w.addFloat32('bert.attention.layer_norm_epsilon', options.eps ?? BERT_LAYER_NORM_EPS);
  w.addBool('bert.attention.causal', false);
  U32('bert.token_type_count', hp.tokenTypeCount);
  if (options.poolingType !== undefined) w.addString('bert.pooling_type', options.poolingType);
  w.addString('tokenizer.ggml.model', 'bert');
  w.addArray('tokenizer.ggml.tokens', GgufValueType.STRING, vocab.pieces);
  U32('tokenizer.ggml.unknown_token_id', vocab.specialId('[UNK]'));
  U32('tokenizer.ggml.seperator_token_id', vocab.specialId('[SEP]')); // llama.cpp's spelling
  U32('tokenizer.ggml.padding_token_id', vocab.specialId('[PAD]'));
  U32('tokenizer.ggml.cls_token_id', vocab.specialId('[CLS]'));
  U32('tokenizer.ggml.mask_token_id', vocab.specialId('[MASK]'));
  w.addBool('tokenizer.ggml.lowercase', true);
}

/** a GGUF tensor and the checkpoint tensor it is made from; matrices follow the file's type, the rest stay f32 */
export interface PlannedBertTensor { name: string; source: LazyTensor; matrix: boolean }

/** every planned tensor's info, the header, then the tensors' data: matrices in `type`, the rest f32 */
export async function writeBertTensors(w: GgufWriter, planned: readonly PlannedBertTensor[], type: 'f32' | 'f16'): Promise<void> {
  const ggmlType = (p: PlannedBertTensor) => (p.matrix && type === 'f16' ? GgmlType.F16 : GgmlType.F32);
  for (const p of planned) w.addTensorInfo(p.name, ggmlType(p), [...p.source.shape].reverse());
  await w.writeHeader();
  for (const p of planned) {
    const values = await p.source.readFloat32();
    await w.writeTensorData(p.name, ggmlType(p) === GgmlType.F16 ? f32ArrayToF16(values) : values);
  }
}

/**
 * writes a GGUF through `write` under a temporary name, renamed to outPath when complete (removed on failure);
 * INVALID_ARGUMENT before any work when outPath is there and not a regular file (lib/replace-file.ts)
 */
export async function writeGgufFile(outPath: string, write: (w: GgufWriter) => Promise<void>): Promise<void> {
  checkReplaceable(outPath, 'the output GGUF');
  const tmp = tempPathFor(outPath);
  let writer: GgufWriter | undefined = new GgufWriter(tmp, { exclusive: true });
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
