// An engine runs studies: several in flight at once (`slots`, the decoder's parallel sequences, batched
// continuously). The local engine is a LlavaRad in this process; a worker engine (workers.ts) is one in a
// child process. A study's own failure (unreadable image, say) is an outcome to record; an abort is not.

import { isLlavaRadError, LlavaRadError } from '../errors.js';
import { loadLlavaRad, type LlavaRad, type LoadLlavaRadOptions } from '../llava-rad.js';
import type { HighBitDepthMode } from '../image/decode.js';
import type { Study } from './manifest.js';
import type { StudyError, StudyResult } from './record.js';

export type Outcome = { ok: true; result: StudyResult } | { ok: false; error: StudyError };

export interface StudySettings {
  maxTokens: number;
  dicomWindow: boolean;
  skipLateral: boolean;
  highBitDepth: HighBitDepthMode;
}

export interface Engine {
  /** e.g. "cpu", "cuda:1" */
  readonly device: string;
  /** studies in flight at once */
  readonly slots: number;
  /** the study's outcome; rejects with ABORTED when `signal` aborts, with EngineLost when the engine died */
  run(study: Study, signal: AbortSignal): Promise<Outcome>;
  close(): Promise<void>;
}

/** the engine is gone (its worker process exited): the study in flight did not finish */
export class EngineLost extends Error {}

/** KV cells per study: the image rows, the prompt with a long reason, and the generated tokens */
export function contextPerStudy(maxTokens: number): number {
  return Math.max(2048, Math.ceil((1369 + 512 + maxTokens) / 256) * 256);
}

export function toStudyError(e: unknown): StudyError {
  if (isLlavaRadError(e)) return { code: e.code, message: e.message };
  return { code: 'INTERNAL', message: e instanceof Error ? e.message : String(e) };
}

class LocalEngine implements Engine {
  constructor(readonly device: string, readonly slots: number, readonly model: LlavaRad, readonly settings: StudySettings) {}

  async run(study: Study, signal: AbortSignal): Promise<Outcome> {
    try {
      const r = await this.model.generateFindingsFromFile(study.image, study.reason, {
        maxTokens: this.settings.maxTokens,
        signal,
        image: { highBitDepth: this.settings.highBitDepth, dicomWindow: this.settings.dicomWindow, dicomRefuseLateral: this.settings.skipLateral },
      });
      return { ok: true, result: { findings: r.findings, tokens: r.tokens, stopReason: r.stopReason, warnings: r.warnings, timings: r.timings } };
    } catch (e) {
      if (signal.aborted) throw isLlavaRadError(e, 'ABORTED') ? e : new LlavaRadError('ABORTED', 'the study was aborted', { cause: e });
      return { ok: false, error: toStudyError(e) };
    }
  }

  async close(): Promise<void> {
    await this.model.dispose();
  }
}

/** Loads LLaVA-Rad in this process with `slots` parallel sequences. */
export async function openLocalEngine(load: LoadLlavaRadOptions, slots: number, settings: StudySettings, device: string): Promise<Engine> {
  const model = await loadLlavaRad({ ...load, parallel: slots, contextSize: contextPerStudy(settings.maxTokens) });
  // "auto" and "cuda" say which backend they became (e.g. "auto (CPU)")
  const name = device === 'auto' || device === 'cuda' ? `${device} (${model.decoder.info.backend})` : device;
  return new LocalEngine(name, slots, model, settings);
}
