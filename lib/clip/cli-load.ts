// What `llava-rad embed` and `llava-rad classify` share: their model options and how they load the model.

import { backendArg, intArg, requireFile, requireFolder, UsageError, type Options } from '../cli/args.js';
import { defaultModelFolder } from '../pull/home.js';
import { loadClip, type ClipModel, type LoadClipOptions } from './model.js';

export const CLIP_MODEL_OPTIONS: Options = {
  model: { type: 'string', short: 'm' },
  clip: { type: 'string' },
  mmproj: { type: 'string' },
  threads: { type: 'string', short: 't' },
  backend: { type: 'string' },
};

export const CLIP_MODEL_USAGE = `  -m, --model DIR         a folder written by 'llava-rad convert --clip-text' (llava-rad.json names "clip");
                          default $LLAVA_RAD_MODEL, else the folder 'llava-rad pull' wrote
      --clip FILE         the CLIP GGUF (llava-rad-clip-text-*.gguf), with --mmproj, instead of --model
      --mmproj FILE       the vision GGUF, with --clip
      --threads N         CPU threads (default: physical cores)
      --backend B         auto | cpu | cuda (default auto)`;

export async function loadClipFromArgs(v: Record<string, unknown>, command: string): Promise<ClipModel> {
  const load: LoadClipOptions = {};
  if (v.clip !== undefined || v.mmproj !== undefined) {
    if (v.model !== undefined) throw new UsageError(`${command}: give --model DIR or --clip FILE --mmproj FILE, not both`);
    for (const k of ['clip', 'mmproj'] as const) {
      const f = v[k];
      if (typeof f !== 'string' || f === '') throw new UsageError(`${command}: --clip and --mmproj go together (two GGUF files)`);
      requireFile(command, `--${k}`, f);
    }
    load.clip = v.clip as string;
    load.vision = v.mmproj as string;
  } else {
    const model = v.model ?? defaultModelFolder();
    if (typeof model !== 'string' || model === '') throw new UsageError(`${command}: no model: pass --model DIR (a folder converted with --clip-text)`);
    load.model = requireFolder(command, 'model', model);
  }
  const threads = intArg(v.threads as string | undefined, '--threads', 1, 1024);
  if (threads !== undefined) load.threads = threads;
  const backend = backendArg(v.backend as string | undefined);
  if (backend !== undefined) load.backend = backend;
  return loadClip(load);
}
