// allennlp model archive (.tar.gz) mutation: tar entries (header fields with the checksum made to match or
// not, type flags, names, sizes), GNU long-name and pax records, a nested model.tar.gz, entries dropped,
// repeated or reordered, config.json and the label vocabularies mutated as JSON / text, data after the end
// marker, and the gzip layer itself (bytes, a second member, truncation).
import { gunzipSync, gzipSync } from 'node:zlib';
import { interesting, mutateBytes, writeUInt } from './bytes.mjs';
import { jsonBytes, mutateJsonValue } from './json.mjs';

const BLOCK = 512;
const pad = (n) => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/** the entries of a ustar tar: { name, type, data } */
export function readTar(tar) {
  const out = [];
  for (let off = 0; off + BLOCK <= tar.length;) {
    const h = tar.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    const size = parseInt(h.toString('latin1', 124, 136).replace(/\0.*$/s, '').trim() || '0', 8);
    const name = h.toString('utf8', 0, 100).replace(/\0.*$/s, '');
    out.push({ name, type: String.fromCharCode(h[156]), data: tar.subarray(off + BLOCK, off + BLOCK + size) });
    off += BLOCK + size + pad(size).length;
  }
  return out;
}

export function header(name, size, type = '0') {
  const h = Buffer.alloc(BLOCK);
  h.write(name.slice(0, 100), 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0').slice(-11) + '\0', 124);
  h.write('14000000000\0', 136);
  h.write(type, 156, 1, 'latin1');
  h.write('ustar\0' + '00', 257);
  fixChecksum(h);
  return h;
}

function fixChecksum(h) {
  h.write('        ', 148);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
}

/** the tar of these entries; `raw` entries are spliced in as they are */
export function writeTar(entries, end = true) {
  const parts = [];
  for (const e of entries) {
    if (e.raw) parts.push(e.raw);
    else parts.push(e.header ?? header(e.name, e.data.length, e.type), e.data, pad(e.data.length));
  }
  if (end) parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

const NAMES = ['config.json', 'weights.th', 'model.tar.gz', 'vocab.txt', 'vocabulary/radgraph__ner_labels.txt', './config.json', '././weights.th', '', 'x'.repeat(99)];
const TYPES = ['0', '\0', '5', '2', '1', 'L', 'x', 'g', '7', 'S'];

/** a pax record "<length> key=value\n" */
function paxRecord(key, value) {
  const body = ` ${key}=${value}\n`;
  let n = body.length + 1;
  while (String(n).length + body.length !== n) n = String(n).length + body.length;
  return `${n}${body}`;
}

function mutateEntries(entries, rng) {
  const op = rng.weighted({ field: 5, config: 5, labels: 2, record: 3, list: 3, nest: 1, weights: 2 });
  rng.note(op);
  const at = rng.int(entries.length);
  const e = entries[at];
  if (op === 'field') {
    const h = header(e.name, e.data.length, e.type);
    for (let i = rng.count(3, 1.5); i > 0; i--) {
      const f = rng.pick(['size', 'type', 'name', 'prefix', 'base256', 'mode']);
      rng.note(`${f} of ${e.name}`);
      if (f === 'size') h.write((Number(interesting(4, rng, e.data.length)) >>> 0).toString(8).padStart(11, '0').slice(-11) + '\0', 124);
      else if (f === 'type') h.write(rng.pick(TYPES), 156, 1, 'latin1');
      else if (f === 'name') { h.fill(0, 0, 100); h.write(rng.pick(NAMES), 0, 100, 'utf8'); }
      else if (f === 'prefix') h.write(rng.pick(['.', 'a/b', '/', 'x'.repeat(155)]), 345, 155, 'utf8');
      else if (f === 'base256') { h[124] = 0x80; writeUInt(h, 128, 8, interesting(8, rng, e.data.length), true); }
      else h.write(rng.pick(['9999999\0', 'zzzzzzz\0', '       \0']), 100 + 8 * rng.int(3));
    }
    if (rng.chance(0.85)) fixChecksum(h);
    else rng.note('checksum left');
    entries[at] = { ...e, header: h };
  } else if (op === 'config' || op === 'labels') {
    const target = op === 'config' ? entries.find((x) => x.name === 'config.json') : rng.pick(entries.filter((x) => x.name.startsWith('vocabulary/')));
    if (!target) return;
    if (op === 'config') {
      let value;
      try {
        value = JSON.parse(target.data.toString('utf8'));
      } catch {
        // an earlier mutation of this input broke it already: change its bytes instead
        target.data = mutateBytes(target.data, rng);
        return;
      }
      target.data = jsonBytes(mutateJsonValue(value, rng), rng);
    } else {
      const lines = target.data.toString('utf8').split('\n');
      const i = rng.int(lines.length);
      const v = rng.pick(['', '@@PADDING@@', '@@UNKNOWN@@', lines[i], 'x'.repeat(5000), '\u0000', 'OBS-DP\r']);
      if (rng.chance(0.5)) lines.splice(i, 0, ...Array(rng.pick([1, 1000])).fill(v));
      else lines[i] = v;
      target.data = Buffer.from(lines.join('\n'));
    }
  } else if (op === 'record') {
    // a GNU long name or a pax header before an entry, naming it (or not)
    const name = rng.pick(NAMES);
    const filler = 'y'.repeat(rng.pick([0, 100, 20_000, 300_000, 2_000_000]));
    const pax = rng.chance(0.5);
    const data = Buffer.from(pax ? paxRecord('comment', filler) + paxRecord('path', name) : name + (rng.chance(0.3) ? filler : ''));
    entries.splice(at, 0, { name: pax ? 'PaxHeaders/x' : '././@LongLink', type: pax ? 'x' : 'L', data });
  } else if (op === 'list') {
    switch (rng.int(4)) {
      case 0: entries.splice(at, 1); break;
      case 1: entries.splice(at, 0, ...Array(rng.pick([1, 2, 100])).fill(e)); break;
      case 2: { const j = rng.int(entries.length); [entries[at], entries[j]] = [entries[j], entries[at]]; break; }
      default: entries[at] = { ...e, name: rng.pick(NAMES) };
    }
  } else if (op === 'nest') {
    const inner = gzipSync(writeTar(entries.splice(0)));
    entries.push({ name: rng.pick(['model.tar.gz', './model.tar.gz', 'weights.th']), type: '0', data: rng.chance(0.2) ? gzipSync(writeTar([{ name: 'model.tar.gz', type: '0', data: inner }])) : inner });
  } else {
    const w = entries.find((x) => x.name === 'weights.th');
    if (w) w.data = rng.chance(0.5) ? mutateBytes(w.data, rng) : w.data.subarray(0, rng.int(w.data.length));
  }
}

export function mutateArchive(gz, rng) {
  const tar = gunzipSync(gz);
  const layer = rng.weighted({ entries: 8, tail: 1, gzip: 1 });
  if (layer === 'gzip') {
    rng.note('gzip');
    const k = rng.int(3);
    if (k === 0) return mutateBytes(gz, rng);
    if (k === 1) return gz.subarray(0, rng.int(gz.length));
    return Buffer.concat([gz, rng.chance(0.5) ? gz : gzipSync(rng.bytes(rng.pick([1, 512, 4096])))]);
  }
  const entries = readTar(tar).map((e) => ({ ...e, data: Buffer.from(e.data) }));
  if (layer === 'entries') for (let i = rng.count(3, 1.4); i > 0; i--) mutateEntries(entries, rng);
  let out = writeTar(entries, layer === 'entries' ? rng.chance(0.95) : true);
  if (layer === 'tail') {
    const n = rng.pick([1, 511, 4096, 16 << 20, 64 << 20]);
    rng.note(`${n} bytes after the end marker`);
    out = Buffer.concat([out, rng.chance(0.7) ? Buffer.alloc(n) : rng.bytes(Math.min(n, 1 << 20))]);
  }
  return gzipSync(out, { level: rng.chance(0.5) ? 9 : 1 });
}
