// A plain Hugging Face LLaMA folder -> one decoder GGUF our engine (and llama.cpp) loads: for the evaluation's
// GREEN model (StanfordAIMI/GREEN-RadLlama2-7b: LlamaForCausalLM, bf16 safetensors, LLaMA-2's tokenizer.model).
//
//   await convertLlama({ model: 'GREEN-RadLlama2-7b/', out: 'green-f16.gguf', type: 'f16' });
//
// The same decoder path as convertRelease (lib/convert/convert.ts) without the LoRA merge: config.json checked
// against LLAMA_LIMITS, every tensor's shape checked before the output is created, values rounded to fp16
// first (green.py loads the model with torch_dtype=float16), q / k rows permuted for ggml's RoPE, the
// SentencePiece vocabulary from tokenizer.model, then stored in the type's mix; streamed one tensor ahead, and
// written under a temporary name renamed into place at the end.

import { existsSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { LlavaRadError, describeValue, ioError } from '../errors.js';
import { GgufWriter } from '../gguf/writer.js';
import { ggmlTensorBytes, ggmlTypeTraits } from '../gguf/types.js';
import { checkReplaceable, tempPathFor } from '../replace-file.js';
import { checkWriteSpace } from '../disk-space.js';
import { openCheckpoint, type Checkpoint } from './checkpoint.js';
import { checkClaimedBytes, checkOutputTensors, readJsonObject } from './config-check.js';
import {
  MAX_TOKENIZER_BYTES, addDecoderHeader, addProvenance, decoderHparams, decoderLayout, firstExisting, makeOutputFolder, need, planDecoder, readAddBos,
  removeCreatedFolders, sourceEntry, writeTensors, type ConvertProgress,
} from './convert.js';
import { isConvertType, type ConvertType } from './mix.js';
import { readSentencePiece } from './sentencepiece.js';
import { ConvertPool, defaultConvertThreads } from './workers.js';

export interface ConvertLlamaOptions {
  /** the Hugging Face folder: config.json, tokenizer.model, tokenizer_config.json (optional) and the weights */
  model: string;
  /** the GGUF file to write */
  out: string;
  /** default f16 */
  type?: ConvertType;
  /** general.name (default: config.json's _name_or_path, else the folder's name) */
  name?: string;
  threads?: number;
  onProgress?: (p: ConvertProgress) => void;
}

export interface ConvertLlamaResult {
  out: string;
  type: ConvertType;
  /** ggml type name of every tensor */
  types: Record<string, string>;
}

const WEIGHT_FILES = ['model.safetensors.index.json', 'pytorch_model.bin.index.json', 'model.safetensors', 'pytorch_model.bin'] as const;

/** Converts a Hugging Face LLaMA folder into one GGUF file. */
export async function convertLlama(options: ConvertLlamaOptions): Promise<ConvertLlamaResult> {
  if (options === null || typeof options !== 'object') throw new LlavaRadError('INVALID_ARGUMENT', `convertLlama needs an options object, got ${describeValue(options)}`);
  const { model: dir, out } = options;
  if (typeof dir !== 'string' || dir === '') throw new LlavaRadError('INVALID_ARGUMENT', `convertLlama: "model" must be a folder path, got ${describeValue(dir)}`);
  if (typeof out !== 'string' || out === '') throw new LlavaRadError('INVALID_ARGUMENT', `convertLlama: "out" must be a file path, got ${describeValue(out)}`);
  const type = options.type ?? 'f16';
  if (!isConvertType(type)) throw new LlavaRadError('INVALID_ARGUMENT', `convertLlama: unknown type ${describeValue(type)} (f32, f16, q8_0, q5_k_m, q4_k_m)`);
  const threads = options.threads ?? defaultConvertThreads();
  if (!Number.isSafeInteger(threads) || threads < 1 || threads > 256) {
    throw new LlavaRadError('INVALID_ARGUMENT', `convertLlama: threads must be an integer from 1 to 256, got ${describeValue(threads)}`);
  }
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new LlavaRadError('IO', `the model folder ${dir} does not exist`);
  const outFile = path.resolve(out);
  checkReplaceable(outFile, 'convertLlama: "out"');

  // ---- inputs: configs and shapes checked before any output exists ----
  const cfgFile = need(dir, 'config.json', 'the LLaMA folder');
  const tokFile = need(dir, 'tokenizer.model', 'the LLaMA folder (LLaMA-2\'s SentencePiece tokenizer.model)', MAX_TOKENIZER_BYTES);
  const weightsFile = firstExisting(dir, WEIGHT_FILES);
  if (!weightsFile) throw new LlavaRadError('IO', `the LLaMA folder ${dir} has no weights (${WEIGHT_FILES.join(', ')})`);
  const cfg = await readJsonObject(cfgFile, 'model config');
  const arch = cfg.architectures;
  if (Array.isArray(arch) && !arch.includes('LlamaForCausalLM')) {
    throw new LlavaRadError('UNSUPPORTED', `${cfgFile}: architectures ${describeValue(arch)}, expected ["LlamaForCausalLM"]`);
  }
  const hp = decoderHparams(cfgFile, cfg);
  const layout = decoderLayout(hp, type);
  checkOutputTensors(layout.map((t) => ({ name: t.gguf, type: t.type, shape: t.shape })), `${cfgFile} (as ${type})`);
  const addBos = await readAddBos(dir);
  const sp = await readSentencePiece(tokFile);
  if (sp.tokens.length !== hp.nVocab) throw new LlavaRadError('BAD_CHECKPOINT', `${tokFile} has ${sp.tokens.length} pieces, ${cfgFile} declares vocab_size ${hp.nVocab}`);
  if (sp.modelTypeName !== 'bpe') throw new LlavaRadError('UNSUPPORTED', `${tokFile}: a ${sp.modelTypeName} SentencePiece model, expected BPE (LLaMA)`);
  const name = options.name ?? (typeof cfg._name_or_path === 'string' && cfg._name_or_path !== '' ? cfg._name_or_path : path.basename(path.resolve(dir)));

  const tmp = tempPathFor(outFile);
  let base: Checkpoint | undefined;
  let w: GgufWriter | undefined;
  let pool: ConvertPool | undefined;
  let createdDir: string | undefined;
  try {
    base = await openCheckpoint(weightsFile);
    const dec = await planDecoder(hp, layout, base);
    checkClaimedBytes(base, dec.tensors.flatMap((t) => t.sources));
    const bytesTotal = checkOutputTensors(dec.tensors, `${cfgFile} (as ${type})`);
    checkWriteSpace(path.dirname(outFile), bytesTotal, 'the conversion');
    const sources = [cfgFile, tokFile, weightsFile, ...(base.format === 'sharded' ? base.files : [])].map((f) => sourceEntry(dir, 'model', f));

    w = new GgufWriter(tmp, { exclusive: true });
    addDecoderHeader(w, dec.hp, sp, addBos, type, { name, license: 'see the source model\'s license (LLaMA-2 models: Llama 2 Community License)' });
    addProvenance(w, type, sources, undefined, name);
    for (const t of dec.tensors) w.addTensorInfo(t.name, t.type, t.shape);

    createdDir = await makeOutputFolder(path.dirname(outFile));
    pool = new ConvertPool({ threads });
    const types: Record<string, string> = {};
    let bytesDone = 0;
    await writeTensors(pool, w, dec.tensors, (t, done) => {
      types[t.name] = ggmlTypeTraits(t.type)!.name;
      bytesDone += Number(ggmlTensorBytes(t.type, t.shape));
      options.onProgress?.({ phase: 'decoder', tensor: t.name, done, total: dec.tensors.length, bytesDone, bytesTotal });
    });
    await rename(tmp, outFile).catch((e: unknown) => { throw ioError(e, `cannot move ${tmp} to ${outFile}`); });
    return { out: outFile, type, types };
  } catch (e) {
    await w?.abort();
    await rm(tmp, { force: true }).catch(() => {});
    if (createdDir !== undefined) await removeCreatedFolders(path.dirname(outFile), createdDir);
    throw e;
  } finally {
    await pool?.close();
    await base?.close().catch(() => {});
  }
}
