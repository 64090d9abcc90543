// README: "quantization run on worker threads (...); the output is byte-identical for any count".
// - convertRelease on the committed tiny release with 1 and with 2 worker threads: every output file has the same
//   bytes (sha256), for the f16, q8_0 and q4_k_m decoders and the f16 and f32 vision towers;
// - the tiny release's tensors are each one work block, so the row-block split that a 7B conversion meets (blocks
//   of up to CHUNK_VALUES values, more blocks than threads) is checked on the pool itself: tensors of 3 and more
//   blocks encoded as f16, q8_0, q6_K and q4_K, and a LoRA merge of 4 blocks, with 1 and with 3 threads;
// - the workers run in a process started with --input-type=module too (they inherit it, and their eval code is
//   then an ES module), with the same bytes as in this one.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { convertRelease, type ConvertType } from '../lib/convert/convert.js';
import { CHUNK_VALUES, ConvertPool } from '../lib/convert/workers.js';
import { GgmlType } from '../lib/gguf/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const REL = path.join(here, 'fixtures', 'release');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-convert-threads-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** every file of a folder: name -> sha256 */
function digests(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) out[f] = sha256(readFileSync(path.join(dir, f)));
  return out;
}

describe('convertRelease: the same bytes with 1 and 2 worker threads', () => {
  const cases: Array<[ConvertType, 'f16' | 'f32']> = [['f16', 'f32'], ['q8_0', 'f16'], ['q4_k_m', 'f16']];
  it.each(cases)('%s decoder, %s vision tower', async (type, visionType) => {
    const runs = [];
    for (const threads of [1, 2]) {
      const out = path.join(tmp, `${type}-${visionType}-${threads}`);
      await convertRelease({ base: path.join(REL, 'vicuna'), adapter: path.join(REL, 'llava-rad'), out, type, visionType, threads });
      runs.push(digests(out));
    }
    const files = Object.keys(runs[0]!);
    expect(files.filter((f) => f.endsWith('.gguf')), 'the decoder and the vision GGUF').toHaveLength(2);
    expect(files, 'the two GGUFs and llava-rad.json').toHaveLength(3);
    expect(runs[1], `sha256 of the ${files.length} files (${files.join(', ')}), 2 threads vs 1`).toEqual(runs[0]);
  }, 240_000);
});

describe('convertRelease in a process run with --input-type=module', () => {
  it('converts with its worker threads, to the same bytes as here', async () => {
    const here2 = path.join(tmp, 'esm-here');
    const child = path.join(tmp, 'esm-child');
    const options = { base: path.join(REL, 'vicuna'), adapter: path.join(REL, 'llava-rad'), type: 'q8_0' as const, visionType: 'f16' as const, threads: 2 };
    await convertRelease({ ...options, out: here2 });
    const code = `import { convertRelease } from ${JSON.stringify(path.join(here, '..', 'lib', 'convert', 'convert.ts'))};
      try { await convertRelease(${JSON.stringify({ ...options, out: child })}); console.log('converted'); }
      catch (e) { console.log(e.code + ': ' + e.message); }`;
    const r = spawnSync(process.execPath, ['--import', path.join(here, '..', 'scripts', 'ts-hooks.mjs'), '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 120_000 });
    // before the worker took its modules through import(): "INTERNAL: a converter worker failed: require is not defined in ES module scope"
    expect(r.stdout.trim().split('\n').pop(), r.stderr).toBe('converted');
    expect(digests(child), 'sha256 of the 3 files, child vs this process').toEqual(digests(here2));
  }, 240_000);
});

/** deterministic values in about [-2, 2) (a 32-bit LCG) */
function values(n: number, seed: number): Float32Array {
  const v = new Float32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    v[i] = x / 2 ** 30 - 2;
  }
  return v;
}

describe('ConvertPool: more blocks than threads, the same bytes with 1 and 3 threads', () => {
  const ROW = 4096;
  const ROWS = Math.floor(CHUNK_VALUES / ROW) * 3 + 52; // 3 full blocks and a short one
  const w = values(ROWS * ROW, 1);

  const encodeAll = async (threads: number, type: GgmlType): Promise<Uint8Array[]> => {
    const pool = new ConvertPool({ threads });
    try {
      return await Promise.all(pool.encode('w', type, w, ROW));
    } finally {
      await pool.close();
    }
  };

  it.each([
    ['f16', GgmlType.F16], ['q8_0', GgmlType.Q8_0], ['q6_K', GgmlType.Q6_K], ['q4_K', GgmlType.Q4_K],
  ] as const)('%s: a tensor of 4 blocks', async (_name, type) => {
    const one = await encodeAll(1, type);
    const three = await encodeAll(3, type);
    expect(one, 'blocks').toHaveLength(4);
    expect(three.map(sha256), `sha256 of the ${one.length} blocks, 3 threads vs 1`).toEqual(one.map(sha256));
    expect(one.reduce((a, b) => a + b.length, 0)).toBeGreaterThan(0);
  }, 120_000);

  it('a LoRA merge of 4 blocks', async () => {
    const out = 1024;
    const inn = 4096;
    const r = 16;
    const a = values(r * inn, 2).map((x) => x / 64);
    const b = values(out * r, 3).map((x) => x / 64);
    const merge = async (threads: number) => {
      const pool = new ConvertPool({ threads });
      try {
        return await pool.mergeLora(values(out * inn, 4), a, b, out, inn, r, 2);
      } finally {
        await pool.close();
      }
    };
    const one = await merge(1);
    const three = await merge(3);
    // the merge cuts rows into blocks of CHUNK_VALUES / 4 values: 4 blocks here
    expect(Math.ceil(out / Math.floor(CHUNK_VALUES / 4 / inn)), 'blocks').toBe(4);
    const bytes = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    expect(sha256(bytes(three)), `sha256 of ${out} x ${inn} merged values, 3 threads vs 1`).toBe(sha256(bytes(one)));
    // and the merge did something: fp16(w + 2 * B @ A) differs from w
    const w0 = values(out * inn, 4);
    let changed = 0;
    for (let i = 0; i < w0.length; i++) if (one[i] !== w0[i]) changed++;
    expect(changed, `merged values different from w, of ${w0.length}`).toBeGreaterThan(w0.length / 2);
  }, 120_000);
});
