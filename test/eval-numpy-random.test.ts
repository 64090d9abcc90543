// numpy's RNGs reproduced in TypeScript, against draws of the real numpy (test/fixtures/eval/rng-golden.json,
// made by scripts/make-eval-fixtures.py; the numpy version is recorded in the file).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { defaultRng, PCG64, RandomState, seedSequenceState } from '../lib/eval/numpy-random.js';
import { ResampleRows } from '../lib/eval/resample-rows.js';
import { scipyBootstrapIndices, scipyBootstrapRows } from '../lib/eval/scipy-bootstrap.js';

interface Golden {
  versions: Record<string, string>;
  draws_per_bound: number;
  legacy: { seed: number; randint: Array<{ high: number; values: number[] }>; choice_then: number[][]; seeds: Record<string, number[]>; array_seed_1_2_3: number[] };
  generator: { seed: number; integers: Array<{ high: number; values: number[] }>; choice_220x20: number[][]; seeds: Record<string, number[]>; pcg64_raw: string[] };
}
const golden = JSON.parse(readFileSync(new URL('./fixtures/eval/rng-golden.json', import.meta.url), 'utf8')) as Golden;

describe(`numpy RandomState (MT19937, legacy), vs numpy ${golden.versions.numpy}`, () => {
  it(`randint(0, high, ${golden.draws_per_bound}) for ${golden.legacy.randint.length} bounds in sequence, then choice(arange(n), n)`, () => {
    const rs = new RandomState(golden.legacy.seed);
    let compared = 0;
    for (const { high, values } of golden.legacy.randint) {
      expect(rs.randint(0, high, values.length), `randint(0, ${high})`).toEqual(values);
      compared += values.length;
    }
    for (const values of golden.legacy.choice_then) {
      expect(rs.choice(values.length, values.length), `choice(${values.length})`).toEqual(values);
      compared += values.length;
    }
    expect(compared).toBeGreaterThan(20_000); // 21 bounds x 1000 draws + 288 choices
  });

  it('seeds 0, 1, 12345, 2**32-1 and the array seed [1, 2, 3] (init_by_array)', () => {
    for (const [seed, values] of Object.entries(golden.legacy.seeds)) {
      expect(new RandomState(Number(seed)).randint(0, 1000, values.length), `seed ${seed}`).toEqual(values);
    }
    const arr = golden.legacy.array_seed_1_2_3;
    expect(new RandomState([1, 2, 3]).randint(0, 2 ** 32, arr.length)).toEqual(arr); // 700 draws (> 624: one state regeneration)
  });

  it('rejects bad seeds and ranges with INVALID_ARGUMENT', () => {
    expect(() => new RandomState(-1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new RandomState(2 ** 32)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new RandomState(3).randint(5, 5, 1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    expect(() => new RandomState(3).randint(0, 2 ** 32 + 1, 1)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});

describe(`numpy default_rng (PCG64 + SeedSequence), vs numpy ${golden.versions.numpy}`, () => {
  it('random_raw: the first 10 64-bit outputs of PCG64(12345)', () => {
    const g = new PCG64(12345);
    expect(golden.generator.pcg64_raw.map(() => g.nextUint64().toString())).toEqual(golden.generator.pcg64_raw);
  });

  it(`integers(0, high, ${golden.draws_per_bound}) for ${golden.generator.integers.length} bounds in sequence (Lemire, buffered 32-bit halves)`, () => {
    const g = defaultRng(golden.generator.seed);
    let compared = 0;
    for (const { high, values } of golden.generator.integers) {
      expect(g.integers(0, high, values.length), `integers(0, ${high})`).toEqual(values);
      compared += values.length;
    }
    expect(compared).toBe(21_000);
  });

  it('choice(220, size=(20, 220)) as sacrebleu draws its bootstrap indices (4400 draws)', () => {
    const flat = defaultRng(12345).choice(220, 20 * 220);
    expect(flat).toEqual(golden.generator.choice_220x20.flat());
  });

  it('seeds 0, 1, 3, 2**32-1, 2**32+5, 2**64+12345, 2**130+7 (multi-word SeedSequence entropy), 1000 draws each', () => {
    for (const [seed, values] of Object.entries(golden.generator.seeds)) {
      expect(defaultRng(BigInt(seed)).integers(0, 1000, values.length), `seed ${seed}`).toEqual(values);
    }
    expect(defaultRng(3).integers(0, 1000, 5)).toEqual(defaultRng(3n).integers(0, 1000, 5));
  });

  it('SeedSequence state words are uint32', () => {
    for (const w of seedSequenceState(12345, 8)) expect(w >>> 0).toBe(w);
  });
});

describe('bootstrap resamples drawn row by row equal the one B x n draw', () => {
  const collect = (rows: ResampleRows) => {
    const out: number[][] = [];
    rows.forEach((row) => out.push(Array.from(row)));
    return out;
  };
  it('sacrebleu: choice(220, size=(20, 220)) of real numpy, row by row; each forEach draws afresh', () => {
    const rows = ResampleRows.sacrebleu(220, 20, golden.generator.seed);
    expect(collect(rows), '4400 draws').toEqual(golden.generator.choice_220x20);
    expect(collect(rows), 'a second pass: the same rows').toEqual(golden.generator.choice_220x20);
  });
  it('an odd n (PCG64 hands out 32-bit halves across rows) and n = 1 (no draws)', () => {
    for (const [n, B] of [[7, 9], [1, 4], [3001, 3]]) {
      const flat = defaultRng(12345).choice(n, n * B);
      expect(collect(ResampleRows.sacrebleu(n, B, 12345)).flat(), `${n * B} draws`).toEqual(flat);
      const legacy = new RandomState(3).randint(0, n, n * B);
      expect(collect(ResampleRows.scipy(n, B, 3)).flat(), `${n * B} legacy draws`).toEqual(legacy);
    }
  });
  it('scipy.stats.bootstrap: the rows equal the indices matrix, batched or not; a RandomState given is drawn from once', () => {
    const matrix = scipyBootstrapIndices(37, { nResamples: 11 });
    expect(collect(scipyBootstrapRows(37, { nResamples: 11 })).flat(), '407 draws').toEqual(Array.from(matrix));
    expect(Array.from(scipyBootstrapIndices(37, { nResamples: 11, batch: 4 }))).toEqual(Array.from(matrix));
    const rs = new RandomState(3);
    const given = scipyBootstrapRows(37, { nResamples: 11, randomState: rs });
    expect(collect(given).flat()).toEqual(Array.from(matrix));
    expect(collect(given).flat(), 'the stream goes on').toEqual(new RandomState(3).randint(0, 37, 37 * 22).slice(37 * 11));
  });
});

