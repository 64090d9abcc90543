// The image input stage (lib/image/): decoding, PIL's bicubic resize, the centre crop and the normalization,
// against fixtures written by the real PIL 9.4 / torchvision 0.14 / torch (scripts/make-image-fixtures.py;
// test/fixtures/images/manifest.json says what each file is).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { LlavaRadError, isLlavaRadError } from '../lib/errors.js';
import { decodeImage } from '../lib/image/decode.js';
import {
  IMAGE_DEFAULTS,
  centerCropOffset,
  normalizeTable,
  preprocessImage,
  preprocessImageU8,
  resizedSize,
} from '../lib/image/preprocess.js';
import { axisCoefficients, resizeBicubic, type Image8 } from '../lib/image/resample.js';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'images');
const fixture = (f: string): Buffer => readFileSync(path.join(dir, f));

interface Run {
  label: string;
  options: Record<string, unknown>;
  /** PIL's crop; null: only the decoded pixels are checked */
  expected: string | null;
  decodedSha256: string;
  width: number;
  height: number;
}
interface Entry extends Run {
  name: string;
  file: string;
  kind: string;
  pilMode: string;
  variants: Run[];
}
const manifest = JSON.parse(fixture('manifest.json').toString('utf8')) as {
  pillow: string;
  images: Entry[];
  resample: { src: string; width: number; height: number; expected: string }[];
};

/** a lossless fixture image as interleaved RGB (grey files replicated) */
async function readRgb(file: string): Promise<Image8> {
  const { data, info } = await sharp(path.join(dir, file)).raw().toBuffer({ resolveWithObject: true });
  const n = info.width * info.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) out[i * 3 + c] = data[i * info.channels + (info.channels >= 3 ? c : 0)]!;
  }
  return { data: out, width: info.width, height: info.height, channels: 3 };
}

/** "max diff M, N of T samples differ" ('' when identical) */
function diff(a: Uint8Array, b: Uint8Array): string {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  let max = 0;
  let count = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (d !== 0) {
      count++;
      if (d > max) max = d;
    }
  }
  return count === 0 ? '' : `max diff ${max}, ${count} of ${a.length} samples differ`;
}

const sha256 = (d: Uint8Array): string => createHash('sha256').update(d).digest('hex');

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof LlavaRadError)) return `not a LlavaRadError: ${String(e)}`;
    return e.code;
  }
  return 'resolved';
}

async function errorOf(p: Promise<unknown>): Promise<LlavaRadError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof LlavaRadError) return e;
    throw new Error(`expected a LlavaRadError, got ${String(e)}`);
  }
  throw new Error('expected a rejection');
}

describe('PIL parity: decode + resize + centre crop (uint8 518x518)', () => {
  const runs: (Run & { entry: Entry })[] = manifest.images.flatMap((e) => [
    { ...e, label: 'default', entry: e },
    ...e.variants.map((v) => ({ ...v, entry: e })),
  ]);

  it.each(runs.map((r) => [`${r.entry.name} (${r.entry.kind}; ${r.label})`, r] as const))('%s', async (_n, r) => {
    const input = fixture(r.entry.file);
    // the decoder alone: our RGB bytes vs the SHA-256 of PIL's decoded RGB bytes
    const dec = await decodeImage(input, r.options);
    expect([dec.width, dec.height]).toEqual([r.width, r.height]);
    const decodedSame = sha256(dec.data) === r.decodedSha256;
    if (r.expected === null) {
      expect(decodedSame, `${r.entry.file}: decoded RGB differs from PIL's`).toBe(true);
      return;
    }
    // the whole input stage vs PIL's crop
    const ours = await preprocessImageU8(input, r.options);
    expect([ours.width, ours.height]).toEqual([518, 518]);
    const exp = await readRgb(r.expected);
    const d = diff(ours.data, exp.data);
    expect(d, `${r.entry.file} ${r.label}: crop differs from PIL's (${d}); decoded pixels ${decodedSame ? 'identical' : 'DIFFER'}`).toBe('');
    expect(decodedSame, `${r.entry.file}: decoded RGB differs from PIL's`).toBe(true);
  });

  it('every fixture kind is covered', () => {
    const kinds = manifest.images.map((e) => `${e.file} ${e.pilMode}`).join('\n');
    for (const k of ['.png L', '.png RGB', '.png RGBA', '.png LA', '.png P', '.png I', '.png 1', '.jpg CMYK', '.jpg L',
      '.webp RGB', '.webp RGBA', '.tif RGB', '.tif L', '.gif P']) {
      expect(kinds).toContain(k);
    }
    const orientations = manifest.images.map((e) => /^exif(\d)_/.exec(e.name)?.[1]).filter(Boolean).sort();
    expect(orientations).toEqual(['2', '3', '4', '5', '6', '7', '8']);
  });
});

describe('AVIF (no PIL reference: Pillow 9.4 has no AVIF decoder)', () => {
  it('a lossless AVIF made from a PNG fixture gives the same crop as the PNG', async () => {
    const png = fixture('rgb_301x263.png');
    const avif = await sharp(png).avif({ lossless: true }).toBuffer();
    const dec = await decodeImage(avif);
    expect(dec.source.format).toBe('avif');
    const fromPng = await preprocessImageU8(png);
    const fromAvif = await preprocessImageU8(avif);
    const d = diff(fromAvif.data, fromPng.data);
    expect(d, `lossless AVIF round trip: ${d}`).toBe('');
  });
});

describe('the resampler alone (PIL resize BICUBIC on identical pixels)', () => {
  it.each(manifest.resample.map((c) => [`${c.src} -> ${c.width}x${c.height}`, c] as const))('%s', async (_n, c) => {
    const src = await readRgb(c.src);
    const exp = await readRgb(c.expected);
    const out = resizeBicubic(src, c.width, c.height);
    expect([out.width, out.height]).toEqual([c.width, c.height]);
    const d = diff(out.data, exp.data);
    expect(d, `${c.src} -> ${c.width}x${c.height}: ${d}`).toBe('');
  });

  it('a window is the same as cropping the full resize; 1 and 4 channels resample per channel', async () => {
    const src = await readRgb('resample/src_211x97.png');
    const full = resizeBicubic(src, 300, 138);
    const win = resizeBicubic(src, 300, 138, { left: 17, top: 9, width: 101, height: 77 });
    const crop = new Uint8Array(101 * 77 * 3);
    for (let y = 0; y < 77; y++) crop.set(full.data.subarray(((y + 9) * 300 + 17) * 3, ((y + 9) * 300 + 118) * 3), y * 101 * 3);
    expect(diff(win.data, crop)).toBe('');
    const grey = { data: src.data.filter((_, i) => i % 3 === 1), width: src.width, height: src.height, channels: 1 };
    const g = resizeBicubic(grey, 64, 29);
    expect(diff(g.data, resizeBicubic(src, 64, 29).data.filter((_, i) => i % 3 === 1))).toBe('');
  });

  it('coefficients: taps sum to 1 in fixed point (within rounding), support grows when downscaling', () => {
    const up = axisCoefficients(37, 300);
    expect(up.ksize).toBe(5);
    const down = axisCoefficients(2000, 518);
    expect(down.ksize).toBe(2 * Math.ceil(2 * (2000 / 518)) + 1);
    for (const c of [up, down]) {
      for (let i = 0; i < c.bounds.length / 2; i++) {
        let s = 0;
        for (let k = 0; k < c.bounds[2 * i + 1]!; k++) s += c.kk[i * c.ksize + k]!;
        expect(Math.abs(s - (1 << 22))).toBeLessThanOrEqual(c.ksize);
      }
    }
  });

  it('rejects bad arguments', () => {
    const img = { data: new Uint8Array(12), width: 2, height: 2, channels: 3 };
    expect(() => resizeBicubic(img, 0, 5)).toThrow(RangeError);
    expect(() => resizeBicubic({ ...img, width: 3 }, 5, 5)).toThrow(RangeError);
    expect(() => resizeBicubic(img, 5, 5, { left: 3, top: 0, width: 3, height: 1 })).toThrow(RangeError);
  });
});

describe('geometry (torchvision Resize(int) + CenterCrop rules)', () => {
  it('short side -> 518, long side truncated; crop offset rounds half to even', () => {
    expect(resizedSize(600, 700, 518)).toEqual({ width: 518, height: Math.trunc((518 * 700) / 600) });
    expect(resizedSize(700, 600, 518)).toEqual({ width: 604, height: 518 });
    expect(resizedSize(517, 1033, 518)).toEqual({ width: 518, height: 1034 });
    expect(resizedSize(64, 64, 518)).toEqual({ width: 518, height: 518 });
    // (L - 518) / 2 = 0.5, 1.5, 2.5, 3.5 -> 0, 2, 2, 4 (Python's round)
    expect([519, 521, 523, 525, 520, 518].map((l) => centerCropOffset(l, 518))).toEqual([0, 2, 2, 4, 1, 0]);
  });
});

describe('normalization (ToTensor + Normalize in float32, torch)', () => {
  const lutBytes = fixture('normalize-lut.bin');
  const torchLut = new Float32Array(lutBytes.buffer.slice(lutBytes.byteOffset, lutBytes.byteOffset + lutBytes.length));

  it("every uint8 level maps to torch's float32 bit for bit", () => {
    const ours = normalizeTable();
    expect(torchLut.length).toBe(768);
    let max = 0;
    let count = 0;
    for (let i = 0; i < 768; i++) {
      const d = Math.abs(ours[i]! - torchLut[i]!);
      if (d > max) max = d;
      if (d !== 0) count++;
    }
    expect(`max diff ${max}, ${count} differ`).toBe('max diff 0, 0 differ');
  });

  const tensors = JSON.parse(fixture('tensors.json').toString('utf8')) as Record<
    string,
    { sum: number[]; sumsq: number[]; samples: [number, number, number, number][] }
  >;
  it.each(Object.keys(tensors))("full tensor of %s matches torchvision's", async (name) => {
    const e = manifest.images.find((x) => x.name === name)!;
    const t = tensors[name]!;
    const out = await preprocessImage(fixture(e.file));
    expect(out.pixels).toBeInstanceOf(Float32Array);
    expect(out.pixels.length).toBe(3 * 518 * 518);
    expect([out.width, out.height]).toEqual([518, 518]);
    const n = 518 * 518;
    for (let c = 0; c < 3; c++) {
      let s = 0;
      let s2 = 0;
      for (let i = 0; i < n; i++) {
        const v = out.pixels[c * n + i]!;
        s += v;
        s2 += v * v;
      }
      expect(Math.abs(s - t.sum[c]!)).toBeLessThan(1e-6 * Math.max(1, Math.abs(t.sum[c]!)));
      expect(Math.abs(s2 - t.sumsq[c]!)).toBeLessThan(1e-6 * Math.max(1, t.sumsq[c]!));
    }
    let maxd = 0;
    for (const [c, y, x, v] of t.samples) maxd = Math.max(maxd, Math.abs(out.pixels[c * n + y * 518 + x]! - v));
    expect(maxd).toBeLessThanOrEqual(1e-6);
  });

  it('mean/std/imageSize options and the constants', async () => {
    expect(IMAGE_DEFAULTS.size).toBe(518);
    expect(IMAGE_DEFAULTS.mean).toEqual([0.48145466, 0.4578275, 0.40821073]);
    expect(IMAGE_DEFAULTS.std).toEqual([0.26862954, 0.26130258, 0.27577711]);
    const out = await preprocessImage(fixture('grey_64x64.png'), { imageSize: 224, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] });
    expect(out.pixels.length).toBe(3 * 224 * 224);
    const u8 = await preprocessImageU8(fixture('grey_64x64.png'), { imageSize: 224 });
    expect(out.pixels[0]).toBe(Math.fround(Math.fround(Math.fround(u8.data[0]! / 255) - 0.5) / 0.5));
  });
});

describe('decoder behaviour and options', () => {
  it('reports the source', async () => {
    const d = await decodeImage(fixture('exif6_560x500.jpg'));
    expect(d.source).toMatchObject({ format: 'jpeg', width: 560, height: 500, orientation: 6, oriented: true, pages: 1 });
    expect([d.width, d.height]).toEqual([500, 560]);
    const n = await decodeImage(fixture('exif6_560x500.jpg'), { autoOrient: false });
    expect([n.width, n.height, n.source.oriented]).toEqual([560, 500, false]);
    const g = await decodeImage(fixture('grey16_150x170.png'));
    expect(g.source).toMatchObject({ format: 'png', bitDepth: 16, channels: 1 });
    const c = await decodeImage(fixture('cmyk_360x300.jpg'));
    expect(c.source.space).toBe('cmyk');
  });

  it("16-bit grey: 'pil' clips like PIL, 'msb' keeps the high byte, 'minmax' stretches", async () => {
    const buf = fixture('grey16_150x170.png');
    const pil = await decodeImage(buf, { highBitDepth: 'pil' });
    const msb = await decodeImage(buf);
    const mm = await decodeImage(buf, { highBitDepth: 'minmax' });
    const share255 = (d: Uint8Array): number => d.filter((v) => v === 255).length / d.length;
    expect(share255(pil.data)).toBeGreaterThan(0.9);
    expect(share255(msb.data)).toBeLessThan(0.1);
    expect(Math.max(...mm.data)).toBe(255);
    expect(Math.min(...mm.data)).toBe(0);
  });

  it('animated images: refused by default, firstFrame takes frame 0', async () => {
    const buf = fixture('animated_200x220.gif');
    const e = await errorOf(decodeImage(buf));
    expect(e.code).toBe('UNSUPPORTED');
    expect(e.message).toMatch(/2 frames.*firstFrame/);
    const d = await decodeImage(buf, { firstFrame: true });
    expect([d.width, d.height, d.source.pages]).toEqual([200, 220, 2]);
  });

  it('accepts a Uint8Array view into a larger buffer', async () => {
    const png = fixture('grey_64x64.png');
    const big = new Uint8Array(png.length + 20);
    big.set(png, 7);
    const a = await preprocessImageU8(big.subarray(7, 7 + png.length));
    const b = await preprocessImageU8(png);
    expect(diff(a.data, b.data)).toBe('');
  });
});

/** a PNG whose IHDR claims w x h (valid CRCs, an empty IDAT) */
function pngHeader(w: number, h: number): Buffer {
  const table = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer): number => {
    let c = 0xffffffff;
    for (const x of b) c = table[(c ^ x) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer): Buffer => {
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', Buffer.alloc(0)), chunk('IEND', Buffer.alloc(0))]);
}

describe('bad inputs give typed errors', () => {
  const solid = (w: number, h: number): Promise<Buffer> =>
    sharp({ create: { width: w, height: h, channels: 3, background: { r: 40, g: 50, b: 60 } } }).png().toBuffer();

  it('empty, not an image, truncated', async () => {
    expect(await codeOf(decodeImage(Buffer.alloc(0)))).toBe('INVALID_IMAGE');
    expect(await codeOf(decodeImage(new Uint8Array(0)))).toBe('INVALID_IMAGE');
    expect(await codeOf(decodeImage(Buffer.from('hello, this is not an image')))).toBe('INVALID_IMAGE');
    const random = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24));
    expect(await codeOf(decodeImage(random))).toBe('INVALID_IMAGE');
    const png = fixture('rgb_600x700.png');
    const e1 = await errorOf(preprocessImage(png.subarray(0, png.length >> 1)));
    expect(e1.code).toBe('INVALID_IMAGE');
    const jpg = fixture('grey_2000x1600.jpg');
    const e2 = await errorOf(preprocessImage(jpg.subarray(0, Math.floor(jpg.length * 0.6))));
    expect(e2.code).toBe('INVALID_IMAGE');
    // only the header
    expect(await codeOf(decodeImage(png.subarray(0, 40)))).toBe('INVALID_IMAGE');
  });

  it('absurd dimensions are refused from the header, before decoding', async () => {
    const e = await errorOf(decodeImage(pngHeader(60000, 60000)));
    expect(e.code).toBe('IMAGE_TOO_LARGE');
    expect(e.message).toContain('60000x60000');
    expect(await codeOf(decodeImage(fixture('rgb_600x700.png'), { maxPixels: 1000 }))).toBe('IMAGE_TOO_LARGE');
  });

  it('too small for a radiograph (minimum side 32 px by default)', async () => {
    const e = await errorOf(decodeImage(await solid(1, 1)));
    expect(e.code).toBe('IMAGE_TOO_SMALL');
    expect(e.message).toContain('1x1');
    expect(await codeOf(decodeImage(await solid(31, 400)))).toBe('IMAGE_TOO_SMALL');
    expect(await codeOf(decodeImage(await solid(32, 32)))).toBe('resolved');
    // allowed on request: a 1x1 image upscales to a flat 518x518
    const one = await preprocessImageU8(await solid(1, 1), { minSide: 1 });
    expect(new Set(one.data.filter((_, i) => i % 3 === 0))).toEqual(new Set([40]));
  });

  it('formats other than PNG/JPEG/WebP/TIFF/GIF/AVIF are refused', async () => {
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="100" height="100"/></svg>');
    expect(await codeOf(decodeImage(svg))).toMatch(/UNSUPPORTED|INVALID_IMAGE/);
  });

  it('arguments of the wrong type: INVALID_ARGUMENT "expected X, got Y"', async () => {
    for (const bad of ['x.png', 42, null, undefined, [1, 2, 3], {}, new ArrayBuffer(8), new Uint16Array(4)]) {
      const e = await errorOf(preprocessImage(bad as unknown as Uint8Array));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(/^image must be a Buffer or Uint8Array holding an encoded image, got /);
    }
    const png = fixture('grey_64x64.png');
    const cases: [unknown, RegExp][] = [
      [5, /options must be an object, got 5/],
      [{ firstFrame: 'yes' }, /options.firstFrame must be a boolean, got "yes"/],
      [{ autoOrient: 1 }, /options.autoOrient must be a boolean, got 1/],
      [{ highBitDepth: 'scale' }, /options.highBitDepth must be 'msb', 'minmax' or 'pil', got "scale"/],
      [{ maxPixels: -1 }, /options.maxPixels must be an integer >= 1, got -1/],
      [{ minSide: 1.5 }, /options.minSide must be an integer >= 1, got 1.5/],
      [{ imageSize: 0 }, /options.imageSize must be an integer from 1 to 4096, got 0/],
      [{ mean: [1, 2] }, /options.mean must be an array of 3 finite numbers, got an array of length 2/],
      [{ std: [1, 0, 1] }, /options.std must be an array of 3 finite numbers > 0/],
    ];
    for (const [opts, re] of cases) {
      const e = await errorOf(preprocessImage(png, opts as never));
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(re);
    }
  });

  it('damaged files never crash: every mutation resolves or gives a LlavaRadError', async () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) / 2 ** 24;
    const originals = ['grey_64x64.png', 'rgb_baseline_444_420x460.jpg', 'gif_290x310.gif', 'webp_lossy_400x430.webp', 'tiff_grey_raw_157x200.tif'].map(fixture);
    const codes = new Map<string, number>();
    for (let i = 0; i < 60; i++) {
      const b = Buffer.from(originals[i % originals.length]!);
      const kind = i % 3;
      let m: Buffer = b;
      if (kind === 0) for (let k = 0; k < 8; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      else if (kind === 1) m = b.subarray(0, Math.floor(rnd() * b.length));
      else m = Buffer.concat([b.subarray(0, 64), Buffer.from(Array.from({ length: 200 }, () => Math.floor(rnd() * 256))), b.subarray(64)]);
      const c = await codeOf(preprocessImage(m, { minSide: 1 }));
      expect(c === 'resolved' || /^[A-Z_]+$/.test(c), c).toBe(true);
      codes.set(c, (codes.get(c) ?? 0) + 1);
    }
    expect(isLlavaRadError(new LlavaRadError('INVALID_IMAGE', 'x'), 'INVALID_IMAGE')).toBe(true);
    expect(codes.size).toBeGreaterThan(1);
  });
});
