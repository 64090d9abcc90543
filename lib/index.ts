// llava-rad: the public API.
//
//   import { loadModel } from 'llava-rad';
//   const model = await loadModel({ model: 'vicuna.gguf' });
//   const { text } = await model.generate('USER: Hello ASSISTANT:', { maxTokens: 64 });
//   await model.dispose();

import { fromNative } from './errors.js';
import { native, type CpuInfo } from './native.js';

export { LlavaRadError, isLlavaRadError, ERROR_CODES, type LlavaRadErrorCode } from './errors.js';
export {
  loadLlavaRad,
  LlavaRad,
  findingsPromptText,
  postprocessFindings,
  resolveModelFolder,
  RESEARCH_USE_NOTICE,
  DEFAULT_FINDINGS_MAX_TOKENS,
  type LoadLlavaRadOptions,
  type FindingsOptions,
  type FindingsResult,
  type FindingsTimings,
} from './llava-rad.js';
export { loadVisionModel, VisionModel, type LoadVisionOptions, type EncodeOptions, type VisionInfo } from './vision.js';
export {
  loadModel,
  LlamaModel,
  type ModelInfo,
  type Prompt,
  type GenerateResult,
  type GenerateTimings,
  type StopReason,
  type StreamChunk,
  type GenerationStream,
  type TokenizeOptions,
  type DetokenizeOptions,
  type EvaluateOptions,
} from './model.js';
export type { CpuInfo } from './native.js';
export type { LoadModelOptions, GenerateOptions, TokenEvent, PromptPart, Backend, KvCacheType } from './options.js';
export { MAX_REASON_BYTES } from './options.js';
export {
  preprocessImage,
  preprocessImageU8,
  resizeAndCrop,
  normalizeToCHW,
  IMAGE_DEFAULTS,
  type PreprocessOptions,
  type PreprocessedImage,
  type PreprocessedImageU8,
  type PreprocessGeometry,
} from './image/preprocess.js';
export {
  decodeImage,
  DEFAULT_MAX_PIXELS,
  DEFAULT_MIN_SIDE,
  type DecodeOptions,
  type DecodedImage,
  type ImageSourceInfo,
  type HighBitDepthMode,
} from './image/decode.js';

export {
  decodeDicom,
  equalizeHist,
  isLateralView,
  isDicom,
  readDicom,
  TRANSFER_SYNTAX,
  type DicomOptions,
  type DicomInfo,
  type DicomImage,
  type DicomFile,
} from './dicom/index.js';

/**
 * Quantizes `nRows` rows of `nPerRow` floats with ggml's own quantizer for `type` (a ggml type id; see
 * {@link typeFromName}). Returns the bytes exactly as llama.cpp's quantizer writes them. Synchronous.
 * Types that need an importance matrix (IQ1/IQ2) are refused with UNSUPPORTED.
 */
export function quantize(type: number, data: Float32Array, nRows: number, nPerRow: number): Buffer {
  try {
    return native().quantize(type, data, nRows, nPerRow);
  } catch (e) {
    throw fromNative(e);
  }
}

/** ggml type id for a name such as 'f32', 'f16', 'q8_0', 'q4_0', 'q4_k'; -1 when unknown. */
export function typeFromName(name: string): number {
  try {
    return native().typeFromName(name);
  } catch (e) {
    throw fromNative(e);
  }
}

/** Bytes one row of `nPerRow` values takes in `type` (0 when nPerRow does not fit the type's block). */
export function typeRowBytes(type: number, nPerRow: number): number {
  try {
    return native().typeRowBytes(type, nPerRow);
  } catch (e) {
    throw fromNative(e);
  }
}

/** A short description of the native library: version, ggml commit, backends compiled in, the CPU variant and kernels in use. */
export function buildInfo(): string {
  return native().buildInfo();
}

/**
 * The CPU code this process computes with: ggml's CPU variant chosen for this CPU (`LLAVA_RAD_CPU_VARIANT`
 * overrides), the matrix kernels (`LLAVA_RAD_CPU_KERNELS`), and the default thread count. Throws
 * `LlavaRadError` `BACKEND` when no variant runs here (or the one named cannot).
 */
export function cpuInfo(): CpuInfo {
  try {
    return native().cpuInfo();
  } catch (e) {
    throw fromNative(e);
  }
}

// Checkpoint readers the converter stands on (zip / legacy PyTorch pickles read by a restricted unpickler,
// safetensors, sharded indexes, SentencePiece models). Tensors are lazy: read one at a time.
export { openCheckpoint, openShardedCheckpoint, type Checkpoint } from './convert/checkpoint.js';
export {
  openTorchCheckpoint,
  extractStateDict,
  stripModulePrefix,
  type TorchCheckpoint,
  type ExtractOptions,
  type ExtractedStateDict,
} from './convert/pickle.js';
export { openSafetensors, type SafetensorsFile } from './convert/safetensors.js';
export { readSentencePiece, parseSentencePiece, TokenType, type SentencePieceModel } from './convert/sentencepiece.js';
export type { LazyTensor, TensorDtype } from './convert/tensor.js';
// The converter: the official release (lmsys/vicuna-7b-v1.5 + microsoft/llava-rad) -> decoder + vision GGUFs.
export {
  convertRelease,
  permuteQK,
  CONVERTER_VERSION,
  CONVERT_TYPES,
  isConvertType,
  type ConvertType,
  type ConvertOptions,
  type ConvertResult,
  type ConvertProgress,
} from './convert/convert.js';
export { decoderTensorType, fallbackType, useMoreBits } from './convert/mix.js';
// `llava-rad pull`: download the official release from Hugging Face and convert it into the model home.
export { pull, VICUNA_REPO, LLAVA_RAD_REPO, type PullOptions, type PullResult, type PullProgress, type PulledFile } from './pull/pull.js';
export { pullEval, EVAL_MODEL_FILES, type PullEvalOptions, type PullEvalResult, type EvalModelFile } from './pull/eval-models.js';
export { llavaRadHome, modelFolder, defaultModelFolder } from './pull/home.js';
export { LICENSE_TERMS, licenseAccepted } from './pull/license.js';
export { evaluate, evaluatePaired, EVAL_METRICS, DEFAULT_BOOTSTRAP, type EvalMetric, type EvalRecord, type RepeatedIds, type EvalOptions, type EvalResult, type MetricResult, type BleuResult, type RougeResult, type PairedResult, type PairedMetric, chexbertF1, classificationReport, CHEXBERT_CONDITIONS, CHEXBERT_CONDITIONS_5, scipyBootstrap, scipyBootstrapIndices, renderEvalHtml, type ChexbertF1Result, type ChexbertF1Options, type ChexbertLabels, type ClassificationReport, type ScipyBootstrapOptions, type ScipyBootstrapResult, type EvalHtmlInput, DEFAULT_METRICS, type ChexbertMetricResult, type ChexbertMetricOptions, type ChexbertSource, type SembScoreResult } from './eval/index.js';
// RadGraph's reward from annotations (the model that makes them comes later) and the CheXprompt LLM judge.
export { radgraphF1, radgraphReward, radgraphRewards, RADGRAPH_ENTITY_LABELS, RADGRAPH_RELATION_TYPES, RADGRAPH_REWARD_LEVELS, type RadgraphAnnotation, type RadgraphEntity, type RadgraphReward, type RadgraphRewardLevel, type RadgraphRewardOptions, type RadgraphF1Options, type RadgraphF1Result, chexpromptJudge, summarizeChexprompt, loadChexpromptTemplate, parseChexpromptCompletion, ChatClient, CHEXPROMPT_PARAMS, type ChexpromptJudgeOptions, type ChexpromptResult, type ChexpromptStudy, type ChexpromptSummary, type JudgeRecord } from './eval/index.js';
export { scoreGreen, summarizeGreen, loadGreenPrompt, makeGreenPrompt, greenCounts, greenScoreOf, cleanGreenResponse, GREEN_MAX_LENGTH, GREEN_SUB_CATEGORIES, type GreenOptions, type GreenResult, type GreenStudy, type GreenPrompt, type GreenCounts } from './eval/index.js';
// CheXbert's labeler on the engine (BERT encoder + 14 heads; the GGUF carries its WordPiece vocabulary) and its converter (chexbert.pth -> GGUF).
export { ChexbertLabeler, readChexbertVocab, type ChexbertResult, type ChexbertLoadOptions, type ChexbertLabelManyOptions } from './bert/chexbert.js';
export { WordPieceVocab, BertTokenizer } from './bert/wordpiece.js';
export { convertChexbert, type ConvertChexbertOptions, type ConvertChexbertResult, type ChexbertConvertType } from './convert/chexbert.js';
export { convertLlama, type ConvertLlamaOptions, type ConvertLlamaResult } from './convert/convert-llama.js';
export { readGgufMetadata, type GgufMetadata, type GgufMetadataValue } from './gguf/read-metadata.js';
// Retrieval over CLIP embeddings (issue #17): the index file, exact search, build, export and evaluation.
export { RetrievalIndex, writeIndexFile, INDEX_LIMITS, INDEX_MAGIC, INDEX_VERSION, search, searchVectors, checkSameModel, MAX_K, DEFAULT_K, buildIndex, DEFAULT_BUILD_BATCH, exportJsonl, retrievalMetrics, retrievalRanks, RECALL_AT, evalRetrieval, openEmbedder, type IndexContents, type OpenIndexOptions, type EntryKind, type SearchHit, type SearchOptions, type KindFilter, type Query, type BuildIndexOptions, type BuildIndexResult, type RetrievalMetrics, type DirectionMetrics, type RetrievalRanks, type EvalRetrievalOptions, type EvalRetrievalResult } from './retrieval/index.js';
// RadGraph's model on the engine (DyGIE span model on the BERT encoder: report text -> annotations), its
// converter (radgraph.tar.gz -> GGUF) and the radgraph metric of evaluate().
export { RadgraphModel, RADGRAPH_MAX_WORDS, radgraphWords, type RadgraphSettings, type RadgraphTrace, type RadgraphAnnotateManyOptions } from './radgraph/index.js';
export { radgraphMetric, type RadgraphMetricOptions, type RadgraphMetricResult, type RadgraphSource } from './radgraph/metric.js';
export { convertRadgraph, readRadgraphConfig, type ConvertRadgraphOptions, type ConvertRadgraphResult, type RadgraphConfig, type RadgraphConvertType } from './convert/radgraph.js';

// BiomedCLIP-CXR as a CLIP model: image and text embeddings (Embedder), zero-shot labels, and its converter.
export { loadClip, ClipModel, resolveClipFolder, type LoadClipOptions, type ClassifyOptions, type ClassifyResult, type ClipFiles, type NativeClipInfo } from './clip/model.js';
export type { Embedder, EmbedOptions } from './clip/embedder.js';
export { ClipTokenizer, CLIP_CONTEXT_LENGTH } from './clip/tokenizer.js';
export { cleanClipText } from './clip/text-clean.js';
export { DEFAULT_CLIP_TEMPLATES } from './clip/zero-shot.js';
export { convertClip, type ConvertClipOptions, type ClipHparams, type ClipConvertType } from './convert/clip.js';

// The HTTP server (llava-rad serve).
export { createServer, type ServeOptions, type LlavaRadServer } from './serve/server.js';
