// --shard I/N: a stable split of a manifest among N jobs. A study belongs to shard
// (first 4 bytes of sha256(id), big endian) mod N, so membership depends only on the id and N, never on
// the manifest's order or on which other studies it lists. Shards are numbered 0..N-1.
//
// --shard auto reads the cluster scheduler's environment:
//   Slurm array jobs:        SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN (default 0) of SLURM_ARRAY_TASK_COUNT
//   Kubernetes indexed Jobs: JOB_COMPLETION_INDEX of N, with N from --shard auto/N or LLAVA_RAD_SHARD_COUNT
// (auto/N also works under Slurm; N must then equal SLURM_ARRAY_TASK_COUNT.)

import { createHash } from 'node:crypto';

export interface Shard {
  index: number;
  count: number;
}

export class ShardSpecError extends Error {}

export function shardOf(id: string, count: number): number {
  return createHash('sha256').update(id, 'utf8').digest().readUInt32BE(0) % count;
}

export function inShard(id: string, shard: Shard | null): boolean {
  return shard === null || shard.count === 1 || shardOf(id, shard.count) === shard.index;
}

const MAX_SHARDS = 1_000_000;

function int(v: string | undefined, what: string): number {
  if (v === undefined || !/^\d+$/.test(v.trim())) throw new ShardSpecError(`${what} must be a whole number, got ${v === undefined ? 'nothing' : `'${v}'`}`);
  return Number(v.trim());
}

function checked(index: number, count: number, from: string): Shard {
  if (count < 1 || count > MAX_SHARDS) throw new ShardSpecError(`the shard count must be between 1 and ${MAX_SHARDS}, got ${count} (${from})`);
  if (index >= count) throw new ShardSpecError(`the shard index must be between 0 and ${count - 1}, got ${index} (${from})`);
  return { index, count };
}

/** Parses I/N, auto or auto/N. Throws ShardSpecError saying what was expected. */
export function parseShard(spec: string, env: NodeJS.ProcessEnv = process.env): Shard {
  const s = spec.trim();
  const m = /^(\d+)\/(\d+)$/.exec(s);
  if (m) return checked(Number(m[1]), Number(m[2]), `--shard ${s}`);
  const a = /^auto(?:\/(\d+))?$/.exec(s);
  if (!a) throw new ShardSpecError(`--shard must be I/N (0 <= I < N), auto or auto/N, got '${spec}'`);
  const given = a[1] === undefined ? undefined : Number(a[1]);
  if (env.SLURM_ARRAY_TASK_ID !== undefined) {
    const id = int(env.SLURM_ARRAY_TASK_ID, 'SLURM_ARRAY_TASK_ID');
    const min = env.SLURM_ARRAY_TASK_MIN === undefined ? 0 : int(env.SLURM_ARRAY_TASK_MIN, 'SLURM_ARRAY_TASK_MIN');
    const slurmCount = env.SLURM_ARRAY_TASK_COUNT === undefined ? undefined : int(env.SLURM_ARRAY_TASK_COUNT, 'SLURM_ARRAY_TASK_COUNT');
    const count = given ?? slurmCount;
    if (count === undefined) throw new ShardSpecError('--shard auto under Slurm needs SLURM_ARRAY_TASK_COUNT (or give --shard auto/N)');
    if (slurmCount !== undefined && given !== undefined && slurmCount !== given) {
      throw new ShardSpecError(`--shard auto/${given} but SLURM_ARRAY_TASK_COUNT is ${slurmCount}`);
    }
    if (id < min) throw new ShardSpecError(`SLURM_ARRAY_TASK_ID ${id} is below SLURM_ARRAY_TASK_MIN ${min}`);
    return checked(id - min, count, `SLURM_ARRAY_TASK_ID=${id}, SLURM_ARRAY_TASK_MIN=${min}, count ${count}; use a contiguous --array such as 0-${count - 1}`);
  }
  if (env.JOB_COMPLETION_INDEX !== undefined) {
    const index = int(env.JOB_COMPLETION_INDEX, 'JOB_COMPLETION_INDEX');
    const count = given ?? (env.LLAVA_RAD_SHARD_COUNT === undefined ? undefined : int(env.LLAVA_RAD_SHARD_COUNT, 'LLAVA_RAD_SHARD_COUNT'));
    if (count === undefined) throw new ShardSpecError('--shard auto under a Kubernetes indexed Job needs the count: --shard auto/N (N = the Job\'s completions) or LLAVA_RAD_SHARD_COUNT');
    return checked(index, count, `JOB_COMPLETION_INDEX=${index}, count ${count}`);
  }
  throw new ShardSpecError('--shard auto found neither SLURM_ARRAY_TASK_ID (Slurm array job) nor JOB_COMPLETION_INDEX (Kubernetes indexed Job); give --shard I/N');
}
