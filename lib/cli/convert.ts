// `llava-rad convert`: the official release to the GGUF model folder.

import { existsSync, statSync } from 'node:fs';
import { CONVERT_TYPES, convertRelease, isConvertType, type ConvertProgress } from '../convert/convert.js';
import { parse, round, UsageError, type Command } from './args.js';

export const convertCommand: Command = {
  name: 'convert',
  summary: 'convert the official release (Vicuna + LLaVA-Rad) into the GGUF model folder findings loads',
  usage: `usage: llava-rad convert --base VICUNA_DIR --adapter LLAVA_RAD_DIR --out DIR [--type f32|f16|q8_0|q5_k_m|q4_k_m]
                         [--vision-type f16|f32] [--clip-text PUBMEDBERT_DIR [--clip-type f32|f16]] [--json] [--quiet]

  --base DIR         the lmsys/vicuna-7b-v1.5 download (config.json, tokenizer.model, pytorch_model*.bin or *.safetensors)
  --adapter DIR      the microsoft/llava-rad download (config.json, adapter_config.json, adapter_model.bin,
                     non_lora_trainables.bin, biomedclipcxr_518_checkpoint.pt, biomedclipcxr_518.json)
  --out DIR          where to write the decoder GGUF, the vision GGUF and llava-rad.json (created)
  --type T           decoder weights: f32, f16 (default), q8_0, q5_k_m, q4_k_m (llama.cpp's mixes)
  --vision-type T    vision tower and projector matrices: f16 (default) or f32
  --clip-text DIR    the microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract download (vocab.txt, config.json):
                     also write llava-rad-clip-text-T.gguf (BiomedCLIP-CXR's text tower, projections and image
                     head) for llava-rad embed / classify
  --clip-type T      its matrices: f32 (default; zero-shot probabilities within 1e-3 of the reference) or f16
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
      'clip-text': { type: 'string' },
      'clip-type': { type: 'string' },
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
    const clipText = v['clip-text'];
    if (clipText !== undefined && (typeof clipText !== 'string' || !existsSync(clipText) || !statSync(clipText).isDirectory())) {
      throw new UsageError(`convert: --clip-text folder not found: ${String(clipText)}`);
    }
    const clipType = v['clip-type'];
    if (clipType !== undefined && clipType !== 'f16' && clipType !== 'f32') throw new UsageError(`convert: --clip-type must be f32 or f16, got '${String(clipType)}'`);
    if (clipType !== undefined && clipText === undefined) throw new UsageError('convert: --clip-type goes with --clip-text');
    const tty = process.stderr.isTTY === true && v.quiet !== true && v.json !== true;
    const t0 = performance.now();
    let last = 0;
    const r = await convertRelease({
      base: v.base as string,
      adapter: v.adapter as string,
      out: v.out as string,
      type,
      visionType,
      ...(clipText === undefined ? {} : { clipText }),
      ...(clipType === undefined ? {} : { clipType }),
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
      io.out(JSON.stringify({ out: r.out, decoder: r.decoder, vision: r.vision, ...(r.clip ? { clip: r.clip } : {}), manifest: r.manifest, type: r.type,
        lora_merged: r.loraMerged, lora_scale: r.loraScale, decoder_types: r.decoderTypes, seconds: round(seconds) }) + '\n');
    } else {
      io.out(`converted to ${r.out} (${r.type}, ${r.loraMerged} LoRA targets merged, ${seconds.toFixed(1)} s)\n` +
        `  decoder ${r.decoder}\n  vision  ${r.vision}\n${r.clip ? `  clip    ${r.clip}\n` : ''}run: llava-rad findings IMAGE --model ${r.out}\n`);
    }
    return 0;
  },
};
