// `llava-rad batch` gives the same records at any --concurrency: the same findings, tokens and stop reasons,
// byte for byte, at a --max-tokens that brings the longest study close to its cells (2560 per study at 600),
// and a study whose reason makes it exceed them fails with CONTEXT_FULL up front at every concurrency instead
// of ending early by an amount that depends on what else runs. Tiny f32 models, greedy.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const cli = path.join(root, 'dist', 'cli.js');
const VISION = path.join(here, 'fixtures', 'vision', 'tiny-vision-f32.gguf');
const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-batch-conc-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Rec { id: string; findings?: string; tokens?: number[]; stop_reason?: string; error?: { code: string } }

describe('batch records do not depend on --concurrency', () => {
  it('--concurrency 1 and 8: identical findings, tokens and stop reasons; the oversized study is CONTEXT_FULL in both', async () => {
    if (!existsSync(cli)) {
      const b = spawnSync('npx', ['tsup'], { cwd: root, encoding: 'utf8' });
      expect(b.status, b.stderr).toBe(0);
    }
    const decoder = await tinyLlamaPath('f32');
    copyFileSync(path.join(here, 'fixtures', 'findings', 'radiograph-grey-900x1100.png'), path.join(tmp, 'a.png'));
    copyFileSync(path.join(here, 'fixtures', 'images', 'grey_700x600.png'), path.join(tmp, 'b.png'));
    const studies = [
      { id: 's0', image: 'a.png' },
      { id: 's1', image: 'b.png', reason: 'Cough.' },
      { id: 's2', image: 'a.png', reason: 'Shortness of breath. '.repeat(90) }, // ~450 tokens: near the 2560 cells
      { id: 's3', image: 'b.png', reason: 'Fever. '.repeat(30) },
      { id: 's4', image: 'a.png', reason: 'Chest pain, rule out pneumonia. '.repeat(100) }, // ~800 tokens: > 2560 cells
      { id: 's5', image: 'b.png' },
      { id: 's6', image: 'a.png', reason: 'Line placement.' },
      { id: 's7', image: 'b.png', reason: 'Follow-up. '.repeat(40) },
    ];
    writeFileSync(path.join(tmp, 'm.jsonl'), studies.map((s) => JSON.stringify(s)).join('\n') + '\n');
    const runs: Record<string, Rec>[] = [];
    for (const c of ['1', '8']) {
      const out = path.join(tmp, `p${c}.jsonl`);
      const r = spawnSync(process.execPath, [cli, 'batch', 'm.jsonl', '--model', decoder, '--mmproj', VISION, '--out', out,
        '--max-tokens', '600', '--concurrency', c, '--threads', '2', '-q'], { cwd: tmp, encoding: 'utf8', timeout: 600_000 });
      expect(r.status, `--concurrency ${c}: ${r.stderr}`).toBe(3); // finished, one study failed
      const recs = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Rec);
      expect(recs.length).toBe(studies.length);
      runs.push(Object.fromEntries(recs.map((x) => [x.id, x])));
    }
    const [one, eight] = runs as [Record<string, Rec>, Record<string, Rec>];
    for (const s of studies) {
      const a = one[s.id]!, b = eight[s.id]!;
      if (s.id === 's4') {
        expect(a.error?.code).toBe('CONTEXT_FULL');
        expect(b.error?.code).toBe('CONTEXT_FULL');
        continue;
      }
      expect(a.error, `${s.id}: ${JSON.stringify(a.error)}`).toBeUndefined();
      expect({ findings: b.findings, tokens: b.tokens, stop_reason: b.stop_reason }, `${s.id}: ${a.tokens!.length} tokens compared`)
        .toEqual({ findings: a.findings, tokens: a.tokens, stop_reason: a.stop_reason });
    }
    // the long study really came near its cells: it ran all 600 tokens (greedy on random weights rarely stops)
    expect(one.s2!.tokens!.length).toBeGreaterThan(100);
  }, 900_000);
});
