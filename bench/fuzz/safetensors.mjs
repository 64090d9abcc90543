// safetensors mutation: the 8-byte header length, then a JSON header ({name: {dtype, shape, data_offsets}})
// that is mutated as JSON (huge / negative / fractional / nested numbers, swapped offsets, other dtypes,
// duplicate keys) and re-serialized with a correct length prefix, or a hostile one.
import { interesting, mutateBytes, writeUInt } from './bytes.mjs';
import { jsonBytes, mutateJsonValue } from './json.mjs';

const DTYPES = ['F64', 'F32', 'F16', 'BF16', 'I64', 'I32', 'I16', 'I8', 'U8', 'BOOL', 'U16', 'F8_E5M2', 'f32', '', 'F32 '];

export function mutateSafetensors(buf, rng) {
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  let data = buf.subarray(8 + n);
  const op = rng.weighted({ json: 5, semantic: 5, bytes: 2, length: 1, data: 1 });
  rng.note(op);
  if (op === 'bytes') return mutateBytes(buf, rng, { hi: Math.min(buf.length, 8 + n + 16) });
  let h = header;
  if (op === 'json') h = mutateJsonValue(header, rng);
  else if (op === 'semantic') {
    h = structuredClone(header);
    const names = Object.keys(h).filter((k) => k !== '__metadata__');
    for (let i = rng.count(3, 1.5); i > 0; i--) {
      const t = h[rng.pick(names)];
      const o = t.data_offsets;
      switch (rng.int(8)) {
        case 0: t.dtype = rng.pick(DTYPES); break;
        case 1: t.data_offsets = [o[1], o[0]]; break;
        case 2: t.data_offsets = [o[0], o[1] + rng.pick([1, -1, 8, 2 ** 32, 2 ** 53])]; break;
        case 3: t.shape = t.shape.map((d) => (rng.chance(0.5) ? d : rng.pick([0, -1, 2 ** 31, 2 ** 53, 1.5, 1e300]))); break;
        case 4: t.shape = Array(rng.pick([0, 9, 64, 100000])).fill(1); break;
        case 5: t.data_offsets = h[rng.pick(names)].data_offsets; break; // overlap another tensor
        case 6: t.data_offsets = [0, 2 ** 40]; t.shape = [2 ** 38]; t.dtype = 'F32'; break;
        default: t.shape = [...t.shape].reverse(); break;
      }
    }
  } else if (op === 'data') data = mutateBytes(data, rng, { count: 1 });
  const text = jsonBytes(h, rng);
  const len = Buffer.alloc(8);
  writeUInt(len, 0, 8, op === 'length' ? interesting(8, rng, text.length + data.length) : BigInt(text.length));
  return Buffer.concat([len, text, data]);
}
