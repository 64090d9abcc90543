// Scoring speed of `evaluate(..., { metrics: ['chexbert', 'radgraph'] })` against a PyTorch peer on the same
// machine (issue #16 item 8): studies/s of each side and the ratio, for a synthetic set of (reference,
// prediction) reports (default 2,461, the size of LLaVA-Rad's MIMIC-CXR test set).
//
// Both models at the released shapes (bert-base: 12 layers, hidden 768, vocabulary 30,522; RadGraph's DyGIE:
// spans of up to 8 words, width feature 20, feedforwards 2 x 150), random weights, made by Debian's torch
// in the official formats (chexbert.pth, radgraph.tar.gz) and converted with our converters (CheXbert f32 and
// f16, RadGraph f32). The peer (bench/eval_scoring_peer.py) is NOT the official packages (transformers,
// radgraph/allennlp cannot be installed here) but the repository's PyTorch implementations of their forward
// passes, float32, 2 threads, batched as the official code batches (CheXbert: 18 reports padded; RadGraph: one
// document a batch), its own pure-Python tokenization included.
//
// Ours (timed in this process, models loaded before the clock): evaluate() on the pairs, metrics ['chexbert']
// then ['radgraph'], with the default 500 bootstrap resamples (the peer labels only: no F1, no bootstrap),
// after one untimed warm-up report on each model.
// The peer runs in a child process and times itself after loading. Rounds alternate which side goes first.
//
//   node --import ./scripts/ts-hooks.mjs bench/eval-scoring.mjs [--studies 2461] [--rounds 1] [--threads 2]
//        [--seed 7] [--cache DIR] [--check 60] [--no-f16] [--peer-blas LIB] [--no-write]
// --peer-blas: a BLAS shared library (e.g. an OpenBLAS) preloaded into the peer in place of the one Debian's
// torch links (libblas.so.3: on this machine netlib's reference BLAS); its folder joins LD_LIBRARY_PATH.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { ChexbertLabeler, convertChexbert, convertRadgraph, evaluate, RadgraphModel } from '../lib/index.js';
import { cpuId, cpuModel, deviceSlug, gitCommit } from './machine.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const PYTHON = '/usr/bin/python3'; // Debian's, with torch
const PEER = path.join(root, 'bench', 'eval_scoring_peer.py');
const { values: opt } = parseArgs({ options: {
  studies: { type: 'string', default: '2461' }, rounds: { type: 'string', default: '1' }, threads: { type: 'string', default: '2' },
  seed: { type: 'string', default: '7' }, cache: { type: 'string', default: path.join(tmpdir(), 'llava-rad-eval-scoring') },
  check: { type: 'string', default: '60' }, 'peer-blas': { type: 'string' }, 'no-f16': { type: 'boolean' }, 'no-write': { type: 'boolean' },
} });
const positiveInt = (name) => {
  const n = Number(opt[name]);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${opt[name]}'`);
  return n;
};
const [STUDIES, ROUNDS, THREADS, SEED, CHECK] = ['studies', 'rounds', 'threads', 'seed', 'check'].map(positiveInt);
if (STUDIES < 2) throw new Error(`--studies must be at least 2 (the bootstrap resamples studies), got ${STUDIES}`);
const cache = path.resolve(opt.cache);
const at = (f) => path.join(cache, f);
const peerBlas = opt['peer-blas'] === undefined ? undefined : path.resolve(opt['peer-blas']);
if (peerBlas !== undefined && !existsSync(peerBlas)) throw new Error(`--peer-blas: no such file: ${peerBlas}`);
const python = (...args) => execFileSync(PYTHON, [PEER, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
const blasEnv = peerBlas === undefined ? process.env
  : { ...process.env, LD_PRELOAD: peerBlas, LD_LIBRARY_PATH: [path.dirname(peerBlas), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'), OPENBLAS_NUM_THREADS: String(THREADS) };
const log = (...a) => console.error('[eval-scoring]', ...a);

// 1. the checkpoints in the official formats, our GGUFs
mkdirSync(cache, { recursive: true });
if (!['chexbert.pth', 'radgraph.tar.gz', 'vocab.txt'].every((f) => existsSync(at(f)))) {
  log(`making bert-base-shaped CheXbert and RadGraph checkpoints in ${cache} (torch, random weights)`);
  python('make', cache);
}
const vocab = WordPieceVocab.fromText(readFileSync(at('vocab.txt'), 'utf8'));
const types = opt['no-f16'] ? ['f32'] : ['f32', 'f16'];
for (const type of types) {
  if (!existsSync(at(`chexbert-${type}.gguf`))) await convertChexbert(at('chexbert.pth'), vocab, at(`chexbert-${type}.gguf`), { type });
}
if (!existsSync(at('radgraph-f32.gguf'))) await convertRadgraph(at('radgraph.tar.gz'), at('radgraph-f32.gguf'), { vocab });

// 2. the studies: seeded synthetic reports of 20-120 words (the WordPiece fixture script's sentence generator)
const pairsFile = at(`pairs-${STUDIES}-${SEED}.json`);
if (!existsSync(pairsFile)) python('pairs', pairsFile, String(STUDIES), String(SEED));
const records = JSON.parse(readFileSync(pairsFile, 'utf8'));
const texts = [...records.map((r) => r.reference), ...records.map((r) => r.prediction)];
const textsFile = at(`texts-${STUDIES}-${SEED}.json`);
writeFileSync(textsFile, JSON.stringify(texts));
const words = texts.map((t) => t.split(/\s+/).filter(Boolean).length);
log(`${STUDIES} studies, ${texts.length} distinct texts: ${new Set(texts).size}, ${words.reduce((a, b) => a + b, 0) / texts.length} words on average`);

// 3. timing, alternating sides
const params = { threads: THREADS };
const labelers = Object.fromEntries(await Promise.all(types.map(async (t) => [t, await ChexbertLabeler.load(at(`chexbert-${t}.gguf`), params)])));
const radgraph = await RadgraphModel.load(at('radgraph-f32.gguf'), params);
for (const l of Object.values(labelers)) await l.label(texts[0]); // warm-up, untimed (the peer's first batch is timed)
await radgraph.annotate(texts[0]);
const seconds = async (f) => { const t0 = performance.now(); await f(); return (performance.now() - t0) / 1000; };

async function ours() {
  const row = {};
  for (const t of types) row[`chexbert_${t}_s`] = await seconds(() => evaluate(records, { metrics: ['chexbert'], chexbert: labelers[t] }));
  row.radgraph_s = await seconds(() => evaluate(records, { metrics: ['radgraph'], radgraph }));
  return row;
}

function peer() {
  const out = at(`peer-${STUDIES}-${SEED}.json`);
  execFileSync(PYTHON, [PEER, 'run', cache, textsFile, out], { stdio: ['ignore', 'inherit', 'inherit'], env: blasEnv });
  return JSON.parse(readFileSync(out, 'utf8'));
}

const rounds = [];
let peerOut;
for (let r = 0; r < ROUNDS; r++) {
  const row = { round: r, first: r % 2 === 0 ? 'ours' : 'peer' };
  for (const side of r % 2 === 0 ? ['ours', 'peer'] : ['peer', 'ours']) {
    if (side === 'ours') {
      row.ours = await ours();
    } else {
      peerOut = peer();
      row.peer = { chexbert_s: peerOut.chexbert_s, radgraph_s: peerOut.radgraph_s };
    }
    log(`round ${r} ${side}: ${JSON.stringify(row[side])}`);
  }
  rounds.push(row);
}

// 4. the same work? CheXbert input ids and labels of the first --check texts, RadGraph entity and relation counts
const sample = texts.slice(0, Math.min(CHECK, texts.length));
const agree = {};
for (const t of types) {
  const labeled = await labelers[t].labelMany(sample);
  agree[`chexbert_${t}_reports_same_labels`] = labeled.filter((x, i) => x.labels.every((l, h) => l === peerOut.chexbert_labels[i][h])).length;
  agree[`chexbert_${t}_labels_same`] = labeled.reduce((n, x, i) => n + x.labels.filter((l, h) => l === peerOut.chexbert_labels[i][h]).length, 0);
  if (t === 'f32') agree.chexbert_ids_same = labeled.filter((x, i) => JSON.stringify(x.ids) === JSON.stringify(peerOut.chexbert_ids[i])).length;
}
const annotated = await radgraph.annotateMany(sample);
const counts = annotated.map((a) => [Object.keys(a.entities).length, Object.values(a.entities).reduce((n, e) => n + e.relations.length, 0)]);
agree.radgraph_same_entity_count = counts.filter(([e], i) => e === peerOut.radgraph_entities[i]).length;
agree.radgraph_same_relation_count = counts.filter(([, rel], i) => rel === peerOut.radgraph_relations[i]).length;
const check = { reports: sample.length, labels: sample.length * peerOut.chexbert_labels[0].length, ...agree };
log(`agreement on ${sample.length} texts: ${JSON.stringify(check)}`);
for (const l of Object.values(labelers)) await l.dispose();
await radgraph.dispose();

// 5. studies/s (medians over rounds) and ratios (above 1: ours faster)
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const rate = (key, side) => STUDIES / median(rounds.map((r) => r[side][key]));
const summary = { peer_chexbert_studies_s: rate('chexbert_s', 'peer'), peer_radgraph_studies_s: rate('radgraph_s', 'peer') };
summary.peer_total_studies_s = STUDIES / median(rounds.map((r) => r.peer.chexbert_s + r.peer.radgraph_s));
for (const t of types) {
  summary[`ours_chexbert_${t}_studies_s`] = rate(`chexbert_${t}_s`, 'ours');
  summary[`ours_total_${t}_studies_s`] = STUDIES / median(rounds.map((r) => r.ours[`chexbert_${t}_s`] + r.ours.radgraph_s));
  summary[`ratio_chexbert_${t}`] = summary[`ours_chexbert_${t}_studies_s`] / summary.peer_chexbert_studies_s;
  summary[`ratio_total_${t}`] = summary[`ours_total_${t}_studies_s`] / summary.peer_total_studies_s;
}
summary.ours_radgraph_studies_s = rate('radgraph_s', 'ours');
summary.ratio_radgraph = summary.ours_radgraph_studies_s / summary.peer_radgraph_studies_s;

const line = {
  kind: 'eval-scoring', date: new Date().toISOString(), commit: gitCommit(), device: deviceSlug(), cpu: cpuModel(), cpuid: cpuId(), threads: THREADS,
  studies: STUDIES, texts: texts.length, mean_words: words.reduce((a, b) => a + b, 0) / texts.length, seed: SEED,
  peer: { torch: peerOut.torch, threads: peerOut.threads, blas: peerBlas ?? 'libblas.so.3 (as linked)',
    what: 'PyTorch re-implementation of the official forwards (not transformers / radgraph)' },
  bootstrap: 500, summary, check, rounds,
};
console.log(JSON.stringify(line));
if (!opt['no-write']) appendFileSync(path.join(root, 'bench', 'results', `eval-scoring-${deviceSlug()}.jsonl`), JSON.stringify(line) + '\n');
