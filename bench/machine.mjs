// What the bench scripts record about the machine and the checkout: the CPU model, the device slug the
// results files are named after (bench/results/<device>.jsonl), and the git commit (+dirty when the paths
// that decide the figures have uncommitted changes).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function cpuModel() {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    /* not Linux */
  }
  return os.cpus()[0]?.model ?? 'unknown-cpu';
}

export const nCpu = os.availableParallelism?.() ?? os.cpus().length;

// Cloud VMs often hide the model name ("AMD EPYC" on both Zen 4 and Zen 5 machines): the family and model
// numbers from cpuid tell the microarchitecture. Only the generations these machines have shown or are
// likely to show are named; anything else stays unnamed (null), never guessed.
const MICROARCH = [
  { vendor: 'AuthenticAMD', family: 25, models: [[0x10, 0x1f], [0x60, 0x7f], [0xa0, 0xaf]], name: 'zen4' },
  { vendor: 'AuthenticAMD', family: 25, models: [[0x00, 0x0f], [0x20, 0x5f]], name: 'zen3' },
  { vendor: 'AuthenticAMD', family: 26, models: [[0x00, 0xff]], name: 'zen5' },
  { vendor: 'GenuineIntel', family: 6, models: [[0x8f, 0x8f]], name: 'sapphire-rapids' },
  { vendor: 'GenuineIntel', family: 6, models: [[0xcf, 0xcf]], name: 'emerald-rapids' },
  { vendor: 'GenuineIntel', family: 6, models: [[0xad, 0xae]], name: 'granite-rapids' },
  { vendor: 'GenuineIntel', family: 6, models: [[0x6a, 0x6a], [0x6c, 0x6c]], name: 'ice-lake-sp' },
  { vendor: 'GenuineIntel', family: 6, models: [[0x55, 0x55]], name: 'skylake-sp' },
];

// the instruction-set flags that decide which kernels run (ggml's variants, our VNNI kernels, AMX)
const KEY_FLAGS = ['avx2', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'avx_vnni', 'amx_tile', 'amx_int8', 'asimddp', 'i8mm', 'sve', 'sve2'];

/** vendor, family, model, stepping and the key flags from /proc/cpuinfo (null where not Linux) */
export function cpuId() {
  try {
    return parseCpuInfo(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return null;
  }
}

/** the same from the text of /proc/cpuinfo (its first processor) */
export function parseCpuInfo(text) {
  const field = (name) => new RegExp(`^${name}\\s*:\\s*(.+)$`, 'm').exec(text)?.[1].trim();
  const num = (name) => (field(name) === undefined ? null : Number(field(name)));
  const flags = new Set((field('flags') ?? field('Features') ?? '').split(/\s+/));
  const id = { vendor: field('vendor_id') ?? null, family: num('cpu family'), model: num('model'), stepping: num('stepping'),
    flags: KEY_FLAGS.filter((f) => flags.has(f)) };
  const arch = MICROARCH.find((m) => m.vendor === id.vendor && m.family === id.family && m.models.some(([lo, hi]) => id.model >= lo && id.model <= hi));
  return { ...id, microarch: arch?.name ?? null };
}

const slug = (s) => s.toLowerCase().replace(/\(r\)|\(tm\)|cpu|processor|@.*$/g, ' ').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

/**
 * e.g. "amd-epyc-zen5-2c": the CPU model, its microarchitecture where the model name does not already tell it
 * (AMD's EPYC VMs say only "AMD EPYC"), and the core count. Records before this field existed are in
 * "amd-epyc-2c" files: those were Zen 4 machines (docs/benchmarks.md).
 */
export function deviceSlug() {
  return slugFor(cpuModel(), cpuId(), nCpu);
}

/** the slug for a model name, a cpuId() result (or null) and a core count */
export function slugFor(modelName, id, cores) {
  const name = slug(modelName);
  const generic = /^amd-epyc$|^amd-eng-sample|^intel-xeon$|^intel-xeon-processor$/.test(name);
  return `${name}${generic && id?.microarch ? `-${id.microarch}` : ''}-${cores}c`;
}

/** the short commit, "+dirty" when `paths` have uncommitted changes */
export function gitCommit(paths = ['native', 'lib', 'CMakeLists.txt']) {
  try {
    const c = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', ...paths], { cwd: root, encoding: 'utf8' }).trim();
    return dirty ? `${c}+dirty` : c;
  } catch {
    return 'unknown';
  }
}
