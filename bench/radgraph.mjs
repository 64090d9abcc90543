// RadGraph on the engine at the released model's shape (BERT-base: 12 layers, hidden 768; DyGIE: spans of up to
// 8 words, width feature 20, feedforwards 2 x 150, spans_per_word 0.5; random weights, a small vocabulary):
// milliseconds per report of --words words, split into BERT (lr_radgraph_encode), span scoring (NER and
// mention) and pair scoring (relations), plus the total through RadgraphModel.annotate. Ours only: the peer,
// radgraph's PyTorch/allennlp, is not installed here.
//   node --import ./scripts/ts-hooks.mjs bench/radgraph.mjs [--words 60,120] [--reports 3] [--layers 12] [--threads 2] [--no-write]
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { addBertMetadata } from '../lib/convert/bert-gguf.js';
import { GgufValueType } from '../lib/gguf/types.js';
import { GgufWriter } from '../lib/gguf/writer.js';
import { native } from '../lib/native.js';
import { RadgraphModel } from '../lib/radgraph/radgraph.js';
import { bertTensorPlan, writeRandomTensors } from './bert-shape.mjs';
import { cpuId, cpuModel, deviceSlug, gitCommit } from './machine.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({ options: {
  words: { type: 'string', default: '60,120' }, reports: { type: 'string', default: '3' }, layers: { type: 'string', default: '12' },
  threads: { type: 'string', default: '2' }, 'no-write': { type: 'boolean' },
} });

const D = 768, FF = 3072, HEADS = 12, CTX = 512, WIDTH = 8, FEAT = 20, HID = 150, LAYERS = Number(opt.layers);
const WORDS = 'no there is pleural effusion pneumothorax left right lower lobe heart size normal mild enlarged cardiac opacity consolidation atelectasis the of and with stable clear edema'.split(' ');
const pieces = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', ',', ...WORDS];
const vocab = new WordPieceVocab(pieces);

async function makeGguf(file) {
  const w = new GgufWriter(file);
  const hp = { vocabSize: pieces.length, contextLength: CTX, tokenTypeCount: 2, embeddingLength: D, feedForwardLength: FF, blockCount: LAYERS, headCount: HEADS };
  addBertMetadata(w, hp, vocab, { name: 'RadGraph bench (random)', fileType: 0 });
  w.addString('radgraph.bert_model_name', 'bench/bert-base-uncased-shape');
  w.addString('radgraph.dataset', 'radgraph');
  for (const [k, v] of [['radgraph.max_length', CTX], ['radgraph.max_span_width', WIDTH], ['radgraph.width_embedding_count', WIDTH], ['radgraph.feature_size', FEAT]]) w.addUint32(k, v);
  w.addArray('radgraph.ffnn_dims', GgufValueType.INT32, [HID, HID]);
  w.addFloat32('radgraph.spans_per_word', 0.5);
  w.addArray('radgraph.ner_labels', GgufValueType.STRING, ['', 'ANAT-DP', 'OBS-DP', 'OBS-U', 'OBS-DA']);
  w.addArray('radgraph.relation_labels', GgufValueType.STRING, ['located_at', 'modify', 'suggestive_of']);
  const { tensors, t, linear: lin } = bertTensorPlan(pieces.length, LAYERS);
  const P = 2 * D + FEAT;
  t('radgraph.span_width_embd.weight', [FEAT, WIDTH], 1);
  for (const [name, nIn, nOut] of [['radgraph.ner', P, 4], ['radgraph.mention', P, 1], ['radgraph.relation', 3 * P, 3]]) {
    lin(`${name}.ffn.0`, nIn, HID); lin(`${name}.ffn.1`, HID, HID); lin(`${name}.out`, HID, nOut);
  }
  await writeRandomTensors(w, tensors);
}

const dir = mkdtempSync(path.join(tmpdir(), 'radgraph-bench-'));
try {
  const gguf = path.join(dir, 'radgraph-bench.gguf');
  await makeGguf(gguf);
  const threads = Number(opt.threads);
  const model = await RadgraphModel.load(gguf, { threads });
  const nr = await native().loadRadgraph(gguf, { threads });
  const rows = [];
  for (const nWords of opt.words.split(',').map(Number)) {
    const text = Array.from({ length: nWords }, (_, i) => WORDS[(i * 7) % WORDS.length]).join(' ');
    const trace = await model.trace(text); // warm-up, and the inputs for the parts
    const spans = Int32Array.from(trace.spans.flat());
    const top = Int32Array.from(trace.top.flatMap((i) => trace.spans[i]));
    const mention = Float32Array.from(trace.top, (i) => trace.mentionScores[i]);
    const time = async (f) => { const t0 = performance.now(); for (let r = 0; r < Number(opt.reports); r++) await f(); return (performance.now() - t0) / Number(opt.reports); };
    const row = {
      words: nWords, spans: trace.spans.length, kept: trace.top.length, segments: trace.segments.length,
      bert_ms: await time(async () => { for (const s of trace.segments) await nr.encode(Int32Array.from(s)); }),
      spans_ms: await time(() => nr.scoreSpans(trace.wordVectors, spans)),
      pairs_ms: await time(() => nr.scorePairs(trace.wordVectors, top, mention)),
      annotate_ms: await time(() => model.annotate(text)),
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
  await nr.dispose();
  await model.dispose();
  if (!opt['no-write']) {
    appendFileSync(path.join(root, 'bench', 'results', `${deviceSlug()}.jsonl`), JSON.stringify({ kind: 'radgraph', date: new Date().toISOString(), commit: gitCommit(),
      device: deviceSlug(), cpu: cpuModel(), cpuid: cpuId(), threads, layers: LAYERS, reports: Number(opt.reports), results: rows }) + '\n');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
