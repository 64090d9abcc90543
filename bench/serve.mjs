#!/usr/bin/env node
// node bench/serve.mjs [options]: the overhead of serving (issue #18). The same studies at 1, 4 and 16
// concurrent clients, two ways, on one loaded model:
//
//   direct   each client calls LlavaRad.generateFindings in this process
//   served   each client POSTs the image as multipart to `llava-rad serve`'s /v1/findings (createServer, on
//            127.0.0.1, in this process: the HTTP parsing, multipart, JSON record and the admission are counted)
//
// and reports requests/s and latency p50 / p90 / p99 of each, and served / direct as ratios (rps ratio above 1:
// serving is faster; latency ratio above 1: serving is slower). Studies generate --max-tokens tokens with EOS
// ignored. The modes alternate which runs first from level to level; one untimed warm-up of each first.
//
//   node bench/serve.mjs                              mid q8_0 decoder + ViT-B f16 vision, 2 threads
//   node bench/serve.mjs --clients 1,4 --requests 8   fewer
//   node bench/serve.mjs --decoder D.gguf --vision V.gguf
//
// Models: the decoder from bench/make-model.mjs (bench/.models/); the vision GGUF bench:study makes (run
// `npm run bench:study` once, or pass --vision). Result: one JSON line {kind: 'serve', ...} appended to
// bench/results/serve-<device>.jsonl, and a table.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { MODELS_DIR, SHAPES, TYPES, ensureModel } from './make-model.mjs';
import { cpuId, cpuModel, deviceSlug, gitCommit } from './machine.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const IMAGE = path.join(root, 'test', 'fixtures', 'findings', 'radiograph-grey-900x1100.png');
const REASON = 'Shortness of breath.';

/** nearest-rank percentile */
const percentile = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};

/** `requests` calls of `one` from `clients` loops; wall time and each call's latency */
async function drive(one, clients, requests) {
  let next = 0;
  const latencies = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    while (next < requests) {
      next++;
      const t = performance.now();
      await one();
      latencies.push(performance.now() - t);
    }
  }));
  const wall = performance.now() - t0;
  return { requests, wall_ms: wall, rps: (requests / wall) * 1000, p50_ms: percentile(latencies, 50), p90_ms: percentile(latencies, 90), p99_ms: percentile(latencies, 99) };
}

async function main() {
  const { values: v } = parseArgs({
    options: {
      decoder: { type: 'string' }, vision: { type: 'string' }, shape: { type: 'string', default: 'mid' }, type: { type: 'string', default: 'q8_0' },
      threads: { type: 'string', default: String(Math.min(os.cpus().length, 2)) }, clients: { type: 'string', default: '1,4,16' },
      requests: { type: 'string' }, 'max-tokens': { type: 'string', default: '16' }, concurrency: { type: 'string', default: '4' },
      device: { type: 'string' }, note: { type: 'string' }, 'no-write': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (v.help) {
    console.log('usage: node bench/serve.mjs [--decoder F | --shape small|mid|7b --type T] [--vision F] [--threads 2] [--clients 1,4,16]\n' +
      '  [--requests N (default: clients, at least 4)] [--max-tokens 16] [--concurrency 4] [--device SLUG] [--note TEXT] [--no-write]');
    return;
  }
  const int = (k, x = v[k]) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${k} must be a positive whole number, got ${x}`);
    return n;
  };
  const levels = String(v.clients).split(',').map((x) => int('clients', x));
  if (!v.decoder && (!SHAPES[v.shape] || !TYPES.includes(v.type))) throw new Error(`--shape ${Object.keys(SHAPES).join('|')} and --type ${TYPES.join('|')}`);
  const log = (s) => process.stderr.write(s + '\n');
  const decoder = v.decoder ?? await ensureModel(v.shape, v.type, { log });
  const vision = v.vision ?? path.join(MODELS_DIR, `bench-vision-vitb-f16-p${SHAPES[v.shape].nEmbd}.gguf`);
  if (!existsSync(vision)) throw new Error(`${vision} not found: run \`npm run bench:study\` once (it makes it) or pass --vision`);
  const threads = int('threads');
  const maxTokens = int('max-tokens');
  const concurrency = int('concurrency');

  const lib = await import(pathToFileURL(path.join(root, 'dist', 'index.js')).href);
  const image = readFileSync(IMAGE);
  const model = await lib.loadLlavaRad({ decoder, vision, threads, parallel: concurrency, contextSize: 2048 });
  const identity = { decoder: { file: path.basename(decoder), bytes: 0, sha256: 'bench' }, vision: { file: path.basename(vision), bytes: 0, sha256: 'bench' } };
  // no timeout: on a busy machine a deep queue may wait for minutes, and every request must be answered
  const server = await lib.createServer({ model, identity, concurrency, queue: 256, maxTokens, timeoutMs: 86_400_000 });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${server.app.server.address().port}/v1/findings`;

  const direct = async () => {
    const r = await model.generateFindings(image, REASON, { maxTokens, ignoreEos: true });
    if (r.tokens.length !== maxTokens) throw new Error(`direct: ${r.tokens.length} tokens, wanted ${maxTokens}`);
  };
  // the multipart body, encoded once; sent with node:http, which (unlike fetch) has no 300 s limit on waiting
  // for the answer's headers: a deep queue on a busy machine may wait longer than that
  const encoded = new Request(url, { method: 'POST', body: (() => {
    const fd = new FormData();
    fd.append('image', new Blob([image]), 'radiograph.png');
    fd.append('reason', REASON);
    fd.append('ignore_eos', 'true');
    return fd;
  })() });
  const body = Buffer.from(await encoded.arrayBuffer());
  const agent = new http.Agent({ keepAlive: true });
  const served = () => new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': encoded.headers.get('content-type'), 'content-length': body.length } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const r = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (res.statusCode !== 200 || r.tokens.length !== maxTokens) reject(new Error(`served: HTTP ${res.statusCode} ${JSON.stringify(r).slice(0, 200)}`));
        else resolve();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
  await direct();
  await served();

  const runs = [];
  for (const [i, clients] of levels.entries()) {
    const requests = v.requests ? int('requests') : Math.max(4, clients);
    log(`serve bench: ${clients} clients, ${requests} requests each way, ${maxTokens} tokens, concurrency ${concurrency}, ${threads} threads`);
    const order = i % 2 === 0 ? ['direct', 'served'] : ['served', 'direct'];
    const r = { clients, order };
    for (const mode of order) r[mode] = await drive(mode === 'direct' ? direct : served, clients, requests);
    r.rps_ratio = r.served.rps / r.direct.rps;
    r.p50_ratio = r.served.p50_ms / r.direct.p50_ms;
    log(JSON.stringify(r));
    runs.push(r);
  }
  agent.destroy();
  await server.app.close();
  await model.dispose();

  const device = v.device ?? deviceSlug();
  const record = {
    kind: 'serve', date: new Date().toISOString(), commit: gitCommit(), device, cpu: cpuModel(), cpuid: cpuId(), cpus: os.cpus().length,
    decoder: path.basename(decoder), vision: path.basename(vision), threads, concurrency, max_tokens: maxTokens,
    load_avg_start: os.loadavg()[0], runs, ...(v.note ? { note: v.note } : {}),
  };
  if (!v['no-write']) {
    mkdirSync(path.join(here, 'results'), { recursive: true });
    appendFileSync(path.join(here, 'results', `serve-${device}.jsonl`), JSON.stringify(record) + '\n');
  }
  const f = (x, d = 0) => x.toFixed(d);
  console.log(`\n${path.basename(decoder)} + ${path.basename(vision)}, ${threads} threads, concurrency ${concurrency}, ${maxTokens} tokens per study (${device}, ${record.cpu})`);
  console.log('| clients | direct req/s | served req/s | ratio | direct p50 / p90 / p99 ms | served p50 / p90 / p99 ms | p50 ratio |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of runs) {
    const d = r.direct, s = r.served;
    console.log(`| ${r.clients} | ${f(d.rps, 3)} | ${f(s.rps, 3)} | ${f(r.rps_ratio, 3)} | ${f(d.p50_ms)} / ${f(d.p90_ms)} / ${f(d.p99_ms)} | ` +
      `${f(s.p50_ms)} / ${f(s.p90_ms)} / ${f(s.p99_ms)} | ${f(r.p50_ratio, 3)} |`);
  }
}

main().catch((e) => {
  process.stderr.write(`bench/serve: ${e?.stack ?? e}\n`);
  process.exit(1);
});
