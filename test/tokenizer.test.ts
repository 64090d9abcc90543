// Tokenizer parity: our engine's SentencePiece-BPE tokenizer against llama.cpp (node-llama-cpp, special
// tokens off: the correctness reference) and llama-tokenizer-js (a port of SentencePiece's LLaMA
// tokenizer), on the corpus in test/corpus/tokenizer-corpus.ts, plus detokenization.
//
// Two models, both with the real LLaMA-2 pieces and SentencePiece's scores (-(id - 259) for normal
// pieces, -1e9 for the 16 whitespace pieces "▁", "▁▁", ..., which merge last):
// - "fixture": the shared tiny-LLaMA test model (test/helpers/tiny-llama.ts);
// - "sentencepiece": a model made here with the scores computed independently below. There llama.cpp,
//   llama-tokenizer-js and we must all agree on every text. When a native build has checked out llama.cpp
//   (build/llama.cpp), its models/ggml-vocab-llama-spm.gguf (converted from the real tokenizer.model)
//   confirms these scores, and
//   its .inp/.out test cases (SentencePiece's own ids) are run too.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import llamaTokenizer from 'llama-tokenizer-js';
import { readGgufFileInfo, type LlamaModel, type Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GgufValueType } from '../lib/gguf/types.js';
import { loadModel } from '../lib/index.js';
import { TOKENIZER_CORPUS, corpusTexts } from './corpus/tokenizer-corpus.js';
import { referenceLlama } from './helpers/llamacpp.js';
import { llamaVocab, makeTinyLlama, tinyLlamaPath } from './helpers/tiny-llama.js';

/** what this test uses of our model (lib/index.ts) */
interface OurModel {
  tokenize(text: string, opts?: { addBos?: boolean }): number[] | Int32Array;
  detokenize(ids: number[], opts?: { skipSpecial?: boolean; removeLeadingSpace?: boolean }): string;
  dispose(): Promise<void>;
}

const TEXTS = corpusTexts();
const SPACE_MARK = '\u2581';

interface Mismatch {
  text: string;
  ours: number[];
  other: number[];
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function describeMismatches(what: string, list: Mismatch[]): string {
  const lines = list.slice(0, 20).map((m) => `  ${JSON.stringify(m.text)}: ours [${m.ours}] ${what} [${m.other}]`);
  return `${list.length} mismatches\n${lines.join('\n')}`;
}

/** a text whose escaped form ("▁" + text, spaces as "▁") has a run of two or more space marks */
function hasSpaceRun(text: string): boolean {
  return text.length > 0 && (SPACE_MARK + text.replaceAll(' ', SPACE_MARK)).includes(SPACE_MARK + SPACE_MARK);
}

/** deterministic id sequences: control tokens, byte pieces (splitting multi-byte characters) and pieces */
function randomIdSequences(count: number, seed: number): number[][] {
  let s = seed >>> 0;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const out: number[][] = [];
  for (let i = 0; i < count; i++) {
    const n = Math.floor(rnd() * 12);
    const ids: number[] = [];
    for (let j = 0; j < n; j++) {
      const r = rnd();
      if (r < 0.1) ids.push(Math.floor(rnd() * 3)); // <unk> <s> </s>
      else if (r < 0.5) ids.push(3 + Math.floor(rnd() * 256)); // <0x00>..<0xFF>
      else ids.push(Math.floor(rnd() * 32000));
    }
    out.push(ids);
  }
  // UTF-8 characters split over byte pieces, and byte pieces that never form a character
  const bytePieces = (bytes: number[]): number[] => bytes.map((b) => 3 + b);
  out.push(bytePieces([0xc3, 0xa9]), [263, ...bytePieces([0xe4, 0xb8, 0xad]), 29889], bytePieces([0xf0, 0x9f, 0x98, 0x80]));
  out.push(bytePieces([0xe4, 0xb8]), bytePieces([0x80]), bytePieces([0xff, 0xfe]), [1, ...bytePieces([0x20, 0x41])], bytePieces([0x20]));
  out.push([1], [2], [0], [1, 2], [29871], [29871, 29871], [259], [1, 29871], [1, 259, 15043], [2, 15043]);
  return out;
}

/** The scores of LLaMA-2's tokenizer.model (what a GGUF converted from it carries). */
async function sentencePieceScores(): Promise<Float32Array> {
  const vocab = await llamaVocab();
  const scores = new Float32Array(vocab.tokens.length);
  for (let id = 0; id < vocab.tokens.length; id++) {
    if (vocab.tokenTypes[id] !== 1) scores[id] = 0;
    else if (/^\u2581+$/u.test(vocab.tokens[id]!)) scores[id] = -1e9;
    else scores[id] = -(id - 259);
  }
  return scores;
}

/** llama.cpp's LLaMA SPM test vocabulary, in the llama.cpp checkout of a native build (if there is one) */
function llamaSpmVocabPath(): string | undefined {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const dirs = [process.env.LLAVA_RAD_BUILD_DIR, 'build'].filter((d): d is string => !!d);
  for (const d of dirs) {
    const p = path.resolve(root, d, 'llama.cpp', 'models', 'ggml-vocab-llama-spm.gguf');
    if (existsSync(p) && existsSync(`${p}.inp`) && existsSync(`${p}.out`)) return p;
  }
  return undefined;
}

/** llama.cpp's test-tokenizer-0 case files: inputs separated by a marker line, one line of ids each */
function readVocabTests(vocabPath: string): { text: string; ids: number[] }[] {
  const raw = readFileSync(`${vocabPath}.inp`, 'utf8');
  const sep = '\n__ggml_vocab_test__\n';
  const inputs: string[] = [];
  for (let pos = 0; pos < raw.length; ) {
    const next = raw.indexOf(sep, pos);
    if (next < 0) {
      inputs.push(raw.slice(pos));
      break;
    }
    inputs.push(raw.slice(pos, next));
    pos = next + sep.length;
  }
  const lines = readFileSync(`${vocabPath}.out`, 'utf8').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines.length !== inputs.length) throw new Error(`${vocabPath}: ${inputs.length} inputs but ${lines.length} outputs`);
  return inputs.map((text, i) => ({ text, ids: lines[i]!.trim() === '' ? [] : lines[i]!.trim().split(/\s+/).map(Number) }));
}

interface Vocabulary {
  name: 'fixture' | 'sentencepiece';
  path: () => string;
}

let tmpDir: string | undefined;
let fixturePath = '';
let spmPath = '';

beforeAll(async () => {
  fixturePath = await tinyLlamaPath('f32');
  // the same vocabulary with SentencePiece's scores for the whitespace-run pieces; a small model
  tmpDir = mkdtempSync(path.join(tmpdir(), 'lr-tokenizer-'));
  spmPath = path.join(tmpDir, 'tiny-llama-spm-scores.gguf');
  const scores = await sentencePieceScores();
  await makeTinyLlama({
    path: spmPath,
    type: 'f32',
    nEmbd: 32,
    nFf: 64,
    nLayer: 1,
    nHead: 2,
    nHeadKv: 2,
    name: 'tiny-llama-spm-scores',
    transformKv: (kvs) =>
      kvs.map((kv) =>
        kv.key === 'tokenizer.ggml.scores' && kv.type === GgufValueType.ARRAY
          ? { ...kv, value: { ...kv.value, values: scores } }
          : kv,
      ),
  });
}, 300_000);

afterAll(() => {
  if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
});

describe('tokenizer corpus', () => {
  it('is large and varied', () => {
    expect(TEXTS.length).toBeGreaterThanOrEqual(2000);
    for (const s of TOKENIZER_CORPUS) expect(s.texts.length, s.name).toBeGreaterThan(0);
    const required = ['', ' ', '  ', '\t', '\n', '\r\n', '<s>', '</s>', '<unk>', '<0x41>', 'caf\u00e9', 'cafe\u0301', '\u00a0', '\u200d', '\u2581'];
    for (const r of required) expect(TEXTS.some((t) => t.includes(r) || (r === '' && t === '')), JSON.stringify(r)).toBe(true);
    expect(TEXTS).toContain('');
    expect(TEXTS.some((t) => /\p{Script=Han}/u.test(t))).toBe(true);
    expect(TEXTS.some((t) => /\p{Script=Arabic}/u.test(t))).toBe(true);
    expect(TEXTS.some((t) => /\p{Script=Hebrew}/u.test(t))).toBe(true);
    expect(TEXTS.some((t) => /\p{Script=Devanagari}/u.test(t))).toBe(true);
    expect(TEXTS.some((t) => /\p{Extended_Pictographic}\u200d/u.test(t))).toBe(true);
    expect(TEXTS.some((t) => /\p{Regional_Indicator}{2}/u.test(t))).toBe(true);
    expect(TEXTS.some((t) => t.length > 1000)).toBe(true);
  });
});

const VOCABULARIES: Vocabulary[] = [
  { name: 'fixture', path: () => fixturePath },
  { name: 'sentencepiece', path: () => spmPath },
];

describe.each(VOCABULARIES)('tokenizer parity ($name vocabulary)', (vocab) => {
  let ours: OurModel;
  let ref: LlamaModel;
  // ids of every corpus text (no BOS) from each implementation
  const oursIds: number[][] = [];
  const cppIds: number[][] = [];

  beforeAll(async () => {
    ours = (await loadModel({ model: vocab.path() })) as unknown as OurModel;
    const llama = await referenceLlama();
    ref = await llama.loadModel({ modelPath: vocab.path(), vocabOnly: true, gpuLayers: 0 });
    for (const t of TEXTS) {
      oursIds.push(Array.from(ours.tokenize(t, { addBos: false })));
      cppIds.push(Array.from(ref.tokenize(t, false)));
    }
  }, 300_000);

  afterAll(async () => {
    await ours?.dispose();
    await ref?.dispose();
  });

  it.each(TOKENIZER_CORPUS.map((s) => s.name))('matches llama.cpp on every text: %s', (name) => {
    const section = new Set(TOKENIZER_CORPUS.find((s) => s.name === name)!.texts);
    const bad: Mismatch[] = [];
    TEXTS.forEach((t, i) => {
      if (section.has(t) && !sameIds(oursIds[i]!, cppIds[i]!)) bad.push({ text: t, ours: oursIds[i]!, other: cppIds[i]! });
    });
    expect(bad.length, describeMismatches('llama.cpp', bad)).toBe(0);
  });

  it('matches llama-tokenizer-js (where the vocabulary scores are SentencePiece\'s)', () => {
    const bad: Mismatch[] = [];
    const spaceRunDiffs: Mismatch[] = [];
    TEXTS.forEach((t, i) => {
      const js = llamaTokenizer.encode(t, false);
      if (sameIds(oursIds[i]!, js)) return;
      const m = { text: t, ours: oursIds[i]!, other: js };
      if (hasSpaceRun(t) && !sameIds(cppIds[i]!, js)) spaceRunDiffs.push(m);
      else bad.push(m);
    });
    expect(bad.length, describeMismatches('llama-tokenizer-js', bad)).toBe(0);
    expect(spaceRunDiffs).toEqual([]);
  });

  it('adds BOS only when asked and gives nothing for empty text', () => {
    expect(Array.from(ours.tokenize('', { addBos: false }))).toEqual([]);
    expect(Array.from(ours.tokenize('', { addBos: true }))).toEqual([1]);
    TEXTS.slice(0, 300).forEach((t, i) => {
      expect(Array.from(ours.tokenize(t, { addBos: true }))).toEqual([1, ...oursIds[i]!]);
    });
    // the literal texts of special tokens are plain text
    for (const t of ['<s>', '</s>', '<unk>', '<0x41>']) {
      const ids = Array.from(ours.tokenize(t, { addBos: false }));
      expect(ids.filter((id) => id < 3 + 256)).toEqual([]);
      expect(ids).toEqual(Array.from(ref.tokenize(t, false)));
    }
  });

  it('detokenizes every text back (SentencePiece turns a literal "▁" into a space)', () => {
    const bad: string[] = [];
    TEXTS.forEach((t, i) => {
      const ids = oursIds[i]!;
      const expected = t.replaceAll(SPACE_MARK, ' ');
      const back = ours.detokenize(ids, { skipSpecial: true, removeLeadingSpace: true });
      const cpp = ref.detokenize(ids as Token[], false);
      if (back !== expected || back !== cpp) bad.push(`${JSON.stringify(t)} -> ours ${JSON.stringify(back)}, llama.cpp ${JSON.stringify(cpp)}`);
      // without removing the leading space the dummy prefix shows
      const raw = ours.detokenize(ids, { skipSpecial: true, removeLeadingSpace: false });
      if (raw !== (t === '' ? '' : ' ' + expected)) bad.push(`${JSON.stringify(t)} -> raw ${JSON.stringify(raw)}`);
      // a leading BOS keeps the space, as in llama.cpp
      const withBos = ours.detokenize([1, ...ids], { skipSpecial: true, removeLeadingSpace: true });
      const cppBos = ref.detokenize([1, ...ids] as Token[], false);
      if (withBos !== cppBos) bad.push(`${JSON.stringify(t)} with BOS -> ours ${JSON.stringify(withBos)}, llama.cpp ${JSON.stringify(cppBos)}`);
    });
    expect(bad.length, bad.slice(0, 20).join('\n')).toBe(0);
  });

  it('detokenizes arbitrary id sequences like llama.cpp (special tokens skipped or printed)', () => {
    const bad: string[] = [];
    for (const ids of randomIdSequences(3000, 4242)) {
      for (const special of [false, true]) {
        const mine = ours.detokenize(ids, { skipSpecial: !special, removeLeadingSpace: true });
        const cpp = ref.detokenize(ids as Token[], special);
        if (mine !== cpp) bad.push(`[${ids}] special=${special}: ours ${JSON.stringify(mine)}, llama.cpp ${JSON.stringify(cpp)}`);
      }
    }
    expect(bad.length, bad.slice(0, 20).join('\n')).toBe(0);
  });

  it('turns lone UTF-16 surrogates into U+FFFD like llama.cpp', () => {
    for (const t of ['\ud800', 'a\udc00b', '\udbff\udbff', 'x\ud83d', '\ude00y']) {
      expect(Array.from(ours.tokenize(t, { addBos: false })), JSON.stringify(t)).toEqual(Array.from(ref.tokenize(t, false)));
    }
  });
});

const LLAMA_SPM_VOCAB = llamaSpmVocabPath();

describe("LLaMA's own tokenizer.model (llama.cpp's ggml-vocab-llama-spm.gguf)", () => {
  it('is in the llama.cpp checkout the native build made (a missing file fails, never skips)', () => {
    expect(LLAMA_SPM_VOCAB, 'build/llama.cpp/models/ggml-vocab-llama-spm.gguf with its .inp/.out cases').toBeDefined();
  });

  it('has exactly the pieces, types and scores of the "sentencepiece" vocabulary', async () => {
    const info = await readGgufFileInfo(LLAMA_SPM_VOCAB!, { readTensorInfo: false });
    const t = (info.metadata as unknown as { tokenizer: { ggml: { tokens: string[]; scores: number[]; token_type: number[] } } }).tokenizer.ggml;
    const vocab = await llamaVocab();
    const scores = await sentencePieceScores();
    expect(t.tokens.length).toBe(vocab.tokens.length);
    const diffs: string[] = [];
    for (let id = 0; id < vocab.tokens.length; id++) {
      if (t.tokens[id] !== vocab.tokens[id] || t.token_type[id] !== vocab.tokenTypes[id] || t.scores[id] !== scores[id]) {
        diffs.push(`${id}: ${JSON.stringify(t.tokens[id])} type ${t.token_type[id]} score ${t.scores[id]}`);
      }
    }
    expect(diffs.slice(0, 20)).toEqual([]);
  });

  it("gives SentencePiece's ids on llama.cpp's tokenizer test cases", async () => {
    const ours = (await loadModel({ model: spmPath })) as unknown as OurModel;
    try {
      const cases = readVocabTests(LLAMA_SPM_VOCAB!);
      expect(cases.length).toBeGreaterThan(20);
      for (const c of cases) {
        expect(Array.from(ours.tokenize(c.text, { addBos: false })), JSON.stringify(c.text)).toEqual(c.ids);
      }
    } finally {
      await ours.dispose();
    }
  });
});
