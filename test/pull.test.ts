// `llava-rad pull` against a local fake Hugging Face (node:http on 127.0.0.1): the API listing
// (/api/models/{repo}/revision/{rev}?blobs=true with sizes and LFS sha256), /{repo}/resolve/{commit}/{file}
// answering LFS files with a 302 to a second "CDN" server (another origin), Range support, and knobs to cut
// a connection once, lie about a size or a sha256, or gate a repository. The served repositories are the
// committed tiny official-layout release (test/fixtures/release/{vicuna,llava-rad}) plus files pull must
// not fetch. Nothing here touches the network.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sendBlob } from './helpers/range-send.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isLlavaRadError } from '../lib/errors.js';
import { defaultModelFolder, llavaRadHome, modelFolder } from '../lib/pull/home.js';
import { LICENSE_TERMS, licenseAccepted } from '../lib/pull/license.js';
import { downloadNeeds } from '../lib/disk-space.js';
import { pull, type PullOptions } from '../lib/pull/pull.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REL = path.join(root, 'test', 'fixtures', 'release');
const IMAGE = path.join(root, 'test', 'fixtures', 'findings', 'radiograph-grey-900x1100.png');
const VICUNA = 'lmsys/vicuna-7b-v1.5';
const LLAVA = 'microsoft/llava-rad';
for (const k of ['HF_TOKEN', 'HF_ENDPOINT', 'LLAVA_RAD_HOME', 'LLAVA_RAD_MODEL']) delete process.env[k];

// ---------------------------------------------------------------------------------------------
// the fake hub

interface Blob { name: string; data: Buffer; sha256: string; lfs: boolean }
interface Logged { server: 'hf' | 'cdn'; path: string; auth: string | undefined; range: string | undefined }

const hub = {
  repos: new Map<string, { commit: string; files: Map<string, Blob> }>(),
  blobs: new Map<string, Blob>(),
  log: [] as Logged[],
  /** file name -> drop the socket after this many body bytes, once */
  cutOnce: new Map<string, number>(),
  /** "repo/file" -> the size the listing reports */
  sizeLie: new Map<string, number>(),
  /** "repo/file" whose listed sha256 is wrong */
  shaLie: new Set<string>(),
  gated: undefined as { repo: string; token: string } | undefined,
  endpoint: '',
  cdnBase: '',
  reset() {
    this.log = [];
    this.cutOnce.clear();
    this.sizeLie.clear();
    this.shaLie.clear();
    this.gated = undefined;
  },
};

function addRepo(repo: string, dir: string, extra: Record<string, string>): void {
  const files = new Map<string, Blob>();
  const put = (name: string, data: Buffer) => {
    const b = { name, data, sha256: createHash('sha256').update(data).digest('hex'), lfs: /\.(bin|pt|model|safetensors)$/.test(name) };
    files.set(name, b);
    hub.blobs.set(b.sha256, b);
  };
  for (const f of readdirSync(dir)) put(f, readFileSync(path.join(dir, f)));
  for (const [n, t] of Object.entries(extra)) put(n, Buffer.from(t));
  hub.repos.set(repo, { commit: randomBytes(20).toString('hex'), files });
}

function send(req: http.IncomingMessage, res: http.ServerResponse, b: Blob): void {
  sendBlob(req, res, b, hub.cutOnce);
}

function hfHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  hub.log.push({ server: 'hf', path: url.pathname, auth: req.headers.authorization, range: req.headers.range });
  const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
  if (api) {
    const repo = hub.repos.get(api[1]!);
    if (!repo || url.searchParams.get('blobs') !== 'true') return void res.writeHead(404).end();
    const siblings = [...repo.files.values()].map((b) => {
      const key = `${api[1]}/${b.name}`;
      const size = hub.sizeLie.get(key) ?? b.data.length;
      const sha256 = hub.shaLie.has(key) ? 'ab'.repeat(32) : b.sha256;
      return { rfilename: b.name, size, blobId: b.sha256.slice(0, 40), ...(b.lfs ? { lfs: { sha256, size, pointerSize: 134 } } : {}) };
    });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: api[1], sha: repo.commit, siblings }));
    return;
  }
  const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
  const repo = resolve ? hub.repos.get(resolve[1]!) : undefined;
  const b = repo?.files.get(decodeURIComponent(resolve![3]!));
  if (!resolve || !repo || !b || resolve[2] !== repo.commit) return void res.writeHead(404).end();
  if (hub.gated?.repo === resolve[1]) {
    if (!req.headers.authorization) return void res.writeHead(401).end('{"error":"Access to model microsoft/llava-rad is restricted."}');
    if (req.headers.authorization !== `Bearer ${hub.gated.token}`) return void res.writeHead(403).end();
  }
  if (b.lfs) return void res.writeHead(302, { location: `${hub.cdnBase}/blobs/${b.sha256}?x-sig=1` }).end();
  send(req, res, b);
}

function cdnHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  hub.log.push({ server: 'cdn', path: url.pathname, auth: req.headers.authorization, range: req.headers.range });
  const b = hub.blobs.get(url.pathname.replace('/blobs/', ''));
  if (!b) return void res.writeHead(404).end();
  send(req, res, b);
}

const servers: http.Server[] = [];
async function listen(h: http.RequestListener): Promise<string> {
  const s = http.createServer(h);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

/** the file names pull fetches from each repository (and nothing else) */
const NEEDED: Record<string, string[]> = {
  [VICUNA]: ['config.json', 'tokenizer.model', 'tokenizer_config.json', 'pytorch_model.bin.index.json',
    'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin'],
  [LLAVA]: ['config.json', 'adapter_config.json', 'adapter_model.bin', 'non_lora_trainables.bin',
    'biomedclipcxr_518.json', 'biomedclipcxr_518_checkpoint.pt'],
};

const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-pull-'));
let n = 0;
const newHome = () => path.join(tmp, `home-${++n}`);
const lib = (home: string, o: PullOptions = {}) => pull({ home, endpoint: hub.endpoint, retryDelayMs: 0, ...o });

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', pathToFileURL(path.join(root, 'scripts', 'ts-hooks.mjs')).href, path.join(root, 'lib', 'cli.ts'), ...args],
      { cwd: root, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.end();
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  addRepo(VICUNA, path.join(REL, 'vicuna'), { 'README.md': '# vicuna\n', '.gitattributes': '*.bin filter=lfs\n' });
  addRepo(LLAVA, path.join(REL, 'llava-rad'), { 'README.md': '# llava-rad\n' });
  hub.endpoint = await listen(hfHandler);
  hub.cdnBase = await listen(cdnHandler);
});

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  rmSync(tmp, { recursive: true, force: true });
});

beforeEach(() => hub.reset());

describe('llava-rad pull (fake Hugging Face on 127.0.0.1)', () => {
  it('pull + convert + findings with no --model; HF_TOKEN to the hub only; a cut connection resumes with Range; sources deleted', async () => {
    const home = newHome();
    const env = { LLAVA_RAD_HOME: home, HF_ENDPOINT: hub.endpoint, HF_TOKEN: 'hf_secret' };
    hub.cutOnce.set('pytorch_model-00001-of-00002.bin', 700_000);
    const r = await cli(['pull', '--accept-license', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(j).toMatchObject({ dir: modelFolder('f16', { LLAVA_RAD_HOME: home }), type: 'f16', already_present: false, default_model: true, sources_kept: false });

    // only the converter's files, each once from the hub (LFS ones then from the CDN)
    const fetched = (repo: string) => hub.log.filter((l) => l.server === 'hf' && l.path.startsWith(`/${repo}/resolve/`)).map((l) => l.path.split('/').pop());
    expect(new Set(fetched(VICUNA))).toEqual(new Set(NEEDED[VICUNA]));
    expect(new Set(fetched(LLAVA))).toEqual(new Set(NEEDED[LLAVA]));
    expect(hub.log.some((l) => l.path.endsWith('README.md') || l.path.endsWith('generation_config.json'))).toBe(false);

    // the token: Bearer to the hub, never to the redirect host
    expect(hub.log.filter((l) => l.server === 'hf').every((l) => l.auth === 'Bearer hf_secret')).toBe(true);
    const cdn = hub.log.filter((l) => l.server === 'cdn');
    expect(cdn.length).toBeGreaterThan(5);
    expect(cdn.every((l) => l.auth === undefined)).toBe(true);

    // the cut shard was asked for again from where the .part ended
    const shard = hub.repos.get(VICUNA)!.files.get('pytorch_model-00001-of-00002.bin')!;
    const shardReqs = cdn.filter((l) => l.path === `/blobs/${shard.sha256}`);
    expect(shardReqs).toHaveLength(2);
    expect(shardReqs[0]!.range).toBeUndefined();
    const from = Number(/^bytes=(\d+)-$/.exec(shardReqs[1]!.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(700_000);

    // converted, sources gone, acceptance remembered
    const dir = j.dir as string;
    expect(readdirSync(dir).sort()).toEqual(['llava-rad-decoder-f16.gguf', 'llava-rad-vision-f16.gguf', 'llava-rad.json', 'pull.json']);
    const prov = JSON.parse(readFileSync(path.join(dir, 'pull.json'), 'utf8')) as { repositories: { repo: string; commit: string }[] };
    expect(prov.repositories.map((x) => [x.repo, x.commit])).toEqual([[VICUNA, hub.repos.get(VICUNA)!.commit], [LLAVA, hub.repos.get(LLAVA)!.commit]]);
    expect(existsSync(path.join(home, 'sources'))).toBe(false);
    expect(licenseAccepted(home)).toBe(true);

    // findings without --model finds the pulled folder
    const f = await cli(['findings', IMAGE, '--max-tokens', '4', '--json'], { LLAVA_RAD_HOME: home });
    expect(f.code, f.stderr).toBe(0);
    const fj = JSON.parse(f.stdout.trim().split('\n').pop()!) as { tokens: number[]; model: { decoder: string } };
    expect(fj.model.decoder).toBe(path.join(dir, 'llava-rad-decoder-f16.gguf'));
    expect(fj.tokens.length).toBeGreaterThan(0);

    // a second pull asks nothing and fetches nothing
    hub.log = [];
    const again = await cli(['pull'], env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/already pulled/);
    expect(hub.log).toEqual([]);
  });

  it('a download cut in one run resumes from its .part in the next (HTTP Range); --keep-sources keeps the downloads', async () => {
    const home = newHome();
    hub.cutOnce.set('biomedclipcxr_518_checkpoint.pt', 50_000);
    const e = await rejection(lib(home, { type: 'q8_0', acceptLicense: true, keepSources: true, retries: 0 }));
    expect(isLlavaRadError(e, 'DOWNLOAD'), String(e)).toBe(true);
    expect(e.message).toMatch(/biomedclipcxr_518_checkpoint\.pt: connection (lost|closed) after/);
    const src = path.join(home, 'sources', 'microsoft--llava-rad');
    const ckpt = path.join(src, 'biomedclipcxr_518_checkpoint.pt');
    expect(existsSync(ckpt)).toBe(false);
    const partSize = statSync(`${ckpt}.part`).size;
    expect(partSize).toBeGreaterThan(0);
    expect(partSize).toBeLessThanOrEqual(50_000);
    expect(existsSync(modelFolder('q8_0', { LLAVA_RAD_HOME: home }))).toBe(false);

    hub.log = [];
    const r = await lib(home, { type: 'q8_0', keepSources: true, retries: 0 }); // acceptance was recorded
    const f = r.files.find((x) => x.path === 'biomedclipcxr_518_checkpoint.pt')!;
    expect(f).toMatchObject({ resumedFrom: partSize, downloaded: true });
    expect(hub.log.filter((l) => l.server === 'cdn').map((l) => l.range)).toEqual([`bytes=${partSize}-`]);
    expect(r.files.filter((x) => x.downloaded).map((x) => x.path)).toEqual(['biomedclipcxr_518_checkpoint.pt']);
    expect(r.sourcesKept).toBe(true);
    expect(r.dir).toBe(modelFolder('q8_0', { LLAVA_RAD_HOME: home }));
    for (const [repo, names] of Object.entries(NEEDED)) {
      const dir = path.join(home, 'sources', repo.replace('/', '--'));
      expect(readdirSync(dir).sort()).toEqual([...names].sort());
      for (const name of names) expect(readFileSync(path.join(dir, name)).equals(hub.repos.get(repo)!.files.get(name)!.data), name).toBe(true);
    }
    expect(existsSync(r.decoder) && existsSync(r.vision)).toBe(true);
    const other = await rejection(lib(home, { type: 'f16', dir: r.dir }));
    expect(isLlavaRadError(other, 'INVALID_ARGUMENT')).toBe(true);
    expect(other.message).toMatch(/already holds a q8_0 model, not f16/);
  });

  it('a disk that fills during a download is IO at once, naming the file, with no retry (it was retried as a lost connection)', async () => {
    const home = newHome();
    // files limited to 100 KiB, SIGXFSZ ignored: a write past the limit fails (EFBIG) as one to a full disk does (ENOSPC)
    const node = [process.execPath, '--import', pathToFileURL(path.join(root, 'scripts', 'ts-hooks.mjs')).href, path.join(root, 'lib', 'cli.ts'), 'pull', '--accept-license'];
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn('bash', ['-c', `trap '' XFSZ; ulimit -f 100; exec "$@"`, 'bash', ...node], { cwd: root, env: { ...process.env, LLAVA_RAD_HOME: home, HF_ENDPOINT: hub.endpoint }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^llava-rad: error \[IO\]: cannot write .*\.part: EFBIG: file too large, write$/m);
    const fetched = hub.log.filter((l) => l.server === 'cdn').map((l) => l.path);
    expect(fetched.length).toBeGreaterThan(0);
    expect(new Set(fetched).size, `each file asked for once: ${fetched.join(', ')}`).toBe(fetched.length);
    expect(existsSync(path.join(home, 'models'))).toBe(false);
  });

  it('a release larger than the disk\'s free space is IO before its first weight is fetched, naming the folder and both sizes', async () => {
    const home = newHome();
    hub.sizeLie.set(`${VICUNA}/pytorch_model-00002-of-00002.bin`, 2 ** 50); // a petabyte: more than any disk here
    const e = await rejection(lib(home, { acceptLicense: true }));
    expect(isLlavaRadError(e, 'IO'), String(e)).toBe(true);
    expect(e.message, e.message).toMatch(/^not enough disk space for the download: 1125899\.9 GB still to fetch into .*home-\d+\/sources\/lmsys--vicuna-7b-v1\.5, [\d.]+ GB free there \(free some space, or set LLAVA_RAD_HOME to a folder on a larger disk\)$/);
    expect(hub.log.filter((l) => l.server === 'cdn'), 'no weight fetched').toEqual([]);
    expect(existsSync(path.join(home, 'models'))).toBe(false);
  });

  it('downloadNeeds: a complete file needs nothing, a .part the rest, a missing file all; one entry per file system', () => {
    const dir = path.join(tmp, 'needs');
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'done.bin'), Buffer.alloc(100));
    writeFileSync(path.join(dir, 'half.bin.part'), Buffer.alloc(30));
    const needs = downloadNeeds([
      { dest: path.join(dir, 'done.bin'), size: 100 },
      { dest: path.join(dir, 'half.bin'), size: 100 },
      { dest: path.join(dir, 'sub', 'new.bin'), size: 1000 },
      { dest: path.join(dir, 'unknown.bin'), size: undefined },
    ]);
    expect(needs).toHaveLength(1);
    expect(needs[0]).toMatchObject({ folder: dir, bytes: 70 + 1000 });
    expect(needs[0]!.free).toBeGreaterThan(0);
  });

  it('a size or sha256 that differs from the listing is a DOWNLOAD error and leaves no file behind', async () => {
    const cases: [string, () => void, RegExp][] = [
      ['adapter_config.json', () => hub.sizeLie.set(`${LLAVA}/adapter_config.json`, 520), /the server sends 519 bytes, Hugging Face lists 520/],
      ['biomedclipcxr_518_checkpoint.pt', () => hub.sizeLie.set(`${LLAVA}/biomedclipcxr_518_checkpoint.pt`, 1000), /Hugging Face lists 1000/],
      ['non_lora_trainables.bin', () => hub.shaLie.add(`${LLAVA}/non_lora_trainables.bin`), /sha256 [0-9a-f]{64}, Hugging Face lists (ab){32}/],
    ];
    for (const [name, lie, re] of cases) {
      hub.reset();
      lie();
      const home = newHome();
      const e = await rejection(lib(home, { acceptLicense: true, keepSources: true }));
      expect(isLlavaRadError(e, 'DOWNLOAD'), `${name}: ${String(e)}`).toBe(true);
      expect(e.message).toMatch(re);
      const f = path.join(home, 'sources', 'microsoft--llava-rad', name);
      expect(existsSync(f), name).toBe(false);
      expect(existsSync(`${f}.part`), name).toBe(false);
      expect(existsSync(path.join(home, 'models'))).toBe(false);
    }
  });

  it('401 / 403 are ACCESS_DENIED errors that say to accept the terms on Hugging Face and set HF_TOKEN', async () => {
    hub.gated = { repo: LLAVA, token: 'hf_good' };
    const e401 = await rejection(lib(newHome(), { acceptLicense: true }));
    expect(isLlavaRadError(e401, 'ACCESS_DENIED'), String(e401)).toBe(true);
    expect(e401.message).toMatch(/HTTP 401/);
    expect(e401.message).toContain(`${hub.endpoint}/${LLAVA}`);
    expect(e401.message).toMatch(/accept the model's terms/);
    expect(e401.message).toMatch(/set HF_TOKEN/);
    const e403 = await rejection(lib(newHome(), { acceptLicense: true, token: 'hf_wrong' }));
    expect(isLlavaRadError(e403, 'ACCESS_DENIED')).toBe(true);
    expect(e403.message).toMatch(/HTTP 403.*HF_TOKEN was sent/);
    // with the right token it gets past the gate (and fails later only on a deliberate lie)
    hub.sizeLie.set(`${LLAVA}/adapter_config.json`, 1);
    const ok = await rejection(lib(newHome(), { acceptLicense: true, token: 'hf_good' }));
    expect(isLlavaRadError(ok, 'DOWNLOAD')).toBe(true);
    // the CLI: exit 1, one line with the code
    hub.gated = { repo: LLAVA, token: 'hf_good' };
    const r = await cli(['pull', '--accept-license'], { LLAVA_RAD_HOME: newHome(), HF_ENDPOINT: hub.endpoint });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^llava-rad: error \[ACCESS_DENIED\]: Hugging Face refused microsoft\/llava-rad\/config\.json \(HTTP 401\)/);
  });

  it('without accepted terms: the library refuses (LICENSE_NOT_ACCEPTED), the CLI on a non-TTY prints the terms and exits 2', async () => {
    const home = newHome();
    const e = await rejection(lib(home));
    expect(isLlavaRadError(e, 'LICENSE_NOT_ACCEPTED')).toBe(true);
    expect(e.message).toContain('Llama 2 Community License');
    const r = await cli(['pull'], { LLAVA_RAD_HOME: home, HF_ENDPOINT: hub.endpoint });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(LICENSE_TERMS.split('\n')[0]!);
    expect(r.stderr).toMatch(/Microsoft Research License/);
    expect(r.stderr).toMatch(/never publish or share the converted model folder/);
    expect(r.stderr).toMatch(/llava-rad: pull: the license terms above must be accepted: run again with --accept-license/);
    expect(r.stdout).toBe('');
    expect(hub.log).toEqual([]);
    expect(existsSync(home)).toBe(false);
  });

  it('usage errors exit 2; findings with no model says to run pull', async () => {
    const home = newHome();
    const t = await cli(['pull', '--type', 'q3_k', '--accept-license'], { LLAVA_RAD_HOME: home, HF_ENDPOINT: hub.endpoint });
    expect(t.code).toBe(2);
    expect(t.stderr.trim()).toBe("llava-rad: pull: --type must be one of f32, f16, q8_0, q5_k_m, q4_k_m, got 'q3_k'");
    const f = await cli(['findings', IMAGE], { LLAVA_RAD_HOME: home });
    expect(f.code).toBe(2);
    expect(f.stderr.trim()).toBe('llava-rad: findings: no model: run `llava-rad pull` first or pass --model DIR (or --model FILE.gguf --mmproj FILE.gguf)');
    const m = await cli(['findings', IMAGE], { LLAVA_RAD_HOME: home, LLAVA_RAD_MODEL: path.join(home, 'nowhere') });
    expect(m.code).toBe(2);
    expect(m.stderr).toMatch(/model not found: .*nowhere/);
    expect(hub.log).toEqual([]);
  });

  it('retries and retryDelayMs are checked before any request (NaN retries never ran out)', async () => {
    const home = newHome();
    for (const [o, re] of [
      [{ retries: Number.NaN }, /^retries must be an integer from 0 to 1000, got NaN$/],
      [{ retries: -1 }, /^retries must be an integer from 0 to 1000, got -1$/],
      [{ retries: 1.5 }, /^retries must be an integer from 0 to 1000, got 1\.5$/],
      [{ retryDelayMs: Number.POSITIVE_INFINITY }, /^retryDelayMs must be a number of milliseconds from 0 to 3600000, got Infinity$/],
      [{ retryDelayMs: -5 }, /^retryDelayMs must be a number/],
    ] as const) {
      await expect(lib(home, { acceptLicense: true, ...o }), JSON.stringify(o)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(re) });
    }
    expect(hub.log).toEqual([]);
  });
});

describe('model home', () => {
  it('LLAVA_RAD_HOME (default ~/.cache/llava-rad), LLAVA_RAD_MODEL, and the most precise pulled type first', () => {
    expect(llavaRadHome({})).toBe(path.join(homedir(), '.cache', 'llava-rad'));
    const home = newHome();
    const env = { LLAVA_RAD_HOME: home };
    expect(llavaRadHome(env)).toBe(home);
    expect(defaultModelFolder(env)).toBeUndefined();
    for (const t of ['q4_k_m', 'q8_0'] as const) {
      mkdirSync(modelFolder(t, env), { recursive: true });
      writeFileSync(path.join(modelFolder(t, env), 'llava-rad.json'), '{}');
    }
    mkdirSync(modelFolder('f16', env), { recursive: true }); // no llava-rad.json: not a model
    expect(defaultModelFolder(env)).toBe(path.join(home, 'models', 'llava-rad-q8_0'));
    expect(defaultModelFolder({ ...env, LLAVA_RAD_MODEL: '/x/y' })).toBe('/x/y');
  });
});
