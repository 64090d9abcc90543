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

import { chexbertConditions, chexbertHeadClasses } from '../bert/chexbert-labels.js';
import { CHEXBERT_MAX_IDS } from '../bert/chexbert-input.js';
import type { WordPieceVocab } from '../bert/wordpiece.js';
import { LlavaRadError } from '../errors.js';
import { GgufValueType } from '../gguf/types.js';
import { addBertMetadata, planBertEncoder, writeBertTensors, writeGgufFile, type BertEncoderHparams, type PlannedBertTensor } from './bert-gguf.js';
import type { GgufWriter } from '../gguf/writer.js';
import { openCheckpoint, stripModulePrefix } from './checkpoint.js';
import type { LazyTensor } from './tensor.js';

export type ChexbertConvertType = 'f32' | 'f16';

export { BERT_LAYER_NORM_EPS } from './bert-gguf.js';
/** BERT's attention head size: head_count = hidden / 64 unless the caller says otherwise */
const BERT_HEAD_DIM = 64;

export interface ChexbertHparams extends BertEncoderHparams {
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

type Planned = PlannedBertTensor;

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
  for (const known of planBertEncoder(take, hp, 'bert.')) used.add(known);
  const H = hp.embeddingLength;
  linear('bert.pooler', 'bert.pooler.dense', H, H);
  hp.headClasses.forEach((classes, i) => linear(`chexbert.head.${i}`, `linear_heads.${i}`, classes, H));
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

function addMetadata(w: GgufWriter, hp: ChexbertHparams, vocab: WordPieceVocab, type: ChexbertConvertType): void {
  addBertMetadata(w, hp, vocab, { name: 'CheXbert labeler (stanfordmlgroup/CheXbert)', fileType: type === 'f16' ? 1 : 0, poolingType: 'cls' });
  const U32 = (key: string, v: number) => w.addUint32(key, v);
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
