// GREEN on our engine: the answer parsing against GREEN's own code (goldens by
// test/fixtures/green/make_green_goldens.py, run on Stanford-AIMI/GREEN), the prompt read from a checkout
// against Python's make_prompt, the chat tokenization against llama.cpp's, and a run on a tiny model.
import { readFileSync } from 'node:fs';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, type LlamaModel } from '../lib/index.js';
import {
  GREEN_CATEGORIES, GREEN_MAX_LENGTH, cleanGreenResponse, greenCategoryCounts, greenChatPieces, greenCounts, greenPromptTokens,
  greenScoreOf, hfCleanUpTokenization, loadGreenPrompt, makeGreenPrompt, pyInt, scoreGreen, summarizeGreen, type GreenStudy,
} from '../lib/eval/green/index.js';
import { referenceTokenizeSpecial } from './helpers/llamacpp.js';
import { runCliInProcess } from './helpers/cli-in-process.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtures = path.join(here, 'fixtures', 'green');
const checkout = path.join(fixtures, 'checkout');

interface ParseCase {
  answer: string;
  cleaned: string | null;
  significant: number[];
  significantTotal: number;
  insignificant: number[];
  insignificantTotal: number;
  matched: number;
  green: number;
}
const parse = JSON.parse(readFileSync(path.join(fixtures, 'parse.json'), 'utf8')) as {
  cases: ParseCase[];
  summary: { mean: number; std: number; accuracy: Record<string, number> };
};
const prompts = JSON.parse(readFileSync(path.join(fixtures, 'prompts.json'), 'utf8')) as { reference: string; candidate: string; prompt: string }[];

describe('GREEN answer parsing equals GREEN\'s own code', () => {
  it(`clean_responses, the three categories' counts and compute_green on ${parse.cases.length} answers`, () => {
    expect(parse.cases.length).toBeGreaterThanOrEqual(300);
    let scored = 0;
    for (const [i, c] of parse.cases.entries()) {
      const cleaned = cleanGreenResponse(c.answer);
      expect(cleaned, `answer ${i}: clean_responses`).toBe(c.cleaned ?? c.answer);
      const [sigTotal, sig] = greenCategoryCounts(cleaned, GREEN_CATEGORIES[0]);
      const [insTotal, ins] = greenCategoryCounts(cleaned, GREEN_CATEGORIES[1]);
      const [matched] = greenCategoryCounts(cleaned, GREEN_CATEGORIES[2]);
      expect([sigTotal, sig, insTotal, ins, matched], `answer ${i}: counts`).toEqual([c.significantTotal, c.significant, c.insignificantTotal, c.insignificant, c.matched]);
      expect(greenScoreOf(greenCounts(cleaned)), `answer ${i}: score`).toBe(c.green);
      if (c.green > 0) scored++;
    }
    // the set exercises both outcomes
    expect(scored, 'answers with a positive score').toBeGreaterThan(50);
    expect(parse.cases.length - scored, 'answers scored 0').toBeGreaterThan(50);
  });

  it('compute_summary\'s mean, std and per-sub-category accuracy', () => {
    const studies: GreenStudy[] = parse.cases.map((c) => ({
      score: c.green, counts: { significant: c.significant, significantTotal: c.significantTotal, matched: c.matched },
      analysis: '', nTokens: 0, stopReason: 'eos',
    }));
    const r = summarizeGreen(studies, 'x');
    expect(r.score, 'np.mean').toBe(parse.summary.mean);
    expect(r.std, 'np.std').toBe(parse.summary.std);
    expect(r.accuracy).toEqual(parse.summary.accuracy);
    expect(r.ci[0]).toBeLessThan(r.score);
    expect(r.ci[1]).toBeGreaterThan(r.score);
  });

  it('reads Unicode digits as Python\'s int() does, and cleans tokenization spaces as transformers does', () => {
    expect(pyInt('٣')).toBe(3);
    expect(pyInt('१०')).toBe(10);
    expect(pyInt('𝟐')).toBe(2);
    expect(hfCleanUpTokenization("a . b , c ' d can n't I 'm it 's we 've they 're ?")).toBe("a. b, c'd cann't I'm it's we've they're?");
  });
});

describe('GREEN prompt from a checkout', () => {
  it(`make_prompt of the checkout equals Python's on ${prompts.length} report pairs`, () => {
    const p = loadGreenPrompt(checkout);
    expect(p.maxWords, 'max_len default read from the signature').toBe(12);
    expect(p.sha256).toMatch(/^[0-9a-f]{64}$/);
    for (const [i, c] of prompts.entries()) expect(makeGreenPrompt(p, c.reference, c.candidate), `pair ${i}`).toBe(c.prompt);
  });

  it('refuses a missing folder, a layout without make_prompt, and unknown fields', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'green-'));
    expect(() => loadGreenPrompt(path.join(dir, 'nope'))).toThrow(expect.objectContaining({ code: 'IO' }));
    expect(() => loadGreenPrompt(dir)).toThrow(expect.objectContaining({ code: 'IO' }));
    expect(() => loadGreenPrompt('')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    mkdirSync(path.join(dir, 'green_score'));
    const utils = path.join(dir, 'green_score', 'utils.py');
    writeFileSync(utils, 'def other():\n    return 1\n');
    expect(() => loadGreenPrompt(dir)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
    writeFileSync(utils, 'def make_prompt(text1, text2):\n    prompt = f"{text1} {text2} {text3}"\n    return prompt\n');
    expect(() => loadGreenPrompt(dir)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED', message: expect.stringContaining('{text3}') }));
    writeFileSync(utils, 'def make_prompt(text1, text2):\n    prompt = "".join([text1, text2])\n    return prompt\n');
    expect(() => loadGreenPrompt(dir)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED' }));
  });
});

describe('GREEN on a tiny LLaMA', () => {
  let modelPath: string;
  let model: LlamaModel;
  beforeAll(async () => {
    modelPath = await tinyLlamaPath('f32');
    model = await loadModel({ model: modelPath, contextSize: GREEN_MAX_LENGTH });
  }, 120_000);
  afterAll(async () => {
    await model?.dispose();
  });

  it('tokenizes the chat as llama.cpp does with its special tokens parsed (BOS, a piece, EOS, ...)', async () => {
    const p = loadGreenPrompt(checkout);
    for (const c of prompts) {
      const ours = greenPromptTokens(model, p, c.reference, c.candidate);
      const text = '<s>' + greenChatPieces(makeGreenPrompt(p, c.reference, c.candidate)).map((piece) => `${piece}</s>`).join('');
      const ref = await referenceTokenizeSpecial(modelPath, text);
      expect(ours, `pair "${c.reference.slice(0, 20)}": ${ours.length} tokens`).toEqual(ref);
      expect(ours.filter((t) => t === model.info.eosToken).length).toBe(3);
    }
  }, 120_000);

  it('scores pairs: each study\'s score is its analysis\'s, the same run twice gives the same, the length cap holds', async () => {
    const p = loadGreenPrompt(checkout);
    const pairs = [
      { reference: 'No acute cardiopulmonary process.', prediction: 'Small left pleural effusion.' },
      { reference: 'Heart size is normal.', prediction: 'Heart size is normal.' },
      { reference: 'Mild cardiomegaly.', prediction: 'No acute process.' },
    ];
    const maxLength = 160;
    const a = await scoreGreen(pairs, { model, prompt: p, parallel: 1, maxLength });
    const again = await scoreGreen(pairs, { model, prompt: p, parallel: 1, maxLength });
    const b = await scoreGreen(pairs, { model: modelPath, prompt: p, parallel: 2, maxLength });
    for (const r of [a, b]) {
      expect(r.studies).toHaveLength(3);
      for (const [i, s] of r.studies.entries()) {
        expect(s.score, `study ${i}`).toBe(greenScoreOf(greenCounts(s.analysis)));
        const nPrompt = greenPromptTokens(model, p, pairs[i]!.reference, pairs[i]!.prediction).length;
        expect(s.nTokens, `study ${i}: generated tokens`).toBeGreaterThan(0);
        expect(nPrompt + s.nTokens, `study ${i}: prompt + answer within maxLength`).toBeLessThanOrEqual(maxLength);
      }
      expect(r.promptSha256).toBe(p.sha256);
    }
    expect(again.studies.map((s) => s.analysis)).toEqual(a.studies.map((s) => s.analysis));
  }, 600_000);

  it('llava-rad eval --metrics green: JSON with the score, interval, std and each study; usage errors name what is missing', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'green-cli-'));
    const preds = path.join(dir, 'preds.jsonl');
    writeFileSync(preds, [
      { id: 's1', reference: 'No acute cardiopulmonary process.', prediction: 'Small left pleural effusion.' },
      { id: 's2', reference: 'Heart size is normal.', prediction: 'Heart size is normal.' },
    ].map((r) => JSON.stringify(r)).join('\n') + '\n');
    const short = ['--green-max-length', '200'];
    const html = path.join(dir, 'report.html');
    const r = await runCliInProcess(['eval', preds, '--metrics', 'bleu,green', '--green', modelPath, '--green-dir', checkout, '--green-parallel', '2', ...short, '--json', '--html', html]);
    expect(r.code, r.err).toBe(0);
    const out = JSON.parse(r.out.trim().split('\n').at(-1)!) as { n: number; metrics: { bleu1: unknown; green: { score: number; ci: number[]; std: number; studies: { id: string; score: number; analysis: string }[]; prompt: { sha256: string } } } };
    expect(out.n).toBe(2);
    expect(out.metrics.bleu1).toBeDefined();
    const g = out.metrics.green;
    expect(g.studies.map((s) => s.id)).toEqual(['s1', 's2']);
    for (const s of g.studies) expect(s.score).toBe(greenScoreOf(greenCounts(s.analysis)));
    expect(g.score).toBe((g.studies[0]!.score + g.studies[1]!.score) / 2);
    expect(g.prompt.sha256).toBe(loadGreenPrompt(checkout).sha256);
    const page = readFileSync(html, 'utf8');
    expect(page).toContain('<h2>GREEN</h2>');
    expect(page).toContain(`<td>${g.score.toFixed(4)}</td>`);
    const noDir = await runCliInProcess(['eval', preds, '--metrics', 'green', '--green', modelPath], { LLAVA_RAD_HOME: dir });
    expect(noDir.code).toBe(2);
    expect(noDir.err).toContain('--green-dir DIR');
    const noModel = await runCliInProcess(['eval', preds, '--metrics', 'green', '--green-dir', checkout], { LLAVA_RAD_HOME: dir, LLAVA_RAD_GREEN: undefined });
    expect(noModel.code).toBe(2);
    expect(noModel.err).toContain('--green FILE.gguf');
    // --paired: B's second study is A's first; each side's GREEN is the one the unpaired run gives
    const predsB = path.join(dir, 'preds-b.jsonl');
    writeFileSync(predsB, [
      { id: 's1', reference: 'No acute cardiopulmonary process.', prediction: 'Small left pleural effusion.' },
      { id: 's2', reference: 'Heart size is normal.', prediction: 'Small left pleural effusion.' },
    ].map((x) => JSON.stringify(x)).join('\n') + '\n');
    const one = ['--green', modelPath, '--green-dir', checkout, '--green-parallel', '1', ...short, '--json'];
    const ua = await runCliInProcess(['eval', preds, '--metrics', 'green', ...one]);
    const ub = await runCliInProcess(['eval', predsB, '--metrics', 'green', ...one]);
    const paired = await runCliInProcess(['eval', preds, predsB, '--paired', '--metrics', 'green', ...one, '--bootstrap', '100']);
    expect(paired.code, paired.err).toBe(0);
    const pg = (JSON.parse(paired.out.trim().split('\n').at(-1)!) as { metrics: { green: { a: number; b: number; diff: number; ci: number[] } } }).metrics.green;
    const score = (x: { out: string }) => (JSON.parse(x.out.trim().split('\n').at(-1)!) as { metrics: { green: { score: number } } }).metrics.green.score;
    expect(pg.a).toBe(score(ua));
    expect(pg.b).toBe(score(ub));
    expect(pg.diff).toBe(pg.b - pg.a);
  }, 600_000);

  it('rejects an empty set and bad options with typed errors', async () => {
    const p = loadGreenPrompt(checkout);
    await expect(scoreGreen([], { model, prompt: p })).rejects.toMatchObject({ code: 'BAD_PREDICTIONS' });
    await expect(scoreGreen([{ reference: 'a', prediction: 'b' }], { model, prompt: p, parallel: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
