#!/usr/bin/env node
// The decoder GGUF that `llava-rad convert` wrote, run by llama.cpp (node-llama-cpp, the same helper the tests
// use) against `llava-rad generate --json` (our CLI), greedy, on a few prompts. Compares the tokens up to the
// first step where llama.cpp's own top-1/top-2 margin falls under 0.1 (after such a near-tie, float noise may
// legitimately pick the other token).
//
//   node --import ./scripts/ts-hooks.mjs scripts/reference/llamacpp_vs_generate.mjs MODEL_DIR [N_TOKENS]
// prints one JSON line {decoder, prompts, compared, equal, cases: [...]}; exit 0 when every compared token agrees.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { confidentPrefixLength, disposeReference, referenceGreedyDetailed } from '../../test/helpers/llamacpp.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PROMPTS = ['The lungs are clear. No pleural effusion.', 'Heart size is normal and the mediastinum is unremarkable.',
  'Findings: there is a small left basilar opacity', 'Comparison:'];

const [dir, nArg] = process.argv.slice(2);
if (!dir) {
  process.stderr.write('usage: llamacpp_vs_generate.mjs MODEL_DIR [N_TOKENS]\n');
  process.exit(2);
}
const n = Number(nArg ?? 24);
const decoder = path.join(dir, JSON.parse(readFileSync(path.join(dir, 'llava-rad.json'), 'utf8')).decoder);
const cases = [];
let ok = true;
for (const text of PROMPTS) {
  const r = spawnSync(process.execPath, [path.join(root, 'dist', 'cli.js'), 'generate', '--model', decoder, '--prompt', text,
    '--max-tokens', String(n), '--json'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`llava-rad generate failed: ${r.stderr}`);
  const ours = JSON.parse(r.stdout.trim().split('\n').pop());
  const ref = await referenceGreedyDetailed(decoder, ours.prompt_tokens, n, { contextSize: 256 });
  const k = confidentPrefixLength(ref, 0.1);
  const equal = JSON.stringify(ours.tokens.slice(0, k)) === JSON.stringify(ref.tokens.slice(0, k));
  ok &&= equal;
  cases.push({ prompt: text, compared: k, equal });
}
await disposeReference();
process.stdout.write(JSON.stringify({ decoder: path.basename(decoder), prompts: PROMPTS.length,
  compared: cases.reduce((s, c) => s + c.compared, 0), equal: ok, cases }) + '\n');
process.exit(ok ? 0 : 1);
