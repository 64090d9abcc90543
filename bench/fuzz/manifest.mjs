// Batch manifests (JSONL, CSV, JSON array, LLaVA-Rad annotation JSON) built in code, then mutated: fields at
// and just past their limits (id 256, image 4096, reason 4096, reference 65536 UTF-8 bytes, a line 1 MiB),
// odd CSV quoting, NULs, invalid UTF-8, BOMs and CRs in odd places, huge lines without a newline, many
// columns, duplicate ids, non-string values, deep JSON; plus byte-level mutation of the result.
import { mutateBytes } from './bytes.mjs';
import { jsonBytes, mutateJsonValue } from './json.mjs';

export const FORMATS = ['jsonl', 'csv', 'json', 'annotation'];

function studies(rng) {
  const n = rng.pick([1, 2, 3, 10, 100]);
  return Array.from({ length: n }, (_, i) => ({
    id: `s${i}`,
    image: `img/${i}.png`,
    reason: rng.chance(0.5) ? 'Cough.' : null,
    reference: rng.chance(0.5) ? 'No acute cardiopulmonary process.' : null,
  }));
}

/** a value for a field, sometimes at or just over its limit, or odd */
function oddField(rng, field) {
  const limit = { id: 256, image: 4096, reason: 4096, reference: 65536 }[field] ?? 100;
  const ch = rng.pick(['a', 'é', '€', '😀', '"', ',', '\n', '\r', '\0', '\\', '\u2028', '\ufeff', '\ud800']);
  switch (rng.int(9)) {
    case 0: return 'a'.repeat(limit);
    case 1: return 'a'.repeat(limit + 1);
    case 2: return ch.repeat(Math.ceil(limit / Buffer.byteLength(ch)) + rng.pick([-1, 0, 1]));
    case 3: return rng.pick(['', ' ', '\t', 'null', '../../../etc/passwd', '/dev/zero', 'C:\\x.png', 'x\0y', '-', '0']);
    case 4: return rng.pick([0, -1, 1.5, 2 ** 53 + 1, 1e400, true, [], {}, { a: 1 }, ['x']]);
    case 5: return 'x'.repeat(rng.pick([1 << 20, (1 << 20) + 1, 3 << 20]));
    case 6: return ch.repeat(rng.range(1, 50));
    default: return `${field}-${rng.int(1000)}`;
  }
}

function csvCell(v, rng) {
  const s = v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  if (rng.chance(0.05)) return `"${s}`; // an unclosed quote
  if (rng.chance(0.05)) return `a"${s}"b`; // a quote in the middle
  return /[",\r\n]/.test(s) || rng.chance(0.2) ? `"${s.replace(/"/g, '""')}"` : s;
}

function serialize(format, list, rng) {
  const nl = rng.chance(0.1) ? rng.pick(['\r\n', '\r', '\n\n', '\u2028']) : '\n';
  if (format === 'jsonl') return Buffer.from(list.map((s) => JSON.stringify(s)).join(nl) + (rng.chance(0.8) ? nl : ''));
  if (format === 'csv') {
    let cols = ['id', 'image', 'reason', 'reference'];
    if (rng.chance(0.1)) cols = rng.pick([['id', 'image', 'id'], ['ID', ' Image '], ['image'], [], ['id', 'image', ...Array(rng.pick([100, 100000])).fill('x')]]);
    const rows = [cols.join(','), ...list.map((s) => cols.map((c) => csvCell(s[c.trim().toLowerCase()] ?? null, rng)).join(','))];
    return Buffer.from(rows.join(nl) + (rng.chance(0.8) ? nl : ''));
  }
  if (format === 'annotation') {
    return jsonBytes(list.map((s) => ({
      id: s.id, image: s.image, reason: s.reason, generate_method: 'gpt4', view: rng.pick(['AP', 'PA', 'LATERAL']),
      conversations: [{ from: 'human', value: '<image>\nDescribe the findings.' }, { from: 'gpt', value: s.reference }],
    })), rng);
  }
  return jsonBytes(list, rng);
}

/** text-level damage: NULs, invalid UTF-8, BOMs, a huge line without a newline, deep nesting, many lines */
function damage(buf, rng) {
  const at = rng.int(buf.length + 1);
  const ins = (b) => Buffer.concat([buf.subarray(0, at), b, buf.subarray(at)]);
  switch (rng.int(9)) {
    case 0: return ins(Buffer.from([0]));
    case 1: return ins(Buffer.from(rng.pick([[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xfe, 0xff]])));
    case 2: return ins(Buffer.from([0xef, 0xbb, 0xbf]));
    case 3: return Buffer.concat([buf, Buffer.alloc(rng.pick([(1 << 20) - 1, 1 << 20, (1 << 20) + 1, 5 << 20]), rng.pick([0x61, 0x22, 0x7b, 0x20]))]);
    case 4: return Buffer.concat([buf, Buffer.from('['.repeat(rng.pick([1000, 100000, 2000000])))]);
    case 5: return Buffer.concat([buf, Buffer.alloc(rng.pick([100000, 3000000]), 0x0a)]);
    case 6: return Buffer.concat([Buffer.from('{"id":"'), Buffer.alloc(rng.pick([2 << 20, 9 << 20]), 0x78)]);
    case 7: return ins(Buffer.from(rng.pick(['\r', '"', '""', '","', '\\', '\u2028', '}{', ',,,,'])));
    default: return mutateBytes(buf, rng, { count: rng.count(4, 2) });
  }
}

/** {bytes, ext, options}: a manifest file's contents, the extension to give it, readManifest's options */
export function makeManifest(rng) {
  const format = rng.pick(FORMATS);
  let list = studies(rng);
  const op = rng.weighted({ field: 4, json: 2, dupId: 1, plain: 1 });
  rng.note(`${format} ${op}`);
  if (op === 'field') {
    for (let i = rng.count(3, 1.5); i > 0; i--) {
      const s = rng.pick(list);
      const f = rng.pick(['id', 'image', 'reason', 'reference', 'conversations', '__proto__']);
      s[f] = oddField(rng, f);
    }
  } else if (op === 'json') list = mutateJsonValue(list, rng);
  else if (op === 'dupId' && list.length > 1) list[1].id = list[0].id;
  // the JSON mutation may have made the list, or an entry, something else: wrap it back into study objects
  const entries = (Array.isArray(list) ? list : [list]).map((s) => (s && typeof s === 'object' && !Array.isArray(s) ? s : { id: s }));
  let bytes = serialize(format, entries, rng);
  if (rng.chance(0.4)) bytes = damage(bytes, rng);
  const ext = rng.chance(0.8) ? { jsonl: '.jsonl', csv: '.csv', json: '.json', annotation: '.json' }[format] : rng.pick(['.txt', '', '.ndjson', '.JSONL', '.json']);
  const options = { ...(rng.chance(0.3) ? { mimicTestFilter: true } : {}), ...(rng.chance(0.2) ? { imageRoot: rng.pick(['/', '/nonexistent', '.']) } : {}) };
  return { bytes, ext, options };
}
