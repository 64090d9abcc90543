// Checkpoint readers (lib/convert): zip, restricted unpickler, PyTorch checkpoints (zip + legacy),
// safetensors, sharded indexes, SentencePiece. Fixtures are written by real PyTorch / sentencepiece
// (scripts/make-checkpoint-fixtures.py); expected.json holds what torch and python's sentencepiece report.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, open, readFile, rm, writeFile, copyFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlavaRadError, isLlavaRadError } from '../lib/errors.js';
import { openCheckpoint, openShardedCheckpoint } from '../lib/convert/checkpoint.js';
import {
  PyDict, TorchStorage, TorchTensor, extractStateDict, openTorchCheckpoint, stripModulePrefix, torchGlobals, unpickleTorch,
} from '../lib/convert/pickle.js';
import { openSafetensors } from '../lib/convert/safetensors.js';
import { parseSentencePiece, readSentencePiece } from '../lib/convert/sentencepiece.js';
import type { LazyTensor } from '../lib/convert/tensor.js';
import { isPyTuple, unpickle } from '../lib/convert/unpickler.js';
import { ZipReader, crc32 } from '../lib/convert/zip.js';

const FIX = join(import.meta.dirname, 'fixtures', 'checkpoints');
interface ExpectedTensor { dtype: string; shape: number[]; contiguous: boolean; values: number[]; sha256: string }
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const EXPECTED: any = JSON.parse(readFileSync(join(FIX, 'expected.json'), 'utf8'));

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'llava-rad-ckpt-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function expectTensor(t: LazyTensor, want: ExpectedTensor): Promise<void> {
  expect(t.dtype, t.name).toBe(want.dtype);
  expect([...t.shape], t.name).toEqual(want.shape);
  expect(t.numel).toBe(want.values.length);
  const raw = await t.readRaw();
  expect(createHash('sha256').update(raw).digest('hex'), `${t.name} bytes`).toBe(want.sha256);
  const f = await t.readFloat32();
  expect(f.length).toBe(want.values.length);
  for (let i = 0; i < f.length; i++) {
    if (f[i] !== Math.fround(want.values[i]!)) {
      throw new Error(`${t.name}[${i}] = ${f[i]}, torch wrote ${want.values[i]}`);
    }
  }
}

async function expectAll(tensors: ReadonlyMap<string, LazyTensor>, want: Record<string, ExpectedTensor>): Promise<void> {
  expect([...tensors.keys()]).toEqual(Object.keys(want));
  for (const [name, t] of tensors) await expectTensor(t, want[name]!);
}

/** runs f; it must either succeed or throw a LlavaRadError (returned) - anything else fails the test */
async function typedOrOk(f: () => Promise<unknown> | unknown): Promise<LlavaRadError | undefined> {
  try {
    await f();
    return undefined;
  } catch (e) {
    if (!(e instanceof LlavaRadError)) throw new Error(`untyped error: ${String(e)}`, { cause: e });
    return e;
  }
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: string, msg?: RegExp): Promise<LlavaRadError> {
  let err: unknown;
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(LlavaRadError);
  expect((err as LlavaRadError).code, (err as Error).message).toBe(code);
  if (msg) expect((err as Error).message).toMatch(msg);
  return err as LlavaRadError;
}

/** reads every tensor of a checkpoint (to exercise lazy reads after a successful open) */
async function readEverything(path: string): Promise<void> {
  const c = await openCheckpoint(path);
  try {
    for (const t of c.tensors.values()) await t.readFloat32();
  } finally {
    await c.close();
  }
}

// ------------------------------------------------------------------------------------------------
// a tiny pickle writer, to build hand-made pickles (hostile ones included)

const P = {
  proto: (v = 2) => Buffer.from([0x80, v]),
  str: (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const h = Buffer.alloc(5);
    h[0] = 0x58;
    h.writeUInt32LE(b.length, 1);
    return Buffer.concat([h, b]);
  },
  int: (n: number) => {
    const h = Buffer.alloc(5);
    h[0] = 0x4a;
    h.writeInt32LE(n, 1);
    return h;
  },
  global: (m: string, n: string) => Buffer.from(`c${m}\n${n}\n`, 'latin1'),
  tuple: (...items: Buffer[]) => Buffer.concat([Buffer.from('('), ...items, Buffer.from('t')]),
  raw: (...b: Array<number | string>) => Buffer.concat(b.map((x) => (typeof x === 'number' ? Buffer.from([x]) : Buffer.from(x, 'latin1')))),
  /** _rebuild_tensor_v2 over storage `key` */
  tensor: (key: string, storageType: string, numel: number, offset: number, shape: number[], stride: number[]) =>
    Buffer.concat([
      P.global('torch._utils', '_rebuild_tensor_v2'),
      P.tuple(
        P.tuple(P.str('storage'), P.global('torch', storageType), P.str(key), P.str('cpu'), P.int(numel)), Buffer.from('Q'),
        P.int(offset), P.tuple(...shape.map(P.int)), P.tuple(...stride.map(P.int)), Buffer.from([0x89]),
        P.global('collections', 'OrderedDict'), Buffer.from(')R'),
      ),
      Buffer.from('R'),
    ]),
  /** OrderedDict of name -> pickled value */
  dict: (items: Array<[string, Buffer]>) =>
    Buffer.concat([
      P.global('collections', 'OrderedDict'), Buffer.from(')R('),
      ...items.flatMap(([k, v]) => [P.str(k), v]), Buffer.from('u'),
    ]),
};

const runTorchPickle = (buf: Buffer) =>
  unpickleTorch(buf, 'test.pkl', (key, dtype, location, numel) => new TorchStorage(key, dtype, location, numel));

// ------------------------------------------------------------------------------------------------
// a hand-made zip writer (stored entries, zip64 where needed) for big sparse archives

interface ZEntry { name: string; size: number; data?: Buffer; offset?: number }
async function writeZip(path: string, entries: ZEntry[], forceZip64 = false): Promise<void> {
  const fh = await open(path, 'w');
  try {
    let pos = 0;
    const central: Buffer[] = [];
    for (const e of entries) {
      e.offset = pos;
      const name = Buffer.from(e.name);
      const big = forceZip64 || e.size >= 0xffffffff;
      const extra = big ? Buffer.alloc(20) : Buffer.alloc(0);
      if (big) {
        extra.writeUInt16LE(1, 0);
        extra.writeUInt16LE(16, 2);
        extra.writeBigUInt64LE(BigInt(e.size), 4);
        extra.writeBigUInt64LE(BigInt(e.size), 12);
      }
      const lh = Buffer.alloc(30);
      lh.writeUInt32LE(0x04034b50, 0);
      lh.writeUInt16LE(45, 4);
      lh.writeUInt32LE(big ? 0xffffffff : e.size, 18);
      lh.writeUInt32LE(big ? 0xffffffff : e.size, 22);
      lh.writeUInt16LE(name.length, 26);
      lh.writeUInt16LE(extra.length, 28);
      await fh.write(Buffer.concat([lh, name, extra]), 0, 30 + name.length + extra.length, pos);
      pos += 30 + name.length + extra.length;
      if (e.data) await fh.write(e.data, 0, e.data.length, pos);
      pos += e.size;
      // central record: zip64 extra with the sizes and offset
      const cx = Buffer.alloc(28);
      cx.writeUInt16LE(1, 0);
      cx.writeUInt16LE(24, 2);
      cx.writeBigUInt64LE(BigInt(e.size), 4);
      cx.writeBigUInt64LE(BigInt(e.size), 12);
      cx.writeBigUInt64LE(BigInt(e.offset), 20);
      const use64 = forceZip64 || e.size >= 0xffffffff || e.offset >= 0xffffffff;
      const ch = Buffer.alloc(46);
      ch.writeUInt32LE(0x02014b50, 0);
      ch.writeUInt16LE(45, 4);
      ch.writeUInt16LE(45, 6);
      ch.writeUInt32LE(e.data ? crc32(e.data) : 0, 16); // (sparse entries: never read whole)
      ch.writeUInt32LE(use64 ? 0xffffffff : e.size, 20);
      ch.writeUInt32LE(use64 ? 0xffffffff : e.size, 24);
      ch.writeUInt16LE(name.length, 28);
      ch.writeUInt16LE(use64 ? cx.length : 0, 30);
      ch.writeUInt32LE(use64 ? 0xffffffff : e.offset, 42);
      central.push(Buffer.concat([ch, name, use64 ? cx : Buffer.alloc(0)]));
    }
    const cd = Buffer.concat(central);
    const cdOffset = pos;
    const e64 = Buffer.alloc(56);
    e64.writeUInt32LE(0x06064b50, 0);
    e64.writeBigUInt64LE(44n, 4);
    e64.writeUInt16LE(45, 12);
    e64.writeUInt16LE(45, 14);
    e64.writeBigUInt64LE(BigInt(entries.length), 24);
    e64.writeBigUInt64LE(BigInt(entries.length), 32);
    e64.writeBigUInt64LE(BigInt(cd.length), 40);
    e64.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(cdOffset + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(0xffff, 8);
    eocd.writeUInt16LE(0xffff, 10);
    eocd.writeUInt32LE(0xffffffff, 12);
    eocd.writeUInt32LE(0xffffffff, 16);
    const tail = Buffer.concat([cd, e64, loc, eocd]);
    await fh.write(tail, 0, tail.length, cdOffset);
  } finally {
    await fh.close();
  }
}

// ================================================================================================

describe('PyTorch zip checkpoints', () => {
  it('reads a state dict with fp32/fp16/bf16, views, shared storage, a scalar, int64 and empty tensors', async () => {
    const c = await openTorchCheckpoint(join(FIX, 'state_dict.pt'));
    try {
      expect(c.format).toBe('zip');
      expect(c.root).toBeInstanceOf(PyDict);
      expect((c.root as PyDict).pyClass).toBe('OrderedDict');
      // torch's state dicts are OrderedDicts carrying _metadata (set by BUILD)
      await expectAll(c.tensors, EXPECTED['state_dict.pt'].tensors);
      const root = c.root as PyDict;
      const a = root.get('shared.a') as TorchTensor;
      const b = root.get('shared.b') as TorchTensor;
      expect(a.storage).toBe(b.storage);
      expect(b.storageOffset).toBe(4);
      const tr = root.get('view.transposed') as TorchTensor;
      expect(tr.stride).toEqual([1, 6]);
      const ex = root.get('view.expanded') as TorchTensor;
      expect(ex.stride).toEqual([1, 0]);
      expect((root.get('scalar') as TorchTensor).shape).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it('reads nn.Parameters (_rebuild_parameter) and a peft adapter_model.bin', async () => {
    for (const f of ['parameters.pt', 'adapter_model.bin']) {
      const c = await openCheckpoint(join(FIX, f));
      try {
        expect(c.format).toBe('torch-zip');
        await expectAll(c.tensors, EXPECTED[f].tensors);
      } finally {
        await c.close();
      }
    }
    const c = await openTorchCheckpoint(join(FIX, 'parameters.pt'));
    expect(((c.root as PyDict).get('weight') as TorchTensor).requiresGrad).toBe(true);
    expect(((c.root as PyDict).get('bias') as TorchTensor).requiresGrad).toBe(false);
    await c.close();
  });

  it('unwraps an open_clip training checkpoint: state_dict kept, optimizer parsed safely, module. stripped', async () => {
    const want = EXPECTED['open_clip_like.pt'];
    const c = await openTorchCheckpoint(join(FIX, 'open_clip_like.pt'));
    try {
      await expectAll(c.tensors, want.tensors);
      expect([...c.tensors.keys()].every((k) => k.startsWith('module.'))).toBe(true);
      const stripped = stripModulePrefix(c.tensors);
      expect([...stripped.keys()]).toEqual(Object.keys(want.tensors).map((k: string) => k.slice('module.'.length)));
      expect(stripped.get('visual.trunk.pos_embed')).toBe(c.tensors.get('module.visual.trunk.pos_embed'));
      const root = c.root as PyDict;
      expect(root.get('epoch')).toBe(want.epoch);
      expect(root.get('name')).toBe(want.name);
      // the optimizer: int keys, tuples, floats, None, bools and tensors, all as data
      const opt = root.get('optimizer') as PyDict;
      const groups = opt.get('param_groups') as PyDict[];
      expect(groups.length).toBe(want.optimizer_param_groups.length);
      const g = groups[0]!;
      const wg = want.optimizer_param_groups[0];
      for (const k of Object.keys(wg)) {
        const v = g.get(k);
        expect(Array.isArray(v) ? [...v] : v, k).toEqual(wg[k]);
      }
      expect(isPyTuple(g.get('betas'))).toBe(true);
      const state = opt.get('state') as PyDict;
      expect([...state.keys()].sort()).toEqual(want.optimizer_state_keys);
      const s0 = state.get(0) as PyDict;
      for (const [k, w] of Object.entries(want.optimizer_state_0 as Record<string, ExpectedTensor>)) {
        await expectTensor(c.lazy(k, s0.get(k) as TorchTensor), w);
      }
      const notes = root.get('notes') as unknown[];
      expect(notes[0]).toBe('lists');
      expect(isPyTuple(notes[1])).toBe(true);
      expect(notes.slice(2, 6)).toEqual([null, true, 1.5, -7]);
      expect(notes[6]).toBe(2n ** 70n);
      expect(Buffer.from(notes[7] as Uint8Array).toString()).toBe('bytes');
      // the whole file is not a flat state dict: extractStateDict without wrappers flattens everything
      const all = extractStateDict(c.root, 'x', { wrappers: [] });
      expect(all.tensors.has('optimizer.state.0.exp_avg')).toBe(true);
      expect(all.skipped).toContain('epoch');
      expect(all.skipped).toContain('optimizer.param_groups');
    } finally {
      await c.close();
    }
  });

  it('a pickle sharing one dict 2^40 ways (through the memo) is refused quickly, not walked', async () => {
    // d0 = {}; d(n+1) = {'a': d(n), 'b': d(n)}
    const parts: Buffer[] = [P.proto(), P.raw('}q', 0)];
    for (let i = 1; i <= 30; i++) {
      parts.push(P.raw('}('), P.str('a'), P.raw('h', i - 1), P.str('b'), P.raw('h', i - 1), P.raw('uq', i));
    }
    parts.push(P.raw('.'));
    const v = runTorchPickle(Buffer.concat(parts)).value;
    // counted in steps, not milliseconds: every step of the walk over the 31 distinct dicts (own entries() on
    // each instance); refused at its budget, the walk has taken about that many steps, not 2^31
    let steps = 0;
    const counted = new Set<PyDict>();
    const count = (d: unknown): void => {
      if (!(d instanceof PyDict) || counted.has(d)) return;
      counted.add(d);
      const entries = d.entries.bind(d);
      d.entries = () => {
        const it = entries();
        const stepping = { next: () => { steps++; return it.next(); }, [Symbol.iterator]: () => stepping };
        return stepping as unknown as ReturnType<typeof entries>;
      };
      for (const x of d.values()) count(x);
    };
    count(v);
    expect(counted.size).toBe(31);
    await expectCode(() => extractStateDict(v, 'dag', { maxEntries: 100_000 }), 'BAD_CHECKPOINT', /too many entries/);
    // 100,001 entries, and at most one end-of-dict step per entry
    expect(steps, `steps of the walk refused at 100,000 entries`).toBeGreaterThan(100_000);
    expect(steps, `steps of the walk refused at 100,000 entries`).toBeLessThanOrEqual(2 * 100_001);
    steps = 0;
    await expectCode(() => extractStateDict(v, 'dag', { maxDepth: 10 }), 'BAD_CHECKPOINT', /deeper/);
    expect(steps, 'steps of the walk refused deeper than 10').toBeLessThanOrEqual(12);
  });

  it('a zip entry whose bytes do not match its CRC-32 is refused', async () => {
    const full = await readFile(join(FIX, 'parameters.pt'));
    const m = Buffer.from(full);
    const at = m.indexOf(Buffer.from('weight')); // inside data.pkl
    m[at] = 'W'.charCodeAt(0);
    await writeFile(join(tmp, 'crc.pt'), m);
    await expectCode(openTorchCheckpoint(join(tmp, 'crc.pt')), 'BAD_CHECKPOINT', /CRC-32/);
  });

  it('stripModulePrefix keeps unprefixed keys and refuses collisions', async () => {
    const m = new Map([['module.a', 1], ['b', 2]]);
    expect([...stripModulePrefix(m)]).toEqual([['a', 1], ['b', 2]]);
    await expectCode(() => stripModulePrefix(new Map([['module.a', 1], ['a', 2]])), 'BAD_CHECKPOINT', /"a"/);
  });

  it('reads a 2-shard checkpoint through pytorch_model.bin.index.json', async () => {
    const c = await openCheckpoint(join(FIX, 'sharded', 'pytorch_model.bin.index.json'));
    try {
      expect(c.format).toBe('sharded');
      const want = EXPECTED['sharded/pytorch_model.bin.index.json'].tensors;
      expect(new Set(c.tensors.keys())).toEqual(new Set(Object.keys(want)));
      for (const [name, t] of c.tensors) await expectTensor(t, want[name]);
    } finally {
      await c.close();
    }
  });

  it('refuses broken indexes: a missing tensor, a shard outside the folder, no weight_map', async () => {
    const dir = join(tmp, 'badindex');
    await mkdir(dir, { recursive: true });
    for (const f of ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin']) {
      await copyFile(join(FIX, 'sharded', f), join(dir, f));
    }
    const index = JSON.parse(await readFile(join(FIX, 'sharded', 'pytorch_model.bin.index.json'), 'utf8'));
    index.weight_map['model.ghost.weight'] = 'pytorch_model-00001-of-00002.bin';
    await writeFile(join(dir, 'a.index.json'), JSON.stringify(index));
    await expectCode(openShardedCheckpoint(join(dir, 'a.index.json')), 'BAD_CHECKPOINT', /model\.ghost\.weight/);
    await writeFile(join(dir, 'b.index.json'), JSON.stringify({ weight_map: { x: '../../etc/passwd' } }));
    await expectCode(openShardedCheckpoint(join(dir, 'b.index.json')), 'BAD_CHECKPOINT', /outside/);
    await writeFile(join(dir, 'c.index.json'), JSON.stringify({ metadata: {} }));
    await expectCode(openShardedCheckpoint(join(dir, 'c.index.json')), 'BAD_CHECKPOINT', /weight_map/);
    await writeFile(join(dir, 'd.index.json'), '{not json');
    await expectCode(openShardedCheckpoint(join(dir, 'd.index.json')), 'BAD_CHECKPOINT');
    await expectCode(openShardedCheckpoint(join(dir, 'missing.index.json')), 'IO');
  });

  it('reading one tensor reads only that tensor\'s bytes', async () => {
    const c = await openTorchCheckpoint(join(FIX, 'state_dict.pt'));
    try {
      const t = c.tensors.get('layer.bf16')!;
      const before = c.bytesRead();
      await t.readRaw();
      // its data plus the entry's 30-byte local header (read once)
      expect(c.bytesRead() - before).toBe(t.numel * 2 + 30);
      const again = c.bytesRead();
      await t.readRaw();
      expect(c.bytesRead() - again).toBe(t.numel * 2);
    } finally {
      await c.close();
    }
  });
});

describe('legacy (non-zip) checkpoints', () => {
  it('reads the legacy format to the same values', async () => {
    const c = await openCheckpoint(join(FIX, 'legacy.pt'));
    try {
      expect(c.format).toBe('torch-legacy');
      await expectAll(c.tensors, EXPECTED['legacy.pt'].tensors);
    } finally {
      await c.close();
    }
  });

  it('truncated legacy files give typed errors', async () => {
    const full = await readFile(join(FIX, 'legacy.pt'));
    const p = join(tmp, 'legacy-cut.pt');
    for (let cut = 0; cut < full.length; cut += 13) {
      await writeFile(p, full.subarray(0, cut));
      const err = await typedOrOk(() => readEverything(p));
      expect(err, `cut at ${cut}`).toBeDefined();
    }
  });

  it('refuses a tar-format checkpoint and a non-checkpoint', async () => {
    const tar = Buffer.alloc(1024);
    tar.write('ustar', 257, 'latin1');
    await writeFile(join(tmp, 'old.tar'), tar);
    await expectCode(openTorchCheckpoint(join(tmp, 'old.tar')), 'UNSUPPORTED', /tar/);
    await writeFile(join(tmp, 'text.bin'), 'hello world, not a checkpoint');
    await expectCode(openTorchCheckpoint(join(tmp, 'text.bin')), 'BAD_CHECKPOINT');
    // a plain pickle that is not a torch legacy file
    await writeFile(join(tmp, 'plain.pkl'), Buffer.concat([P.proto(), P.int(5), Buffer.from('.')]));
    await expectCode(openTorchCheckpoint(join(tmp, 'plain.pkl')), 'BAD_CHECKPOINT', /magic/);
  });
});

describe('malicious pickles', () => {
  const SIDE = EXPECTED.malicious.sideEffectFile as string;

  it('refuses every malicious fixture with UNSAFE_PICKLE naming the global, and nothing runs', async () => {
    expect(existsSync(SIDE)).toBe(false);
    for (const [file, global] of Object.entries(EXPECTED.malicious.files as Record<string, string>)) {
      const path = join(FIX, 'malicious', file);
      const err = await expectCode(openTorchCheckpoint(path), 'UNSAFE_PICKLE');
      expect(err.message, file).toContain(global);
      // the raw pickle, run directly with torch's allowlist, too (.pkl files are plain pickles)
      if (file.endsWith('.pkl')) {
        await expectCode(() => runTorchPickle(readFileSync(path)), 'UNSAFE_PICKLE', new RegExp(global.replace('.', '\\.')));
      }
      // through the generic entry point
      await expectCode(openCheckpoint(path), 'UNSAFE_PICKLE');
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(SIDE)).toBe(false);
  });

  it('refuses hand-made dangerous globals however they are named', async () => {
    const cases: Array<[Buffer, string]> = [
      [Buffer.concat([P.proto(), P.global('builtins', 'getattr'), P.tuple(P.str('x'), P.str('y')), Buffer.from('R.')]), 'builtins.getattr'],
      [Buffer.concat([P.proto(), P.global('posix', 'system'), P.tuple(P.str('true')), Buffer.from('R.')]), 'posix.system'],
      [Buffer.concat([P.proto(4), P.str('os'), P.str('system'), P.raw(0x93), P.tuple(P.str('true')), Buffer.from('R.')]), 'os.system'],
      [Buffer.concat([P.proto(), P.global('subprocess', 'check_output'), Buffer.from('.')]), 'subprocess.check_output'],
      [Buffer.concat([P.proto(), P.global('torch', 'load'), Buffer.from('.')]), 'torch.load'],
      [Buffer.concat([P.proto(), P.global('torch._utils', '_rebuild_qtensor'), Buffer.from('.')]), 'torch._utils._rebuild_qtensor'],
      [Buffer.concat([P.proto(), P.global('collections', 'OrderedDict.__class__'), Buffer.from('.')]), 'collections.OrderedDict.__class__'],
      [Buffer.concat([P.proto(), P.global('numpy', 'load'), Buffer.from('.')]), 'numpy.load'],
      // INST / OBJ with a bad class
      [Buffer.concat([P.raw('('), P.str('true'), P.raw('ios\nsystem\n.')]), 'os.system'],
      // EXT1: a registered global in disguise
      [P.raw(0x80, 2, 0x82, 1, '.'), 'extension'],
    ];
    for (const [buf, name] of cases) {
      await expectCode(() => runTorchPickle(buf), 'UNSAFE_PICKLE', new RegExp(name.replace(/[.$]/g, '\\$&')));
    }
    // an allowed value global cannot be called; _rebuild_from_type_v2 only over the rebuild functions
    await expectCode(() => runTorchPickle(Buffer.concat([P.proto(), P.global('torch', 'Tensor'), P.tuple(), Buffer.from('R.')])), 'UNSAFE_PICKLE');
    await expectCode(() => runTorchPickle(Buffer.concat([
      P.proto(), P.global('torch._tensor', '_rebuild_from_type_v2'),
      P.tuple(P.global('collections', 'OrderedDict'), P.global('torch', 'Tensor'), P.tuple(), Buffer.from('}')), Buffer.from('R.'),
    ])), 'UNSAFE_PICKLE');
    expect(existsSync(SIDE)).toBe(false);
  });
});

describe('restricted unpickler', () => {
  const run = (buf: Buffer) => unpickle(buf, { label: 't', resolveGlobal: torchGlobals('t') });

  it('builds containers and scalars of every protocol', () => {
    // protocol 0 text opcodes
    const p0 = P.raw('(lp0\nI1\naI01\naL12345678901234567890L\naF-1.5\naS\'a\\n\\x41\'\naVh\\u00e9\nag0\na.');
    const v0 = run(p0).value as unknown[];
    expect(v0.slice(0, 6)).toEqual([1, true, 12345678901234567890n, -1.5, 'a\nA', 'hé']);
    expect(v0[6]).toBe(v0); // a list containing itself, through the memo
    // protocol 2..5 opcodes: tuples, dicts, sets, bytes, memo, frames
    const p4 = Buffer.concat([
      P.raw(0x80, 4, 0x95), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), P.raw('}', 0x94, '('),
      P.raw(0x8c, 1, 'k', 0x94), P.raw(0x8f, '(', 'K', 3, 'K', 4, 0x90, 0x94),
      P.raw(0x8c, 1, 'b', 'C', 2, 'h', 'i'),
      P.raw(0x8c, 1, 'f', '(', 0x91), P.raw(0x8c, 1, 'g', 'h', 1), // BINGET 1 = 'k'
      P.raw(0x8c, 1, 't', 'K', 1, 'K', 2, 'K', 3, 0x87),
      P.raw(0x8c, 1, 'n', 0x8a, 1, 0xff), // LONG1 -1
      P.raw(0x8c, 1, 'a', 0x96), Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), P.raw('xy', 0x98),
      P.raw('u.'),
    ]);
    // fix the frame length (content after the FRAME header)
    p4.writeBigUInt64LE(BigInt(p4.length - 11), 3);
    const v4 = run(p4).value as PyDict;
    expect(v4).toBeInstanceOf(PyDict);
    expect([...(v4.get('k') as Set<number>)]).toEqual([3, 4]);
    expect(Buffer.from(v4.get('b') as Uint8Array).toString()).toBe('hi');
    expect(v4.get('f')).toBeInstanceOf(Set);
    expect(v4.get('g')).toBe('k');
    expect(v4.get('t')).toEqual([1, 2, 3]);
    expect(isPyTuple(v4.get('t'))).toBe(true);
    expect(v4.get('n')).toBe(-1);
    expect(Buffer.from(v4.get('a') as Uint8Array).toString()).toBe('xy');
    // protocol 2 bytes (via _codecs.encode) and torch.Size
    const p2 = Buffer.concat([
      P.proto(), P.raw(']('),
      P.global('_codecs', 'encode'), P.tuple(P.str('\u00ff\u0001'), P.str('latin1')), P.raw('R'),
      P.global('torch', 'Size'), P.tuple(P.raw(']('), P.int(2), P.int(3), P.raw('e')), P.raw('R'),
      P.global('builtins', 'set'), P.tuple(P.raw(']('), P.int(2), P.raw('e')), P.raw('R'),
      P.global('torch', 'float16'),
      P.raw('e.'),
    ]);
    const v2 = run(p2).value as unknown[];
    expect([...(v2[0] as Uint8Array)]).toEqual([255, 1]);
    expect(v2[1]).toEqual([2, 3]);
    expect([...(v2[2] as Set<number>)]).toEqual([2]);
    expect(String(v2[3])).toBe('torch.float16');
  });

  it('malformed pickles give BAD_CHECKPOINT', async () => {
    const bad: Array<[Buffer, RegExp]> = [
      [P.raw(0x80, 2, 'R.'), /underflow/],
      [P.raw(0x80, 2, '.'), /underflow/],
      [P.raw(0x80, 2, 'h', 5, '.'), /memo key 5/],
      [P.raw(0x80, 2, 'j', 0xff, 0xff, 0xff, 0x7f, '.'), /memo key/],
      [P.raw(0x80, 2, 0xff), /unknown opcode 0xff/],
      [P.raw(0x80, 6, '.'), /protocol 6/],
      [P.raw(0x80, 2, '(.'), /underflow|MARK/],
      [P.raw(0x80, 2, '1.'), /MARK/],
      [P.raw(0x80, 2, 'N', ')N', 'a.'), /not a list/],
      [P.raw(0x80, 2, ']', 'N', 's.'), /underflow|not a dict/],
      [P.raw(0x80, 2, '}(N', 'u.'), /odd/],
      [P.raw(0x80, 2, 'N', 'NR.'), /non-callable/],
      [P.raw(0x80, 2, 'X', 0xff, 0xff, 0xff, 0xff, 'abc'), /truncated/],
      [Buffer.concat([P.raw(0x80, 4, 0x8d), Buffer.from([0, 0, 0, 0, 0, 0, 0, 0x10]), P.raw('.')]), /truncated/],
      [Buffer.concat([P.raw(0x80, 4, 0x8e), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]), /truncated/],
      [P.raw(0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0x7f), /truncated|too large/],
      [P.raw(0x80, 2, 0x8b, 0xff, 0xff, 0xff, 0xff), /negative/],
      [P.raw(0x80, 2, 'T', 0xff, 0xff, 0xff, 0xff), /negative/],
      [P.raw(0x80, 4, 0x95, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0), /truncated/],
      [P.raw('Ix\n.'), /INT/],
      [P.raw(0x80, 2, 'Q.'), /underflow/],
      [P.raw(0x80, 2, 'N', 'Q.'), /persistent id/],
      [P.raw(0x80, 2, 'K', 1, 'N', 'b.'), /BUILD/],
      [P.raw(0x80, 2, 'K', 1, 0x93, '.'), /underflow|STACK_GLOBAL/],
      [P.raw(''), /truncated/],
    ];
    for (const [buf, msg] of bad) {
      await expectCode(() => runTorchPickle(buf), 'BAD_CHECKPOINT', msg);
    }
    await expectCode(() => run(P.raw(0x80, 5, 0x97, '.')), 'UNSUPPORTED');
  });

  it('refuses bad tensors: out-of-range views, mismatched size/stride, non-storages, bad persistent ids', async () => {
    const wrap = (t: Buffer) => Buffer.concat([P.proto(), P.dict([['w', t]]), Buffer.from('.')]);
    await expectCode(() => runTorchPickle(wrap(P.tensor('0', 'FloatStorage', 6, 0, [2, 4], [4, 1]))), 'BAD_CHECKPOINT', /reaches element 7/);
    await expectCode(() => runTorchPickle(wrap(P.tensor('0', 'FloatStorage', 6, 5, [2], [1]))), 'BAD_CHECKPOINT', /reaches/);
    await expectCode(() => runTorchPickle(wrap(P.tensor('0', 'FloatStorage', 6, 0, [2, 3], [3]))), 'BAD_CHECKPOINT', /differ/);
    await expectCode(() => runTorchPickle(wrap(P.tensor('0', 'FloatStorage', 6, -1, [2], [1]))), 'BAD_CHECKPOINT', /non-negative/);
    await expectCode(() => runTorchPickle(wrap(P.tensor('0', 'FloatStorage', 6, 0, [2], [-1]))), 'BAD_CHECKPOINT', /non-negative/);
    await expectCode(() => runTorchPickle(wrap(P.tensor('0', 'NoSuchStorage', 6, 0, [2], [1]))), 'UNSAFE_PICKLE');
    // a storage named twice with two types
    const two = Buffer.concat([P.proto(), P.dict([
      ['a', P.tensor('0', 'FloatStorage', 6, 0, [6], [1])], ['b', P.tensor('0', 'HalfStorage', 6, 0, [6], [1])],
    ]), Buffer.from('.')]);
    await expectCode(() => runTorchPickle(two), 'BAD_CHECKPOINT', /two different/);
    // a zero-size tensor may sit anywhere
    const ok = runTorchPickle(wrap(P.tensor('0', 'FloatStorage', 0, 0, [0, 3], [3, 1])));
    expect(((ok.value as PyDict).get('w') as TorchTensor).numel).toBe(0);
    // the _rebuild_tensor_v3 form: an untyped byte storage and an explicit dtype
    const v3 = Buffer.concat([P.proto(), P.dict([['h', Buffer.concat([
      P.global('torch._utils', '_rebuild_tensor_v3'),
      P.tuple(
        P.tuple(P.str('storage'), P.global('torch', 'UntypedStorage'), P.str('0'), P.str('cpu'), P.int(12)), Buffer.from('Q'),
        P.int(1), P.tuple(P.int(5)), P.tuple(P.int(1)), Buffer.from([0x89]),
        P.global('collections', 'OrderedDict'), Buffer.from(')R'), P.global('torch', 'float16'),
      ),
      Buffer.from('R'),
    ])]]), Buffer.from('.')]);
    const h = (runTorchPickle(v3).value as PyDict).get('h') as TorchTensor;
    expect([h.dtype, h.storage.dtype, h.storageOffset, h.shape]).toEqual(['F16', 'U8', 1, [5]]);
    // one element more would pass the 12 bytes of the storage
    await expectCode(() => runTorchPickle(Buffer.from(v3.toString('latin1').replace('J\x05\x00\x00\x00', 'J\x06\x00\x00\x00'), 'latin1')), 'BAD_CHECKPOINT', /reaches/);
    await expectCode(() => runTorchPickle(Buffer.concat([P.proto(), P.global('torch', 'float8_e4m3fn'), P.raw('.')])), 'UNSUPPORTED');
    await expectCode(() => runTorchPickle(Buffer.concat([P.proto(), P.global('torch', 'ComplexFloatStorage'), P.raw('.')])), 'UNSUPPORTED');
    const pid = Buffer.concat([P.proto(), P.tuple(P.str('module'), P.int(1)), P.raw('Q.')]);
    await expectCode(() => runTorchPickle(pid), 'BAD_CHECKPOINT', /persistent id/);
  });

  it('every truncation of a real data.pkl is a typed error; random corruption never escapes untyped', async () => {
    const zip = await ZipReader.open(join(FIX, 'open_clip_like.pt'));
    const pkl = await zip.readAll('open_clip_like/data.pkl');
    await zip.close();
    expect(runTorchPickle(pkl).end).toBe(pkl.length);
    for (let cut = 0; cut < pkl.length; cut++) {
      await expectCode(() => runTorchPickle(pkl.subarray(0, cut)), 'BAD_CHECKPOINT');
    }
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    for (let i = 0; i < 3000; i++) {
      const m = Buffer.from(pkl);
      const flips = 1 + Math.floor(rnd() * 3);
      for (let f = 0; f < flips; f++) m[Math.floor(rnd() * m.length)] = Math.floor(rnd() * 256);
      await typedOrOk(() => runTorchPickle(m));
    }
  });
});

describe('zip reader', () => {
  it('lists torch entries (stored, 64-byte aligned data)', async () => {
    const z = await ZipReader.open(join(FIX, 'state_dict.pt'));
    try {
      const names = z.entries().map((e) => e.name);
      expect(names[0]).toBe('state_dict/data.pkl');
      expect(names).toContain('state_dict/version');
      for (const e of z.entries()) {
        expect(e.method).toBe(0);
        expect((await z.dataOffset(e)) % 64).toBe(0);
      }
      expect((await z.readAll('state_dict/version')).toString().trim()).toBe('3');
      await expectCode(z.read('state_dict/version', 1, 5), 'BAD_CHECKPOINT', /outside entry/);
      await expectCode(z.read('nope'), 'BAD_CHECKPOINT', /no entry/);
    } finally {
      await z.close();
    }
    await expectCode(z.read('state_dict/version'), 'DISPOSED');
  });

  it('every truncation and random corruption of zip checkpoints is a typed error or a valid read', async () => {
    for (const f of ['state_dict.pt', 'sharded/pytorch_model-00002-of-00002.bin']) {
      const full = await readFile(join(FIX, f));
      const p = join(tmp, 'cut.pt');
      // every cut through the directory at the end, every 23rd byte before it
      const cuts = [];
      for (let cut = 0; cut < full.length; cut += cut < full.length - 400 ? 23 : 1) cuts.push(cut);
      for (const cut of cuts) {
        await writeFile(p, full.subarray(0, cut));
        expect(await typedOrOk(() => readEverything(p)), `${f} cut at ${cut}`).toBeDefined();
      }
      let seed = 7;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
      for (let i = 0; i < 150; i++) {
        const m = Buffer.from(full);
        // corrupt the structures (data.pkl and the directory at the end), not just tensor bytes
        const region = rnd() < 0.5 ? [0, 1100] : [full.length - 1300, full.length];
        for (let k = 0; k < 2; k++) m[region[0]! + Math.floor(rnd() * (region[1]! - region[0]!))] = Math.floor(rnd() * 256);
        await writeFile(p, m);
        await typedOrOk(() => readEverything(p));
      }
    }
  });

  it('inflates DEFLATE entries (a zip tool re-compressed the checkpoint)', async () => {
    const c = await openTorchCheckpoint(join(FIX, 'state_dict_deflated.pt'));
    try {
      const z = await ZipReader.open(join(FIX, 'state_dict_deflated.pt'));
      expect(z.entry('state_dict/data.pkl').method).toBe(8);
      await z.close();
      await expectAll(c.tensors, EXPECTED['state_dict_deflated.pt'].tensors);
    } finally {
      await c.close();
    }
  });

  it('refuses compressed entries with a method it cannot read', async () => {
    const full = await readFile(join(FIX, 'state_dict.pt'));
    const z = await ZipReader.open(join(FIX, 'state_dict.pt'));
    const cdOffset = z.entries().length; // just to use z before closing
    await z.close();
    expect(cdOffset).toBeGreaterThan(0);
    // flip the method of every central record to 12 (bzip2)
    const m = Buffer.from(full);
    for (let i = m.indexOf(Buffer.from([0x50, 0x4b, 1, 2])); i >= 0; i = m.indexOf(Buffer.from([0x50, 0x4b, 1, 2]), i + 4)) m.writeUInt16LE(12, i + 10);
    await writeFile(join(tmp, 'bz.pt'), m);
    await expectCode(openTorchCheckpoint(join(tmp, 'bz.pt')), 'UNSUPPORTED', /compression method 12/);
  });

  it('reads zip64 archives past 4 GiB, touching only the requested bytes (sparse file)', async () => {
    const path = join(tmp, 'big.pt');
    const bigNumel = 0x48000000 / 4; // a 1.125 GiB storage, then a 3-GiB one, so the last entry sits past 4 GiB
    const hugeNumel = 0xc0000000 / 4;
    const small = Float32Array.from([1.5, -2, 3.25, 1e-3, 7, 8]);
    const pkl = Buffer.concat([P.proto(), P.dict([
      ['big', P.tensor('0', 'FloatStorage', bigNumel, 0, [bigNumel], [1])],
      ['huge', P.tensor('1', 'FloatStorage', hugeNumel, 0, [hugeNumel / 1024, 1024], [1024, 1])],
      ['small', P.tensor('2', 'FloatStorage', 6, 0, [2, 3], [3, 1])],
      ['small.t', P.tensor('2', 'FloatStorage', 6, 0, [3, 2], [1, 3])],
    ]), Buffer.from('.')]);
    await writeZip(path, [
      { name: 'big/data.pkl', size: pkl.length, data: pkl },
      { name: 'big/data/0', size: bigNumel * 4 },
      { name: 'big/data/1', size: hugeNumel * 4 },
      { name: 'big/data/2', size: 24, data: Buffer.from(small.buffer) },
      { name: 'big/version', size: 1, data: Buffer.from('3') },
    ]);
    try {
      const c = await openTorchCheckpoint(path);
      try {
        expect(c.tensors.get('huge')!.shape).toEqual([hugeNumel / 1024, 1024]);
        const before = c.bytesRead();
        expect(before).toBeLessThan(200_000);
        expect([...(await c.tensors.get('small')!.readFloat32())]).toEqual([...small]);
        expect([...(await c.tensors.get('small.t')!.readFloat32())]).toEqual([1.5, 1e-3, -2, 7, 3.25, 8].map(Math.fround));
        expect(c.bytesRead() - before).toBe(30 + 24 + 24); // one local header, the data twice
        const z = await ZipReader.open(path);
        expect(z.entry('big/data/2').localHeaderOffset).toBeGreaterThan(2 ** 32);
        expect(z.entry('big/data/1').uncompressedSize).toBe(0xc0000000);
        // a range at the end of the 3-GiB entry (a hole: zeros)
        const tail = await z.read('big/data/1', 0xc0000000 - 8, 8);
        expect([...tail]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
        await z.close();
      } finally {
        await c.close();
      }
    } finally {
      await rm(path, { force: true });
    }
  });

  it('bounds: an entry past the directory, a directory past the end, a lying entry count', async () => {
    const p = join(tmp, 'z.zip');
    // forced zip64 everywhere still reads
    await writeZip(p, [{ name: 'a', size: 3, data: Buffer.from('abc') }], true);
    const z = await ZipReader.open(p);
    expect((await z.readAll('a')).toString()).toBe('abc');
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926); // the CRC-32 check value
    await z.close();
    const good = await readFile(p);
    // entry size larger than the file
    const big = Buffer.from(good);
    const cd = big.indexOf(Buffer.from([0x50, 0x4b, 1, 2]));
    big.writeBigUInt64LE(10n ** 12n, cd + 46 + 1 + 4);
    big.writeBigUInt64LE(10n ** 12n, cd + 46 + 1 + 12);
    await writeFile(p, big);
    await expectCode(ZipReader.open(p), 'BAD_CHECKPOINT', /overlaps the central directory/);
    // central directory offset beyond the file
    const off = Buffer.from(good);
    const e64 = off.indexOf(Buffer.from([0x50, 0x4b, 6, 6]));
    off.writeBigUInt64LE(2n ** 40n, e64 + 48);
    await writeFile(p, off);
    await expectCode(ZipReader.open(p), 'BAD_CHECKPOINT');
    // an entry count the directory cannot hold
    const cnt = Buffer.from(good);
    cnt.writeBigUInt64LE(10n ** 6n, e64 + 24);
    cnt.writeBigUInt64LE(10n ** 6n, e64 + 32);
    await writeFile(p, cnt);
    await expectCode(ZipReader.open(p), 'BAD_CHECKPOINT', /cannot fit/);
    // a huge u64 beyond 2^53
    const huge = Buffer.from(good);
    huge.writeBigUInt64LE(2n ** 63n, e64 + 40);
    await writeFile(p, huge);
    await expectCode(ZipReader.open(p), 'BAD_CHECKPOINT', /out of range/);
    await writeFile(p, Buffer.alloc(10));
    await expectCode(ZipReader.open(p), 'BAD_CHECKPOINT', /too small/);
    await writeFile(p, Buffer.alloc(5000));
    await expectCode(ZipReader.open(p), 'BAD_CHECKPOINT', /end-of-central-directory/);
  });
});

describe('safetensors', () => {
  it('reads F32/F16/BF16/I64, a scalar, an empty tensor and the metadata', async () => {
    const want = EXPECTED['model.safetensors'];
    const s = await openSafetensors(join(FIX, 'model.safetensors'));
    try {
      await expectAll(s.tensors, want.tensors);
      expect(Object.fromEntries(s.metadata)).toEqual(want.metadata);
      const t = s.tensors.get('a.f16')!;
      const before = s.bytesRead();
      await t.readRaw();
      expect(s.bytesRead() - before).toBe(t.numel * 2);
    } finally {
      await s.close();
    }
  });

  it('reads a sharded model.safetensors.index.json', async () => {
    const c = await openCheckpoint(join(FIX, 'sharded-safetensors', 'model.safetensors.index.json'));
    try {
      const want = EXPECTED['sharded-safetensors/model.safetensors.index.json'].tensors;
      expect(new Set(c.tensors.keys())).toEqual(new Set(Object.keys(want)));
      for (const [name, t] of c.tensors) await expectTensor(t, want[name]);
    } finally {
      await c.close();
    }
  });

  it('refuses malformed headers with typed errors', async () => {
    const p = join(tmp, 'x.safetensors');
    const make = async (header: unknown, dataBytes: number, lenOverride?: bigint) => {
      const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
      await writeFile(p, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
    };
    const cases: Array<[unknown, number, bigint | undefined, string, RegExp]> = [
      [{}, 0, 2n ** 62n, 'BAD_CHECKPOINT', /limit/],
      [{}, 0, 1000n, 'BAD_CHECKPOINT', /past the end/],
      ['{not json', 0, undefined, 'BAD_CHECKPOINT', /JSON/],
      ['[1,2]', 0, undefined, 'BAD_CHECKPOINT', /object/],
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, 4, undefined, 'BAD_CHECKPOINT', /outside/],
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, 8, undefined, 'BAD_CHECKPOINT', /expected/],
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8, undefined, 'BAD_CHECKPOINT', /outside/],
      [{ a: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, 8, undefined, 'BAD_CHECKPOINT', /shape/],
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 1.5] } }, 8, undefined, 'BAD_CHECKPOINT', /data_offsets/],
      [{ a: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, 8, undefined, 'UNSUPPORTED', /C64/],
      [{ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8, undefined, 'BAD_CHECKPOINT', /overlap/],
      [{ __metadata__: { a: 1 } }, 0, undefined, 'BAD_CHECKPOINT', /metadata/],
      [{ a: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 8] } }, 8, undefined, 'BAD_CHECKPOINT', /too many|expected/],
    ];
    for (const [h, n, len, code, msg] of cases) {
      await make(h, n, len);
      await expectCode(openSafetensors(p), code, msg);
    }
    await writeFile(p, Buffer.alloc(3));
    await expectCode(openSafetensors(p), 'BAD_CHECKPOINT', /too small/);
    // every truncation of the real fixture
    const full = await readFile(join(FIX, 'model.safetensors'));
    for (let cut = 0; cut < full.length; cut += 3) {
      await writeFile(p, full.subarray(0, cut));
      expect(await typedOrOk(async () => {
        const s = await openSafetensors(p);
        await s.close();
      }), `cut ${cut}`).toBeDefined();
    }
  });
});

describe('SentencePiece', () => {
  for (const file of ['tokenizer.model', 'tokenizer-edited.model']) {
    it(`${file}: the pieces, scores, types and ids python's sentencepiece reports`, async () => {
      const want = EXPECTED[file];
      const m = await readSentencePiece(join(FIX, file));
      expect(m.tokens).toEqual(want.tokens);
      expect(m.scores.length).toBe(want.scores.length);
      for (let i = 0; i < m.scores.length; i++) expect(m.scores[i]).toBe(Math.fround(want.scores[i]));
      expect([...m.types]).toEqual(want.types);
      expect({ bos: m.bosId, eos: m.eosId, unk: m.unkId, pad: m.padId }).toEqual({ bos: want.bosId, eos: want.eosId, unk: want.unkId, pad: want.padId });
      expect(m.addDummyPrefix).toBe(want.addDummyPrefix);
      expect(m.byteFallback).toBe(want.byteFallback);
      expect(m.modelType).toBe(want.modelType);
      expect(m.modelTypeName).toBe('bpe');
      // llama.cpp's numbering: UNKNOWN 2, CONTROL 3, USER_DEFINED 4, BYTE 6
      expect(m.types[m.tokens.indexOf('<unk>')]).toBe(2);
      expect(m.types[m.tokens.indexOf('<ctrl>')]).toBe(3);
      expect(m.types[m.tokens.indexOf('<image>')]).toBe(4);
      expect(m.types[m.tokens.indexOf('<0x41>')]).toBe(6);
    });
  }

  it('keeps the raw trainer_spec ids of the edited model', async () => {
    const m = await readSentencePiece(join(FIX, 'tokenizer-edited.model'));
    expect(m.specIds).toEqual({ unk: 0, bos: 1, eos: -1, pad: 3 });
    expect(m.types[300]).toBe(5);
  });

  it('malformed protobufs give BAD_CHECKPOINT; truncations never escape untyped', async () => {
    const cases: Array<[number[], RegExp]> = [
      [[0x0a, 0x05, 0x0a, 0x01], /past the end/],
      [[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f], /past the end/],
      [[0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], /longer than 10/],
      [[0x0b], /wire type 3/],
      [[0x00], /field number 0/],
      [[0x0d, 1, 2, 3, 4], /wire type 5/],
      [[0x0a, 0x02, 0x15, 0x00], /truncated fixed32/],
      [[0x0a, 0x02, 0x18, 0x01], /no text/],
      [[0x0a, 0x05, 0x0a, 0x01, 0x61, 0x18, 0x09], /unknown type 9/],
      [[0x12, 0x00], /no pieces/],
      [[0x0a, 0x03, 0x0a, 0x01, 0x61, 0x12, 0x03, 0xc8, 0x02, 0x05], /bos_id 5/],
    ];
    for (const [bytes, msg] of cases) {
      await expectCode(() => parseSentencePiece(Uint8Array.from(bytes)), 'BAD_CHECKPOINT', msg);
    }
    const full = await readFile(join(FIX, 'tokenizer.model'));
    let okCuts = 0;
    for (let cut = 0; cut < full.length; cut += 3) {
      const err = await typedOrOk(() => parseSentencePiece(full.subarray(0, cut)));
      if (!err) okCuts++; // a cut at a field boundary is a valid (smaller) model
    }
    expect(okCuts).toBeLessThan(full.length / 3);
    let seed = 3;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    for (let i = 0; i < 500; i++) {
      const m = Buffer.from(full);
      m[Math.floor(rnd() * m.length)] = Math.floor(rnd() * 256);
      await typedOrOk(() => parseSentencePiece(m));
    }
  });
});

describe('error codes', () => {
  it('UNSAFE_PICKLE and BAD_CHECKPOINT are public codes', async () => {
    const { ERROR_CODES } = await import('../lib/errors.js');
    expect(ERROR_CODES).toContain('UNSAFE_PICKLE');
    expect(ERROR_CODES).toContain('BAD_CHECKPOINT');
    expect(isLlavaRadError(new LlavaRadError('UNSAFE_PICKLE', 'x'), 'UNSAFE_PICKLE')).toBe(true);
  });
});
