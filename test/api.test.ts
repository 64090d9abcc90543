// The public API (lib/index.ts): argument validation, errors, the addon loader, cancellation, disposal,
// concurrency and the event loop. Engine-backed tests use the shared tiny LLaMA (real vocabulary, random
// weights); the validation tests run before any engine call.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LlavaRadError,
  buildInfo,
  isLlavaRadError,
  loadModel,
  quantize,
  typeFromName,
  typeRowBytes,
  type LlamaModel,
} from '../lib/index.js';
import { PREBUILT_SYSTEM, addonPath, loadFailure, native, platformPackages } from '../lib/native.js';
import { validateGenerateOptions, validateLoadOptions } from '../lib/options.js';
import { SlotQueue } from '../lib/queue.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LIMITS = { nVocab: 32000, contextSize: 4096 };

/** the error a function throws (sync) */
function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

function expectCode(e: unknown, code: string, message?: string | RegExp): void {
  expect(e).toBeInstanceOf(LlavaRadError);
  expect((e as LlavaRadError).name).toBe('LlavaRadError');
  expect((e as LlavaRadError).code).toBe(code);
  if (typeof message === 'string') expect((e as Error).message).toBe(message);
  else if (message) expect((e as Error).message).toMatch(message);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- no engine needed ------------------------------------------------------------------------------------

describe('LlavaRadError', () => {
  it('is an Error with a stable code and name', () => {
    const e = new LlavaRadError('BAD_GGUF', 'nope');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('LlavaRadError');
    expect(e.code).toBe('BAD_GGUF');
    expect(isLlavaRadError(e, 'BAD_GGUF')).toBe(true);
    expect(isLlavaRadError(e, 'IO')).toBe(false);
    expect(String(e)).toBe('LlavaRadError: nope');
  });
});

describe('option validation (before the engine)', () => {
  it('loadModel rejects bad options with INVALID_ARGUMENT and says what came', async () => {
    expectCode(await rejection(loadModel(undefined as never)), 'INVALID_ARGUMENT', /loadModel options must be an object/);
    expectCode(await rejection(loadModel({} as never)), 'INVALID_ARGUMENT', 'model must be the path of a GGUF file (a non-empty string), got undefined');
    expectCode(await rejection(loadModel({ model: 42 } as never)), 'INVALID_ARGUMENT', /got 42$/);
    expectCode(await rejection(loadModel({ model: 'x.gguf', parallel: 0 })), 'INVALID_ARGUMENT', 'parallel must be an integer between 1 and 256, got 0');
    expectCode(await rejection(loadModel({ model: 'x.gguf', threads: 1.5 })), 'INVALID_ARGUMENT', 'threads must be an integer between 1 and 1024, got 1.5');
    expectCode(await rejection(loadModel({ model: 'x.gguf', kvCacheType: 'q4' as never })), 'INVALID_ARGUMENT', "kvCacheType must be one of 'f16', 'q8_0', 'f32', 'auto', got \"q4\"");
    expectCode(await rejection(loadModel({ model: 'x.gguf', backend: 'metal' as never })), 'INVALID_ARGUMENT', /backend must be one of 'auto', 'cpu', 'cuda'/);
    expectCode(await rejection(loadModel({ model: 'x.gguf', mmap: 'yes' as never })), 'INVALID_ARGUMENT', 'mmap must be a boolean, got "yes"');
    expectCode(await rejection(loadModel({ model: 'x.gguf', contextSise: 5 } as never)), 'INVALID_ARGUMENT', /unknown option 'contextSise'.*did you mean 'contextSize'/);
    expect(validateLoadOptions({ model: 'a.gguf' })).toMatchObject({ backend: 'auto', parallel: 1, kvCacheType: 'f16', mmap: false });
  });

  it("kvCacheType 'auto' gives weights of 8 bits or more an f32 cache and 4-bit weights an f16 one", async () => {
    const cases = [['f32', 'f32'], ['f16', 'f32'], ['q8_0', 'f32'], ['q4_k', 'f16'], ['q4_0', 'f16']] as const;
    for (const [type, kv] of cases) {
      const m = await loadModel({ model: await tinyLlamaPath(type), threads: 1, contextSize: 256, kvCacheType: 'auto' });
      try {
        expect({ type, kv: m.kvCacheType }).toEqual({ type, kv }); // the engine's resolved cache type
      } finally {
        await m.dispose();
      }
    }
    const m = await loadModel({ model: await tinyLlamaPath('q8_0'), threads: 1, contextSize: 256 });
    try {
      expect(m.kvCacheType).toBe('f16'); // loadModel's default stays llama.cpp's
    } finally {
      await m.dispose();
    }
  }, 60_000);

  it('generate options are checked with clear messages', () => {
    const v = (o: unknown) => thrown(() => validateGenerateOptions(o, LIMITS));
    expectCode(v({ maxTokens: -3 }), 'INVALID_ARGUMENT', 'maxTokens must be an integer between 1 and 4096, got -3');
    expectCode(v({ maxTokens: 2.5 }), 'INVALID_ARGUMENT', /maxTokens must be an integer/);
    expectCode(v({ maxTokens: '10' }), 'INVALID_ARGUMENT', 'maxTokens must be an integer between 1 and 4096, got "10"');
    expectCode(v({ temperature: -1 }), 'INVALID_ARGUMENT', 'temperature must be a number between 0 and 100, got -1');
    expectCode(v({ temperature: NaN }), 'INVALID_ARGUMENT', /got NaN/);
    expectCode(v({ topP: 0 }), 'INVALID_ARGUMENT', 'topP must be a number in (0, 1], got 0');
    expectCode(v({ topP: 1.5 }), 'INVALID_ARGUMENT', /topP/);
    expectCode(v({ topK: -1 }), 'INVALID_ARGUMENT', 'topK must be an integer between 0 and 32000, got -1');
    expectCode(v({ seed: -1 }), 'INVALID_ARGUMENT', /seed must be an integer/);
    expectCode(v({ signal: {} }), 'INVALID_ARGUMENT', 'signal must be an AbortSignal, got an object');
    expectCode(v({ onToken: 'x' }), 'INVALID_ARGUMENT', 'onToken must be a function, got "x"');
    expectCode(v({ ignoreEos: 1 }), 'INVALID_ARGUMENT', 'ignoreEos must be a boolean, got 1');
    expectCode(v({ maxToken: 5 }), 'INVALID_ARGUMENT', /unknown option 'maxToken' for generate \(did you mean 'maxTokens'\?\)/);
    expectCode(v(5), 'INVALID_ARGUMENT', 'generate options must be an object, got 5');
    expect(validateGenerateOptions(undefined, LIMITS)).toMatchObject({ maxTokens: 256, temperature: 0, topK: 0, topP: 1, seed: 0 });
    expect(validateGenerateOptions({ seed: 2n ** 63n }, LIMITS).seed).toBe(2n ** 63n);
  });

  it('the slot queue is FIFO, honours capacity and aborts waiters', async () => {
    const q = new SlotQueue(2);
    const order: string[] = [];
    const r1 = await q.acquire(1);
    const r2 = await q.acquire(1);
    expect(q.inUse).toBe(2);
    const ac = new AbortController();
    const pa = q.acquire(1).then((r) => { order.push('a'); return r; });
    const pb = q.acquire(1, ac.signal);
    const pc = q.acquire(2).then((r) => { order.push('c'); return r; });
    ac.abort();
    expectCode(await rejection(pb), 'ABORTED');
    r1();
    const ra = await pa;
    expect(order).toEqual(['a']);
    r2();
    ra();
    (await pc)();
    expect(order).toEqual(['a', 'c']);
    expect(q.inUse).toBe(0);
    q.close(new LlavaRadError('DISPOSED', 'closed'));
    expectCode(await rejection(q.acquire(1)), 'DISPOSED');
  });
});

describe('addon loader', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-api-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  function runWithAddon(addon: string, code: string) {
    const r = spawnSync(process.execPath, ['--import', path.join(root, 'scripts/ts-hooks.mjs'), '--input-type=module', '-e', code], {
      cwd: root,
      // LLAVA_RAD_BINARY: the name the loader reads first (a value the suite runs under must not win)
      env: { ...process.env, LLAVA_RAD_BINARY: addon },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { ...r, json: JSON.parse(r.stdout.trim().split('\n').pop() || 'null') as { code?: string; name?: string; message?: string } | null };
  }

  const probe = `
    import { buildInfo, LlavaRadError } from ${JSON.stringify(path.join(root, 'lib/index.ts'))};
    try { buildInfo(); console.log(JSON.stringify({ ok: true })); }
    catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, isClass: e instanceof LlavaRadError })); }`;

  it('a missing addon gives NATIVE_LOAD with build instructions', () => {
    const r = runWithAddon(path.join(tmp, 'missing.node'), probe);
    expect(r.status, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ name: 'LlavaRadError', code: 'NATIVE_LOAD', isClass: true });
    expect(r.json!.message).toMatch(/was not found at .*missing\.node/);
    expect(r.json!.message).toContain('npm run build:native');
  });

  it('a bogus addon file gives NATIVE_LOAD (the process does not crash)', () => {
    const bogus = path.join(tmp, 'bogus.node');
    writeFileSync(bogus, 'this is not a shared library');
    const r = runWithAddon(bogus, probe);
    expect(r.status, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ name: 'LlavaRadError', code: 'NATIVE_LOAD' });
    expect(r.json!.message).toMatch(/could not be loaded/);
    expect(r.json!.message).toContain('npm run build:native');
  });

  it('the platform packages tried: a CUDA 13, then a CUDA 12 package before the CPU one on x86-64 Linux only', () => {
    expect(platformPackages('linux', 'x64')).toEqual(['llava-rad-linux-x64-cuda13', 'llava-rad-linux-x64-cuda12', 'llava-rad-linux-x64']);
    expect(platformPackages('linux', 'arm64')).toEqual(['llava-rad-linux-arm64']);
    expect(platformPackages('darwin', 'arm64')).toEqual(['llava-rad-darwin-arm64']);
  });

  it('a prebuilt addon that meets an older glibc or libstdc++ says what it needs and to build from source', () => {
    const msg = "/app/node_modules/llava-rad-linux-x64/Release/llava_rad.node: /lib64/libstdc++.so.6: version `GLIBCXX_3.4.29' not found (required by /app/x.node)";
    const fromPackage = loadFailure(msg, 'the platform package llava-rad-linux-x64');
    expect(fromPackage).toMatch(/^could not be loaded: .*GLIBCXX_3\.4\.29' not found/);
    expect(fromPackage).toContain(PREBUILT_SYSTEM);
    expect(fromPackage).toContain('build from source');
    // a source build or another failure: the loader's message alone
    expect(loadFailure(msg, 'a source build')).toBe(`could not be loaded: ${msg}`);
    expect(loadFailure('libgomp.so.1: cannot open shared object file\nmore', 'the platform package llava-rad-linux-arm64'))
      .toBe('could not be loaded: libgomp.so.1: cannot open shared object file');
  });

  it('loadModel also reports NATIVE_LOAD (after validating its options)', () => {
    const code = `
      import { loadModel } from ${JSON.stringify(path.join(root, 'lib/index.ts'))};
      loadModel({ model: 'x.gguf' }).then(() => console.log('null'), (e) => console.log(JSON.stringify({ code: e.code, name: e.name })));`;
    const r = runWithAddon(path.join(tmp, 'missing.node'), code);
    expect(r.json).toMatchObject({ code: 'NATIVE_LOAD', name: 'LlavaRadError' });
  });
});

describe('quantize helpers and the raw addon', () => {
  it('typeFromName / typeRowBytes / quantize / buildInfo', () => {
    expect(typeFromName('f32')).toBe(0);
    expect(typeFromName('q8_0')).toBe(8);
    expect(typeFromName('nope')).toBe(-1);
    expect(typeRowBytes(8, 64)).toBe(68);
    const data = Float32Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i));
    const q = quantize(8, data, 2, 64);
    expect(q.byteLength).toBe(136);
    expect(Buffer.compare(quantize(0, data, 2, 64), Buffer.from(data.buffer))).toBe(0);
    expect(buildInfo()).toMatch(/llava-rad/);
  });

  it('bad quantize arguments are LlavaRadErrors, never crashes', () => {
    const data = new Float32Array(64);
    expectCode(thrown(() => quantize(8, data, 2, 64)), 'INVALID_ARGUMENT', /nRows \* nPerRow = 128 floats, got 64/);
    expectCode(thrown(() => quantize(8, data, 1, 30)), 'INVALID_ARGUMENT');
    expectCode(thrown(() => quantize(8, [1, 2] as never, 1, 2)), 'INVALID_ARGUMENT', /src must be a Float32Array, got an array/);
    expectCode(thrown(() => quantize(9999, data, 1, 64)), 'INVALID_ARGUMENT');
    expectCode(thrown(() => typeFromName(5 as never)), 'INVALID_ARGUMENT', /name must be a string/);
  });

  it('the addon checks every JS type itself (TypeError / RangeError with a code)', async () => {
    const a = native();
    const cases: Array<() => unknown> = [
      () => a.quantize('x' as never, new Float32Array(32), 1, 32),
      () => a.quantize(8, new Float32Array(32), 1.5, 32),
      () => a.quantize(8, new Float32Array(32), 1, -32),
      () => a.typeFromName({} as never),
      () => a.typeRowBytes(8, NaN),
      () => a.loadModel(5 as never),
      () => a.loadModel('x', 5 as never),
      () => a.loadModel('x', { backend: 5 } as never),
      () => a.loadModel('x', { threads: -1 }),
      () => a.loadModel(''),
      () => new (a as unknown as { Model: new (...x: unknown[]) => unknown }).Model(),
      () => new (a as unknown as { Context: new (...x: unknown[]) => unknown }).Context({}),
    ];
    for (const f of cases) {
      const e = thrown(f) as Error & { code?: string };
      expect(e instanceof TypeError || e instanceof RangeError, String(e)).toBe(true);
      expect(e.code).toBe('LR_ERR_INVALID_ARGUMENT');
    }
    // engine errors reject with the status name and the engine's message
    const e = (await rejection(a.loadModel(path.join(root, 'does-not-exist.gguf')))) as Error & { code?: string };
    expect(e.code).toBe('LR_ERR_IO');
  });
});

// ---- engine-backed ---------------------------------------------------------------------------------------

describe('LlamaModel on the tiny LLaMA', () => {
  let file: string;
  let model: LlamaModel;

  beforeAll(async () => {
    file = await tinyLlamaPath('f32');
    model = await loadModel({ model: file, threads: 2, contextSize: 512, parallel: 2 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('reports the model info and settings', () => {
    expect(model.info).toMatchObject({ architecture: 'llama', nVocab: 32000, bosToken: 1, eosToken: 2, addBos: true });
    expect(model.info.nEmbd).toBeGreaterThan(0);
    expect(Object.isFrozen(model.info)).toBe(true);
    expect(model.parallel).toBe(2);
    expect(model.contextSize).toBe(512);
  });

  it('engine failures of loadModel map to codes', async () => {
    expectCode(await rejection(loadModel({ model: path.join(root, 'no-such-file.gguf') })), 'IO');
    const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-bad-'));
    try {
      const bad = path.join(tmp, 'bad.gguf');
      writeFileSync(bad, Buffer.from('GGUF\x03\x00\x00\x00garbage'));
      const e = await rejection(loadModel({ model: bad }));
      expectCode(e, 'BAD_GGUF');
      expect((e as LlavaRadError).status).toBe('LR_ERR_BAD_GGUF');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('tokenize / detokenize', () => {
    const ids = model.tokenize('Hello world', { addBos: true });
    expect(Array.isArray(ids)).toBe(true);
    expect(ids[0]).toBe(1);
    expect(model.tokenize('Hello world')[0]).not.toBe(1);
    expect(model.detokenize(ids.slice(1), { skipSpecial: true, removeLeadingSpace: true })).toBe('Hello world');
    expect(model.detokenize(ids.slice(1))).toBe(' Hello world');
    expectCode(thrown(() => model.tokenize(5 as never)), 'INVALID_ARGUMENT', 'text must be a string, got 5');
    expectCode(thrown(() => model.detokenize([1, 99999])), 'INVALID_ARGUMENT', 'ids[1] must be a token id between 0 and 31999, got 99999');
    expectCode(thrown(() => model.detokenize('abc' as never)), 'INVALID_ARGUMENT');
  });

  it('greedy generation is deterministic and reports what was fed', async () => {
    const a = await model.generate('The heart size is normal.', { maxTokens: 8, ignoreEos: true });
    const b = await model.generate('The heart size is normal.', { maxTokens: 8, ignoreEos: true });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).toHaveLength(8);
    expect(a.stopReason).toBe('max_tokens');
    expect(a.promptTokens).toEqual(model.tokenize('The heart size is normal.', { addBos: true }));
    expect(a.nPrompt).toBe(a.promptTokens.length);
    expect(a.text).toBe(model.detokenize(a.tokens, { skipSpecial: true }));
    for (const k of ['queueMs', 'promptMs', 'decodeMs'] as const) expect(a.timings[k]).toBeGreaterThanOrEqual(0);
    expect(a.logits).toBeUndefined();
  });

  it('prompt parts: tokens, text and embeddings; addBos rules', async () => {
    const byString = await model.generate('Hello', { maxTokens: 5, ignoreEos: true });
    const byParts = await model.generate([{ tokens: [1] }, { text: 'Hello' }], { maxTokens: 5, ignoreEos: true });
    expect(byParts.promptTokens).toEqual(byString.promptTokens);
    expect(byParts.tokens).toEqual(byString.tokens);
    const byIds = await model.generate(byString.promptTokens, { maxTokens: 5, ignoreEos: true });
    expect(byIds.tokens).toEqual(byString.tokens);
    const withBos = await model.generate([{ text: 'Hello' }], { maxTokens: 5, ignoreEos: true, addBos: true });
    expect(withBos.promptTokens).toEqual(byString.promptTokens);
    const noBos = await model.generate('Hello', { maxTokens: 1, addBos: false });
    expect(noBos.promptTokens[0]).not.toBe(1);
    const emb = await model.generate([{ tokens: [1] }, { embeddings: new Float32Array(model.info.nEmbd * 3).fill(0.01) }], { maxTokens: 2, ignoreEos: true });
    expect(emb.promptTokens).toEqual([1]);
    expect(emb.nPrompt).toBe(4);
  });

  it('bad prompts and options reject with INVALID_ARGUMENT / CONTEXT_FULL before the engine', async () => {
    expectCode(await rejection(model.generate('x', { maxTokens: -3 })), 'INVALID_ARGUMENT', 'maxTokens must be an integer between 1 and 512, got -3');
    expectCode(await rejection(model.generate('x', { maxTokens: 513 })), 'INVALID_ARGUMENT', 'maxTokens must be an integer between 1 and 512, got 513');
    expectCode(await rejection(model.generate([{ tokens: [1, 32000] }])), 'INVALID_ARGUMENT', 'prompt[0].tokens[1] must be a token id between 0 and 31999, got 32000');
    expectCode(await rejection(model.generate([{ embeddings: new Float32Array(7) }])), 'INVALID_ARGUMENT', /whole rows of \d+ floats/);
    expectCode(await rejection(model.generate([{ tokens: [1], text: 'x' } as never])), 'INVALID_ARGUMENT', /exactly one of the keys/);
    expectCode(await rejection(model.generate([])), 'INVALID_ARGUMENT', /prompt is empty/);
    expectCode(await rejection(model.generate('', { addBos: false })), 'INVALID_ARGUMENT', /prompt is empty/);
    expectCode(await rejection(model.generate(42 as never)), 'INVALID_ARGUMENT', /prompt must be/);
    expectCode(await rejection(model.generate(new Array(600).fill(100))), 'CONTEXT_FULL');
  });

  it('keepLogits returns one n_vocab row per generated token; evaluate() recomputes the same logits', async () => {
    // An f32 KV cache: with an f16 one, ggml's prompt path on arm64 multiplies the f16 keys by f32 queries (llamafile
    // sgemm) where one-token decoding rounds the queries to f16 first, and the logits differ by up to 5e-2 (at
    // logits near 100; measured under qemu-aarch64); x86-64 rounds them on both paths. Either is ggml's f16 cache.
    const m32 = await loadModel({ model: file, threads: 2, contextSize: 512, kvCacheType: 'f32' });
    try {
      const r = await m32.generate('No acute cardiopulmonary process.', { maxTokens: 4, ignoreEos: true, keepLogits: true });
      expect(r.logits).toHaveLength(4);
      for (let i = 0; i < 4; i++) {
        expect(r.logits![i]).toBeInstanceOf(Float32Array);
        expect(r.logits![i]!.length).toBe(m32.info.nVocab);
        const fresh = await m32.evaluate([...r.promptTokens, ...r.tokens.slice(0, i)]);
        let diff = 0;
        for (let k = 0; k < fresh.length; k++) diff = Math.max(diff, Math.abs(fresh[k]! - r.logits![i]![k]!));
        expect(diff, `step ${i} of 4`).toBeLessThan(1e-3);
      }
    } finally {
      await m32.dispose();
    }
  });

  it('onToken gives tokens in order with decoded increments that add up to the text', async () => {
    const events: { token: number; text: string; index: number }[] = [];
    const r = await model.generate('Hello', { maxTokens: 12, ignoreEos: true, onToken: (ev) => events.push(ev) });
    expect(events.map((e) => e.token)).toEqual(r.tokens);
    expect(events.map((e) => e.index)).toEqual(r.tokens.map((_, i) => i));
    expect(events.map((e) => e.text).join('')).toBe(r.text);
  });

  it('an onToken that throws cancels the generation and rejects with its error', async () => {
    const boom = new Error('boom');
    let n = 0;
    await expect(model.generate('Hello', { maxTokens: 200, ignoreEos: true, onToken: () => { if (++n === 2) throw boom; } })).rejects.toBe(boom);
    expect(n).toBeLessThan(10);
  });

  it('stream() yields the same tokens; its text adds up; break cancels', async () => {
    const ref = await model.generate('Hello', { maxTokens: 10, ignoreEos: true });
    const chunks = [];
    const s = model.stream('Hello', { maxTokens: 10, ignoreEos: true });
    for await (const c of s) chunks.push(c);
    expect(chunks.map((c) => c.token)).toEqual(ref.tokens);
    expect(chunks.map((c) => c.text).join('')).toBe(ref.text);
    expect((await s.result).tokens).toEqual(ref.tokens);

    let seen = 0;
    const s2 = model.stream('Hello', { maxTokens: 400, ignoreEos: true });
    for await (const _ of s2) if (++seen === 3) break;
    expectCode(await rejection(s2.result), 'ABORTED');
    // still usable afterwards
    expect((await model.generate('Hello', { maxTokens: 2, ignoreEos: true })).tokens).toEqual(ref.tokens.slice(0, 2));
  });

  it('an AbortSignal cancels mid-generation with ABORTED', async () => {
    const ac = new AbortController();
    let n = 0;
    const p = model.generate('Hello', {
      maxTokens: 400,
      ignoreEos: true,
      signal: ac.signal,
      onToken: () => { if (++n === 3) ac.abort(); },
    });
    const e = await rejection(p);
    expectCode(e, 'ABORTED');
    expect(n).toBeGreaterThanOrEqual(3);
    expect(n).toBeLessThan(40);
    // an already-aborted signal rejects at once
    expectCode(await rejection(model.generate('Hello', { signal: AbortSignal.abort() })), 'ABORTED');
  });

  it('concurrent calls: at most `parallel` in the engine, the rest FIFO, each result as if alone', async () => {
    const prompts = ['Hello', 'The lungs are clear.', 'No pleural effusion', 'Heart size normal', 'Hello there'];
    const alone = [];
    for (const p of prompts) alone.push((await model.generate(p, { maxTokens: 6, ignoreEos: true })).tokens);
    let maxActive = 0;
    const started: number[] = [];
    const together = await Promise.all(prompts.map((p, i) => model.generate(p, {
      maxTokens: 6,
      ignoreEos: true,
      onToken: (ev) => {
        if (ev.index === 0) started.push(i);
        maxActive = Math.max(maxActive, model.activeRequests);
      },
    })));
    expect(together.map((r) => r.tokens)).toEqual(alone);
    expect(maxActive).toBeLessThanOrEqual(2);
    expect(started.slice(2)).toEqual([2, 3, 4]);
    expect(model.activeRequests).toBe(0);
    expect(model.queuedRequests).toBe(0);
  });

  it('aborting a queued request removes it without disturbing the running ones', async () => {
    const ac = new AbortController();
    // state, not time: once both running requests have produced a token (neither can have finished: 30 each),
    // the third is in the queue
    let started = 0;
    let bothRunning!: () => void;
    const running2 = new Promise<void>((resolve) => (bothRunning = resolve));
    const first = (ev: { index: number }) => { if (ev.index === 0 && ++started === 2) bothRunning(); };
    const running = [
      model.generate('Hello', { maxTokens: 30, ignoreEos: true, onToken: first }),
      model.generate('Hi', { maxTokens: 30, ignoreEos: true, onToken: first }),
    ];
    const queued = model.generate('Hello', { maxTokens: 5, signal: ac.signal });
    await running2;
    expect(model.activeRequests).toBe(2);
    expect(model.queuedRequests).toBe(1);
    ac.abort();
    expectCode(await rejection(queued), 'ABORTED');
    const rs = await Promise.all(running);
    expect(rs.map((r) => r.tokens.length)).toEqual([30, 30]);
  });

  it('the event loop keeps running during generation', async () => {
    // counted in event-loop turns, not milliseconds: from the first token on, a chain of TURNS setImmediate
    // callbacks (one per turn) runs and then aborts the generation. Only an event loop that runs while the
    // generation is in flight gets there before its 400 tokens are done: the generation ends ABORTED, with the
    // chain complete. (Blocking the loop, it would resolve with 400 tokens and the chain not yet started.)
    const TURNS = 100;
    const ac = new AbortController();
    let turns = 0;
    let tokens = 0;
    const spin = () => {
      if (++turns === TURNS) ac.abort();
      else setImmediate(spin);
    };
    const p = model.generate('Hello', {
      maxTokens: 400,
      ignoreEos: true,
      signal: ac.signal,
      onToken: () => { if (++tokens === 1) setImmediate(spin); },
    });
    const e = await rejection(p);
    expect(turns, `event-loop turns while the generation was in flight (${tokens} tokens by then)`).toBe(TURNS);
    expectCode(e, 'ABORTED');
    expect(tokens).toBeGreaterThanOrEqual(1);
    expect(tokens).toBeLessThan(400);
  });
});

describe('dispose', () => {
  let file: string;
  beforeAll(async () => {
    file = await tinyLlamaPath('f32');
  });

  it('cancels running and queued generations with DISPOSED, is idempotent, and later calls throw DISPOSED', async () => {
    const model = await loadModel({ model: file, threads: 2, contextSize: 256, parallel: 1 });
    let tokens = 0;
    const running = model.generate('Hello', { maxTokens: 250, ignoreEos: true, onToken: () => { tokens++; } });
    const queued = model.generate('Hello', { maxTokens: 5 });
    running.catch(() => undefined);
    queued.catch(() => undefined);
    for (let i = 0; tokens < 2 && i < 2000; i++) await sleep(2);
    expect(tokens).toBeGreaterThanOrEqual(2);
    const d1 = model.dispose();
    const d2 = model.dispose();
    expect(d2).toBe(d1);
    expect(model.disposed).toBe(true);
    expectCode(await rejection(running), 'DISPOSED');
    expectCode(await rejection(queued), 'DISPOSED');
    await d1;
    expectCode(thrown(() => model.tokenize('x')), 'DISPOSED');
    expectCode(await rejection(model.generate('x')), 'DISPOSED');
    expectCode(await rejection(model.evaluate('x')), 'DISPOSED');
    await model.dispose();
  });

  it('Symbol.asyncDispose disposes', async () => {
    const model = await loadModel({ model: file, threads: 1, contextSize: 256 });
    await model[Symbol.asyncDispose]();
    expect(model.disposed).toBe(true);
  });

  it('the raw addon: disposing a model with a live context and a running request does not crash', async () => {
    const a = native();
    const m = await a.loadModel(file, { threads: 1 });
    const c = await m.createContext({ contextSize: 256 });
    // disposed once it has produced a token (not after a sleep): it is running then, with 249 tokens to go
    let firstToken!: () => void;
    const running = new Promise<void>((resolve) => (firstToken = resolve));
    const done = new Promise<{ status: string }>((resolve) => {
      c.submit([Int32Array.from([1, 15043])], { maxTokens: 250, ignoreEos: true }, () => firstToken(), resolve);
    });
    await running;
    await m.dispose();
    expect((await done).status).toBe('LR_ERR_CANCELLED');
    expect(c.disposed).toBe(true);
    expect((thrown(() => c.seqLength(0)) as { code?: string }).code).toBe('DISPOSED');
    expect((thrown(() => m.tokenize('x', false)) as { code?: string }).code).toBe('DISPOSED');
    c.cancel(1); // no-op once disposed
    await c.dispose();
    await m.dispose();
  });

  it('a worker thread terminated inside a synchronous call or with a load in flight does not abort the process', () => {
    // When the call returns, its result (or its error) can no longer reach JS. node-addon-api then throws a
    // second Napi::Error out of its own exception handler, which ends the whole process ("terminate called after
    // throwing an instance of 'Napi::Error'") unless the addon is built with NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS.
    // Run in a child process, so that a regression fails this test instead of killing the test runner.
    const workerSrc = `
      const { parentPort, workerData } = require('node:worker_threads');
      const a = require(workerData.addon);
      if (workerData.what === 'quantize') {
        const q8 = a.typeFromName('q8_0');
        const n = 4096, rows = 4096; // 16M floats: a long synchronous call
        const x = new Float32Array(n * rows).fill(0.5);
        parentPort.postMessage('start');
        for (;;) a.quantize(q8, x, rows, n);
      } else {
        const again = () => a.loadModel(workerData.model, { threads: 1 }).then((m) => m.dispose()).then(again, again);
        again();
        again();
        parentPort.postMessage('start');
      }`;
    const src = `
      const { Worker } = require('node:worker_threads');
      const data = ${JSON.stringify({ addon: addonPath(), model: file })};
      (async () => {
        let n = 0;
        for (const what of ['quantize', 'load']) {
          for (let i = 0; i < 4; i++) {
            const w = new Worker(${JSON.stringify(workerSrc)}, { eval: true, workerData: { ...data, what } });
            await new Promise((r) => w.once('message', r));
            await new Promise((r) => setTimeout(r, 5 + 30 * i));
            await w.terminate();
            n++;
          }
        }
        console.log('terminated ' + n + ' workers');
      })();`;
    const r = spawnSync(process.execPath, ['-e', src], { encoding: 'utf8', timeout: 110_000 });
    expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
    expect(r.stdout.trim()).toBe('terminated 8 workers');
  });

  it('a worker thread ended mid-generation (env teardown) and process.exit() mid-generation do not crash', async () => {
    const addon = JSON.stringify(addonPath()); // the addon the library loads (a platform package or build/)
    const src = `
      const { parentPort } = require('node:worker_threads');
      const a = require(${addon});
      (async () => {
        const m = await a.loadModel(${JSON.stringify(file)}, { threads: 1 });
        const c = await m.createContext({ contextSize: 256, parallel: 2 });
        for (let k = 0; k < 2; k++) c.submit([Int32Array.from([1, 15043])], { maxTokens: 250, ignoreEos: true }, () => {}, () => {});
        parentPort.postMessage('running');
      })();`;
    const { Worker } = await import('node:worker_threads');
    for (let i = 0; i < 3; i++) {
      const w = new Worker(src, { eval: true });
      await new Promise((r) => w.once('message', r));
      await sleep(10 + 10 * i);
      await w.terminate();
    }
    // process.exit() runs C++ static destructors: the scheduler threads must be stopped first
    for (let i = 0; i < 6; i++) {
      const r = spawnSync(process.execPath, ['-e', `
        const a = require(${addon});
        a.loadModel(${JSON.stringify(file)}, { threads: 1 }).then(async (m) => {
          const c = await m.createContext({ contextSize: 256 });
          c.submit([Int32Array.from([1, 15043])], { maxTokens: 250, ignoreEos: true }, () => {}, () => {});
          setTimeout(() => process.exit(3), ${10 + 7 * i});
        });`], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, `${r.signal ?? ''} ${r.stderr}`).toBe(3);
    }
  });
});
