// CheXbert checkpoint -> GGUF on the tiny random-weight checkpoint Debian's torch wrote in the official layout
// (legacy torch.save of {'epoch', 'model_state_dict': {'module.bert....', 'module.linear_heads.N....'},
// 'optimizer_state_dict'}; scripts/make-chexbert-fixtures.py). Every GGUF tensor's bytes must hash to what
// torch / numpy wrote for its source (float32 bytes for f32; numpy's float16 rounding for f16 matrices),
// every state-dict tensor must be used, and the hparams / vocabulary keys must be the checkpoint's.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { chexbertConditions } from '../lib/bert/chexbert-labels.js';
import { chexbertInputIds } from '../lib/bert/chexbert-input.js';
import { BertTokenizer, WordPieceVocab } from '../lib/bert/wordpiece.js';
import { openCheckpoint } from '../lib/convert/checkpoint.js';
import { convertChexbert } from '../lib/convert/chexbert.js';
import { isLlavaRadError } from '../lib/errors.js';
import { bertBaseUncasedVocabText } from './fixtures/wordpiece/vocab.js';

const FIXTURE = new URL('./fixtures/chexbert/', import.meta.url).pathname;
const golden = JSON.parse(readFileSync(path.join(FIXTURE, 'goldens.json'), 'utf8')) as {
  hparams: { vocab_size: number; max_positions: number; hidden: number; layers: number; heads: number; ffn: number };
  state_dict: Record<string, { shape: number[]; sha256_f32: string; sha256_f16: string }>;
  cases: Array<{ text: string; ids: number[] }>;
};
const vocab = WordPieceVocab.fromText(bertBaseUncasedVocabText());
const dir = mkdtempSync(path.join(tmpdir(), 'chexbert-convert-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Gguf { kv: Map<string, unknown>; tensors: Map<string, { type: number; dims: number[]; data: Buffer }> }

/** a minimal GGUF v3 reader (the files are the converter's own) */
function readGguf(file: string): Gguf {
  const buf = readFileSync(file);
  let p = 8;
  const u32 = () => { const v = buf.readUInt32LE(p); p += 4; return v; };
  const u64 = () => { const v = Number(buf.readBigUInt64LE(p)); p += 8; return v; };
  const str = () => { const n = u64(); const s = buf.toString('utf8', p, p + n); p += n; return s; };
  const value = (type: number): unknown => {
    switch (type) {
      case 4: return u32();
      case 6: { const v = buf.readFloatLE(p); p += 4; return v; }
      case 7: return buf[p++] !== 0;
      case 8: return str();
      case 9: { const t = u32(); const n = u64(); return Array.from({ length: n }, () => value(t)); }
      default: throw new Error(`GGUF value type ${type} not read by this test`);
    }
  };
  const nTensors = u64();
  const nKv = u64();
  const kv = new Map<string, unknown>();
  for (let i = 0; i < nKv; i++) { const k = str(); kv.set(k, value(u32())); }
  const infos = Array.from({ length: nTensors }, () => {
    const name = str();
    const dims = Array.from({ length: u32() }, () => u64());
    return { name, dims, type: u32(), offset: u64() };
  });
  const dataStart = Math.ceil(p / 32) * 32;
  const tensors = new Map<string, { type: number; dims: number[]; data: Buffer }>();
  for (const t of infos) {
    const bytes = t.dims.reduce((a, b) => a * b, 1) * (t.type === 1 ? 2 : 4);
    tensors.set(t.name, { type: t.type, dims: t.dims, data: buf.subarray(dataStart + t.offset, dataStart + t.offset + bytes) });
  }
  return { kv, tensors };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('CheXbert checkpoint -> GGUF', () => {
  for (const type of ['f32', 'f16'] as const) {
    it(`converts the tiny checkpoint to ${type}, every tensor equal to torch's bytes`, async () => {
      const out = path.join(dir, `chexbert-${type}.gguf`);
      const { tensorSources, hparams } = await convertChexbert(path.join(FIXTURE, 'chexbert-tiny.pth'), vocab, out, {
        type, headCount: golden.hparams.heads,
      });
      const gguf = readGguf(out);
      const hp = golden.hparams;
      expect(hparams).toMatchObject({ vocabSize: hp.vocab_size, embeddingLength: hp.hidden, blockCount: hp.layers, headCount: hp.heads });
      expect(gguf.kv.get('general.architecture')).toBe('bert');
      expect(gguf.kv.get('bert.embedding_length')).toBe(hp.hidden);
      expect(gguf.kv.get('bert.block_count')).toBe(hp.layers);
      expect(gguf.kv.get('bert.attention.head_count')).toBe(hp.heads);
      expect(gguf.kv.get('bert.feed_forward_length')).toBe(hp.ffn);
      expect(gguf.kv.get('bert.context_length')).toBe(hp.max_positions);
      expect(gguf.kv.get('bert.attention.layer_norm_epsilon')).toBeCloseTo(1e-12, 20);
      expect(gguf.kv.get('tokenizer.ggml.tokens')).toEqual(vocab.pieces);
      expect(gguf.kv.get('tokenizer.ggml.cls_token_id')).toBe(101);
      expect(gguf.kv.get('chexbert.conditions')).toEqual(chexbertConditions());
      expect(gguf.kv.get('chexbert.head_classes')).toEqual([...Array(13).fill(4), 2]);

      // every state-dict tensor is used once, and nothing else is written
      expect([...tensorSources.values()].sort()).toEqual(Object.keys(golden.state_dict).sort());
      expect(gguf.tensors.size).toBe(Object.keys(golden.state_dict).length);
      for (const [name, source] of tensorSources) {
        const t = gguf.tensors.get(name)!;
        const want = golden.state_dict[source]!;
        expect(t.dims, name).toEqual([...want.shape].reverse());
        const isF16 = type === 'f16' && want.shape.length === 2;
        expect(t.type, name).toBe(isF16 ? 1 : 0);
        expect(sha256(t.data), name).toBe(isF16 ? want.sha256_f16 : want.sha256_f32);
      }
      expect(gguf.tensors.has('bert.blk.1.layer_output_norm.bias')).toBe(true);
      expect(gguf.tensors.has('chexbert.head.13.weight')).toBe(true);
    });
  }

  it("holds the official layout, and the goldens' input ids are our tokenizer's", async () => {
    const ckpt = await openCheckpoint(path.join(FIXTURE, 'chexbert-tiny.pth'), { wrappers: ['model_state_dict'] });
    try {
      expect(ckpt.format).toBe('torch-legacy');
      expect([...ckpt.tensors.keys()].every((k) => k.startsWith('module.'))).toBe(true);
      expect([...ckpt.tensors.keys()]).toEqual(Object.keys(golden.state_dict));
    } finally {
      await ckpt.close();
    }
    const tokenizer = new BertTokenizer(vocab);
    for (const c of golden.cases) expect(chexbertInputIds(tokenizer, c.text)).toEqual(c.ids);
  });

  it('refuses a vocabulary of another size, a head count that does not divide, and a file that is not CheXbert', async () => {
    const ckpt = path.join(FIXTURE, 'chexbert-tiny.pth');
    const small = WordPieceVocab.fromText('[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n');
    const codeOf = async (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => (isLlavaRadError(e) ? e.code : String(e)));
    expect(await codeOf(convertChexbert(ckpt, small, path.join(dir, 'x.gguf'), { headCount: 4 }))).toBe('BAD_CHECKPOINT');
    expect(await codeOf(convertChexbert(ckpt, vocab, path.join(dir, 'x.gguf')))).toBe('INVALID_ARGUMENT'); // 32 / 64
    expect(await codeOf(convertChexbert(ckpt, vocab, path.join(dir, 'x.gguf'), { headCount: 5 }))).toBe('INVALID_ARGUMENT');
    const notChexbert = path.join(dir, 'not.pth');
    writeFileSync(notChexbert, 'not a checkpoint');
    expect(await codeOf(convertChexbert(notChexbert, vocab, path.join(dir, 'x.gguf'), { headCount: 4 }))).toBe('BAD_CHECKPOINT');
  });
});
