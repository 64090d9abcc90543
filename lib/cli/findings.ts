// `llava-rad findings`: the findings of one chest X-ray.

import { loadLlavaRad, type FindingsResult, type LoadLlavaRadOptions } from '../llava-rad.js';
import { defaultModelFolder } from '../pull/home.js';
import { asUsageAsync, backendArg, IMAGE_OPTIONS, intArg, llavaRadModelArgs, parseWithPositionals, requireFile, round, UsageError, type Command } from './args.js';

export const findingsCommand: Command = {
  name: 'findings',
  summary: 'write the findings of a chest X-ray (LLaVA-Rad; research use only)',
  usage: `Usage: llava-rad findings IMAGE [--model DIR] [options]
       llava-rad findings IMAGE --model DECODER.gguf --mmproj VISION.gguf [options]

IMAGE is a PNG, JPEG, WebP, TIFF, GIF or AVIF file of one frontal chest radiograph.

Options:
  -m, --model DIR|FILE    a folder written by 'llava-rad convert', or the decoder GGUF (with --mmproj);
                          default $LLAVA_RAD_MODEL, else the folder 'llava-rad pull' wrote in $LLAVA_RAD_HOME
      --mmproj FILE       the vision GGUF, when --model names the decoder GGUF
  -r, --reason TEXT       the reason for the exam (indication), if known
  -n, --max-tokens N      most tokens to generate (default 256, as the official evaluation)
      --threads N         CPU threads (default: physical cores)
      --backend B         auto | cpu | cuda (default auto)
      --kv-type T         KV cache: auto (default: f32 for f32/f16/q8_0 weights, f16 for 4-5 bits), f16, f32, q8_0
      --high-bit-depth M  16-bit images to 8 bits: msb (default, the high byte), minmax (stretch min..max),
                          pil (exactly PIL's convert('RGB'): grey clipped at 255, as the official code reads it)
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
      'kv-type': { type: 'string' },
      ...IMAGE_OPTIONS,
      json: { type: 'boolean' },
    }, 'findings', 1);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const image = positionals[0];
    if (!image) throw new UsageError('findings: the IMAGE file is required');
    requireFile('findings', 'image', image);
    const load: LoadLlavaRadOptions = llavaRadModelArgs('findings', v, defaultModelFolder());
    const threads = intArg(v.threads, '--threads', 1, 1024);
    if (threads !== undefined) load.threads = threads;
    const backend = backendArg(v.backend);
    if (backend !== undefined) load.backend = backend;
    const kv = v['kv-type'];
    if (kv !== undefined) {
      if (kv !== 'auto' && kv !== 'f16' && kv !== 'f32' && kv !== 'q8_0') throw new UsageError(`findings: --kv-type must be one of auto, f16, f32, q8_0, got '${String(kv)}'`);
      load.kvCacheType = kv;
    }
    const highBitDepth = v['high-bit-depth'] ?? 'msb';
    if (highBitDepth !== 'msb' && highBitDepth !== 'minmax' && highBitDepth !== 'pil') {
      throw new UsageError(`findings: --high-bit-depth must be one of msb, minmax, pil, got '${String(highBitDepth)}'`);
    }
    const maxTokens = intArg(v['max-tokens'], '--max-tokens', 1, 1024) ?? 256;
    const json = v.json === true;
    const reason = typeof v.reason === 'string' && v.reason !== '' ? v.reason : undefined;

    const model = await asUsageAsync(() => loadLlavaRad(load));
    try {
      let streamed = false;
      const r: FindingsResult = await model.generateFindingsFromFile(image, reason, {
        maxTokens,
        signal,
        image: { highBitDepth, dicomWindow: v['dicom-window'] === true, dicomRefuseLateral: v['skip-lateral'] === true },
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
