// `llava-rad-cli study` (the standalone C++ CLI's study-level benchmark) on the tiny fixtures: the tiny LLaMA
// decoder (n_embd 256, real vocabulary) with test/fixtures/vision/tiny-vision-f32.gguf (projects to 256).
// Runs build/llava-rad-cli (or $LLAVA_RAD_BUILD_DIR/llava-rad-cli); on CPU, a few studies of 4 tokens.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findingsPromptText, loadModel } from '../lib/index.js';
import { makeTinyLlama, tinyLlamaPath } from './helpers/tiny-llama.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const exe = path.join(root, process.env.LLAVA_RAD_BUILD_DIR ?? 'build', 'llava-rad-cli');
const VISION = path.join(here, 'fixtures', 'vision', 'tiny-vision-f32.gguf');

function run(args: string[]) {
  const r = spawnSync(exe, args, { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function json(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

let decoder: string;
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-study-'));

beforeAll(async () => {
  decoder = await tinyLlamaPath('f32');
}, 300_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// The C++ CLI is built with the addon (CMakeLists.txt: LLAVA_RAD_CLI, on by default): missing is a failure
describe('llava-rad-cli study', () => {
  beforeAll(() => {
    expect(existsSync(exe), `${exe} was not built (npm run build:native, or set LLAVA_RAD_BUILD_DIR)`).toBe(true);
  });

  const base = () => ['study', '--model', decoder, '--mmproj', VISION, '--threads', '2', '--max-tokens', '4', '--latency-runs', '1'];

  it('P=1: every study generates exactly T tokens; the JSON fields; the official prompt split around the image rows', async () => {
    const r = run([...base(), '--studies', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = json(r.stdout);
    expect(j).toMatchObject({
      command: 'study',
      backend: 'CPU',
      studies: 2,
      parallel: 1,
      max_tokens: 4,
      prompt_tokens: 60,
      image_rows: 1369,
      n_prompt: 60 + 1369,
      ctx_per_study: 2048,
      vision_batch: 1,
      latency_runs: 1,
      generated_tokens: 8,
      expected_tokens: 8,
      overlap: 1,
      model: { architecture: 'llama', n_embd: 256 },
      vision: { n_patches: 1369, n_out: 256 },
    });
    for (const k of ['decoder_load_ms', 'vision_load_ms', 'vision_ms_per_image_b1', 'vision_ms_per_image_bp', 'ttft_ms', 'prefill_ms',
      'study_ms_p1', 'decode_tok_s_p1', 'wall_ms', 'ms_per_study', 'studies_per_hour', 'gen_tok_s_wall', 'decode_tok_s_aggregate',
      'decode_tok_s_per_study', 'study_ms_median', 'study_ms_max', 'ttft_ms_parallel', 'vision_ms_per_image_in_run']) {
      expect(typeof j[k], k).toBe('number');
      expect(j[k] as number, k).toBeGreaterThan(0);
    }
    expect(j.studies_per_hour as number).toBeCloseTo(2 / ((j.wall_ms as number) / 3_600_000), 3);
    expect(j.ttft_ms as number).toBeLessThanOrEqual(j.study_ms_p1 as number);
    expect(j.vision_batches).toBe(2);

    // the prompt: the official text's ids, [BOS] + the part before <image>, then the part after it, fitted to 60
    const before = j.prompt_token_ids_before as number[];
    const after = j.prompt_token_ids_after as number[];
    expect(before.length + after.length).toBe(60);
    expect(j.prompt_tokens_before).toBe(before.length);
    expect(before.length).toBeGreaterThan(30);
    expect(after.length).toBeGreaterThan(15);
    const m = await loadModel({ model: decoder, threads: 2 });
    try {
      const [p0, p1] = findingsPromptText().split('<image>');
      const t0 = m.tokenize(p0!, { addBos: true });
      const t1 = m.tokenize(p1!, { addBos: false });
      expect(before[0]).toBe(1);
      expect(before.slice(0, t0.length)).toEqual(t0);
      expect(after.slice(0, t1.length)).toEqual(t1);
      expect(after.slice(0, 2)).toEqual([29871, 13]);
    } finally {
      await m.dispose();
    }

    // without --json: a readable summary
    const t = run([...base(), '--studies', '1', '--latency-runs', '0', '--prompt-tokens', '20']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/4 tokens generated \(4 expected\)/);
    expect(t.stdout).toMatch(/studies\/hour/);
  }, 120_000);

  it('P=2: continuous batching of 3 studies, vision batches of 2; --overlap 0 and a short prompt', () => {
    const r = run([...base(), '--studies', '3', '--parallel', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = json(r.stdout);
    expect(j).toMatchObject({ studies: 3, parallel: 2, vision_batch: 2, generated_tokens: 12, expected_tokens: 12, vision_batches: 2 });
    expect(j.n_ctx as number).toBeGreaterThanOrEqual(2 * 2048);

    const w = run([...base(), '--studies', '2', '--parallel', '2', '--overlap', '0', '--latency-runs', '0', '--prompt-tokens', '5',
      '--ctx-per-study', '1400', '--flash-attn', '1', '--json']);
    expect(w.code, w.stderr).toBe(0);
    const k = json(w.stdout);
    expect(k).toMatchObject({ generated_tokens: 8, prompt_tokens: 5, overlap: 0, flash_attn: 1, latency_runs: 0, ttft_ms: null, vision_batches: 1 });
    expect((k.prompt_token_ids_before as number[]).length + (k.prompt_token_ids_after as number[]).length).toBe(5);
  }, 120_000);

  it('bad arguments exit 2 with one line; a vision file of another width is refused', async () => {
    const narrow = path.join(tmp, 'narrow.gguf');
    await makeTinyLlama({ path: narrow, type: 'f32', nEmbd: 128, nFf: 256, nLayer: 1, nHead: 2, nHeadKv: 2 });
    const cases: [string[], RegExp][] = [
      [['study', '--model', decoder], /--mmproj FILE.gguf is required/],
      [['study', '--mmproj', VISION], /--model FILE.gguf is required/],
      [['study', '--model', decoder, '--mmproj', path.join(tmp, 'none.gguf')], /vision model file not found/],
      [[...base(), '--parallel', '0'], /--parallel must be an integer between 1 and 256, got '0'/],
      [[...base(), '--studies', 'x'], /--studies must be an integer/],
      [[...base(), '--max-tokens', '0'], /--max-tokens must be an integer/],
      [[...base(), '--overlap', '2'], /--overlap must be an integer between 0 and 1/],
      [[...base(), '--backend', 'metal'], /--backend must be one of/],
      [[...base(), '--parallel', '256', '--ctx-per-study', '8192'], /at most 1048576 context cells/],
      [[...base(), '--ctx-per-study', '50'], /--ctx-per-study 50 cannot hold/],
      [[...base(), '--ctx-per-study', '1000'], /--ctx-per-study 1000 is too small: a study needs 60 prompt tokens \+ 1369 image rows \+ 4/],
      [[...base(), '--bogus'], /unknown option '--bogus'/],
      [['study', '--model', narrow, '--mmproj', VISION], /projects to 256-wide rows but the decoder's n_embd is 128/],
    ];
    for (const [args, re] of cases) {
      const r = run(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stdout).toBe('');
    }
  }, 120_000);
});
