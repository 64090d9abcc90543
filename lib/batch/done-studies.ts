// What `batch` keeps of the predictions file it resumes: for each study, whether its last record failed and
// which run configuration made it (model hashes and settings, identityKey), packed in one number per id. Not the
// parsed records: one takes about 2.7 KB of heap, so a job of 1.6 million studies could not be resumed in V8's
// default 4 GB heap; this takes a small fraction of that.

import { IdentityKeys, type PredictionRecord } from './record.js';

export class DoneStudies {
  readonly #keys = new IdentityKeys();

  /** Journal.open's `keep`: a record to its summary (identity key number x 2, + 1 when it failed) */
  readonly summarize = (r: PredictionRecord): number => this.#keys.of(r) * 2 + (r.error !== undefined ? 1 : 0);

  /** the summarized record failed */
  failed(summary: number): boolean {
    return summary % 2 === 1;
  }

  /** the identity key of the summarized record's run */
  identity(summary: number): string {
    return this.#keys.key(Math.floor(summary / 2));
  }
}
