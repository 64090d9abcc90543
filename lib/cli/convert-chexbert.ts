// `llava-rad convert-chexbert`: CheXbert's labeler checkpoint (chexbert.pth) -> one GGUF that `eval --metrics
// chexbert` loads (the BERT encoder, the 14 heads and bert-base-uncased's WordPiece vocabulary).

import { createHash } from 'node:crypto';

import path from 'node:path';
import { WordPieceVocab } from '../bert/wordpiece.js';
import { convertChexbert } from '../convert/chexbert.js';
import { LlavaRadError } from '../errors.js';
import { MAX_VOCAB_FILE_BYTES, readRegularFileSync } from '../regular-file.js';
import { intArg, parseWithPositionals, requireFile, requireOutputFile, round, UsageError, type Command } from './args.js';

/** sha256 of bert-base-uncased's vocab.txt (the vocabulary CheXbert was trained with) */
export const BERT_BASE_UNCASED_VOCAB_SHA256 = '07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3';

export const convertChexbertCommand: Command = {
  name: 'convert-chexbert',
  summary: "convert CheXbert's chexbert.pth (with bert-base-uncased's vocab.txt) into the GGUF eval --metrics chexbert loads",
  usage: `usage: llava-rad convert-chexbert CHEXBERT.pth --vocab vocab.txt --out FILE.gguf [--type f16|f32] [--heads N] [--json]

  CHEXBERT.pth    CheXbert's labeler checkpoint (stanfordmlgroup/CheXbert, chexbert.pth)
  --vocab FILE    bert-base-uncased's vocab.txt (the checkpoint does not hold its vocabulary; the GGUF will)
  --out FILE      the GGUF to write (written under a temporary name, renamed when complete)
  --type T        f16 (default) or f32 weight matrices; f32 gives the PyTorch labels most exactly
  --heads N       attention heads (default: hidden size / 64, i.e. 12 for CheXbert's bert-base)
  --json          print one JSON line with the result

The checkpoint is read by a restricted unpickler (nothing in it is executed). Put the result at
$LLAVA_RAD_HOME/eval/chexbert-<type>.gguf, or pass it to eval with --chexbert / LLAVA_RAD_CHEXBERT.`,
  async run(args, io) {
    const { values: v, positionals } = parseWithPositionals(args, {
      vocab: { type: 'string' },
      out: { type: 'string' },
      type: { type: 'string' },
      heads: { type: 'string' },
      json: { type: 'boolean' },
    }, 'convert-chexbert', 1);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('convert-chexbert: expected the checkpoint, e.g. llava-rad convert-chexbert chexbert.pth --vocab vocab.txt --out chexbert-f16.gguf');
    for (const k of ['vocab', 'out'] as const) {
      if (typeof v[k] !== 'string' || v[k] === '') throw new UsageError(`convert-chexbert: --${k} FILE is required`);
    }
    const type = v.type ?? 'f16';
    if (type !== 'f16' && type !== 'f32') throw new UsageError(`convert-chexbert: --type must be f16 or f32, got '${String(type)}'`);
    const heads = intArg(v.heads, '--heads', 1, 4096);
    const ckpt = positionals[0]!;
    const vocabPath = v.vocab as string;
    const out = v.out as string;
    requireFile('convert-chexbert', 'checkpoint', ckpt);
    requireFile('convert-chexbert', '--vocab', vocabPath);
    requireOutputFile('convert-chexbert', '--out', out);
    const bytes = readRegularFileSync(vocabPath, 'the vocabulary', MAX_VOCAB_FILE_BYTES);
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (sha !== BERT_BASE_UNCASED_VOCAB_SHA256) io.err(`llava-rad convert-chexbert: warning: ${vocabPath} is not bert-base-uncased's vocab.txt (sha256 ${sha.slice(0, 12)}..., expected ${BERT_BASE_UNCASED_VOCAB_SHA256.slice(0, 12)}...); CheXbert was trained with that one\n`);
    let vocab: WordPieceVocab;
    try {
      vocab = WordPieceVocab.fromText(bytes.toString('utf8'));
    } catch (e) {
      throw new LlavaRadError('BAD_CHECKPOINT', `${vocabPath}: ${(e as Error).message}`, { cause: e });
    }
    const t0 = performance.now();
    const r = await convertChexbert(ckpt, vocab, out, { type, ...(heads !== undefined ? { headCount: heads } : {}) });
    const seconds = (performance.now() - t0) / 1000;
    const hp = r.hparams;
    if (v.json === true) {
      io.out(JSON.stringify({ out, type, vocab_sha256: sha, tensors: r.tensorSources.size, hparams: hp, seconds: round(seconds) }) + '\n');
    } else {
      io.out(`converted to ${out} (${type}, ${r.tensorSources.size} tensors: ${hp.blockCount} layers, hidden ${hp.embeddingLength}, ${hp.headCount} heads, ${hp.vocabSize} pieces; ${seconds.toFixed(1)} s)\n` +
        `run: llava-rad eval PREDICTIONS.jsonl --metrics bleu,rouge,chexbert --chexbert ${out}\n`);
    }
    return 0;
  },
};
