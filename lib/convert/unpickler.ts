// A restricted unpickler: the pickle virtual machine (protocols 0..5) that builds only plain data.
//
// It never imports or calls anything. A GLOBAL / STACK_GLOBAL / INST opcode is resolved through the
// caller's allowlist (`resolveGlobal`); a name outside it is refused with LlavaRadError 'UNSAFE_PICKLE'
// at the moment it is named, before any REDUCE could call it. Allowed globals are data-only builders
// written here (see pickle.ts for PyTorch's). Extension-registry codes (EXT1/2/4) are refused the same way.
//
// Python values become:
//   None -> null; bool -> boolean; int -> number (bigint beyond 2^53); float -> number; str -> string;
//   bytes/bytearray -> Uint8Array; list -> array; tuple -> frozen array (see isPyTuple);
//   dict / OrderedDict -> PyDict (a Map keeping insertion order); set / frozenset -> Set;
//   an allowed global named as a value (e.g. torch.float16) -> PyGlobal.
// A malformed pickle (truncated, unknown opcode, stack underflow, missing memo key, lengths past the end)
// is a LlavaRadError 'BAD_CHECKPOINT'.

import { LlavaRadError } from '../errors.js';

/** dict / OrderedDict */
export class PyDict extends Map<unknown, unknown> {
  /** instance attributes set by BUILD (torch's state dicts carry `_metadata`) */
  attrs: unknown = undefined;
  constructor(readonly pyClass: 'dict' | 'OrderedDict' = 'dict') {
    super();
  }
}

/** an allowed global: `call` builds a value from the pickled arguments (data only) */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly call?: (args: readonly unknown[], how: 'reduce' | 'newobj') => unknown,
  ) {}
  toString(): string {
    return `${this.module}.${this.name}`;
  }
}

export function isPyTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

function tuple(items: unknown[]): readonly unknown[] {
  return Object.freeze(items);
}

export interface UnpickleOptions {
  /** file name for messages */
  label: string;
  /** returns the builder for module.name, or undefined to refuse it (UNSAFE_PICKLE) */
  resolveGlobal: (module: string, name: string) => PyGlobal | undefined;
  /** PERSID / BINPERSID: resolves a persistent id; absent = refuse persistent ids */
  persistentLoad?: (pid: unknown) => unknown;
  /** encoding of Python 2 str (STRING/BINSTRING) values; default utf8 (what torch.load uses) */
  byteStringEncoding?: BufferEncoding;
}

export interface UnpickleResult {
  value: unknown;
  /** offset just past the STOP opcode */
  end: number;
}

/** errors about a pickle that ended before its STOP opcode (legacy readers retry with more bytes) */
export const TRUNCATED = new WeakSet<LlavaRadError>();

const MARK = Symbol('mark');

/** the Python 2 names Python 3's unpickler maps (fix_imports) that matter here */
const PY2_MODULES: Readonly<Record<string, string>> = {
  __builtin__: 'builtins',
  copy_reg: 'copyreg',
  commands: 'subprocess',
  exceptions: 'builtins',
  UserDict: 'collections',
  cPickle: 'pickle',
  _abcoll: 'collections.abc',
};

function toIntFromLE(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return normInt(v);
}

function normInt(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** integer value of a pickled int (number or bigint); undefined for anything else */
export function pyInt(v: unknown): number | bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

/** decodes a Python string literal body (protocol 0 STRING) */
function decodeEscapes(s: string, raw: boolean): string | undefined {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\') { out += c; continue; }
    const n = s[++i];
    if (n === undefined) return undefined;
    if (raw) {
      if (n === 'u' || n === 'U') {
        const len = n === 'u' ? 4 : 8;
        const hex = s.slice(i + 1, i + 1 + len);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) return undefined;
        const cp = parseInt(hex, 16);
        if (cp > 0x10ffff) return undefined;
        out += String.fromCodePoint(cp);
        i += len;
      } else {
        out += '\\' + n;
      }
      continue;
    }
    const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v', '\n': '' };
    if (n in simple) { out += simple[n]; continue; }
    if (n === 'x') {
      const hex = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
      continue;
    }
    if (/[0-7]/.test(n)) {
      let oct = n;
      while (oct.length < 3 && /[0-7]/.test(s[i + 1] ?? '')) oct += s[++i];
      out += String.fromCharCode(parseInt(oct, 8) & 0xff);
      continue;
    }
    out += '\\' + n;
  }
  return out;
}

/** Runs the pickle that starts at `start` in `buf` and returns its value. */
export function unpickle(buf: Uint8Array, opts: UnpickleOptions, start = 0): UnpickleResult {
  const data = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const L = opts.label;
  const enc = opts.byteStringEncoding ?? 'utf8';
  let pos = start;
  let opPos = start;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const fail = (msg: string): LlavaRadError =>
    new LlavaRadError('BAD_CHECKPOINT', `${L}: malformed pickle at byte ${opPos}: ${msg}`);
  const truncated = (): LlavaRadError => {
    const e = new LlavaRadError('BAD_CHECKPOINT', `${L}: malformed pickle: truncated at byte ${data.length} (opcode at ${opPos})`);
    TRUNCATED.add(e);
    return e;
  };
  const need = (n: number): void => {
    if (!(n >= 0) || pos + n > data.length) throw truncated();
  };
  const take = (n: number): Buffer => {
    need(n);
    const b = data.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const u8 = (): number => { need(1); return data[pos++]!; };
  const u16 = (): number => { need(2); const v = data.readUInt16LE(pos); pos += 2; return v; };
  const u32 = (): number => { need(4); const v = data.readUInt32LE(pos); pos += 4; return v; };
  const i32 = (): number => { need(4); const v = data.readInt32LE(pos); pos += 4; return v; };
  const u64 = (): number => {
    need(8);
    const v = data.readBigUInt64LE(pos);
    pos += 8;
    // anything past the buffer is truncation; keep the number exact for the bounds check
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  };
  const line = (): string => {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) throw truncated();
    const s = data.toString('utf8', pos, nl);
    pos = nl + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw fail('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = metastack.pop();
    if (prev === undefined) throw fail('no MARK on the stack');
    stack = prev;
    return items;
  };
  const checkNoMark = (v: unknown): unknown => {
    if (v === MARK) throw fail('a MARK used as a value');
    return v;
  };
  const global = (rawModule: string, name: string): PyGlobal => {
    // Python 3 reads protocol 0-2 pickles with fix_imports: Python 2 module names map to Python 3 ones
    const module = PY2_MODULES[rawModule] ?? rawModule;
    const g = opts.resolveGlobal(module, name);
    if (!g) {
      const as = module === rawModule ? '' : ` (written as ${rawModule}.${name})`;
      throw new LlavaRadError('UNSAFE_PICKLE',
        `${L}: the pickle asks for the global ${module}.${name}${as}, which is not on the allowlist of data-only types; refused (nothing was executed)`);
    }
    return g;
  };
  const call = (callable: unknown, args: unknown, how: 'reduce' | 'newobj'): unknown => {
    if (!(callable instanceof PyGlobal)) throw fail(`${how === 'reduce' ? 'REDUCE' : 'NEWOBJ'} on a non-callable value`);
    if (!Array.isArray(args)) throw fail(`arguments of ${callable.toString()} are not a tuple`);
    if (!callable.call) {
      throw new LlavaRadError('UNSAFE_PICKLE', `${L}: the pickle calls ${callable.toString()}, which is allowed only as a value; refused`);
    }
    return callable.call(args, how);
  };
  const setItems = (d: unknown, items: unknown[]): void => {
    if (!(d instanceof PyDict)) throw fail('SETITEM(S) on a value that is not a dict');
    if (items.length % 2 !== 0) throw fail('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) d.set(checkNoMark(items[i]), checkNoMark(items[i + 1]));
  };
  const appendItems = (l: unknown, items: unknown[]): void => {
    if (!Array.isArray(l) || Object.isFrozen(l)) throw fail('APPEND(S) on a value that is not a list');
    for (const it of items) l.push(checkNoMark(it));
  };
  const addItems = (s: unknown, items: unknown[]): void => {
    if (!(s instanceof Set)) throw fail('ADDITEMS on a value that is not a set');
    for (const it of items) s.add(checkNoMark(it));
  };
  const memoGet = (i: number): unknown => {
    if (!memo.has(i)) throw fail(`memo key ${i} is not defined`);
    return memo.get(i);
  };
  const memoPut = (i: number): void => {
    memo.set(i, checkNoMark(top()));
  };
  const bytesOut = (b: Buffer): Uint8Array => new Uint8Array(b); // copy: never keep the whole pickle alive

  for (;;) {
    opPos = pos;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) throw fail(`unsupported pickle protocol ${v}`);
        break;
      }
      case 0x95: { // FRAME
        const n = u64();
        need(n);
        break;
      }
      case 0x2e: { // STOP
        const v = checkNoMark(pop());
        return { value: v, end: pos };
      }
      case 0x28: // MARK
        metastack.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length > 0) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(checkNoMark(top()));
        break;
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: { // LONG1
        const n = u8();
        stack.push(toIntFromLE(take(n)));
        break;
      }
      case 0x8b: { // LONG4
        const n = i32();
        if (n < 0) throw fail('negative LONG4 length');
        if (n > 1 << 20) { need(n); throw fail(`LONG4 of ${n} bytes is too large`); }
        stack.push(toIntFromLE(take(n)));
        break;
      }
      case 0x49: { // INT (text)
        const s = line();
        if (s === '01') stack.push(true);
        else if (s === '00') stack.push(false);
        else {
          if (!/^[-+]?\d+$/.test(s)) throw fail(`bad INT literal ${JSON.stringify(s.slice(0, 40))}`);
          stack.push(normInt(BigInt(s)));
        }
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line().replace(/L$/, '');
        if (!/^[-+]?\d+$/.test(s)) throw fail(`bad LONG literal ${JSON.stringify(s.slice(0, 40))}`);
        stack.push(normInt(BigInt(s)));
        break;
      }
      case 0x46: { // FLOAT (text)
        const s = line().trim();
        const v = /^(nan|[-+]?inf)$/i.test(s) ? (s.toLowerCase() === 'nan' ? NaN : s.startsWith('-') ? -Infinity : Infinity) : Number(s);
        if (Number.isNaN(v) && s.toLowerCase() !== 'nan') throw fail(`bad FLOAT literal ${JSON.stringify(s.slice(0, 40))}`);
        stack.push(v);
        break;
      }
      case 0x47: { // BINFLOAT (big-endian)
        need(8);
        stack.push(data.readDoubleBE(pos));
        pos += 8;
        break;
      }
      case 0x53: { // STRING (text, quoted)
        const s = line();
        const q = s[0];
        if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) throw fail('bad STRING literal');
        const d = decodeEscapes(s.slice(1, -1), false);
        if (d === undefined) throw fail('bad escape in STRING literal');
        stack.push(Buffer.from(d, 'latin1').toString(enc));
        break;
      }
      case 0x54: { // BINSTRING
        const n = i32();
        if (n < 0) throw fail('negative BINSTRING length');
        stack.push(take(n).toString(enc));
        break;
      }
      case 0x55: stack.push(take(u8()).toString(enc)); break; // SHORT_BINSTRING
      case 0x56: { // UNICODE (raw-unicode-escape)
        const s = line();
        const raw = Buffer.from(s, 'utf8').toString('latin1');
        const d = decodeEscapes(raw, true);
        if (d === undefined) throw fail('bad escape in UNICODE literal');
        stack.push(d);
        break;
      }
      case 0x58: stack.push(take(u32()).toString('utf8')); break; // BINUNICODE
      case 0x8c: stack.push(take(u8()).toString('utf8')); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(take(u64()).toString('utf8')); break; // BINUNICODE8
      case 0x42: stack.push(bytesOut(take(u32()))); break; // BINBYTES
      case 0x43: stack.push(bytesOut(take(u8()))); break; // SHORT_BINBYTES
      case 0x8e: stack.push(bytesOut(take(u64()))); break; // BINBYTES8
      case 0x96: stack.push(bytesOut(take(u64()))); break; // BYTEARRAY8
      case 0x97: // NEXT_BUFFER
        throw new LlavaRadError('UNSUPPORTED', `${L}: pickle uses out-of-band buffers (protocol 5 NEXT_BUFFER)`);
      case 0x98: // READONLY_BUFFER
        top();
        break;
      case 0x29: stack.push(tuple([])); break; // EMPTY_TUPLE
      case 0x85: stack.push(tuple([checkNoMark(pop())])); break; // TUPLE1
      case 0x86: { // TUPLE2
        const b = checkNoMark(pop());
        const a = checkNoMark(pop());
        stack.push(tuple([a, b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = checkNoMark(pop());
        const b = checkNoMark(pop());
        const a = checkNoMark(pop());
        stack.push(tuple([a, b, c]));
        break;
      }
      case 0x74: { // TUPLE (popMark replaces `stack`: take the items before pushing)
        const items = popMark();
        stack.push(tuple(items.map(checkNoMark)));
        break;
      }
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: { // LIST
        const items = popMark();
        stack.push(items.map(checkNoMark));
        break;
      }
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { // DICT
        const items = popMark();
        const d = new PyDict();
        setItems(d, items);
        stack.push(d);
        break;
      }
      case 0x8f: stack.push(new Set()); break; // EMPTY_SET
      case 0x91: { // FROZENSET
        const s = new Set<unknown>();
        addItems(s, popMark());
        stack.push(Object.freeze(s));
        break;
      }
      case 0x61: { // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x90: { // ADDITEMS
        const items = popMark();
        addItems(top(), items);
        break;
      }
      case 0x67: stack.push(memoGet(Number(line()))); break; // GET (text)
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x70: { // PUT (text)
        const s = line();
        if (!/^\d+$/.test(s)) throw fail('bad PUT index');
        memoPut(Number(s));
        break;
      }
      case 0x71: memoPut(u8()); break; // BINPUT
      case 0x72: memoPut(u32()); break; // LONG_BINPUT
      case 0x94: memoPut(memo.size); break; // MEMOIZE
      case 0x63: { // GLOBAL
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fail('STACK_GLOBAL needs two strings');
        stack.push(global(module, name));
        break;
      }
      case 0x82: case 0x83: case 0x84: { // EXT1 / EXT2 / EXT4
        const code = op === 0x82 ? u8() : op === 0x83 ? u16() : i32();
        throw new LlavaRadError('UNSAFE_PICKLE', `${L}: the pickle names extension-registry code ${code} (a global in disguise); refused`);
      }
      case 0x52: { // REDUCE
        const args = pop();
        const f = pop();
        stack.push(call(f, args, 'reduce'));
        break;
      }
      case 0x81: { // NEWOBJ
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, 'newobj'));
        break;
      }
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof PyDict) || kwargs.size !== 0) throw fail('NEWOBJ_EX with keyword arguments is not supported');
        stack.push(call(cls, args, 'newobj'));
        break;
      }
      case 0x69: { // INST
        const module = line();
        const name = line();
        const g = global(module, name);
        const args = popMark();
        stack.push(call(g, tuple(args.map(checkNoMark)), 'newobj'));
        break;
      }
      case 0x6f: { // OBJ
        const items = popMark().map(checkNoMark);
        if (items.length === 0) throw fail('OBJ without a class');
        stack.push(call(items[0], tuple(items.slice(1)), 'newobj'));
        break;
      }
      case 0x62: { // BUILD
        const state = checkNoMark(pop());
        const inst = top();
        if (inst instanceof PyDict) {
          // OrderedDict.__reduce__ passes the instance __dict__ (torch: {'_metadata': ...})
          inst.attrs = state;
          break;
        }
        const builder = builders.get(inst as object);
        if (!builder) throw fail('BUILD on a value that takes no state');
        stack[stack.length - 1] = builder(inst, state);
        break;
      }
      case 0x50: { // PERSID (text)
        if (!opts.persistentLoad) throw fail('persistent id without a persistent loader');
        stack.push(opts.persistentLoad(line()));
        break;
      }
      case 0x51: { // BINPERSID
        const pid = checkNoMark(pop());
        if (!opts.persistentLoad) throw fail('persistent id without a persistent loader');
        stack.push(opts.persistentLoad(pid));
        break;
      }
      default:
        throw fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

/** values made by an allowed global that accept BUILD, with the function applying the state */
const builders = new WeakMap<object, (inst: unknown, state: unknown) => unknown>();

/** marks `value` as accepting BUILD(state) through `build` (for allowed globals' results) */
export function acceptsBuild<T extends object>(value: T, build: (inst: unknown, state: unknown) => unknown): T {
  builders.set(value, build);
  return value;
}
