// `llava-rad pull-eval` against a local fake Hugging Face (node:http on 127.0.0.1; nothing here touches the
// network): StanfordAIMI/RRG_scorers at the pinned commit serves the tiny CheXbert checkpoint
// (test/fixtures/chexbert/chexbert-tiny.pth, 4 attention heads) and a stand-in radgraph.tar.gz as LFS files
// (a 302 to /blobs/<sha256>, Range support), google-bert/bert-base-uncased serves the real vocab.txt (not LFS:
// no sha256 in the listing, so the pinned sha256 is what checks it), and GREEN a few files. Knobs: cut a
// connection once, lie about an LFS sha256, change a file's bytes, gate a repository.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sendBlob } from './helpers/range-send.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCliInProcess } from './helpers/cli-in-process.js';
import { isLlavaRadError } from '../lib/errors.js';
import { openCheckpoint } from '../lib/convert/checkpoint.js';
import { convertLlama } from '../lib/convert/convert-llama.js';
import { loadModel } from '../lib/index.js';
import {
  BERT_BASE_UNCASED_REPO, BERT_BASE_UNCASED_REVISION, GREEN_REPO, GREEN_REVISION, pullEval, RRG_SCORERS_REPO, RRG_SCORERS_REVISION, type PullEvalOptions,
} from '../lib/pull/eval-models.js';
import { BERT_BASE_UNCASED_VOCAB_SHA256, bertBaseUncasedVocabText } from './fixtures/wordpiece/vocab.js';

const FIXTURE = new URL('./fixtures/chexbert/', import.meta.url).pathname;
const golden = JSON.parse(readFileSync(path.join(FIXTURE, 'goldens.json'), 'utf8')) as { hparams: { heads: number }; cases: { text: string }[] };
const HEADS = golden.hparams.heads;
for (const k of ['HF_TOKEN', 'HF_ENDPOINT', 'LLAVA_RAD_HOME', 'LLAVA_RAD_CHEXBERT']) delete process.env[k];

interface Blob { name: string; data: Buffer; sha256: string; lfs: boolean }
const hub = {
  repos: new Map<string, { commit: string; files: Map<string, Blob> }>(),
  blobs: new Map<string, Blob>(),
  log: [] as { path: string; range: string | undefined; auth: string | undefined }[],
  cutOnce: new Map<string, number>(),
  shaLie: new Set<string>(),
  gated: undefined as { repo: string; token: string } | undefined,
  endpoint: '',
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function put(repo: string, name: string, data: Buffer): void {
  const b = { name, data, sha256: sha(data), lfs: !/\.(txt|json|md)$/.test(name) };
  hub.repos.get(repo)!.files.set(name, b);
  hub.blobs.set(b.sha256, b);
}

function send(req: http.IncomingMessage, res: http.ServerResponse, b: Blob): void {
  sendBlob(req, res, b, hub.cutOnce);
}

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  hub.log.push({ path: url.pathname, range: req.headers.range, auth: req.headers.authorization });
  const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
  if (api) {
    const repo = hub.repos.get(api[1]!);
    if (!repo) return void res.writeHead(404).end();
    const siblings = [...repo.files.values()].map((b) => ({
      rfilename: b.name, size: b.data.length,
      ...(b.lfs ? { lfs: { sha256: hub.shaLie.has(`${api[1]}/${b.name}`) ? 'ab'.repeat(32) : b.sha256, size: b.data.length } } : {}),
    }));
    return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: api[1], sha: repo.commit, siblings }));
  }
  const blob = /^\/blobs\/([0-9a-f]{64})$/.exec(url.pathname);
  if (blob) return void (hub.blobs.has(blob[1]!) ? send(req, res, hub.blobs.get(blob[1]!)!) : res.writeHead(404).end());
  const r = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  const repo = r ? hub.repos.get(r[1]!) : undefined;
  const b = repo?.files.get(decodeURIComponent(r![3]!));
  if (!r || !repo || !b || r[2] !== repo.commit) return void res.writeHead(404).end();
  if (hub.gated?.repo === r[1]) {
    if (!req.headers.authorization) return void res.writeHead(401).end();
    if (req.headers.authorization !== `Bearer ${hub.gated.token}`) return void res.writeHead(403).end();
  }
  if (b.lfs) return void res.writeHead(302, { location: `/blobs/${b.sha256}` }).end();
  send(req, res, b);
}

const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-pull-eval-'));
let n = 0;
const newHome = () => path.join(tmp, `home-${++n}`);
const lib = (home: string, o: PullEvalOptions = {}) => pullEval({ home, endpoint: hub.endpoint, retryDelayMs: 0, headCount: HEADS, ...o });
const evalDir = (home: string) => path.join(home, 'eval');
const files = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(path.join(dir, f)).isFile()).sort() : []);
const VOCAB = Buffer.from(bertBaseUncasedVocabText());
const RADGRAPH = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 37 + 11) & 255));

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

const cli = runCliInProcess;

/** GREEN's stand-in: the tiny release's Vicuna (a plain LLaMA) as one model.safetensors, in its own dtypes */
const TINY_LLAMA = new URL('./fixtures/release/vicuna/', import.meta.url).pathname;
async function safetensorsOf(folder: string): Promise<Buffer> {
  const ck = await openCheckpoint(path.join(folder, 'pytorch_model.bin.index.json'));
  try {
    const header: Record<string, unknown> = {};
    const blobs: Buffer[] = [];
    let at = 0;
    for (const [name, t] of ck.tensors) {
      const raw = await t.readRaw();
      header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + raw.length] };
      blobs.push(raw);
      at += raw.length;
    }
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    return Buffer.concat([len, json, ...blobs]);
  } finally {
    await ck.close();
  }
}

let server: http.Server;
beforeAll(async () => {
  hub.repos.set(RRG_SCORERS_REPO, { commit: RRG_SCORERS_REVISION, files: new Map() });
  hub.repos.set(BERT_BASE_UNCASED_REPO, { commit: BERT_BASE_UNCASED_REVISION, files: new Map() });
  hub.repos.set(GREEN_REPO, { commit: GREEN_REVISION, files: new Map() });
  put(RRG_SCORERS_REPO, 'chexbert.pth', readFileSync(path.join(FIXTURE, 'chexbert-tiny.pth')));
  put(RRG_SCORERS_REPO, 'radgraph.tar.gz', RADGRAPH);
  put(RRG_SCORERS_REPO, 'README.md', Buffer.from('# RRG scorers\n'));
  put(BERT_BASE_UNCASED_REPO, 'vocab.txt', VOCAB);
  put(BERT_BASE_UNCASED_REPO, 'config.json', Buffer.from('{}'));
  for (const f of ['config.json', 'tokenizer.model', 'tokenizer_config.json']) put(GREEN_REPO, f, readFileSync(path.join(TINY_LLAMA, f)));
  put(GREEN_REPO, 'model.safetensors', await safetensorsOf(TINY_LLAMA));
  put(GREEN_REPO, 'pytorch_model.bin', Buffer.from('pickle stand-in'));
  put(GREEN_REPO, 'README.md', Buffer.from('# GREEN\n'));
  server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hub.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

beforeEach(() => {
  hub.log = [];
  hub.cutOnce.clear();
  hub.shaLie.clear();
  hub.gated = undefined;
  put(BERT_BASE_UNCASED_REPO, 'vocab.txt', VOCAB);
});

describe('pull-eval (fake Hugging Face on 127.0.0.1)', () => {
  it('downloads at the pinned commits, converts CheXbert to <home>/eval/chexbert-f32.gguf, resumes a cut download; eval finds the GGUF with no --chexbert', async () => {
    expect(sha(VOCAB)).toBe(BERT_BASE_UNCASED_VOCAB_SHA256);
    const home = newHome();
    hub.cutOnce.set('chexbert.pth', 1_000_000);
    const r = await lib(home);
    expect(r.chexbert).toBe(path.join(evalDir(home), 'chexbert-f32.gguf'));
    expect(r.chexbertAlreadyPresent).toBe(false);
    expect(files(evalDir(home))).toEqual([
      'StanfordAIMI--RRG_scorers/chexbert.pth', 'StanfordAIMI--RRG_scorers/radgraph.tar.gz', 'chexbert-f32.gguf',
      'google-bert--bert-base-uncased/vocab.txt', 'pull-eval.json',
    ].sort());
    expect(readFileSync(r.vocab)).toEqual(VOCAB);
    expect(readFileSync(r.radgraph)).toEqual(RADGRAPH);
    // the pinned commits, and the cut connection resumed with a Range request
    const resolves = hub.log.filter((l) => l.path.includes('/resolve/')).map((l) => l.path);
    expect(resolves.every((p) => p.includes(`/resolve/${RRG_SCORERS_REVISION}/`) || p.includes(`/resolve/${BERT_BASE_UNCASED_REVISION}/`))).toBe(true);
    expect(resolves.some((p) => p.endsWith('/README.md'))).toBe(false);
    expect(hub.log.some((l) => l.path.startsWith('/blobs/') && l.range === 'bytes=1000000-')).toBe(true);
    const rec = JSON.parse(readFileSync(path.join(evalDir(home), 'pull-eval.json'), 'utf8')) as { files: { path: string; commit: string; sha256: string }[] };
    expect(rec.files.find((f) => f.path === 'vocab.txt')).toMatchObject({ commit: BERT_BASE_UNCASED_REVISION, sha256: BERT_BASE_UNCASED_VOCAB_SHA256 });
    expect(rec.files.find((f) => f.path === 'chexbert.pth')).toMatchObject({ commit: RRG_SCORERS_REVISION });

    // eval --metrics chexbert with no --chexbert and no LLAVA_RAD_CHEXBERT finds it through LLAVA_RAD_HOME
    const preds = path.join(tmp, 'preds.jsonl');
    writeFileSync(preds, golden.cases.slice(0, 6).map((c, i) => JSON.stringify({ id: `s${i}`, reference: c.text, prediction: golden.cases[(i + 1) % 6]!.text })).join('\n') + '\n');
    const e = await cli(['eval', preds, '--metrics', 'chexbert', '--json', '--bootstrap', '10', '--threads', '2'], { LLAVA_RAD_HOME: home, LLAVA_RAD_CHEXBERT: undefined });
    expect(e.code, e.err).toBe(0);
    const j = JSON.parse(e.out) as { metrics: Record<string, unknown> };
    expect(j.metrics.chexbert).toBeTruthy();

    // a second run: nothing to fetch, no request at all
    hub.log = [];
    const again = await lib(home);
    expect(again.chexbertAlreadyPresent).toBe(true);
    expect(hub.log).toEqual([]);
  });

  it('a sha256 mismatch is refused (DOWNLOAD) and leaves nothing half-made: the pinned vocab.txt sha256, and the Hub LFS sha256', async () => {
    const home = newHome();
    put(BERT_BASE_UNCASED_REPO, 'vocab.txt', Buffer.concat([VOCAB.subarray(0, VOCAB.length - 2), Buffer.from('x\n')]));
    const e = await rejection(lib(home));
    expect(isLlavaRadError(e) && e.code).toBe('DOWNLOAD');
    expect(e.message).toMatch(/vocab\.txt: sha256 [0-9a-f]{64}, Hugging Face lists 07eced37.*run pull-eval again/);
    expect(files(evalDir(home))).toEqual([]);

    put(BERT_BASE_UNCASED_REPO, 'vocab.txt', VOCAB);
    hub.shaLie.add(`${RRG_SCORERS_REPO}/chexbert.pth`);
    const e2 = await rejection(lib(home));
    expect(isLlavaRadError(e2) && e2.code).toBe('DOWNLOAD');
    expect(e2.message).toMatch(/chexbert\.pth: sha256/);
    expect(files(evalDir(home))).toEqual(['google-bert--bert-base-uncased/vocab.txt']); // no .pth, no .part, no GGUF
  });

  it('an interrupted run leaves chexbert.pth.part; the next run resumes it with Range', async () => {
    const home = newHome();
    hub.cutOnce.set('chexbert.pth', 700_000);
    const e = await rejection(lib(home, { retries: 0 }));
    expect(isLlavaRadError(e) && e.code).toBe('DOWNLOAD');
    const part = path.join(evalDir(home), 'StanfordAIMI--RRG_scorers', 'chexbert.pth.part');
    expect(statSync(part).size).toBe(700_000);
    expect(existsSync(path.join(evalDir(home), 'chexbert-f32.gguf'))).toBe(false);
    hub.log = [];
    const r = await lib(home);
    expect(r.files.find((f) => f.path === 'chexbert.pth')).toMatchObject({ resumedFrom: 700_000, downloaded: true });
    expect(hub.log.some((l) => l.range === 'bytes=700000-')).toBe(true);
    expect(existsSync(part)).toBe(false);
    expect(existsSync(r.chexbert)).toBe(true);
  });

  it('a gated repository: 401 without HF_TOKEN and 403 with a wrong one are ACCESS_DENIED', async () => {
    const home = newHome();
    hub.gated = { repo: RRG_SCORERS_REPO, token: 'hf_good' };
    const e = await rejection(lib(home));
    expect(isLlavaRadError(e) && e.code).toBe('ACCESS_DENIED');
    expect(e.message).toMatch(/HTTP 401.*StanfordAIMI\/RRG_scorers.*set HF_TOKEN/);
    const e2 = await rejection(lib(home, { token: 'hf_bad' }));
    expect(isLlavaRadError(e2) && e2.code).toBe('ACCESS_DENIED');
    expect(e2.message).toMatch(/HTTP 403.*HF_TOKEN was sent/);
    const r = await lib(home, { token: 'hf_good' });
    expect(existsSync(r.chexbert)).toBe(true);
    // the token went to the hub for the gated files
    expect(hub.log.some((l) => l.auth === 'Bearer hf_good')).toBe(true);
  });

  it('the CLI: --json --type f16 --green (GREEN downloaded, docs and pickles skipped, converted); usage errors', async () => {
    const home = newHome();
    const env = { LLAVA_RAD_HOME: home, HF_ENDPOINT: hub.endpoint, HF_TOKEN: undefined };
    const r = await cli(['pull-eval', '--type', 'f16', '--green', '--heads', String(HEADS), '--json'], env);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe('');
    const j = JSON.parse(r.out) as Record<string, unknown>;
    expect(j).toMatchObject({ chexbert: path.join(evalDir(home), 'chexbert-f16.gguf'), type: 'f16', chexbert_already_present: false, green: path.join(evalDir(home), 'StanfordAIMI--GREEN-radllama2-7b') });
    expect(files(j.green as string)).toEqual(['config.json', 'model.safetensors', 'tokenizer.model', 'tokenizer_config.json']);
    expect(existsSync(j.chexbert as string)).toBe(true);
    // GREEN's GGUF: the model convert-llama makes of the same weights (same logits on a prompt)
    expect(j).toMatchObject({ green_gguf: path.join(evalDir(home), 'green-f16.gguf'), green_already_present: false });
    const direct = path.join(tmp, 'green-direct-f16.gguf');
    await convertLlama({ model: TINY_LLAMA, out: direct, type: 'f16' });
    const logits: Float32Array[] = [];
    for (const f of [j.green_gguf as string, direct]) {
      const m = await loadModel({ model: f });
      logits.push(await m.evaluate([1, 319, 13563, 1546], { addBos: false }));
      await m.dispose();
    }
    expect(Array.from(logits[0]!)).toEqual(Array.from(logits[1]!));
    const again = await cli(['pull-eval', '--type', 'f16', '--green', '--json'], env);
    expect(JSON.parse(again.out)).toMatchObject({ green_already_present: true, files: [] });

    const text = await cli(['pull-eval', '--type', 'f16', '-q'], env);
    expect(text.code, text.err).toBe(0);
    expect(text.out).toMatch(/CheXbert already converted: .*chexbert-f16\.gguf/);
    expect(text.out).toMatch(/RadGraph archive kept: .*radgraph\.tar\.gz \(for RadGraph F1: llava-rad convert-radgraph/);

    expect((await cli(['pull-eval', '--type', 'q4_k_m'], env)).code).toBe(2);
    expect((await cli(['pull-eval', '--green', '--green-type', 'q3'], env)).code).toBe(2);
    expect((await cli(['pull-eval', '--green-type', 'f16'], env)).code).toBe(2);
    const help = await cli(['pull-eval', '--help'], env);
    expect(help.out).toContain(RRG_SCORERS_REVISION.slice(0, 12));
  });
});
