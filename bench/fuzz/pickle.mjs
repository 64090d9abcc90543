// Opcode-aware pickle mutation: split a pickle into its opcodes, then delete / duplicate / swap / insert
// opcodes, give length and memo-index arguments hostile values, and splice in known attack shapes
// (MARK or NONE floods, LONG4 with a huge length, BINGET of a huge index, self-referencing lists, deep
// nesting, globals outside torch's allowlist). The result is re-serialized; the caller re-wraps it in a zip.
import { interesting, mutateBytes, writeUInt } from './bytes.mjs';

// argument kinds: n = none, 1/2/4/8 = fixed bytes, l = newline-terminated line, l2 = two lines,
// s1/s4/s8 = a 1/4/8-byte little-endian length then that many bytes
const OPS = {
  0x28: 'n', 0x2e: 'n', 0x30: 'n', 0x31: 'n', 0x32: 'n', 0x46: 'l', 0x49: 'l', 0x4a: 4, 0x4b: 1, 0x4c: 'l',
  0x4d: 2, 0x4e: 'n', 0x50: 'l', 0x51: 'n', 0x52: 'n', 0x53: 'l', 0x54: 's4', 0x55: 's1', 0x56: 'l', 0x58: 's4',
  0x61: 'n', 0x62: 'n', 0x63: 'l2', 0x64: 'n', 0x7d: 'n', 0x65: 'n', 0x67: 'l', 0x68: 1, 0x69: 'l2', 0x6a: 4,
  0x6c: 'n', 0x5d: 'n', 0x6f: 'n', 0x70: 'l', 0x71: 1, 0x72: 4, 0x73: 'n', 0x74: 'n', 0x29: 'n', 0x75: 'n',
  0x47: 8, 0x80: 1, 0x81: 'n', 0x82: 1, 0x83: 2, 0x84: 4, 0x85: 'n', 0x86: 'n', 0x87: 'n', 0x88: 'n', 0x89: 'n',
  0x8a: 's1', 0x8b: 's4', 0x42: 's4', 0x43: 's1', 0x8c: 's1', 0x8d: 's8', 0x8e: 's8', 0x8f: 'n', 0x90: 'n',
  0x91: 'n', 0x92: 'n', 0x93: 'n', 0x94: 'n', 0x95: 8, 0x96: 's8', 0x97: 'n', 0x98: 'n',
};
const OPCODES = Object.keys(OPS).map(Number);

/** splits buf into opcodes [{op, bytes}] until `stops` STOPs or an unparsable byte; the rest is `tail` */
export function parsePickle(buf, stops = 1) {
  const ops = [];
  let p = 0;
  let seen = 0;
  while (p < buf.length && seen < stops) {
    const op = buf[p];
    const kind = OPS[op];
    if (kind === undefined) break;
    let end = p + 1;
    if (typeof kind === 'number') end += kind;
    else if (kind === 'l' || kind === 'l2') {
      for (let lines = kind === 'l' ? 1 : 2; lines > 0; lines--) {
        const nl = buf.indexOf(0x0a, end);
        if (nl < 0) return { ops, tail: buf.subarray(p) };
        end = nl + 1;
      }
    } else {
      const w = Number(kind.slice(1));
      if (end + w > buf.length) break;
      let n = 0;
      for (let i = w - 1; i >= 0; i--) n = n * 256 + buf[end + i];
      end += w + n;
    }
    if (end > buf.length) break;
    ops.push({ op, bytes: buf.subarray(p, end) });
    p = end;
    if (op === 0x2e) seen++;
  }
  return { ops, tail: buf.subarray(p) };
}

const b = (...xs) => Buffer.from(xs.flatMap((x) => (typeof x === 'string' ? [...Buffer.from(x, 'latin1')] : x)));
const u32 = (v) => {
  const x = Buffer.alloc(4);
  writeUInt(x, 0, 4, BigInt(v));
  return [...x];
};
const u64 = (v) => {
  const x = Buffer.alloc(8);
  writeUInt(x, 0, 8, BigInt(v));
  return [...x];
};

const GLOBALS = [
  'torch._utils\n_rebuild_tensor_v2\n', 'torch._utils\n_rebuild_parameter\n', 'collections\nOrderedDict\n',
  'torch\nFloatStorage\n', 'torch\nHalfStorage\n', 'torch\nBFloat16Storage\n', 'torch\nLongStorage\n',
  'torch\nBoolStorage\n', 'torch\nfloat32\n', 'torch._utils\n_rebuild_tensor\n', 'torch\nSize\n',
  'os\nsystem\n', 'builtins\neval\n', 'builtins\ngetattr\n', '__builtin__\nset\n', 'numpy.core.multiarray\n_reconstruct\n',
  'torch.nn.modules.linear\nLinear\n', 'torch._utils\n_rebuild_qtensor\n', '_codecs\nencode\n', 'builtins\nslice\n',
];

/** one hostile opcode sequence */
function hostileOps(rng, len) {
  const big = () => Number(interesting(4, rng, len));
  switch (rng.int(16)) {
    case 0: return b(Array(rng.pick([1000, 100000, 1000000])).fill(0x28)); // MARK flood
    case 1: return b(Array(rng.pick([1000, 100000, 1000000])).fill(0x4e)); // NONE flood
    case 2: return b(0x8b, u32(rng.pick([0x7fffffff, 0xffffffff, 1 << 20, 1 << 26, big()])), rng.bytes(rng.int(64))); // LONG4, length past the data
    case 3: return b(0x8b, u32(1 << rng.pick([16, 20, 22])), Buffer.alloc(1 << 16, 0xff)); // LONG4 a huge integer, part of it there
    case 4: return b(0x68, rng.int(256)); // BINGET of a memo slot that may not exist
    case 5: return b(0x6a, u32(big())); // LONG_BINGET, big index
    case 6: return b(0x72, u32(big())); // LONG_BINPUT, big index
    case 7: return b(0x5d, 0x71, 0, 0x68, 0, 0x61); // a list appended to itself
    case 8: return b(0x7d, 0x71, 1, 0x68, 1, 0x4b, 1, 0x68, 1, 0x73); // a dict holding itself
    case 9: return b(Array(rng.pick([1000, 50000, 500000])).fill(0x5d), Array(rng.int(10)).fill(0x61)); // deep nesting
    case 10: return b('c', rng.pick(GLOBALS)); // a global, maybe not allowed
    case 11: return b(0x8d, u64(interesting(8, rng, len)), rng.bytes(8)); // BINUNICODE8 with a big length
    case 12: return b(0x95, u64(interesting(8, rng, len))); // FRAME with a big length
    case 13: return b(0x8a, 255, Buffer.alloc(255, 0x7f)); // LONG1 at its widest
    case 14: return b(Array(rng.pick([1000, 100000])).fill(0x32)); // DUP flood
    default: return b(0x28, Array(rng.int(50)).fill(0x4b).flatMap((x) => [x, rng.int(256)]), rng.pick([0x74, 0x6c, 0x64, 0x75, 0x65, 0x90, 0x52, 0x81, 0x92, 0x62, 0x6f]));
  }
}

/** a random opcode with random (possibly hostile) arguments */
function randomOp(rng, len) {
  const op = rng.pick(OPCODES);
  const kind = OPS[op];
  if (typeof kind === 'number') return b(op, [...interestingBytes(rng, kind, len)]);
  if (kind === 'n') return b(op);
  if (kind === 'l') return b(op, rng.pick(['0', '-1', '99999999999999999999', '1.5', "'x'", 'nan', '']) + '\n');
  if (kind === 'l2') return b(op, rng.pick(GLOBALS));
  const w = Number(kind.slice(1));
  const n = rng.chance(0.5) ? rng.int(16) : Number(BigInt.asUintN(32, interesting(Math.min(w, 4), rng, len)));
  return b(op, [...interestingBytes(rng, w, len, BigInt(n))], rng.bytes(Math.min(n, 64)));
}

function interestingBytes(rng, width, len, value = interesting(width, rng, len)) {
  const x = Buffer.alloc(width);
  writeUInt(x, 0, width, value);
  return x;
}

/** mutates the argument of an opcode that has a fixed-width or length argument */
function mutateArg(rng, o, len) {
  const kind = OPS[o.op];
  const out = Buffer.from(o.bytes);
  if (typeof kind === 'number' && kind > 0) writeUInt(out, 1, kind, interesting(kind, rng, len));
  else if (typeof kind === 'string' && kind.startsWith('s')) writeUInt(out, 1, Number(kind.slice(1)), interesting(Number(kind.slice(1)), rng, len));
  else if (kind === 'l' || kind === 'l2') return mutateBytes(out, rng, { lo: 1, count: 1 });
  else return Buffer.from([rng.pick(OPCODES)]);
  return out;
}

/**
 * Wraps the pickle's root object X (its opcodes without the final STOP) in `depth` levels of dicts or lists
 * whose two entries are the same level below: 2^depth paths to X without a cycle (a walker that does not
 * remember what it visited walks them all), or in a list holding itself.
 */
function wrapRoot(list, rng) {
  const body = list[list.length - 1]?.[0] === 0x2e ? list.slice(0, -1) : list;
  const base = rng.pick([1000, 60000]);
  const out = [...body, b(0x72, u32(base))];
  if (rng.chance(0.25)) {
    // [X, <the list itself>]
    out.push(b(0x5d, 0x72, u32(base + 1), 0x28, 0x6a, u32(base), 0x6a, u32(base + 1), 0x65, 0x2e));
    return out;
  }
  const depth = rng.pick([8, 20, 31, 40]);
  const dict = rng.chance(0.7);
  for (let i = 0; i < depth; i++) {
    const get = [0x6a, ...u32(base + i)];
    out.push(dict ? b(0x7d, 0x28, 0x8c, 1, 'a', get, 0x8c, 1, 'b', get, 0x75) : b(0x5d, 0x28, get, get, 0x65), b(0x72, u32(base + i + 1)));
  }
  out.push(b(0x2e));
  return out;
}

/** mutates a pickle (possibly several back to back, as legacy checkpoints are); returns new bytes */
export function mutatePickle(buf, rng, stops = 1) {
  const { ops, tail } = parsePickle(buf, stops);
  let list = ops.map((o) => o.bytes);
  if (list.length === 0) return mutateBytes(buf, rng);
  if (stops === 1 && rng.chance(0.06)) {
    rng.note('pickle root wrapped (shared DAG / self-holding list)');
    return Buffer.concat(wrapRoot(list, rng));
  }
  const n = rng.count(6, 2);
  for (let i = 0; i < n; i++) {
    if (list.length === 0) break; // an earlier 'del' or 'trunc' took every op
    const at = rng.int(list.length);
    const what = rng.weighted({ arg: 5, del: 2, dup: 2, swap: 1, insert: 3, hostile: 3, bytes: 1, trunc: 1, string: 2 });
    rng.note(`pickle ${what}`);
    switch (what) {
      case 'arg': {
        const withArgs = list.map((x, k) => k).filter((k) => OPS[list[k][0]] !== 'n');
        const k = withArgs.length ? rng.pick(withArgs) : at;
        list[k] = mutateArg(rng, { op: list[k][0], bytes: list[k] }, buf.length);
        break;
      }
      case 'del': list.splice(at, rng.range(1, 4)); break;
      case 'dup': {
        const m = rng.range(1, 16);
        list.splice(at, 0, ...list.slice(at, at + m).flatMap((x) => Array(rng.count(100, 3)).fill(x)));
        break;
      }
      case 'swap': {
        const j = rng.int(list.length);
        [list[at], list[j]] = [list[j], list[at]];
        break;
      }
      case 'insert': list.splice(at, 0, randomOp(rng, buf.length)); break;
      case 'hostile': list.splice(at, 0, hostileOps(rng, buf.length)); break;
      case 'bytes': list[at] = mutateBytes(list[at], rng, { count: 1 }); break;
      case 'trunc': list = list.slice(0, at); break;
      case 'string': {
        // a storage key, dtype name or dict key: '../0', a huge number, an empty string, a long name
        const strs = list.map((x, k) => k).filter((k) => [0x58, 0x8c, 0x55, 0x43].includes(list[k][0]));
        if (!strs.length) break;
        const k = rng.pick(strs);
        const s = Buffer.from(rng.pick(['', '../0', '/etc/passwd', '99999', '-1', '0\u0000', 'x'.repeat(300), 'cpu', 'cuda:0', 'é', '__proto__', 'constructor']), 'utf8');
        list[k] = s.length < 256 && list[k][0] !== 0x58 ? b(list[k][0], s.length, s) : b(0x58, u32(s.length), s);
        break;
      }
    }
  }
  return Buffer.concat([...list, tail]);
}
