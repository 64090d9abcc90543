// `llava-rad info`: a model's hyperparameters as JSON.

import { loadModel, type LlamaModel, type ModelInfo } from '../model.js';
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


export const infoCommand: Command = {
  name: 'info',
  summary: "print a model's hyperparameters as JSON",
  usage: `Usage: llava-rad info --model FILE.gguf [--backend B] [--threads N]

Loads the model (with a small context) and prints its hyperparameters as one JSON object.`,
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
    const load: LoadModelOptions = { model: requireModel(v.model, 'info'), contextSize: 256 };
    const backend = backendArg(v.backend);
    if (backend !== undefined) load.backend = backend;
    const threads = intArg(v.threads, '--threads', 1, 1024);
    if (threads !== undefined) load.threads = threads;
    const model = await loadModel(load);
    try {
      io.out(JSON.stringify(infoJson(model.info, model)) + '\n');
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
