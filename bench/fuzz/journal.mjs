// Journals damaged between two runs: the predictions file `llava-rad batch` appends to (one JSON record per
// line) and the INDEX.journal of a cut-short `index build` (a header line, then one vector per line). A real
// crash leaves at most a torn last line; these also model a file edited by hand, a disk that returned junk,
// a copy cut short, records of another model or settings, and lines that parse but are not what they claim.
//
// Line-aware mutations (1 to 3 per input): cut at any byte (most often inside the last line), a tail without
// a newline (a record's start, junk, 8 or 24 MiB with no newline, NULs), a non-record line inserted anywhere, lines
// dropped / repeated / swapped, one record's JSON mutated, a named field set to an odd value, CRLF endings, a
// BOM, an empty file; sometimes byte-level damage on top.
import { mutateBytes } from './bytes.mjs';
import { mutateJsonValue } from './json.mjs';

/** the file as lines, each with its own "\n" when it has one */
function splitLines(bytes) {
  const lines = [];
  let from = 0;
  for (let nl = bytes.indexOf(10); nl !== -1; nl = bytes.indexOf(10, from)) {
    lines.push(bytes.subarray(from, nl + 1));
    from = nl + 1;
  }
  if (from < bytes.length) lines.push(bytes.subarray(from));
  return lines;
}

const ODD_IDS = ['', ' ', 's0', 's1', 's3', 'not-in-the-manifest', '__proto__', 'constructor', 'toString', 'x'.repeat(300), 'é🙂', '\u0000', '\ud800', 'a\nb', 0, -1, null, true, [], {}];
const NOT_RECORDS = ['', '\r', ' ', 'null', '0', '"x"', '[]', '{}', '{"id":"s0"}', '{"id":1,"findings":"x"}', '{"id":"s0","model":{},"params":{},"findings":"x"}', '{"id":', '\u0000\u0000', 'not json at all'];

function tail(rng, lines) {
  const record = lines.find((l) => l[0] === 0x7b);
  switch (rng.int(7)) {
    case 0: return Buffer.from('{"id":');
    case 1: return record ? record.subarray(0, Math.max(1, record.length - 1 - rng.int(record.length - 1))) : Buffer.from('{"id":"s9","mod');
    case 2: return rng.bytes(rng.range(1, 300));
    case 3: return Buffer.alloc(rng.pick([1, 4096, 1 << 16]), 0);
    case 4: return Buffer.alloc(rng.pick([8 << 20, 24 << 20]) + rng.int(3), rng.pick([0, 0x61])); // 8 or 24 MiB with no newline: under and over a record's limit
    case 5: return record ? record.subarray(0, record.length - 1) : Buffer.from('{}'); // a whole record, its newline lost
    default: return Buffer.from(rng.pick(NOT_RECORDS).replace(/\n/g, ''));
  }
}

/** the parsed record of a line, or null */
function parsed(line) {
  try {
    const v = JSON.parse(line.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : null;
  } catch {
    return null;
  }
}

function lineOf(value) {
  return Buffer.from(JSON.stringify(value) + '\n', 'utf8');
}

/** one generic line-level change; `field(rng, record)` changes one named field of a record in place */
function mutateLines(lines, rng, field) {
  const op = rng.weighted({ cut: 4, tail: 3, insert: 2, drop: 1, dup: 2, swap: 1, json: 2, field: 4, crlf: 1, bom: 0.5, empty: 0.5 });
  rng.note(op);
  const at = () => rng.int(lines.length);
  if (op === 'empty') return rng.pick([[], [Buffer.from('\n')], [Buffer.from('\n\n')]]);
  if (op === 'bom') return lines.length ? [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), lines[0]]), ...lines.slice(1)] : [Buffer.from([0xef, 0xbb, 0xbf])];
  if (lines.length === 0) return [tail(rng, lines)];
  if (op === 'cut') {
    // most often inside the last line (a torn append), else anywhere
    const all = Buffer.concat(lines);
    const last = lines[lines.length - 1];
    const cutAt = rng.chance(0.6) ? all.length - last.length + rng.int(last.length) : rng.int(all.length);
    return splitLines(all.subarray(0, cutAt));
  }
  if (op === 'tail') {
    const out = [...lines];
    if (out[out.length - 1].at(-1) !== 10) out[out.length - 1] = Buffer.concat([out[out.length - 1], Buffer.from('\n')]);
    return [...out, tail(rng, lines)];
  }
  const out = [...lines];
  const i = at();
  if (op === 'insert') out.splice(rng.int(out.length + 1), 0, Buffer.from(rng.pick(NOT_RECORDS) + '\n'));
  else if (op === 'drop') out.splice(i, 1);
  else if (op === 'dup') out.splice(rng.int(out.length + 1), 0, out[i]);
  else if (op === 'swap') {
    const j = at();
    [out[i], out[j]] = [out[j], out[i]];
  } else if (op === 'crlf') {
    for (let k = 0; k < out.length; k++) if (rng.chance(0.5) && out[k].at(-1) === 10) out[k] = Buffer.concat([out[k].subarray(0, -1), Buffer.from('\r\n')]);
  } else {
    const v = parsed(out[i]);
    if (v === null) return out;
    const nl = out[i].at(-1) === 10;
    let next;
    if (op === 'json') next = mutateJsonValue(v, rng, rng.count(3, 1.5));
    else {
      next = structuredClone(v);
      field(rng, next);
    }
    const bytes = lineOf(next);
    out[i] = nl ? bytes : bytes.subarray(0, -1);
  }
  return out;
}

function set(obj, key, value) {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** a named field of a prediction record set to something odd (or to another run's value) */
function predictionField(rng, r) {
  const which = rng.weighted({ id: 4, findings: 2, error: 2, params: 3, model: 2, finished_at: 1, tokens: 1, extra: 1 });
  rng.note(`field ${which}`);
  if (which === 'id') set(r, 'id', rng.pick(ODD_IDS));
  else if (which === 'findings') {
    if (rng.chance(0.5)) delete r.findings;
    else set(r, 'findings', rng.pick(['', 'x'.repeat(70000), 0, null, ['x'], '\ud800']));
  } else if (which === 'error') set(r, 'error', rng.pick([{ code: 'IO', message: 'x' }, { code: 7 }, { code: '' }, 'IO', null, {}, { code: 'INTERNAL', message: 'x'.repeat(5000) }]));
  else if (which === 'params') {
    const p = typeof r.params === 'object' && r.params !== null ? r.params : (r.params = {});
    const key = rng.pick(['max_tokens', 'dicom_window', 'skip_lateral', 'high_bit_depth', 'kv_type']);
    set(p, key, rng.pick([p[key] === 4 ? 5 : 4, !p[key], 'minmax', 'f32', null, undefined, '4', 1e308]));
  } else if (which === 'model') {
    const part = rng.pick(['decoder', 'vision']);
    if (r.model?.[part]) set(r.model[part], 'sha256', rng.pick(['0'.repeat(64), '', r.model[part].sha256.toUpperCase(), 42]));
    else set(r, 'model', rng.pick([null, {}, 'x']));
  } else if (which === 'finished_at') set(r, 'finished_at', rng.pick(['', '9999-12-31T23:59:59.999Z', 0, null, { a: 1 }, '1970-01-01T00:00:00.000Z']));
  else if (which === 'tokens') set(r, 'tokens', rng.pick([[], [-1], [1e9], 'x', null, Array.from({ length: 10000 }, (_, k) => k)]));
  else set(r, rng.pick(['__proto__', 'constructor', 'x'.repeat(100), 'research_use_only']), rng.pick([{ polluted: 1 }, 'x', null, false]));
}

/** 1 to 3 line-level changes (`field` for the named-field ones), then byte damage now and then */
function damage(bytes, rng, field) {
  let lines = splitLines(bytes);
  for (let n = rng.count(3, 1.6); n > 0; n--) lines = mutateLines(lines, rng, field);
  const out = Buffer.concat(lines);
  return rng.chance(0.1) ? mutateBytes(out, rng, { count: 1 }) : out;
}

/** a damaged copy of a predictions file */
export const mutatePredictions = (bytes, rng) => damage(bytes, rng, predictionField);

/** a named field of an index build journal line (the header or an entry) set to something odd */
function buildJournalField(rng, o) {
  if ('llava_rad_index_journal' in o) {
    const key = rng.pick(['llava_rad_index_journal', 'modelId', 'dim']);
    rng.note(`header ${key}`);
    set(o, key, rng.pick([2, 0, '1', 'another-model', '', 1, 3, 4096, 4097, -1, 1.5, null]));
    return;
  }
  const key = rng.pick(['id', 'id', 'kind', 'v', 'v']);
  rng.note(`entry ${key}`);
  if (key === 'id') set(o, 'id', rng.pick(ODD_IDS));
  else if (key === 'kind') set(o, 'kind', rng.pick(['image', 'text', 'IMAGE', '', null, 0]));
  else if (typeof o.v === 'string') {
    const b = Buffer.from(o.v, 'base64');
    const v = rng.int(6);
    if (v === 0) set(o, 'v', b.subarray(0, b.length - 4).toString('base64')); // one float short
    else if (v === 1) set(o, 'v', Buffer.concat([b, b.subarray(0, 4)]).toString('base64')); // one float more
    else if (v === 2) {
      const f = new Float32Array(b.length / 4);
      Buffer.from(f.buffer).set(b);
      f[rng.int(f.length)] = rng.pick([NaN, Infinity, -Infinity, 3e38, 0]);
      set(o, 'v', Buffer.from(f.buffer).toString('base64'));
    } else if (v === 3) set(o, 'v', o.v.replace(/[A-Za-z]/, '*'));
    else if (v === 4) set(o, 'v', o.v.replace(/=+$/, ''));
    else set(o, 'v', rng.pick(['', null, 0, [], 'AAAA']));
  }
}

/** a damaged copy of an index build journal */
export const mutateBuildJournal = (bytes, rng) => damage(bytes, rng, buildJournalField);
