// The fuzz target `journal`: a predictions file or an index build journal damaged between two runs (the
// mutations: journal.mjs), run through Journal.open + an append + merge, a `batch` resumed in process, or a
// resumed buildIndex, each checked against what the journals promise.
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { mutateBuildJournal, mutatePredictions } from './journal.mjs';
import { BATCH_MODEL, clipSeed, seedsDir } from './seeds.mjs';

const read = (file) => readFileSync(file);

// Beyond "typed or accepted", each input checks what the journals promise (lib/batch/journal.ts,
// lib/retrieval/build-journal.ts): a file refused is left as it was; one accepted loses only its damaged tail;
// a resumed job adds exactly one record per study it still had to do, and a resumed build holds every entry
// once, the journaled vectors as they were journaled. A broken promise throws InvariantError (untyped: a defect).

export class InvariantError extends Error {
  name = 'InvariantError';
}
function check(ok, what) {
  if (!ok) throw new InvariantError(what);
}

export function journalInput(rng, dir) {
  const kind = rng.weighted({ open: 5, resume: 3, build: 2 });
  rng.note(kind);
  if (kind === 'build') {
    const src = path.join(seedsDir(), 'build');
    cpSync(src, dir, { recursive: true });
    const out = path.join(dir, 'x.lrindex');
    writeFileSync(`${out}.journal`, mutateBuildJournal(read(path.join(src, 'x.lrindex.journal')), rng));
    const alone = rng.chance(0.3); // the journal without the index it was adding to
    if (alone) rmSync(out);
    rng.note(alone ? 'journal alone' : 'journal over part.lrindex');
    return {
      kind, out, manifest: path.join(dir, rng.chance(0.8) ? 'manifest.jsonl' : 'part.jsonl'),
      batchSize: rng.pick([1, 2, 16]), kinds: rng.pick([undefined, undefined, ['image'], ['text']]),
    };
  }
  const src = path.join(seedsDir(), 'batch');
  const seed = path.join(src, 'predictions.jsonl');
  cpSync(src, dir, { recursive: true });
  const file = path.join(dir, 'predictions.jsonl');
  writeFileSync(file, mutatePredictions(read(seed), rng));
  const manifest = path.join(dir, rng.chance(0.8) ? 'manifest.jsonl' : 'part.jsonl');
  if (kind === 'open') return { kind, file, seed, manifest, dropFailed: rng.chance(0.3) };
  const more = [...(rng.chance(0.4) ? ['--retry-failed'] : []), '--concurrency', String(rng.pick([1, 2, 4]))];
  rng.note(more.join(' '));
  return { kind, file, manifest, maxTokens: rng.chance(0.9) ? BATCH_MODEL.maxTokens : BATCH_MODEL.maxTokens + 1, more };
}

const idsOf = (L, manifest) => L.readManifest(manifest).studies.map((s) => s.id);

/** readPredictionsFile, or null when it refuses the file (typed) */
function predictionsOrNull(L, file) {
  try {
    return L.readPredictionsFile(file);
  } catch (e) {
    if (!L.isLlavaRadError(e)) throw e;
    return null;
  }
}

/** Journal.open, an append, mergePredictions with another shard of the job, writeMerged */
async function runPredictionsOpen(L, input) {
  const before = readFileSync(input.file);
  const pre = predictionsOrNull(L, input.file);
  let opened;
  try {
    opened = L.Journal.open(input.file);
  } catch (e) {
    check(readFileSync(input.file).equals(before), 'Journal.open refused the file and changed it');
    check(pre === null || pre.records === 0, `Journal.open refused a file readPredictions reads (${pre?.records} records)`);
    throw e;
  }
  const { journal, predictions } = opened;
  try {
    check(pre !== null && predictions.goodBytes === pre.goodBytes && predictions.records === pre.records, 'Journal.open and readPredictions disagree on the file');
    check(readFileSync(input.file).equals(before.subarray(0, predictions.goodBytes)), `the file after Journal.open is not its first ${predictions.goodBytes} bytes before`);
    const again = L.readPredictionsFile(input.file);
    check(again.damaged === null && again.records === predictions.records, 'the file opened still reads as damaged or lost records');
    // a record as batch appends it: the identity of one already there, a new study
    const template = [...predictions.latest.values()][0] ?? [...L.readPredictionsFile(input.seed).latest.values()][0];
    const rec = { ...structuredClone(template), id: 'fuzz-appended', findings: 'Appended.' };
    delete rec.error;
    journal.append(rec);
    const after = L.readPredictionsFile(input.file);
    check(after.damaged === null && after.records === predictions.records + 1, 'an append after open did not read back as one more record');
    check(after.latest.get('fuzz-appended')?.findings === 'Appended.', 'the appended record did not read back');
    for (const [id, r] of predictions.latest) check(JSON.stringify(after.latest.get(id)) === JSON.stringify(r), `record ${JSON.stringify(id)} changed by an append`);
  } finally {
    journal.close();
  }
  // another shard of the same job beside it
  const inputs = [input.file, input.seed];
  const m = L.mergePredictions({ inputs, manifestIds: idsOf(L, input.manifest), dropFailed: input.dropFailed });
  const ids = m.records.map((r) => r.id);
  check(new Set(ids).size === ids.length, 'merge chose an id twice');
  const out = path.join(path.dirname(input.file), 'merged.jsonl');
  L.writeMerged(out, inputs, m.records);
  const back = L.readPredictionsFile(out);
  check(back.damaged === null && back.records === m.records.length && JSON.stringify([...back.latest.keys()]) === JSON.stringify(ids), 'the merged file does not read back as chosen');
  // each record as its input holds it
  const sources = inputs.map((f) => L.readPredictionsFile(f));
  for (const r of m.records) check(JSON.stringify(back.latest.get(r.id)) === JSON.stringify(sources[r.input].latest.get(r.id)), `merged record ${JSON.stringify(r.id)} differs from its input's`);
}

/** `llava-rad batch` resumed in this process over the damaged file, on the tiny models */
async function runBatchResume(L, input) {
  const before = readFileSync(input.file);
  const pre = predictionsOrNull(L, input.file);
  let err = '';
  const argv = ['batch', input.manifest, '--model', BATCH_MODEL.decoder, '--mmproj', BATCH_MODEL.vision, '--out', input.file,
    '--max-tokens', String(input.maxTokens), '--threads', '1', '--quiet', ...input.more];
  const code = await L.cliMain(argv, { out: () => {}, err: (s) => void (err += s) });
  check(!existsSync(`${input.file}.lock`), 'batch left its lock file behind');
  if (/unexpected error/.test(err)) throw new InvariantError(`batch: ${err.slice(0, 400)}`);
  const now = readFileSync(input.file);
  if (code !== 0 && code !== 3) {
    check(code === 1, `batch ended with exit code ${code}: ${err.slice(0, 300)}`);
    check(now.equals(before) || (pre !== null && now.equals(before.subarray(0, pre.goodBytes))), 'a batch that failed changed the file other than by cutting its damaged tail');
    const typed = /error \[([A-Z_]+)\]: (.*)/.exec(err);
    check(typed !== null, `batch exited 1 without a typed error: ${err.slice(0, 300)}`);
    throw new L.LlavaRadError(typed[1], typed[2].slice(0, 300));
  }
  check(pre !== null, 'batch resumed over a file readPredictions refuses');
  check(now.subarray(0, pre.goodBytes).equals(before.subarray(0, pre.goodBytes)), 'batch changed records it had before');
  const after = L.readPredictionsFile(input.file);
  check(after.damaged === null, 'the file batch left reads as damaged');
  const retry = input.more.includes('--retry-failed');
  const ids = idsOf(L, input.manifest);
  const todo = ids.filter((id) => !pre.latest.has(id) || (retry && pre.latest.get(id).error !== undefined)).sort();
  const added = now.subarray(pre.goodBytes).toString('utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l).id).sort();
  check(JSON.stringify(added) === JSON.stringify(todo), `batch recorded ${JSON.stringify(added)}, it had to do ${JSON.stringify(todo)}`);
  const failed = ids.filter((id) => after.latest.get(id)?.error !== undefined);
  check(ids.every((id) => after.latest.has(id)), 'a study of the manifest has no record after batch');
  check(code === (failed.length > 0 ? 3 : 0), `batch exit code ${code} with ${failed.length} failed studies`);
}

/** the entries a build journal holds, read independently of lib/: its complete lines up to the first bad one */
function journalEntries(bytes) {
  const lines = bytes.toString('utf8').split('\n');
  lines.pop(); // bytes after the last newline
  let dim = 0;
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    let o;
    try {
      o = JSON.parse(lines[i]);
    } catch {
      break;
    }
    if (i === 0) {
      dim = o?.dim;
      continue;
    }
    const v = typeof o?.v === 'string' ? Buffer.from(o.v, 'base64') : null;
    if (typeof o?.id !== 'string' || o.id === '' || (o.kind !== 'image' && o.kind !== 'text') || v === null || v.length !== dim * 4) break;
    const f = new Float32Array(dim);
    Buffer.from(f.buffer).set(v);
    if (!f.every(Number.isFinite)) break;
    out.push({ id: o.id, kind: o.kind, vector: f });
  }
  return out;
}

let buildEmbedder;
async function runIndexBuild(L, input) {
  const journal = `${input.out}.journal`;
  const before = readFileSync(journal);
  const old = existsSync(input.out) ? L.RetrievalIndex.open(input.out) : null;
  const oldKeys = new Set(old ? old.ids.map((id, i) => `${old.kind(i)}:${id}`) : []);
  old?.close();
  buildEmbedder ??= (async () => {
    const s = clipSeed();
    return L.loadClip({ clip: s.clip, vision: s.vision, threads: 1 });
  })();
  const embedder = await buildEmbedder;
  let result;
  try {
    result = await L.buildIndex(input.manifest, embedder, { out: input.out, batchSize: input.batchSize, ...(input.kinds ? { kinds: input.kinds } : {}) });
  } finally {
    check(!existsSync(`${input.out}.lock`), 'index build left its lock file behind');
  }
  check(!existsSync(journal), 'a finished index build left its journal');
  const ix = L.RetrievalIndex.open(input.out, { verify: true });
  try {
    const keys = ix.ids.map((id, i) => `${ix.kind(i)}:${id}`);
    check(new Set(keys).size === keys.length && ix.count === result.count, 'the index holds an entry twice or not the count reported');
    const at = new Map(keys.map((k, i) => [k, i]));
    const kinds = input.kinds ?? ['image', 'text'];
    for (const s of L.readManifest(input.manifest).studies) {
      for (const kind of kinds) if (kind === 'image' || s.reference !== null) check(at.has(`${kind}:${s.id}`), `the index lacks ${kind} ${s.id}`);
    }
    // lose nothing: every entry journaled before the damage is in the index as journaled (unless the index had it)
    const firsts = new Set();
    for (const e of journalEntries(before)) {
      const key = `${e.kind}:${e.id}`;
      if (oldKeys.has(key) || firsts.has(key)) continue;
      firsts.add(key);
      check(at.has(key), `the journaled entry ${key} was lost`);
      const v = ix.vector(at.get(key));
      check(v.length === e.vector.length && v.every((x, i) => Object.is(x, e.vector[i])), `the journaled vector of ${key} is not in the index as journaled`);
    }
  } finally {
    ix.close();
  }
}

export async function runJournal(L, input) {
  if (input.kind === 'open') return runPredictionsOpen(L, input);
  if (input.kind === 'resume') return runBatchResume(L, input);
  return runIndexBuild(L, input);
}
