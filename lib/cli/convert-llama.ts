// `llava-rad convert-llama`: a Hugging Face LLaMA folder (the GREEN model of `eval --metrics green`,
// StanfordAIMI/GREEN-RadLlama2-7b) -> one decoder GGUF.

import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { convertLlama } from '../convert/convert-llama.js';
import { CONVERT_TYPES, isConvertType } from '../convert/mix.js';
import { intArg, parseWithPositionals, round, UsageError, type Command } from './args.js';

export const convertLlamaCommand: Command = {
  name: 'convert-llama',
  summary: 'convert a Hugging Face LLaMA folder (e.g. the GREEN model for eval --metrics green) into one GGUF',
  usage: `usage: llava-rad convert-llama MODEL_DIR --out FILE.gguf [--type ${CONVERT_TYPES.join('|')}] [--threads N] [--json]

  MODEL_DIR       a Hugging Face LlamaForCausalLM folder: config.json, tokenizer.model, and the weights
                  (model.safetensors[.index.json] or pytorch_model.bin[.index.json]; f32, f16 or bf16)
  --out FILE      the GGUF to write (written under a temporary name, renamed when complete)
  --type T        f16 (default), f32, q8_0, q5_k_m or q4_k_m
  --threads N     worker threads (default: the CPUs available, at most 8); the output does not depend on it
  --json          print one JSON line with the result

Values are rounded to fp16 first (the precision GREEN's scorer loads the model in). For GREEN, put the result at
$LLAVA_RAD_HOME/eval/green-f16.gguf, or pass it to eval with --green / LLAVA_RAD_GREEN.`,
  async run(args, io) {
    const { values: v, positionals } = parseWithPositionals(args, {
      out: { type: 'string' },
      type: { type: 'string' },
      threads: { type: 'string' },
      json: { type: 'boolean' },
    }, 'convert-llama', 1);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('convert-llama: expected the model folder, e.g. llava-rad convert-llama GREEN-RadLlama2-7b --out green-f16.gguf');
    if (typeof v.out !== 'string' || v.out === '') throw new UsageError('convert-llama: --out FILE.gguf is required');
    const type = typeof v.type === 'string' ? v.type : 'f16';
    if (!isConvertType(type)) throw new UsageError(`convert-llama: --type must be one of ${CONVERT_TYPES.join(', ')}, got '${String(type)}'`);
    const threads = intArg(v.threads, '--threads', 1, 256);
    const dir = positionals[0]!;
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`convert-llama: model folder not found: ${dir}`);
    const outDir = path.dirname(path.resolve(v.out));
    if (!existsSync(outDir) || !statSync(outDir).isDirectory()) throw new UsageError(`convert-llama: --out folder not found: ${outDir}`);
    const t0 = performance.now();
    const r = await convertLlama({ model: dir, out: v.out, type, ...(threads !== undefined ? { threads } : {}) });
    const seconds = (performance.now() - t0) / 1000;
    if (v.json === true) io.out(JSON.stringify({ out: r.out, type: r.type, tensors: Object.keys(r.types).length, seconds: round(seconds) }) + '\n');
    else io.out(`wrote ${r.out} (${r.type}, ${Object.keys(r.types).length} tensors) in ${round(seconds)} s\n`);
    return 0;
  },
};
