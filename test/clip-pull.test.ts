// pull({ clip: true }) against a minimal fake Hugging Face on 127.0.0.1 (the API listing and /resolve/ only; the full
// hub with its CDN, cuts and lies is test/pull.test.ts's): it also fetches the PubMedBERT repository's vocab.txt and
// config.json, writes the CLIP GGUF beside the others and names it in llava-rad.json; a folder pulled without it is
// converted again. The served files are the committed tiny release (test/fixtures/release/).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadClip } from '../lib/clip/model.js';
import { LLAVA_RAD_REPO, PUBMEDBERT_REPO, PUBMEDBERT_REVISION, VICUNA_REPO, pull } from '../lib/pull/pull.js';
import { sendRange } from './helpers/range-send.js';

const REL = new URL('./fixtures/release/', import.meta.url).pathname;
const repos = new Map<string, { commit: string; files: Map<string, Buffer> }>();
const requested: string[] = [];
let server: http.Server;
let endpoint = '';
const tmp = mkdtempSync(path.join(tmpdir(), 'clip-pull-'));

beforeAll(async () => {
  for (const [repo, dir] of [[VICUNA_REPO, 'vicuna'], [LLAVA_RAD_REPO, 'llava-rad'], [PUBMEDBERT_REPO, 'biomedbert']] as const) {
    const files = new Map(readdirSync(path.join(REL, dir)).map((f) => [f, readFileSync(path.join(REL, dir, f))] as const));
    repos.set(repo, { commit: repo === PUBMEDBERT_REPO ? PUBMEDBERT_REVISION : randomBytes(20).toString('hex'), files });
  }
  server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requested.push(url.pathname);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (api) {
      const r = repos.get(api[1]!);
      if (!r) return void res.writeHead(404).end();
      const siblings = [...r.files].map(([name, data]) => ({ rfilename: name, size: data.length,
        ...(/\.(bin|pt|model)$/.test(name) ? { lfs: { sha256: createHash('sha256').update(data).digest('hex'), size: data.length } } : {}) }));
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: api[1], sha: r.commit, siblings }));
    }
    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const data = m ? repos.get(m[1]!)?.files.get(decodeURIComponent(m[3]!)) : undefined;
    if (!data) return void res.writeHead(404).end();
    sendRange(req, res, data);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(tmp, { recursive: true, force: true });
});

it('pull without clip, then with it: the PubMedBERT files are fetched, the CLIP GGUF written and usable', async () => {
  const dir = path.join(tmp, 'model');
  const base = { type: 'q8_0' as const, dir, home: path.join(tmp, 'home'), endpoint, acceptLicense: true, retries: 0 };
  const first = await pull(base);
  expect(first.clip).toBeUndefined();
  expect(requested.some((p) => p.includes('PubMedBERT'))).toBe(false);
  expect(existsSync(path.join(dir, 'llava-rad-clip-text-f32.gguf'))).toBe(false);

  const second = await pull({ ...base, clip: true });
  expect(second.alreadyPresent, 'a folder without the CLIP GGUF is converted again').toBe(false);
  expect(requested.filter((p) => p.startsWith(`/${PUBMEDBERT_REPO}/resolve/`)).map((p) => p.split('/').pop()).sort()).toEqual(['config.json', 'vocab.txt']);
  expect(second.clip).toBe(path.join(dir, 'llava-rad-clip-text-f32.gguf'));
  expect((JSON.parse(readFileSync(path.join(dir, 'llava-rad.json'), 'utf8')) as { clip: string }).clip).toBe('llava-rad-clip-text-f32.gguf');
  const record = JSON.parse(readFileSync(path.join(dir, 'pull.json'), 'utf8')) as { repositories: { repo: string; files: { path: string }[] }[] };
  expect(record.repositories.find((r) => r.repo === PUBMEDBERT_REPO)?.files.map((f) => f.path).sort()).toEqual(['config.json', 'vocab.txt']);
  expect(existsSync(second.sources.pubmedbert!), 'downloads deleted').toBe(false);

  const third = await pull({ ...base, clip: true });
  expect(third.alreadyPresent).toBe(true);
  expect(third.clip).toBe(second.clip);

  const clip = await loadClip({ model: dir, threads: 1 });
  try {
    const [e] = await clip.embedTexts(['No pleural effusion.']);
    expect(e!.length).toBe(clip.dim);
  } finally {
    await clip.dispose();
  }
}, 120_000);
