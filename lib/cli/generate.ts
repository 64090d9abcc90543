// `llava-rad generate`: text from a text prompt.

import { loadModel, type GenerateResult } from '../model.js';
import { validateGenerateOptions, validateLoadOptions, type GenerateOptions, type LoadModelOptions } from '../options.js';
import { asUsage, backendArg, intArg, numArg, parse, requireModel, round, UsageError, type Command } from './args.js';
import { cpuJson, infoJson } from './info.js';

export const generateCommand: Command = {
  name: 'generate',
  summary: 'generate text from a text prompt (BOS prepended, greedy by default)',
  usage: `Usage: llava-rad generate --model FILE.gguf --prompt TEXT [options]

Options:
  -m, --model FILE        GGUF model (LLaMA architecture)
  -p, --prompt TEXT       prompt text (tokenized with BOS when the model asks for it)
  -n, --max-tokens N      most tokens to generate (default 256)
      --temperature T     sampling temperature; 0 = greedy (default 0)
      --top-k K           keep the K most likely tokens (default: off)
      --top-p P           nucleus sampling threshold in (0, 1] (default: off)
      --seed S            sampler seed (default 0)
      --threads N         CPU threads (default: physical cores)
      --backend B         auto | cpu | cuda (default auto)
      --ctx N             context size (default min(4096, training context))
      --ignore-eos        keep generating past EOS
      --json              print one JSON object (last line) instead of streaming text
  -h, --help              this help`,
  async run(args, io, signal) {
    const v = parse(args, {
      model: { type: 'string', short: 'm' },
      prompt: { type: 'string', short: 'p' },
      'max-tokens': { type: 'string', short: 'n' },
      temperature: { type: 'string' },
      'top-k': { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      threads: { type: 'string', short: 't' },
      backend: { type: 'string' },
      ctx: { type: 'string' },
      'ignore-eos': { type: 'boolean' },
      json: { type: 'boolean' },
    }, 'generate');
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const modelPath = requireModel(v.model, 'generate');
    if (typeof v.prompt !== 'string') throw new UsageError('generate: --prompt TEXT is required');
    const load: LoadModelOptions = { model: modelPath };
    const threads = intArg(v.threads, '--threads', 1, 1024);
    if (threads !== undefined) load.threads = threads;
    const backend = backendArg(v.backend);
    if (backend !== undefined) load.backend = backend;
    const ctx = intArg(v.ctx, '--ctx', 1, 1 << 20);
    if (ctx !== undefined) load.contextSize = ctx;
    const gen: GenerateOptions = { signal };
    const maxTokens = intArg(v['max-tokens'], '--max-tokens', 1, ctx ?? 4096);
    if (maxTokens !== undefined) gen.maxTokens = maxTokens;
    const temperature = numArg(v.temperature, '--temperature', 0, 100);
    if (temperature !== undefined) gen.temperature = temperature;
    const topK = intArg(v['top-k'], '--top-k', 0, 1 << 30);
    if (topK !== undefined) gen.topK = topK;
    const topP = numArg(v['top-p'], '--top-p', 0, 1);
    if (topP === 0) throw new UsageError("--top-p must be a number in (0, 1], got '0'");
    if (topP !== undefined) gen.topP = topP;
    const seed = intArg(v.seed, '--seed', 0, Number.MAX_SAFE_INTEGER);
    if (seed !== undefined) gen.seed = seed;
    if (v['ignore-eos']) gen.ignoreEos = true;
    const json = v.json === true;
    asUsage(() => validateLoadOptions(load));
    asUsage(() => validateGenerateOptions({ ...gen }, { nVocab: 1 << 30, contextSize: ctx ?? 4096 }));

    const model = await loadModel(load);
    try {
      if (!json) {
        gen.onToken = (ev) => {
          if (ev.text) io.out(ev.text);
        };
      }
      const r: GenerateResult = await model.generate(v.prompt, gen);
      if (json) {
        io.out(JSON.stringify({
          prompt_tokens: r.promptTokens,
          tokens: r.tokens,
          text: r.text,
          n_prompt: r.nPrompt,
          n_generated: r.tokens.length,
          stop_reason: r.stopReason,
          queue_ms: round(r.timings.queueMs),
          prompt_ms: round(r.timings.promptMs),
          decode_ms: round(r.timings.decodeMs),
          model: infoJson(model.info, model),
          cpu: cpuJson(),
        }) + '\n');
      } else {
        io.out('\n');
      }
      return 0;
    } finally {
      await model.dispose();
    }
  },
};
