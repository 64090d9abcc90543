// A small Hugging Face client: a repository's file list (sizes, LFS sha256) and resumable downloads.
//
// Listing: GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true -> { sha, siblings: [{ rfilename,
//   size, lfs?: { sha256, size } }] }. Files: GET {endpoint}/{repo}/resolve/{commit}/{path}, which redirects
//   LFS files to a CDN; redirects are followed by hand so that the Authorization header (HF_TOKEN) goes to
//   the endpoint's origin only, never to another host.
// Downloads go to FILE.part, resumed with an HTTP Range request (in this run after a cut connection, or in a
// later run), checked against Hugging Face's size (and sha256 when it gives one), then renamed to FILE.

import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { abortedError, ioError, LlavaRadError } from '../errors.js';

export interface HfOptions {
  /** default $HF_ENDPOINT or https://huggingface.co */
  endpoint: string;
  /** sent as "Authorization: Bearer <token>" to the endpoint's origin only */
  token?: string | undefined;
  /** extra tries after a network error, a cut connection or an HTTP 5xx/429 (default 5) */
  retries?: number;
  /** wait before try n is n * retryDelayMs (default 1000) */
  retryDelayMs?: number;
  /** idle socket timeout (default 60 s) */
  timeoutMs?: number;
  signal?: AbortSignal | undefined;
  /** the command a refused download tells the user to run again (default "pull") */
  command?: string;
}

export interface HfFile {
  path: string;
  size: number | undefined;
  /** the LFS object's sha256 (hex), when the file is stored in LFS */
  sha256: string | undefined;
}

export interface HfRepoInfo {
  repo: string;
  revision: string;
  /** the commit the revision resolved to (downloads use it, so every file comes from one commit) */
  commit: string;
  files: Map<string, HfFile>;
}

/** a failure worth another try */
class Transient extends Error {}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function get(url: URL, headers: Record<string, string>, o: HfOptions): Promise<IncomingMessage> {
  const mod = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
  if (!mod) return Promise.reject(new LlavaRadError('DOWNLOAD', `unsupported URL ${url.href}`));
  return new Promise((resolve, reject) => {
    const req = mod.get(url, { headers, ...(o.signal ? { signal: o.signal } : {}) }, resolve);
    req.on('error', (e) => reject(o.signal?.aborted ? abortedError(o.signal, 'the download') : new Transient(`${url.host}: ${e.message}`)));
    req.setTimeout(o.timeoutMs ?? 60_000, () => req.destroy(new Error(`no data for ${(o.timeoutMs ?? 60_000) / 1000} s`)));
  });
}

/** GET with redirects followed; Authorization only to the endpoint's origin */
async function request(href: string, o: HfOptions, repo: string, what: string, extra: Record<string, string> = {}): Promise<IncomingMessage> {
  const home = new URL(o.endpoint).origin;
  let url = new URL(href);
  for (let hop = 0; hop < 10; hop++) {
    const headers: Record<string, string> = { 'user-agent': 'llava-rad-pull', ...extra };
    if (o.token && url.origin === home) headers.authorization = `Bearer ${o.token}`;
    const res = await get(url, headers, o);
    const status = res.statusCode ?? 0;
    if (REDIRECTS.has(status) && res.headers.location) {
      res.resume();
      url = new URL(res.headers.location, url);
      continue;
    }
    if (status === 200 || status === 206 || status === 416) return res;
    res.resume();
    if (status === 401 || status === 403) throw accessDenied(repo, what, status, o);
    const msg = `${what}: HTTP ${status} from ${url.host}`;
    if (status >= 500 || status === 429) throw new Transient(msg);
    throw new LlavaRadError('DOWNLOAD', status === 404 ? `${msg} (not found)` : msg);
  }
  throw new LlavaRadError('DOWNLOAD', `${what}: more than 10 redirects`);
}

function accessDenied(repo: string, what: string, status: number, o: HfOptions): LlavaRadError {
  const page = `${o.endpoint}/${repo}`;
  const token = o.token
    ? 'HF_TOKEN was sent: check that it is valid and that its account has accepted the terms'
    : 'then set HF_TOKEN to an access token of that account (https://huggingface.co/settings/tokens)';
  return new LlavaRadError('ACCESS_DENIED',
    `Hugging Face refused ${what} (HTTP ${status}): log in at ${page}, accept the model's terms there, ${token}`);
}

/** runs `f`, again after Transient failures (up to o.retries more times) */
async function withRetries<T>(o: HfOptions, f: () => Promise<T>): Promise<T> {
  const retries = o.retries ?? 5;
  for (let attempt = 0; ; attempt++) {
    try {
      return await f();
    } catch (e) {
      if (o.signal?.aborted) throw abortedError(o.signal, 'the download');
      if (!(e instanceof Transient)) throw e;
      if (attempt >= retries) throw new LlavaRadError('DOWNLOAD', `${e.message} (after ${attempt + 1} tries)`, { cause: e });
      await new Promise((r) => setTimeout(r, (attempt + 1) * (o.retryDelayMs ?? 1000)));
    }
  }
}

function checkRepo(repo: string): void {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new LlavaRadError('INVALID_ARGUMENT', `repository must look like "owner/name", got ${JSON.stringify(repo)}`);
}

/** the file list of `repo` at `revision`, with sizes and LFS sha256 */
export async function repoInfo(repo: string, revision: string, o: HfOptions): Promise<HfRepoInfo> {
  checkRepo(repo);
  const what = `the file list of ${repo}@${revision}`;
  const body = await withRetries(o, async () => {
    const res = await request(`${o.endpoint}/api/models/${repo}/revision/${encodeURIComponent(revision)}?blobs=true`, o, repo, what);
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of res as AsyncIterable<Buffer>) {
        n += c.length;
        if (n > 16 << 20) throw new LlavaRadError('DOWNLOAD', `${what}: answer larger than 16 MiB`);
        chunks.push(c);
      }
    } catch (e) {
      if (e instanceof LlavaRadError) throw e;
      throw new Transient(`${what}: ${(e as Error).message}`);
    }
    return Buffer.concat(chunks).toString('utf8');
  });
  let j: { sha?: unknown; siblings?: unknown };
  try {
    j = JSON.parse(body) as typeof j;
  } catch {
    throw new LlavaRadError('DOWNLOAD', `${what}: the answer is not JSON`);
  }
  if (!Array.isArray(j.siblings)) throw new LlavaRadError('DOWNLOAD', `${what}: the answer has no "siblings" list`);
  const files = new Map<string, HfFile>();
  const size = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined);
  for (const s of j.siblings as { rfilename?: unknown; size?: unknown; lfs?: { sha256?: unknown; size?: unknown } }[]) {
    if (typeof s?.rfilename !== 'string') continue;
    const sha = s.lfs?.sha256;
    files.set(s.rfilename, {
      path: s.rfilename,
      size: size(s.lfs?.size) ?? size(s.size),
      sha256: typeof sha === 'string' && /^[0-9a-f]{64}$/i.test(sha) ? sha.toLowerCase() : undefined,
    });
  }
  const commit = typeof j.sha === 'string' && /^[\w.-]+$/.test(j.sha) ? j.sha : revision;
  return { repo, revision, commit, files };
}

async function hashPrefix(file: string, bytes: number): Promise<Hash> {
  const h = createHash('sha256');
  if (bytes > 0) for await (const c of createReadStream(file, { start: 0, end: bytes - 1 })) h.update(c as Buffer);
  return h;
}

export interface DownloadResult {
  /** bytes already on disk (a .part from before) when the first request of this call was made */
  resumedFrom: number;
  /** false when the final file was already there with the right size */
  downloaded: boolean;
}

/**
 * Downloads `file` of `info` to `dest` (through `dest`.part) and checks its size and sha256. On failure the
 * .part stays for a later resume, except after a size or sha256 mismatch, which removes it.
 */
export async function downloadFile(info: HfRepoInfo, file: HfFile, dest: string, o: HfOptions,
  onBytes: (n: number) => void = () => {}): Promise<DownloadResult> {
  const what = `${info.repo}/${file.path}`;
  const size = file.size;
  if (size === undefined) throw new LlavaRadError('DOWNLOAD', `Hugging Face did not report the size of ${what}`);
  if (existsSync(dest)) {
    if (statSync(dest).size === size) return { resumedFrom: 0, downloaded: false };
    await rm(dest, { force: true });
  }
  const part = `${dest}.part`;
  const mismatch = async (msg: string) => {
    await rm(part, { force: true });
    return new LlavaRadError('DOWNLOAD', `${what}: ${msg}; the partial file was removed, run ${o.command ?? 'pull'} again`);
  };
  const url = `${o.endpoint}/${info.repo}/resolve/${encodeURIComponent(info.commit)}/${file.path.split('/').map(encodeURIComponent).join('/')}`;
  let have = existsSync(part) ? statSync(part).size : 0;
  if (have > size) {
    await rm(part, { force: true });
    have = 0;
  }
  if (size === 0) await writeFile(part, '').catch((e: unknown) => { throw ioError(e, `cannot write ${part}`); });
  const resumedFrom = have;
  let hash: Hash | undefined;
  let hashed = -1;
  await withRetries(o, async () => {
    if (have >= size) return;
    const res = await request(url, o, info.repo, what, have > 0 ? { range: `bytes=${have}-` } : {});
    if (res.statusCode === 416) {
      res.resume();
      have = 0;
      throw new Transient(`${what}: the server refused to resume (HTTP 416)`);
    }
    let total: number | undefined;
    if (res.statusCode === 206) {
      const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? ''));
      if (!m || Number(m[1]) !== have) {
        res.resume();
        have = 0;
        throw new Transient(`${what}: the server resumed at the wrong offset`);
      }
      if (m[2] !== '*') total = Number(m[2]);
    } else {
      have = 0; // 200: the whole file again
      const len = res.headers['content-length'];
      if (len !== undefined) total = Number(len);
    }
    if (total !== undefined && total !== size) {
      res.resume();
      throw await mismatch(`the server sends ${total} bytes, Hugging Face lists ${size}`);
    }
    if (file.sha256 && hashed !== have) {
      hash = await hashPrefix(part, have);
      hashed = have;
    }
    const fh = await open(part, have > 0 ? 'r+' : 'w').catch((e: unknown) => { throw ioError(e, `cannot write ${part}`); });
    let tooLong = false;
    try {
      if (have === 0) await fh.truncate(0);
      for await (const c of res as AsyncIterable<Buffer>) {
        if (have + c.length > size) {
          tooLong = true;
          res.destroy();
          break;
        }
        // a full disk is not a lost connection: IO at once, no retry
        await fh.write(c, 0, c.length, have).catch((e: unknown) => { throw ioError(e, `cannot write ${part}`); });
        have += c.length;
        if (hash) {
          hash.update(c);
          hashed = have;
        }
        onBytes(c.length);
      }
    } catch (e) {
      if (e instanceof LlavaRadError || o.signal?.aborted) throw e;
      throw new Transient(`${what}: connection lost after ${have} of ${size} bytes (${(e as Error).message})`);
    } finally {
      await fh.close();
    }
    if (tooLong) throw await mismatch(`the server sends more than the ${size} bytes Hugging Face lists`);
    if (have < size) throw new Transient(`${what}: connection closed after ${have} of ${size} bytes`);
  });
  if (statSync(part).size !== size) throw await mismatch(`${statSync(part).size} bytes on disk, Hugging Face lists ${size}`);
  if (file.sha256) {
    if (!hash || hashed !== size) hash = await hashPrefix(part, size);
    const got = hash.digest('hex');
    if (got !== file.sha256) throw await mismatch(`sha256 ${got}, Hugging Face lists ${file.sha256}`);
  }
  await rename(part, dest).catch((e: unknown) => { throw ioError(e, `cannot move ${part} to ${dest}`); });
  return { resumedFrom, downloaded: true };
}
