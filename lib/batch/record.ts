// One line of a predictions file: the study, its findings or its error, the model's identity, the
// settings and timings. `id`, `query`, `reference` and `prediction` are the fields the official LLaVA-Rad
// evaluation writes (llava/eval/model_mimic_cxr.py) and its metric scripts read.

import { findingsPromptText, type FindingsResult } from '../llava-rad.js';
import type { Study } from './manifest.js';

/**
 * the longest line a predictions file may hold. A record of batch is a few KB to a few hundred (a reference is at
 * most 64 KiB; findings and tokens at most max_tokens' worth); a longer line is not one, and is refused as soon as
 * it is seen rather than held in memory (a file of gigabytes without a newline would be, whole)
 */
export const MAX_RECORD_BYTES = 16 << 20;

export interface GgufIdentity {
  /** the file's name (informative: identity is the hash) */
  file: string;
  bytes: number;
  sha256: string;
}

export interface ModelIdentity {
  decoder: GgufIdentity;
  vision: GgufIdentity;
}

/** settings that change the findings; a predictions file never mixes two */
export interface RunParams {
  max_tokens: number;
  dicom_window: boolean;
  skip_lateral: boolean;
  /** 16-bit images to 8 bits: msb | minmax | pil */
  high_bit_depth: string;
  /** the KV cache option as given (auto | f16 | f32 | q8_0) */
  kv_type: string;
}

export interface StudyResult {
  findings: string;
  tokens: number[];
  stopReason: FindingsResult['stopReason'];
  warnings: string[];
  timings: FindingsResult['timings'];
}

export interface StudyError {
  code: string;
  message: string;
}

export interface PredictionRecord {
  id: string;
  image: string;
  reason: string | null;
  findings?: string;
  tokens?: number[];
  stop_reason?: string;
  warnings?: string[];
  /** the official evaluation's fields, when the manifest gives a reference */
  query?: string;
  reference?: string;
  prediction?: string;
  /** a study that failed: no findings */
  error?: StudyError;
  model: ModelIdentity;
  params: RunParams;
  device: string;
  timings_ms?: { preprocess: number; vision: number; queue: number; prompt: number; decode: number; total: number };
  finished_at: string;
  research_use_only: true;
}

/** the human turn as the official evaluation writes it in "query" ("<image>\n" + the question) */
export function officialQuery(reason: string | null): string {
  const text = findingsPromptText(reason);
  return text.slice(text.indexOf('<image>'), text.lastIndexOf(' ASSISTANT:'));
}

const ms = (x: number) => Math.round(x * 1000) / 1000;

export function successRecord(s: Study, r: StudyResult, model: ModelIdentity, params: RunParams, device: string): PredictionRecord {
  return {
    id: s.id,
    image: s.source,
    reason: s.reason,
    findings: r.findings,
    ...(s.reference !== null ? { query: officialQuery(s.reason), reference: s.reference, prediction: r.findings } : {}),
    tokens: r.tokens,
    stop_reason: r.stopReason,
    warnings: r.warnings,
    model,
    params,
    device,
    timings_ms: {
      preprocess: ms(r.timings.preprocessMs),
      vision: ms(r.timings.visionMs),
      queue: ms(r.timings.queueMs),
      prompt: ms(r.timings.promptMs),
      decode: ms(r.timings.decodeMs),
      total: ms(r.timings.totalMs),
    },
    finished_at: new Date().toISOString(),
    research_use_only: true,
  };
}

export function failureRecord(s: Study, error: StudyError, model: ModelIdentity, params: RunParams, device: string): PredictionRecord {
  return {
    id: s.id,
    image: s.source,
    reason: s.reason,
    error,
    model,
    params,
    device,
    finished_at: new Date().toISOString(),
    research_use_only: true,
  };
}

/** what must be equal for two records to come from the same run configuration */
export function identityKey(r: Pick<PredictionRecord, 'model' | 'params'>): string {
  const p = r.params;
  return `decoder sha256 ${r.model.decoder.sha256}, vision sha256 ${r.model.vision.sha256}, max_tokens ${p.max_tokens}, ` +
    `dicom_window ${p.dicom_window}, skip_lateral ${p.skip_lateral}, high_bit_depth ${p.high_bit_depth}, kv_type ${p.kv_type}`;
}

/** the distinct identity keys of many records, each held once: a record's key as a small number */
export class IdentityKeys {
  readonly #keys: string[] = [];
  readonly #index = new Map<string, number>();

  /** the number of the record's identity key */
  of(r: Pick<PredictionRecord, 'model' | 'params'>): number {
    const key = identityKey(r);
    let i = this.#index.get(key);
    if (i === undefined) {
      i = this.#keys.push(key) - 1;
      this.#index.set(key, i);
    }
    return i;
  }

  /** the key numbered i */
  key(i: number): string {
    return this.#keys[i]!;
  }
}

export function isRecord(v: unknown): v is PredictionRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Partial<PredictionRecord>;
  return typeof r.id === 'string' && typeof r.model?.decoder?.sha256 === 'string' && typeof r.model.vision?.sha256 === 'string' &&
    typeof r.params?.max_tokens === 'number' && (typeof r.findings === 'string' || typeof r.error?.code === 'string');
}

export const succeeded = (r: PredictionRecord) => r.error === undefined;
