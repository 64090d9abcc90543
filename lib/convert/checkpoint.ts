// One entry point over every checkpoint layout the converter meets:
//   - a PyTorch file (zip or legacy; pytorch_model.bin, adapter_model.bin, *.pt)      -> openTorchCheckpoint
//   - a .safetensors file                                                               -> openSafetensors
//   - a sharded checkpoint's index (pytorch_model.bin.index.json / model.safetensors.index.json)
//
//   const ckpt = await openCheckpoint('vicuna/pytorch_model.bin.index.json');
//   for (const [name, t] of ckpt.tensors) { const w = await t.readFloat32(); ... }   // one tensor at a time
//   await ckpt.close();
//
// A checkpoint must be a regular file (a FIFO or a folder is refused before it is opened, so nothing blocks).
// For an index, `weight_map` {tensor name: shard file} names the shards, each a plain file name in the
// index's own folder: no path separators, no '..', no absolute path, and never another index (a shard is
// opened as a single file, so indexes naming each other or themselves cannot recurse). The index is at most
// 16 MiB (checked before it is read) and names at most MAX_SHARDS files. Every shard is opened (headers /
// pickles only), every tensor the index lists must be in its shard, and tensors come out in shard order then
// file order. Tensors a shard holds but the index does not list are ignored (as transformers does).

import { open, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LlavaRadError, describeValue } from '../errors.js';
import { readJsonObject, shortName } from './config-check.js';
import { fileKind } from '../regular-file.js';
import { openTorchCheckpoint, stripModulePrefix, type ExtractOptions } from './pickle.js';
import { openSafetensors } from './safetensors.js';
import type { LazyTensor } from './tensor.js';

export { stripModulePrefix };

export interface Checkpoint {
  readonly path: string;
  readonly format: 'torch-zip' | 'torch-legacy' | 'safetensors' | 'sharded';
  /** every tensor, by name as stored */
  readonly tensors: ReadonlyMap<string, LazyTensor>;
  /** the file(s) it was read from: the file itself, or an index's shards in order */
  readonly files: readonly string[];
  /** the size of those files together */
  readonly fileBytes: number;
  /** bytes read from the file(s) so far */
  bytesRead(): number;
  close(): Promise<void>;
}

/** the largest index JSON we read (a 70B model's is about 60 KB) */
const MAX_INDEX = 16 * 1024 * 1024;

/** the most shard files an index may name (each stays open while the checkpoint is) */
export const MAX_SHARDS = 1024;

const bad = (msg: string) => new LlavaRadError('BAD_CHECKPOINT', msg);

/** Opens a checkpoint file of any supported layout (decided by name for indexes, by content otherwise). */
export async function openCheckpoint(path: string, options: ExtractOptions = {}): Promise<Checkpoint> {
  if (path.endsWith('.index.json')) return openShardedCheckpoint(path, options);
  return openSingleFile(path, options);
}

/** a PyTorch or safetensors file (never an index) */
async function openSingleFile(path: string, options: ExtractOptions): Promise<Checkpoint> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new LlavaRadError('IO', `cannot read the checkpoint ${path}: it is ${fileKind(st)}, not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  const files = [path];
  if (path.endsWith('.safetensors') || (await looksSafetensors(path))) {
    const st = await openSafetensors(path);
    return { path, format: 'safetensors', tensors: st.tensors, files, fileBytes: size, bytesRead: st.bytesRead, close: st.close };
  }
  const t = await openTorchCheckpoint(path, options);
  return {
    path, format: t.format === 'zip' ? 'torch-zip' : 'torch-legacy', tensors: t.tensors, files, fileBytes: size,
    bytesRead: t.bytesRead, close: t.close,
  };
}

/** safetensors: an 8-byte header length, then the JSON header's '{' */
async function looksSafetensors(path: string): Promise<boolean> {
  let head: Buffer;
  try {
    const fh = await open(path, 'r');
    try {
      head = Buffer.alloc(9);
      const { bytesRead } = await fh.read(head, 0, 9, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw new LlavaRadError('IO', `cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  return head.length === 9 && head[8] === 0x7b && head.readBigUInt64LE(0) < 2n ** 32n;
}

/**
 * Why `file` (a weight_map value) is not a plain shard file name in the index's folder, or undefined when
 * it is one.
 */
function shardNameProblem(file: unknown): string | undefined {
  if (typeof file !== 'string' || file.length === 0) return `expected a shard file name, got ${describeValue(file)}`;
  if (file.length > 255) return `expected a shard file name, got a name of ${file.length} characters`;
  if (/[/\\:\0]/.test(file) || file === '.' || file === '..') {
    return `names a path (${describeValue(file)}): shards outside the index's folder are refused; expected a plain file name`;
  }
  if (file.toLowerCase().endsWith('.json')) return `names another index or JSON file (${describeValue(file)}); expected a shard (.bin or .safetensors)`;
  return undefined;
}

/** Opens a sharded checkpoint from its index JSON (`weight_map`). */
export async function openShardedCheckpoint(indexPath: string, options: ExtractOptions = {}): Promise<Checkpoint> {
  const index = await readJsonObject(indexPath, 'checkpoint index', MAX_INDEX);
  const weightMap = index.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw bad(`${indexPath}: no "weight_map" object`);
  }
  const dir = dirname(indexPath);
  const byShard = new Map<string, string[]>();
  for (const [name, file] of Object.entries(weightMap as Record<string, unknown>)) {
    const problem = shardNameProblem(file);
    if (problem) throw bad(`${indexPath}: weight_map["${shortName(name)}"] ${problem}`);
    let list = byShard.get(file as string);
    if (!list) {
      if (byShard.size >= MAX_SHARDS) throw bad(`${indexPath}: weight_map names more than ${MAX_SHARDS} shard files`);
      byShard.set(file as string, (list = []));
    }
    list.push(name);
  }
  const shards: Checkpoint[] = [];
  const tensors = new Map<string, LazyTensor>();
  try {
    for (const [file, names] of byShard) {
      const shard = await openSingleFile(join(dir, file), options);
      shards.push(shard);
      const wanted = new Set(names);
      for (const [name, t] of shard.tensors) if (wanted.has(name)) tensors.set(name, t);
      for (const name of names) {
        if (!shard.tensors.has(name)) throw bad(`${indexPath}: tensor "${shortName(name)}" is not in its shard ${file}`);
      }
    }
  } catch (e) {
    await Promise.all(shards.map((s) => s.close().catch(() => {})));
    throw e;
  }
  return {
    path: indexPath,
    format: 'sharded',
    tensors,
    files: shards.map((s) => s.path),
    fileBytes: shards.reduce((a, s) => a + s.fileBytes, 0),
    bytesRead: () => shards.reduce((a, s) => a + s.bytesRead(), 0),
    close: async () => {
      await Promise.all(shards.map((s) => s.close()));
    },
  };
}
