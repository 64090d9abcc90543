// The `llava-rad` CLI (dist/cli.js, built by `npm run build:ts` / pretest) and the standalone C++ CLI
// (build/llava-rad-cli): exit codes, one-line errors, and the --json shape.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../lib/index.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cli.js');
const cppCli = path.join(root, process.env.LLAVA_RAD_BUILD_DIR ?? 'build', 'llava-rad-cli');
const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;

function run(args: string[], env: NodeJS.ProcessEnv = {}, exe?: string) {
  const r = exe
    ? spawnSync(exe, args, { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } })
    : spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as Record<string, unknown>;
}

let model: string;
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-cli-'));

beforeAll(async () => {
  if (!existsSync(cli)) {
    const b = spawnSync('npm', ['run', 'build:ts'], { cwd: root, encoding: 'utf8' });
    if (b.status !== 0) throw new Error(`could not build dist/: ${b.stderr}`);
  }
  model = await tinyLlamaPath('f32');
}, 300_000);

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('llava-rad (Node CLI)', () => {
  it('starts with a node shebang', () => {
    expect(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('--help, --version, and usage errors (exit 2, one line)', () => {
    const h = run(['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/Usage: llava-rad <command>/);
    expect(h.stdout).toMatch(/generate/);
    expect(run(['generate', '--help']).stdout).toMatch(/--max-tokens/);
    const v = run(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toBe(`llava-rad ${version}`);

    expect(run([]).code).toBe(2);
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['generate', '--prompt', 'x'], /--model FILE.gguf is required/],
      [['generate', '--model', path.join(tmp, 'none.gguf'), '--prompt', 'x'], /model file not found/],
      [['generate', '--model', '/dev/zero', '--prompt', 'x'], /--model must be a file, got the character device \/dev\/zero/],
      [['generate', '--model', tmp, '--prompt', 'x'], /--model must be a file, got the folder /],
      [['generate', '--model', 'MODEL', '--max-tokens', '-3', '--prompt', 'x'], /--max-tokens must be an integer between 1 and 4096, got '-3'/],
      [['generate', '--model', 'MODEL', '--max-tokens', 'abc', '--prompt', 'x'], /--max-tokens must be an integer/],
      [['generate', '--model', 'MODEL', '--temperature', '-1', '--prompt', 'x'], /--temperature must be a number/],
      [['generate', '--model', 'MODEL', '--top-p', '0', '--prompt', 'x'], /--top-p must be a number in \(0, 1\]/],
      [['generate', '--model', 'MODEL', '--threads', '0', '--prompt', 'x'], /--threads must be an integer between 1 and 1024/],
      [['generate', '--model', 'MODEL'], /--prompt TEXT is required/],
      [['generate', '--model', 'MODEL', '--prompt', 'x', '--bogus'], /Unknown option '--bogus'/],
      [['generate', '--model', 'MODEL', '--prompt', 'x', 'extra'], /extra/],
    ];
    for (const [args, re] of cases) {
      const r = run(args.map((a) => (a === 'MODEL' ? model : a)));
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(re);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
      expect(r.stdout).toBe('');
    }
  });

  it('engine errors: message with the code, exit 1', () => {
    const bad = path.join(tmp, 'bad.gguf');
    writeFileSync(bad, 'not a gguf at all');
    const r = run(['generate', '--model', bad, '--prompt', 'x']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^llava-rad: error \[BAD_GGUF\]: /);
    // the older name alone (LLAVA_RAD_BINARY, read first, is cleared: spawn drops undefined values)
    const n = run(['generate', '--model', model, '--prompt', 'x'], { LLAVA_RAD_BINARY: undefined, LLAVA_RAD_ADDON: path.join(tmp, 'nope.node') });
    expect(n.code).toBe(1);
    expect(n.stderr).toMatch(/error \[NATIVE_LOAD\]: the native addon was not found at .*nope\.node[^]*LLAVA_RAD_ADDON: [^]*npm run build:native/);
  });

  it('generate --json: the last line is one JSON object with the contract fields', async () => {
    const r = run(['generate', '--model', model, '--prompt', 'No acute cardiopulmonary process.', '--max-tokens', '8', '--json', '--threads', '2']);
    expect(r.code, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j).toMatchObject({ stop_reason: expect.stringMatching(/^(eos|max_tokens)$/), text: expect.any(String) });
    const promptTokens = j.prompt_tokens as number[];
    const tokens = j.tokens as number[];
    expect(promptTokens[0]).toBe(1);
    expect(j.n_prompt).toBe(promptTokens.length);
    expect(tokens.length).toBeLessThanOrEqual(8);
    expect(j.n_generated).toBe(tokens.length);
    expect(typeof j.prompt_ms).toBe('number');
    expect(typeof j.decode_ms).toBe('number');
    expect(j.model).toMatchObject({ architecture: 'llama', n_vocab: 32000 });

    // the same as the library (greedy by default, BOS prepended)
    const m = await loadModel({ model, threads: 2 });
    try {
      const lib = await m.generate('No acute cardiopulmonary process.', { maxTokens: 8 });
      expect(promptTokens).toEqual(lib.promptTokens);
      expect(tokens).toEqual(lib.tokens);
      expect(j.text).toBe(lib.text);
    } finally {
      await m.dispose();
    }
  });

  it('without --json the text streams to stdout', () => {
    const j = lastJson(run(['generate', '--model', model, '--prompt', 'Hello', '--max-tokens', '6', '--ignore-eos', '--json']).stdout);
    const r = run(['generate', '--model', model, '--prompt', 'Hello', '--max-tokens', '6', '--ignore-eos']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${j.text as string}\n`);
  });

  it('SIGINT stops a generation: exit 130', async () => {
    const child = spawn(process.execPath, [cli, 'generate', '--model', model, '--prompt', 'Hello', '--max-tokens', '500', '--ignore-eos', '--ctx', '512'], { cwd: root });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    for (let i = 0; out.length === 0 && i < 3000; i++) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code, err).toBe(130);
    expect(err).toMatch(/interrupted/);
  });

  it('info prints the build, the CPU code in use and the hyperparameters', () => {
    const r = run(['info', '--model', model]);
    expect(r.code, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.model).toMatchObject({ architecture: 'llama', n_vocab: 32000, bos_token: 1, eos_token: 2 });
    const cpu = j.cpu as { variant: string; variants: string[]; kernels: string };
    expect(cpu.variants).toContain(cpu.variant);
    expect(['vnni', 'ggml']).toContain(cpu.kernels);
    expect(j.build).toMatch(new RegExp(`CPU variant: ${cpu.variant}; CPU kernels: ${cpu.kernels}`));
    // which addon file was loaded: this checkout's source build (no platform package is installed here), unless
    // the run names one
    const named = process.env.LLAVA_RAD_BINARY ? 'LLAVA_RAD_BINARY' : process.env.LLAVA_RAD_ADDON ? 'LLAVA_RAD_ADDON' : undefined;
    if (named) expect(j.binary).toMatchObject({ source: named });
    else expect(j.binary).toEqual({ file: path.join(root, 'build', 'Release', 'llava_rad.node'), source: 'a source build' });
    const bare = run(['info']);
    expect(bare.code, bare.stderr).toBe(0);
    expect(lastJson(bare.stdout)).toEqual({ build: j.build, binary: j.binary, cpu: j.cpu });
  });
});

// The C++ CLI is built with the addon (CMakeLists.txt: LLAVA_RAD_CLI, on by default): missing is a failure
describe('llava-rad-cli (C++)', () => {
  beforeAll(() => {
    expect(existsSync(cppCli), `${cppCli} was not built (npm run build:native, or set LLAVA_RAD_BUILD_DIR)`).toBe(true);
  });

  it('usage errors exit 2, engine errors exit 1', () => {
    expect(run([], {}, cppCli).code).toBe(2);
    expect(run(['--version'], {}, cppCli).code).toBe(0);
    for (const args of [
      ['generate', '--model', model],
      ['generate', '--model', model, '--prompt', 'x', '--max-tokens', '-3'],
      ['generate', '--model', model, '--prompt', 'x', '--max-tokens', '12abc'],
      ['generate', '--model', model, '--prompt', 'x', '--backend', 'metal'],
      ['generate', '--model', model, '--prompt'],
      ['generate', '--model', model, '--prompt', 'x', '--nope'],
      ['info', '--model'],
    ]) {
      const r = run(args, {}, cppCli);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
    const bad = path.join(tmp, 'bad2.gguf');
    writeFileSync(bad, 'GGUF nonsense');
    const r = run(['generate', '--model', bad, '--prompt', 'x'], {}, cppCli);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error \[BAD_GGUF\]/);
  });

  it('generate --json gives the same fields and tokens as the Node CLI', () => {
    const args = ['generate', '--model', model, '--prompt', 'The lungs are clear.', '--max-tokens', '8', '--json', '--threads', '2'];
    const c = run(args, {}, cppCli);
    expect(c.code, c.stderr).toBe(0);
    const n = run(args);
    const cj = lastJson(c.stdout);
    const nj = lastJson(n.stdout);
    for (const k of ['prompt_tokens', 'tokens', 'text', 'n_prompt', 'stop_reason']) expect(cj[k], k).toEqual(nj[k]);
    expect(typeof cj.prompt_ms).toBe('number');
    expect(typeof cj.decode_ms).toBe('number');
    expect(Object.keys(cj).sort()).toEqual(Object.keys(nj).sort());
  });

  it('a generation that fills the context ends once with context_full (twice in one process, --warmup)', () => {
    // ~741 prompt tokens in 768 cells: the cache fills while decoding. The scheduler once finished such a
    // request twice; the second finish reached the next synchronous generation and hung it.
    const prompt = 'a '.repeat(740).trim();
    for (let i = 0; i < 3; i++) {
      const r = run(['generate', '--model', model, '--prompt', prompt, '--ctx', '768', '--max-tokens', '128', '--ignore-eos',
        '--warmup', '--json', '--threads', '2'], {}, cppCli);
      expect(r.code, r.stderr).toBe(0);
      const j = lastJson(r.stdout);
      expect(j.stop_reason).toBe('context_full');
      expect((j.n_prompt as number) + (j.tokens as number[]).length).toBeLessThanOrEqual(769);
    }
  }, 200_000);
});
