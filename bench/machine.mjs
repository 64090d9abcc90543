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

const slug = (s) => s.toLowerCase().replace(/\(r\)|\(tm\)|cpu|processor|@.*$/g, ' ').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

/** e.g. "amd-epyc-2c": the CPU model and the core count */
export function deviceSlug() {
  return `${slug(cpuModel())}-${nCpu}c`;
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
