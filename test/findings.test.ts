// generateFindings end to end on tiny random-weight models of the real structure (decoder: the tiny LLaMA
// with the real vocabulary; vision: test/fixtures/vision/tiny-vision-f32.gguf, which projects to the
// decoder's 256-wide embeddings): prompt construction, the pipeline's composition, the CLI, errors.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MAX_REASON_BYTES,
  LlavaRadError,
  findingsPromptText,
  loadLlavaRad,
  postprocessFindings,
  preprocessImage,
  type LlavaRad,
} from '../lib/index.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const VISION = path.join(here, 'fixtures', 'vision', 'tiny-vision-f32.gguf');
const IMAGES = path.join(here, 'fixtures', 'images');
const portrait = readFileSync(path.join(IMAGES, 'grey_517x1033.png'));
const landscape = readFileSync(path.join(IMAGES, 'grey_2000x1600.jpg'));

describe('the official prompt', () => {
  it('is conv v1 with the question, with and without a reason (newlines in the reason become spaces)', () => {
    const sys = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";
    expect(findingsPromptText()).toBe(`${sys} USER: <image>\nProvide a description of the findings in the radiology image. ASSISTANT:`);
    expect(findingsPromptText(null)).toBe(findingsPromptText());
    expect(findingsPromptText('Chest pain\nrule out pneumonia')).toBe(
      `${sys} USER: <image>\nProvide a description of the findings in the radiology image given the following indication: Chest pain rule out pneumonia ASSISTANT:`,
    );
  });

  it('post-processing strips and drops a trailing </s>', () => {
    expect(postprocessFindings('  The lungs are clear. </s> ')).toBe('The lungs are clear.');
    expect(postprocessFindings('No acute process.')).toBe('No acute process.');
    expect(postprocessFindings(' </s>')).toBe('');
  });
});

describe('generateFindings', () => {
  let model: LlavaRad;
  let decoderPath: string;
  beforeAll(async () => {
    decoderPath = await tinyLlamaPath('f32');
    model = await loadLlavaRad({ decoder: decoderPath, vision: VISION, threads: 2, parallel: 2 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('tokenizes the two text parts on their own: [BOS] + part 0, then part 1 starting "▁", "\\n"', () => {
    const { before, after } = model.promptTokens('Shortness of breath.');
    expect(before[0]).toBe(1);
    expect(before.filter((t) => t === 1).length).toBe(1);
    expect(after.slice(0, 2)).toEqual([29871, 13]);
    const text = findingsPromptText('Shortness of breath.');
    const [p0, p1] = text.split('<image>');
    expect(before).toEqual(model.decoder.tokenize(p0!, { addBos: true }));
    expect(after).toEqual(model.decoder.tokenize(p1!, { addBos: false }));
  });

  it('equals its parts run by hand: PIL-exact preprocessing, the vision tower, the prompt, greedy decoding', async () => {
    const r = await model.generateFindings(portrait, 'Chest pain', { maxTokens: 20 });
    expect(r.researchUseOnly).toBe(true);
    expect(r.notice).toMatch(/research/i);
    expect(r.reason).toBe('Chest pain');
    expect(r.prompt.imageRows).toBe(1369);
    expect(r.tokens.length).toBeGreaterThan(0);

    const pre = await preprocessImage(portrait);
    const [rows] = await model.vision.encode(pre.pixels);
    const { before, after } = model.promptTokens('Chest pain');
    const manual = await model.decoder.generate([{ tokens: before }, { embeddings: rows! }, { tokens: after }], { maxTokens: 20 });
    expect(r.tokens).toEqual(manual.tokens);
    expect(r.findings).toBe(postprocessFindings(model.decoder.detokenize(manual.tokens, { skipSpecial: true })));
  }, 60_000);

  it('the image matters and the reason matters; concurrent studies equal sequential ones', async () => {
    const a = await model.generateFindings(portrait, undefined, { maxTokens: 12 });
    const b = await model.generateFindings(landscape, undefined, { maxTokens: 12 });
    const c = await model.generateFindings(portrait, 'Fever and cough.', { maxTokens: 12 });
    expect(a.tokens).not.toEqual(b.tokens);
    expect(a.tokens).not.toEqual(c.tokens);
    const both = await Promise.all([
      model.generateFindings(portrait, undefined, { maxTokens: 12 }),
      model.generateFindings(landscape, undefined, { maxTokens: 12 }),
    ]);
    expect(both.map((r) => r.tokens)).toEqual([a.tokens, b.tokens]);
  }, 120_000);

  it('streams tokens and cancels with an AbortSignal', async () => {
    const seen: number[] = [];
    const ac = new AbortController();
    const p = model.generateFindings(portrait, undefined, {
      maxTokens: 200,
      signal: ac.signal,
      onToken: (ev) => {
        seen.push(ev.token);
        if (seen.length === 3) ac.abort();
      },
    });
    await expect(p).rejects.toMatchObject({ code: 'ABORTED' });
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(seen.length).toBeLessThan(200);
  }, 60_000);

  it('a 16-bit MONOCHROME1 DICOM gives the findings of the MIMIC-CXR-JPG recipe\'s 8-bit image (made by numpy + OpenCV)', async () => {
    const dicomDir = path.join(here, 'fixtures', 'dicom');
    for (const dcm of ['u16_mono1_b16.dcm', 'u16_mono1_b16.jpeg-ls.dcm']) {
      const fromDicom = await model.generateFindings(readFileSync(path.join(dicomDir, dcm)), 'Cough.', { maxTokens: 16 });
      const fromPng = await model.generateFindings(readFileSync(path.join(dicomDir, 'u16_mono1_b16.mimic.png')), 'Cough.', { maxTokens: 16 });
      expect(fromDicom.tokens, dcm).toEqual(fromPng.tokens);
      expect(fromDicom.findings).toBe(fromPng.findings);
    }
    const lateral = await model.generateFindings(readFileSync(path.join(dicomDir, 'lateral_u16.dcm')), undefined, { maxTokens: 2 });
    expect(lateral.warnings.join(' ')).toMatch(/lateral|LL|LAT/i);
    await expect(model.generateFindings(readFileSync(path.join(dicomDir, 'lateral_u16.dcm')), undefined, { maxTokens: 2, image: { dicomRefuseLateral: true } }))
      .rejects.toMatchObject({ code: 'NON_FRONTAL_VIEW' });
  }, 60_000);

  it('bad images and arguments are typed errors, and the model keeps working', async () => {
    const cases: Array<[unknown, string]> = [
      [Buffer.alloc(0), 'INVALID_IMAGE'],
      [Buffer.from('definitely not an image'), 'INVALID_IMAGE'],
      [portrait.subarray(0, Math.floor(portrait.length / 2)), 'INVALID_IMAGE'],
      ['/etc/passwd', 'INVALID_ARGUMENT'],
      [null, 'INVALID_ARGUMENT'],
    ];
    for (const [input, code] of cases) {
      const err = await model.generateFindings(input as Uint8Array, undefined, { maxTokens: 4 }).catch((e: unknown) => e);
      expect(err, `input ${String(input).slice(0, 20)}`).toBeInstanceOf(LlavaRadError);
      expect((err as LlavaRadError).code).toBe(code);
    }
    await expect(model.generateFindings(portrait, 42 as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const ok = await model.generateFindings(portrait, undefined, { maxTokens: 4 });
    expect(ok.tokens.length).toBe(4);
  }, 60_000);

  it('a reason over MAX_REASON_BYTES is refused before tokenizing; one that fits may still exceed the study\'s cells', async () => {
    const tooLong = 'é'.repeat(MAX_REASON_BYTES / 2 + 1); // 2 bytes each
    const err = await model.generateFindings(portrait, tooLong, { maxTokens: 4 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((err as Error).message).toMatch(new RegExp(`at most ${MAX_REASON_BYTES} bytes .* got a string of ${MAX_REASON_BYTES + 2} bytes`));
    expect((err as Error).message.length).toBeLessThan(300); // the reason is not echoed
    // 1369 image rows + the prompt + 600 tokens > 2048 cells per study: refused up front, whatever else runs
    const full = await model.generateFindings(portrait, 'Cough. '.repeat(40), { maxTokens: 600 }).catch((e: unknown) => e);
    expect(full).toMatchObject({ code: 'CONTEXT_FULL' });
    expect((full as Error).message).toMatch(/the study needs \d+ KV cells .* but contextSize is 2048/);
    const ok = await model.generateFindings(portrait, 'Cough.', { maxTokens: 4 });
    expect(ok.tokens.length).toBe(4);
  }, 60_000);
});

describe('loading', () => {
  it('a folder with llava-rad.json, or with one decoder and one vision GGUF, loads; other folders are refused', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'llava-rad-folder-'));
    try {
      const decoder = await tinyLlamaPath('q8_0');
      copyFileSync(decoder, path.join(dir, 'decoder-q8_0.gguf'));
      copyFileSync(VISION, path.join(dir, 'vision-f32.gguf'));
      const a = await loadLlavaRad({ model: dir, threads: 1 });
      expect(a.files.vision).toBe(path.join(dir, 'vision-f32.gguf'));
      await a.dispose();

      writeFileSync(path.join(dir, 'llava-rad.json'), JSON.stringify({ decoder: 'decoder-q8_0.gguf', vision: 'vision-f32.gguf' }));
      copyFileSync(VISION, path.join(dir, 'another-vision.gguf'));
      const b = await loadLlavaRad({ model: dir, threads: 1 });
      expect(b.files.decoder).toBe(path.join(dir, 'decoder-q8_0.gguf'));
      await b.dispose();

      // a manifest may only name files in its folder; a file that is not a GGUF is refused without echoing its bytes
      const secret = path.join(dir, 'secret.txt');
      writeFileSync(secret, 'root:x:0:0:root:/root:/bin/bash\n');
      for (const name of ['../../../../etc/passwd', '/etc/passwd', 'sub/vision-f32.gguf', '..', '']) {
        writeFileSync(path.join(dir, 'llava-rad.json'), JSON.stringify({ decoder: 'decoder-q8_0.gguf', vision: name }));
        await expect(loadLlavaRad({ model: dir, threads: 1 }), name).rejects.toMatchObject({
          code: 'INVALID_ARGUMENT', message: expect.stringMatching(/"vision" must be the name of a file in the model folder/),
        });
      }
      writeFileSync(path.join(dir, 'llava-rad.json'), JSON.stringify({ decoder: 'decoder-q8_0.gguf', vision: 'secret.txt' }));
      const err = await loadLlavaRad({ model: dir, threads: 1 }).catch((e: unknown) => e as Error);
      expect(err).toMatchObject({ code: 'BAD_GGUF', message: expect.stringMatching(/secret\.txt: not a GGUF file/) });
      expect(err.message).not.toMatch(/72 6f|root/);
      rmSync(secret);
      // JSON that is not an object (the fuzz harness found null giving a TypeError)
      for (const text of ['null', '42', '"x"', '[]']) {
        writeFileSync(path.join(dir, 'llava-rad.json'), text);
        await expect(loadLlavaRad({ model: dir, threads: 1 }), text).rejects.toMatchObject({
          code: 'INVALID_ARGUMENT', message: expect.stringMatching(/must name "decoder" and "vision" GGUF files/),
        });
      }
      // a FIFO named as a GGUF is refused at once instead of waiting for a writer
      const fifo = path.join(dir, 'fifo.gguf');
      expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
      writeFileSync(path.join(dir, 'llava-rad.json'), JSON.stringify({ decoder: 'fifo.gguf', vision: 'vision-f32.gguf' }));
      await expect(loadLlavaRad({ model: dir, threads: 1 })).rejects.toMatchObject({ code: 'IO', message: expect.stringMatching(/not a regular file/) });
      rmSync(fifo);

      rmSync(path.join(dir, 'llava-rad.json'));
      await expect(loadLlavaRad({ model: dir })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(loadLlavaRad({ model: path.join(dir, 'missing') })).rejects.toMatchObject({ code: 'IO' });
      await expect(loadLlavaRad({} as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('a vision GGUF whose projection does not fit the decoder is refused', async () => {
    const { makeTinyLlama } = await import('./helpers/tiny-llama.js');
    const dir = mkdtempSync(path.join(tmpdir(), 'llava-rad-mismatch-'));
    try {
      const small = path.join(dir, 'small.gguf');
      await makeTinyLlama({ path: small, type: 'q8_0', nEmbd: 128, nFf: 256, nLayer: 1 });
      await expect(loadLlavaRad({ decoder: small, vision: VISION })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('llava-rad findings (CLI)', () => {
  const cli = path.join(root, 'dist', 'cli.js');
  const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });

  it('--json prints findings and tokens on the last line; the text form streams the same findings', async () => {
    const decoder = await tinyLlamaPath('f32');
    const img = path.join(IMAGES, 'grey_517x1033.png');
    const r = run(['findings', img, '--model', decoder, '--mmproj', VISION, '--reason', 'Chest pain', '--max-tokens', '10', '--threads', '2', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const last = JSON.parse(r.stdout.trim().split('\n').pop()!) as { findings: string; tokens: number[]; research_use_only: boolean };
    expect(last.tokens.length).toBe(10);
    expect(typeof last.findings).toBe('string');
    expect(last.research_use_only).toBe(true);

    const t = run(['findings', img, '--model', decoder, '--mmproj', VISION, '--reason', 'Chest pain', '--max-tokens', '10', '--threads', '2']);
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout.trim()).toBe(last.findings);
  }, 120_000);

  it('usage errors exit 2 with one line', async () => {
    const decoder = await tinyLlamaPath('f32');
    for (const args of [
      ['findings'],
      ['findings', path.join(IMAGES, 'nope.png'), '--model', decoder, '--mmproj', VISION],
      ['findings', path.join(IMAGES, 'grey_517x1033.png'), '--model', decoder],
      ['findings', path.join(IMAGES, 'grey_517x1033.png'), '--model', decoder, '--mmproj', VISION, '--max-tokens', '0'],
    ]) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n').length).toBe(1);
    }
  }, 60_000);
});
