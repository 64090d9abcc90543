// Loading the native addon (llava_rad.node) and its TypeScript view. The addon only wraps the C API in
// native/include/llava_rad.h; all policy lives in the TypeScript around it.
//
// Where the addon is looked for, first loadable wins:
//   1. LLAVA_RAD_BINARY (or its older name LLAVA_RAD_ADDON): a llava_rad.node file, or a folder holding one
//      (directly or in Release/). When set, it is the only place tried.
//   2. the prebuilt platform packages npm installs beside this one: llava-rad-linux-x64-cuda13, then -cuda12
//      (x86-64 Linux, when the user installed one), then llava-rad-<os>-<arch> (an optional dependency); their
//      addon is Release/llava_rad.node.
//   3. a source build in this package: <package root>/build/Release/llava_rad.node, the package root being found
//      from this module's own location (lib/ when run from source, dist/ when built).
// If none loads, LlavaRadError NATIVE_LOAD lists each place tried, why it failed, and how to build from source.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LlavaRadError } from './errors.js';

// ---- the addon's shape -------------------------------------------------------------------------------

export interface NativeModelInfo {
  architecture: string;
  name: string;
  backend: string;
  nVocab: number;
  nCtxTrain: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nFf: number;
  nRot: number;
  rmsNormEps: number;
  ropeFreqBase: number;
  bosToken: number;
  eosToken: number;
  addBos: boolean;
  weightType: number;
  nParams: number;
  weightBytes: number;
  /**
   * q8_0 and q6_K matrices repacked for the engine's own AVX512-VNNI kernels (CPU-only runs on CPUs that
   * have them); 0 when every matrix uses ggml's kernels (other types, GPU runs, LLAVA_RAD_CPU_KERNELS=ggml)
   */
  vnniMatrices: number;
}

export interface NativeModelParams {
  backend?: 'auto' | 'cpu' | 'cuda';
  threads?: number;
  mmap?: boolean;
}

export interface NativeContextParams {
  contextSize?: number;
  batchSize?: number;
  parallel?: number;
  kvType?: 'f16' | 'q8_0' | 'f32';
  threads?: number;
  flashAttn?: boolean;
}

export interface NativeBatch {
  /** token ids; TOKEN_EMBD (-1) takes the next n_embd floats of `embd` */
  tokens: Int32Array | number[];
  embd?: Float32Array;
  pos: Int32Array | number[];
  seqId: Int32Array | number[];
  /** nonzero: keep this entry's logits (default: only the last entry's) */
  logits?: Int8Array | Uint8Array | ArrayLike<number | boolean>;
}

export interface NativeGenParams {
  maxTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number | bigint;
  ignoreEos?: boolean;
  keepLogits?: boolean;
}

/** lr_stop_reason values */
export const NativeStop = { Eos: 0, MaxTokens: 1, Cancelled: 2, Error: 3, ContextFull: 4 } as const;

export interface NativeGenResult {
  /** lr_status name: "LR_OK", "LR_ERR_CANCELLED", ... */
  status: string;
  stopReason: number;
  nPrompt: number;
  nGenerated: number;
  queueMs: number;
  promptMs: number;
  decodeMs: number;
  error: string;
  /** the generated tokens, when submit() was given no onToken (and no keepLogits): collected natively */
  tokens?: Int32Array;
}

export interface NativeContext {
  decode(batch: NativeBatch): Promise<void>;
  logits(i: number): Float32Array | null;
  seqLength(seqId: number): number;
  seqTruncate(seqId: number, p0: number): void;
  submit(
    parts: (Int32Array | number[] | Float32Array)[],
    params: NativeGenParams,
    onToken: ((token: number, logits?: Float32Array) => void) | null,
    onDone: (result: NativeGenResult) => void,
  ): number;
  cancel(id: number): void;
  /** testing only (lr_debug_fault): the next scheduler step that decodes fails this way (NativeFault) */
  debugFault(kind: number): void;
  dispose(): Promise<void>;
  /** the settings in force, as the engine resolved them */
  params(): Required<NativeContextParams> & { kvBytes: number };
  readonly pending: number;
  readonly disposed: boolean;
}

export interface NativeModel {
  info(): NativeModelInfo;
  tokenize(text: string, addBos: boolean): Int32Array;
  detokenize(ids: Int32Array | number[], flags?: number, asBuffer?: false): string;
  detokenize(ids: Int32Array | number[], flags: number, asBuffer: true): Buffer;
  tokenPiece(id: number): Buffer;
  createContext(params?: NativeContextParams): Promise<NativeContext>;
  dispose(): Promise<void>;
  readonly disposed: boolean;
}

export interface NativeVisionInfo {
  name: string;
  backend: string;
  imageSize: number;
  patchSize: number;
  nPatches: number;
  nEmbd: number;
  nOut: number;
  nBlock: number;
  nBlockUsed: number;
  nHead: number;
  selectLayer: number;
  imageMean: number[];
  imageStd: number[];
  nParams: number;
}

export interface NativeVision {
  info(): NativeVisionInfo;
  encode(pixels: Float32Array, nImages: number, output?: 'projected' | 'features'): Promise<Float32Array>;
  /** stops every encode submitted and not finished (each rejects with LR_ERR_CANCELLED); later ones run normally */
  cancel(): void;
  dispose(): Promise<void>;
  readonly disposed: boolean;
}

/** The CPU code this process computes with (lr_cpu_info). */
export interface CpuInfo {
  /** ggml CPU backend module in use: 'zen4', 'icelake', 'haswell', 'sse42', 'x64', ..., or 'native' */
  variant: string;
  /** the modules this CPU can run */
  variants: string[];
  /** ggml's feature list of the module in use ('AVX2', 'AVX512_VNNI', ...) */
  features: string[];
  /** quantized matrix products of CPU-only runs: the engine's AVX512-VNNI kernels, or ggml's */
  kernels: 'vnni' | 'ggml';
  /** threads when none are asked for: physical cores in the affinity mask, capped by the cgroup CPU quota */
  defaultThreads: number;
  allowedCpus: number;
  physicalCores: number;
  /** CPUs the cgroup grants (a container's CPU limit); 0 when there is none */
  cpuQuota: number;
}

export interface NativeAddon {
  loadModel(path: string, params?: NativeModelParams): Promise<NativeModel>;
  loadVision(path: string, params?: NativeModelParams & { maxBatch?: number }): Promise<NativeVision>;
  quantize(type: number, src: Float32Array, nRows: number, nPerRow: number): Buffer;
  typeFromName(name: string): number;
  typeRowBytes(type: number, nPerRow: number): number;
  statusName(status: number): string;
  buildInfo(): string;
  cpuInfo(): CpuInfo;
  /** throws OUT_OF_MEMORY (naming both sizes) when `bytes` of host memory for `what` are not there to take */
  checkHostMemory(bytes: number, what: string): void;
  readonly TOKEN_EMBD: number;
  readonly napiVersion: number;
}

/** lr_detok_flags */
export const DETOK_SKIP_SPECIAL = 1;
export const DETOK_REMOVE_LEADING_SPACE = 2;

// ---- locating and loading ----------------------------------------------------------------------------

function thisFile(): string {
  return fileURLToPath(import.meta.url);
}

let rootCache: string | undefined;

/** The package root: the nearest folder above this module with a package.json named "llava-rad". */
export function packageRoot(): string {
  if (rootCache) return rootCache;
  let dir = path.dirname(thisFile());
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'llava-rad') return (rootCache = dir);
      } catch {
        // not a readable package.json: keep looking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  // lib/ and dist/ are one level below the root
  return (rootCache = path.resolve(path.dirname(thisFile()), '..'));
}

/** the package's version (from its package.json) */
export function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** One place the addon may come from, and what happened there. */
export interface AddonCandidate {
  /** what this place is, for messages ("LLAVA_RAD_BINARY", "the platform package llava-rad-linux-x64", ...) */
  source: string;
  /** the llava_rad.node path, when the place exists */
  file?: string;
  /** why it was not used; absent for the one that loaded */
  failure?: string;
}

/** The prebuilt platform packages that fit this process, most specific first. */
export function platformPackages(platform: string = process.platform, arch: string = process.arch): string[] {
  const base = `llava-rad-${platform}-${arch}`;
  // a CUDA package's addon loads without the CUDA runtime; its CUDA module then says why it did not (buildInfo)
  return platform === 'linux' && arch === 'x64' ? [`${base}-cuda13`, `${base}-cuda12`, base] : [base];
}

function binaryFromEnv(): { name: string; value: string } | undefined {
  for (const name of ['LLAVA_RAD_BINARY', 'LLAVA_RAD_ADDON']) {
    const value = process.env[name];
    if (value !== undefined && value !== '') return { name, value };
  }
  return undefined;
}

/** a llava_rad.node given as itself or as a folder holding it (directly or in Release/) */
function addonIn(fileOrDir: string): string | undefined {
  let st;
  try {
    st = statSync(fileOrDir);
  } catch {
    return undefined;
  }
  if (!st.isDirectory()) return fileOrDir;
  for (const rel of ['llava_rad.node', path.join('Release', 'llava_rad.node')]) {
    const f = path.join(fileOrDir, rel);
    if (existsSync(f)) return f;
  }
  return undefined;
}

/** The places tried, in order (nothing is loaded). */
export function addonCandidates(): AddonCandidate[] {
  const fromEnv = binaryFromEnv();
  if (fromEnv) {
    const given = path.resolve(fromEnv.value);
    const file = addonIn(given);
    return [{ source: fromEnv.name, file: file ?? given, failure: file ? undefined : `${given} does not exist or holds no llava_rad.node` }];
  }
  const out: AddonCandidate[] = [];
  const req = createRequire(import.meta.url);
  for (const pkg of platformPackages()) {
    const source = `the platform package ${pkg}`;
    let dir: string;
    try {
      dir = path.dirname(req.resolve(`${pkg}/package.json`));
    } catch {
      out.push({ source, failure: 'not installed' });
      continue;
    }
    const file = path.join(dir, 'Release', 'llava_rad.node');
    out.push({ source, file, failure: existsSync(file) ? undefined : `${file} is missing` });
  }
  const built = path.join(packageRoot(), 'build', 'Release', 'llava_rad.node');
  out.push({ source: 'a source build', file: built, failure: existsSync(built) ? undefined : `${built} does not exist` });
  return out;
}

let cached: NativeAddon | undefined;
let loadedFrom: AddonCandidate | undefined;

function buildHint(root: string): string {
  return `To build from source (CMake >= 3.18, a C++17 compiler and git): \`npm explore llava-rad -- npm run build\` ` +
    `in an app, or \`npm run build:native\` in ${root}; or set LLAVA_RAD_BINARY to a built llava_rad.node.`;
}

/**
 * what the prebuilt packages need of the system (built on Debian 12 with GCC 12, asking for no newer C++ runtime
 * than GCC 11's: native/src/glibcxx_compat.h; see the README, Prebuilt packages)
 */
export const PREBUILT_SYSTEM = 'glibc 2.34 or later and the C++ runtime (libstdc++) of GCC 11 or later, as on Debian 12, Ubuntu 22.04 or RHEL 9';

/** why an addon failed to load, with what to do when a prebuilt one meets an older C or C++ runtime */
export function loadFailure(message: string, source: string): string {
  const first = message.split('\n')[0]!;
  const old = /version `((?:GLIBC|GLIBCXX|CXXABI)_[\d.]+)' not found/.exec(first);
  if (!old || !source.startsWith('the platform package')) return `could not be loaded: ${first}`;
  return `could not be loaded: ${first} (this system's C or C++ runtime is older than the prebuilt engine needs: ` +
    `${PREBUILT_SYSTEM}; build from source instead, as below)`;
}

function tryLoad(c: AddonCandidate): NativeAddon | undefined {
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(c.file!);
  } catch (e) {
    c.failure = loadFailure(e instanceof Error ? e.message : String(e), c.source);
    return undefined;
  }
  const m = mod as Partial<NativeAddon>;
  if (typeof m?.loadModel !== 'function' || typeof m.quantize !== 'function' || typeof m.buildInfo !== 'function') {
    c.failure = 'is not the llava-rad addon (or it is out of date)';
    return undefined;
  }
  return m as NativeAddon;
}

/** Loads the addon once; throws LlavaRadError NATIVE_LOAD when no place has a loadable one. */
export function native(): NativeAddon {
  if (cached) return cached;
  const tried = addonCandidates();
  for (const c of tried) {
    if (c.failure) continue;
    const m = tryLoad(c);
    if (m) {
      loadedFrom = c;
      return (cached = m);
    }
  }
  const lines = tried.map((c) => `  - ${c.source}${c.file && !c.failure!.includes(c.file) ? ` (${c.file})` : ''}: ${c.failure}`);
  const what = tried.length === 1 && tried[0]!.file && /does not exist|missing/.test(tried[0]!.failure!)
    ? `the native addon was not found at ${tried[0]!.file}` : 'no native addon could be loaded';
  throw new LlavaRadError('NATIVE_LOAD',
    `llava-rad: ${what} (${process.platform}-${process.arch}). Tried:\n${lines.join('\n')}\n${buildHint(packageRoot())}`);
}

/** The addon that native() loaded (loading it if needed): its file and where it came from. */
export function loadedAddon(): { file: string; source: string } {
  native();
  return { file: loadedFrom!.file!, source: loadedFrom!.source };
}

/** The path of the addon in use (worker threads load the same file). */
export function addonPath(): string {
  return loadedAddon().file;
}

/** Same as native(), named for readability at call sites. */
export const loadNative = native;
