// The CLIP GGUF converter (lib/convert/clip.ts) on the tiny release's checkpoint: the official layout and a bare
// state dict of the same tensors (no 'state_dict', no 'module.', no optimizer: scripts/make-clip-fixtures.py) give
// the same bytes; what it writes is the checkpoint's own values; bad inputs are typed errors that leave no file;
// the loader refuses GGUFs of the wrong kind.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadClip } from '../lib/clip/model.js';
import { convertClip } from '../lib/convert/clip.js';
import { readGgufMetadata } from '../lib/gguf/read-metadata.js';
import { openCheckpoint } from '../lib/convert/checkpoint.js';
import { readGgufTensorF32Rows } from './helpers/gguf-read.js';
import { LlavaRadError } from '../lib/errors.js';

const RAD = new URL('./fixtures/release/llava-rad/', import.meta.url).pathname;
const BERT = new URL('./fixtures/release/biomedbert/', import.meta.url).pathname;
const BARE = new URL('./fixtures/clip/bare-checkpoint.pt', import.meta.url).pathname;
const CKPT = path.join(RAD, 'biomedclipcxr_518_checkpoint.pt');
const CONFIG = path.join(RAD, 'biomedclipcxr_518.json');
const dir = mkdtempSync(path.join(tmpdir(), 'clip-convert-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const code = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => (e instanceof LlavaRadError ? e.code : String(e)));

describe('convertClip', () => {
  it('the official layout and a bare state dict give the same GGUF; its metadata is the checkpoint\'s', async () => {
    const a = path.join(dir, 'a.gguf');
    const b = path.join(dir, 'b.gguf');
    const hp = await convertClip({ checkpoint: CKPT, config: CONFIG, textModel: BERT, out: a, type: 'f32' });
    await convertClip({ checkpoint: BARE, config: CONFIG, textModel: BERT, out: b, type: 'f32' });
    expect(readFileSync(a).equals(readFileSync(b)), 'same bytes').toBe(true);
    expect(hp).toMatchObject({ embedDim: 16, contextLength: 256, visionWidth: 32, text: { embeddingLength: 32, blockCount: 2, headCount: 2, contextLength: 300, projHidden: 24 } });
    const meta = await readGgufMetadata(a);
    const kv = (k: string) => meta.kv.get(k);
    expect(kv('general.architecture')).toBe('bert');
    expect(kv('clip.logit_scale')).toBeCloseTo(4.6052, 4);
    const vocab = readFileSync(path.join(BERT, 'vocab.txt'), 'utf8').trimEnd().split('\n');
    expect(kv('tokenizer.ggml.tokens')).toEqual(vocab);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    // the tensors are the checkpoint's values (f32 GGUF: exactly), rows as torch stores them
    const ck = await openCheckpoint(CKPT);
    try {
      for (const [gguf, key, rows] of [['clip.text_proj.2.weight', 'module.text.proj.2.weight', 16], ['clip.vision_head.weight', 'module.visual.head.proj.weight', 16],
        ['bert.blk.1.ffn_down.weight', 'module.text.transformer.encoder.layer.1.output.dense.weight', 32]] as const) {
        const want = await ck.tensors.get(key)!.readFloat32();
        const got = await readGgufTensorF32Rows(a, gguf, Array.from({ length: rows }, (_, i) => i));
        expect(Array.from(got), gguf).toEqual(Array.from(want));
      }
    } finally {
      await ck.close();
    }
  });

  it('refuses what it cannot convert, with typed errors and no file left', async () => {
    const out = path.join(dir, 'bad.gguf');
    expect(await code(convertClip({ checkpoint: CKPT, config: CONFIG, textModel: BERT, out, type: 'q8_0' as never }))).toBe('INVALID_ARGUMENT');
    expect(await code(convertClip({ checkpoint: CKPT, config: CONFIG, textModel: path.join(dir, 'nope'), out }))).toBe('IO');
    // a vocabulary one piece short of the embedding rows
    const shortVocab = path.join(dir, 'short');
    mkdirSync(shortVocab);
    copyFileSync(path.join(BERT, 'config.json'), path.join(shortVocab, 'config.json'));
    writeFileSync(path.join(shortVocab, 'vocab.txt'), readFileSync(path.join(BERT, 'vocab.txt'), 'utf8').trimEnd().split('\n').slice(0, -1).join('\n') + '\n');
    expect(await code(convertClip({ checkpoint: CKPT, config: CONFIG, textModel: shortVocab, out }))).toBe('BAD_CHECKPOINT');
    // another projection or pooler than open_clip's mlp / CLS
    const cfg = JSON.parse(readFileSync(CONFIG, 'utf8')) as { text_cfg: Record<string, unknown> };
    for (const [k, v] of [['hf_proj_type', 'linear'], ['hf_pooler_type', 'mean_pooler']] as const) {
      const f = path.join(dir, `cfg-${k}.json`);
      writeFileSync(f, JSON.stringify({ ...cfg, text_cfg: { ...cfg.text_cfg, [k]: v } }));
      expect(await code(convertClip({ checkpoint: CKPT, config: f, textModel: BERT, out })), k).toBe('UNSUPPORTED');
    }
    // an open_clip checkpoint without this text tower
    const other = new URL('./fixtures/checkpoints/open_clip_like.pt', import.meta.url).pathname;
    expect(await code(convertClip({ checkpoint: other, config: CONFIG, textModel: BERT, out }))).toBe('BAD_CHECKPOINT');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('the loader refuses a vision GGUF as the CLIP GGUF, a CLIP GGUF as the vision one, and a tower of another width', async () => {
    const clipGguf = path.join(dir, 'a.gguf');
    const otherTower = new URL('./fixtures/vision/tiny-vision-f32.gguf', import.meta.url).pathname;
    expect(await code(loadClip({ clip: otherTower, vision: otherTower, threads: 1 }))).toMatch(/^(BAD_GGUF|UNSUPPORTED)$/);
    expect(await code(loadClip({ clip: clipGguf, vision: clipGguf, threads: 1 }))).toBe('BAD_GGUF');
    expect((await readGgufMetadata(otherTower)).kv.get('clip.vision.embedding_length'), 'the other tower is 64 wide, the head takes 32').toBe(64);
    expect(await code(loadClip({ clip: clipGguf, vision: otherTower, threads: 1 }))).toBe('BAD_GGUF');
  });
});
