// `llava-rad pull-eval`: download the scorer weights from Hugging Face (pinned revisions, sha256-checked) and
// convert CheXbert into the GGUF `eval --metrics chexbert` finds by default.

import { CONVERT_TYPES, isConvertType } from '../convert/mix.js';
import { EVAL_TERMS, pullEval, RRG_SCORERS_REPO, RRG_SCORERS_REVISION, BERT_BASE_UNCASED_REPO, BERT_BASE_UNCASED_REVISION, GREEN_REPO, GREEN_REVISION } from '../pull/eval-models.js';
import { intArg, parse, round, UsageError, type Command } from './args.js';

export const pullEvalCommand: Command = {
  name: 'pull-eval',
  summary: "download the scorer weights (CheXbert, RadGraph; GREEN with --green) and convert CheXbert (and GREEN) for eval",
  usage: `usage: llava-rad pull-eval [--type f32|f16] [--green [--green-type T]] [--force] [--heads N] [--json] [-q]

Downloads into $LLAVA_RAD_HOME/eval/ (interrupted downloads resume; every file is checked against the size
and sha256 Hugging Face lists, and vocab.txt against its pinned sha256):
  ${RRG_SCORERS_REPO}@${RRG_SCORERS_REVISION.slice(0, 12)}  chexbert.pth, radgraph.tar.gz
  ${BERT_BASE_UNCASED_REPO}@${BERT_BASE_UNCASED_REVISION.slice(0, 12)}  vocab.txt
  ${GREEN_REPO}@${GREEN_REVISION.slice(0, 12)}  with --green (about 27 GB), converted to green-<green-type>.gguf
then converts chexbert.pth + vocab.txt into $LLAVA_RAD_HOME/eval/chexbert-<type>.gguf, where
'llava-rad eval --metrics chexbert' looks when no --chexbert is given. RadGraph's archive is kept for
RadGraph F1: convert it with 'llava-rad convert-radgraph radgraph.tar.gz --vocab VOCAB --out
$LLAVA_RAD_HOME/eval/radgraph-f32.gguf' (its BERT's vocab.txt, which the archive names but does not hold).

  --type T     f32 (default; the labels closest to PyTorch's) or f16 weight matrices
  --green      also download GREEN (${GREEN_REPO}) and convert it for 'eval --metrics green'
  --green-type T  GREEN's GGUF type: ${CONVERT_TYPES.join(', ')} (default f16, GREEN's own precision)
  --force      convert CheXbert (and GREEN) again even if the GGUF is there
  --heads N    CheXbert's attention heads (default: hidden size / 64, i.e. 12)
  --json       print one JSON line with the result
  -q, --quiet  no progress lines on stderr

Environment: LLAVA_RAD_HOME (default ~/.cache/llava-rad), HF_TOKEN (sent as a Bearer token to Hugging Face
only), HF_ENDPOINT (default https://huggingface.co).

${EVAL_TERMS}`,
  async run(args, io, signal) {
    const v = parse(args, {
      type: { type: 'string' },
      green: { type: 'boolean' },
      'green-type': { type: 'string' },
      force: { type: 'boolean' },
      heads: { type: 'string' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
    }, 'pull-eval');
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    const type = v.type ?? 'f32';
    if (type !== 'f32' && type !== 'f16') throw new UsageError(`pull-eval: --type must be f32 or f16, got '${String(type)}'`);
    const heads = intArg(v.heads, '--heads', 1, 4096);
    const greenType = typeof v['green-type'] === 'string' ? v['green-type'] : 'f16';
    if (!isConvertType(greenType)) throw new UsageError(`pull-eval: --green-type must be one of ${CONVERT_TYPES.join(', ')}, got '${greenType}'`);
    if (v['green-type'] !== undefined && v.green !== true) throw new UsageError('pull-eval: --green-type needs --green');
    const quiet = v.quiet === true || v.json === true;
    let last = '';
    const t0 = performance.now();
    const r = await pullEval({
      type, green: v.green === true, greenType, force: v.force === true, signal,
      ...(heads !== undefined ? { headCount: heads } : {}),
      ...(quiet ? {} : {
        onProgress: (p) => {
          if (p.item === last) return;
          last = p.item;
          io.err(`llava-rad pull-eval: ${p.phase} ${p.item}\n`);
        },
      }),
    });
    const seconds = (performance.now() - t0) / 1000;
    if (v.json === true) {
      io.out(JSON.stringify({
        dir: r.dir, chexbert: r.chexbert, type: r.type, chexbert_already_present: r.chexbertAlreadyPresent,
        chexbert_checkpoint: r.chexbertCheckpoint, vocab: r.vocab, radgraph: r.radgraph, green: r.green ?? null,
        green_gguf: r.greenGguf ?? null, green_already_present: r.greenAlreadyPresent, seconds: round(seconds),
        files: r.files.map((f) => ({ repo: f.repo, path: f.path, dest: f.dest, size: f.size, resumed_from: f.resumedFrom, downloaded: f.downloaded })),
      }) + '\n');
      return 0;
    }
    io.out(`${r.chexbertAlreadyPresent ? 'CheXbert already converted' : `CheXbert converted (${seconds.toFixed(1)} s)`}: ${r.chexbert}\n` +
      `  'llava-rad eval PREDICTIONS --metrics chexbert' uses it with no --chexbert\n` +
      `RadGraph archive kept: ${r.radgraph} (for RadGraph F1: llava-rad convert-radgraph ARCHIVE --vocab VOCAB --out FILE.gguf)\n` +
      (r.greenGguf ? `${r.greenAlreadyPresent ? 'GREEN already converted' : 'GREEN converted'}: ${r.greenGguf}\n` +
        `  'llava-rad eval PREDICTIONS --metrics green --green-dir GREEN_CLONE' uses it with no --green\n` : '') +
      `\n${EVAL_TERMS}\n`);
    return 0;
  },
};
