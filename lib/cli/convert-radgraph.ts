// `llava-rad convert-radgraph`: RadGraph's model archive (radgraph.tar.gz, from llava-rad pull-eval) -> one
// GGUF that `eval --metrics radgraph` loads (the BERT encoder, DyGIE's span scorers, the labels and the
// WordPiece vocabulary).

import path from 'node:path';
import { WordPieceVocab } from '../bert/wordpiece.js';
import { convertRadgraph } from '../convert/radgraph.js';
import { LlavaRadError } from '../errors.js';
import { MAX_VOCAB_FILE_BYTES, readRegularFileSync } from '../regular-file.js';
import { intArg, parseWithPositionals, requireFile, requireOutputFile, round, UsageError, type Command } from './args.js';

export const convertRadgraphCommand: Command = {
  name: 'convert-radgraph',
  summary: "convert RadGraph's radgraph.tar.gz (with its BERT's vocab.txt) into the GGUF eval --metrics radgraph loads",
  usage: `usage: llava-rad convert-radgraph radgraph.tar.gz --out FILE.gguf [--vocab vocab.txt] [--type f32|f16] [--heads N] [--uncased] [--json]

  radgraph.tar.gz  RadGraph's allennlp model archive (StanfordAIMI/RRG_scorers, as llava-rad pull-eval saves it)
  --out FILE       the GGUF to write (written under a temporary name, renamed when complete)
  --vocab FILE     the WordPiece vocab.txt of the BERT the archive's config names (needed when the archive
                   holds none, as the released one does not)
  --type T         f32 (default) or f16 BERT matrices; the span scorers stay f32
  --heads N        attention heads (default: hidden size / 64)
  --uncased        the BERT's tokenizer lowercases (do_lower_case), when its name does not say "uncased"
  --json           print one JSON line with the result

Every hyperparameter comes from the archive's config.json; settings this engine does not implement are
refused (UNSUPPORTED). weights.th is read by a restricted unpickler (nothing in it is executed). Put the
result at $LLAVA_RAD_HOME/eval/radgraph-f32.gguf, or pass it to eval with --radgraph / LLAVA_RAD_RADGRAPH.`,
  async run(args, io) {
    const { values: v, positionals } = parseWithPositionals(args, {
      vocab: { type: 'string' },
      out: { type: 'string' },
      type: { type: 'string' },
      heads: { type: 'string' },
      uncased: { type: 'boolean' },
      json: { type: 'boolean' },
    }, 'convert-radgraph', 1);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError('convert-radgraph: expected the archive, e.g. llava-rad convert-radgraph radgraph.tar.gz --vocab vocab.txt --out radgraph-f32.gguf');
    if (typeof v.out !== 'string' || v.out === '') throw new UsageError('convert-radgraph: --out FILE is required');
    if (v.vocab !== undefined && (typeof v.vocab !== 'string' || v.vocab === '')) throw new UsageError('convert-radgraph: --vocab needs a file name');
    const type = v.type ?? 'f32';
    if (type !== 'f16' && type !== 'f32') throw new UsageError(`convert-radgraph: --type must be f32 or f16, got '${String(type)}'`);
    const heads = intArg(v.heads, '--heads', 1, 4096);
    const archive = positionals[0]!;
    const out = v.out;
    requireFile('convert-radgraph', 'archive', archive);
    requireOutputFile('convert-radgraph', '--out', out);
    let vocab: WordPieceVocab | undefined;
    if (typeof v.vocab === 'string') {
      requireFile('convert-radgraph', '--vocab', v.vocab);
      const text = readRegularFileSync(v.vocab, 'the vocabulary', MAX_VOCAB_FILE_BYTES).toString('utf8');
      try {
        vocab = WordPieceVocab.fromText(text);
      } catch (e) {
        throw new LlavaRadError('BAD_CHECKPOINT', `${v.vocab}: ${(e as Error).message}`, { cause: e });
      }
    }
    const t0 = performance.now();
    const r = await convertRadgraph(archive, out, { type, ...(vocab ? { vocab } : {}), ...(heads !== undefined ? { headCount: heads } : {}), ...(v.uncased === true ? { uncased: true } : {}) });
    const seconds = (performance.now() - t0) / 1000;
    if (v.json === true) {
      io.out(JSON.stringify({ out, type, tensors: r.tensorSources.size, bert: r.bert, config: r.config, seconds: round(seconds) }) + '\n');
    } else {
      io.out(`converted to ${out} (${type}, ${r.tensorSources.size} tensors: ${r.config.bertModelName}, ${r.bert.blockCount} layers, hidden ${r.bert.embeddingLength}; ` +
        `spans of up to ${r.config.maxSpanWidth} words, ${r.config.nerLabels.length - 1} entity and ${r.config.relationLabels.length} relation labels; ${seconds.toFixed(1)} s)\n` +
        `run: llava-rad eval PREDICTIONS.jsonl --metrics bleu,rouge,radgraph --radgraph ${out}\n`);
    }
    return 0;
  },
};
