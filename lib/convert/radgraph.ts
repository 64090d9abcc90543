// The RadGraph model archive (radgraph.tar.gz of StanfordAIMI/RRG_scorers, an allennlp archive of a DyGIE
// model) -> one GGUF: the BERT encoder in the same tensor names and keys as CheXbert's GGUF (so lr_bert's
// loader reads it), DyGIE's span width embedding and its NER / mention (pruner) / relation feedforwards as
// `radgraph.*` tensors, the label vocabularies and every hyperparameter the engine and lib/radgraph need.
//
// Every hyperparameter is read from the archive's own config.json (the released one lives on the Hub, not in
// any repository we can read); anything this engine does not implement is refused with UNSUPPORTED naming
// the setting. The DyGIE state dict names (radgraph/dygie/models/*.py, allennlp FeedForward / TimeDistributed):
//
//   _embedder.token_embedder_bert._matched_embedder.transformer_model.<transformers BertModel>
//   _endpoint_span_extractor._span_width_embedding.weight                          [max_span_width, F]
//   _ner._ner_scorers.<ds>__ner_labels.0._module._linear_layers.N.{weight,bias}     feedforward
//   _ner._ner_scorers.<ds>__ner_labels.1._module.{weight,bias}                      [labels - 1, H]
//   _relation._mention_pruners.<ds>__relation_labels._scorer.0._module._linear_layers.N.*
//   _relation._mention_pruners.<ds>__relation_labels._scorer.1._module.{weight,bias} [1, H]
//   _relation._relation_feedforwards.<ds>__relation_labels._linear_layers.N.*      (input 3 x span)
//   _relation._relation_scorers.<ds>__relation_labels.{weight,bias}                  [relation labels, H]
//   _coref.*, _events.*: modules whose loss weight must be 0; not converted.

import { rename, rm } from 'node:fs/promises';
import type { WordPieceVocab } from '../bert/wordpiece.js';
import { WordPieceVocab as Vocab } from '../bert/wordpiece.js';
import { describeValue, ioError, LlavaRadError } from '../errors.js';
import { GgmlType, GgufValueType, f32ArrayToF16 } from '../gguf/types.js';
import { GgufWriter } from '../gguf/writer.js';
import { readModelArchive } from '../radgraph/archive.js';
import { checkReplaceable, tempPathFor } from '../replace-file.js';
import { openCheckpoint } from './checkpoint.js';
import { addBertMetadata, planBertEncoder, type BertEncoderHparams } from './bert-gguf.js';
import type { LazyTensor } from './tensor.js';

export type RadgraphConvertType = 'f32' | 'f16';

const BERT_PREFIX = '_embedder.token_embedder_bert._matched_embedder.transformer_model.';
/** the dataset name radgraph.py gives every report (preprocess_reports: "dataset": model_type) */
const RADGRAPH_DATASET = 'radgraph';
const BERT_HEAD_DIM = 64;

export interface RadgraphConfig {
  /** the BERT checkpoint the embedder and tokenizer were made from (config's model_name) */
  bertModelName: string;
  /** allennlp's max_length: longer inputs are folded into segments of this many ids (0: no folding) */
  maxLength: number;
  /** the widest span enumerated, in words (dataset_reader.max_span_width) */
  maxSpanWidth: number;
  /** rows of the span width embedding (model.max_span_width) */
  widthEmbeddingCount: number;
  featureSize: number;
  /** the feedforwards' layer widths (num_layers x hidden_dims) */
  ffnnDims: number[];
  /** relation pruning: ceil(words x spans_per_word) spans kept */
  spansPerWord: number;
  /** the label namespace prefix (radgraph: "radgraph") */
  dataset: string;
  /** entity labels, the null label "" first */
  nerLabels: string[];
  relationLabels: string[];
}

export type RadgraphBertHparams = BertEncoderHparams;

export interface ConvertRadgraphOptions {
  /** BERT's weight matrices: f32 (default) or f16; the span model is always f32 */
  type?: RadgraphConvertType;
  /** the WordPiece vocabulary when the archive has no vocab.txt (the released one does not) */
  vocab?: WordPieceVocab;
  /** attention heads; default embedding_length / 64 */
  headCount?: number;
  /** the BERT's tokenizer lowercases (do_lower_case), for a model_name that does not say "uncased" */
  uncased?: boolean;
}

export interface ConvertRadgraphResult {
  config: RadgraphConfig;
  bert: RadgraphBertHparams;
  /** GGUF tensor name -> archive tensor name */
  tensorSources: Map<string, string>;
}

const bad = (msg: string) => new LlavaRadError('BAD_CHECKPOINT', `RadGraph archive: ${msg}`);
const unsupported = (msg: string) => new LlavaRadError('UNSUPPORTED', `RadGraph archive: ${msg}`);

type Json = Record<string, unknown>;
function obj(v: unknown, where: string): Json {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(`config.json: ${where} must be an object, got ${describeValue(v)}`);
  return v as Json;
}
function int(v: unknown, where: string, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw bad(`config.json: ${where} must be an integer in [${lo}, ${hi}], got ${describeValue(v)}`);
  return v;
}
function num(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`config.json: ${where} must be a number, got ${describeValue(v)}`);
  return v;
}

/** the label file of a vocabulary namespace: one label a line (allennlp Vocabulary.from_files, non-padded) */
function labels(files: Map<string, Buffer>, name: string): string[] {
  const buf = files.get(`vocabulary/${name}.txt`);
  if (buf === undefined) throw bad(`no vocabulary/${name}.txt`);
  const lines = buf.toString('utf8').split('\n').map((l) => l.replace(/\r$/, ''));
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** every setting the engine needs, from config.json and vocabulary/, or UNSUPPORTED / BAD_CHECKPOINT */
export function readRadgraphConfig(files: Map<string, Buffer>, options: { uncased?: boolean } = {}): RadgraphConfig {
  const raw = files.get('config.json');
  if (raw === undefined) throw bad('no config.json (is this an allennlp model archive such as radgraph.tar.gz?)');
  let cfg: Json;
  try {
    cfg = obj(JSON.parse(raw.toString('utf8')), 'the file');
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    throw bad(`config.json is not JSON (${(e as Error).message})`);
  }
  const model = obj(cfg.model, 'model');
  if (model.type !== 'dygie') throw unsupported(`model.type ${describeValue(model.type)}: only DyGIE ("dygie") models are supported`);
  if (model.context_layer !== undefined) throw unsupported('model.context_layer (a contextualizing layer over BERT) is not supported');
  const reader = obj(cfg.dataset_reader, 'dataset_reader');
  const bert = obj(obj(obj(model.embedder, 'model.embedder').token_embedders, 'model.embedder.token_embedders').bert, 'model.embedder.token_embedders.bert');
  if (bert.type !== 'pretrained_transformer_mismatched') throw unsupported(`the embedder ${describeValue(bert.type)}: only "pretrained_transformer_mismatched" (word pieces averaged into words) is supported`);
  if (bert.sub_token_mode !== undefined && bert.sub_token_mode !== 'avg') throw unsupported(`sub_token_mode ${describeValue(bert.sub_token_mode)}: only "avg"`);
  if (bert.last_layer_only === false) throw unsupported('last_layer_only: false (a scalar mix of layers) is not supported');
  if (typeof bert.model_name !== 'string' || bert.model_name === '') throw bad('config.json: the embedder has no model_name');
  if (/(^|[^n])cased/i.test(bert.model_name.replace(/uncased/gi, ''))) throw unsupported(`the BERT ${bert.model_name}: only uncased WordPiece tokenizers are supported`);
  if (!/uncased/i.test(bert.model_name) && options.uncased !== true) {
    throw unsupported(`the tokenizer of ${bert.model_name} is not known to be uncased (only uncased WordPiece tokenizers are supported): if its tokenizer_config.json has do_lower_case true, pass uncased (--uncased)`);
  }
  const maxLength = bert.max_length === undefined || bert.max_length === null ? 0 : int(bert.max_length, 'the embedder max_length', 3, 1 << 16);
  const readerBert = obj(reader.token_indexers, 'dataset_reader.token_indexers').bert;
  if (readerBert !== undefined) {
    const rb = obj(readerBert, 'dataset_reader.token_indexers.bert');
    if (rb.model_name !== undefined && rb.model_name !== bert.model_name) throw unsupported(`the indexer's model_name ${describeValue(rb.model_name)} differs from the embedder's ${bert.model_name}`);
    const rl = rb.max_length === undefined || rb.max_length === null ? 0 : rb.max_length;
    if (rl !== maxLength) throw unsupported(`the indexer's max_length ${describeValue(rl)} differs from the embedder's ${maxLength}`);
  }
  const maxSpanWidth = int(reader.max_span_width, 'dataset_reader.max_span_width', 1, 64);
  const widthEmbeddingCount = int(model.max_span_width, 'model.max_span_width', 1, 64);
  if (maxSpanWidth > widthEmbeddingCount) throw unsupported(`dataset_reader.max_span_width ${maxSpanWidth} exceeds model.max_span_width ${widthEmbeddingCount}`);
  const featureSize = int(model.feature_size, 'model.feature_size', 1, 1 << 16);
  const ff = obj(model.feedforward_params, 'model.feedforward_params');
  const nLayers = int(ff.num_layers, 'feedforward_params.num_layers', 1, 16);
  const hd = ff.hidden_dims;
  const ffnnDims = Array.isArray(hd) ? hd.map((d, i) => int(d, `feedforward_params.hidden_dims[${i}]`, 1, 1 << 16)) : Array.from({ length: nLayers }, () => int(hd, 'feedforward_params.hidden_dims', 1, 1 << 16));
  if (ffnnDims.length !== nLayers) throw bad(`config.json: feedforward_params.hidden_dims has ${ffnnDims.length} entries for ${nLayers} layers`);
  const lw = obj(model.loss_weights, 'model.loss_weights');
  for (const task of ['ner', 'relation']) if (!(num(lw[task], `loss_weights.${task}`) > 0)) throw unsupported(`loss_weights.${task} is 0: the model has no ${task} output to score with`);
  for (const task of ['coref', 'events']) if (lw[task] !== undefined && num(lw[task], `loss_weights.${task}`) !== 0) throw unsupported(`loss_weights.${task} is not 0: DyGIE's ${task} module is not implemented`);
  const modules = obj(model.modules, 'model.modules');
  const coref = modules.coref === undefined ? {} : obj(modules.coref, 'modules.coref');
  if (coref.coref_prop !== undefined && num(coref.coref_prop, 'modules.coref.coref_prop') !== 0) throw unsupported('coref propagation (modules.coref.coref_prop > 0) is not implemented');
  const relation = obj(modules.relation, 'modules.relation');
  const spansPerWord = num(relation.spans_per_word, 'modules.relation.spans_per_word');
  if (!(spansPerWord > 0 && spansPerWord <= 64)) throw bad(`config.json: modules.relation.spans_per_word must be in (0, 64], got ${spansPerWord}`);

  const namespaces = [...files.keys()].filter((k) => k.startsWith('vocabulary/') && k.endsWith('.txt')).map((k) => k.slice('vocabulary/'.length, -4));
  const ner = namespaces.filter((n) => n.endsWith('__ner_labels'));
  const rel = namespaces.filter((n) => n.endsWith('__relation_labels'));
  // one dataset's namespaces, or radgraph's (radgraph.py reads reports as dataset "radgraph") among several
  const dataset = ner.length === 1 ? ner[0]!.slice(0, -'__ner_labels'.length) : ner.includes(`${RADGRAPH_DATASET}__ner_labels`) ? RADGRAPH_DATASET : undefined;
  if (dataset === undefined) throw unsupported(`vocabulary/ must hold one *__ner_labels namespace, or radgraph__ner_labels among them; found [${ner.join(', ')}]`);
  if (!rel.includes(`${dataset}__relation_labels`)) throw unsupported(`vocabulary/ has no ${dataset}__relation_labels for ${dataset}__ner_labels (found [${rel.join(', ')}])`);
  const nerLabels = labels(files, `${dataset}__ner_labels`);
  const relationLabels = labels(files, `${dataset}__relation_labels`);
  if (nerLabels[0] !== '' || nerLabels.length < 2) throw bad(`vocabulary/${ner[0]}.txt must start with the null label (an empty line) and name at least one entity label`);
  if (relationLabels.length < 1) throw bad(`vocabulary/${rel[0]}.txt names no relation`);
  return { bertModelName: bert.model_name, maxLength, maxSpanWidth, widthEmbeddingCount, featureSize, ffnnDims, spansPerWord, dataset, nerLabels, relationLabels };
}

interface Planned { name: string; source: LazyTensor; bertMatrix: boolean }

function readBertHparams(tensors: ReadonlyMap<string, LazyTensor>, headCountOption: number | undefined): RadgraphBertHparams {
  const shape = (key: string): readonly number[] => {
    const t = tensors.get(BERT_PREFIX + key);
    if (t === undefined) throw bad(`weights.th has no "${BERT_PREFIX}${key}"`);
    return t.shape;
  };
  const [vocabSize, embeddingLength] = shape('embeddings.word_embeddings.weight');
  let blockCount = 0;
  while (tensors.has(`${BERT_PREFIX}encoder.layer.${blockCount}.attention.self.query.weight`)) blockCount++;
  if (blockCount === 0 || vocabSize === undefined || embeddingLength === undefined) throw bad('weights.th has no BERT encoder layers');
  const headCount = headCountOption ?? embeddingLength / BERT_HEAD_DIM;
  if (!Number.isInteger(headCount) || headCount <= 0 || embeddingLength % headCount !== 0) {
    throw new LlavaRadError('INVALID_ARGUMENT', `head count ${headCount} does not divide the embedding length ${embeddingLength}: pass headCount (--heads)`);
  }
  return {
    vocabSize, embeddingLength, blockCount, headCount,
    contextLength: shape('embeddings.position_embeddings.weight')[0]!,
    tokenTypeCount: shape('embeddings.token_type_embeddings.weight')[0]!,
    feedForwardLength: shape('encoder.layer.0.intermediate.dense.weight')[0]!,
  };
}

/** every GGUF tensor, from which archive tensor, checked against the shapes the config implies */
function planTensors(tensors: ReadonlyMap<string, LazyTensor>, bert: RadgraphBertHparams, cfg: RadgraphConfig): Planned[] {
  const planned: Planned[] = [];
  const used = new Set<string>();
  const take = (name: string, key: string, shape: number[], bertMatrix = false): void => {
    const t = tensors.get(key);
    if (t === undefined) throw bad(`weights.th has no "${key}"`);
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'BF16' && t.dtype !== 'F64') throw bad(`"${key}" is ${t.dtype}, expected a floating-point tensor`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw bad(`"${key}" has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
    planned.push({ name, source: t, bertMatrix });
    used.add(key);
  };
  const linear = (name: string, key: string, nOut: number, nIn: number): void => {
    take(`${name}.weight`, `${key}.weight`, [nOut, nIn]);
    take(`${name}.bias`, `${key}.bias`, [nOut]);
  };
  for (const known of planBertEncoder((name, key, shape) => take(name, key, shape, shape.length === 2), bert, BERT_PREFIX)) used.add(known);
  const H = bert.embeddingLength;
  const P = 2 * H + cfg.featureSize;
  take('radgraph.span_width_embd.weight', '_endpoint_span_extractor._span_width_embedding.weight', [cfg.widthEmbeddingCount, cfg.featureSize]);
  const ffnn = (name: string, key: string, nIn: number): void => {
    cfg.ffnnDims.forEach((d, i) => {
      linear(`${name}.ffn.${i}`, `${key}._linear_layers.${i}`, d, i === 0 ? nIn : cfg.ffnnDims[i - 1]!);
    });
  };
  const Hn = cfg.ffnnDims[cfg.ffnnDims.length - 1]!;
  const nerNs = `${cfg.dataset}__ner_labels`;
  const relNs = `${cfg.dataset}__relation_labels`;
  ffnn('radgraph.ner', `_ner._ner_scorers.${nerNs}.0._module`, P);
  linear('radgraph.ner.out', `_ner._ner_scorers.${nerNs}.1._module`, cfg.nerLabels.length - 1, Hn);
  ffnn('radgraph.mention', `_relation._mention_pruners.${relNs}._scorer.0._module`, P);
  linear('radgraph.mention.out', `_relation._mention_pruners.${relNs}._scorer.1._module`, 1, Hn);
  ffnn('radgraph.relation', `_relation._relation_feedforwards.${relNs}`, 3 * P);
  linear('radgraph.relation.out', `_relation._relation_scorers.${relNs}`, cfg.relationLabels.length, Hn);

  // other datasets' scorers (a model trained on several) are not used either
  const otherDataset = (k: string) => /^_(ner|relation)\.[^.]+\.[^.]+__(ner|relation)_labels\./.test(k) && !k.includes(`.${cfg.dataset}__`);
  const extra = [...tensors.keys()].filter((k) => !used.has(k) && !k.startsWith('_coref.') && !k.startsWith('_events.') && !otherDataset(k));
  if (extra.length > 0) throw unsupported(`weights.th has tensors this converter does not know: ${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}`);
  return planned;
}

function addMetadata(w: GgufWriter, bert: RadgraphBertHparams, cfg: RadgraphConfig, vocab: WordPieceVocab, type: RadgraphConvertType): void {
  const U32 = (key: string, v: number) => w.addUint32(key, v);
  addBertMetadata(w, bert, vocab, { name: `RadGraph (DyGIE on ${cfg.bertModelName})`, fileType: type === 'f16' ? 1 : 0 });
  w.addString('radgraph.bert_model_name', cfg.bertModelName);
  w.addString('radgraph.dataset', cfg.dataset);
  U32('radgraph.max_length', cfg.maxLength);
  U32('radgraph.max_span_width', cfg.maxSpanWidth);
  U32('radgraph.width_embedding_count', cfg.widthEmbeddingCount);
  U32('radgraph.feature_size', cfg.featureSize);
  w.addArray('radgraph.ffnn_dims', GgufValueType.INT32, cfg.ffnnDims);
  w.addFloat32('radgraph.spans_per_word', cfg.spansPerWord);
  w.addArray('radgraph.ner_labels', GgufValueType.STRING, cfg.nerLabels);
  w.addArray('radgraph.relation_labels', GgufValueType.STRING, cfg.relationLabels);
}

/** converts a RadGraph archive (.tar.gz) to a GGUF at `outPath` (written under a temporary name, then renamed) */
export async function convertRadgraph(archivePath: string, outPath: string, options: ConvertRadgraphOptions = {}): Promise<ConvertRadgraphResult> {
  const type = options.type ?? 'f32';
  if (type !== 'f32' && type !== 'f16') throw new LlavaRadError('INVALID_ARGUMENT', `RadGraph GGUF type must be f32 or f16, got ${describeValue(type)}`);
  checkReplaceable(outPath, 'the output GGUF');
  const archive = await readModelArchive(archivePath);
  const tmp = tempPathFor(outPath);
  let writer: GgufWriter | undefined;
  try {
    const cfg = readRadgraphConfig(archive.files, { uncased: options.uncased === true });
    if (archive.weightsPath === undefined) throw bad('no weights.th');
    const inArchive = archive.files.get('vocab.txt');
    let vocab = options.vocab;
    if (vocab === undefined && inArchive !== undefined) {
      try { vocab = Vocab.fromText(inArchive.toString('utf8')); } catch (e) { throw bad(`vocab.txt: ${(e as Error).message}`); }
    }
    if (vocab === undefined) throw new LlavaRadError('INVALID_ARGUMENT', `the archive holds no vocab.txt: pass the WordPiece vocabulary of ${cfg.bertModelName} (--vocab vocab.txt)`);
    const ckpt = await openCheckpoint(archive.weightsPath);
    try {
      const bert = readBertHparams(ckpt.tensors, options.headCount);
      if (vocab.size !== bert.vocabSize) throw bad(`the BERT has ${bert.vocabSize} token embeddings, the vocabulary ${vocab.size} pieces`);
      if (cfg.maxLength > bert.contextLength) throw unsupported(`max_length ${cfg.maxLength} exceeds the BERT's ${bert.contextLength} positions`);
      const planned = planTensors(ckpt.tensors, bert, cfg);
      writer = new GgufWriter(tmp, { exclusive: true });
      addMetadata(writer, bert, cfg, vocab, type);
      const ggmlType = (p: Planned) => (p.bertMatrix && type === 'f16' ? GgmlType.F16 : GgmlType.F32);
      for (const p of planned) writer.addTensorInfo(p.name, ggmlType(p), [...p.source.shape].reverse());
      await writer.writeHeader();
      for (const p of planned) {
        const values = await p.source.readFloat32();
        await writer.writeTensorData(p.name, ggmlType(p) === GgmlType.F16 ? f32ArrayToF16(values) : values);
      }
      await writer.close();
      writer = undefined;
      await rename(tmp, outPath).catch((e: unknown) => { throw ioError(e, `cannot move ${tmp} to ${outPath}`); });
      return { config: cfg, bert, tensorSources: new Map(planned.map((p) => [p.name, p.source.name])) };
    } finally {
      await ckpt.close();
    }
  } catch (e) {
    await writer?.abort().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  } finally {
    await archive.dispose();
  }
}
