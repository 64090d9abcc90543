// One study as the server runs it: admitted (or refused at once), then the library's generateFindings on the
// shared engine, cancelled when the client goes away, when it runs past the timeout, or when a shutdown's
// grace period ends. Its result is the record `batch` writes (lib/batch/record.ts).

import { randomUUID } from 'node:crypto';
import { isLlavaRadError, LlavaRadError } from '../errors.js';
import type { FindingsResult, LlavaRad } from '../llava-rad.js';
import type { HighBitDepthMode } from '../image/decode.js';
import type { TokenEvent } from '../options.js';
import type { Study } from '../batch/manifest.js';
import { successRecord, type ModelIdentity, type PredictionRecord, type RunParams } from '../batch/record.js';
import type { Admission } from './admission.js';
import { ServeError } from './http-errors.js';
import type { ServeMetrics } from './metrics.js';

export interface StudySettings {
  /** most tokens a request may ask for (and the default) */
  maxTokens: number;
  /** per-request limit, admission to answer */
  timeoutMs: number;
  maxPixels: number;
  highBitDepth: HighBitDepthMode;
  dicomWindow: boolean;
  skipLateral: boolean;
  /** the KV cache option as given, for the record */
  kvType: string;
  device: string;
}

export interface StudyRequest {
  image: Uint8Array;
  /** what the record names as the image (the upload's file name, or "upload") */
  source: string;
  reason: string | null;
  maxTokens?: number;
  /** benchmarks: generate maxTokens tokens whatever the model says */
  ignoreEos?: boolean;
  temperature?: number;
  topP?: number;
  seed?: number;
  onToken?: (e: TokenEvent) => void;
  /** aborts when the client goes away */
  clientGone: AbortSignal;
}

export interface StudyOutcome {
  record: PredictionRecord;
  result: FindingsResult;
}

export class StudyRunner {
  constructor(
    readonly model: LlavaRad,
    readonly identity: ModelIdentity,
    readonly settings: StudySettings,
    readonly admission: Admission,
    readonly metrics: ServeMetrics,
    /** aborts when a shutdown's grace period is over */
    readonly shutdown: AbortSignal,
  ) {}

  /** the decode options a request's body may set, checked (INVALID_ARGUMENT says what was expected) */
  maxTokensFor(requested: unknown): number {
    if (requested === undefined || requested === null) return this.settings.maxTokens;
    if (typeof requested !== 'number' || !Number.isInteger(requested) || requested < 1 || requested > this.settings.maxTokens) {
      throw new ServeError('INVALID_ARGUMENT', `max_tokens must be an integer from 1 to ${this.settings.maxTokens} (the server's --max-tokens), got ${JSON.stringify(requested)}`);
    }
    return requested;
  }

  /**
   * Admits the study now or throws (QUEUE_FULL with Retry-After, SHUTTING_DOWN); the returned promise is its
   * outcome. Call before answering anything, so that a refusal is a plain HTTP error.
   */
  start(req: StudyRequest): Promise<StudyOutcome> {
    if (this.admission.draining) throw new ServeError('SHUTTING_DOWN', 'the server is shutting down and takes no new studies', { 'retry-after': '5' });
    if (!this.admission.tryEnter()) {
      throw new ServeError('QUEUE_FULL',
        `the queue is full (${this.admission.capacity} studies admitted: --concurrency ${this.admission.concurrency} + --queue ${this.admission.queue}); retry later`,
        { 'retry-after': String(this.admission.retryAfterSeconds()) });
    }
    return this.#run(req).finally(() => this.admission.release());
  }

  async #run(req: StudyRequest): Promise<StudyOutcome> {
    const s = this.settings;
    const maxTokens = req.maxTokens ?? s.maxTokens;
    const timeout = AbortSignal.timeout(s.timeoutMs);
    const signal = AbortSignal.any([req.clientGone, timeout, this.shutdown]);
    const t0 = performance.now();
    let first = true;
    try {
      const result = await this.model.generateFindings(req.image, req.reason, {
        maxTokens,
        signal,
        ...(req.ignoreEos ? { ignoreEos: true } : {}),
        ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
        ...(req.topP !== undefined ? { topP: req.topP } : {}),
        ...(req.seed !== undefined ? { seed: req.seed } : {}),
        image: { maxPixels: s.maxPixels, highBitDepth: s.highBitDepth, dicomWindow: s.dicomWindow, dicomRefuseLateral: s.skipLateral },
        onToken: (e) => {
          if (first) this.metrics.firstToken.observe((performance.now() - t0) / 1000);
          first = false;
          this.metrics.tokens.inc();
          req.onToken?.(e);
        },
      });
      this.metrics.studies.inc({ outcome: 'ok' });
      this.#count(result);
      const study: Study = { id: randomUUID(), image: req.source, source: req.source, reason: result.reason, reference: null, line: 0 };
      const params: RunParams = { max_tokens: maxTokens, dicom_window: s.dicomWindow, skip_lateral: s.skipLateral, high_bit_depth: s.highBitDepth, kv_type: s.kvType };
      return { record: successRecord(study, result, this.identity, params, s.device), result };
    } catch (e) {
      if (signal.aborted && (isLlavaRadError(e, 'ABORTED') || !isLlavaRadError(e))) {
        if (timeout.aborted) {
          this.metrics.studies.inc({ outcome: 'timeout' });
          throw new ServeError('TIMEOUT', `the study ran past the server's request timeout of ${s.timeoutMs} ms and was cancelled`);
        }
        if (this.shutdown.aborted && !req.clientGone.aborted) {
          this.metrics.studies.inc({ outcome: 'cancelled' });
          throw new ServeError('SHUTTING_DOWN', 'the server shut down before the study finished; it was cancelled');
        }
        this.metrics.studies.inc({ outcome: 'cancelled' });
        throw new LlavaRadError('ABORTED', 'the client went away; the study was cancelled', { cause: e });
      }
      this.metrics.studies.inc({ outcome: 'error' });
      throw e;
    }
  }

  #count(r: FindingsResult): void {
    this.metrics.completedTokens.inc({}, r.tokens.length);
    this.metrics.decodeSeconds.inc({}, r.timings.decodeMs / 1000);
    this.metrics.queueWait.observe(r.timings.queueMs / 1000);
  }
}
