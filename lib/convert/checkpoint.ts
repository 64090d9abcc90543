// One entry point over every checkpoint layout the converter meets:
//   - a PyTorch file (zip or legacy; pytorch_model.bin, adapter_model.bin, *.pt)      -> openTorchCheckpoint
//   - a .safetensors file                                                               -> openSafetensors
//   - a sharded checkpoint's index (pytorch_model.bin.index.json / model.safetensors.index.json)
//
//   const ckpt = await openCheckpoint('vicuna/pytorch_model.bin.index.json');
//   for (const [name, t] of ckpt.tensors) { const w = await t.readFloat32(); ... }   // one tensor at a time
//   await ckpt.close();
//
// For an index, `weight_map` {tensor name: shard file} names the shards (paths relative to the index's
// folder; absolute paths and '..' are refused). Every shard is opened (headers / pickles only), every
// tensor the index lists must be in its shard, and tensors come out in shard order then file order.
// Tensors a shard holds but the index does not list are ignored (as transformers does).

import { readFile } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { LlavaRadError } from '../errors.js';
import { openTorchCheckpoint, stripModulePrefix, type ExtractOptions } from './pickle.js';
import { openSafetensors } from './safetensors.js';
import type { LazyTensor } from './tensor.js';

export { stripModulePrefix };

export interface Checkpoint {
  readonly path: string;
  readonly format: 'torch-zip' | 'torch-legacy' | 'safetensors' | 'sharded';
  /** every tensor, by name as stored */
  readonly tensors: ReadonlyMap<string, LazyTensor>;
  /** bytes read from the file(s) so far */
  bytesRead(): number;
  close(): Promise<void>;
}

/** the largest index JSON we read */
const MAX_INDEX = 64 * 1024 * 1024;

/** Opens a checkpoint file of any supported layout (decided by name for indexes, by content otherwise). */
export async function openCheckpoint(path: string, options: ExtractOptions = {}): Promise<Checkpoint> {
  if (path.endsWith('.index.json')) return openShardedCheckpoint(path, options);
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
  // safetensors: an 8-byte header length, then the JSON header's '{'
  const looksSafetensors = head.length === 9 && head[8] === 0x7b && head.readBigUInt64LE(0) < 2n ** 32n;
  if (path.endsWith('.safetensors') || looksSafetensors) {
    const st = await openSafetensors(path);
    return { path, format: 'safetensors', tensors: st.tensors, bytesRead: st.bytesRead, close: st.close };
  }
  const t = await openTorchCheckpoint(path, options);
  return { path, format: t.format === 'zip' ? 'torch-zip' : 'torch-legacy', tensors: t.tensors, bytesRead: t.bytesRead, close: t.close };
}

/** Opens a sharded checkpoint from its index JSON (`weight_map`). */
export async function openShardedCheckpoint(indexPath: string, options: ExtractOptions = {}): Promise<Checkpoint> {
  let text: string;
  try {
    const buf = await readFile(indexPath);
    if (buf.length > MAX_INDEX) throw new LlavaRadError('BAD_CHECKPOINT', `${indexPath}: index of ${buf.length} bytes is too large`);
    text = buf.toString('utf8');
  } catch (e) {
    if (e instanceof LlavaRadError) throw e;
    throw new LlavaRadError('IO', `cannot read ${indexPath}: ${(e as Error).message}`, { cause: e });
  }
  let index: unknown;
  try {
    index = JSON.parse(text);
  } catch (e) {
    throw new LlavaRadError('BAD_CHECKPOINT', `${indexPath}: not JSON: ${(e as Error).message}`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (weightMap === null || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new LlavaRadError('BAD_CHECKPOINT', `${indexPath}: no "weight_map" object`);
  }
  const dir = dirname(indexPath);
  const byShard = new Map<string, string[]>();
  for (const [name, file] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof file !== 'string' || file.length === 0) throw new LlavaRadError('BAD_CHECKPOINT', `${indexPath}: weight_map["${name}"] is not a file name`);
    const norm = normalize(file);
    if (isAbsolute(file) || norm === '..' || norm.startsWith(`..${sep}`) || norm.startsWith('../')) {
      throw new LlavaRadError('BAD_CHECKPOINT', `${indexPath}: shard "${file}" is outside the checkpoint's folder`);
    }
    let list = byShard.get(file);
    if (!list) byShard.set(file, (list = []));
    list.push(name);
  }
  const shards: Checkpoint[] = [];
  const tensors = new Map<string, LazyTensor>();
  try {
    for (const [file, names] of byShard) {
      const shard = await openCheckpoint(join(dir, file), options);
      shards.push(shard);
      const wanted = new Set(names);
      for (const [name, t] of shard.tensors) if (wanted.has(name)) tensors.set(name, t);
      for (const name of names) {
        if (!shard.tensors.has(name)) {
          throw new LlavaRadError('BAD_CHECKPOINT', `${indexPath}: tensor "${name}" is not in its shard ${file}`);
        }
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
    bytesRead: () => shards.reduce((a, s) => a + s.bytesRead(), 0),
    close: async () => {
      await Promise.all(shards.map((s) => s.close()));
    },
  };
}
