// The `llava-rad` command line (dist/cli.js). A table of commands; each parses its own options.
//
// Exit codes: 0 success, 1 engine/runtime error (message names the error code), 2 bad arguments,
// 130 interrupted (SIGINT).

import { existsSync, statSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { LlavaRadError, isLlavaRadError, loadLlavaRad, loadModel, type FindingsResult, type GenerateResult, type LlamaModel, type LoadLlavaRadOptions, type ModelInfo } from './index.js';
import { packageVersion } from './native.js';
import { CONVERT_TYPES, convertRelease, isConvertType, type ConvertProgress } from './convert/convert.js';
import { validateGenerateOptions, validateLoadOptions, type GenerateOptions, type LoadModelOptions } from './options.js';

/** A bad command line: printed as one line, exit code 2. */
class UsageError extends Error {}

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

interface Command {
  name: string;
  summary: string;
  usage: string;
  run(args: string[], io: Io, signal: AbortSignal): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** "--max-tokens -3" would read -3 as an option: join a negative-number value to its string option */
function joinNegativeValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    const long = a.startsWith('--') ? a.slice(2) : Object.keys(options).find((k) => a === `-${options[k]!.short ?? '\0'}`);
    if (long !== undefined && options[long]?.type === 'string' && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`--${long}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

function parse(args: string[], options: Options, command: string): Record<string, string | boolean | undefined> {
  return parseWithPositionals(args, options, command, 0).values;
}

function parseWithPositionals(args: string[], options: Options, command: string, maxPositionals: number): {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
} {
  args = joinNegativeValues(args, options);
  try {
    const { values, positionals } = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: maxPositionals > 0 });
    if (positionals.length > maxPositionals) throw new Error(`unexpected argument '${positionals[maxPositionals]}'`);
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0]!.replace(/^TypeError \[[A-Z_]+\]: /, '') : String(e);
    throw new UsageError(`${command}: ${msg}`);
  }
}

function intArg(v: string | boolean | undefined, flag: string, lo: number, hi: number): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v).trim();
  if (!/^[+-]?\d+$/.test(s) || Number(s) < lo || Number(s) > hi) {
    throw new UsageError(`${flag} must be an integer between ${lo} and ${hi}, got '${String(v)}'`);
  }
  return Number(s);
}

function numArg(v: string | boolean | undefined, flag: string, lo: number, hi: number): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v).trim();
  const n = s === '' ? NaN : Number(s);
  if (!Number.isFinite(n) || n < lo || n > hi) throw new UsageError(`${flag} must be a number between ${lo} and ${hi}, got '${String(v)}'`);
  return n;
}

function requireModel(v: string | boolean | undefined, command: string): string {
  if (typeof v !== 'string' || v === '') throw new UsageError(`${command}: --model FILE.gguf is required`);
  if (!existsSync(v)) throw new UsageError(`${command}: model file not found: ${v}`);
  if (!statSync(v).isFile()) throw new UsageError(`${command}: --model must name a file, got the folder ${v}`);
  return v;
}

function backendArg(v: string | boolean | undefined): LoadModelOptions['backend'] {
  if (v === undefined) return undefined;
  if (v !== 'auto' && v !== 'cpu' && v !== 'cuda') throw new UsageError(`--backend must be one of auto, cpu, cuda, got '${String(v)}'`);
  return v;
}

/** option errors the library finds before any work are usage errors too */
function asUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isLlavaRadError(e, 'INVALID_ARGUMENT')) throw new UsageError(e.message);
    throw e;
  }
}

function infoJson(info: ModelInfo, model: LlamaModel): Record<string, unknown> {
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
    context_size: model.contextSize,
  };
}

const round = (x: number) => Math.round(x * 1000) / 1000;

// ---- generate ------------------------------------------------------------------------------------------------

const generateCommand: Command = {
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

// ---- info ------------------------------------------------------------------------------------------------------

const infoCommand: Command = {
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

// ---- findings --------------------------------------------------------------------------------------------------

const findingsCommand: Command = {
  name: 'findings',
  summary: 'write the findings of a chest X-ray (LLaVA-Rad; research use only)',
  usage: `Usage: llava-rad findings IMAGE --model DIR [options]
       llava-rad findings IMAGE --model DECODER.gguf --mmproj VISION.gguf [options]

IMAGE is a PNG, JPEG, WebP, TIFF, GIF or AVIF file of one frontal chest radiograph.

Options:
  -m, --model DIR|FILE    a folder written by 'llava-rad convert', or the decoder GGUF (with --mmproj)
      --mmproj FILE       the vision GGUF, when --model names the decoder GGUF
  -r, --reason TEXT       the reason for the exam (indication), if known
  -n, --max-tokens N      most tokens to generate (default 256, as the official evaluation)
      --threads N         CPU threads (default: physical cores)
      --backend B         auto | cpu | cuda (default auto)
      --dicom-window      DICOM: apply rescale + VOI LUT / window instead of the MIMIC-CXR-JPG recipe
      --skip-lateral      DICOM: refuse lateral views (ViewPosition LL/LAT/...) instead of warning
      --json              print one JSON object (last line) instead of streaming the text
  -h, --help              this help

IMAGE may also be a DICOM file (detected by content): by default converted as MIMIC-CXR-JPG was made
(stored values, min-max to 8 bit, MONOCHROME1 inverted, histogram equalization).

Research use only: LLaVA-Rad output is not for clinical care.`,
  async run(args, io, signal) {
    const { values: v, positionals } = parseWithPositionals(args, {
      model: { type: 'string', short: 'm' },
      mmproj: { type: 'string' },
      reason: { type: 'string', short: 'r' },
      'max-tokens': { type: 'string', short: 'n' },
      threads: { type: 'string', short: 't' },
      backend: { type: 'string' },
      'dicom-window': { type: 'boolean' },
      'skip-lateral': { type: 'boolean' },
      json: { type: 'boolean' },
    }, 'findings', 1);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const image = positionals[0];
    if (!image) throw new UsageError('findings: the IMAGE file is required');
    if (!existsSync(image) || !statSync(image).isFile()) throw new UsageError(`findings: image file not found: ${image}`);
    if (typeof v.model !== 'string' || v.model === '') throw new UsageError('findings: --model DIR (or --model FILE.gguf --mmproj FILE.gguf) is required');
    if (!existsSync(v.model)) throw new UsageError(`findings: model not found: ${v.model}`);
    const load: LoadLlavaRadOptions = {};
    if (statSync(v.model).isDirectory()) {
      if (v.mmproj !== undefined) throw new UsageError('findings: --mmproj goes with --model FILE.gguf, not with a model folder');
      load.model = v.model;
    } else {
      if (typeof v.mmproj !== 'string' || v.mmproj === '') throw new UsageError('findings: --model names a file, so --mmproj FILE.gguf (the vision GGUF) is required too');
      if (!existsSync(v.mmproj)) throw new UsageError(`findings: vision GGUF not found: ${v.mmproj}`);
      load.decoder = v.model;
      load.vision = v.mmproj;
    }
    const threads = intArg(v.threads, '--threads', 1, 1024);
    if (threads !== undefined) load.threads = threads;
    const backend = backendArg(v.backend);
    if (backend !== undefined) load.backend = backend;
    const maxTokens = intArg(v['max-tokens'], '--max-tokens', 1, 1024) ?? 256;
    const json = v.json === true;
    const reason = typeof v.reason === 'string' && v.reason !== '' ? v.reason : undefined;

    const model = await asUsageAsync(() => loadLlavaRad(load));
    try {
      let streamed = false;
      const r: FindingsResult = await model.generateFindingsFromFile(image, reason, {
        maxTokens,
        signal,
        image: { dicomWindow: v['dicom-window'] === true, dicomRefuseLateral: v['skip-lateral'] === true },
        ...(json ? {} : { onToken: (ev) => { if (ev.text) { io.out(streamed ? ev.text : ev.text.trimStart()); streamed ||= ev.text.trim() !== ''; } } }),
      });
      for (const w of r.warnings) io.err(`llava-rad: warning: ${w}\n`);
      if (json) {
        io.out(JSON.stringify({
          findings: r.findings,
          tokens: r.tokens,
          reason: r.reason,
          stop_reason: r.stopReason,
          warnings: r.warnings,
          prompt_tokens: { before_image: r.prompt.before, image_rows: r.prompt.imageRows, after_image: r.prompt.after },
          timings_ms: {
            preprocess: round(r.timings.preprocessMs),
            vision: round(r.timings.visionMs),
            prompt: round(r.timings.promptMs),
            decode: round(r.timings.decodeMs),
            total: round(r.timings.totalMs),
          },
          research_use_only: r.researchUseOnly,
          notice: r.notice,
          model: { decoder: model.files.decoder, vision: model.files.vision },
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

async function asUsageAsync<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (isLlavaRadError(e, 'INVALID_ARGUMENT')) throw new UsageError(e.message);
    throw e;
  }
}

const convertCommand: Command = {
  name: 'convert',
  summary: 'convert the official release (Vicuna + LLaVA-Rad) into the GGUF model folder findings loads',
  usage: `usage: llava-rad convert --base VICUNA_DIR --adapter LLAVA_RAD_DIR --out DIR [--type f32|f16|q8_0|q5_k_m|q4_k_m]
                         [--vision-type f16|f32] [--json] [--quiet]

  --base DIR         the lmsys/vicuna-7b-v1.5 download (config.json, tokenizer.model, pytorch_model*.bin or *.safetensors)
  --adapter DIR      the microsoft/llava-rad download (config.json, adapter_config.json, adapter_model.bin,
                     non_lora_trainables.bin, biomedclipcxr_518_checkpoint.pt, biomedclipcxr_518.json)
  --out DIR          where to write the decoder GGUF, the vision GGUF and llava-rad.json (created)
  --type T           decoder weights: f32, f16 (default), q8_0, q5_k_m, q4_k_m (llama.cpp's mixes)
  --vision-type T    vision tower and projector matrices: f16 (default) or f32
  --json             print one JSON line with the result
  --quiet            no progress bar (it is shown on a terminal only)

Checkpoints are read by a restricted unpickler (nothing in them is executed). The weights are for research
use only and may not be redistributed; the converted files may not be either.`,
  async run(args, io) {
    const v = parse(args, {
      base: { type: 'string' },
      adapter: { type: 'string' },
      out: { type: 'string' },
      type: { type: 'string' },
      'vision-type': { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean' },
    }, 'convert');
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    for (const k of ['base', 'adapter', 'out'] as const) {
      if (typeof v[k] !== 'string' || v[k] === '') throw new UsageError(`convert: --${k} DIR is required`);
    }
    const type = v.type ?? 'f16';
    if (typeof type !== 'string' || !isConvertType(type)) throw new UsageError(`convert: --type must be one of ${CONVERT_TYPES.join(', ')}, got '${String(type)}'`);
    const visionType = v['vision-type'] ?? 'f16';
    if (visionType !== 'f16' && visionType !== 'f32') throw new UsageError(`convert: --vision-type must be f16 or f32, got '${String(visionType)}'`);
    for (const k of ['base', 'adapter'] as const) {
      const d = v[k] as string;
      if (!existsSync(d) || !statSync(d).isDirectory()) throw new UsageError(`convert: --${k} folder not found: ${d}`);
    }
    const tty = process.stderr.isTTY === true && v.quiet !== true && v.json !== true;
    const t0 = performance.now();
    let last = 0;
    const r = await convertRelease({
      base: v.base as string,
      adapter: v.adapter as string,
      out: v.out as string,
      type,
      visionType,
      ...(tty ? {
        onProgress: (p: ConvertProgress) => {
          const now = performance.now();
          if (now - last < 100 && p.bytesDone < p.bytesTotal) return;
          last = now;
          const frac = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 1;
          const width = 30;
          const fill = Math.round(frac * width);
          const bar = '#'.repeat(fill) + '-'.repeat(width - fill);
          process.stderr.write(`\r[${bar}] ${(frac * 100).toFixed(0).padStart(3)}% ${p.phase} ${p.tensor}`.padEnd(100).slice(0, 100));
        },
      } : {}),
    });
    if (tty) process.stderr.write('\n');
    const seconds = (performance.now() - t0) / 1000;
    if (v.json === true) {
      io.out(JSON.stringify({ out: r.out, decoder: r.decoder, vision: r.vision, manifest: r.manifest, type: r.type,
        lora_merged: r.loraMerged, lora_scale: r.loraScale, decoder_types: r.decoderTypes, seconds: round(seconds) }) + '\n');
    } else {
      io.out(`converted to ${r.out} (${r.type}, ${r.loraMerged} LoRA targets merged, ${seconds.toFixed(1)} s)\n` +
        `  decoder ${r.decoder}\n  vision  ${r.vision}\nrun: llava-rad findings IMAGE --model ${r.out}\n`);
    }
    return 0;
  },
};

// more commands (convert, pull, batch, bench) slot in here
const COMMANDS: Command[] = [generateCommand, findingsCommand, infoCommand, convertCommand];

function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: llava-rad <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run 'llava-rad <command> --help' for a command's options.
  -h, --help       this help
  -v, --version    print the version

Research use only: LLaVA-Rad is not for clinical care.`;
}

/** Runs the CLI; resolves with the exit code. Exported for tests. */
export async function main(argv: string[], io: Io = defaultIo(), signal: AbortSignal = new AbortController().signal): Promise<number> {
  const [first, ...rest] = argv;
  try {
    if (first === undefined) {
      io.err(mainUsage() + '\n');
      return 2;
    }
    if (first === '-h' || first === '--help' || first === 'help') {
      io.out(mainUsage() + '\n');
      return 0;
    }
    if (first === '-v' || first === '--version' || first === 'version') {
      io.out(`llava-rad ${packageVersion()}\n`);
      return 0;
    }
    const cmd = COMMANDS.find((c) => c.name === first);
    if (!cmd) throw new UsageError(`unknown command '${first}' (commands: ${COMMANDS.map((c) => c.name).join(', ')}; see llava-rad --help)`);
    return await cmd.run(rest, io, signal);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`llava-rad: ${e.message}\n`);
      return 2;
    }
    if (e instanceof LlavaRadError) {
      if (e.code === 'ABORTED' && signal.aborted) {
        io.err('\nllava-rad: interrupted\n');
        return 130;
      }
      io.err(`llava-rad: error [${e.code}]: ${e.message.replace(/^llava-rad: /, '')}\n`);
      return 1;
    }
    io.err(`llava-rad: unexpected error [INTERNAL]: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}

function defaultIo(): Io {
  return {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
  };
}

function isEntryPoint(): boolean {
  // dist/cli.js is the bin; also run when executed directly from source
  const arg = process.argv[1] ?? '';
  return /(?:^|[\\/])(?:cli\.(?:js|mjs|cjs|ts)|llava-rad)$/.test(arg);
}

if (isEntryPoint()) {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort(new LlavaRadError('ABORTED', 'interrupted')));
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
  main(process.argv.slice(2), defaultIo(), ac.signal).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`llava-rad: unexpected error [INTERNAL]: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
