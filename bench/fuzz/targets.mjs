// The fuzz targets: for each, the seed files, how one input is made from (rng, temp folder), and how it is
// run through the library's real entry point (the bundle of lib/, `L`). A target's run() resolves when the
// library accepted the input and rejects with whatever the library threw.
import { cpSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { root } from './bundle.mjs';
import { mutateBytes } from './bytes.mjs';
import { mutateDicom } from './dicom.mjs';
import { mutateGguf } from './gguf.mjs';
import { mutateIndex } from './index-file.mjs';
import { InvariantError, journalInput, runJournal } from './journal-target.mjs';
import { mutateImage } from './image.mjs';
import { jsonBytes, mutateJsonValue } from './json.mjs';
import { makeManifest } from './manifest.mjs';
import { mutatePickle } from './pickle.mjs';
import { mutateSafetensors } from './safetensors.mjs';
import { SEED_FILES, clipSeed, seedsDir } from './seeds.mjs';
import { mutateArchive } from './tar.mjs';
import { mutateHttp } from './http.mjs';
import { hostileText } from './text.mjs';
import { connect } from 'node:net';
import { mutateZipStructure, readZip, writeZip } from './zip.mjs';

const fx = (...p) => path.join(root, 'test', ...p);
const cache = new Map();
const read = (file) => {
  if (!cache.has(file)) cache.set(file, readFileSync(file));
  return cache.get(file);
};
const seedsIn = (dir, re) => readdirSync(dir).filter((f) => re.test(f)).sort().map((f) => path.join(dir, f));

const TORCH_ZIPS = [
  fx('fixtures/checkpoints/adapter_model.bin'), fx('fixtures/checkpoints/open_clip_like.pt'), fx('fixtures/checkpoints/parameters.pt'),
  fx('fixtures/checkpoints/state_dict.pt'), fx('fixtures/checkpoints/state_dict_deflated.pt'),
  fx('fixtures/release/llava-rad/non_lora_trainables.bin'), fx('fixtures/release/llava-rad/adapter_model.bin'), fx('fixtures/release/llava-rad/biomedclipcxr_518_checkpoint.pt'),
];
const DECODERS = [fx('.fixtures/tiny-llama-base-q4_k-303570da.gguf'), fx('.fixtures/tiny-llama-base-q4_0-303570da.gguf'), fx('.fixtures/tiny-llama-base-q8_0-303570da.gguf')];
const VISIONS = [fx('fixtures/vision/tiny-vision-f16.gguf'), fx('fixtures/vision/tiny-vision-f32.gguf')];

/** reads every tensor of a checkpoint, as the converter does */
async function readCheckpoint(L, file) {
  const ck = await L.openCheckpoint(file);
  try {
    for (const t of ck.tensors.values()) await t.readFloat32();
  } finally {
    await ck.close();
  }
}

/**
 * A copy of a sharded checkpoint fixture (test/fixtures/checkpoints/<name>) with its index JSON mutated
 * (probability pIndex) or one shard passed through mutateShard; returns the index's path.
 */
function shardedInput(rng, dir, name, indexName, shardExt, pIndex, mutateShard) {
  const src = fx('fixtures/checkpoints', name);
  cpSync(src, dir, { recursive: true });
  const idx = path.join(dir, indexName);
  if (rng.chance(pIndex)) writeFileSync(idx, jsonBytes(mutateJsonValue(JSON.parse(read(path.join(src, indexName)).toString()), rng), rng));
  else {
    const shard = path.join(dir, rng.pick(readdirSync(src).filter((f) => f.endsWith(shardExt))));
    writeFileSync(shard, mutateShard(readFileSync(shard)));
  }
  return idx;
}

function torchInput(rng, dir) {
  const v = rng.weighted({ pickle: 45, storage: 8, zip: 15, raw: 15, legacy: 12, index: 5 });
  rng.note(v);
  const out = path.join(dir, 'model.pt');
  if (v === 'legacy') {
    let b = mutatePickle(read(fx('fixtures/checkpoints/legacy.pt')), rng, 5);
    if (rng.chance(0.2)) b = mutateBytes(b, rng, { count: 1 });
    writeFileSync(out, b);
    return out;
  }
  if (v === 'index') {
    return shardedInput(rng, dir, 'sharded', 'pytorch_model.bin.index.json', '.bin', 0.7, (b) => {
      const entries = readZip(b);
      const pkl = entries.find((e) => e.name.endsWith('data.pkl'));
      pkl.data = mutatePickle(pkl.data, rng);
      return writeZip(entries).buf;
    });
  }
  const seed = rng.pick(TORCH_ZIPS);
  rng.note(path.basename(seed));
  if (v === 'raw') {
    writeFileSync(out, mutateBytes(read(seed), rng));
    return out;
  }
  const entries = readZip(read(seed));
  const pkl = entries.find((e) => e.name.endsWith('data.pkl'));
  if (v === 'pickle' || (v === 'zip' && rng.chance(0.3))) pkl.data = mutatePickle(pkl.data, rng);
  if (v === 'storage') {
    const prefix = pkl.name.slice(0, -'data.pkl'.length);
    const storages = entries.filter((e) => e.name.startsWith(`${prefix}data/`));
    const s = rng.pick(storages);
    switch (rng.int(6)) {
      case 0: s.data = s.data.subarray(0, rng.int(s.data.length + 1)); break;
      case 1: entries.splice(entries.indexOf(s), 1); break;
      case 2: entries.push({ name: `${prefix}constants.pkl`, data: Buffer.from([0x80, 2, 0x29, 0x2e]) }); break;
      case 3: entries.push({ name: `${prefix}byteorder`, data: Buffer.from(rng.pick(['big', 'little', '', 'x'.repeat(100)])) }); break;
      case 4: entries.push({ ...s }); break; // a duplicate entry name
      default: s.data = Buffer.alloc(rng.pick([1 << 20, 64 << 20]), 0); s.method = 8; break; // a big (deflated) storage
    }
  }
  const z = writeZip(entries, { method: rng.chance(0.3) ? 8 : 0 });
  writeFileSync(out, v === 'zip' ? mutateZipStructure(z, rng) : z.buf);
  return out;
}

function safetensorsInput(rng, dir) {
  if (rng.chance(0.15)) {
    return shardedInput(rng, dir, 'sharded-safetensors', 'model.safetensors.index.json', '.safetensors', 0.6, (b) => mutateSafetensors(b, rng));
  }
  const seed = rng.pick([fx('fixtures/checkpoints/model.safetensors'), ...seedsIn(fx('fixtures/checkpoints/sharded-safetensors'), /\.safetensors$/)]);
  rng.note(path.basename(seed));
  // named .safetensors, or .bin so that openCheckpoint has to recognise it by content
  const out = path.join(dir, rng.chance(0.8) ? 'model.safetensors' : 'model.bin');
  writeFileSync(out, mutateSafetensors(read(seed), rng));
  return out;
}

function ggufInput(seeds) {
  return (rng, dir) => {
    const out = path.join(dir, 'model.gguf');
    const seed = rng.pick(seeds);
    rng.note(path.basename(seed));
    writeFileSync(out, mutateGguf(read(seed), rng));
    return out;
  };
}

const DICOMS = () => seedsIn(fx('fixtures/dicom'), /\.dcm$/);
const IMAGES = () => [...seedsIn(fx('fixtures/images'), /\.(png|jpg|gif|tif|webp)$/), ...seedsIn(fx('fixtures/findings'), /\.(png|jpg)$/)];

function imageOptions(rng) {
  const o = {};
  if (rng.chance(0.3)) o.autoOrient = rng.chance(0.5);
  if (rng.chance(0.3)) o.firstFrame = true;
  if (rng.chance(0.3)) o.highBitDepth = rng.pick(['msb', 'minmax', 'pil']);
  return o;
}

/** a model folder: llava-rad.json (mutated) and/or GGUF names; the GGUFs are links to the tiny fixtures */
function folderInput(rng, dir) {
  const link = (name, target) => {
    try {
      symlinkSync(target, path.join(dir, name));
    } catch {
      /* a name the file system refuses, or one given twice */
    }
  };
  if (rng.chance(0.7)) {
    const base = { decoder: 'decoder.gguf', vision: 'vision.gguf', type: 'q4_k', vision_type: 'f16', converter: { name: 'llava-rad', version: 1 }, research_use_only: true };
    const m = rng.chance(0.8) ? mutateJsonValue(base, rng) : base;
    const text = jsonBytes(m, rng);
    rng.note(`llava-rad.json ${JSON.stringify(text.toString('latin1').slice(0, 60))}`);
    writeFileSync(path.join(dir, 'llava-rad.json'), text);
    link('decoder.gguf', DECODERS[0]);
    link('vision.gguf', VISIONS[0]);
    if (m && typeof m === 'object') for (const k of ['decoder', 'vision']) if (typeof m[k] === 'string' && m[k].length < 200 && !m[k].includes('/')) link(m[k], k === 'decoder' ? DECODERS[0] : VISIONS[0]);
  } else {
    rng.note('GGUF names, no llava-rad.json');
    const names = ['decoder.gguf', 'vision.gguf', 'mmproj.GGUF', 'x-vision.gguf', 'Model.Gguf', 'a.gguf.txt', 'VISION.gguf', '.gguf'];
    for (let i = rng.range(0, 3); i > 0; i--) {
      const n = rng.pick(names);
      try {
        if (rng.chance(0.15)) mkdirSync(path.join(dir, n));
        else link(n, /vision|mmproj/i.test(n) ? VISIONS[0] : DECODERS[0]);
      } catch {
        /* the name is taken already */
      }
    }
  }
  return dir;
}

const REPORTS = ['No pleural effusion or pneumothorax.', 'Mild cardiomegaly; small left pleural effusion.', '', 'x'.repeat(3000)];

/** a BERT-family GGUF: CheXbert, RadGraph, or the CLIP text tower (with its vision GGUF, mutated now and then) */
function bertInput(rng, dir) {
  const kind = rng.weighted({ chexbert: 4, radgraph: 3, clip: 3 });
  rng.note(kind);
  if (kind === 'clip') {
    const s = clipSeed();
    const which = rng.chance(0.85) ? 'clip' : 'vision';
    rng.note(`mutated: ${which}`);
    const files = { kind, clip: path.join(dir, 'clip.gguf'), vision: path.join(dir, 'vision.gguf') };
    for (const k of ['clip', 'vision']) writeFileSync(files[k], k === which ? mutateGguf(read(s[k]), rng) : read(s[k]));
    return files;
  }
  const seed = path.join(seedsDir(), rng.pick(SEED_FILES[kind]));
  rng.note(path.basename(seed));
  const file = path.join(dir, 'model.gguf');
  writeFileSync(file, mutateGguf(read(seed), rng));
  return { kind, file };
}

async function runBert(L, input, rng) {
  const reports = REPORTS.filter(() => rng.chance(0.6));
  if (input.kind === 'chexbert') {
    const m = await L.ChexbertLabeler.load(input.file, { threads: 1 });
    try {
      await m.label(REPORTS[1]);
      await m.labelMany(reports);
    } finally {
      await m.dispose();
    }
  } else if (input.kind === 'radgraph') {
    const m = await L.RadgraphModel.load(input.file, { threads: 1 });
    try {
      await m.annotate(REPORTS[1]);
      await m.annotateMany(reports);
    } finally {
      await m.dispose();
    }
  } else {
    const m = await L.loadClip({ clip: input.clip, vision: input.vision, threads: 1 });
    try {
      await m.embedTexts([REPORTS[0], ...reports]);
      if (rng.chance(0.3)) await m.embedImages([read(IMAGES()[0])]);
      if (rng.chance(0.3)) await m.classify(read(IMAGES()[0]), ['pleural effusion', 'no finding']);
    } finally {
      await m.dispose();
    }
  }
}

/** the server each child runs for the http target: the tiny models, made on the first http input */
let served;
function server(L) {
  served ??= (async () => {
    const model = await L.loadLlavaRad({ decoder: DECODERS[0], vision: VISIONS[1], threads: 1, parallel: 2, contextSize: L.contextPerStudy(8) });
    const s = await L.createServer({ model, concurrency: 2, queue: 2, maxTokens: 8, maxImageBytes: 1 << 20, requestTimeoutMs: 2000, timeoutMs: 20_000 });
    await s.app.listen({ host: '127.0.0.1', port: 0 });
    return s.app.server.address().port;
  })();
  return served;
}

/**
 * Writes `bytes` on one connection and reads the first answer: its headers, then its Content-Length bytes, its
 * chunks up to the last, or (neither) everything up to the close; or what came within limitMs. The connection
 * is not half-closed: a server takes that for a client going away, and cancels the study.
 */
function exchange(port, bytes, limitMs) {
  const head = bytes.subarray(0, 5).toString('latin1') === 'HEAD '; // an answer to HEAD has no body
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.destroy();
      resolve(buf.toString('latin1'));
    };
    const complete = () => {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const headers = buf.subarray(0, end).toString('latin1');
      if (head || /^HTTP\/1\.1 (1\d\d|204|304) /.test(headers)) return true;
      const length = /\r\ncontent-length: *(\d+)/i.exec(headers);
      if (length) return buf.length >= end + 4 + Number(length[1]);
      if (/\r\ntransfer-encoding: *chunked/i.test(headers)) return buf.indexOf('\r\n0\r\n\r\n', end) >= 0 || buf.subarray(end + 4, end + 9).toString() === '0\r\n\r\n';
      return false; // read to the close
    };
    const c = connect(port, '127.0.0.1', () => c.write(bytes));
    const timer = setTimeout(done, limitMs);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (complete()) done();
    });
    c.on('error', () => {});
    c.on('close', done);
  });
}

/**
 * One hostile request against the child's server. ok: a 1xx-3xx answer. typed: a 4xx / 503 / 504 answer in the
 * API's error shape (its code). untyped: a 500, an error answer without the shape, no answer at all, or a server
 * that does not answer GET /health with 200 afterwards.
 */
async function runHttp(L, bytes) {
  const port = await server(L);
  const text = await exchange(port, bytes, 20_000);
  const health = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.status, (e) => String(e));
  if (health !== 200) throw new Error(`GET /health answered ${health} after this input`);
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1] ?? 0);
  if (status === 0) throw new Error(`no answer (${text.length} bytes within 20 s)`);
  if (status < 400) return;
  // an answer to HEAD has the status and headers of the GET answer, no body: its status stands for the code
  const headCode = { 404: 'NOT_FOUND', 405: 'METHOD_NOT_ALLOWED', 413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE' }[status];
  const code = /\{"error":\{"code":"([A-Z_]+)"/.exec(text)?.[1] ?? (bytes.subarray(0, 5).toString('latin1') === 'HEAD ' ? headCode : undefined);
  if (status === 500 || code === undefined || code === 'INTERNAL') throw new Error(`HTTP ${status} ${code ?? 'without the API error shape'}: ${text.slice(0, 200)}`);
  throw new L.LlavaRadError(code, `HTTP ${status}`);
}

const RADIOGRAPH = fx('fixtures/findings/radiograph-rgb-1100x900.jpg');

/** the models the text target runs, loaded once per child from the campaign's seeds */
let textModels;
function textModelsOf(L) {
  textModels ??= (async () => {
    const s = clipSeed();
    const folder = path.dirname(s.clip);
    const decoder = path.join(folder, readdirSync(folder).find((f) => /decoder.*\.gguf$/.test(f)));
    return {
      chexbert: await L.ChexbertLabeler.load(path.join(seedsDir(), 'chexbert-f32.gguf'), { threads: 1 }),
      radgraph: await L.RadgraphModel.load(path.join(seedsDir(), 'radgraph-f32.gguf'), { threads: 1 }),
      clip: await L.loadClip({ clip: s.clip, vision: s.vision, threads: 1 }),
      llava: await L.loadLlavaRad({ decoder, vision: s.vision, threads: 1 }),
    };
  })();
  return textModels;
}

/** a record field: usually hostile text, now and then another JSON type */
function textField(rng) {
  return rng.chance(0.93) ? hostileText(rng) : rng.pick([null, 42, true, [], {}, ['x'], -0.5]);
}

/** hostile text through every consumer of text: the metrics (a predictions file), CheXbert, RadGraph, CLIP, the decoder */
function textInput(rng, dir) {
  const kind = rng.weighted({ eval: 4, chexbert: 2, radgraph: 2, clip: 2, tokenize: 1, findings: 1, judge: 1 });
  rng.note(kind);
  if (kind !== 'eval') return { kind, texts: Array.from({ length: rng.count(6, 2) }, () => hostileText(rng)) };
  const records = Array.from({ length: rng.count(8, 3) }, (_, i) => {
    const r = { id: rng.chance(0.9) ? `s${i}` : textField(rng), reference: textField(rng), [rng.chance(0.7) ? 'prediction' : 'findings']: textField(rng) };
    if (rng.chance(0.05)) r.error = textField(rng);
    return r;
  });
  let bytes = Buffer.from(records.map((r) => JSON.stringify(r)).join(rng.pick(['\n', '\r\n', '\n\n'])) + '\n');
  if (rng.chance(0.1)) bytes = mutateBytes(bytes, rng, { count: 1 });
  const file = path.join(dir, 'predictions.jsonl');
  writeFileSync(file, bytes);
  const metrics = rng.pick([['bleu', 'rouge'], ['chexbert'], ['radgraph'], ['bleu', 'rouge', 'chexbert', 'radgraph']]);
  return { kind, file, metrics, bootstrap: rng.pick([2, 20, 100]), paired: rng.chance(0.2) };
}

async function runText(L, input, rng) {
  const m = await textModelsOf(L);
  const { texts } = input;
  if (input.kind === 'eval') {
    const opts = { metrics: input.metrics, chexbert: m.chexbert, radgraph: m.radgraph, bootstrap: input.bootstrap };
    await (input.paired ? L.evaluatePaired(input.file, input.file, opts) : L.evaluate(input.file, opts));
  } else if (input.kind === 'chexbert') await m.chexbert.labelMany(texts);
  else if (input.kind === 'radgraph') await m.radgraph.annotateMany(texts);
  else if (input.kind === 'clip') {
    await m.clip.embedTexts(texts);
    if (rng.chance(0.3)) await m.clip.classify(read(RADIOGRAPH), texts);
  } else if (input.kind === 'tokenize') {
    const ids = await m.llava.decoder.tokenize(texts.join(''));
    await m.llava.decoder.detokenize(ids);
  } else if (input.kind === 'findings') await m.llava.generateFindings(read(RADIOGRAPH), texts[0], { maxTokens: 2 });
  else {
    for (const t of texts) {
      L.cleanGreenResponse(t);
      L.greenCounts(t);
      try {
        L.parseChexpromptCompletion(t);
      } catch (e) {
        if (!(e instanceof L.LlavaRadError)) throw e;
      }
    }
  }
}

/** a special file where a regular one is expected: FIFO, folder, device, symlink loop, dangling link, empty */
const SPECIAL_KINDS = ['fifo', 'dir', 'devzero', 'devnull', 'loop', 'dangling', 'empty', 'devurandom'];
/** every file of the tiny official release `convertRelease` (with the CLIP text tower) may read */
const RELEASE_FILES = [
  'vicuna/config.json', 'vicuna/tokenizer.model', 'vicuna/tokenizer_config.json', 'vicuna/special_tokens_map.json', 'vicuna/generation_config.json',
  'vicuna/pytorch_model.bin.index.json', 'vicuna/pytorch_model-00001-of-00002.bin', 'llava-rad/config.json', 'llava-rad/adapter_config.json',
  'llava-rad/adapter_model.bin', 'llava-rad/non_lora_trainables.bin', 'llava-rad/biomedclipcxr_518.json', 'llava-rad/biomedclipcxr_518_checkpoint.pt',
  'biomedbert/config.json', 'biomedbert/vocab.txt',
];
/** destinations a writer puts its file at by a rename (lib/replace-file.ts): a special file there must stay as it was */
const SPECIAL_OUTPUTS = ['out:radgraph', 'out:index', 'out:export', 'out:merged', 'out:release'];
const SPECIAL_USES = ['checkpoint', 'safetensors', 'manifest', 'image', 'folder', 'gguf', 'vision', 'index', 'archive', 'chexbert', 'predictions', 'journal',
  ...RELEASE_FILES.map((f) => `release:${f}`), ...SPECIAL_OUTPUTS];
function special(kind, p) {
  if (kind === 'fifo') execFileSync('mkfifo', [p]);
  else if (kind === 'dir') mkdirSync(p);
  else if (kind === 'devzero') symlinkSync('/dev/zero', p);
  else if (kind === 'devnull') symlinkSync('/dev/null', p);
  else if (kind === 'devurandom') symlinkSync('/dev/urandom', p);
  else if (kind === 'loop') {
    symlinkSync(`${p}.b`, p);
    symlinkSync(p, `${p}.b`);
  } else if (kind === 'dangling') symlinkSync(`${p}.missing`, p);
  else writeFileSync(p, '');
}

/** what is at `p`, for the outputs' check: the file type, and where a link points */
function entryAt(p) {
  try {
    const st = lstatSync(p);
    const type = st.isSymbolicLink() ? 'link' : st.isFIFO() ? 'fifo' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
    return type === 'link' ? `link to ${readlinkSync(p)}` : type;
  } catch {
    return 'nothing';
  }
}

/** a writer given a special destination `out` (made by special()): runs it, then checks that `out` is as it was */
async function writeOver(L, s) {
  const out = s.file;
  const before = entryAt(out);
  const rel = (p) => path.join(s.dir, 'release', p);
  try {
    if (s.use === 'out:radgraph') return await L.convertRadgraph(fx('fixtures/radgraph/model/radgraph-tiny.tar.gz'), out, { headCount: 4, vocab: s.vocab });
    const index = path.join(s.dir, 'in.lrindex');
    const contents = { modelId: 'fuzz', dim: 2, ids: ['a', 'b'], kinds: ['image', 'text'], vectors: (put) => put(new Float32Array([1, 0, 0, 1])) };
    if (s.use === 'out:index') return L.writeIndexFile(out, contents);
    if (s.use === 'out:export') {
      L.writeIndexFile(index, contents);
      const opened = L.RetrievalIndex.open(index);
      try {
        return L.exportJsonl(opened, out);
      } finally {
        opened.close();
      }
    }
    if (s.use === 'out:merged') return L.writeMerged(out, [], []);
    // out:release: the converted model's folder holds a special file under the decoder's name
    return await L.convertRelease({ base: rel('vicuna'), adapter: rel('llava-rad'), out: path.dirname(out), type: 'q8_0', threads: 1 });
  } finally {
    // an empty regular file and a dangling link may be replaced: they are what a rename is for
    const mayReplace = s.kind === 'empty' || s.kind === 'dangling';
    const after = entryAt(out);
    if (!mayReplace && after !== before) throw new InvariantError(`${s.use}: the ${s.kind} at the destination was replaced (${before} -> ${after})`);
  }
}

export const TARGETS = {
  // the harness's own check, not in the default set: seed mod 5 = ok, untyped, signal, hang, peak
  selftest: {
    manual: true,
    count: 5,
    what: 'the harness itself: an accepted input, an untyped error, SIGSEGV, an endless loop, 5 GiB of RSS',
    make: (rng, dir, seed) => seed % 5,
    run: async (L, k) => {
      if (k === 1) throw new TypeError('selftest: an untyped error');
      if (k === 2) process.kill(process.pid, 'SIGSEGV');
      if (k === 3) for (;;);
      if (k === 4) {
        const keep = [];
        for (let i = 0; i < 40; i++) keep.push(Buffer.alloc(128 << 20, 1));
        await new Promise((r) => setTimeout(r, 60_000));
      }
    },
  },
  torch: {
    weight: 2.5,
    what: 'PyTorch checkpoints (zip: data.pkl re-wrapped in a valid zip, storages, zip records; legacy pickles; shard indexes): openCheckpoint + readFloat32 of every tensor',
    make: torchInput,
    run: (L, file) => readCheckpoint(L, file),
  },
  safetensors: {
    weight: 1.5,
    what: 'safetensors (JSON header, length prefix, data; shard indexes): openCheckpoint + readFloat32 of every tensor',
    make: safetensorsInput,
    run: (L, file) => readCheckpoint(L, file),
  },
  gguf: {
    weight: 1,
    what: 'decoder GGUFs (tiny LLaMA q4_k / q4_0 / q8_0; KV section and tensor infos first): loadModel + generate 3 tokens + tokenize / detokenize',
    make: ggufInput(DECODERS),
    run: async (L, file, rng) => {
      const m = await L.loadModel({ model: file, threads: 1, ...(rng.chance(0.5) ? { contextSize: 256 } : {}) });
      try {
        await m.generate([1, 15043, 3186], { maxTokens: 3 });
        m.detokenize(m.tokenize('Hello world, no acute process.'));
      } finally {
        await m.dispose();
      }
    },
  },
  vision: {
    weight: 1,
    what: 'vision GGUFs (tiny ViT f16 / f32): loadVisionModel + encode one image',
    make: ggufInput(VISIONS),
    run: async (L, file) => {
      const v = await L.loadVisionModel({ model: file, threads: 1 });
      try {
        // an image size the header accepted but no radiograph pipeline uses is not encoded (the harness
        // would allocate it, not the library); such acceptances are counted as 'ok' with this note
        if (v.info.imageSize <= 1036) await v.encode(new Float32Array(v.pixelsPerImage));
      } finally {
        await v.dispose();
      }
    },
  },
  dicom: {
    weight: 1.5,
    what: 'DICOM (element lengths / VRs / tags / pixel attributes / transfer syntax / fragments / pixel data; deflate bombs): readImageFile + preprocessImage',
    make: (rng, dir) => {
      const out = path.join(dir, 'image.dcm');
      const seed = rng.pick(DICOMS());
      rng.note(path.basename(seed));
      writeFileSync(out, mutateDicom(read(seed), rng));
      return out;
    },
    run: async (L, file, rng) => L.preprocessImage(await L.readImageFile(file), { ...(rng.chance(0.3) ? { dicomWindow: true } : {}), ...(rng.chance(0.1) ? { dicomRefuseLateral: true } : {}) }),
  },
  image: {
    weight: 1.5,
    what: 'PNG / JPEG / GIF / TIFF / WebP (header fields, chunks with fixed CRCs, segments, IFDs, pixel bombs): readImageFile + preprocessImage',
    make: (rng, dir) => {
      const seed = rng.pick(IMAGES());
      rng.note(path.basename(seed));
      const out = path.join(dir, `image${path.extname(seed)}`);
      writeFileSync(out, mutateImage(read(seed), rng));
      return out;
    },
    run: async (L, file, rng) => L.preprocessImage(await L.readImageFile(file), imageOptions(rng)),
  },
  manifest: {
    weight: 2,
    what: 'batch manifests (JSONL, CSV, JSON array, annotation JSON; limits, quoting, NULs, invalid UTF-8, huge lines): readManifest',
    make: (rng, dir) => {
      const m = makeManifest(rng);
      const out = path.join(dir, `manifest${m.ext}`);
      writeFileSync(out, m.bytes);
      return { file: out, options: m.options };
    },
    run: async (L, input) => L.readManifest(input.file, input.options),
  },
  folder: {
    weight: 1,
    what: 'model folders (llava-rad.json mutated as JSON, or GGUF names): resolveModelFolder, then loadLlavaRad when it resolves to two files',
    make: folderInput,
    run: async (L, dir) => {
      const files = L.resolveModelFolder(dir);
      const lr = await L.loadLlavaRad({ decoder: files.decoder, vision: files.vision, contextSize: 256, threads: 1 });
      await lr.dispose();
    },
  },
  bert: {
    weight: 1,
    seeds: true,
    what: 'BERT-family GGUFs (tiny CheXbert f32 / f16, RadGraph f32, the CLIP text tower with its vision GGUF): load + label / annotate / embed texts (images and zero-shot labels now and then)',
    make: bertInput,
    run: runBert,
  },
  index: {
    weight: 1,
    seeds: true,
    what: 'retrieval indexes (header fields, metadata JSON and vectors, each with the checksums made to match or not; truncation, appended bytes): RetrievalIndex.open (verify on or off) + searchVectors + vector()',
    make: (rng, dir) => {
      const seed = path.join(seedsDir(), rng.pick(SEED_FILES.index));
      rng.note(path.basename(seed));
      const file = path.join(dir, 'x.lrindex');
      writeFileSync(file, mutateIndex(read(seed), rng));
      return { file, verify: rng.chance(0.8), k: rng.pick([1, 5, 10, 10_000]), kind: rng.pick(['all', 'image', 'text']), chunkBytes: rng.pick([undefined, 1, 64, 4096]) };
    },
    run: async (L, input) => {
      const ix = L.RetrievalIndex.open(input.file, { verify: input.verify, ...(input.chunkBytes ? { chunkBytes: input.chunkBytes } : {}) });
      try {
        const q = new Float32Array(ix.dim).fill(1 / Math.sqrt(ix.dim));
        L.searchVectors(ix, [q], { k: input.k, kind: input.kind });
        if (ix.count > 0) ix.vector(ix.count - 1);
        ix.counts();
      } finally {
        ix.close();
      }
    },
  },
  archive: {
    weight: 1,
    what: "RadGraph model archives (.tar.gz: tar headers, long-name / pax records, nesting, config.json and label vocabularies, data after the end marker, the gzip layer): convertRadgraph, then load + annotate when it converts",
    make: (rng, dir) => {
      const file = path.join(dir, 'radgraph.tar.gz');
      writeFileSync(file, mutateArchive(read(fx('fixtures/radgraph/model/radgraph-tiny.tar.gz')), rng));
      return { file, out: path.join(dir, 'radgraph.gguf'), vocab: rng.chance(0.9) };
    },
    run: async (L, input) => {
      const vocab = input.vocab ? L.WordPieceVocab.fromText(read(fx('fixtures/radgraph/model/vocab.txt')).toString('utf8')) : undefined;
      await L.convertRadgraph(input.file, input.out, { ...(vocab ? { vocab } : {}), headCount: 4 });
      const m = await L.RadgraphModel.load(input.out, { threads: 1 });
      try {
        await m.annotate(REPORTS[1]);
      } finally {
        await m.dispose();
      }
    },
  },
  http: {
    weight: 1,
    what: 'serve on the tiny models (one server per child, kept across inputs): multipart, JSON and chat requests and the GET routes with the request line, headers, lengths, chunked framing, bodies and parts mutated, each written to a raw connection; then GET /health',
    make: (rng) => mutateHttp(read(fx('fixtures/findings/radiograph-rgb-1100x900.jpg')), rng),
    run: runHttp,
  },
  text: {
    weight: 1,
    seeds: true,
    what: 'hostile text (length-changing case maps, combining marks, lone surrogates, controls, every whitespace, special-token strings, long runs, past the limits) through evaluate / evaluatePaired (a predictions file, now and then damaged), CheXbert, RadGraph, CLIP text and zero-shot labels, the decoder tokenizer, generateFindings reasons and the judges\' parsers',
    make: textInput,
    run: runText,
  },
  journal: {
    weight: 1,
    seeds: true,
    what: 'journals damaged between two runs (cut, torn tails, lines inserted / dropped / repeated / swapped, records and fields mutated, CRLF, BOM, bytes): a predictions file through Journal.open + append + merge, and resumed by `batch` on the tiny models; an index build journal resumed by buildIndex; each checked against what the journals promise',
    make: journalInput,
    run: runJournal,
  },
  special: {
    weight: 0,
    count: SPECIAL_KINDS.length * SPECIAL_USES.length,
    what: `a FIFO / folder / device / symlink loop / dangling link / empty file in place of each input file, each file of the official release included (${SPECIAL_KINDS.length} x ${SPECIAL_USES.length} cases, seed mod ${SPECIAL_KINDS.length * SPECIAL_USES.length})`,
    make: (rng, dir, seed) => {
      const n = SPECIAL_KINDS.length * SPECIAL_USES.length;
      const i = ((seed % n) + n) % n;
      const kind = SPECIAL_KINDS[i % SPECIAL_KINDS.length];
      const use = SPECIAL_USES[Math.floor(i / SPECIAL_KINDS.length)];
      const name = {
        checkpoint: 'model.pt', safetensors: 'model.safetensors', manifest: 'm.jsonl', image: 'x.png', folder: 'llava-rad.json', gguf: 'm.gguf', vision: 'v.gguf',
        index: 'x.lrindex', archive: 'radgraph.tar.gz', chexbert: 'chexbert.gguf', predictions: 'p.jsonl', journal: 'out.jsonl',
        'out:radgraph': 'r.gguf', 'out:index': 'o.lrindex', 'out:export': 'o.jsonl', 'out:merged': 'merged.jsonl', 'out:release': 'out/llava-rad-decoder-q8_0.gguf',
      }[use];
      rng.note(`${use} as ${kind}`);
      if (use.startsWith('release:')) {
        // a copy of the tiny release with that one file replaced
        const file = path.join(dir, 'release', use.slice('release:'.length));
        cpSync(fx('fixtures/release'), path.join(dir, 'release'), { recursive: true });
        rmSync(file);
        special(kind, file);
        return { use, kind, file, dir };
      }
      if (use === 'out:release') {
        cpSync(fx('fixtures/release'), path.join(dir, 'release'), { recursive: true });
        mkdirSync(path.join(dir, 'out'));
      }
      special(kind, path.join(dir, name));
      return { use, kind, file: path.join(dir, name), dir };
    },
    run: async (L, s) => {
      if (s.use === 'checkpoint' || s.use === 'safetensors') return readCheckpoint(L, s.file);
      if (s.use === 'manifest') return L.readManifest(s.file);
      if (s.use === 'image') return L.preprocessImage(await L.readImageFile(s.file));
      if (s.use === 'folder') return L.resolveModelFolder(s.dir);
      if (s.use === 'gguf') return (await L.loadModel({ model: s.file, threads: 1, contextSize: 256 })).dispose();
      if (s.use === 'index') return L.RetrievalIndex.open(s.file).close();
      if (s.use === 'archive') return L.convertRadgraph(s.file, path.join(s.dir, 'out.gguf'), { headCount: 4 });
      if (s.use === 'chexbert') return (await L.ChexbertLabeler.load(s.file, { threads: 1 })).dispose();
      if (s.use === 'predictions') return L.evaluate(s.file, { metrics: ['bleu'], bootstrap: 10 });
      if (s.use === 'journal') return L.Journal.open(s.file).journal.close();
      if (s.use.startsWith('out:')) return writeOver(L, { ...s, vocab: s.use === 'out:radgraph' ? L.WordPieceVocab.fromText(readFileSync(fx('fixtures/radgraph/model/vocab.txt'), 'utf8')) : undefined });
      if (s.use.startsWith('release:')) {
        const rel = (p) => path.join(s.dir, 'release', p);
        return L.convertRelease({ base: rel('vicuna'), adapter: rel('llava-rad'), clipText: rel('biomedbert'), out: path.join(s.dir, 'out'), type: 'q8_0', threads: 1 });
      }
      return (await L.loadVisionModel({ model: s.file, threads: 1 })).dispose();
    },
  },
};
