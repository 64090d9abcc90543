// Where `llava-rad pull` puts things, and where `findings` looks when no --model is given.
//
//   $LLAVA_RAD_HOME                      default ~/.cache/llava-rad
//     models/llava-rad-<type>/           one converted model per type (llava-rad.json + two GGUFs + pull.json)
//     sources/<owner>--<name>/           the Hugging Face downloads (deleted after conversion unless kept)
//     license-accepted.json              the record of the license acceptance
//
// LLAVA_RAD_MODEL names a model folder directly and wins over the search.

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import type { ConvertType } from '../convert/mix.js';

/** the order `findings` tries model folders in when several types were pulled: most precise first */
export const MODEL_TYPE_PREFERENCE: readonly ConvertType[] = ['f32', 'f16', 'q8_0', 'q5_k_m', 'q4_k_m'];

type Env = Record<string, string | undefined>;

/** $LLAVA_RAD_HOME, else ~/.cache/llava-rad */
export function llavaRadHome(env: Env = process.env): string {
  const h = env.LLAVA_RAD_HOME;
  return path.resolve(h !== undefined && h !== '' ? h : path.join(homedir(), '.cache', 'llava-rad'));
}

/** the folder `pull --type <type>` writes: $LLAVA_RAD_HOME/models/llava-rad-<type> */
export function modelFolder(type: ConvertType, env: Env = process.env): string {
  return path.join(llavaRadHome(env), 'models', `llava-rad-${type}`);
}

/** where a repository's files are downloaded to: $LLAVA_RAD_HOME/sources/<owner>--<name> */
export function sourceFolder(repo: string, root: string = path.join(llavaRadHome(), 'sources')): string {
  return path.join(root, repo.replace('/', '--'));
}

/**
 * The model folder used when none is given: $LLAVA_RAD_MODEL when set (whether or not it exists), else the
 * first pulled $LLAVA_RAD_HOME/models/llava-rad-<type> holding llava-rad.json, in MODEL_TYPE_PREFERENCE
 * order; undefined when there is none.
 */
export function defaultModelFolder(env: Env = process.env): string | undefined {
  const m = env.LLAVA_RAD_MODEL;
  if (m !== undefined && m !== '') return m;
  for (const t of MODEL_TYPE_PREFERENCE) {
    const dir = modelFolder(t, env);
    if (existsSync(path.join(dir, 'llava-rad.json'))) return dir;
  }
  return undefined;
}
