// GGUF mutation, aimed at the header: the KV section and the tensor infos hold every length, count, type
// tag, dimension and offset, so most mutations go there (fields set to interesting values, KVs and tensor
// infos dropped / duplicated / swapped / renamed and the header rebuilt with the data section unchanged).
import { interesting, mutateBytes, writeUInt } from './bytes.mjs';

const SCALAR = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** the header layout: every KV and tensor info with the offsets of its fields */
export function parseGguf(buf) {
  let p = 24;
  const fields = [{ off: 4, width: 4, what: 'version' }, { off: 8, width: 8, what: 'n_tensors' }, { off: 16, width: 8, what: 'n_kv' }];
  const u64 = (at) => Number(buf.readBigUInt64LE(at));
  /** a string (u64 length + bytes); its length field is recorded as `what` when given */
  const str = (what) => {
    if (what) fields.push({ off: p, width: 8, what });
    const n = u64(p);
    const s = buf.toString('utf8', p + 8, p + 8 + n);
    p += 8 + n;
    return s;
  };
  const u32Field = (what) => {
    fields.push({ off: p, width: 4, what });
    p += 4;
    return buf.readUInt32LE(p - 4);
  };
  const kvs = [];
  const nKv = u64(16);
  const nTensors = u64(8);
  let alignment = 32;
  for (let i = 0; i < nKv; i++) {
    const start = p;
    const key = str('key length');
    const type = u32Field(`type of ${key}`);
    const valueOff = p;
    if (type === 8) str(`string length of ${key}`);
    else if (type === 9) {
      const itemType = buf.readUInt32LE(p);
      const count = u64(p + 4);
      fields.push({ off: p, width: 4, what: `item type of ${key}` }, { off: p + 4, width: 8, what: `count of ${key}` });
      p += 12;
      for (let j = 0; j < count; j++) {
        if (itemType === 8) {
          if (j < 8 || j % 997 === 0) fields.push({ off: p, width: 8, what: `${key}[${j}] length` });
          p += 8 + u64(p);
        } else {
          if (j < 4) fields.push({ off: p, width: SCALAR[itemType], what: `${key}[${j}]` });
          p += SCALAR[itemType];
        }
      }
    } else {
      fields.push({ off: p, width: SCALAR[type], what: key, scalar: type });
      if (key === 'general.alignment') alignment = buf.readUInt32LE(p);
      p += SCALAR[type];
    }
    kvs.push({ start, end: p, key, type, valueOff });
  }
  const tensors = [];
  for (let i = 0; i < nTensors; i++) {
    const start = p;
    const name = str('tensor name length');
    const nDims = u32Field(`n_dims of ${name}`);
    for (let d = 0; d < nDims; d++, p += 8) fields.push({ off: p, width: 8, what: `dim ${d} of ${name}` });
    fields.push({ off: p, width: 4, what: `type of ${name}` }, { off: p + 4, width: 8, what: `offset of ${name}` });
    p += 12;
    tensors.push({ start, end: p, name });
  }
  const dataStart = Math.ceil(p / alignment) * alignment;
  return { kvs, tensors, fields, headerEnd: p, dataStart, alignment };
}

/** a header rebuilt from (possibly reordered, dropped or duplicated) KV and tensor-info spans */
function rebuild(buf, g, kvSpans, tensorSpans, rng) {
  const head = Buffer.from(buf.subarray(0, 24));
  const honest = rng.chance(0.8);
  writeUInt(head, 8, 8, BigInt(honest ? tensorSpans.length : tensorSpans.length + rng.pick([-1, 1, 1000])));
  writeUInt(head, 16, 8, BigInt(honest ? kvSpans.length : kvSpans.length + rng.pick([-1, 1, 1000])));
  const body = Buffer.concat([head, ...kvSpans, ...tensorSpans]);
  const pad = Buffer.alloc((g.alignment - (body.length % g.alignment)) % g.alignment);
  return Buffer.concat([body, pad, buf.subarray(g.dataStart)]);
}

function setScalar(out, f, rng) {
  const t = f.scalar;
  if (t === 6) out.writeFloatLE(rng.pick([NaN, Infinity, -Infinity, 0, -1, 1e30, 1e-30, 3.4e38]), f.off);
  else if (t === 12) out.writeDoubleLE(rng.pick([NaN, Infinity, -1, 0, 1e308]), f.off);
  else if (t === 7) out[f.off] = rng.pick([2, 0xff, 0x80]);
  else writeUInt(out, f.off, f.width, rng.chance(0.3) ? readSmallDelta(out, f, rng) : interesting(f.width, rng, out.length));
}

function readSmallDelta(out, f, rng) {
  let v = 0n;
  for (let i = f.width - 1; i >= 0; i--) v = (v << 8n) | BigInt(out[f.off + i]);
  return v + BigInt(rng.pick([-2, -1, 1, 2, 7, 64]));
}

export function mutateGguf(buf, rng) {
  const g = parseGguf(buf);
  const op = rng.weighted({ field: 8, scalar: 4, rebuild: 4, bytes: 3, truncate: 1, data: 1 });
  rng.note(op);
  if (op === 'field' || op === 'scalar') {
    const out = Buffer.from(buf);
    const pool = op === 'scalar' ? g.fields.filter((f) => f.scalar !== undefined) : g.fields;
    for (let i = rng.count(3, 1.5); i > 0; i--) {
      const f = rng.pick(pool);
      rng.note(f.what);
      if (f.scalar !== undefined && rng.chance(0.7)) setScalar(out, f, rng);
      else writeUInt(out, f.off, f.width, rng.chance(0.2) ? readSmallDelta(out, f, rng) : interesting(f.width, rng, buf.length));
    }
    return out;
  }
  if (op === 'rebuild') {
    let kvs = g.kvs.map((k) => buf.subarray(k.start, k.end));
    let ts = g.tensors.map((t) => buf.subarray(t.start, t.end));
    for (let i = rng.count(3, 1.5); i > 0; i--) {
      const onKv = rng.chance(0.6);
      const list = onKv ? kvs : ts;
      const at = rng.int(list.length);
      switch (rng.int(5)) {
        case 0: list.splice(at, 1); break;
        case 1: list.splice(at, 0, ...Array(rng.pick([1, 1, 100])).fill(list[at])); break;
        case 2: { const j = rng.int(list.length); [list[at], list[j]] = [list[j], list[at]]; break; }
        case 3: {
          // give an entry the name of another (a duplicate key or tensor name)
          const j = rng.int(list.length);
          const nameLen = (e) => 8 + Number(e.readBigUInt64LE(0));
          if (list[at] && list[j]) list[at] = Buffer.concat([list[j].subarray(0, nameLen(list[j])), list[at].subarray(nameLen(list[at]))]);
          break;
        }
        default:
          // change a KV's value type tag but keep the bytes (reads the value as another type)
          if (onKv && list[at]) {
            const e = Buffer.from(list[at]);
            writeUInt(e, 8 + Number(e.readBigUInt64LE(0)), 4, BigInt(rng.int(14)));
            list[at] = e;
          }
      }
      if (onKv) kvs = list.filter(Boolean);
      else ts = list.filter(Boolean);
    }
    return rebuild(buf, g, kvs, ts, rng);
  }
  if (op === 'bytes') return mutateBytes(buf, rng, { hi: g.headerEnd });
  if (op === 'truncate') return buf.subarray(0, rng.chance(0.7) ? rng.int(g.headerEnd + 64) : rng.int(buf.length));
  const out = Buffer.from(buf);
  for (let i = rng.count(16, 4); i > 0; i--) out[g.dataStart + rng.int(buf.length - g.dataStart)] = rng.pick([0xff, 0x7f, 0x00, 0x80, rng.int(256)]);
  return out;
}
