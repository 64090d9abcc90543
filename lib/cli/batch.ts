// `llava-rad batch`: the findings of every study of a manifest, journaled to a predictions JSONL file
// that a re-run resumes (lib/batch/ holds the pieces; this file is the policy and the command line).

import { fromNative, LlavaRadError } from '../errors.js';
import { native } from '../native.js';
import type { HighBitDepthMode } from '../image/decode.js';
import { DEFAULT_FINDINGS_MAX_TOKENS, resolveModelFolder, type LoadLlavaRadOptions } from '../llava-rad.js';
import type { KvCacheType } from '../options.js';
import { defaultModelFolder } from '../pull/home.js';
import { DeviceSpecError, needsWorkers, parseDevice, parseDevices, type DeviceSpec } from '../batch/devices.js';
import { openLocalEngine, type Engine, type StudySettings } from '../batch/engine.js';
import { modelIdentity } from '../batch/identity.js';
import { DoneStudies } from '../batch/done-studies.js';
import { Journal } from '../batch/journal.js';
import { acquireLock, type HeldLock } from '../batch/lock.js';
import { MANIFEST_FORMATS, readManifest, type ManifestFormat } from '../batch/manifest.js';
import { Progress, type ProgressMode } from '../batch/progress.js';
import { identityKey, type RunParams } from '../batch/record.js';
import { runStudies } from '../batch/runner.js';
import { inShard, parseShard, ShardSpecError, type Shard } from '../batch/shard.js';
import { runWorker, spawnWorkerEngine } from '../batch/workers.js';
import { asUsage, IMAGE_OPTIONS, intArg, llavaRadModelArgs, parseWithPositionals, requireFile, requireFolder, requireOutputFile, UsageError, type Command } from './args.js';

/** exit status when the run finished but some studies have a failed record */
export const EXIT_SOME_FAILED = 3;

export function formatArg(v: string | boolean | undefined): ManifestFormat | undefined {
  if (v === undefined) return undefined;
  if (!MANIFEST_FORMATS.includes(v as ManifestFormat)) throw new UsageError(`--format must be one of ${MANIFEST_FORMATS.join(', ')}, got '${String(v)}'`);
  return v as ManifestFormat;
}

export function shardArg(v: string | boolean | undefined): Shard | null {
  if (v === undefined) return null;
  try {
    return parseShard(String(v));
  } catch (e) {
    if (e instanceof ShardSpecError) throw new UsageError(e.message);
    throw e;
  }
}

function modelFiles(v: Record<string, string | boolean | undefined>): { decoder: string; vision: string } {
  const files = llavaRadModelArgs('batch', v, defaultModelFolder());
  return 'model' in files ? asUsage(() => resolveModelFolder(files.model)) : files;
}

function devicesArg(v: Record<string, string | boolean | undefined>): DeviceSpec[] {
  if (v.device !== undefined && v.devices !== undefined) throw new UsageError('batch: give --device D or --devices LIST, not both');
  try {
    if (typeof v.devices === 'string') return parseDevices(v.devices);
    return [parseDevice(typeof v.device === 'string' ? v.device : 'auto')];
  } catch (e) {
    if (e instanceof DeviceSpecError) throw new UsageError(`batch: ${e.message}`);
    throw e;
  }
}

export const batchCommand: Command = {
  name: 'batch',
  summary: 'findings for every study of a manifest, resumable, sharded, several devices (research use only)',
  usage: `Usage: llava-rad batch MANIFEST --model DIR --out PREDICTIONS.jsonl [options]
       llava-rad batch MANIFEST --model DECODER.gguf --mmproj VISION.gguf --out PREDICTIONS.jsonl [options]

MANIFEST lists the studies: JSONL (one {"id", "image", "reason"?, "reference"?} per line), CSV with those
columns, or the LLaVA-Rad annotation JSON (chat_test_MIMIC_CXR_*.json; the reference is the "gpt" turn).
Each study becomes one line of PREDICTIONS.jsonl, appended and fsync'd as it finishes; re-running the same
command skips the studies already there. The official evaluation's fields (id, query, reference,
prediction) are written when the manifest gives a reference. MANIFEST may be a named pipe or <(command):
its first writer is waited for at most $LLAVA_RAD_FIFO_WAIT_MS ms (default 10000), then it is read to its end.

Options:
  -m, --model DIR|FILE    a folder written by 'llava-rad convert', or the decoder GGUF (with --mmproj);
                          default $LLAVA_RAD_MODEL, else the folder 'llava-rad pull' wrote in $LLAVA_RAD_HOME
      --mmproj FILE       the vision GGUF, when --model names the decoder GGUF
  -o, --out FILE          the predictions JSONL (created, or resumed when it exists)
      --image-root DIR    folder that relative image paths are under (default: the manifest's folder)
      --format F          jsonl | csv | json (default: from the extension)
      --mimic-test-filter keep what the official mimic_test_findings loader keeps (generate_method gpt4,
                          view AP/PA, a reference) and drop a leading "mimic/" from image paths
  -n, --max-tokens N      most tokens per study (default 256, as the official evaluation)
  -c, --concurrency N     studies in flight at once per device (default 4; batched in one decoder)
      --device D          cpu | cuda | cuda:N | auto (default auto)
      --devices LIST      one engine per device, each in its own worker process, e.g. cuda:0,cuda:1
      --threads N         CPU threads per engine (default: physical cores, split among cpu workers)
      --shard I/N         run only shard I of N (0-based; by a hash of the id); auto: from
                          SLURM_ARRAY_TASK_ID/_COUNT or JOB_COMPLETION_INDEX (with auto/N)
      --retry-failed      run again the studies whose last record is a failure (appends a newer record)
      --kv-type T         KV cache: auto (default), f16, f32, q8_0 (as llava-rad findings)
      --high-bit-depth M  16-bit images to 8 bits: msb (default), minmax, pil (as llava-rad findings)
      --dicom-window      DICOM: apply rescale + VOI LUT / window instead of the MIMIC-CXR-JPG recipe
      --skip-lateral      DICOM: refuse lateral views instead of warning
  -q, --quiet             no progress output
      --json-progress     progress as one JSON object per line on stderr
  -h, --help              this help

Exit status: 0 every study has findings; 3 the run finished but some studies failed (their records
carry error.code); 1 an error stopped the run; 2 bad arguments; 130 interrupted (SIGINT), 143 (SIGTERM).
Merge shards with 'llava-rad merge'. Research use only: LLaVA-Rad output is not for clinical care.`,
  async run(args, io, signal) {
    const { values: v, positionals } = parseWithPositionals(args, {
      model: { type: 'string', short: 'm' },
      mmproj: { type: 'string' },
      out: { type: 'string', short: 'o' },
      'image-root': { type: 'string' },
      format: { type: 'string' },
      'mimic-test-filter': { type: 'boolean' },
      'max-tokens': { type: 'string', short: 'n' },
      concurrency: { type: 'string', short: 'c' },
      device: { type: 'string' },
      devices: { type: 'string' },
      threads: { type: 'string', short: 't' },
      shard: { type: 'string' },
      'retry-failed': { type: 'boolean' },
      'kv-type': { type: 'string' },
      ...IMAGE_OPTIONS,
      quiet: { type: 'boolean', short: 'q' },
      'json-progress': { type: 'boolean' },
      'ipc-worker': { type: 'boolean' },
    }, 'batch', 1);
    if (v.help) {
      io.out(this.usage + '\n');
      return 0;
    }
    if (v['ipc-worker']) {
      if (!process.send) throw new UsageError('batch: --ipc-worker is internal (a worker process of batch --devices)');
      return runWorker();
    }
    const manifestFile = positionals[0];
    if (!manifestFile) throw new UsageError('batch: the MANIFEST file is required');
    // a named pipe too (mkfifo, or a shell's <(...)): readManifest waits a bounded time for its writer
    requireFile('batch', 'manifest', manifestFile, { fifo: true });
    if (typeof v.out !== 'string' || v.out === '') throw new UsageError('batch: --out PREDICTIONS.jsonl is required');
    const out = v.out;
    requireOutputFile('batch', '--out', out, { makesFolder: true });
    const imageRoot = v['image-root'];
    if (imageRoot !== undefined) requireFolder('batch', '--image-root', imageRoot);
    const format = formatArg(v.format);
    const files = modelFiles(v);
    const maxTokens = intArg(v['max-tokens'], '--max-tokens', 1, 4096) ?? DEFAULT_FINDINGS_MAX_TOKENS;
    const concurrency = intArg(v.concurrency, '--concurrency', 1, 256) ?? 4;
    const threads = intArg(v.threads, '--threads', 1, 1024);
    const devices = devicesArg(v);
    const shard = shardArg(v.shard);
    if (v.quiet && v['json-progress']) throw new UsageError('batch: give --quiet or --json-progress, not both');
    const mode: ProgressMode = v.quiet ? 'quiet' : v['json-progress'] ? 'json' : process.stderr.isTTY ? 'tty' : 'log';
    const progress = new Progress(mode, io.err, process.stderr.columns ?? 80);
    const kvType = v['kv-type'] ?? 'auto';
    if (kvType !== 'auto' && kvType !== 'f16' && kvType !== 'f32' && kvType !== 'q8_0') throw new UsageError(`batch: --kv-type must be one of auto, f16, f32, q8_0, got '${String(kvType)}'`);
    const highBitDepth = v['high-bit-depth'] ?? 'msb';
    if (highBitDepth !== 'msb' && highBitDepth !== 'minmax' && highBitDepth !== 'pil') {
      throw new UsageError(`batch: --high-bit-depth must be one of msb, minmax, pil, got '${String(highBitDepth)}'`);
    }
    const params: RunParams = {
      max_tokens: maxTokens, dicom_window: v['dicom-window'] === true, skip_lateral: v['skip-lateral'] === true, high_bit_depth: highBitDepth, kv_type: kvType,
    };
    const settings: StudySettings = { maxTokens, dicomWindow: params.dicom_window, skipLateral: params.skip_lateral, highBitDepth: highBitDepth as HighBitDepthMode };

    // a shard holds its own studies only (the manifest's other studies are checked, and their ids kept for duplicates)
    const { studies } = readManifest(manifestFile, {
      ...(format ? { format } : {}), ...(typeof imageRoot === 'string' ? { imageRoot } : {}), mimicTestFilter: v['mimic-test-filter'] === true,
      ...(shard ? { keep: (id: string) => inShard(id, shard) } : {}),
    });

    // SIGTERM (Slurm / Kubernetes stopping the job) stops as cleanly as SIGINT
    const term = new AbortController();
    const onTerm = () => term.abort(new LlavaRadError('ABORTED', 'terminated'));
    process.on('SIGTERM', onTerm);
    const stop = AbortSignal.any([signal, term.signal]);
    let lock: HeldLock;
    try {
      lock = await acquireLock(out, { signal: stop, onWait: (m) => progress.notice(m) });
    } catch (e) {
      process.off('SIGTERM', onTerm);
      throw e;
    }
    let journal: Journal | null = null;
    let engines: Engine[] = [];
    try {
      const done = new DoneStudies();
      const opened = Journal.open(out, done.summarize);
      journal = opened.journal;
      const { predictions } = opened;
      if (predictions.damaged) progress.notice(`cut off a damaged last line of ${out} (${predictions.damaged.bytes} bytes: ${predictions.damaged.why})`);
      const todo = studies.filter((s) => {
        const r = predictions.latest.get(s.id);
        return r === undefined || (done.failed(r) && v['retry-failed'] === true);
      });
      const hashing = modelIdentity(files);
      hashing.catch(() => {});
      const cpuWorkers = devices.filter((d) => d.backend === 'cpu').length;
      const load: LoadLlavaRadOptions = {
        decoder: files.decoder,
        vision: files.vision,
        ...(kvType !== 'auto' ? { kvCacheType: kvType as KvCacheType } : {}),
        ...(threads !== undefined ? { threads } : cpuWorkers > 1 ? { threads: Math.max(1, Math.floor(defaultThreads() / cpuWorkers)) } : {}),
      };
      const loading = todo.length === 0 || stop.aborted ? Promise.resolve([]) : needsWorkers(devices)
        ? Promise.allSettled(devices.map((device) => spawnWorkerEngine({ script: process.argv[1]!, device, load, slots: concurrency, settings })))
        : Promise.allSettled([openLocalEngine({ ...load, backend: devices[0]!.backend }, concurrency, settings, devices[0]!.name)]);
      const settled = await loading;
      engines = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
      const failedLoad = settled.find((s) => s.status === 'rejected');
      if (failedLoad) throw (failedLoad as PromiseRejectedResult).reason;
      const model = await hashing;
      const key = identityKey({ model, params });
      for (const [id, r] of predictions.latest) {
        if (done.identity(r) !== key) {
          throw new LlavaRadError('MODEL_MISMATCH',
            `${out} holds predictions made with another model or settings (record ${JSON.stringify(id)}: ${done.identity(r)}; this run: ${key}); write to another --out`);
        }
      }

      const inManifest = new Set(studies.map((s) => s.id));
      let foreign = 0;
      for (const id of predictions.latest.keys()) if (!inManifest.has(id)) foreign++;
      if (foreign) progress.notice(`${out} also holds ${foreign} record(s) of ids not in this ${shard ? 'shard of the ' : ''}manifest (left as they are)`);
      // the last record of each study, updated as records land
      const state = new Map<string, boolean>();
      for (const s of studies) {
        const r = predictions.latest.get(s.id);
        if (r !== undefined) state.set(s.id, !done.failed(r));
      }
      progress.start({ total: studies.length, todo: todo.length, done: studies.length - todo.length, shard: shard ? `${shard.index}/${shard.count}` : null, devices: engines.length ? engines.map((e) => e.device) : devices.map((d) => d.name), concurrency, out });
      const summary = await runStudies({
        studies: todo, engines, journal, model, params, signal: stop, verify: lock.verify,
        onRecord: (r) => {
          state.set(r.id, r.error === undefined);
          progress.study(r);
        },
      });

      let withFindings = 0;
      let failed = 0;
      for (const ok of state.values()) ok ? withFindings++ : failed++;
      const notRun = studies.length - state.size;
      const code = signal.aborted ? 130 : term.signal.aborted ? 143 : notRun > 0 ? 1 : failed > 0 ? EXIT_SOME_FAILED : 0;
      const words = `${summary.ok} done, ${summary.failed} failed this run; of ${studies.length} studies ${withFindings} have findings, ${failed} failed${notRun ? `, ${notRun} not run` : ''}`;
      const why = code === 130 || code === 143 ? ` (${code === 130 ? 'interrupted' : 'terminated'}: re-run the same command to resume)`
        : code === 1 ? ` (${summary.enginesLost} worker(s) exited: re-run the same command to resume)` : '';
      progress.end({ ok: summary.ok, failed: summary.failed, total: studies.length, with_findings: withFindings, failed_total: failed, not_run: notRun, exit_code: code }, words + why);
      if (code === 1 && mode === 'quiet') io.err(`llava-rad: batch: ${words}${why}\n`);
      return code;
    } finally {
      process.off('SIGTERM', onTerm);
      await Promise.allSettled(engines.map((e) => e.close()));
      journal?.close();
      lock();
    }
  },
};

/** the engine's default CPU thread count (physical cores allowed, capped by the cgroup quota) */
function defaultThreads(): number {
  try {
    return native().cpuInfo().defaultThreads;
  } catch (e) {
    throw fromNative(e);
  }
}
