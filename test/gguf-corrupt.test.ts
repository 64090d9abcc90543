// Malformed GGUF files must be rejected with a LlavaRadError (BAD_GGUF; IO for paths that are not
// readable files; INVALID_ARGUMENT for arguments that are not paths), never crash the process, and leave
// the library usable. The cases are in test/helpers/corrupt-gguf.ts.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlavaRadError, loadModel } from '../lib/index.js';
import { corruptCases, corruptionBase, rawKv, rebuilt, removeCaseOutput, type CorruptionBase } from './helpers/corrupt-gguf.js';
import { GgufValueType } from '../lib/gguf/types.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const LOAD = { threads: 1, contextSize: 64 } as const;

let dir: string;
let base: CorruptionBase;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'llava-rad-corrupt-'));
  base = await corruptionBase(dir);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function loadError(model: unknown): Promise<unknown> {
  try {
    const m = await loadModel({ model, ...LOAD } as Parameters<typeof loadModel>[0]);
    await m.dispose();
    return undefined;
  } catch (e) {
    return e;
  }
}

function describeError(e: unknown): string {
  if (e === undefined) return 'loadModel resolved';
  if (e instanceof LlavaRadError) return `LlavaRadError ${e.code}: ${e.message}`;
  return `${(e as Error)?.constructor?.name ?? typeof e}: ${String((e as Error)?.message ?? e)}`;
}

/** docs/validation.md, "Malformed GGUFs": "167 malformed GGUF files ... rejected with typed errors in-process
 *  and in a child process". A case added or removed changes that sentence too. */
const DOCUMENTED_CASES = 167;

describe('malformed GGUF files', () => {
  it(`there are ${DOCUMENTED_CASES} cases, as docs/validation.md says`, () => {
    expect(corruptCases().length, 'cases in test/helpers/corrupt-gguf.ts (update docs/validation.md with the count)').toBe(DOCUMENTED_CASES);
    expect(new Set(corruptCases().map((c) => c.name)).size, 'distinct case names').toBe(DOCUMENTED_CASES);
  });

  it('the valid base of the corruptions loads and generates', async () => {
    const m = await loadModel({ model: base.path, ...LOAD });
    try {
      const r = await m.generate([1, 450, 5192], { maxTokens: 4 });
      expect(r.tokens.length).toBeGreaterThan(0);
    } finally {
      await m.dispose();
    }
  });

  for (const c of corruptCases()) {
    it(`rejects: ${c.name}`, async () => {
      const p = await c.make(base, dir);
      try {
        const err = await loadError(p);
        expect(err instanceof LlavaRadError, describeError(err)).toBe(true);
        expect(c.expect, describeError(err)).toContain((err as LlavaRadError).code);
      } finally {
        await removeCaseOutput(p);
      }
    });
  }

  it('rejects arguments that are not paths with INVALID_ARGUMENT', async () => {
    for (const bad of ['', 42, null, undefined, {}, ['a.gguf'], 'a\0b.gguf']) {
      const err = await loadError(bad);
      expect(err instanceof LlavaRadError, `${JSON.stringify(bad)}: ${describeError(err)}`).toBe(true);
      expect(['INVALID_ARGUMENT', ...(typeof bad === 'string' && bad.length > 0 ? ['IO'] : [])], describeError(err))
        .toContain((err as LlavaRadError).code);
    }
  });

  it('a valid model still loads and generates after all of them', async () => {
    const m = await loadModel({ model: await tinyLlamaPath('f16'), ...LOAD });
    try {
      const r = await m.generate('The heart size is normal.', { maxTokens: 8 });
      expect(r.tokens.length).toBeGreaterThan(0);
    } finally {
      await m.dispose();
    }
  });

  it('in a child process: every case rejects and the process survives (no abort, no signal)', async () => {
    // an abort() or a crash inside the engine would take a vitest worker down with it; a child process
    // shows which case did it
    const childDir = path.join(dir, 'child');
    const script = path.join(dir, 'child.mjs');
    const url = (rel: string): string => pathToFileURL(path.join(root, rel)).href;
    await writeFile(
      script,
      `
import { loadModel, LlavaRadError } from ${JSON.stringify(url('lib/index.ts'))};
import { corruptionBase, corruptCases, removeCaseOutput } from ${JSON.stringify(url('test/helpers/corrupt-gguf.ts'))};
const base = await corruptionBase(${JSON.stringify(childDir)});
const results = [];
for (const c of corruptCases()) {
  process.stderr.write('CASE ' + c.name + '\\n');
  const p = await c.make(base, ${JSON.stringify(childDir)});
  let code = 'RESOLVED';
  try {
    const m = await loadModel({ model: p, threads: 1, contextSize: 64 });
    await m.dispose();
  } catch (e) {
    code = e instanceof LlavaRadError ? e.code : 'NOT_A_LLAVA_RAD_ERROR: ' + String(e && e.message || e);
  }
  await removeCaseOutput(p);
  results.push({ name: c.name, code, ok: c.expect.includes(code) });
}
const m = await loadModel({ model: base.path, threads: 1, contextSize: 64 });
const r = await m.generate([1, 450, 5192], { maxTokens: 4 });
await m.dispose();
process.stdout.write(JSON.stringify({ results, generated: r.tokens.length }));
`,
    );
    const child = spawn(process.execPath, ['--import', pathToFileURL(path.join(root, 'scripts/ts-hooks.mjs')).href, script], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.on('close', (c, s) => resolve([c, s])),
    );
    const lastCase = err.split('\n').filter((l) => l.startsWith('CASE ')).pop();
    expect({ code, signal }, `child died during ${lastCase}\n${err.slice(-3000)}`).toEqual({ code: 0, signal: null });
    const res = JSON.parse(out) as { results: { name: string; code: string; ok: boolean }[]; generated: number };
    expect(res.results.filter((r) => !r.ok)).toEqual([]);
    expect(res.results.length, `cases run in the child, of ${DOCUMENTED_CASES}`).toBe(DOCUMENTED_CASES);
    expect(res.generated).toBeGreaterThan(0);
  }, 600_000);
});

describe('large headers are read in time linear in their size', () => {
  // 400,000 entries: with a linear search per duplicate check (the engine's once) these took 280-300+ s;
  // each case puts its duplicate last, so the whole header is checked before the error
  const N = 400_000;
  const F32 = 0;

  it(`${N} metadata keys, the last a duplicate: BAD_GGUF naming it`, async () => {
    const extra = Array.from({ length: N }, (_, i) => rawKv({ key: `hostile.key.${i}`, type: GgufValueType.UINT32, value: i }));
    extra.push(rawKv({ key: 'hostile.key.0', type: GgufValueType.UINT32, value: 0 }));
    const p = await rebuilt(base, path.join(dir, 'many-keys.gguf'), { kvs: (kvs) => [...kvs, ...extra] });
    const e = await loadError(p);
    expect(describeError(e)).toMatch(/^LlavaRadError BAD_GGUF: .*duplicate metadata key 'hostile\.key\.0'/);
    await rm(p, { force: true });
  }, 60_000);

  it(`${N} tensors, the last a duplicate: BAD_GGUF naming it`, async () => {
    const dataLen = base.buf.length - base.layout.dataStart;
    const first = BigInt(Math.ceil(dataLen / base.layout.alignment) * base.layout.alignment);
    const extra = Array.from({ length: N }, (_, i) => ({
      name: `hostile.${i}`, shape: [1n], type: F32, offset: first + BigInt(i * base.layout.alignment),
    }));
    extra.push({ name: 'hostile.0', shape: [1n], type: F32, offset: first + BigInt(N * base.layout.alignment) });
    const data = Buffer.alloc(Number(first) + (N + 1) * base.layout.alignment);
    base.buf.copy(data, 0, base.layout.dataStart);
    const p = await rebuilt(base, path.join(dir, 'many-tensors.gguf'), { tensors: (ts) => [...ts, ...extra], data });
    const e = await loadError(p);
    expect(describeError(e)).toMatch(/^LlavaRadError BAD_GGUF: .*duplicate tensor name 'hostile\.0'/);
    await rm(p, { force: true });
  }, 60_000);
});
