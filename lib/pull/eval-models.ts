// pull-eval: download the scorer weights `llava-rad eval` uses from Hugging Face, at pinned revisions, into
// $LLAVA_RAD_HOME/eval/, and convert CheXbert into the GGUF `eval --metrics chexbert` loads by default.
//
//   await pullEval({ type: 'f32' });   // -> $LLAVA_RAD_HOME/eval/chexbert-f32.gguf
//
// The downloads go through the same client as `pull` (lib/pull/hf.ts): resumable FILE.part downloads, each file
// checked against the size Hugging Face lists and its sha256 (the Hub's LFS sha256, and the sha256 pinned
// below where we know it: a file of a non-LFS repository has no sha256 in the Hub's listing). A pinned
// revision that is a full commit id must be the commit the Hub resolves it to.
//
// Revisions: StanfordAIMI/RRG_scorers at d97745aa..., the commit microsoft/LLaVA-Rad's evaluation pins for
// radgraph.tar.gz (llava/eval/rrg_eval/rrg_eval/f1radgraph.py; its chexbert.py loads chexbert.pth from the
// same repository unpinned, so we pin it to the same commit). bert-base-uncased at 86b5e093..., the commit
// the Hugging Face cache names as that repository's snapshot, and its vocab.txt by sha256. GREEN's repository at
// 7adba1f3... (its newest commit, "Update tokenizer_config.json", May 2024; no public code pins one), checked against
// the Hub's LFS sha256 only, then converted with convert-llama into the GGUF `eval --metrics green` loads.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WordPieceVocab } from '../bert/wordpiece.js';
import { BERT_BASE_UNCASED_VOCAB_SHA256 } from '../cli/convert-chexbert.js';
import { convertChexbert, type ChexbertConvertType } from '../convert/chexbert.js';
import { convertLlama } from '../convert/convert-llama.js';
import { isConvertType, type ConvertType } from '../convert/mix.js';
import { abortedError, ioError, LlavaRadError } from '../errors.js';
import { type HfFile, type HfRepoInfo } from './hf.js';
import { llavaRadHome, sourceFolder } from './home.js';
import { downloadPlan, fileOf, hfOptions, pinnedFile, pinnedInfo, type PulledFile, type PullProgress } from './pull.js';

export const RRG_SCORERS_REPO = 'StanfordAIMI/RRG_scorers';
export const RRG_SCORERS_REVISION = 'd97745aa136e5beb927da7e768e99de6ae807902';
export const BERT_BASE_UNCASED_REPO = 'google-bert/bert-base-uncased';
export const BERT_BASE_UNCASED_REVISION = '86b5e0934494bd15c9632b12f734a8a67f723594';
export const GREEN_REPO = 'StanfordAIMI/GREEN-radllama2-7b';
export const GREEN_REVISION = '7adba1f37836459369f9ab574aa382581679f7fa';

export interface EvalModelFile {
  id: 'chexbert' | 'vocab' | 'radgraph';
  repo: string;
  revision: string;
  file: string;
  /** the sha256 the file must have, where pinned here (else the Hub's LFS sha256 is checked) */
  sha256?: string;
  purpose: string;
}

/** the files pull-eval always fetches */
export const EVAL_MODEL_FILES: readonly EvalModelFile[] = [
  { id: 'chexbert', repo: RRG_SCORERS_REPO, revision: RRG_SCORERS_REVISION, file: 'chexbert.pth',
    purpose: "CheXbert's labeler checkpoint: eval --metrics chexbert (14-condition F1) and SembScore" },
  { id: 'vocab', repo: BERT_BASE_UNCASED_REPO, revision: BERT_BASE_UNCASED_REVISION, file: 'vocab.txt', sha256: BERT_BASE_UNCASED_VOCAB_SHA256,
    purpose: "bert-base-uncased's WordPiece vocabulary, CheXbert's tokenizer (embedded in the GGUF)" },
  { id: 'radgraph', repo: RRG_SCORERS_REPO, revision: RRG_SCORERS_REVISION, file: 'radgraph.tar.gz',
    purpose: 'the RadGraph model archive, for RadGraph F1 (kept; make its GGUF with convert-radgraph and its BERT vocab.txt)' },
];

export const EVAL_TERMS = `The scorer weights are third-party research models, each under the terms on its Hugging Face page:
${RRG_SCORERS_REPO} (CheXbert, RadGraph), ${BERT_BASE_UNCASED_REPO} (Apache-2.0) and, with --green,
${GREEN_REPO} (built on Llama 2: Llama 2 Community License). Use them for research only and do not
redistribute the downloads or the converted files.`;

export interface PullEvalOptions {
  /** CheXbert GGUF weight type (default f32: the labels closest to PyTorch's) */
  type?: ChexbertConvertType;
  /** also download GREEN (StanfordAIMI/GREEN-radllama2-7b, about 27 GB) and convert it to green-<greenType>.gguf */
  green?: boolean;
  /** GREEN's GGUF type (default f16, the precision GREEN's scorer runs in) */
  greenType?: ConvertType;
  /** convert CheXbert again even when the GGUF is there */
  force?: boolean;
  /** the model home (default $LLAVA_RAD_HOME or ~/.cache/llava-rad); everything goes to <home>/eval */
  home?: string;
  /** default $HF_ENDPOINT or https://huggingface.co */
  endpoint?: string;
  /** default $HF_TOKEN */
  token?: string;
  /** other revisions than the pinned ones (a branch, tag or commit) */
  revisions?: { rrgScorers?: string; bert?: string; green?: string };
  /** CheXbert's attention heads (default hidden size / 64: 12 for CheXbert's bert-base) */
  headCount?: number;
  retries?: number;
  retryDelayMs?: number;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
}

export interface PullEvalResult {
  /** <home>/eval */
  dir: string;
  /** the CheXbert GGUF (<home>/eval/chexbert-<type>.gguf) */
  chexbert: string;
  type: ChexbertConvertType;
  /** the GGUF was already there (not converted again) */
  chexbertAlreadyPresent: boolean;
  /** the kept downloads */
  chexbertCheckpoint: string;
  vocab: string;
  radgraph: string;
  /** the GREEN folder, when --green (not downloaded when its GGUF is already there) */
  green: string | undefined;
  /** GREEN's GGUF (<home>/eval/green-<greenType>.gguf), when --green */
  greenGguf: string | undefined;
  greenAlreadyPresent: boolean;
  /** the files fetched (or found complete) in this run */
  files: (PulledFile & { dest: string })[];
}

/** GREEN's files: everything but docs, and no PyTorch pickles when safetensors are there */
function greenFiles(info: HfRepoInfo): string[] {
  const names = [...info.files.keys()];
  const safetensors = names.some((n) => n.endsWith('.safetensors'));
  return names.filter((n) => {
    if (n.split('/').some((s) => s === '' || s === '.' || s === '..' || !/^[\w.-]+$/.test(s))) return false;
    if (/(^|\/)(README|LICENSE)[^/]*$|^\.git|\.(md|png|jpe?g|gif)$/i.test(n)) return false;
    return !(safetensors && /\.(bin|pt|pth|ckpt)$/.test(n));
  }).sort();
}

export async function pullEval(options: PullEvalOptions = {}): Promise<PullEvalResult> {
  const type = options.type ?? 'f32';
  if (type !== 'f32' && type !== 'f16') throw new LlavaRadError('INVALID_ARGUMENT', `type must be f32 or f16, got ${JSON.stringify(type)}`);
  const greenType = options.greenType ?? 'f16';
  if (!isConvertType(greenType)) throw new LlavaRadError('INVALID_ARGUMENT', `greenType must be f32, f16, q8_0, q5_k_m or q4_k_m, got ${JSON.stringify(greenType)}`);
  const home = path.resolve(options.home ?? llavaRadHome());
  const dir = path.join(home, 'eval');
  const gguf = path.join(dir, `chexbert-${type}.gguf`);
  const dest = (e: EvalModelFile) => path.join(sourceFolder(e.repo, dir), e.file);
  const [chexbertEntry, vocabEntry, radgraphEntry] = EVAL_MODEL_FILES as [EvalModelFile, EvalModelFile, EvalModelFile];
  const rev = {
    rrg: options.revisions?.rrgScorers ?? RRG_SCORERS_REVISION,
    bert: options.revisions?.bert ?? BERT_BASE_UNCASED_REVISION,
    green: options.revisions?.green ?? GREEN_REVISION,
  };
  const result: PullEvalResult = {
    dir, chexbert: gguf, type, chexbertAlreadyPresent: false,
    chexbertCheckpoint: dest(chexbertEntry), vocab: dest(vocabEntry), radgraph: dest(radgraphEntry),
    green: options.green === true ? sourceFolder(GREEN_REPO, dir) : undefined,
    greenGguf: options.green === true ? path.join(dir, `green-${greenType}.gguf`) : undefined, greenAlreadyPresent: false, files: [],
  };
  const needGreen = options.green === true && (options.force === true || !existsSync(result.greenGguf!));
  result.greenAlreadyPresent = options.green === true && !needGreen;
  const needChexbert = options.force === true || !existsSync(gguf);
  const needRadgraph = !existsSync(result.radgraph);
  result.chexbertAlreadyPresent = !needChexbert;
  if (!needChexbert && !needRadgraph && !needGreen) return result; // nothing to fetch: no network

  const hf = hfOptions(options, 'pull-eval');
  type Planned = { info: HfRepoInfo; file: HfFile; dest: string };
  // pull-eval.json: what was fetched, from which commit, checked against which sha256 (earlier runs' entries kept)
  const record = path.join(dir, 'pull-eval.json');
  const recorded = new Map<string, unknown>();
  try {
    const prev = existsSync(record) ? (JSON.parse(readFileSync(record, 'utf8')) as { files?: unknown }).files : undefined;
    for (const f of Array.isArray(prev) ? prev as { dest?: unknown }[] : []) if (typeof f?.dest === 'string') recorded.set(f.dest, f);
  } catch { /* rewritten below */ }
  const run = async (plan: Planned[]) => {
    for (const p of plan) await mkdir(path.dirname(p.dest), { recursive: true });
    const got = await downloadPlan(plan, hf, options.onProgress);
    result.files.push(...got.map((f, i) => ({ ...f, dest: plan[i]!.dest })));
    for (const p of plan) recorded.set(p.dest, { repo: p.info.repo, path: p.file.path, dest: p.dest, size: p.file.size, revision: p.info.revision, commit: p.info.commit, sha256: p.file.sha256 ?? null });
  };
  const rrg = await pinnedInfo(RRG_SCORERS_REPO, rev.rrg, hf);
  const plan = (info: HfRepoInfo, e: EvalModelFile): Planned => ({ info, file: pinnedFile(info, e.file, e.sha256), dest: dest(e) });

  // ---- CheXbert: checkpoint + vocabulary, then the GGUF (written under a temporary name, renamed when complete) ----
  if (needChexbert) {
    const bert = await pinnedInfo(BERT_BASE_UNCASED_REPO, rev.bert, hf);
    await run([plan(bert, vocabEntry), plan(rrg, chexbertEntry)]);
    if (options.signal?.aborted) throw abortedError(options.signal, 'pull-eval');
    let vocab: WordPieceVocab;
    try {
      vocab = WordPieceVocab.fromText(readFileSync(result.vocab, 'utf8'));
    } catch (e) {
      throw new LlavaRadError('BAD_CHECKPOINT', `${result.vocab}: ${(e as Error).message}`, { cause: e });
    }
    await convertChexbert(result.chexbertCheckpoint, vocab, gguf, { type, ...(options.headCount !== undefined ? { headCount: options.headCount } : {}) });
  }

  // ---- RadGraph: downloaded and kept ----
  if (needRadgraph) await run([plan(rrg, radgraphEntry)]);

  // ---- GREEN (--green): downloaded, then converted (the GGUF written under a temporary name, renamed when complete) ----
  if (needGreen) {
    const green = await pinnedInfo(GREEN_REPO, rev.green, hf);
    const names = greenFiles(green);
    if (!names.includes('config.json')) throw new LlavaRadError('DOWNLOAD', `${GREEN_REPO}@${rev.green} has no config.json`);
    await run(names.map((n) => ({ info: green, file: fileOf(green, n), dest: path.join(result.green!, n) })));
    if (options.signal?.aborted) throw abortedError(options.signal, 'pull-eval');
    await convertLlama({ model: result.green!, out: result.greenGguf!, type: greenType, name: `${GREEN_REPO}@${green.commit}` });
  }

  await mkdir(dir, { recursive: true });
  await writeFile(record, JSON.stringify({
    pulled_at: new Date().toISOString(), endpoint: hf.endpoint,
    chexbert: existsSync(gguf) ? { gguf, type, bytes: statSync(gguf).size } : null,
    ...(result.greenGguf !== undefined && existsSync(result.greenGguf) ? { green: { gguf: result.greenGguf, type: greenType, bytes: statSync(result.greenGguf).size } } : {}),
    files: [...recorded.values()], research_use_only: true, redistribution: 'see each repository\'s terms; do not redistribute',
  }, null, 2) + '\n').catch((e: unknown) => { throw ioError(e, `cannot write ${record}`); });
  return result;
}
