// The model's identity in every record: name, size and sha256 of the decoder and vision GGUFs, hashed
// once per run by streaming the files (a 7B GGUF is several GB; nothing is held in memory).

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { LlavaRadError } from '../errors.js';
import type { GgufIdentity, ModelIdentity } from './record.js';

export async function hashFile(file: string): Promise<GgufIdentity> {
  try {
    const st = await stat(file);
    const h = createHash('sha256');
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 22 })) h.update(chunk as Buffer);
    return { file: path.basename(file), bytes: st.size, sha256: h.digest('hex') };
  } catch (e) {
    throw new LlavaRadError('IO', `cannot hash ${file}: ${(e as Error).message}`);
  }
}

export async function modelIdentity(files: { decoder: string; vision: string }): Promise<ModelIdentity> {
  const [decoder, vision] = await Promise.all([hashFile(files.decoder), hashFile(files.vision)]);
  return { decoder, vision };
}
