// Bootstrap resamples drawn one row at a time. The official evaluation's bootstraps draw a B x n matrix of
// study indices in one call (sacrebleu: `default_rng(12345).choice(n, size=(B, n))`; scipy.stats.bootstrap:
// `RandomState(3).randint(0, n, (batch, n))` per batch). Both bit generators hand out one stream of 32-bit
// draws whatever the call sizes (numpy keeps the spare half of a PCG64 output in the bit generator, and MT19937
// is 32-bit), so drawing row after row from one generator gives the same matrix. Held whole, that matrix is
// B x n numbers: at the 100,000 resamples evaluate() allows and 3,000 studies, 3e8 of them, which ended the
// process with V8's heap exhausted; row by row it is n.

import { defaultRng, RandomState } from './numpy-random.js';

/** the resamples of n studies, B of them, as a numpy generator draws them row by row */
export class ResampleRows {
  private constructor(
    readonly n: number,
    readonly samples: number,
    /** a fresh draw: a function writing the next row */
    private readonly start: () => (row: Int32Array) => void,
  ) {}

  /**
   * sacrebleu's resamples: each call of forEach makes a fresh `default_rng(seed)`, as each sacrebleu
   * `corpus_score` does, so every metric resampled with these rows sees the same draws
   */
  static sacrebleu(n: number, samples: number, seed: number): ResampleRows {
    return new ResampleRows(n, samples, () => {
      const rng = defaultRng(seed);
      return (row) => rng.fillIntegers(row, 0, n);
    });
  }

  /**
   * scipy.stats.bootstrap's resamples: a fresh `RandomState(seed)` per forEach (each official call makes
   * one); a RandomState given instead is drawn from as it stands, so a second forEach continues its stream
   */
  static scipy(n: number, samples: number, randomState: number | RandomState): ResampleRows {
    return new ResampleRows(n, samples, () => {
      const rng = randomState instanceof RandomState ? randomState : new RandomState(randomState);
      return (row) => rng.fillRandint(row, 0, n);
    });
  }

  /** calls fn with each resample's study indices in draw order; `row` is reused (copy what you keep) */
  forEach(fn: (row: Int32Array, r: number) => void): void {
    const next = this.start();
    const row = new Int32Array(this.n);
    for (let r = 0; r < this.samples; r++) {
      next(row);
      fn(row, r);
    }
  }
}
