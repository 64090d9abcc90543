// pull: download lmsys/vicuna-7b-v1.5 and microsoft/llava-rad from Hugging Face (only the files the converter
// reads), convert them into $LLAVA_RAD_HOME/models/llava-rad-<type>, then delete the downloads.
//
//   await pull({ type: 'q4_k_m', acceptLicense: true, onProgress });
//
// The weights are research-only and may not be redistributed, so nothing converted is ever published: every
// user converts their own copy. The first pull needs the license terms accepted (acceptLicense), which is
// recorded under the model home so later pulls do not ask.

import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { convertRelease, isConvertType, type ConvertType } from '../convert/convert.js';
import { CONVERT_TYPES } from '../convert/mix.js';
import { abortedError, describeValue, ioError, LlavaRadError } from '../errors.js';
import { resolveModelFolder } from '../llava-rad.js';
import { checkDownloadSpace } from '../disk-space.js';
import { downloadFile, repoInfo, type HfFile, type HfOptions, type HfRepoInfo } from './hf.js';
import { llavaRadHome, sourceFolder } from './home.js';
import { LICENSE_TERMS, licenseAccepted, recordLicenseAcceptance } from './license.js';

export const VICUNA_REPO = 'lmsys/vicuna-7b-v1.5';
export const LLAVA_RAD_REPO = 'microsoft/llava-rad';
export const DEFAULT_ENDPOINT = 'https://huggingface.co';

// the CLIP text tower's Hub files (pull({ clip: true })): BiomedCLIP-CXR's tokenizer vocabulary and BERT config.
// microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract was renamed BiomedBERT in November 2023 (the old name
// redirects); pinned at 4277b868 ("Update config.json", August 2020: vocab.txt last changed in 1597bd99 just before,
// and no later commit touches either file, only the README and license)
export const PUBMEDBERT_REPO = 'microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract';
export const PUBMEDBERT_REVISION = '4277b868909f5027be56da34cc3fef08615c2f12';
/** vocab.txt is not a Git LFS file, so the Hub lists no sha256 for it: undefined checks its listed size (and the
 *  pinned commit) only */
export const PUBMEDBERT_VOCAB_SHA256: string | undefined = undefined;

/** the base weights the converter accepts, in the order it looks for them */
const BASE_WEIGHTS = ['pytorch_model.bin.index.json', 'model.safetensors.index.json', 'pytorch_model.bin', 'model.safetensors'];

const HEX40 = /^[0-9a-f]{40}$/;

export async function pinnedInfo(repo: string, revision: string, hf: HfOptions): Promise<HfRepoInfo> {
  const info = await repoInfo(repo, revision, hf);
  if (HEX40.test(revision) && info.commit !== revision) {
    throw new LlavaRadError('DOWNLOAD', `${repo}@${revision}: Hugging Face resolved the pinned commit to ${info.commit}`);
  }
  return info;
}

/** the listed file with the pinned sha256 as the one to check; a Hub sha256 that differs is refused up front */
export function pinnedFile(info: HfRepoInfo, name: string, sha256: string | undefined): HfFile {
  const f = fileOf(info, name);
  if (sha256 === undefined) return f;
  if (f.sha256 !== undefined && f.sha256 !== sha256) {
    throw new LlavaRadError('DOWNLOAD', `${info.repo}/${name}@${info.revision}: Hugging Face lists sha256 ${f.sha256}, the pinned one is ${sha256}`);
  }
  return { ...f, sha256 };
}

export interface PullProgress {
  phase: 'download' | 'convert';
  /** download: the file being fetched ("owner/name/file"); convert: the tensor just written */
  item: string;
  /** bytes done and expected, over all downloads (download) or both output files (convert) */
  bytesDone: number;
  bytesTotal: number;
}

export interface PullOptions {
  /** decoder type (default f16) */
  type?: ConvertType;
  /** the model folder to write (default $LLAVA_RAD_HOME/models/llava-rad-<type>) */
  dir?: string;
  /** where the downloads go (default $LLAVA_RAD_HOME/sources) */
  sources?: string;
  /** the model home (default $LLAVA_RAD_HOME or ~/.cache/llava-rad): license record, default folders */
  home?: string;
  /** default $HF_ENDPOINT or https://huggingface.co */
  endpoint?: string;
  /** default $HF_TOKEN */
  token?: string;
  /** revisions (branch, tag or commit) of the repositories: default main, PubMedBERT's PUBMEDBERT_REVISION */
  revisions?: { vicuna?: string; llavaRad?: string; pubmedbert?: string };
  /** also fetch PubMedBERT's vocab.txt and config.json and write the CLIP GGUF (llava-rad embed / classify,
   *  retrieval); a folder converted without it is converted again */
  clip?: boolean;
  /** accept the license terms (LICENSE_TERMS) and record it; needed once per model home */
  acceptLicense?: boolean;
  /** keep the downloads after converting */
  keepSources?: boolean;
  /** convert again even when the model folder already holds llava-rad.json */
  force?: boolean;
  /** download retries after network errors (default 5) and the delay step (default 1000 ms) */
  retries?: number;
  retryDelayMs?: number;
  signal?: AbortSignal;
  onProgress?: (p: PullProgress) => void;
}

export interface PulledFile {
  repo: string;
  path: string;
  size: number;
  /** bytes of an earlier .part the download resumed from (0: from the start) */
  resumedFrom: number;
  /** false: already complete on disk */
  downloaded: boolean;
}

export interface PullResult {
  dir: string;
  decoder: string;
  vision: string;
  type: ConvertType;
  /** the folder already held a model: nothing was downloaded or converted */
  alreadyPresent: boolean;
  files: PulledFile[];
  /** the two download folders, and whether they still exist */
  sources: { vicuna: string; llavaRad: string; pubmedbert?: string };
  sourcesKept: boolean;
  /** the CLIP GGUF, with clip: true */
  clip?: string;
}

const NAME = /^[\w][\w.-]*$/;

/** the Hugging Face client options of a pull: endpoint ($HF_ENDPOINT), token ($HF_TOKEN), retries, signal */
export function hfOptions(options: {
  endpoint?: string | undefined; token?: string | undefined; retries?: number | undefined; retryDelayMs?: number | undefined; signal?: AbortSignal | undefined;
}, command = 'pull'): HfOptions {
  const hf: HfOptions = {
    endpoint: (options.endpoint ?? (process.env.HF_ENDPOINT || DEFAULT_ENDPOINT)).replace(/\/+$/, ''),
    token: options.token ?? (process.env.HF_TOKEN || undefined),
    signal: options.signal,
    command,
    ...(options.retries !== undefined ? { retries: options.retries } : {}),
    ...(options.retryDelayMs !== undefined ? { retryDelayMs: options.retryDelayMs } : {}),
  };
  try {
    new URL(hf.endpoint);
  } catch {
    throw new LlavaRadError('INVALID_ARGUMENT', `the Hugging Face endpoint must be a URL, got ${JSON.stringify(hf.endpoint)}`);
  }
  // NaN retries never ran out (attempt >= NaN is false): a flaky network was retried for ever
  const retries = options.retries;
  if (retries !== undefined && !(Number.isInteger(retries) && retries >= 0 && retries <= 1000)) {
    throw new LlavaRadError('INVALID_ARGUMENT', `retries must be an integer from 0 to 1000, got ${describeValue(retries)}`);
  }
  const delay = options.retryDelayMs;
  if (delay !== undefined && !(typeof delay === 'number' && Number.isFinite(delay) && delay >= 0 && delay <= 3_600_000)) {
    throw new LlavaRadError('INVALID_ARGUMENT', `retryDelayMs must be a number of milliseconds from 0 to 3600000, got ${describeValue(delay)}`);
  }
  return hf;
}

/** `name` in the listing of `info`; DOWNLOAD when the repository has no such file */
export function fileOf(info: HfRepoInfo, name: string): HfFile {
  const f = info.files.get(name);
  if (!f) throw new LlavaRadError('DOWNLOAD', `${info.repo}@${info.revision} has no ${name}`);
  return f;
}

/** downloads every file of `plan` in order, reporting progress over all of them; IO first when they cannot fit */
export async function downloadPlan(plan: readonly { info: HfRepoInfo; file: HfFile; dest: string }[], hf: HfOptions,
  onProgress?: (p: PullProgress) => void): Promise<PulledFile[]> {
  checkDownloadSpace(plan.map((p) => ({ dest: p.dest, size: p.file.size })));
  const pulled: PulledFile[] = [];
  const bytesTotal = plan.reduce((s, p) => s + (p.file.size ?? 0), 0);
  let bytesDone = 0;
  for (const p of plan) {
    const item = `${p.info.repo}/${p.file.path}`;
    onProgress?.({ phase: 'download', item, bytesDone, bytesTotal });
    const before = bytesDone;
    const r = await downloadFile(p.info, p.file, p.dest, hf, (n) => {
      bytesDone += n;
      onProgress?.({ phase: 'download', item, bytesDone, bytesTotal });
    });
    bytesDone = before + (p.file.size ?? 0);
    pulled.push({ repo: p.info.repo, path: p.file.path, size: p.file.size ?? 0, ...r });
  }
  return pulled;
}

function jsonFile(file: string): Record<string, unknown> {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch { /* below */ }
  throw new LlavaRadError('BAD_CHECKPOINT', `${file}: expected a JSON object`);
}

function plainName(v: unknown, file: string, key: string): string {
  const n = typeof v === 'string' ? path.basename(v) : '';
  if (!NAME.test(n)) throw new LlavaRadError('BAD_CHECKPOINT', `${file}: "${key}" must name a file, got ${JSON.stringify(v)}`);
  return n;
}

export async function pull(options: PullOptions = {}): Promise<PullResult> {
  const type = options.type ?? 'f16';
  if (!isConvertType(type)) throw new LlavaRadError('INVALID_ARGUMENT', `type must be one of ${CONVERT_TYPES.join(', ')}, got ${JSON.stringify(type)}`);
  const home = path.resolve(options.home ?? llavaRadHome());
  if (!licenseAccepted(home)) {
    if (options.acceptLicense !== true) {
      throw new LlavaRadError('LICENSE_NOT_ACCEPTED', `the license terms have not been accepted (pass acceptLicense: true / --accept-license):\n\n${LICENSE_TERMS}`);
    }
    await recordLicenseAcceptance(home);
  }
  const dir = path.resolve(options.dir ?? path.join(home, 'models', `llava-rad-${type}`));
  const srcRoot = path.resolve(options.sources ?? path.join(home, 'sources'));
  const sources: PullResult['sources'] = { vicuna: sourceFolder(VICUNA_REPO, srcRoot), llavaRad: sourceFolder(LLAVA_RAD_REPO, srcRoot) };
  if (options.clip === true) sources.pubmedbert = sourceFolder(PUBMEDBERT_REPO, srcRoot);
  const hasClip = () => typeof jsonFile(path.join(dir, 'llava-rad.json')).clip === 'string';
  if (options.force !== true && existsSync(path.join(dir, 'llava-rad.json')) && (options.clip !== true || hasClip())) {
    const files = resolveModelFolder(dir);
    const held = jsonFile(path.join(dir, 'llava-rad.json')).type;
    if (held !== type) {
      throw new LlavaRadError('INVALID_ARGUMENT', `${dir} already holds a ${String(held)} model, not ${type}: choose another folder, or force to convert again`);
    }
    const clip = jsonFile(path.join(dir, 'llava-rad.json')).clip;
    return { dir, ...files, type, alreadyPresent: true, files: [], sources, sourcesKept: existsSync(sources.vicuna),
      ...(options.clip === true && typeof clip === 'string' ? { clip: path.join(dir, path.basename(clip)) } : {}) };
  }

  const hf = hfOptions(options);
  const vic = await repoInfo(VICUNA_REPO, options.revisions?.vicuna ?? 'main', hf);
  const rad = await repoInfo(LLAVA_RAD_REPO, options.revisions?.llavaRad ?? 'main', hf);

  // ---- plan: the files the converter reads (small JSON files that name others are fetched now) ----
  const pulled: PulledFile[] = [];
  const plan: { info: HfRepoInfo; file: HfFile; dest: string }[] = [];
  const fetchNow = async (info: HfRepoInfo, folder: string, name: string) => {
    const file = fileOf(info, name);
    await mkdir(folder, { recursive: true });
    const dest = path.join(folder, name);
    const r = await downloadFile(info, file, dest, hf);
    pulled.push({ repo: info.repo, path: name, size: file.size ?? 0, ...r });
    return dest;
  };
  const add = (info: HfRepoInfo, folder: string, name: string) => plan.push({ info, file: fileOf(info, name), dest: path.join(folder, name) });

  add(vic, sources.vicuna, 'config.json');
  add(vic, sources.vicuna, 'tokenizer.model');
  if (vic.files.has('tokenizer_config.json')) add(vic, sources.vicuna, 'tokenizer_config.json');
  const weights = BASE_WEIGHTS.find((n) => vic.files.has(n));
  if (!weights) throw new LlavaRadError('DOWNLOAD', `${vic.repo}@${vic.revision} has none of ${BASE_WEIGHTS.join(', ')}`);
  if (weights.endsWith('.index.json')) {
    const index = await fetchNow(vic, sources.vicuna, weights);
    const map = jsonFile(index).weight_map;
    if (!map || typeof map !== 'object') throw new LlavaRadError('BAD_CHECKPOINT', `${index}: no "weight_map"`);
    for (const shard of new Set(Object.values(map as Record<string, unknown>))) add(vic, sources.vicuna, plainName(shard, index, 'weight_map'));
  } else {
    add(vic, sources.vicuna, weights);
  }

  const cfg = jsonFile(await fetchNow(rad, sources.llavaRad, 'config.json'));
  const cfgFile = path.join(sources.llavaRad, 'config.json');
  add(rad, sources.llavaRad, 'adapter_config.json');
  add(rad, sources.llavaRad, rad.files.has('adapter_model.bin') || !rad.files.has('adapter_model.safetensors') ? 'adapter_model.bin' : 'adapter_model.safetensors');
  add(rad, sources.llavaRad, 'non_lora_trainables.bin');
  add(rad, sources.llavaRad, plainName(cfg.vision_tower_config ?? 'biomedclipcxr_518.json', cfgFile, 'vision_tower_config'));
  add(rad, sources.llavaRad, plainName(cfg.vision_tower_checkpoint ?? 'biomedclipcxr_518_checkpoint.pt', cfgFile, 'vision_tower_checkpoint'));

  let bert: HfRepoInfo | undefined;
  if (sources.pubmedbert !== undefined) {
    bert = await pinnedInfo(PUBMEDBERT_REPO, options.revisions?.pubmedbert ?? PUBMEDBERT_REVISION, hf);
    await mkdir(sources.pubmedbert, { recursive: true });
    plan.push({ info: bert, file: pinnedFile(bert, 'vocab.txt', PUBMEDBERT_VOCAB_SHA256), dest: path.join(sources.pubmedbert, 'vocab.txt') });
    add(bert, sources.pubmedbert, 'config.json');
  }

  // ---- download ----
  pulled.push(...await downloadPlan(plan, hf, options.onProgress));

  // ---- convert (not interruptible once started; its outputs appear only when it succeeded) ----
  if (options.signal?.aborted) throw abortedError(options.signal, 'pull');
  const conv = await convertRelease({
    base: sources.vicuna, adapter: sources.llavaRad, out: dir, type,
    ...(sources.pubmedbert !== undefined ? { clipText: sources.pubmedbert } : {}),
    ...(options.onProgress ? { onProgress: (c) => options.onProgress!({ phase: 'convert', item: c.tensor, bytesDone: c.bytesDone, bytesTotal: c.bytesTotal }) } : {}),
  });
  await writeFile(path.join(dir, 'pull.json'), JSON.stringify({
    pulled_at: new Date().toISOString(),
    endpoint: hf.endpoint,
    type,
    repositories: [vic, rad, ...(bert ? [bert] : [])].map((i) => ({
      repo: i.repo, revision: i.revision, commit: i.commit,
      files: pulled.filter((f) => f.repo === i.repo).map((f) => ({ path: f.path, size: f.size,
        sha256: i.files.get(f.path)?.sha256 ?? (i === bert && f.path === 'vocab.txt' ? PUBMEDBERT_VOCAB_SHA256 : undefined) ?? null })),
    })),
    research_use_only: true,
    redistribution: 'not allowed (weights and converted files)',
  }, null, 2) + '\n').catch((e: unknown) => { throw ioError(e, `cannot write ${path.join(dir, 'pull.json')}`); });

  if (options.keepSources !== true) {
    await rm(sources.vicuna, { recursive: true, force: true });
    await rm(sources.llavaRad, { recursive: true, force: true });
    if (sources.pubmedbert !== undefined) await rm(sources.pubmedbert, { recursive: true, force: true });
    if (options.sources === undefined) await rmdir(srcRoot).catch(() => {}); // only when empty
  }
  return { dir, decoder: conv.decoder, vision: conv.vision, type, alreadyPresent: false, files: pulled, sources, sourcesKept: options.keepSources === true,
    ...(conv.clip !== undefined ? { clip: conv.clip } : {}) };
}
