// Reads an allennlp model archive (radgraph.tar.gz: a gzip'd tar) without unpacking it to disk: the small
// files (config.json, vocabulary/*.txt, an optional vocab.txt) come back in memory, weights.th is copied to a
// temporary file for the checkpoint reader. A nested archive (model.tar.gz inside, as allennlp's own
// archives sometimes are) is read the same way, once.
//
// Only regular files are taken; names are matched after removing a leading "./". GNU long names and pax
// `path` records are honoured; links, devices and anything else are skipped. A corrupt or truncated stream
// is BAD_CHECKPOINT.
//
// Limits, so that a small hostile archive cannot fill the disk or spin for hours: weights.th (and a nested
// archive) may be at most MAX_WEIGHTS bytes, and the tar may inflate to at most MAX_INFLATION times the gzip's
// size (plus INFLATION_SLACK): model weights barely compress, while a gzip of zeros inflates about 1000 times.
// An entry whose size breaks either is refused from its tar header, before anything of it is written.

import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { LlavaRadError } from '../errors.js';
import { openRegularFile } from '../regular-file.js';

const BLOCK = 512;
/** the most one small (in-memory) file may hold */
const MAX_SMALL_FILE = 16 * 1024 * 1024;
/** the most a long name or pax record may hold */
const MAX_META_RECORD = 1024 * 1024;
/** the most weights.th (or a nested model.tar.gz) may hold: RadGraph's BERT-base weights are about 0.5 GB */
export const MAX_WEIGHTS = 8 * 1024 ** 3;
/** the tar may be at most this many times the size of its gzip, plus INFLATION_SLACK */
export const MAX_INFLATION = 32;
export const INFLATION_SLACK = 256 * 1024 * 1024;
const WEIGHTS = 'weights.th';
const NESTED = 'model.tar.gz';

export interface ModelArchive {
  /** config.json, vocabulary/*.txt, vocab.txt ... by name (no leading "./") */
  files: Map<string, Buffer>;
  /** weights.th, copied to a temporary file (removed by dispose) */
  weightsPath?: string;
  dispose(): Promise<void>;
}

const bad = (path: string, msg: string) => new LlavaRadError('BAD_CHECKPOINT', `${path}: ${msg}`);

function field(h: Buffer, start: number, len: number): string {
  const raw = h.subarray(start, start + len);
  const nul = raw.indexOf(0);
  return raw.subarray(0, nul < 0 ? len : nul).toString('utf8');
}

function octal(h: Buffer, start: number, len: number, path: string): number {
  if (h[start]! & 0x80) { // GNU base-256 for big sizes
    let v = 0;
    for (let i = start + 1; i < start + len; i++) v = v * 256 + h[i]!;
    return v;
  }
  const s = field(h, start, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw bad(path, `a tar header has a bad number field "${s}" (not a tar archive?)`);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  const stored = parseInt(field(h, 148, 8).trim(), 8);
  return stored === sum;
}

function normalize(name: string): string {
  return name.replace(/^(\.\/)+/, '');
}

/** where each file goes while the stream runs; `meta`: a GNU long name (L) or pax (x) record, naming the next entry */
interface Sink { name: string; size: number; left: number; chunks?: Buffer[]; file?: WriteStream; meta?: 'L' | 'x' }

/** the name a GNU long name / pax record gives the next entry */
function recordName(meta: 'L' | 'x', data: Buffer): string | undefined {
  if (meta === 'L') return field(data, 0, data.length);
  return /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString('utf8'))?.[1];
}

async function readTarGz(path: string, dir: string, depth: number): Promise<{ files: Map<string, Buffer>; weightsPath?: string }> {
  const { fh, size } = await openRegularFile(path, 'the archive');
  const maxTar = size * MAX_INFLATION + INFLATION_SLACK;
  let tarBytes = 0; // inflated so far
  let declared = 0; // the headers read and the sizes they gave
  const files = new Map<string, Buffer>();
  let weightsPath: string | undefined;
  let nestedPath: string | undefined;
  let pending: Buffer = Buffer.alloc(0);
  let sink: Sink | undefined;
  let pad = 0;
  let longName: string | undefined;
  let ended = false;
  let sawHeader = false;
  let blocked: WriteStream | undefined; // a file whose buffer is full: the stream waits for its 'drain'
  const writes: Promise<void>[] = [];
  const opened: WriteStream[] = []; // the files opened for weights.th / a nested archive, closed if the read fails
  // a file that cannot be written (a full disk) ends the read at once: the reading would otherwise wait for
  // ever for the 'drain' of a file that failed
  let stopReading: ((e: LlavaRadError) => void) | undefined;
  let writeFailure: LlavaRadError | undefined;

  const openSink = (name: string, size: number): Sink => {
    const s: Sink = { name, size, left: size };
    const toDisk = name === WEIGHTS || (name === NESTED && depth === 0);
    if (toDisk && size > MAX_WEIGHTS) throw bad(path, `${name} of ${size} bytes: more than a RadGraph model's weights can be (at most ${MAX_WEIGHTS})`);
    if (toDisk) {
      const target = join(dir, `${depth}-${name}`);
      const file = createWriteStream(target);
      s.file = file;
      opened.push(file);
      const written = new Promise<void>((resolve, reject) => { file.on('finish', () => resolve()); file.on('error', reject); });
      file.on('error', (e) => {
        writeFailure ??= new LlavaRadError('IO', `could not copy ${name} out of ${path} into ${dir}: ${e.message}`, { cause: e });
        stopReading?.(writeFailure);
      });
      written.catch(() => undefined); // awaited below; an archive refused before then must not leave it unhandled
      writes.push(written);
      if (name === WEIGHTS) weightsPath = target; else nestedPath = target;
    } else if (size <= MAX_SMALL_FILE) s.chunks = [];
    return s;
  };

  /** the current entry is whole: keep it, end its file, or take the name it gives the next one */
  const finish = (): void => {
    const s = sink!;
    sink = undefined;
    if (s.meta) longName = recordName(s.meta, Buffer.concat(s.chunks!));
    else if (s.chunks) files.set(s.name, Buffer.concat(s.chunks));
    s.file?.end();
  };

  const consume = (chunk: Buffer): void => {
    // what follows the end marker is read past, not kept: kept and joined chunk by chunk, 32 MB of trailing
    // zeros took 96 s of copying (quadratic in their length)
    if (ended) return;
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let off = 0;
    while (!ended) {
      if (sink) {
        const n = Math.min(sink.left, pending.length - off);
        if (n === 0) break;
        const part = pending.subarray(off, off + n);
        if (sink.chunks) sink.chunks.push(Buffer.from(part));
        if (sink.file && !sink.file.write(Buffer.from(part))) blocked = sink.file;
        sink.left -= n;
        off += n;
        if (sink.left === 0) finish();
        continue;
      }
      if (pad > 0) {
        const n = Math.min(pad, pending.length - off);
        if (n === 0) break;
        pad -= n;
        off += n;
        continue;
      }
      if (pending.length - off < BLOCK) break;
      const h = pending.subarray(off, off + BLOCK);
      off += BLOCK;
      if (h.every((b) => b === 0)) { ended = true; break; }
      if (!checksumOk(h)) throw bad(path, 'a tar header fails its checksum (not a tar archive, or corrupt)');
      sawHeader = true;
      const type = String.fromCharCode(h[156]!);
      const size = octal(h, 124, 12, path);
      declared += BLOCK + size;
      if (declared > maxTar) throw bad(path, `an entry of ${size} bytes takes its tar past ${maxTar} bytes, more than ${MAX_INFLATION} times its gzip'd size (a gzip bomb?)`);
      const prefix = field(h, 345, 155);
      let name = longName ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
      longName = undefined;
      pad = (BLOCK - (size % BLOCK)) % BLOCK;
      name = normalize(name);
      if (type === 'L' || type === 'x') {
        if (size > MAX_META_RECORD) throw bad(path, `a tar metadata record of ${size} bytes is too large (at most ${MAX_META_RECORD})`);
        sink = { name, size, left: size, chunks: [], meta: type };
      } else if (type === '0' || type === '\0') sink = openSink(name, size);
      else sink = { name, size, left: size }; // skipped entry: its data is read past
      if (size === 0) finish();
    }
    pending = pending.subarray(off);
  };

  const inflate = () => new Promise<void>((resolve, reject) => {
    const input = fh.createReadStream(); // closes fh when it ends or is destroyed
    const gunzip = createGunzip();
    const fail = (e: unknown) => {
      input.destroy();
      gunzip.destroy();
      reject(e instanceof LlavaRadError ? e : bad(path, `not a readable gzip'd tar (${(e as Error).message})`));
    };
    stopReading = fail;
    if (writeFailure) fail(writeFailure);
    input.on('error', (e) => reject(new LlavaRadError('IO', `could not read ${path}: ${e.message}`, { cause: e })));
    gunzip.on('error', fail);
    gunzip.on('data', (chunk: Buffer) => {
      tarBytes += chunk.length;
      if (tarBytes > maxTar) {
        fail(bad(path, `its tar inflates past ${maxTar} bytes, more than ${MAX_INFLATION} times its gzip'd size (a gzip bomb?)`));
        return;
      }
      try { consume(chunk); } catch (e) { fail(e); return; }
      if (writeFailure) { fail(writeFailure); return; }
      if (blocked) {
        gunzip.pause();
        // 'drain' does not come for a file already ended (its last write filled the buffer): 'finish' does
        const file = blocked;
        const resume = () => {
          for (const ev of ['drain', 'finish', 'error']) file.off(ev, resume);
          gunzip.resume();
        };
        file.on('drain', resume).on('finish', resume).on('error', resume);
        blocked = undefined;
      }
    });
    gunzip.on('end', () => resolve());
    input.pipe(gunzip);
  });
  try {
    await inflate();
    if (sink !== undefined || pad > 0 || (pending.length > 0 && !ended)) throw bad(path, 'the archive is truncated');
    if (!sawHeader) throw bad(path, 'the archive holds no files');
  } catch (e) {
    for (const f of opened) f.destroy();
    throw e;
  }
  try {
    await Promise.all(writes);
  } catch (e) {
    throw new LlavaRadError('IO', `could not copy ${WEIGHTS} out of ${path} into ${dir}: ${(e as Error).message}`, { cause: e });
  }
  if (nestedPath !== undefined && !files.has('config.json')) {
    const inner = await readTarGz(nestedPath, dir, depth + 1);
    await rm(nestedPath, { force: true });
    return inner;
  }
  return { files, ...(weightsPath !== undefined ? { weightsPath } : {}) };
}

/** reads `path` (a .tar.gz allennlp archive); call dispose() to remove the temporary weights copy */
export async function readModelArchive(path: string): Promise<ModelArchive> {
  const dir = await mkdtemp(join(tmpdir(), 'llava-rad-radgraph-'));
  const dispose = () => rm(dir, { recursive: true, force: true });
  try {
    const r = await readTarGz(path, dir, 0);
    return { ...r, dispose };
  } catch (e) {
    await dispose();
    throw e;
  }
}
