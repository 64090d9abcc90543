// The license terms `llava-rad pull` shows before the first download, and the record of their acceptance
// ($LLAVA_RAD_HOME/license-accepted.json). A changed text (another LICENSE_VERSION) asks again.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { ioError } from '../errors.js';
import path from 'node:path';

export const LICENSE_TERMS = `LLaVA-Rad weights: license terms

llava-rad pull downloads two Hugging Face repositories and converts them on this machine:
  - lmsys/vicuna-7b-v1.5 (the language model): Llama 2 Community License Agreement
    (https://ai.meta.com/llama/license/) and its Acceptable Use Policy.
  - microsoft/llava-rad (LoRA, projector, BiomedCLIP-CXR vision tower): Microsoft Research License,
    research use only (https://huggingface.co/microsoft/llava-rad).

By accepting you confirm that you have read those licenses and will follow them, in particular:
  - research use only: LLaVA-Rad output is NOT for clinical care or any clinical decision;
  - the weights may not be redistributed, and neither may the GGUF files converted from them:
    never publish or share the converted model folder.
`;

/** identifies the text above; bump by editing the text */
export const LICENSE_VERSION = createHash('sha256').update(LICENSE_TERMS).digest('hex').slice(0, 16);

export function licenseRecordPath(home: string): string {
  return path.join(home, 'license-accepted.json');
}

/** true when this text's acceptance was recorded under `home` */
export function licenseAccepted(home: string): boolean {
  const f = licenseRecordPath(home);
  if (!existsSync(f)) return false;
  try {
    const r = JSON.parse(readFileSync(f, 'utf8')) as { version?: unknown };
    return r.version === LICENSE_VERSION;
  } catch {
    return false;
  }
}

export async function recordLicenseAcceptance(home: string): Promise<void> {
  try {
    await mkdir(home, { recursive: true });
    await writeFile(licenseRecordPath(home), JSON.stringify({
      version: LICENSE_VERSION,
      accepted_at: new Date().toISOString(),
      repositories: ['lmsys/vicuna-7b-v1.5', 'microsoft/llava-rad'],
    }, null, 2) + '\n');
  } catch (e) {
    throw ioError(e, `cannot record the license acceptance in ${home}`);
  }
}
