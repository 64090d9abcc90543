// Hostile PyTorch checkpoints (issue #20 items 2 and 3): pickle bombs, quadratic opcodes, cycles and deep
// nesting must end in typed LlavaRadErrors, quickly and in bounded memory. Every input is built here
// (test/helpers/hostile-pickle.ts), sized just past the cap it exercises.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlavaRadError } from '../lib/errors.js';
import {
  MAX_PICKLE_BYTES, PyDict, TorchStorage, TorchTensor, extractStateDict, openTorchCheckpoint, torchGlobals, unpickleTorch,
} from '../lib/convert/pickle.js';
import { PICKLE_LIMITS, unpickle } from '../lib/convert/unpickler.js';
import { ZipReader } from '../lib/convert/zip.js';
import {
  OP, global, int, op4, orderedDict, proto, raw, repeat, storagePid, str, tensor, torchZip, tuple,
} from './helpers/hostile-pickle.js';

let tmp: string;
let fileNo = 0;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'llava-rad-hostile-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** writes `bytes` to a new file in the temporary folder */
async function file(bytes: Buffer, name = 'adapter_model.bin'): Promise<string> {
  const dir = join(tmp, String(fileNo++));
  await mkdir(dir);
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

/** `run` (a promise, or a function run later) fails with a LlavaRadError of `code` whose message matches `msg` */
async function expectCode(run: Promise<unknown> | (() => unknown), code: string, msg: RegExp): Promise<LlavaRadError> {
  const err: unknown = await (typeof run === 'function' ? Promise.resolve().then(run) : run).then(() => undefined, (e: unknown) => e);
  expect(err, 'expected a LlavaRadError').toBeInstanceOf(LlavaRadError);
  expect(err).toMatchObject({ code, message: expect.stringMatching(msg) });
  return err as LlavaRadError;
}

/** opens a torch zip whose data.pkl is `pickle` (deflated) and closes it again */
async function openZip(pickle: Buffer, storages: Record<string, Buffer> = {}): Promise<void> {
  const c = await openTorchCheckpoint(await file(torchZip(pickle, storages)));
  await c.close();
}

const plain = (buf: Buffer) => unpickle(buf, { label: 't.pkl', resolveGlobal: torchGlobals('t.pkl') });
const torch = (buf: Buffer) =>
  unpickleTorch(buf, 't.pkl', (key, dtype, location, numel) => new TorchStorage(key, dtype, location, numel));

/** `depth` lists nested in one another: [[[...[]...]]] (protocol 1 MARK ... LIST, no recursion to build) */
const nestedList = (depth: number): Buffer => Buffer.concat([repeat(OP.MARK, depth), repeat(OP.LIST, depth)]);

describe('pickle bombs in a deflated data.pkl', () => {
  it('a data.pkl that inflates to 1 byte over 64 MiB is refused before it is inflated', { timeout: 20000 }, async () => {
    expect(MAX_PICKLE_BYTES).toBe(64 * 1024 * 1024);
    const bomb = torchZip(Buffer.concat([proto(), repeat(OP.NONE, MAX_PICKLE_BYTES - 2), raw(OP.STOP)]));
    expect(bomb.length).toBeLessThan(1 << 20); // a small file...
    const path = await file(bomb);
    const z = await ZipReader.open(path);
    try {
      expect(z.entry('archive/data.pkl').uncompressedSize).toBe(MAX_PICKLE_BYTES + 1); // ...whose pickle is 64 MiB + 1
    } finally {
      await z.close();
    }
    await expectCode(openTorchCheckpoint(path), 'BAD_CHECKPOINT',
      /archive\/data\.pkl is 67108865 bytes \(inflated\); a checkpoint's pickle may be at most 67108864 bytes \(64 MiB\)/);
  });

  it('NONE opcodes past the stack cap (1Mi items) are refused', { timeout: 20000 }, async () => {
    const n = PICKLE_LIMITS.stackItems + 1;
    await expectCode(openZip(Buffer.concat([proto(), repeat(OP.NONE, n), raw(OP.STOP)])), 'BAD_CHECKPOINT',
      /pickle refused at byte \d+: more than 1048576 items and MARKs on the stack/);
  });

  it('MARK opcodes past the cap (the metastack counts) are refused', { timeout: 20000 }, async () => {
    const n = PICKLE_LIMITS.stackItems + 1;
    await expectCode(openZip(Buffer.concat([proto(), repeat(OP.MARK, n), raw(OP.STOP)])), 'BAD_CHECKPOINT',
      /more than 1048576 items and MARKs on the stack/);
    // items saved under MARKs count too
    await expectCode(() => plain(Buffer.concat([proto(), repeat(raw(OP.NONE, OP.MARK), n / 2 + 1), raw(OP.STOP)])), 'BAD_CHECKPOINT',
      /more than 1048576 items and MARKs on the stack/);
  });

  it('memo entries past the cap (4Mi) are refused; a huge memo index is a map key, not a sparse array', { timeout: 20000 }, async () => {
    await expectCode(openZip(Buffer.concat([proto(4), raw(OP.NONE), repeat(OP.MEMOIZE, PICKLE_LIMITS.memoEntries + 1), raw(OP.STOP)])),
      'BAD_CHECKPOINT', /more than 4194304 memo entries/);
    const v = plain(Buffer.concat([proto(), str('x'), op4(OP.LONG_BINPUT, 0xffffffff), raw(OP.POP), op4(OP.LONG_BINGET, 0xffffffff), raw(OP.STOP)]));
    expect(v.value).toBe('x');
  });

  it('containers past the value cap (16Mi units) are refused: a list of 16Mi Nones', { timeout: 20000 }, async () => {
    expect(PICKLE_LIMITS.values).toBe(1 << 24);
    // APPENDS batches (each under the stack cap) of None: one unit per item
    const batch = Buffer.concat([raw(OP.MARK), repeat(OP.NONE, (1 << 20) - 16), raw(OP.APPENDS)]);
    await expectCode(openZip(Buffer.concat([proto(), raw(OP.EMPTY_LIST), repeat(batch, 17), raw(OP.STOP)])), 'BAD_CHECKPOINT',
      /it builds more than 16777216 values/);
  });

  it('containers past the value cap are refused: a list of millions of empty dicts', { timeout: 20000 }, async () => {
    // EMPTY_DICT APPEND: two bytes of pickle per dict (8 units + 1 for the slot)
    const dicts = Buffer.concat([proto(), raw(OP.EMPTY_LIST), repeat(raw(OP.EMPTY_DICT, OP.APPEND), Math.ceil(PICKLE_LIMITS.values / 9) + 1), raw(OP.STOP)]);
    await expectCode(() => plain(dicts), 'BAD_CHECKPOINT', /it builds more than 16777216 values/);
  });

  it('calls cannot amplify: bytes() of one memoized string, set() of one memoized list, over and over', { timeout: 20000 }, async () => {
    // _codecs.encode(s) of a 1 MiB string 65 times = 65 MiB of bytes objects
    const s = 'a'.repeat(1 << 20);
    const encode = Buffer.concat([
      proto(), raw(OP.EMPTY_LIST), global('_codecs', 'encode'), raw(OP.BINPUT, 0), str(s), raw(OP.BINPUT, 1), raw(OP.POP, OP.POP),
      repeat(raw(OP.BINGET, 0, OP.BINGET, 1, OP.TUPLE1, OP.REDUCE, OP.APPEND), 65), raw(OP.STOP),
    ]);
    await expectCode(() => plain(encode), 'BAD_CHECKPOINT', /its calls build more than 67108864 bytes of bytes objects/);
    // set(l) of a memoized list of (almost) 1Mi Nones: tiny results, but each call walks the list
    const sets = Buffer.concat([
      proto(), raw(OP.EMPTY_LIST, OP.MARK), repeat(OP.NONE, (1 << 20) - 16), raw(OP.APPENDS, OP.BINPUT, 0, OP.POP),
      global('builtins', 'set'), raw(OP.BINPUT, 1, OP.POP),
      repeat(raw(OP.BINGET, 1, OP.BINGET, 0, OP.TUPLE1, OP.REDUCE, OP.POP), 17), raw(OP.NONE, OP.STOP),
    ]);
    await expectCode(() => plain(sets), 'BAD_CHECKPOINT', /it builds more than 16777216 values/);
  });
});

describe('opcodes decode in linear time', () => {
  it('a LONG4 over 256 bytes is refused: 60 LONG4s of 1 MiB in a deflated data.pkl end at the first', { timeout: 20000 }, async () => {
    expect(PICKLE_LIMITS.longBytes).toBe(256);
    await expectCode(() => plain(Buffer.concat([proto(), op4(OP.LONG4, 257), Buffer.alloc(257, 1), raw(OP.STOP)])), 'BAD_CHECKPOINT',
      /a LONG4 integer of 257 bytes is too large \(at most 256\)/);
    const one = Buffer.concat([op4(OP.LONG4, 1 << 20), Buffer.alloc(1 << 20, 0x5a), raw(OP.POP)]);
    await expectCode(openZip(Buffer.concat([proto(), repeat(one, 60), raw(OP.NONE, OP.STOP)])), 'BAD_CHECKPOINT',
      /a LONG4 integer of 1048576 bytes is too large \(at most 256\)/);
  });

  it('LONG1 / LONG4 integers of up to 256 bytes decode exactly (two\'s complement, little-endian)', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) >> 8) & 0xff;
    const reference = (b: Buffer): bigint => { // the definition, byte by byte
      let v = 0n;
      for (let i = b.length - 1; i >= 0; i--) v = v * 256n + BigInt(b[i]!);
      return b.length > 0 && b[b.length - 1]! >= 0x80 ? v - 2n ** BigInt(8 * b.length) : v;
    };
    const lengths = [0, 1, 2, 5, 6, 7, 8, 9, 10, 17, 64, 200, 255];
    for (const n of lengths) {
      for (const fill of ['random', 'ff', '80', '7f'] as const) {
        const b = Buffer.alloc(n, fill === 'ff' ? 0xff : fill === '7f' ? 0x7f : 0);
        if (fill === 'random') for (let i = 0; i < n; i++) b[i] = rnd();
        if (fill === '80' && n > 0) b[n - 1] = 0x80;
        const want = reference(b);
        const norm = want >= BigInt(Number.MIN_SAFE_INTEGER) && want <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(want) : want;
        expect(plain(Buffer.concat([proto(), raw(OP.LONG1, n), b, raw(OP.STOP)])).value, `LONG1 ${n} ${fill}`).toBe(norm);
      }
    }
    const b256 = Buffer.alloc(256, 0xa5);
    expect(plain(Buffer.concat([proto(), op4(OP.LONG4, 256), b256, raw(OP.STOP)])).value).toBe(reference(b256));
  });

  it('protocol 0 INT / LONG literals over 1024 characters are refused', () => {
    expect(PICKLE_LIMITS.intDigits).toBe(1024);
    const long = '9'.repeat(1024);
    expect(plain(raw(OP.LONG, `${long}L\n`, OP.STOP)).value).toBe(BigInt(long));
    return Promise.all([
      expectCode(() => plain(raw(OP.INT, `${'1'.repeat(1025)}\n`, OP.STOP)), 'BAD_CHECKPOINT', /INT literal of 1025 characters \(at most 1024\)/),
      expectCode(() => plain(raw(OP.LONG, `-${'1'.repeat(1025)}L\n`, OP.STOP)), 'BAD_CHECKPOINT', /LONG literal of 1026 characters/),
      expectCode(() => plain(raw(OP.INT, '12x\n', OP.STOP)), 'BAD_CHECKPOINT', /bad INT literal \(3 characters, not a decimal integer\)/),
    ]);
  });

  it('a STRING of 16M characters full of escapes is decoded in one piece, exactly', { timeout: 20000 }, () => {
    // each unit: a, \x41, \101, \n, \\ -> "aAA\n\\"
    const units = 1 << 22;
    const literal = repeat(Buffer.from("a\\x41\\101\\n\\\\", 'latin1'), units);
    const v = plain(Buffer.concat([raw(OP.STRING, "'"), literal, raw("'\n", OP.STOP)])).value as string;
    expect(v.length).toBe(5 * units);
    expect(v.slice(0, 10)).toBe('aAA\n\\aAA\n\\');
    expect(v.slice(-5)).toBe('aAA\n\\');
    // raw-unicode-escape (UNICODE): Latin-1 bytes, \u and \U escapes (a surrogate pair)
    const u = repeat(Buffer.concat([Buffer.from([0xe9]), Buffer.from('\\u20ac\\U0001f600z', 'latin1')]), 1 << 20);
    const w = plain(Buffer.concat([raw(OP.UNICODE), u, raw('\n', OP.STOP)])).value as string;
    expect(w.length).toBe(5 * (1 << 20));
    expect(w.slice(0, 10)).toBe('é€😀zé€😀z');
    return Promise.all([
      expectCode(() => plain(raw(OP.STRING, "'\\x4'\n", OP.STOP)), 'BAD_CHECKPOINT', /bad escape in STRING literal/),
      expectCode(() => plain(raw(OP.UNICODE, '\\U00110000\n', OP.STOP)), 'BAD_CHECKPOINT', /bad escape in UNICODE literal/),
    ]);
  });

  it('lengths are checked against the bytes left before anything is allocated', async () => {
    for (const op of [OP.BINUNICODE, OP.BINBYTES]) {
      await expectCode(() => plain(Buffer.concat([proto(), op4(op, 0xfffffff0), raw('abc')])), 'BAD_CHECKPOINT', /truncated/);
    }
    for (const op of [0x8d, 0x8e, 0x96, 0x95]) { // BINUNICODE8, BINBYTES8, BYTEARRAY8, FRAME
      await expectCode(() => plain(Buffer.concat([proto(5), raw(op), Buffer.alloc(8, 0x7f), raw('abc')])), 'BAD_CHECKPOINT', /truncated/);
    }
  });

  it('long names in refusals are cut, never echoed whole', async () => {
    const e = await expectCode(() => plain(Buffer.concat([proto(), global('os'.repeat(1 << 19), 'system'), raw(OP.STOP)])), 'UNSAFE_PICKLE',
      /the global osos.*\.\.\. \(1048583 characters\)/);
    expect(e.message.length).toBeLessThan(400);
  });
});

describe('cycles and deep nesting end in typed errors, not stack overflows', () => {
  it('a storage view that contains itself (JSON.stringify cycle) or nests 100k deep is refused', async () => {
    // ('storage', torch.FloatStorage, '0', 'cpu', 4, view) with view = [view]
    const pid = (view: Buffer) => Buffer.concat([
      tuple(str('storage'), global('torch', 'FloatStorage'), str('0'), str('cpu'), int(4), view), raw(OP.BINPERSID),
    ]);
    const cyclic = Buffer.concat([raw(OP.EMPTY_LIST, OP.BINPUT, 9, OP.BINGET, 9, OP.APPEND)]);
    await expectCode(openZip(Buffer.concat([proto(), pid(cyclic), raw(OP.STOP)]), { 0: Buffer.alloc(16) }), 'BAD_CHECKPOINT',
      /storage "0" view metadata holds an array of length 1 \(expected strings and integers\)/);
    await expectCode(() => torch(Buffer.concat([proto(), pid(nestedList(100_000)), raw(OP.STOP)])), 'BAD_CHECKPOINT',
      /storage "0" view metadata holds an array of length 1/);
    await expectCode(() => torch(Buffer.concat([proto(), pid(str('not a tuple')), raw(OP.STOP)])), 'BAD_CHECKPOINT',
      /view metadata that is not a short tuple \(got "not a tuple"\)/);
  });

  it('deeply nested values in persistent ids, tensor arguments and torch.device are described, not stringified', async () => {
    const deep = nestedList(100_000);
    await expectCode(() => torch(Buffer.concat([proto(), tuple(deep, int(1)), raw(OP.BINPERSID, OP.STOP)])), 'BAD_CHECKPOINT',
      /unsupported persistent id \(an array of length 1, \.\.\.\)/);
    await expectCode(() => torch(Buffer.concat([proto(), tuple(str('storage'), deep, str('0'), str('cpu'), int(4)), raw(OP.BINPERSID, OP.STOP)])),
      'BAD_CHECKPOINT', /unknown storage type an array of length 1/);
    await expectCode(() => torch(Buffer.concat([proto(), tuple(str('storage'), global('torch', 'FloatStorage'), str('0'), deep, int(4)),
      raw(OP.BINPERSID, OP.STOP)])), 'BAD_CHECKPOINT', /storage "0" has location an array of length 1 \(expected a device name/);
    const t = Buffer.concat([
      global('torch._utils', '_rebuild_tensor_v2'),
      tuple(storagePid('0', 'FloatStorage', 4), deep, tuple(int(4)), tuple(int(1))), raw(OP.REDUCE, OP.STOP),
    ]);
    await expectCode(() => torch(Buffer.concat([proto(), t])), 'BAD_CHECKPOINT',
      /storage offset must be a non-negative integer, got an array of length 1/);
    await expectCode(() => plain(Buffer.concat([proto(), global('torch', 'device'), tuple(deep), raw(OP.REDUCE, OP.STOP)])),
      'BAD_CHECKPOINT', /torch\.device arguments must be a short string and an integer, got an array of length 1/);
    expect(plain(Buffer.concat([proto(), global('torch', 'device'), tuple(str('cuda'), int(1)), raw(OP.REDUCE, OP.STOP)])).value).toBe('cuda:1');
  });

  it('state-dict keys nested 100k deep are named by a description; two such tensors collide as a typed error', async () => {
    const deepTuple = Buffer.concat([repeat(OP.MARK, 100_000), repeat(OP.TUPLE, 100_000)]);
    const w = tensor(storagePid('0', 'FloatStorage', 4), 0, [4], [1]);
    const dict = (...keys: Buffer[]) => Buffer.concat([
      proto(), global('collections', 'OrderedDict'), raw(OP.EMPTY_TUPLE, OP.REDUCE, OP.MARK), str('ok'), w,
      ...keys.flatMap((k) => [k, w]), raw(OP.SETITEMS, OP.STOP),
    ]);
    const c = await openTorchCheckpoint(await file(torchZip(dict(deepTuple), { 0: Buffer.alloc(16) })));
    expect([...c.tensors.keys()]).toEqual(['ok', '<an array of length 1>']);
    await c.close();
    await expectCode(openZip(dict(deepTuple, deepTuple), { 0: Buffer.alloc(16) }), 'BAD_CHECKPOINT',
      /two tensors are named "<an array of length 1>"/);
  });

  it('a state dict that contains itself is a cycle; one nested 100k deep stops at the depth limit', async () => {
    // d = OrderedDict(); d['self'] = d
    const cyc = Buffer.concat([proto(), raw(OP.EMPTY_DICT, OP.BINPUT, 0), str('self'), raw(OP.BINGET, 0, OP.SETITEM, OP.STOP)]);
    await expectCode(openZip(cyc), 'BAD_CHECKPOINT', /the state dict contains itself \(a cycle at "self"\)/);
    // {'a': {'a': {... 100k deep}}}: EMPTY_DICT 'a' pairs closed from the inside out
    const depth = 100_000;
    const deep = Buffer.concat([
      proto(), repeat(Buffer.concat([raw(OP.EMPTY_DICT), str('a')]), depth), raw(OP.EMPTY_DICT), repeat(OP.SETITEM, depth), raw(OP.STOP),
    ]);
    await expectCode(openZip(deep), 'BAD_CHECKPOINT', /state dict nested deeper than 32/);
    // without the depth limit the walk (no recursion) goes on until the names grow past 4096 characters
    const v = torch(deep).value;
    await expectCode(() => extractStateDict(v, 'deep', { maxDepth: 1_000_000 }), 'BAD_CHECKPOINT', /a state dict name is 4097 characters long/);
  });

  it('state-dict names are bounded: one over 4096 characters, or shared sub-dicts multiplying long names', async () => {
    const long = Buffer.concat([proto(), raw(OP.EMPTY_DICT), str('k'.repeat(4097)), raw(OP.NONE, OP.SETITEM, OP.STOP)]);
    await expectCode(openZip(long), 'BAD_CHECKPOINT', /a state dict name is 4097 characters long \(at most 4096\)/);
    // d0 = {'<4000 chars>': None}; d(n+1) = {'a': d(n), 'b': d(n)}: 2^20 names of 4000+ characters
    const parts: Buffer[] = [proto(), raw(OP.EMPTY_DICT, OP.BINPUT, 0), str('k'.repeat(4000)), raw(OP.NONE, OP.SETITEM)];
    for (let i = 1; i <= 20; i++) {
      parts.push(raw(OP.EMPTY_DICT, OP.MARK), str('a'), raw(OP.BINGET, i - 1), str('b'), raw(OP.BINGET, i - 1), raw(OP.SETITEMS, OP.BINPUT, i));
    }
    parts.push(raw(OP.STOP));
    const v = torch(Buffer.concat(parts)).value;
    await expectCode(() => extractStateDict(v, 'dag'), 'BAD_CHECKPOINT', /names add up to more than 67108864 characters/);
    expect(v).toBeInstanceOf(PyDict);
  });
});

describe('deflated storages', () => {
  it('a DEFLATE storage viewed by 64 tensors is inflated once; reads are the caller\'s copies', { timeout: 20000 }, async () => {
    const n = 64;
    const per = 1 << 16; // elements per view
    const data = Buffer.alloc(n * per * 4);
    for (let i = 0; i < n * per; i++) data.writeFloatLE(i % 1000, i * 4);
    const items: Array<[string, Buffer]> = [];
    for (let t = 0; t < n; t++) items.push([`w${t}`, tensor(storagePid('0', 'FloatStorage', n * per), t * per, [per], [1])]);
    const path = await file(torchZip(Buffer.concat([proto(), orderedDict(items), raw(OP.STOP)]), { 0: data }, { deflateStorages: true }));
    const z = await ZipReader.open(path);
    const compressed = z.entry('archive/data/0').compressedSize;
    expect(z.entry('archive/data/0').method).toBe(8);
    await z.close();
    const c = await openTorchCheckpoint(path);
    try {
      const before = c.bytesRead();
      for (let t = 0; t < n; t++) {
        const f = await c.tensors.get(`w${t}`)!.readFloat32();
        expect([f[0], f[per - 1]]).toEqual([(t * per) % 1000, (t * per + per - 1) % 1000]);
      }
      // one inflate: the compressed bytes (and one local header) were read once, not 64 times
      expect(c.bytesRead() - before).toBeLessThan(compressed + 1024);
      const a = await c.tensors.get('w1')!.readRaw();
      a.fill(0xff);
      expect((await c.tensors.get('w1')!.readFloat32())[1]).toBe((per + 1) % 1000);
    } finally {
      await c.close();
    }
  });
});

describe('legacy (non-zip) pickles', () => {
  it('a legacy file whose pickles run past 64 MiB is refused at the limit', { timeout: 20000 }, async () => {
    // a GLOBAL whose module name never ends: the reader asks for more bytes (1, 4, 16, 64 MiB) and stops
    const path = await file(Buffer.concat([proto(), raw(OP.GLOBAL), Buffer.alloc(MAX_PICKLE_BYTES + 16, 0x61)]), 'model.pt');
    await expectCode(openTorchCheckpoint(path), 'BAD_CHECKPOINT',
      /the legacy checkpoint's pickles run past their first 67108864 bytes \(64 MiB, the limit for a checkpoint's pickle\)/);
  });
});
