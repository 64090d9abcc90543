// Shared pieces of the command line: the command shape, option parsing and argument checks.

import { existsSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isLlavaRadError } from '../errors.js';
import type { LoadModelOptions } from '../options.js';

/** A bad command line: printed as one line, exit code 2. */
export class UsageError extends Error {}

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** its standard output is a log (serve), not its result: a reader that went away does not end it */
  stdoutIsLog?: boolean;
  run(args: string[], io: Io, signal: AbortSignal): Promise<number>;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** "--max-tokens -3" would read -3 as an option: join a negative-number value to its string option */
export function joinNegativeValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = args[i + 1];
    const long = a.startsWith('--') ? a.slice(2) : Object.keys(options).find((k) => a === `-${options[k]!.short ?? '\0'}`);
    if (long !== undefined && options[long]?.type === 'string' && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`--${long}=${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

export function parse(args: string[], options: Options, command: string): Record<string, string | boolean | undefined> {
  return parseWithPositionals(args, options, command, 0).values;
}

export function parseWithPositionals(args: string[], options: Options, command: string, maxPositionals: number): {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
} {
  args = joinNegativeValues(args, options);
  try {
    const { values, positionals } = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: maxPositionals > 0 });
    if (positionals.length > maxPositionals) throw new Error(`unexpected argument '${positionals[maxPositionals]}'`);
    return { values: values as Record<string, string | boolean | undefined>, positionals };
  } catch (e) {
    const msg = e instanceof Error ? e.message.split('\n')[0]!.replace(/^TypeError \[[A-Z_]+\]: /, '') : String(e);
    throw new UsageError(`${command}: ${msg}`);
  }
}

export function intArg(v: string | boolean | undefined, flag: string, lo: number, hi: number): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v).trim();
  if (!/^[+-]?\d+$/.test(s) || Number(s) < lo || Number(s) > hi) {
    throw new UsageError(`${flag} must be an integer between ${lo} and ${hi}, got '${String(v)}'`);
  }
  return Number(s);
}

export function numArg(v: string | boolean | undefined, flag: string, lo: number, hi: number): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v).trim();
  const n = s === '' ? NaN : Number(s);
  if (!Number.isFinite(n) || n < lo || n > hi) throw new UsageError(`${flag} must be a number between ${lo} and ${hi}, got '${String(v)}'`);
  return n;
}

/** what a path that is not a regular file is, for messages: "the folder X", "the character device X", ... */
export function describeNonFile(p: string): string {
  const st = statSync(p);
  const kind = st.isDirectory() ? 'folder' : st.isCharacterDevice() ? 'character device'
    : st.isBlockDevice() ? 'block device' : st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : 'special file';
  return `the ${kind} ${p}`;
}

/** what a path that is not a folder is, for messages: "the file X", "the FIFO X", ... */
export function describeNonFolder(p: string): string {
  return statSync(p).isFile() ? `the file ${p}` : describeNonFile(p);
}

/** what `p` is (links followed), or a usage error saying it is not there: "COMMAND: WHAT not found: P" */
function statArg(command: string, what: string, p: string): Stats {
  try {
    return statSync(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') throw new UsageError(`${command}: ${what} not found: ${p}`);
    throw new UsageError(`${command}: cannot read ${what} ${p} (${code ?? (e as Error).message})`);
  }
}

/**
 * `p` names an existing regular file (or, with `fifo`, a named pipe): else a usage error saying what came,
 * "COMMAND: WHAT file not found: P" or "COMMAND: WHAT must be a file, got the folder P". Returns `p`.
 */
export function requireFile(command: string, what: string, p: string | boolean | undefined, opts: { fifo?: boolean } = {}): string {
  if (typeof p !== 'string' || p === '') throw new UsageError(`${command}: ${what} is required`);
  const st = statArg(command, `${what} file`, p);
  if (!(st.isFile() || (opts.fifo === true && st.isFIFO()))) {
    throw new UsageError(`${command}: ${what} must be a ${opts.fifo === true ? 'file or a named pipe' : 'file'}, got ${describeNonFile(p)}`);
  }
  return p;
}

/** `p` names an existing folder: else "COMMAND: WHAT folder not found: P" or "COMMAND: WHAT must be a folder, got the file P" */
export function requireFolder(command: string, what: string, p: string | boolean | undefined): string {
  if (typeof p !== 'string' || p === '') throw new UsageError(`${command}: ${what} is required`);
  if (!statArg(command, `${what} folder`, p).isDirectory()) throw new UsageError(`${command}: ${what} must be a folder, got ${describeNonFolder(p)}`);
  return p;
}

/**
 * `p` may be written: its folder exists (unless the command makes it: `makesFolder`) and `p`, where it exists,
 * is a regular file (a file put in place by renaming a temporary one over it must not replace a device:
 * lib/replace-file.ts), or with `stream` (a file written in place) also a pipe or a character device such as
 * /dev/stdout
 */
export function requireOutputFile(command: string, what: string, p: string, opts: { stream?: boolean; makesFolder?: boolean } = {}): string {
  const dir = path.dirname(path.resolve(p));
  if (opts.makesFolder !== true && !statArg(command, `${what} folder`, dir).isDirectory()) {
    throw new UsageError(`${command}: ${what} must be in a folder, got ${describeNonFolder(dir)}`);
  }
  if (!existsSync(p)) return p;
  const st = statSync(p);
  if (!(st.isFile() || (opts.stream === true && (st.isFIFO() || st.isCharacterDevice())))) {
    throw new UsageError(`${command}: ${what} must be a file, got ${describeNonFile(p)}`);
  }
  return p;
}

export function requireModel(v: string | boolean | undefined, command: string): string {
  if (typeof v !== 'string' || v === '') throw new UsageError(`${command}: --model FILE.gguf is required`);
  return requireFile(command, '--model', v);
}

/**
 * --model DIR, or --model FILE.gguf with --mmproj FILE.gguf (the vision GGUF), as `findings`, `batch` and
 * `serve` take them; --model defaults to the folder `llava-rad pull` fills.
 */
export function llavaRadModelArgs(command: string, v: Record<string, string | boolean | undefined>, defaultFolder: string | undefined): { model: string } | { decoder: string; vision: string } {
  const model = v.model ?? defaultFolder;
  if (typeof model !== 'string' || model === '') throw new UsageError(`${command}: no model: run \`llava-rad pull\` first or pass --model DIR (or --model FILE.gguf --mmproj FILE.gguf)`);
  if (statArg(command, 'model', model).isDirectory()) {
    if (v.mmproj !== undefined) throw new UsageError(`${command}: --mmproj goes with --model FILE.gguf, not with a model folder`);
    return { model };
  }
  requireFile(command, '--model', model);
  if (typeof v.mmproj !== 'string' || v.mmproj === '') throw new UsageError(`${command}: --model names a file, so --mmproj FILE.gguf (the vision GGUF) is required too`);
  return { decoder: model, vision: requireFile(command, '--mmproj', v.mmproj) };
}

export function backendArg(v: string | boolean | undefined): LoadModelOptions['backend'] {
  if (v === undefined) return undefined;
  if (v !== 'auto' && v !== 'cpu' && v !== 'cuda') throw new UsageError(`--backend must be one of auto, cpu, cuda, got '${String(v)}'`);
  return v;
}

/** option errors the library finds before any work are usage errors too */
export function asUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isLlavaRadError(e, 'INVALID_ARGUMENT')) throw new UsageError(e.message);
    throw e;
  }
}

export async function asUsageAsync<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (isLlavaRadError(e, 'INVALID_ARGUMENT')) throw new UsageError(e.message);
    throw e;
  }
}

export const round = (x: number) => Math.round(x * 1000) / 1000;

/** the options of how a study's image is read, shared by findings, batch and serve */
export const IMAGE_OPTIONS: Options = {
  'high-bit-depth': { type: 'string' },
  'dicom-window': { type: 'boolean' },
  'skip-lateral': { type: 'boolean' },
};
