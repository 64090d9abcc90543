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
//
// Hostile pickles (bombs) are bounded: the work is linear in the pickle's length (no opcode decodes
// byte by byte into growing strings or BigInts), every length is checked against the bytes left before
// anything is allocated, and what a pickle may build is capped (PICKLE_LIMITS below; each overrun is a
// BAD_CHECKPOINT naming the limit). A real PyTorch data.pkl of a few MB stays far below every cap.

import { LlavaRadError, describeValue } from '../errors.js';

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

/**
 * The unpickler's caps. Each one is far above what a real checkpoint's pickle needs (LLaVA-Rad's are at
 * most a few MB with a few hundred thousand values) and keeps a hostile pickle's memory and time bounded.
 */
export const PICKLE_LIMITS = Object.freeze({
  /** items on the stack plus open MARKs (real pickles: hundreds; Python batches APPENDS/SETITEMS by 1000) */
  stackItems: 1 << 20,
  /** memo entries (real pickles: about ten per tensor) */
  memoEntries: 1 << 22,
  /**
   * values built, in units of roughly 25 bytes of heap: a number or string 1, a list or tuple 2, a dict,
   * set, bytes object, global or anything else an allowed call builds 8, plus 1 for every item stored in
   * a container (2 per dict entry), plus the size of every call's arguments (the work it may do). Bounds
   * the heap a pickle can fill (measured: under 400 MB, however its opcodes are combined); real pickles
   * spend less than one unit per byte.
   */
  values: 1 << 24,
  /** bytes produced by allowed calls (bytes(), bytearray(), _codecs.encode) in all */
  builtBytes: 64 * 1024 * 1024,
  /** bytes of one LONG1 / LONG4 integer (real pickles: at most 10, the legacy magic number) */
  longBytes: 256,
  /** characters of one protocol-0 INT / LONG literal */
  intDigits: 1024,
});

/** a two's complement little-endian integer, decoded in linear time */
function toIntFromLE(b: Uint8Array): number | bigint {
  const n = b.length;
  if (n === 0) return 0;
  if (n <= 6) {
    let v = 0;
    for (let i = n - 1; i >= 0; i--) v = v * 256 + b[i]!;
    return b[n - 1]! & 0x80 ? v - 2 ** (8 * n) : v;
  }
  let v = BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`);
  if (b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
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

const HEX = /^[0-9a-fA-F]+$/;
const SIMPLE_ESCAPES: Readonly<Record<number, number>> = {
  0x6e: 0x0a, 0x74: 0x09, 0x72: 0x0d, 0x5c: 0x5c, 0x27: 0x27, 0x22: 0x22, 0x61: 0x07, 0x62: 0x08, 0x66: 0x0c, 0x76: 0x0b,
};

/** reads `len` hex digits at `at` of `s` (undefined when they are not all there) */
function hexAt(s: Buffer, at: number, len: number): number | undefined {
  if (at + len > s.length) return undefined;
  const h = s.toString('latin1', at, at + len);
  return HEX.test(h) ? parseInt(h, 16) : undefined;
}

/**
 * Decodes the body of a protocol-0 STRING literal (a Python 2 str repr: \n \x41 \101 ... escapes) to
 * its bytes, in one pass into one buffer (escapes only shrink the text).
 */
function decodeStringLiteral(s: Buffer): Buffer | undefined {
  const out = Buffer.allocUnsafe(s.length);
  let o = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== 0x5c) { out[o++] = c; continue; }
    if (++i >= s.length) return undefined;
    const n = s[i]!;
    const simple = SIMPLE_ESCAPES[n];
    if (simple !== undefined) { out[o++] = simple; continue; }
    if (n === 0x0a) continue; // an escaped newline is a line continuation
    if (n === 0x78) { // \xHH
      const v = hexAt(s, i + 1, 2);
      if (v === undefined) return undefined;
      out[o++] = v;
      i += 2;
      continue;
    }
    if (n >= 0x30 && n <= 0x37) { // \ooo
      let v = n - 0x30;
      for (let k = 0; k < 2 && i + 1 < s.length && s[i + 1]! >= 0x30 && s[i + 1]! <= 0x37; k++) v = v * 8 + (s[++i]! - 0x30);
      out[o++] = v & 0xff;
      continue;
    }
    out[o++] = 0x5c;
    out[o++] = n;
  }
  return out.subarray(0, o);
}

/**
 * Decodes a protocol-0 UNICODE line (raw-unicode-escape: bytes are Latin-1 characters, \uXXXX and
 * \UXXXXXXXX escapes) in one pass into one UTF-16 buffer (every input byte gives at most one code unit).
 */
function decodeRawUnicodeEscape(s: Buffer): string | undefined {
  const out = Buffer.allocUnsafe(2 * s.length);
  let o = 0;
  const unit = (u: number): void => { out[o++] = u & 0xff; out[o++] = u >>> 8; };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== 0x5c) { unit(c); continue; }
    if (++i >= s.length) return undefined;
    const n = s[i]!;
    if (n !== 0x75 && n !== 0x55) { unit(0x5c); unit(n); continue; }
    const len = n === 0x75 ? 4 : 8;
    const cp = hexAt(s, i + 1, len);
    if (cp === undefined || cp > 0x10ffff) return undefined;
    i += len;
    if (cp < 0x10000) unit(cp);
    else { unit(0xd800 + ((cp - 0x10000) >> 10)); unit(0xdc00 + ((cp - 0x10000) & 0x3ff)); }
  }
  return out.toString('utf16le', 0, o);
}

/** a name from the pickle for a message: short ones as they are, long ones cut */
function shortName(s: string): string {
  return s.length <= 120 ? s : `${s.slice(0, 60)}... (${s.length} characters)`;
}

/** PICKLE_LIMITS.values units of a list or tuple, and of a dict, set, bytes object or other object */
const SEQ_COST = 2;
const OBJECT_COST = 8;

/**
 * The cost of the work an allowed call may do over its arguments (it may walk each container or string
 * argument once): without it, one memoized million-item list passed to set() a million times would be
 * a hang that builds nothing.
 */
function argsCost(args: readonly unknown[]): number {
  let n = args.length;
  for (const a of args) {
    if (Array.isArray(a)) n += a.length;
    else if (a instanceof Map || a instanceof Set) n += a.size;
    else if (a instanceof Uint8Array) n += a.byteLength >> 4;
    else if (typeof a === 'string') n += a.length >> 4;
  }
  return n;
}

/** the cost, in PICKLE_LIMITS.values units, of a value an allowed call returned */
function valueCost(v: unknown): number {
  if (Array.isArray(v)) return SEQ_COST + v.length;
  if (v instanceof Map) return OBJECT_COST + 2 * v.size;
  if (v instanceof Set) return OBJECT_COST + v.size;
  if (typeof v === 'string') return 1 + (v.length >> 4);
  if (v === null || typeof v === 'boolean' || v === undefined) return 0;
  if (typeof v === 'object') return OBJECT_COST;
  return 1;
}

/** Runs the pickle that starts at `start` in `buf` and returns its value. */
export function unpickle(buf: Uint8Array, opts: UnpickleOptions, start = 0): UnpickleResult {
  const data = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const L = opts.label;
  const enc = opts.byteStringEncoding ?? 'utf8';
  const LIM = PICKLE_LIMITS;
  let pos = start;
  let opPos = start;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  /** items in the stacks saved by MARK, plus one per MARK */
  let held = 0;
  const memo = new Map<number, unknown>();
  let values = 0;
  let builtBytes = 0;

  const fail = (msg: string): LlavaRadError =>
    new LlavaRadError('BAD_CHECKPOINT', `${L}: malformed pickle at byte ${opPos}: ${msg}`);
  const overLimit = (what: string): LlavaRadError =>
    new LlavaRadError('BAD_CHECKPOINT',
      `${L}: pickle refused at byte ${opPos}: ${what} (a checkpoint's pickle stays far below this limit; a pickle bomb?)`);
  const truncated = (): LlavaRadError => {
    const e = new LlavaRadError('BAD_CHECKPOINT', `${L}: malformed pickle: truncated at byte ${data.length} (opcode at ${opPos})`);
    TRUNCATED.add(e);
    return e;
  };
  /** counts `n` units of PICKLE_LIMITS.values */
  const spend = (n: number): void => {
    values += n;
    if (values > LIM.values) throw overLimit(`it builds more than ${LIM.values} values (containers, their items, strings, numbers)`);
  };
  const push = (v: unknown, cost = 1): void => {
    spend(cost);
    stack.push(v);
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
  /** the bytes up to the next newline (a protocol-0 argument), without it */
  const lineBytes = (): Buffer => {
    const nl = data.indexOf(0x0a, pos);
    if (nl < 0) throw truncated();
    const b = data.subarray(pos, nl);
    pos = nl + 1;
    return b;
  };
  const line = (): string => lineBytes().toString('utf8');
  /** a protocol-0 decimal integer literal (INT, LONG, GET, PUT) */
  const decimal = (s: string, what: string): number | bigint => {
    if (s.length > LIM.intDigits) throw overLimit(`${what} literal of ${s.length} characters (at most ${LIM.intDigits})`);
    if (!/^[-+]?\d+$/.test(s)) throw fail(`bad ${what} literal (${s.length} characters, not a decimal integer)`);
    return normInt(BigInt(s));
  };
  const longBytes = (n: number, what: string): Buffer => {
    if (n > LIM.longBytes) throw overLimit(`a ${what} integer of ${n} bytes is too large (at most ${LIM.longBytes})`);
    return take(n);
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
    held -= prev.length + 1;
    return items;
  };
  const checkNoMark = (v: unknown): unknown => {
    if (v === MARK) throw fail('a MARK used as a value');
    return v;
  };
  const global = (rawModule: string, name: string): PyGlobal => {
    // Python 3 reads protocol 0-2 pickles with fix_imports: Python 2 module names map to Python 3 ones
    const module = Object.prototype.hasOwnProperty.call(PY2_MODULES, rawModule) ? PY2_MODULES[rawModule]! : rawModule;
    const g = opts.resolveGlobal(module, name);
    if (!g) {
      const as = module === rawModule ? '' : ` (written as ${rawModule}.${name})`;
      throw new LlavaRadError('UNSAFE_PICKLE',
        `${L}: the pickle asks for the global ${shortName(`${module}.${name}`)}${shortName(as)}, which is not on the allowlist of data-only types; refused (nothing was executed)`);
    }
    spend(OBJECT_COST);
    return g;
  };
  /** charges what an allowed call (or BUILD) made: its items, and its bytes against builtBytes */
  const made = (v: unknown): unknown => {
    if (v instanceof Uint8Array) {
      builtBytes += v.byteLength;
      if (builtBytes > LIM.builtBytes) throw overLimit(`its calls build more than ${LIM.builtBytes} bytes of bytes objects`);
    }
    spend(valueCost(v));
    return v;
  };
  const call = (callable: unknown, args: unknown, how: 'reduce' | 'newobj'): unknown => {
    if (!(callable instanceof PyGlobal)) throw fail(`${how === 'reduce' ? 'REDUCE' : 'NEWOBJ'} on a non-callable value (${describeValue(callable)})`);
    if (!Array.isArray(args)) throw fail(`arguments of ${callable.toString()} are not a tuple`);
    if (!callable.call) {
      throw new LlavaRadError('UNSAFE_PICKLE', `${L}: the pickle calls ${callable.toString()}, which is allowed only as a value; refused`);
    }
    spend(argsCost(args));
    return made(callable.call(args, how));
  };
  const setItems = (d: unknown, items: unknown[]): void => {
    if (!(d instanceof PyDict)) throw fail('SETITEM(S) on a value that is not a dict');
    if (items.length % 2 !== 0) throw fail('SETITEMS with an odd number of items');
    spend(items.length);
    for (let i = 0; i < items.length; i += 2) d.set(checkNoMark(items[i]), checkNoMark(items[i + 1]));
  };
  const appendItems = (l: unknown, items: unknown[]): void => {
    if (!Array.isArray(l) || Object.isFrozen(l)) throw fail('APPEND(S) on a value that is not a list');
    spend(items.length);
    for (const it of items) l.push(checkNoMark(it));
  };
  const addItems = (s: unknown, items: unknown[]): void => {
    if (!(s instanceof Set) || Object.isFrozen(s)) throw fail('ADDITEMS on a value that is not a set');
    spend(items.length);
    for (const it of items) s.add(checkNoMark(it));
  };
  /** a tuple (or list) of `items` */
  const seq = (items: unknown[], frozen: boolean): unknown[] | readonly unknown[] => {
    spend(SEQ_COST + items.length);
    const out = items.map(checkNoMark);
    return frozen ? tuple(out) : out;
  };
  const memoGet = (i: number | bigint): unknown => {
    if (typeof i !== 'number' || !memo.has(i)) throw fail(`memo key ${i} is not defined`);
    return memo.get(i);
  };
  const memoPut = (i: number | bigint): void => {
    if (typeof i !== 'number' || i < 0) throw fail(`bad memo key ${i}`);
    if (memo.size >= LIM.memoEntries && !memo.has(i)) throw overLimit(`more than ${LIM.memoEntries} memo entries`);
    memo.set(i, checkNoMark(top()));
  };
  const bytesOut = (b: Buffer): Uint8Array => { // copy: never keep the whole pickle alive
    spend(OBJECT_COST);
    return new Uint8Array(b);
  };
  const str = (b: Buffer, encoding: BufferEncoding): void => push(b.toString(encoding));

  for (;;) {
    if (stack.length + held > LIM.stackItems) throw overLimit(`more than ${LIM.stackItems} items and MARKs on the stack`);
    opPos = pos;
    const op = u8();
    switch (op) {
      case 0x80: { // PROTO
        const v = u8();
        if (v > 5) throw fail(`unsupported pickle protocol ${v}`);
        break;
      }
      case 0x95: { // FRAME (only a length: the bytes it announces must be there)
        const n = u64();
        need(n);
        break;
      }
      case 0x2e: { // STOP
        const v = checkNoMark(pop());
        return { value: v, end: pos };
      }
      case 0x28: // MARK (a new stack: a list's worth)
        spend(SEQ_COST);
        metastack.push(stack);
        held += stack.length + 1;
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
      case 0x4a: push(i32()); break; // BININT
      case 0x4b: push(u8()); break; // BININT1
      case 0x4d: push(u16()); break; // BININT2
      case 0x8a: push(toIntFromLE(longBytes(u8(), 'LONG1'))); break; // LONG1
      case 0x8b: { // LONG4
        const n = i32();
        if (n < 0) throw fail('negative LONG4 length');
        push(toIntFromLE(longBytes(n, 'LONG4')));
        break;
      }
      case 0x49: { // INT (text)
        const s = line();
        if (s === '01') stack.push(true);
        else if (s === '00') stack.push(false);
        else push(decimal(s, 'INT'));
        break;
      }
      case 0x4c: { // LONG (text)
        const s = line();
        push(decimal(s.endsWith('L') ? s.slice(0, -1) : s, 'LONG'));
        break;
      }
      case 0x46: { // FLOAT (text)
        const s = line().trim();
        const v = /^(nan|[-+]?inf)$/i.test(s) ? (s.toLowerCase() === 'nan' ? NaN : s.startsWith('-') ? -Infinity : Infinity) : Number(s);
        if (Number.isNaN(v) && s.toLowerCase() !== 'nan') throw fail(`bad FLOAT literal (${s.length} characters)`);
        push(v);
        break;
      }
      case 0x47: { // BINFLOAT (big-endian)
        need(8);
        push(data.readDoubleBE(pos));
        pos += 8;
        break;
      }
      case 0x53: { // STRING (text, quoted)
        const s = lineBytes();
        const q = s[0];
        if (s.length < 2 || (q !== 0x27 && q !== 0x22) || s[s.length - 1] !== q) throw fail('bad STRING literal');
        const d = decodeStringLiteral(s.subarray(1, -1));
        if (d === undefined) throw fail('bad escape in STRING literal');
        str(d, enc);
        break;
      }
      case 0x54: { // BINSTRING
        const n = i32();
        if (n < 0) throw fail('negative BINSTRING length');
        str(take(n), enc);
        break;
      }
      case 0x55: str(take(u8()), enc); break; // SHORT_BINSTRING
      case 0x56: { // UNICODE (raw-unicode-escape)
        const d = decodeRawUnicodeEscape(lineBytes());
        if (d === undefined) throw fail('bad escape in UNICODE literal');
        push(d);
        break;
      }
      case 0x58: str(take(u32()), 'utf8'); break; // BINUNICODE
      case 0x8c: str(take(u8()), 'utf8'); break; // SHORT_BINUNICODE
      case 0x8d: str(take(u64()), 'utf8'); break; // BINUNICODE8
      case 0x42: stack.push(bytesOut(take(u32()))); break; // BINBYTES
      case 0x43: stack.push(bytesOut(take(u8()))); break; // SHORT_BINBYTES
      case 0x8e: stack.push(bytesOut(take(u64()))); break; // BINBYTES8
      case 0x96: stack.push(bytesOut(take(u64()))); break; // BYTEARRAY8
      case 0x97: // NEXT_BUFFER
        throw new LlavaRadError('UNSUPPORTED', `${L}: pickle uses out-of-band buffers (protocol 5 NEXT_BUFFER)`);
      case 0x98: // READONLY_BUFFER
        top();
        break;
      case 0x29: push(tuple([]), SEQ_COST); break; // EMPTY_TUPLE
      case 0x85: stack.push(seq([pop()], true)); break; // TUPLE1
      case 0x86: { // TUPLE2
        const b = pop();
        const a = pop();
        stack.push(seq([a, b], true));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(seq([a, b, c], true));
        break;
      }
      case 0x74: { // TUPLE (popMark replaces `stack`: take the items before pushing)
        const items = popMark();
        stack.push(seq(items, true));
        break;
      }
      case 0x5d: push([], SEQ_COST); break; // EMPTY_LIST
      case 0x6c: { // LIST
        const items = popMark();
        stack.push(seq(items, false));
        break;
      }
      case 0x7d: push(new PyDict(), OBJECT_COST); break; // EMPTY_DICT
      case 0x64: { // DICT
        const items = popMark();
        const d = new PyDict();
        spend(OBJECT_COST);
        setItems(d, items);
        stack.push(d);
        break;
      }
      case 0x8f: push(new Set(), OBJECT_COST); break; // EMPTY_SET
      case 0x91: { // FROZENSET
        const s = new Set<unknown>();
        spend(OBJECT_COST);
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
      case 0x67: stack.push(memoGet(decimal(line(), 'GET'))); break; // GET (text)
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x70: memoPut(decimal(line(), 'PUT')); break; // PUT (text)
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
        stack.push(call(g, seq(args, true), 'newobj'));
        break;
      }
      case 0x6f: { // OBJ
        const items = popMark().map(checkNoMark);
        if (items.length === 0) throw fail('OBJ without a class');
        stack.push(call(items[0], seq(items.slice(1), true), 'newobj'));
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
        stack[stack.length - 1] = made(builder(inst, state));
        break;
      }
      case 0x50: { // PERSID (text)
        if (!opts.persistentLoad) throw fail('persistent id without a persistent loader');
        push(opts.persistentLoad(line()), OBJECT_COST);
        break;
      }
      case 0x51: { // BINPERSID
        const pid = checkNoMark(pop());
        if (!opts.persistentLoad) throw fail('persistent id without a persistent loader');
        push(opts.persistentLoad(pid), OBJECT_COST);
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
