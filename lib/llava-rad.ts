// LLaVA-Rad end to end: image (+ optional reason for the exam) -> findings, as the official pipeline
// computes them (llava/conversation.py conv "v1", llava/mm_utils.py tokenizer_image_token,
// llava/eval/model_mimic_cxr.py generation and post-processing; see shared/LLAVA_RAD.md).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { types } from 'node:util';
import { invalidArgument, LlavaRadError } from './errors.js';
import { preprocessImage, type PreprocessOptions } from './image/preprocess.js';
import { readImageFile } from './image/read-file.js';
import { loadModel, type GenerateResult, type LlamaModel } from './model.js';
import { validateGenerateOptions, validateReason, type Backend, type GenerateOptions, type KvCacheType } from './options.js';
import { loadVisionModel, type VisionModel } from './vision.js';
import { VisionBatcher } from './vision-batcher.js';
import { SlotQueue } from './queue.js';

/** The research-use notice every result carries (the findings text itself is never altered). */
export const RESEARCH_USE_NOTICE =
  'LLaVA-Rad output is for research only: it is not a medical device and must not be used for clinical care.';

const SYSTEM =
  "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";
const IMAGE_PLACEHOLDER = '<image>';
const QUESTION = 'Provide a description of the findings in the radiology image.';
const QUESTION_WITH_REASON = 'Provide a description of the findings in the radiology image given the following indication: ';
/** the official evaluation's generation length */
export const DEFAULT_FINDINGS_MAX_TOKENS = 256;

/** The conversation text (conv "v1") with the image placeholder, as the official code builds it. */
export function findingsPromptText(reason?: string | null): string {
  const q = reason ? QUESTION_WITH_REASON + reason.replace(/\n/g, ' ') : QUESTION;
  return `${SYSTEM} USER: ${IMAGE_PLACEHOLDER}\n${q} ASSISTANT:`;
}

/** The official post-processing: decoded text (special tokens skipped), stripped, a trailing "</s>" dropped. */
export function postprocessFindings(decoded: string): string {
  let t = decoded.trim();
  if (t.endsWith('</s>')) t = t.slice(0, -'</s>'.length);
  return t.trim();
}

export interface LoadLlavaRadOptions {
  /** a folder written by `llava-rad convert` (llava-rad.json, or one decoder and one vision GGUF) */
  model?: string;
  /** the decoder GGUF (instead of `model`) */
  decoder?: string;
  /** the vision GGUF ("mmproj", instead of `model`) */
  vision?: string;
  backend?: Backend;
  threads?: number;
  /** KV cells per study (default 2048: 1369 image rows + the prompt + 256 generated tokens fit) */
  contextSize?: number;
  /** studies decoded at the same time (default 1); more calls wait in a queue (parallel + visionBatch are
   * admitted: their images read and encoded) */
  parallel?: number;
  /** most images encoded in one vision batch (default: parallel); concurrent calls share batches */
  visionBatch?: number;
  /** default 'auto': an f32 cache for a decoder whose weights keep 8 bits or more (f32, f16, bf16, q8_0), so
   * that the cache adds no rounding of its own beside theirs; f16 for 4- and 5-bit quantizations */
  kvCacheType?: KvCacheType | 'auto';
  flashAttention?: boolean;
}

/** Sampling, cancellation and streaming as {@link LlamaModel.generate} takes them; the defaults are the
 * official evaluation's (greedy, 256 tokens). ignoreEos is for benchmarks: every study then generates
 * maxTokens tokens. */
export interface FindingsOptions
  extends Pick<GenerateOptions, 'temperature' | 'topK' | 'topP' | 'seed' | 'signal' | 'onToken' | 'ignoreEos'> {
  /** default 256, the official evaluation's */
  maxTokens?: number;
  /** image decoding options (EXIF orientation, animated images, size limits, 16-bit handling, and for
   * DICOM: dicomWindow (window/level instead of the MIMIC-CXR-JPG recipe), dicomRefuseLateral) */
  image?: Omit<PreprocessOptions, 'imageSize' | 'mean' | 'std'>;
}

export interface FindingsTimings {
  /** reading (generateFindingsFromFile) and decoding the image */
  preprocessMs: number;
  /** the image's vision batch, its wait for the batch before it included */
  visionMs: number;
  /** waiting for the study's turn (parallel + visionBatch admitted at once), then for a decoder sequence */
  queueMs: number;
  promptMs: number;
  decodeMs: number;
  totalMs: number;
}

export interface FindingsResult {
  /** the findings section, post-processed as the official code does */
  findings: string;
  /** generated token ids in order (EOS excluded) */
  tokens: number[];
  /** the prompt: text part before the image (with BOS), the image rows, the text part after */
  prompt: { before: number[]; imageRows: number; after: number[] };
  reason: string | null;
  stopReason: GenerateResult['stopReason'];
  /** notes about the input (e.g. a lateral DICOM view, a multi-frame file) */
  warnings: string[];
  timings: FindingsTimings;
  /** always true: research output, not for clinical use */
  researchUseOnly: true;
  notice: string;
}

interface ModelFiles {
  decoder: string;
  vision: string;
}

/** llava-rad.json names two files: anything bigger is not one */
const MAX_FOLDER_MANIFEST_BYTES = 1 << 20;

/** the two GGUFs of a converted model folder */
export function resolveModelFolder(dir: string): ModelFiles {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new LlavaRadError('IO', `model folder ${dir} does not exist or is not a folder`);
  }
  const manifest = path.join(dir, 'llava-rad.json');
  if (existsSync(manifest)) {
    const st = statSync(manifest);
    if (!st.isFile() || st.size > MAX_FOLDER_MANIFEST_BYTES) {
      throw new LlavaRadError('INVALID_ARGUMENT',
        `${manifest} must be a regular file of at most ${MAX_FOLDER_MANIFEST_BYTES} bytes, got ${st.isFile() ? `${st.size} bytes` : 'a folder or special file'}`);
    }
    let m: { decoder?: unknown; vision?: unknown };
    try {
      m = JSON.parse(readFileSync(manifest, 'utf8')) as typeof m;
    } catch (e) {
      throw new LlavaRadError('INVALID_ARGUMENT', `${manifest} is not valid JSON: ${(e as Error).message}`);
    }
    if (m === null || typeof m !== 'object' || typeof m.decoder !== 'string' || typeof m.vision !== 'string') {
      throw new LlavaRadError('INVALID_ARGUMENT', `${manifest} must name "decoder" and "vision" GGUF files`);
    }
    // the folder's own files only: a bare file name, no path (a manifest must not reach ../../etc/passwd)
    for (const [key, name] of [['decoder', m.decoder], ['vision', m.vision]] as const) {
      if (name === '' || name === '.' || name === '..' || name !== path.basename(name) || name.includes('\\') || name.includes('\0')) {
        throw new LlavaRadError('INVALID_ARGUMENT', `${manifest}: "${key}" must be the name of a file in the model folder, got ${JSON.stringify(name)}`);
      }
    }
    return { decoder: path.join(dir, m.decoder), vision: path.join(dir, m.vision) };
  }
  const ggufs = readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.gguf'));
  const vision = ggufs.filter((f) => /vision|mmproj/i.test(f));
  const decoder = ggufs.filter((f) => !/vision|mmproj/i.test(f));
  if (vision.length !== 1 || decoder.length !== 1) {
    throw new LlavaRadError('INVALID_ARGUMENT',
      `model folder ${dir} must hold llava-rad.json or exactly one decoder GGUF and one vision GGUF (a name with "vision" or "mmproj"); found ${ggufs.length ? ggufs.join(', ') : 'no GGUF'}`);
  }
  return { decoder: path.join(dir, decoder[0]!), vision: path.join(dir, vision[0]!) };
}

/** A loaded LLaVA-Rad: the decoder and the vision tower. */
export class LlavaRad {
  readonly decoder: LlamaModel;
  readonly vision: VisionModel;
  readonly files: ModelFiles;
  /** KV cells one study may use (loadLlavaRad's contextSize) */
  readonly contextSize: number;
  #encoder: VisionBatcher;
  /** studies past this wait before anything of theirs is read or decoded */
  #admission: SlotQueue;
  #before = new Map<string, number[]>();
  #after = new Map<string, number[]>();

  /** @internal use loadLlavaRad() */
  constructor(decoder: LlamaModel, vision: VisionModel, files: ModelFiles, visionBatch = 1, contextSize = decoder.contextSize) {
    this.decoder = decoder;
    this.vision = vision;
    this.files = files;
    this.contextSize = contextSize;
    this.#encoder = new VisionBatcher(vision, visionBatch);
    // `parallel` studies decoding, and the next vision batch being prepared beside them
    this.#admission = new SlotQueue(decoder.parallel + visionBatch);
  }

  /** sizes of the vision batches run so far (concurrent calls share batches) */
  get visionBatchSizes(): readonly number[] {
    return this.#encoder.batchSizes;
  }

  /** The prompt's token ids around the image, tokenized in two parts as tokenizer_image_token does. */
  promptTokens(reason?: string | null): { before: number[]; after: number[] } {
    const text = findingsPromptText(reason);
    const [before, after] = text.split(IMAGE_PLACEHOLDER) as [string, string];
    let b = this.#before.get(before);
    if (!b) this.#before.set(before, (b = this.decoder.tokenize(before, { addBos: true })));
    let a = this.#after.get(after);
    if (!a) {
      a = this.decoder.tokenize(after, { addBos: false });
      if (this.#after.size > 256) this.#after.clear();
      this.#after.set(after, a);
    }
    return { before: b, after: a };
  }

  /**
   * Writes the findings for one frontal chest radiograph (PNG, JPEG, WebP, TIFF, GIF or AVIF bytes) and
   * an optional reason for the exam. Research use only.
   *
   * Any number of calls may be made at once: at most `parallel + visionBatch` studies are admitted (their
   * images decoded, encoded and decoded into findings); the others wait in arrival order, holding nothing but
   * their arguments, so a `Promise.all` over a whole manifest keeps the memory of a few studies.
   */
  async generateFindings(image: Uint8Array, reason?: string | null, options: FindingsOptions = {}): Promise<FindingsResult> {
    if (!(types.isUint8Array(image))) {
      throw invalidArgument('image', 'a Buffer or Uint8Array of image file bytes', image);
    }
    return this.#study(() => Promise.resolve(image), reason, options);
  }

  /**
   * generateFindings for an image file, read once the study is admitted (so a missing file fails in its turn).
   * The path must name a regular file of at most 1 GiB (IO for a directory, device or FIFO; IMAGE_TOO_LARGE
   * beyond the limit).
   */
  async generateFindingsFromFile(file: string, reason?: string | null, options: FindingsOptions = {}): Promise<FindingsResult> {
    if (typeof file !== 'string' || file === '') throw invalidArgument('file', 'the path of an image file (a non-empty string)', file);
    return this.#study(() => readImageFile(file), reason, options);
  }

  /** studies admitted now: their images being read, decoded, encoded, or their findings being generated */
  get activeStudies(): number {
    return this.#admission.inUse;
  }

  /** generateFindings calls waiting for their turn (nothing of theirs is decoded yet) */
  get waitingStudies(): number {
    return this.#admission.waiting;
  }

  async #study(readImage: () => Promise<Uint8Array>, reason: string | null | undefined, options: FindingsOptions): Promise<FindingsResult> {
    const t0 = performance.now();
    if (options === null || typeof options !== 'object') throw invalidArgument('options', 'an object', options);
    const why = validateReason(reason);
    const { before, after } = this.promptTokens(why);
    const info = this.vision.info;
    const maxTokens = options.maxTokens ?? DEFAULT_FINDINGS_MAX_TOKENS;
    const generate: GenerateOptions = {
      maxTokens,
      temperature: options.temperature ?? 0,
      ...(options.topK !== undefined ? { topK: options.topK } : {}),
      ...(options.topP !== undefined ? { topP: options.topP } : {}),
      ...(options.seed !== undefined ? { seed: options.seed } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
      ...(options.onToken !== undefined ? { onToken: options.onToken } : {}),
      ...(options.ignoreEos ? { ignoreEos: true } : {}),
      addBos: false,
    };
    // what generate() would refuse after the image's work is refused before the study waits for its turn
    validateGenerateOptions(generate, { nVocab: this.decoder.info.nVocab, contextSize: this.decoder.contextSize });
    // A study's cells are its own: one whose prompt and maxTokens exceed them fails here, before any work,
    // rather than ending early with context_full (the decoder's cache is shared by `parallel` studies, so
    // how early would depend on what else runs)
    const cells = before.length + info.nPatches + after.length + maxTokens - 1;
    if (cells > this.contextSize) {
      throw new LlavaRadError('CONTEXT_FULL',
        `the study needs ${cells} KV cells (${before.length + after.length} prompt tokens, ${info.nPatches} image rows, maxTokens ${maxTokens}) ` +
        `but contextSize is ${this.contextSize}: shorten the reason, lower maxTokens or raise contextSize`);
    }
    const release = await this.#admission.acquire(1, options.signal, 'the study');
    try {
      const admitted = performance.now();
      const image = await readImage();
      const pre = await preprocessImage(image, { ...options.image, imageSize: info.imageSize, mean: info.imageMean, std: info.imageStd });
      const t1 = performance.now();
      const rows = await this.#encoder.encode(pre.pixels, options.signal);
      const t2 = performance.now();
      const r = await this.decoder.generate([{ tokens: before }, { embeddings: rows }, { tokens: after }], generate);
      const decoded = this.decoder.detokenize(r.tokens, { skipSpecial: true, removeLeadingSpace: true });
      return {
        findings: postprocessFindings(decoded),
        tokens: r.tokens,
        prompt: { before, imageRows: info.nPatches, after },
        reason: why,
        stopReason: r.stopReason,
        warnings: pre.warnings ?? [],
        timings: {
          preprocessMs: t1 - admitted,
          visionMs: t2 - t1,
          queueMs: admitted - t0 + r.timings.queueMs,
          promptMs: r.timings.promptMs,
          decodeMs: r.timings.decodeMs,
          totalMs: performance.now() - t0,
        },
        researchUseOnly: true,
        notice: RESEARCH_USE_NOTICE,
      };
    } finally {
      release();
    }
  }

  async dispose(): Promise<void> {
    this.#admission.close(new LlavaRadError('DISPOSED', 'the model has been disposed'));
    await Promise.all([this.decoder.dispose(), this.vision.dispose()]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }
}

/** Loads LLaVA-Rad (decoder + vision GGUF, or the folder the converter writes) off the event loop. */
export async function loadLlavaRad(options: LoadLlavaRadOptions): Promise<LlavaRad> {
  if (options === null || typeof options !== 'object') {
    throw invalidArgument('options', 'an object', options);
  }
  let files: ModelFiles;
  if (options.model !== undefined) {
    if (options.decoder !== undefined || options.vision !== undefined) {
      throw new LlavaRadError('INVALID_ARGUMENT', 'give either model (a folder) or decoder + vision (two GGUF files), not both');
    }
    if (typeof options.model !== 'string' || !options.model) throw invalidArgument('model', 'a folder path', options.model);
    files = resolveModelFolder(options.model);
  } else {
    if (typeof options.decoder !== 'string' || !options.decoder || typeof options.vision !== 'string' || !options.vision) {
      throw new LlavaRadError('INVALID_ARGUMENT', 'give model (a folder written by llava-rad convert) or both decoder and vision (GGUF paths)');
    }
    files = { decoder: options.decoder, vision: options.vision };
  }
  const parallel = options.parallel ?? 1;
  const perStudy = options.contextSize ?? 2048;
  if (!Number.isInteger(perStudy) || perStudy < 64 || perStudy > 1 << 20) {
    throw new LlavaRadError('INVALID_ARGUMENT', `contextSize must be an integer between 64 and ${1 << 20}, got ${perStudy}`);
  }
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 256) {
    throw new LlavaRadError('INVALID_ARGUMENT', `parallel must be an integer between 1 and 256, got ${parallel}`);
  }
  const visionBatch = options.visionBatch ?? parallel;
  if (!Number.isInteger(visionBatch) || visionBatch < 1 || visionBatch > 64) {
    throw new LlavaRadError('INVALID_ARGUMENT', `visionBatch must be an integer between 1 and 64, got ${String(visionBatch)}`);
  }
  const vision = await loadVisionModel({
    model: files.vision,
    ...(options.backend !== undefined ? { backend: options.backend } : {}),
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
  });
  let decoder: LlamaModel;
  try {
    decoder = await loadModel({
      model: files.decoder,
      contextSize: perStudy * parallel,
      parallel,
      ...(options.backend !== undefined ? { backend: options.backend } : {}),
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      kvCacheType: options.kvCacheType ?? 'auto',
      ...(options.flashAttention !== undefined ? { flashAttention: options.flashAttention } : {}),
    });
  } catch (e) {
    await vision.dispose();
    throw e;
  }
  if (vision.info.nOut !== decoder.info.nEmbd) {
    await Promise.all([vision.dispose(), decoder.dispose()]);
    throw new LlavaRadError('INVALID_ARGUMENT',
      `the vision GGUF projects to ${vision.info.nOut} values per row but the decoder's embedding width is ${decoder.info.nEmbd}: they are not one model`);
  }
  return new LlavaRad(decoder, vision, files, visionBatch, perStudy);
}
