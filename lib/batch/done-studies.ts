// What `batch` keeps of the predictions file it resumes: for each study, whether its last record failed and
// which run configuration made it (model hashes and settings, identityKey), packed in one number per id. Not the
// parsed records: one takes about 2.7 KB of heap, so a job of 1.6 million studies could not be resumed in V8's
// default 4 GB heap; this takes a small fraction of that.

import { identityKey, type PredictionRecord } from './record.js';

export class DoneStudies {
  /** the distinct identity keys met, in order */
  readonly #keys: string[] = [];
  readonly #index = new Map<string, number>();

  /** Journal.open's `keep`: a record to its summary (identity index x 2, + 1 when it failed) */
  readonly summarize = (r: PredictionRecord): number => {
    const key = identityKey(r);
    let i = this.#index.get(key);
    if (i === undefined) {
      i = this.#keys.push(key) - 1;
      this.#index.set(key, i);
    }
    return i * 2 + (r.error !== undefined ? 1 : 0);
  };

  /** the summarized record failed */
  failed(summary: number): boolean {
    return summary % 2 === 1;
  }

  /** the identity key of the summarized record's run */
  identity(summary: number): string {
    return this.#keys[Math.floor(summary / 2)]!;
  }
}
