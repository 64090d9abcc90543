// `convertRadgraph` on broken and unusual archives (built here from the tiny fixture's files): corrupt,
// truncated, not a tar, gzip bombs, no config.json, no weights.th, no vocabulary, settings the engine does not implement,
// weights that do not fit the config -> typed errors, no output left behind; a vocab.txt inside the archive
// and a nested model.tar.gz are read, a large weights.th is copied whole. Then the engine's own checks: a
// truncated GGUF, spans outside the words; and 40 mutated archives and 40 mutated GGUFs, each a typed error or a
// working model.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createGzip, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { convertRadgraph } from '../lib/convert/radgraph.js';
import { LlavaRadError } from '../lib/errors.js';
import { native } from '../lib/native.js';
import { INFLATION_SLACK, readModelArchive } from '../lib/radgraph/archive.js';
import { RadgraphModel } from '../lib/radgraph/radgraph.js';

const FIXTURE = new URL('./fixtures/radgraph/model/', import.meta.url).pathname;
const ARCHIVE = path.join(FIXTURE, 'radgraph-tiny.tar.gz');
const vocabText = readFileSync(path.join(FIXTURE, 'vocab.txt'), 'utf8');
const vocab = WordPieceVocab.fromText(vocabText);
const dir = mkdtempSync(path.join(tmpdir(), 'radgraph-convert-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** a ustar header: `size` as the entry's size, `type` its type flag ('0' a file) */
function tarHeader(name: string, size: number, type = '0'): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('14000000000\0', 136);
  h.write('        ', 148);
  h.write(type, 156);
  h.write('ustar\0' + '00', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

/** the tar blocks of these files, end marker included */
function tar(files: ReadonlyArray<[string, Buffer]>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, data] of files) blocks.push(tarHeader(name, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** a ustar archive of the given files, gzip'd */
const tarGz = (files: ReadonlyArray<[string, Buffer]>): Buffer => gzipSync(tar(files));

/** a parsed config.json, edited freely by the cases */
type Cfg = any; // eslint-disable-line @typescript-eslint/no-explicit-any
let files: Map<string, Buffer>;
let weights: Buffer;
let config: Cfg;
beforeAll(async () => {
  const a = await readModelArchive(ARCHIVE);
  try {
    files = new Map(a.files);
    weights = readFileSync(a.weightsPath!);
  } finally {
    await a.dispose();
  }
  config = JSON.parse(files.get('config.json')!.toString('utf8'));
});

let n = 0;
function archive(edit: (entries: Map<string, Buffer>, cfg: Cfg) => void = () => undefined): string {
  const entries = new Map<string, Buffer>([...files, ['weights.th', weights]]);
  const cfg = structuredClone(config);
  edit(entries, cfg);
  if (entries.has('config.json')) entries.set('config.json', Buffer.from(JSON.stringify(cfg)));
  const p = path.join(dir, `a${n++}.tar.gz`);
  writeFileSync(p, tarGz([...entries]));
  return p;
}

async function expectRefused(archivePath: string, code: string, message: RegExp, options = { vocab, headCount: 4 }): Promise<void> {
  const out = path.join(dir, `out${n++}.gguf`);
  await expect(convertRadgraph(archivePath, out, options)).rejects.toMatchObject({ code, message: expect.stringMatching(message) });
  expect(existsSync(out)).toBe(false);
}

describe('convertRadgraph refuses broken archives with typed errors', () => {
  it('bytes that are not gzip', async () => {
    const p = path.join(dir, 'junk.tar.gz');
    writeFileSync(p, Buffer.from('this is not an archive at all'.repeat(40)));
    await expectRefused(p, 'BAD_CHECKPOINT', /gzip/);
  });
  it('a truncated archive', async () => {
    const whole = readFileSync(ARCHIVE);
    const p = path.join(dir, 'cut.tar.gz');
    writeFileSync(p, whole.subarray(0, whole.length >> 1));
    await expectRefused(p, 'BAD_CHECKPOINT', /gzip|truncated/);
  });
  // A gzip of zeros inflates about 1000 times: before the limits (lib/radgraph/archive.ts), a 14 MB archive whose
  // weights.th said 3 GiB had 3 GB written to the temporary folder before config.json was even read.
  it('a weights.th (or any entry) whose size is far beyond what the gzip can honestly hold, refused from its header', async () => {
    for (const [name, type] of [['weights.th', '0'], ['model.tar.gz', '0'], ['ignored.bin', '0'], ['a-link', '2']] as const) {
      const p = path.join(dir, `huge-${name}.tar.gz`);
      writeFileSync(p, gzipSync(Buffer.concat([tarHeader(name, 3 * 1024 ** 3, type), Buffer.alloc(64 * 1024)])));
      const a = readModelArchive(p);
      await expect(a, name).rejects.toMatchObject({ code: 'BAD_CHECKPOINT', message: expect.stringMatching(/3221225472 bytes takes its tar past \d+ bytes.*gzip bomb/) });
    }
  });
  it('a tar that inflates past its limit after its end marker, refused while inflating', async () => {
    const zeros = Buffer.alloc(1 << 20);
    const gz = createGzip({ level: 9 }); // about 1000:1 on zeros
    const parts: Buffer[] = [];
    gz.on('data', (c: Buffer) => parts.push(c));
    const done = new Promise((resolve) => gz.on('end', resolve));
    gz.write(tar([...files, ['weights.th', weights]]));
    for (let i = 0; i < (INFLATION_SLACK >> 20) + 64; i++) gz.write(zeros);
    gz.end();
    await done;
    const p = path.join(dir, 'trailing-zeros.tar.gz');
    writeFileSync(p, Buffer.concat(parts));
    await expectRefused(p, 'BAD_CHECKPOINT', /inflates past \d+ bytes, more than 32 times its gzip'd size/);
  });
  it('gzip of something that is not a tar', async () => {
    const p = path.join(dir, 'plain.gz');
    writeFileSync(p, gzipSync(Buffer.alloc(4096, 7)));
    await expectRefused(p, 'BAD_CHECKPOINT', /checksum|not a tar/);
  });
  it('no config.json', async () => {
    await expectRefused(archive((e) => e.delete('config.json')), 'BAD_CHECKPOINT', /no config\.json/);
  });
  it('a config.json that is not JSON', async () => {
    const p = path.join(dir, 'notjson.tar.gz');
    writeFileSync(p, tarGz([['config.json', Buffer.from('{ nope')], ['weights.th', weights]]));
    await expectRefused(p, 'BAD_CHECKPOINT', /not JSON/);
  });
  it('no weights.th', async () => {
    await expectRefused(archive((e) => e.delete('weights.th')), 'BAD_CHECKPOINT', /no weights\.th/);
  });
  it('no label vocabulary', async () => {
    await expectRefused(archive((e) => e.delete('vocabulary/radgraph__ner_labels.txt')), 'UNSUPPORTED', /__ner_labels/);
  });
  it('several datasets, none of them radgraph', async () => {
    await expectRefused(archive((e) => {
      for (const ds of ['ace', 'genia']) for (const kind of ['ner', 'relation']) e.set(`vocabulary/${ds}__${kind}_labels.txt`, e.get(`vocabulary/radgraph__${kind}_labels.txt`)!);
      e.delete('vocabulary/radgraph__ner_labels.txt');
    }), 'UNSUPPORTED', /radgraph__ner_labels among them/);
  });
  it('no WordPiece vocabulary given or inside', async () => {
    await expectRefused(archive(), 'INVALID_ARGUMENT', /--vocab/, { headCount: 4 } as never);
  });
  it('weights that do not fit the config (feature_size)', async () => {
    await expectRefused(archive((_, c) => { c.model.feature_size = 9; }), 'BAD_CHECKPOINT', /_span_width_embedding.*shape/);
  });
  for (const [what, edit, message] of [
    ['another model type', (c: Cfg) => { c.model.type = 'coref'; }, /model\.type/],
    ['coref propagation', (c: Cfg) => { c.model.modules.coref.coref_prop = 1; }, /coref_prop/],
    ['the events module', (c: Cfg) => { c.model.loss_weights.events = 1; }, /events/],
    ['a cased BERT', (c: Cfg) => { c.model.embedder.token_embedders.bert.model_name = 'bert-base-cased'; }, /uncased/],
    ['a BERT not known to be uncased', (c: Cfg) => { c.model.embedder.token_embedders.bert.model_name = 'StanfordAIMI/RadBERT'; c.dataset_reader.token_indexers.bert.model_name = 'StanfordAIMI/RadBERT'; }, /--uncased/],
    ['a scalar mix of layers', (c: Cfg) => { c.model.embedder.token_embedders.bert.last_layer_only = false; }, /last_layer_only/],
    ['spans wider than the width embeddings', (c: Cfg) => { c.dataset_reader.max_span_width = 9; }, /max_span_width/],
    ['different max_length in the indexer', (c: Cfg) => { c.dataset_reader.token_indexers.bert.max_length = 8; }, /max_length/],
  ] as const) {
    it(`UNSUPPORTED: ${what}`, async () => {
      await expectRefused(archive((_, c) => edit(c)), 'UNSUPPORTED', message);
    });
  }
});

describe('convertRadgraph reads unusual layouts', () => {
  it('a weights.th much larger than the stream buffers, copied byte for byte (the gunzip waits for the disk)', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
    const p = path.join(dir, 'big.tar.gz');
    writeFileSync(p, tarGz([['weights.th', big], ['config.json', Buffer.from('{}')]]));
    const a = await readModelArchive(p);
    try {
      expect(readFileSync(a.weightsPath!).equals(big)).toBe(true);
      expect(a.files.get('config.json')?.toString()).toBe('{}');
    } finally {
      await a.dispose();
    }
  });

  it('data after the end marker is read past; a pax record larger than the gunzip\'s chunks names the next entry', async () => {
    /** a pax record "<length> key=value\n", its length counting itself */
    const paxRecord = (key: string, value: string) => {
      const body = ` ${key}=${value}\n`;
      let n = body.length + 1;
      while (String(n).length + body.length !== n) n = String(n).length + body.length;
      return `${n}${body}`;
    };
    const pax = Buffer.from(paxRecord('comment', 'x'.repeat(200_000)) + paxRecord('path', './config.json'));
    const cfg = Buffer.from(JSON.stringify(config));
    const entries = [...files].filter(([name]) => name !== 'config.json');
    const body = Buffer.concat([
      tarHeader('PaxHeaders/a', pax.length, 'x'), pax, Buffer.alloc((512 - (pax.length % 512)) % 512),
      tarHeader('a-name-the-pax-record-replaces', cfg.length), cfg, Buffer.alloc((512 - (cfg.length % 512)) % 512),
      tar([...entries, ['weights.th', weights]]),
    ]);
    // 32 MB of zeros after the end marker: before, kept and joined chunk by chunk (96 s of copying)
    const p = path.join(dir, 'pax-and-trailing.tar.gz');
    writeFileSync(p, gzipSync(Buffer.concat([body, Buffer.alloc(32 << 20)]), { level: 9 }));
    const a = await readModelArchive(p);
    try {
      expect(a.files.get('config.json')?.equals(cfg), 'config.json, named by the pax record').toBe(true);
      expect(a.files.has('a-name-the-pax-record-replaces')).toBe(false);
      expect(readFileSync(a.weightsPath!).equals(weights)).toBe(true);
    } finally {
      await a.dispose();
    }
    const r = await convertRadgraph(p, path.join(dir, 'pax.gguf'), { vocab, headCount: 4 });
    expect(r.config.dataset).toBe('radgraph');
  });

  it("radgraph's labels among several datasets' namespaces", async () => {
    const p = archive((e) => { e.set('vocabulary/ace__ner_labels.txt', Buffer.from('\nPER\n')); e.set('vocabulary/ace__relation_labels.txt', Buffer.from('PART-WHOLE\n')); });
    const r = await convertRadgraph(p, path.join(dir, 'multi.gguf'), { vocab, headCount: 4 });
    expect(r.config.dataset).toBe('radgraph');
    expect(r.config.nerLabels).toEqual(['', 'ANAT-DP', 'OBS-DP', 'OBS-U', 'OBS-DA']);
  });
  it('a BERT whose name does not say uncased, when the caller says its tokenizer is', async () => {
    const p = archive((_, c) => { c.model.embedder.token_embedders.bert.model_name = 'StanfordAIMI/RadBERT'; c.dataset_reader.token_indexers.bert.model_name = 'StanfordAIMI/RadBERT'; });
    const r = await convertRadgraph(p, path.join(dir, 'radbert.gguf'), { vocab, headCount: 4, uncased: true });
    expect(r.config.bertModelName).toBe('StanfordAIMI/RadBERT');
  });

  it('a vocab.txt inside the archive, and a nested model.tar.gz', async () => {
    const withVocab = archive((e) => e.set('vocab.txt', Buffer.from(vocabText)));
    const out1 = path.join(dir, 'inside.gguf');
    const r = await convertRadgraph(withVocab, out1, { headCount: 4 });
    expect(r.bert.vocabSize).toBe(vocab.size);
    const nested = path.join(dir, 'nested.tar.gz');
    writeFileSync(nested, tarGz([['model.tar.gz', readFileSync(withVocab)]]));
    const out2 = path.join(dir, 'nested.gguf');
    await convertRadgraph(nested, out2, { headCount: 4 });
    expect(readFileSync(out2).equals(readFileSync(out1))).toBe(true);
  });
});

describe('the engine refuses bad input and stays usable', () => {
  let gguf: string;
  beforeAll(async () => {
    gguf = path.join(dir, 'ok.gguf');
    await convertRadgraph(ARCHIVE, gguf, { vocab, headCount: 4 });
  });

  it('a truncated GGUF is BAD_GGUF', async () => {
    const cut = path.join(dir, 'cut.gguf');
    const whole = readFileSync(gguf);
    writeFileSync(cut, whole.subarray(0, whole.length - 1000));
    await expect(RadgraphModel.load(cut)).rejects.toMatchObject({ code: 'BAD_GGUF' });
  });

  it('spans outside the words or too wide, and words of the wrong size, are refused', async () => {
    type Nr = { info(): { nEmbd: number }; scoreSpans(w: Float32Array, s: Int32Array): Promise<unknown>; scorePairs(w: Float32Array, s: Int32Array, m: Float32Array): Promise<unknown>; dispose(): Promise<void> };
    const nr = await (native() as unknown as { loadRadgraph(p: string, o: object): Promise<Nr> }).loadRadgraph(gguf, { threads: 1 });
    try {
      const D = nr.info().nEmbd;
      const words = new Float32Array(3 * D);
      await expect(nr.scoreSpans(words, Int32Array.from([0, 3]))).rejects.toMatchObject({ message: expect.stringMatching(/span 0 is \(0, 3\)/) });
      await expect(nr.scoreSpans(words, Int32Array.from([2, 1]))).rejects.toThrow(/start <= end/);
      await expect(nr.scoreSpans(new Float32Array(12 * D), Int32Array.from([0, 5]))).rejects.toThrow(/at most 4/);
      expect(() => nr.scoreSpans(new Float32Array(D + 1), Int32Array.from([0, 0]))).toThrow(/multiple of/);
      expect(() => nr.scorePairs(words, Int32Array.from([0, 0, 1, 1]), new Float32Array(1))).toThrow(/one score per span/);
      const ok = (await nr.scoreSpans(words, Int32Array.from([0, 0, 1, 2]))) as { ner: Float32Array; mention: Float32Array };
      expect(ok.mention.length).toBe(2);
    } finally {
      await nr.dispose();
    }
  });
});

describe('mutated inputs give typed errors or a working model, never a crash', () => {
  // a small LCG, so every run mutates the same bytes
  let state = 20261207;
  const next = (n: number) => { state = (state * 1103515245 + 12345) % 2147483648; return state % n; };
  const mutate = (buf: Buffer, region: number) => {
    const b = Buffer.from(buf);
    for (let k = 0, n = 1 + next(8); k < n; k++) b[next(Math.min(region, b.length))] = next(256);
    return b;
  };
  const typedOrNothing = async (f: () => Promise<unknown>) => {
    try { await f(); return 'ok'; } catch (e) {
      expect(e, String(e)).toBeInstanceOf(LlavaRadError);
      return (e as LlavaRadError).code;
    }
  };

  it('40 archives with bytes of the tar changed (recompressed)', async () => {
    const tar = gunzipSync(readFileSync(ARCHIVE));
    const codes = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const p = path.join(dir, `m${i}.tar.gz`);
      writeFileSync(p, gzipSync(mutate(tar, tar.length)));
      const code = await typedOrNothing(() => convertRadgraph(p, path.join(dir, `m${i}.gguf`), { vocab, headCount: 4 }));
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
    expect([...codes.keys()].every((c) => ['ok', 'BAD_CHECKPOINT', 'UNSUPPORTED', 'UNSAFE_PICKLE', 'INVALID_ARGUMENT'].includes(c)), JSON.stringify([...codes])).toBe(true);
  });

  it('40 GGUFs with header or data bytes changed: load refuses, or the model annotates', async () => {
    const gguf = path.join(dir, 'fuzz-base.gguf');
    await convertRadgraph(ARCHIVE, gguf, { vocab, headCount: 4 });
    const bytes = readFileSync(gguf);
    for (let i = 0; i < 40; i++) {
      const p = path.join(dir, `g${i}.gguf`);
      writeFileSync(p, mutate(bytes, i % 2 === 0 ? 8192 : bytes.length));
      await typedOrNothing(async () => {
        const m = await RadgraphModel.load(p, { threads: 1 });
        try { await m.annotate('Small left pleural effusion, unchanged.'); } finally { await m.dispose(); }
      });
    }
  });
});
