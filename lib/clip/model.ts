// BiomedCLIP-CXR on our engine: images and texts to L2-normalized embeddings in one space (native lr_clip_*),
// and zero-shot labels. Images go through the findings pipeline's decode and preprocess (518 px, PIL bicubic,
// the vision GGUF's mean / std); texts through open_clip's cleaning and PubMedBERT's WordPiece (tokenizer.ts).
//
// One native call at a time (the engine serializes them anyway): a call waits here rather than holding one of
// libuv's threads. An AbortSignal rejects a waiting call at once and stops a computing one (between texts, or
// after the graph node in progress for images).

import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { types } from 'node:util';
import { WordPieceVocab } from '../bert/wordpiece.js';
import { LlavaRadError, abortedError, describeValue, fromNative } from '../errors.js';
import { ggufStringArray, readGgufMetadata } from '../gguf/read-metadata.js';
import { preprocessImage, type PreprocessOptions } from '../image/preprocess.js';
import { native, type NativeModelParams } from '../native.js';
import { SlotQueue } from '../queue.js';
import type { EmbedOptions, Embedder } from './embedder.js';
import { ClipTokenizer } from './tokenizer.js';
import { DEFAULT_CLIP_TEMPLATES, checkLabels, checkTemplates, labelPrompts, meanDirection, zeroShotProbabilities } from './zero-shot.js';

/** what the addon's loadClip / Clip expose (native/addon/clip.cpp) */
export interface NativeClipInfo {
  name: string;
  backend: string;
  nOut: number;
  nCtx: number;
  nVocab: number;
  imageSize: number;
  imageMean: number[];
  imageStd: number[];
  logitScale: number;
  nParams: number;
}
interface NativeClip {
  info(): NativeClipInfo;
  embedTexts(ids: Int32Array, counts: Int32Array): Promise<Float32Array>;
  embedImages(pixels: Float32Array, nImages: number): Promise<Float32Array>;
  cancel(): void;
  dispose(): Promise<void>;
}
interface NativeClipAddon {
  loadClip(clipPath: string, visionPath: string, params?: NativeModelParams & { maxBatch?: number }): Promise<NativeClip>;
}

export interface LoadClipOptions extends NativeModelParams {
  /** a converted model folder: llava-rad.json naming "clip" and "vision", or one llava-rad-clip-text-*.gguf and one vision GGUF */
  model?: string;
  /** the CLIP GGUF (instead of model) */
  clip?: string;
  /** the vision GGUF (instead of model) */
  vision?: string;
  /** most images in one graph (default 8) */
  maxBatch?: number;
  /** image decoding options (DICOM windowing etc.), as for findings */
  image?: Omit<PreprocessOptions, 'imageSize' | 'mean' | 'std'>;
}

export interface ClassifyOptions extends EmbedOptions {
  /** prompt templates, `{}` standing for the label (default DEFAULT_CLIP_TEMPLATES) */
  templates?: readonly string[];
}

export interface ClassifyResult {
  /** the labels in the order given, each with its probability (they sum to 1) */
  labels: { label: string; probability: number }[];
  /** the most probable label */
  best: string;
  templates: readonly string[];
}

export interface ClipFiles { clip: string; vision: string }

const MAX_MANIFEST_BYTES = 1 << 20;
/** images preprocessed and embedded per native call (3 x 518 x 518 floats each: about 51 MB for 16) */
const IMAGE_CHUNK = 16;
/** texts per native call */
const TEXT_CHUNK = 256;

function fileName(name: unknown, manifest: string, key: string): string {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name !== path.basename(name) || name.includes('\\') || name.includes('\0')) {
    throw new LlavaRadError('INVALID_ARGUMENT', `${manifest}: "${key}" must be the name of a file in the model folder, got ${describeValue(name)}`);
  }
  return name;
}

/** the CLIP GGUF and the vision GGUF of a converted model folder */
export function resolveClipFolder(dir: string): ClipFiles {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new LlavaRadError('IO', `model folder ${dir} does not exist or is not a folder`);
  const manifest = path.join(dir, 'llava-rad.json');
  if (existsSync(manifest) && statSync(manifest).isFile() && statSync(manifest).size <= MAX_MANIFEST_BYTES) {
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new LlavaRadError('INVALID_ARGUMENT', `${manifest} is not valid JSON: ${(e as Error).message}`);
    }
    if (m !== null && typeof m === 'object' && m.clip !== undefined) {
      return { clip: path.join(dir, fileName(m.clip, manifest, 'clip')), vision: path.join(dir, fileName(m.vision, manifest, 'vision')) };
    }
  }
  const ggufs = readdirSync(dir).filter((f) => f.toLowerCase().endsWith('.gguf'));
  const clip = ggufs.filter((f) => /clip-text/i.test(f));
  const vision = ggufs.filter((f) => /vision|mmproj/i.test(f) && !/clip-text/i.test(f));
  if (clip.length !== 1 || vision.length !== 1) {
    throw new LlavaRadError('INVALID_ARGUMENT',
      `model folder ${dir} must name "clip" in llava-rad.json or hold exactly one llava-rad-clip-text-*.gguf and one vision GGUF ` +
      `(convert with --clip-text); found ${ggufs.length ? ggufs.join(', ') : 'no GGUF'}`);
  }
  return { clip: path.join(dir, clip[0]!), vision: path.join(dir, vision[0]!) };
}

/** sha256 hex over the files' bytes, one after the other */
async function hashFiles(files: readonly string[]): Promise<string> {
  const h = createHash('sha256');
  for (const f of files) {
    for await (const chunk of createReadStream(f)) h.update(chunk as Buffer);
  }
  return h.digest('hex');
}

/** A loaded BiomedCLIP-CXR: implements Embedder (lib/clip/embedder.ts). */
export class ClipModel implements Embedder {
  readonly info: Readonly<NativeClipInfo>;
  readonly dim: number;
  readonly modelId: string;
  readonly tokenizer: ClipTokenizer;
  readonly files: ClipFiles;
  readonly #native: NativeClip;
  readonly #image: LoadClipOptions['image'];
  #chain: Promise<unknown> = Promise.resolve();
  /** image chunks decoded or embedded at once: one embedding, the next being decoded beside it */
  #chunks = new SlotQueue(2);
  #disposed?: Promise<void>;

  /** @internal use loadClip() */
  constructor(nativeClip: NativeClip, tokenizer: ClipTokenizer, files: ClipFiles, modelId: string, image: LoadClipOptions['image']) {
    this.#native = nativeClip;
    this.info = Object.freeze({ ...nativeClip.info() });
    this.dim = this.info.nOut;
    this.tokenizer = tokenizer;
    this.files = files;
    this.modelId = modelId;
    this.#image = image;
  }

  /**
   * any number of images: decoded, preprocessed and embedded IMAGE_CHUNK at a time (bounded memory). Concurrent
   * calls take turns chunk by chunk: one chunk is embedded while the next is decoded, and a call waiting behind
   * them holds nothing but its arguments.
   */
  async embedImages(images: readonly Uint8Array[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    this.#checkList(images, 'images', (v) => types.isUint8Array(v), 'a Uint8Array of encoded image bytes');
    const per = 3 * this.info.imageSize * this.info.imageSize;
    const rows: Float32Array[] = [];
    for (let start = 0; start < images.length; start += IMAGE_CHUNK) {
      const chunk = images.slice(start, start + IMAGE_CHUNK);
      const release = await this.#chunks.acquire(1, options.signal, 'the image embedding');
      try {
        const packed = new Float32Array(per * chunk.length);
        for (let i = 0; i < chunk.length; i++) {
          if (options.signal?.aborted) throw abortedError(options.signal, 'the image embedding');
          const pre = await preprocessImage(chunk[i]!, { ...this.#image, imageSize: this.info.imageSize, mean: this.info.imageMean, std: this.info.imageStd });
          packed.set(pre.pixels, i * per);
        }
        const out = await this.#run(() => this.#native.embedImages(packed, chunk.length), options.signal, 'the image embedding');
        rows.push(...this.#rows(out, chunk.length));
      } finally {
        release();
      }
    }
    return rows;
  }

  /** embedImages chunks decoded or embedded now */
  get activeImageChunks(): number {
    return this.#chunks.inUse;
  }

  /** embedImages chunks waiting for their turn (nothing of theirs decoded yet) */
  get waitingImageChunks(): number {
    return this.#chunks.waiting;
  }

  /** any number of texts, TEXT_CHUNK to a native call */
  async embedTexts(texts: readonly string[], options: EmbedOptions = {}): Promise<Float32Array[]> {
    this.#checkList(texts, 'texts', (v) => typeof v === 'string', 'a string');
    const rows: Float32Array[] = [];
    for (let start = 0; start < texts.length; start += TEXT_CHUNK) {
      const lists = texts.slice(start, start + TEXT_CHUNK).map((t) => this.tokenizer.encode(t));
      const ids = Int32Array.from(lists.flat());
      const counts = Int32Array.from(lists, (l) => l.length);
      const out = await this.#run(() => this.#native.embedTexts(ids, counts), options.signal, 'the text embedding');
      rows.push(...this.#rows(out, lists.length));
    }
    return rows;
  }

  /** zero-shot labels for one image: softmax over the labels of exp(logit_scale) * image . label */
  async classify(image: Uint8Array, labels: readonly string[], options: ClassifyOptions = {}): Promise<ClassifyResult> {
    checkLabels(labels);
    const templates = checkTemplates(options.templates ?? DEFAULT_CLIP_TEMPLATES);
    const [img] = await this.embedImages([image], options);
    const prompts = labels.flatMap((l) => labelPrompts(l, templates));
    const embs = await this.embedTexts(prompts, options);
    const perLabel = labels.map((_, i) => meanDirection(embs.slice(i * templates.length, (i + 1) * templates.length)));
    const probs = zeroShotProbabilities(img!, perLabel, this.info.logitScale);
    const ranked = labels.map((label, i) => ({ label, probability: probs[i]! }));
    const best = ranked.reduce((a, b) => (b.probability > a.probability ? b : a)).label;
    return { labels: ranked, best, templates };
  }

  /** stops the call computing, refuses later ones, frees the weights; idempotent */
  dispose(): Promise<void> {
    this.#chunks.close(new LlavaRadError('DISPOSED', 'the CLIP model was disposed'));
    if (!this.#disposed) this.#disposed = this.#native.dispose().catch((e) => { throw fromNative(e); });
    return this.#disposed;
  }

  #checkList(list: unknown, what: string, ok: (v: unknown) => boolean, expected: string): void {
    if (this.#disposed) throw new LlavaRadError('DISPOSED', 'the CLIP model was disposed');
    if (!Array.isArray(list) || list.length === 0) throw new LlavaRadError('INVALID_ARGUMENT', `${what} must be a non-empty array, got ${describeValue(list)}`);
    list.forEach((v, i) => {
      if (!ok(v)) throw new LlavaRadError('INVALID_ARGUMENT', `${what}[${i}] must be ${expected}, got ${describeValue(v)}`);
    });
  }

  #rows(out: Float32Array, n: number): Float32Array[] {
    return Array.from({ length: n }, (_, i) => out.slice(i * this.dim, (i + 1) * this.dim));
  }

  /** runs one native call after the previous ones; the signal rejects it waiting, or stops it computing */
  #run(call: () => Promise<Float32Array>, signal: AbortSignal | undefined, what: string): Promise<Float32Array> {
    if (signal?.aborted) return Promise.reject(abortedError(signal, what));
    const turn = this.#chain.then(async () => {
      if (this.#disposed) throw new LlavaRadError('DISPOSED', 'the CLIP model was disposed');
      if (signal?.aborted) throw abortedError(signal, what);
      const onAbort = () => this.#native.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        return await call();
      } catch (e) {
        const err = fromNative(e);
        if (err.code === 'ABORTED' && signal?.aborted) throw abortedError(signal, what);
        if (err.code === 'ABORTED' && this.#disposed) throw new LlavaRadError('DISPOSED', `the CLIP model was disposed during ${what}`);
        throw err;
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    });
    this.#chain = turn.catch(() => undefined);
    return turn;
  }
}

/** Loads BiomedCLIP-CXR (the CLIP GGUF + the vision GGUF) off the event loop. */
export async function loadClip(options: LoadClipOptions): Promise<ClipModel> {
  if (options === null || typeof options !== 'object') throw new LlavaRadError('INVALID_ARGUMENT', `options must be an object, got ${describeValue(options)}`);
  let files: ClipFiles;
  if (options.model !== undefined) {
    if (typeof options.model !== 'string' || options.model === '') throw new LlavaRadError('INVALID_ARGUMENT', `model must be a folder path, got ${describeValue(options.model)}`);
    files = resolveClipFolder(options.model);
  } else {
    if (typeof options.clip !== 'string' || options.clip === '' || typeof options.vision !== 'string' || options.vision === '') {
      throw new LlavaRadError('INVALID_ARGUMENT', `give model (a folder) or both clip and vision (GGUF paths), got ${describeValue(options)}`);
    }
    files = { clip: options.clip, vision: options.vision };
  }
  const params: Record<string, unknown> = {};
  for (const k of ['backend', 'threads', 'mmap', 'maxBatch'] as const) if (options[k] !== undefined) params[k] = options[k];
  let nativeClip: NativeClip;
  try {
    nativeClip = await (native() as unknown as NativeClipAddon).loadClip(files.clip, files.vision, params);
  } catch (e) {
    throw fromNative(e);
  }
  try {
    const meta = await readGgufMetadata(files.clip);
    const pieces = ggufStringArray(meta, 'tokenizer.ggml.tokens', files.clip);
    if (pieces === undefined) throw new LlavaRadError('BAD_GGUF', `${files.clip}: no tokenizer.ggml.tokens`);
    const tokenizer = new ClipTokenizer(new WordPieceVocab(pieces), nativeClip.info().nCtx);
    const modelId = await hashFiles([files.clip, files.vision]);
    return new ClipModel(nativeClip, tokenizer, files, modelId, options.image);
  } catch (e) {
    await nativeClip.dispose().catch(() => undefined);
    throw e;
  }
}
