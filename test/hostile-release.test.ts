// Hostile releases (issue #20 items 4 and 8, and the config part of the typed-error list): the converter refuses
// them with typed errors, before allocating what they claim, and leaves no output folder behind. Every hostile
// input is built here, from the tiny official-format release (test/fixtures/release) or by hand.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint, openShardedCheckpoint } from '../lib/convert/checkpoint.js';
import { MAX_OUTPUT_BYTES, MAX_TENSOR_VALUES } from '../lib/convert/config-check.js';
import { convertRelease } from '../lib/convert/convert.js';
import { openSafetensors } from '../lib/convert/safetensors.js';
import { LlavaRadError } from '../lib/errors.js';
import { copyRelease, editJson, safetensorsBytes, torchZip, writeBroadcastRelease, type Json, type ReleaseCopy } from './helpers/hostile-release.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-hostile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = (): ReleaseCopy => copyRelease(path.join(tmp, `rel-${n++}`));

/** the error `p` rejects with, which must be a LlavaRadError with `code` and a message matching every pattern */
async function refused(p: Promise<unknown>, code: string, ...msgs: RegExp[]): Promise<LlavaRadError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e, 'expected a refusal').toBeInstanceOf(LlavaRadError);
  const err = e as LlavaRadError;
  expect(err.code, err.message).toBe(code);
  for (const m of msgs) expect(err.message).toMatch(m);
  expect(err.message.length, 'messages describe values, never echo them').toBeLessThan(600);
  return err;
}

/** converts `rel`, expecting a refusal; nothing may be left of the output (its parent did not exist) */
async function convertRefused(rel: ReleaseCopy, code: string, ...msgs: RegExp[]): Promise<LlavaRadError> {
  const err = await refused(convertRelease({ base: rel.base, adapter: rel.adapter, out: rel.out, threads: 1 }), code, ...msgs);
  expect(existsSync(path.dirname(rel.out)), 'no output folder is left behind').toBe(false);
  return err;
}

const hasFifos = process.platform !== 'win32'; // mkfifo(1) is part of every POSIX system
const mkfifo = (p: string) => expect(spawnSync('mkfifo', [p]).status).toBe(0);

// ================================================================================================

describe('sharded indexes (item 4)', () => {
  const dir = path.join(tmp, 'indexes');
  mkdirSync(dir, { recursive: true });
  const index = (name: string, weightMap: Record<string, unknown>) => {
    const p = path.join(dir, name);
    writeFileSync(p, JSON.stringify({ metadata: {}, weight_map: weightMap }));
    return p;
  };

  it('two indexes naming each other are refused at once, without opening either again', { timeout: 30000 }, async () => {
    const a = index('a.bin.index.json', { x: 'b.bin.index.json' });
    index('b.bin.index.json', { y: 'a.bin.index.json' });
    await refused(openShardedCheckpoint(a), 'BAD_CHECKPOINT', /a\.bin\.index\.json/, /weight_map\["x"\]/, /another index/, /expected a shard/);
  });

  it('an index naming itself is refused (was: EMFILE after 18 s)', { timeout: 30000 }, async () => {
    const self = index('self.index.json', { x: 'self.index.json' });
    await refused(openShardedCheckpoint(self), 'BAD_CHECKPOINT', /another index/);
    // through the converter: every tensor of the real index pointed at the index itself
    const rel = fresh();
    editJson(path.join(rel.base, 'pytorch_model.bin.index.json'), (j) => {
      for (const k of Object.keys(j.weight_map)) j.weight_map[k] = 'pytorch_model.bin.index.json';
    });
    await convertRefused(rel, 'BAD_CHECKPOINT', /pytorch_model\.bin\.index\.json/, /another index/);
  });

  it('shard names that are paths (separators, "..", absolute, drive) are refused', async () => {
    for (const file of ['sub/shard.bin', 'sub\\shard.bin', '../shard.bin', '..', '.', '/etc/passwd', 'C:shard.bin', 'a\u0000.bin']) {
      const p = index('paths.index.json', { x: file });
      await refused(openShardedCheckpoint(p), 'BAD_CHECKPOINT', /weight_map\["x"\]/, /outside the index's folder/, /plain file name/);
    }
    for (const file of [7, '', null, ['a.bin']]) {
      const p = index('types.index.json', { x: file });
      await refused(openShardedCheckpoint(p), 'BAD_CHECKPOINT', /expected a shard file name/);
    }
  });

  it('an index over 16 MiB is refused before it is read', async () => {
    const p = path.join(dir, 'huge.index.json');
    writeFileSync(p, '');
    truncateSync(p, 17 * 1024 * 1024); // sparse: nothing is allocated
    await refused(openShardedCheckpoint(p), 'BAD_CHECKPOINT', /huge\.index\.json/, /too large/);
  });

  it.runIf(hasFifos)('a shard or a config that is a FIFO is refused instead of blocking', { timeout: 30000 }, async () => {
    const fifo = path.join(dir, 'fifo.bin');
    mkfifo(fifo);
    await refused(openShardedCheckpoint(index('fifo.index.json', { x: 'fifo.bin' })), 'IO', /fifo\.bin/, /regular file/);
    const rel = fresh();
    rmSync(path.join(rel.adapter, 'adapter_config.json'));
    mkfifo(path.join(rel.adapter, 'adapter_config.json'));
    await convertRefused(rel, 'IO', /adapter_config\.json/, /regular file/);
  });
});

// ================================================================================================

describe('amplification (item 8)', () => {
  it('broadcast (stride-0) base tensors with a matching config are refused before anything is written', { timeout: 30000 }, async () => {
    const rel = fresh();
    writeBroadcastRelease(rel, { hidden: 1024, heads: 8, ff: 2816, layers: 2 });
    const file = path.join(rel.base, 'pytorch_model.bin');
    expect(statSync(file).size).toBeLessThan(64 * 1024);
    const err = await convertRefused(rel, 'BAD_CHECKPOINT', /pytorch_model\.bin/, /claim \d+ bytes/, /stride-0/);
    const claimed = Number(/claim (\d+) bytes/.exec(err.message)![1]);
    expect(claimed).toBeGreaterThan(100e6); // what it would have converted into
  });

  it('num_hidden_layers 1e9 is refused from the config (was: RangeError after 2.6 GB)', async () => {
    const rel = fresh();
    editJson(path.join(rel.base, 'config.json'), (j) => { j.num_hidden_layers = 1e9; });
    await convertRefused(rel, 'BAD_CHECKPOINT', /vicuna[/\\]config\.json/, /"num_hidden_layers" must be an integer from 1 to 256, got 1000000000/);
  });

  it('a config implying more than the output ceiling, or one tensor too large, is refused before opening checkpoints', async () => {
    const rel = fresh();
    const llavaCfg = path.join(rel.adapter, 'config.json');
    editJson(llavaCfg, (j) => {
      for (const k of ['hidden_size', 'num_hidden_layers', 'num_attention_heads', 'intermediate_size']) delete j[k];
    });
    // all in range, but 1.1e12 parameters
    editJson(path.join(rel.base, 'config.json'), (j) => Object.assign(j, { hidden_size: 16384, num_attention_heads: 128, num_key_value_heads: 128, intermediate_size: 65536, num_hidden_layers: 256 }));
    const err = await convertRefused(rel, 'BAD_CHECKPOINT', /config\.json \(as f16\)/, /GB of output, over the converter's ceiling/);
    expect(err.message).toContain(`${MAX_OUTPUT_BYTES / 1e9}.0 GB`);
    // one tensor of 32000 x 65536 values (the embedding)
    editJson(path.join(rel.base, 'config.json'), (j) => Object.assign(j, { hidden_size: 65536, num_attention_heads: 512, num_key_value_heads: 512, intermediate_size: 64, num_hidden_layers: 1 }));
    await convertRefused(rel, 'BAD_CHECKPOINT', /token_embd\.weight \[65536, 32000\]/, new RegExp(`more than the ${MAX_TENSOR_VALUES}`));
  });

  it('a tensor whose shape is not what the config says for it is refused', async () => {
    const rel = fresh();
    writeBroadcastRelease(rel, { hidden: 64, heads: 2, ff: 128, layers: 1 });
    editJson(path.join(rel.base, 'config.json'), (j) => { j.intermediate_size = 256; });
    editJson(path.join(rel.adapter, 'config.json'), (j) => { j.intermediate_size = 256; });
    await convertRefused(rel, 'BAD_CHECKPOINT', /"model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[128, 64\], expected \[256, 64\]/);
  });
});

// ================================================================================================

describe('config numbers are checked, before the output folder exists', () => {
  // one release, each case edits one file and puts it back
  const rel = fresh();
  const FILES = {
    base: path.join(rel.base, 'config.json'),
    llava: path.join(rel.adapter, 'config.json'),
    adapter: path.join(rel.adapter, 'adapter_config.json'),
    clip: path.join(rel.adapter, 'biomedclipcxr_518.json'),
  };
  type Case = [keyof typeof FILES, (j: Json) => void, RegExp];
  // a value nested 50000 arrays deep (JSON.stringify cannot write it: it is spliced into the text)
  const DEEP = '"@deep@"';
  const deepText = '['.repeat(50_000) + ']'.repeat(50_000);
  const cases: Case[] = [
    ['base', (j) => { j.max_position_embeddings = 2 ** 40; }, /"max_position_embeddings" must be an integer from 1 to 1048576, got 1099511627776/],
    ['base', (j) => { j.hidden_size = 0; }, /"hidden_size" must be an integer from 1 to 65536, got 0/],
    ['base', (j) => { j.hidden_size = 32.5; }, /"hidden_size" must be an integer .*got 32\.5/],
    ['base', (j) => { j.hidden_size = '32'; }, /"hidden_size" must be an integer .*got "32"/],
    ['base', (j) => { j.hidden_size = JSON.parse(DEEP); }, /"hidden_size" must be an integer .*got an array of length 1/],
    ['base', (j) => { delete j.hidden_size; }, /"hidden_size" is missing/],
    ['base', (j) => { j.vocab_size = 2 ** 31; }, /"vocab_size" must be an integer from 1 to 1048576/],
    ['base', (j) => { j.intermediate_size = 1e9; }, /"intermediate_size" must be an integer from 1 to 262144/],
    ['base', (j) => { j.num_attention_heads = 0; }, /"num_attention_heads" must be an integer from 1 to 1024, got 0/],
    ['base', (j) => { j.num_attention_heads = 64; }, /"hidden_size" must be num_attention_heads \(64\) times an even head width, got 32/],
    ['base', (j) => { j.num_key_value_heads = 3; }, /"num_key_value_heads" must divide num_attention_heads \(2\), got 3/],
    ['base', (j) => { j.rms_norm_eps = -5; }, /"rms_norm_eps" must be a finite number .*got -5/],
    ['base', (j) => { j.rms_norm_eps = 0; }, /"rms_norm_eps" must be a finite number .*got 0/],
    ['base', (j) => { j.rope_theta = 1e300; }, /"rope_theta" must be a finite number at least 1 and at most 1000000000, got 1e\+300/],
    ['llava', (j) => { j.max_position_embeddings = 2 ** 40; }, /llava-rad[/\\]config\.json: "max_position_embeddings" must be/],
    ['llava', (j) => { j.mm_vision_select_layer = 1e9; }, /"mm_vision_select_layer" must be an integer from -256 to 256/],
    ['llava', (j) => { j.mm_hidden_size = -1; }, /"mm_hidden_size" must be an integer from 1 to 65536, got -1/],
    ['adapter', (j) => { j.lora_alpha = 1e308; }, /"lora_alpha" must be a finite number greater than 0 and at most 4096, got 1e\+308/],
    ['adapter', (j) => { j.lora_alpha = -8; }, /"lora_alpha" must be .*got -8/],
    ['adapter', (j) => { j.lora_alpha = 0; }, /"lora_alpha" must be .*got 0/],
    ['adapter', (j) => { j.lora_alpha = '8'; }, /"lora_alpha" must be .*got "8"/],
    ['adapter', (j) => { j.r = 0; }, /"r" must be an integer from 1 to 4096, got 0/],
    ['adapter', (j) => { j.r = 2.5; }, /"r" must be an integer .*got 2\.5/],
    ['clip', (j) => { j.vision_cfg.head_width = 0.5; }, /"vision_cfg\.head_width" must be an integer from 1 to 4096, got 0\.5/],
    ['clip', (j) => { j.vision_cfg.head_width = 12; }, /"vision_cfg\.head_width" must divide the tower's width 32, got 12/],
    ['clip', (j) => { j.vision_cfg.image_mean = '0.5'; }, /"vision_cfg\.image_mean" must be an array of 3 numbers \(R, G, B\), got "0\.5"/],
    ['clip', (j) => { j.vision_cfg.image_mean = [0.5, 'x', 0.5]; }, /"vision_cfg\.image_mean\[1\]" must be a finite number .*got "x"/],
    ['clip', (j) => { j.vision_cfg.image_std = [0, 0.2, 0.2]; }, /"vision_cfg\.image_std\[0\]" must be a finite number at least 0\.001/],
    ['clip', (j) => { j.vision_cfg.image_size = 1e9; }, /"vision_cfg\.image_size" must be an integer from 1 to 8192/],
    ['clip', (j) => { j.vision_cfg = 'vit'; }, /"vision_cfg" must be an object, got "vit"/],
    ['clip', (j) => { j.text_cfg.context_length = 2 ** 40; }, /"text_cfg\.context_length" must be an integer from 1 to 65536/],
    ['clip', (j) => { j.embed_dim = -1; }, /"embed_dim" must be an integer from 1 to 65536, got -1/],
  ];
  for (const [which, edit, msg] of cases) {
    it(`${which}: ${msg.source.slice(0, 70)}`, async () => {
      const file = FILES[which];
      const original = readFileSync(file);
      try {
        editJson(file, edit);
        writeFileSync(file, readFileSync(file, 'utf8').replace(DEEP, deepText));
        await convertRefused(rel, 'BAD_CHECKPOINT', new RegExp(path.basename(file).replace(/\./g, '\\.')), msg);
      } finally {
        writeFileSync(file, original);
      }
    });
  }

  it('a config over 16 MiB is refused before it is read', async () => {
    const file = FILES.llava;
    const original = readFileSync(file);
    try {
      truncateSync(file, 17 * 1024 * 1024);
      await convertRefused(rel, 'BAD_CHECKPOINT', /too large/);
    } finally {
      writeFileSync(file, original);
    }
  });
});

// ================================================================================================

describe('safetensors headers', () => {
  const file = path.join(tmp, 'x.safetensors');
  const entry = (shape: unknown, extra: Json = {}) => ({ w: { dtype: 'F16', shape, data_offsets: [0, 2], ...extra } });

  it('a deeply nested shape is BAD_CHECKPOINT (was: "Maximum call stack size exceeded")', { timeout: 30000 }, async () => {
    const depth = 100_000;
    writeFileSync(file, safetensorsBytes(`{"w":{"dtype":"F16","shape":${'['.repeat(depth)}${']'.repeat(depth)},"data_offsets":[0,2]}}`, 2));
    const err = await refused(openSafetensors(file), 'BAD_CHECKPOINT', /tensor "w": bad shape: expected at most 8 non-negative integers, got an array of length 1 at position 0/);
    expect(err.message).not.toContain('[[');
    // through the converter, as the base weights
    const rel = fresh();
    for (const f of ['pytorch_model.bin.index.json', 'pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin']) rmSync(path.join(rel.base, f));
    writeFileSync(path.join(rel.base, 'model.safetensors'), readFileSync(file));
    await convertRefused(rel, 'BAD_CHECKPOINT', /model\.safetensors/, /bad shape/);
  });

  it('rank, dims, dtype, offsets and names: typed refusals that describe instead of echoing', async () => {
    const cases: Array<[unknown, string, RegExp]> = [
      [entry(Array(9).fill(1)), 'BAD_CHECKPOINT', /at most 8 non-negative integers, got 9 of them/],
      [entry([1, -1]), 'BAD_CHECKPOINT', /got -1 at position 1/],
      [entry([1, 2 ** 53]), 'BAD_CHECKPOINT', /got 9007199254740992 at position 1/],
      [entry({ 0: 1 }), 'BAD_CHECKPOINT', /bad shape: .*got an object/],
      [entry([1], { dtype: 'X'.repeat(5000) }), 'UNSUPPORTED', /unsupported dtype a string of length 5000/],
      [entry([1], { data_offsets: [0, 2, 4] }), 'BAD_CHECKPOINT', /bad data_offsets: expected \[begin, end\].*got 3 of them/],
      [entry([1], { data_offsets: [[0], 2] }), 'BAD_CHECKPOINT', /bad data_offsets: .*got an array of length 1 at position 0/],
      [{ ['n'.repeat(10_000)]: { dtype: 'F16', shape: [1], data_offsets: [0, 4] } }, 'BAD_CHECKPOINT', /\(10000 characters\)/],
      [{ a: { dtype: 'F16', shape: [1], data_offsets: [0, 2] }, b: { dtype: 'F16', shape: [1], data_offsets: [1, 3] } }, 'BAD_CHECKPOINT', /overlap/],
      [{ a: [1, 2] }, 'BAD_CHECKPOINT', /entry must be an object, got an array of length 2/],
    ];
    for (const [header, code, msg] of cases) {
      writeFileSync(file, safetensorsBytes(header, 4));
      await refused(openSafetensors(file), code, msg);
    }
  });
});

// ================================================================================================

describe('the output folder', () => {
  it('a conversion that fails after creating it removes it (and the parents it created); a legitimate one still converts', { timeout: 60000 }, async () => {
    const rel = fresh();
    const out = rel.out; // tmp/rel-N/made/out: "made" does not exist
    await expect(convertRelease({
      base: rel.base, adapter: rel.adapter, out, threads: 1,
      onProgress: (p) => { if (p.done === 3) throw new Error('stop here'); },
    })).rejects.toThrow('stop here');
    expect(existsSync(path.join(rel.root, 'made'))).toBe(false);
    const r = await convertRelease({ base: rel.base, adapter: rel.adapter, out, threads: 1 });
    expect(readdirSync(out).sort()).toEqual(['llava-rad-decoder-f16.gguf', 'llava-rad-vision-f16.gguf', 'llava-rad.json'].sort());
    expect(r.loraScale).toBe(2);
    const manifest = JSON.parse(readFileSync(r.manifest, 'utf8'));
    expect(manifest.sources.map((s: { name: string }) => s.name)).toContain('base/pytorch_model-00002-of-00002.bin');
  });

  it('a folder that already existed is kept, with only what it held', async () => {
    const rel = fresh();
    mkdirSync(rel.out, { recursive: true });
    writeFileSync(path.join(rel.out, 'notes.txt'), 'mine');
    editJson(path.join(rel.base, 'config.json'), (j) => { j.rms_norm_eps = -5; });
    await refused(convertRelease({ base: rel.base, adapter: rel.adapter, out: rel.out }), 'BAD_CHECKPOINT', /rms_norm_eps/);
    expect(readdirSync(rel.out)).toEqual(['notes.txt']);
  });

  it('an output path that is a file is an IO error', async () => {
    const rel = fresh();
    mkdirSync(path.dirname(rel.out), { recursive: true });
    writeFileSync(rel.out, 'a file');
    await refused(convertRelease({ base: rel.base, adapter: rel.adapter, out: rel.out, threads: 1 }), 'IO', /cannot create the output folder/);
    expect(readFileSync(rel.out, 'utf8')).toBe('a file');
  });

  it('the hand-made zip builder makes checkpoints the reader accepts (so the refusals above are the checks\')', async () => {
    const p = path.join(tmp, 'ok.bin');
    writeFileSync(p, torchZip({ a: { shape: [2, 3] }, b: { shape: [4, 4], broadcast: true } }));
    const c = await openCheckpoint(p);
    try {
      expect([...c.tensors.keys()]).toEqual(['a', 'b']);
      expect(c.fileBytes).toBe(statSync(p).size);
      const b = await c.tensors.get('b')!.readFloat32();
      expect(b.length).toBe(16);
      expect(b.every((v) => Math.abs(v - 0.01) < 1e-4)).toBe(true);
    } finally {
      await c.close();
    }
  });
});
