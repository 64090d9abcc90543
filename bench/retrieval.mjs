// Exact retrieval at scale (issue #17 item 5): index build and search time and peak memory for N random
// L2-normalized float32 vectors (default 10k, 100k, 1M of 512 floats), side by side with a brute-force numpy
// baseline on the same file and the same queries, in the same run; ratios are ours / numpy's (> 1: slower).
//   node bench/retrieval.mjs [--sizes 10000,100000,1000000] [--dim 512] [--queries 16] [--k 10] [--dir /tmp] [--no-write]
// Needs dist/ (npx tsup) and /usr/bin/python3 with numpy (Debian's python3-numpy). Each measurement runs in a
// child process of its own, so its peak RSS (getrusage maxrss) is its own. One JSON line per size goes to
// bench/results/retrieval-<device>.jsonl.
//   ours:  build = writeIndexFile streaming generated rows (metadata, vectors, two sha256, fsync, rename);
//          open = header + ids + the sha256 pass over the vectors (open --no-verify: without it);
//          search = searchVectors (positional reads through a 4 MiB buffer, float64 dot products, a heap per query)
//   numpy: build = np.save of the matrix already in memory (fsync'd); open = np.fromfile of our file's vector block;
//          search = X @ q in float32 (BLAS), then argpartition + a stable sort by (-score, position)
// Single-query times are the median of 3 runs (the file in the page cache after the first open).
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuId, cpuModel, deviceSlug, gitCommit, nCpu } from './machine.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');

const { values: opt, positionals } = parseArgs({ allowPositionals: true, options: {
  sizes: { type: 'string', default: '10000,100000,1000000' }, dim: { type: 'string', default: '512' },
  queries: { type: 'string', default: '16' }, k: { type: 'string', default: '10' }, dir: { type: 'string', default: '/tmp' },
  'no-write': { type: 'boolean', default: false },
} });

/** xorshift32: the same vectors on every machine */
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296 - 0.5;
  };
}

function unitRows(next, n, dim) {
  const out = new Float32Array(n * dim);
  for (let r = 0; r < n; r++) {
    let sq = 0;
    const row = new Float64Array(dim);
    for (let j = 0; j < dim; j++) sq += (row[j] = next()) ** 2;
    const norm = Math.sqrt(sq);
    for (let j = 0; j < dim; j++) out[r * dim + j] = row[j] / norm;
  }
  return out;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const secs = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
const maxRssMB = () => process.resourceUsage().maxRSS / 1024;

async function child(what, file, n, dim, qfile, k) {
  const lib = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
  if (what === 'build') {
    const ids = Array.from({ length: n }, (_, i) => `v${String(i).padStart(7, '0')}`);
    const kinds = ids.map((_, i) => (i % 2 ? 'text' : 'image'));
    const next = rng(12345);
    let gen = 0;
    const t0 = process.hrtime.bigint();
    lib.writeIndexFile(file, { modelId: 'bench', dim, ids, kinds, vectors: (put) => {
      for (let r = 0; r < n; r += 4096) {
        const g0 = process.hrtime.bigint();
        const rows = unitRows(next, Math.min(4096, n - r), dim);
        gen += secs(g0);
        put(rows);
      }
    } });
    // the time spent generating the random rows is not the index's
    return { build_s: secs(t0) - gen, rss_mb: maxRssMB() };
  }
  const queries = JSON.parse((await import('node:fs')).readFileSync(qfile, 'utf8')).map((q) => Float32Array.from(q));
  let t0 = process.hrtime.bigint();
  lib.RetrievalIndex.open(file, { verify: false }).close();
  const openNoVerify = secs(t0);
  t0 = process.hrtime.bigint();
  const index = lib.RetrievalIndex.open(file);
  const open = secs(t0);
  const one = [];
  for (let i = 0; i < 3; i++) {
    t0 = process.hrtime.bigint();
    lib.searchVectors(index, [queries[0]], { k });
    one.push(secs(t0));
  }
  t0 = process.hrtime.bigint();
  const hits = lib.searchVectors(index, queries, { k });
  const batch = secs(t0);
  index.close();
  return { open_s: open, open_noverify_s: openNoVerify, search1_s: median(one), search_batch_s: batch, rss_mb: maxRssMB(), top: hits.map((h) => h.map((x) => x.index)) };
}

const NUMPY = `
import json, os, resource, struct, sys, time
import numpy as np
f, qfile, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(f, 'rb') as fh:
    head = fh.read(128)
dim, count = struct.unpack_from('<IQ', head, 12)
voff = struct.unpack_from('<Q', head, 48)[0]
t0 = time.perf_counter()
X = np.fromfile(f, dtype='<f4', offset=voff).reshape(count, dim)
load = time.perf_counter() - t0
Q = np.asarray(json.load(open(qfile)), dtype=np.float32)
def topk(s):
    part = np.argpartition(-s, k - 1)[:k] if len(s) > k else np.arange(len(s))
    return part[np.lexsort((part, -s[part]))]
one = []
for _ in range(3):
    t0 = time.perf_counter(); topk(X @ Q[0]); one.append(time.perf_counter() - t0)
t0 = time.perf_counter()
S = X @ Q.T
top = [topk(S[:, i]).tolist() for i in range(len(Q))]
batch = time.perf_counter() - t0
out = f + '.npy'
t0 = time.perf_counter()
with open(out, 'wb') as fh:
    np.save(fh, X); fh.flush(); os.fsync(fh.fileno())
build = time.perf_counter() - t0
os.unlink(out)
print(json.dumps({'build_s': build, 'open_s': load, 'search1_s': sorted(one)[1], 'search_batch_s': batch,
                  'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'top': top, 'numpy': np.__version__}))
`;

async function main() {
  const dim = Number(opt.dim);
  const nq = Number(opt.queries);
  const k = Number(opt.k);
  const sizes = opt.sizes.split(',').map(Number);
  const work = mkdtempSync(path.join(opt.dir, 'lr-bench-'));
  const qfile = path.join(work, 'queries.json');
  writeFileSync(qfile, JSON.stringify(Array.from({ length: nq }, (_, i) => Array.from(unitRows(rng(999 + i), 1, dim)))));
  const node = (...args) => JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), 'child', ...args], { encoding: 'utf8', maxBuffer: 1 << 26 }));
  try {
    for (const n of sizes) {
      const file = path.join(work, `n${n}.lrindex`);
      const build = node('build', file, String(n), String(dim), qfile, String(k));
      const ours = node('query', file, String(n), String(dim), qfile, String(k));
      const np = JSON.parse(execFileSync('/usr/bin/python3', ['-c', NUMPY, file, qfile, String(k)], { encoding: 'utf8', maxBuffer: 1 << 26 }));
      const same = ours.top.filter((t, i) => JSON.stringify(t) === JSON.stringify(np.top[i])).length;
      const rec = {
        bench: 'retrieval', date: new Date().toISOString(), commit: gitCommit(), cpu: cpuModel(), cpuid: cpuId(), cpus: nCpu, node: process.version, numpy_version: np.numpy,
        loadavg_1m: os.loadavg()[0], n, dim, queries: nq, k,
        ours: { build_s: build.build_s, build_rss_mb: build.rss_mb, open_s: ours.open_s, open_noverify_s: ours.open_noverify_s, search1_s: ours.search1_s, search_batch_s: ours.search_batch_s, rss_mb: ours.rss_mb },
        numpy: { build_s: np.build_s, open_s: np.open_s, search1_s: np.search1_s, search_batch_s: np.search_batch_s, rss_mb: np.rss_mb },
        ratio: { build: build.build_s / np.build_s, open: ours.open_s / np.open_s, search1: ours.search1_s / np.search1_s, search_batch: ours.search_batch_s / np.search_batch_s, rss: ours.rss_mb / np.rss_mb },
        same_topk: `${same}/${nq}`,
      };
      console.log(JSON.stringify(rec));
      if (!opt['no-write']) appendFileSync(path.join(here, 'results', `retrieval-${deviceSlug()}.jsonl`), JSON.stringify(rec) + '\n');
      rmSync(file, { force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (positionals[0] === 'child') {
  const [, what, file, n, dim, qfile, k] = positionals;
  console.log(JSON.stringify(await child(what, file, Number(n), Number(dim), qfile, Number(k))));
} else {
  await main();
}
