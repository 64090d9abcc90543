// `llava-rad info`: the build and the CPU code in use, and a model's hyperparameters, as JSON.

import { loadModel, type LlamaModel, type ModelInfo } from '../model.js';
import { loadedAddon, native } from '../native.js';
import { fromNative } from '../errors.js';
import type { LoadModelOptions } from '../options.js';
import { backendArg, intArg, parse, requireModel, type Command } from './args.js';

export function infoJson(info: ModelInfo, model: LlamaModel): Record<string, unknown> {
  return {
    path: model.path,
    name: info.name,
    architecture: info.architecture,
    backend: info.backend,
    n_vocab: info.nVocab,
    n_ctx_train: info.nCtxTrain,
    n_embd: info.nEmbd,
    n_layer: info.nLayer,
    n_head: info.nHead,
    n_head_kv: info.nHeadKv,
    n_ff: info.nFf,
    n_rot: info.nRot,
    rms_norm_eps: info.rmsNormEps,
    rope_freq_base: info.ropeFreqBase,
    bos_token: info.bosToken,
    eos_token: info.eosToken,
    add_bos: info.addBos,
    weight_type: info.weightType,
    n_params: info.nParams,
    weight_bytes: info.weightBytes,
    vnni_matrices: info.vnniMatrices,
    context_size: model.contextSize,
  };
}


/** The CPU code in use as the CLIs print it (snake_case, as llava-rad-cli). */
export function cpuJson(): Record<string, unknown> {
  let c;
  try {
    c = native().cpuInfo();
  } catch (e) {
    throw fromNative(e);
  }
  return {
    variant: c.variant,
    variants: c.variants,
    features: c.features,
    kernels: c.kernels,
    default_threads: c.defaultThreads,
    allowed_cpus: c.allowedCpus,
    physical_cores: c.physicalCores,
    cpu_quota: c.cpuQuota,
  };
}

export const infoCommand: Command = {
  name: 'info',
  summary: "print the build, the CPU code in use and a model's hyperparameters as JSON",
  usage: `Usage: llava-rad info [--model FILE.gguf] [--backend B] [--threads N]

Prints one JSON object: "build" (the native library), "binary" (the addon file loaded and where it came from:
LLAVA_RAD_BINARY, a platform package or a source build), "cpu" (ggml's CPU variant chosen for this CPU, its
features, the matrix kernels, the default thread count) and, with --model, "model" (its hyperparameters,
loaded with a small context).`,
  async run(args, io) {
    const v = parse(args, {
      model: { type: 'string', short: 'm' },
      backend: { type: 'string' },
      threads: { type: 'string', short: 't' },
    }, 'info');
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const addon = loadedAddon();
    const out: Record<string, unknown> = { build: native().buildInfo(), binary: { file: addon.file, source: addon.source }, cpu: cpuJson() };
    if (v.model === undefined) {
      io.out(JSON.stringify(out) + '\n');
      return 0;
    }
    const load: LoadModelOptions = { model: requireModel(v.model, 'info'), contextSize: 256 };
    const backend = backendArg(v.backend);
    if (backend !== undefined) load.backend = backend;
    const threads = intArg(v.threads, '--threads', 1, 1024);
    if (threads !== undefined) load.threads = threads;
    const model = await loadModel(load);
    try {
      out.model = infoJson(model.info, model);
      io.out(JSON.stringify(out) + '\n');
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
