// CheXprompt's prompt, read from the user's copy of microsoft/chexprompt (never shipped with this package).
//
// The prompt lives in the Python module `src/chexprompt/evaluator.py` as three module-level string constants:
// SYSTEM_INSTRUCTIONS (the system message), USER_INSTRUCTIONS (the user message, a str.format template with the
// fields {examples_formatted}, {eval_reference}, {eval_candidate}) and EXAMPLES_FORMATTED (the few-shot examples,
// substituted as a value). We read those literals with a small Python string-literal reader and fill the template
// with str.format's rules ({{ and }} are braces; substituted values are not scanned again).

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { LlavaRadError } from '../../errors.js';

/** where evaluator.py may sit under --chexprompt-dir: a clone, the package directory, or its parent */
export const CHEXPROMPT_MODULE_PATHS = ['src/chexprompt/evaluator.py', 'evaluator.py', 'chexprompt/evaluator.py'] as const;
export const CHEXPROMPT_CONSTANTS = ['SYSTEM_INSTRUCTIONS', 'USER_INSTRUCTIONS', 'EXAMPLES_FORMATTED'] as const;
export const CHEXPROMPT_FIELDS = ['examples_formatted', 'eval_reference', 'eval_candidate'] as const;

export interface ChexpromptTemplate {
  /** the evaluator.py read */
  path: string;
  /** sha256 of that file (hex), to record which prompt scored a run */
  sha256: string;
  system: string;
  user: string;
  examples: string;
}

function unsupported(path: string, what: string): LlavaRadError {
  return new LlavaRadError('UNSUPPORTED', `${path}: ${what}; this layout of chexprompt's evaluator.py is not supported`);
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v',
};

/**
 * Reads one Python string literal (optionally prefixed r/u/b) starting at `src[pos]`; returns its value and
 * the index after it, or throws a plain Error with the reason. An f-string is refused unless `fString` is set:
 * then its escapes are decoded and its replacement fields are kept as written ({name}, {{, }}), so the value is
 * a str.format template of the same text (pythonFormat fills it).
 */
export function readPythonString(src: string, pos: number, options: { fString?: boolean } = {}): { value: string; end: number } {
  let i = pos;
  let raw = false;
  while (/[rRuUbBfF]/.test(src[i] ?? '')) {
    const c = src[i]!.toLowerCase();
    if (c === 'f' && options.fString !== true) throw new Error('an f-string');
    if (c === 'b') throw new Error('a bytes literal');
    if (c === 'r') raw = true;
    i++;
    if (i - pos > 2) throw new Error('not a string literal');
  }
  const q = src[i];
  if (q !== '"' && q !== "'") throw new Error('not a string literal');
  const triple = src.startsWith(q.repeat(3), i);
  const close = triple ? q.repeat(3) : q;
  i += close.length;
  let out = '';
  for (;;) {
    if (i >= src.length) throw new Error('an unterminated string');
    if (src.startsWith(close, i)) return { value: out, end: i + close.length };
    const c = src[i]!;
    if (c === '\n' && !triple) throw new Error('an unterminated string');
    if (c !== '\\') {
      out += c;
      i++;
      continue;
    }
    const n = src[i + 1];
    if (n === undefined) throw new Error('an unterminated string');
    if (raw) {
      // a raw string keeps the backslash, but an escaped quote still does not end it
      out += c + n;
      i += 2;
      continue;
    }
    if (n === '\n') {
      i += 2;
      continue;
    }
    if (n === '\r') {
      i += src[i + 2] === '\n' ? 3 : 2;
      continue;
    }
    if (n in SIMPLE_ESCAPES) {
      out += SIMPLE_ESCAPES[n];
      i += 2;
      continue;
    }
    const hex = (len: number) => {
      const h = src.slice(i + 2, i + 2 + len);
      if (!new RegExp(`^[0-9a-fA-F]{${len}}$`).test(h)) throw new Error('a bad \\x/\\u escape');
      out += String.fromCodePoint(parseInt(h, 16));
      i += 2 + len;
    };
    if (n === 'x') hex(2);
    else if (n === 'u') hex(4);
    else if (n === 'U') hex(8);
    else if (/[0-7]/.test(n)) {
      const m = /^[0-7]{1,3}/.exec(src.slice(i + 1))![0];
      out += String.fromCodePoint(parseInt(m, 8));
      i += 1 + m.length;
    } else if (n === 'N') throw new Error('a \\N{...} escape');
    else {
      // Python keeps unknown escapes as written
      out += c + n;
      i += 2;
    }
  }
}

/**
 * The value of the module-level assignment `NAME = <string literal(s)>` in Python source: one literal, or
 * adjacent literals (inside parentheses they may span lines), concatenated as Python does.
 */
export function pythonStringConstant(src: string, name: string, path = '<source>'): string {
  const re = new RegExp(`^${name}[ \\t]*=[ \\t]*`, 'm');
  const m = re.exec(src);
  if (!m) throw unsupported(path, `no module-level ${name} = "..."`);
  let i = m.index + m[0].length;
  let paren = false;
  if (src[i] === '(') {
    paren = true;
    i++;
  }
  let value = '';
  let count = 0;
  for (;;) {
    // skip blanks (and, inside parentheses, newlines and comments)
    for (;;) {
      const c = src[i];
      if (c === ' ' || c === '\t') i++;
      else if (c === '\\' && src[i + 1] === '\n') i += 2;
      else if (paren && (c === '\n' || c === '\r')) i++;
      else if (paren && c === '#') while (i < src.length && src[i] !== '\n') i++;
      else break;
    }
    if (paren && src[i] === ')') {
      i++;
      break;
    }
    if (!/[rRuUbBfF'"]/.test(src[i] ?? '')) {
      if (paren) throw unsupported(path, `${name} is not only string literals`);
      break;
    }
    let lit: { value: string; end: number };
    try {
      lit = readPythonString(src, i);
    } catch (e) {
      if (count > 0 && !paren) break;
      throw unsupported(path, `${name} is ${(e as Error).message}`);
    }
    value += lit.value;
    count++;
    i = lit.end;
  }
  if (count === 0) throw unsupported(path, `${name} is not a string literal`);
  // the statement must end here: an operator or call after the literal would change the value
  const rest = /^[ \t]*(#[^\n]*)?(\r?\n|$)/.exec(src.slice(i));
  if (!rest) throw unsupported(path, `${name} is not a plain string constant`);
  return value;
}

/** Python's `template.format(**values)` for plain `{name}` fields (no conversions or format specs) */
export function pythonFormat(template: string, values: Readonly<Record<string, string>>, what = 'the template'): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const c = template[i]!;
    if (c === '{') {
      if (template[i + 1] === '{') {
        out += '{';
        i += 2;
        continue;
      }
      const close = template.indexOf('}', i);
      if (close < 0) throw new LlavaRadError('UNSUPPORTED', `${what}: a "{" without its "}"`);
      const field = template.slice(i + 1, close);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(field)) throw new LlavaRadError('UNSUPPORTED', `${what}: the field {${field}} is not a plain name`);
      const v = values[field];
      if (v === undefined) throw new LlavaRadError('UNSUPPORTED', `${what}: unknown field {${field}}`);
      out += v;
      i = close + 1;
    } else if (c === '}') {
      if (template[i + 1] !== '}') throw new LlavaRadError('UNSUPPORTED', `${what}: a single "}"`);
      out += '}';
      i += 2;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** the names of the fields of a str.format template */
export function templateFields(template: string): string[] {
  const fields: string[] = [];
  const re = /\{\{|\}\}|\{([^{}]*)\}/g;
  for (let m = re.exec(template); m; m = re.exec(template)) if (m[1] !== undefined) fields.push(m[1]);
  return fields;
}

/**
 * Reads the Python module a prompt lives in from the user's clone of a repository: the first of `paths`
 * under `dir` that is a file. `flag` and `repo` name the option and the repository in the errors
 * (INVALID_ARGUMENT, IO). Returns the path, the bytes' sha256 and the source with CRLF as LF.
 */
export function readCheckoutModule(dir0: string, paths: readonly string[], flag: string, repo: string): { path: string; sha256: string; src: string } {
  if (typeof dir0 !== 'string' || dir0 === '') throw new LlavaRadError('INVALID_ARGUMENT', `${flag} must name a clone of ${repo}`);
  const dir = resolve(dir0);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new LlavaRadError('IO', `${flag} ${dir} is not a directory (expected a clone of ${repo})`);
  const path = paths.map((p) => join(dir, p)).find((p) => existsSync(p) && statSync(p).isFile());
  if (path === undefined) {
    throw new LlavaRadError('IO', `no prompt under ${dir}: expected ${join(dir, paths[0]!)} (git clone ${repo}, and pass the clone as ${flag})`);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new LlavaRadError('IO', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  return { path, sha256: createHash('sha256').update(bytes).digest('hex'), src: bytes.toString('utf8').replace(/\r\n/g, '\n') };
}

/** loads the prompt from a chexprompt checkout (or an installed chexprompt package directory) */
export function loadChexpromptTemplate(chexpromptDir: string): ChexpromptTemplate {
  const { path, sha256, src } = readCheckoutModule(chexpromptDir, CHEXPROMPT_MODULE_PATHS, '--chexprompt-dir (chexpromptDir)', 'https://github.com/microsoft/chexprompt');
  const [system, user, examples] = CHEXPROMPT_CONSTANTS.map((name) => pythonStringConstant(src, name, path)) as [string, string, string];
  const fields = new Set(templateFields(user));
  for (const f of CHEXPROMPT_FIELDS) {
    if (!fields.has(f)) throw unsupported(path, `USER_INSTRUCTIONS has no {${f}} field`);
  }
  for (const f of fields) {
    if (!(CHEXPROMPT_FIELDS as readonly string[]).includes(f)) throw unsupported(path, `USER_INSTRUCTIONS has an unknown field {${f}}`);
  }
  return { path, sha256, system, user, examples };
}

/** the [system, user] messages for one (reference, candidate) pair, as chexprompt's format_for_evaluation */
export function chexpromptMessages(t: ChexpromptTemplate, reference: string, candidate: string): [{ role: 'system'; content: string }, { role: 'user'; content: string }] {
  const user = pythonFormat(t.user, { examples_formatted: t.examples, eval_reference: reference, eval_candidate: candidate }, `${t.path} USER_INSTRUCTIONS`);
  return [{ role: 'system', content: t.system }, { role: 'user', content: user }];
}
