// GREEN's prompt, read from the user's copy of Stanford-AIMI/GREEN (never shipped with this package), and the
// chat text the GREEN model is given.
//
// Facts from Stanford-AIMI/GREEN at d72c195 (green_score/utils.py, green_score/green.py):
// - utils.py `make_prompt(text1, text2, max_len=300)`: each report is cut to its first max_len words
//   (" ".join(text.split()[:max_len]), Python's whitespace) and put into one f-string assigned to `prompt`
//   in that function, with the fields {text1} (the reference) and {text2} (the candidate).
// - green.py sets a chat template of its own on the tokenizer and calls apply_chat_template on
//   [{from: human, value: prompt}, {from: gpt, value: ""}] with add_generation_prompt=True. Rendered with
//   transformers' Jinja settings (trim_blocks: a newline right after a {% %} tag is dropped; the one after a
//   {{ }} expression stays) that is
//     "<|user|>\n" + prompt + EOS + "\n" + "<|assistant|>\n" + "" + EOS + "\n" + "<|assistant|>" + "\n"
//   where EOS is the text "</s>", which the tokenizer turns back into the EOS token. `<|user|>` and
//   `<|assistant|>` are plain text in LLaMA-2's vocabulary.
// - The tokenizer is loaded with add_eos_token=True: encoding adds BOS first and EOS last; then truncation
//   to max_length 2048 tokens (from the right), and generation up to max_length 2048 in all, greedy.
// How the text between the EOS tokens is tokenized: LLaMA's tokenizer splits special tokens out first and
// gives each text piece SentencePiece's leading-space prefix (what llama.cpp does after a special token, and
// what a PromptPart {text} does here). That is the slow/legacy behaviour; the model's own tokenizer.json
// was not available to check it against.

import { LlavaRadError } from '../../errors.js';
import { pythonFormat, readCheckoutModule, readPythonString, templateFields } from '../judge/chexprompt-template.js';
import { pySplit } from '../text.js';

/** where utils.py may sit under --green-dir: a clone, or the installed package directory */
export const GREEN_MODULE_PATHS = ['green_score/utils.py', 'utils.py'] as const;
export const GREEN_PROMPT_FIELDS = ['text1', 'text2'] as const;
/** words kept of each report when make_prompt's signature gives no default */
export const GREEN_DEFAULT_MAX_WORDS = 300;
/** the chat text around the prompt; EOS stands between the pieces (green.py's chat template) */
export const GREEN_USER_TAG = '<|user|>\n';
export const GREEN_ASSISTANT_TAG = '<|assistant|>';
/** the longest token sequence, prompt and answer together (green.py: max_length 2048) */
export const GREEN_MAX_LENGTH = 2048;

export interface GreenPrompt {
  /** the utils.py read */
  path: string;
  /** sha256 of that file (hex), to record which prompt scored a run */
  sha256: string;
  /** the f-string as a str.format template with the fields {text1} and {text2} */
  template: string;
  /** words kept of each report (make_prompt's max_len default) */
  maxWords: number;
}

function unsupported(path: string, what: string): LlavaRadError {
  return new LlavaRadError('UNSUPPORTED', `${path}: ${what}; this layout of GREEN's green_score/utils.py is not supported`);
}

/** the body of `def NAME(...)` (from the def line to the next line that is not indented more) */
function functionSource(src: string, name: string, path: string): { signature: string; body: string } {
  const def = new RegExp(`^([ \\t]*)def ${name}\\(([^)]*)\\)[^\\n]*:[ \\t]*\\n`, 'm').exec(src);
  if (!def) throw unsupported(path, `no def ${name}(...)`);
  const indent = def[1]!.length;
  const start = def.index + def[0].length;
  const lines = src.slice(start).split('\n');
  let length = 0;
  for (const line of lines) {
    const lead = /^[ \t]*/.exec(line)![0].length;
    if (line.trim() !== '' && lead <= indent) break;
    length += line.length + 1;
  }
  return { signature: def[2]!, body: src.slice(start, start + length) };
}

/** loads make_prompt's template from a GREEN checkout (or the installed green_score package directory) */
export function loadGreenPrompt(greenDir: string): GreenPrompt {
  const { path, sha256, src } = readCheckoutModule(greenDir, GREEN_MODULE_PATHS, '--green-dir (greenDir)', 'https://github.com/Stanford-AIMI/GREEN');
  const { signature, body } = functionSource(src, 'make_prompt', path);
  const maxLenDefault = /\bmax_len\s*=\s*(\d+)/.exec(signature);
  const maxWords = maxLenDefault ? Number(maxLenDefault[1]) : GREEN_DEFAULT_MAX_WORDS;
  // the one assignment `prompt = f"..."` (adjacent literals are concatenated, as Python does)
  const assign = /^[ \t]*prompt[ \t]*=[ \t]*(\(?)/m.exec(body);
  if (!assign) throw unsupported(path, 'make_prompt has no `prompt = f"..."`');
  let i = assign.index + assign[0].length;
  const paren = assign[1] === '(';
  let template = '';
  let count = 0;
  for (;;) {
    while (i < body.length && (body[i] === ' ' || body[i] === '\t' || (paren && body[i] === '\n'))) i++;
    if (paren && body[i] === ')') break;
    if (!/[rRuUfF'"]/.test(body[i] ?? '')) break;
    let lit: { value: string; end: number };
    try {
      lit = readPythonString(body, i, { fString: true });
    } catch (e) {
      throw unsupported(path, `make_prompt's prompt is ${(e as Error).message}`);
    }
    template += lit.value;
    count++;
    i = lit.end;
  }
  if (count === 0) throw unsupported(path, "make_prompt's prompt is not a string literal");
  const fields = new Set(templateFields(template));
  for (const f of GREEN_PROMPT_FIELDS) if (!fields.has(f)) throw unsupported(path, `make_prompt's prompt has no {${f}} field`);
  for (const f of fields) {
    if (!(GREEN_PROMPT_FIELDS as readonly string[]).includes(f)) throw unsupported(path, `make_prompt's prompt has the field {${f}}, expected only {text1} and {text2}`);
  }
  return { path, sha256, template, maxWords };
}

/** make_prompt(reference, candidate): both cut to their first maxWords words */
export function makeGreenPrompt(p: GreenPrompt, reference: string, candidate: string): string {
  const cut = (s: string) => pySplit(s).slice(0, p.maxWords).join(' ');
  return pythonFormat(p.template, { text1: cut(reference), text2: cut(candidate) }, `${p.path} make_prompt`);
}

/** the text pieces of the chat, in order; EOS goes after each (green.py's template; encoding adds BOS first) */
export function greenChatPieces(prompt: string): string[] {
  return [GREEN_USER_TAG + prompt, `\n${GREEN_ASSISTANT_TAG}\n`, `\n${GREEN_ASSISTANT_TAG}\n`];
}
