// CheXbert labeling throughput with batched BERT graphs (lr_bert_encode_batch): reports/s of
// ChexbertLabeler.labelMany on --reports synthetic reports of 8 to 120 words, for each --batch size, at the
// released model's shape (BERT-base: 12 layers, hidden 768, 12 heads, 14 heads of 4 / 2 classes; random
// weights, a small vocabulary). Ours only, batch 1 (one sequence a graph, as before batching) the baseline.
// --tokens: labelMany's maxBatchTokens (token slots a graph).
//   node --import ./scripts/ts-hooks.mjs bench/bert-batch.mjs [--reports 500] [--batch 1,8,32] [--tokens 16384] [--layers 12] [--threads 2] [--no-write]
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ChexbertLabeler } from '../lib/bert/chexbert.js';
import { chexbertConditions, chexbertHeadClasses } from '../lib/bert/chexbert-labels.js';
import { WordPieceVocab } from '../lib/bert/wordpiece.js';
import { addBertMetadata } from '../lib/convert/bert-gguf.js';
import { GgufValueType } from '../lib/gguf/types.js';
import { GgufWriter } from '../lib/gguf/writer.js';
import { BERT_BASE, bertTensorPlan, writeRandomTensors } from './bert-shape.mjs';
import { cpuId, cpuModel, deviceSlug, gitCommit } from './machine.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({ options: {
  reports: { type: 'string', default: '500' }, batch: { type: 'string', default: '1,8,32' }, tokens: { type: 'string', default: '16384' }, layers: { type: 'string', default: '12' },
  threads: { type: 'string', default: '2' }, 'no-write': { type: 'boolean' },
} });

const { D, FF, HEADS, CTX } = BERT_BASE, LAYERS = Number(opt.layers);
const WORDS = 'no there is pleural effusion pneumothorax left right lower lobe heart size normal mild enlarged cardiac opacity consolidation atelectasis the of and with stable clear edema'.split(' ');
const pieces = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', ',', ...WORDS];
const vocab = new WordPieceVocab(pieces);
let seed = 7;
const next = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };

async function makeGguf(file) {
  const w = new GgufWriter(file);
  const headClasses = chexbertHeadClasses();
  const hp = { vocabSize: pieces.length, contextLength: CTX, tokenTypeCount: 2, embeddingLength: D, feedForwardLength: FF, blockCount: LAYERS, headCount: HEADS };
  addBertMetadata(w, hp, vocab, { name: 'CheXbert bench (random)', fileType: 0, poolingType: 'cls' });
  w.addArray('chexbert.conditions', GgufValueType.STRING, chexbertConditions());
  w.addArray('chexbert.head_classes', GgufValueType.UINT32, headClasses);
  const { tensors, linear } = bertTensorPlan(pieces.length, LAYERS);
  headClasses.forEach((c, i) => linear(`chexbert.head.${i}`, D, c));
  await writeRandomTensors(w, tensors);
}

// sentences of 4 to 12 words, 8 to 120 words a report: distinct texts (labelMany encodes duplicates once)
const reports = Array.from({ length: Number(opt.reports) }, (_, r) => {
  const nWords = 8 + Math.floor(next() * 113);
  const words = Array.from({ length: nWords }, () => WORDS[Math.floor(next() * WORDS.length)]);
  const out = [];
  for (let i = 0; i < words.length;) { const n = 4 + Math.floor(next() * 9); out.push(words.slice(i, i + n).join(' ') + '.'); i += n; }
  return `report ${r}: ${out.join(' ')}`;
});

const dir = mkdtempSync(path.join(tmpdir(), 'bert-batch-bench-'));
try {
  const gguf = path.join(dir, 'chexbert-bench.gguf');
  await makeGguf(gguf);
  const threads = Number(opt.threads);
  const labeler = await ChexbertLabeler.load(gguf, { vocab, threads });
  const tokens = reports.map((r) => labeler.tokenizer.tokenize(r).length + 2);
  await labeler.labelMany(reports.slice(0, 4)); // warm-up
  const rows = [];
  for (const batchSize of opt.batch.split(',').map(Number)) {
    const t0 = performance.now();
    await labeler.labelMany(reports, { batchSize, maxBatchTokens: Number(opt.tokens) });
    const s = (performance.now() - t0) / 1000;
    const row = { batch: batchSize, reports: reports.length, seconds: Number(s.toFixed(2)), reports_per_s: Number((reports.length / s).toFixed(2)) };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
  await labeler.dispose();
  const base = rows.find((r) => r.batch === 1);
  for (const r of rows) if (base) r.speedup_vs_batch_1 = Number((r.reports_per_s / base.reports_per_s).toFixed(2));
  const meanTokens = tokens.reduce((a, b) => a + b, 0) / tokens.length;
  console.log(JSON.stringify({ mean_tokens: Number(meanTokens.toFixed(1)), max_tokens: Math.max(...tokens), rows }));
  if (!opt['no-write']) {
    appendFileSync(path.join(root, 'bench', 'results', `bert-batch-${deviceSlug()}.jsonl`), JSON.stringify({ kind: 'bert-batch', date: new Date().toISOString(), commit: gitCommit(),
      device: deviceSlug(), cpu: cpuModel(), cpuid: cpuId(), threads, layers: LAYERS, max_batch_tokens: Number(opt.tokens), mean_tokens: Number(meanTokens.toFixed(1)), max_tokens: Math.max(...tokens), results: rows }) + '\n');
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
