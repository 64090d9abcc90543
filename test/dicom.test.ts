// DICOM input (issue 5 item 5). Fixtures: scripts/make-dicom-fixtures.sh (pydicom sources with known stored
// values; dcmtk / GDCM re-encodings in every transfer syntax; expected 8-bit images from the MIMIC-CXR-JPG
// authors' function run with numpy + OpenCV's cv2.equalizeHist).
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeDicom, equalizeHist, readDicom } from '../lib/dicom/index.js';
import { decodeFrame, decodeRle, jpegHeader } from '../lib/dicom/codecs.js';
import { TRANSFER_SYNTAX } from '../lib/dicom/parse.js';
import { preprocessImageU8 } from '../lib/image/preprocess.js';
import { LlavaRadError, isLlavaRadError } from '../lib/errors.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'dicom');
interface Source { photometric: string; samples: number; rows: number; cols: number; min: number; max: number; mimic?: string; window?: string }
interface Decoded { file: string; transferSyntax: string; decoder: string; stored: string; mimic: string; rows: number; cols: number; bitsStored: number; min: number; max: number }
interface Manifest { sources: Record<string, Source>; files: { file: string; source: string; transferSyntax: string; lossless: boolean }[]; decoded: Decoded[] }
const manifest = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as Manifest;
const file = (name: string): Buffer => readFileSync(join(DIR, name));

function i32gz(name: string): Int32Array {
  const b = gunzipSync(file(name));
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
const storedOf = (source: string): Int32Array => i32gz(`${source}.stored.i32.gz`);

/** the first frame's JPEG codestream of a single-fragment encapsulated file (SOI after the Pixel Data tag .. last EOI) */
function jpegFrameOf(bytes: Buffer): Uint8Array {
  const px = bytes.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42]));
  const soi = bytes.indexOf(Buffer.from([0xff, 0xd8, 0xff]), px);
  const eoi = bytes.lastIndexOf(Buffer.from([0xff, 0xd9]));
  expect(px > 0 && soi > px && eoi > soi).toBe(true);
  return new Uint8Array(bytes.subarray(soi, eoi + 2));
}

async function png8(name: string): Promise<Uint8Array> {
  const { data, info } = await sharp(file(name)).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(1);
  return new Uint8Array(data);
}

/** the stored values our reader produced, recovered through the window-free path: decode with a LUT-free probe */
async function decodedStored(bytes: Uint8Array): Promise<{ min: number; max: number; mimic: Uint8Array }> {
  const d = await decodeDicom(bytes);
  return { min: d.info.storedMin, max: d.info.storedMax, mimic: d.data };
}

function expectCode(e: unknown, codes: string[]): void {
  if (!isLlavaRadError(e)) throw new Error(`expected a LlavaRadError, got ${String(e)}`, { cause: e });
  expect(codes).toContain(e.code);
}

describe('OpenCV equalizeHist', () => {
  it('equals cv2.equalizeHist on crafted inputs (ties, one value, two values, all levels)', () => {
    const ref = JSON.parse(readFileSync(join(DIR, 'equalize-hist.json'), 'utf8')) as { cases: { input: number[]; output: number[] }[] };
    expect(ref.cases.length).toBeGreaterThan(5);
    for (const c of ref.cases) expect(Array.from(equalizeHist(Uint8Array.from(c.input)))).toEqual(c.output);
  });
});

describe('DICOM transfer syntaxes', () => {
  const greyFiles = manifest.files.filter((f) => manifest.sources[f.source]!.samples === 1);
  for (const f of greyFiles) {
    const src = manifest.sources[f.source]!;
    it(`${f.file} (${f.transferSyntax}) -> the MIMIC-CXR-JPG image of the source`, async () => {
      const d = await decodeDicom(file(f.file));
      expect(d.width).toBe(src.cols);
      expect(d.height).toBe(src.rows);
      expect(d.channels).toBe(1);
      expect(d.info.transferSyntax).toBe(f.transferSyntax);
      const want = await png8(src.mimic!);
      if (f.lossless) {
        expect(d.info.storedMin).toBe(src.min);
        expect(d.info.storedMax).toBe(src.max);
        expect(Buffer.from(d.data).equals(Buffer.from(want))).toBe(true);
      } else {
        // lossy 8-bit JPEG (dcmcjpeg quality 90, cv2 quality 95) of a noisy image: stored values near the source's
        const s = storedOf(f.source);
        let maxErr = 0;
        let sum = 0;
        for (let i = 0; i < s.length; i++) {
          const e = Math.abs(d.stored[i]! - s[i]!);
          maxErr = Math.max(maxErr, e);
          sum += e;
        }
        expect(sum / s.length).toBeLessThan(6);
        expect(maxErr).toBeLessThan(48);
      }
    });
  }

  it('every lossless encoding of a source gives exactly the stored values pydicom wrote', async () => {
    for (const name of Object.keys(manifest.sources)) {
      const s = storedOf(name);
      for (const f of manifest.files.filter((x) => x.source === name && x.lossless)) {
        const d = await decodeDicom(file(f.file));
        expect(d.stored.length, f.file).toBe(s.length);
        expect(Buffer.from(d.stored.buffer).equals(Buffer.from(s.buffer)), f.file).toBe(true);
      }
    }
  });

  it('colour: RGB native, implicit, big endian and RLE decode to the stored RGB; JPEG baseline (YBR) within a tolerance', async () => {
    const s = storedOf('rgb_u8');
    for (const f of manifest.files.filter((x) => x.source === 'rgb_u8')) {
      const d = await decodeDicom(file(f.file));
      expect(d.channels).toBe(3);
      expect(d.info.conversion).toBe('colour');
      if (f.lossless) expect(Array.from(d.data)).toEqual(Array.from(s));
      else {
        let sum = 0;
        for (let i = 0; i < s.length; i++) sum += Math.abs(d.data[i]! - s[i]!);
        expect(sum / s.length).toBeLessThan(12);
      }
    }
  });
});

describe('12-bit lossy JPEG (process 4) and colour JPEG lossless: IJG 6b through dcmjs-codecs', () => {
  // Reference: dcmtk's own decoder (dcmdjpeg, IJG 6b libijg12) on the file that dcmcjpeg +ee wrote.
  // dcmjs-codecs runs the same IJG code (its integer inverse DCT), so the stored values are demanded identical
  // to dcmtk's (docs/validation.md says bit-identical), and then the MIMIC 8-bit image (min-max + equalizeHist, the
  // reference's numpy + OpenCV) too: every value is compared and the differing ones counted.
  for (const ref of manifest.decoded) {
    it(`${ref.file} (${ref.transferSyntax}) -> ${ref.decoder}'s stored values and MIMIC image`, async () => {
      const d = await decodeDicom(file(ref.file));
      expect(d.info.transferSyntax).toBe(ref.transferSyntax);
      expect(d.info.bitsStored).toBe(ref.bitsStored);
      expect([d.width, d.height, d.channels]).toEqual([ref.cols, ref.rows, 1]);
      const want = i32gz(ref.stored);
      expect(d.stored.length).toBe(want.length);
      let differ = 0;
      for (let i = 0; i < want.length; i++) if (d.stored[i] !== want[i]) differ++;
      expect(differ, `stored values different from ${ref.decoder}'s, of ${want.length}`).toBe(0);
      expect([d.info.storedMin, d.info.storedMax]).toEqual([ref.min, ref.max]);
      const mimic = await png8(ref.mimic);
      expect(d.data.length).toBe(mimic.length);
      let differ8 = 0;
      for (let i = 0; i < mimic.length; i++) if (d.data[i] !== mimic[i]) differ8++;
      expect(differ8, `MIMIC 8-bit pixels different from the reference's, of ${mimic.length}`).toBe(0);
    });
  }

  it('the 12-bit fixture really is process 4: SOF1, 12-bit precision, in 1.2.840.10008.1.2.4.51', () => {
    const h = jpegHeader(jpegFrameOf(file('u12_cxr.jpeg-extended.dcm')));
    expect([h.marker, h.precision, h.components]).toEqual([0xc1, 12, 1]);
    expect(manifest.decoded.map((x) => x.transferSyntax)).toContain(TRANSFER_SYNTAX.JPEGExtended);
  });

  it('colour JPEG lossless (dcmcjpeg +e1 of RGB) gives the stored RGB exactly', async () => {
    const d = await decodeDicom(file('rgb_u8.jpeg-lossless-sv1.dcm'));
    expect(d.info.transferSyntax).toBe(TRANSFER_SYNTAX.JPEGLosslessSV1);
    expect(d.channels).toBe(3);
    expect(Buffer.from(d.stored.buffer).equals(Buffer.from(storedOf('rgb_u8').buffer))).toBe(true);
  });

  it('a damaged 12-bit stream is INVALID_DICOM (never grey-filled pixels), and the decoder works again after it', async () => {
    const frame = jpegFrameOf(file('u12_cxr.jpeg-extended.dcm'));
    const g = { rows: 320, columns: 256, samplesPerPixel: 1, bitsAllocated: 16 };
    const want = i32gz('u12_cxr.jpeg-extended.dcmdjpeg.i32.gz');
    const exact = async (): Promise<void> => {
      const out = await decodeFrame(TRANSFER_SYNTAX.JPEGExtended, frame, g);
      expect(out).toBeInstanceOf(Uint16Array);
      expect(Array.from(out).every((v, i) => v === want[i])).toBe(true);
    };
    await exact();
    // truncated inside the entropy-coded data: IJG warns "premature end of data segment" and would fill grey
    for (const cut of [0.3, 0.6, 0.95]) {
      const t = frame.subarray(0, Math.floor(frame.length * cut));
      await expect(decodeFrame(TRANSFER_SYNTAX.JPEGExtended, t, g)).rejects.toMatchObject({ code: 'INVALID_DICOM', message: expect.stringMatching(/damaged: Corrupt JPEG data/) });
    }
    await exact();
    // a Huffman table count that overruns its segment: IJG's error_exit, thrown through the WebAssembly frames
    const dht = frame.findIndex((b, i) => b === 0xff && frame[i + 1] === 0xc4);
    const bad = new Uint8Array(frame);
    bad.fill(0xff, dht + 5, dht + 21);
    const err = await decodeFrame(TRANSFER_SYNTAX.JPEGExtended, bad, g).catch((e: unknown) => e);
    expectCode(err, ['INVALID_DICOM']);
    expect((err as Error).message).not.toMatch(/JpegDecoder/);
    await exact();
    // concurrent calls: a failing stream drops the WebAssembly instance under the others, which wait for a fresh one
    const results = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => decodeFrame(TRANSFER_SYNTAX.JPEGExtended, i % 3 === 0 ? bad : frame, g)));
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 12 }, (_, i) => (i % 3 === 0 ? 'rejected' : 'fulfilled')));
    await exact();
    // the SOF disagrees with the data set: refused before the codec runs
    await expect(decodeFrame(TRANSFER_SYNTAX.JPEGExtended, frame, { ...g, rows: 321 })).rejects.toMatchObject({ code: 'INVALID_DICOM' });
    await expect(decodeFrame(TRANSFER_SYNTAX.JPEGExtended, frame, { ...g, bitsAllocated: 8 })).rejects.toMatchObject({ code: 'INVALID_DICOM' });
  });

  it('12-bit colour lossy JPEG is UNSUPPORTED, naming the transfer syntax and dcmdjpeg', async () => {
    const frame = new Uint8Array(jpegFrameOf(file('u12_cxr.jpeg-extended.dcm')));
    const sof = frame.findIndex((b, i) => b === 0xff && frame[i + 1] === 0xc1);
    frame[sof + 9] = 3; // components
    await expect(decodeFrame(TRANSFER_SYNTAX.JPEGExtended, frame, { rows: 320, columns: 256, samplesPerPixel: 3, bitsAllocated: 16 })).rejects.toMatchObject({
      code: 'UNSUPPORTED',
      message: expect.stringMatching(/12-bit colour lossy JPEG \(transfer syntax 1\.2\.840\.10008\.1\.2\.4\.51\).*dcmdjpeg/),
    });
  });
});

describe('DICOM pixel semantics', () => {
  it('stored values: 12-bit in 16, junk high bits masked, signed 16, signed 12 sign-extended', async () => {
    for (const name of ['u16_mono2_b12', 'u12_junkbits', 's16_mono2', 's12_mono2', 'u16_mono1_b16', 'multiframe_u16']) {
      const s = storedOf(name);
      const d = await decodedStored(file(`${name}.dcm`));
      expect(d.min, name).toBe(Math.min(...s));
      expect(d.max, name).toBe(Math.max(...s));
      expect(Buffer.from(d.mimic).equals(Buffer.from(await png8(`${name}.mimic.png`))), name).toBe(true);
    }
    expect(manifest.sources.s16_mono2!.min).toBeLessThan(0);
    expect(manifest.sources.s12_mono2!.min).toBe(-2048);
  });

  it('MONOCHROME1 is inverted before equalization (an inverted image equalizes to the mirror ranks)', async () => {
    const d = await decodeDicom(file('u16_mono1_b16.dcm'));
    expect(d.info.photometricInterpretation).toBe('MONOCHROME1');
    const s = storedOf('u16_mono1_b16');
    // the brightest stored value becomes the darkest output
    const iMax = s.indexOf(Math.max(...s));
    const iMin = s.indexOf(Math.min(...s));
    expect(d.data[iMax]).toBe(0);
    expect(d.data[iMin]).toBe(255);
  });

  it('the MIMIC recipe is the dataset authors\' arithmetic: truncating min-max, bitwise_not, equalizeHist', async () => {
    const s = storedOf('u16_mono2_b12');
    const min = Math.min(...s);
    const max = Math.max(...s);
    const u8 = Uint8Array.from(s, (v) => Math.trunc(((v - min) / (max - min)) * 255));
    const d = await decodeDicom(file('u16_mono2_b12.dcm'));
    expect(Array.from(d.data)).toEqual(Array.from(equalizeHist(u8)));
  });

  it('dicomWindow: rescale + window centre/width, and the VOI LUT sequence, equal the numpy reference', async () => {
    for (const name of ['u16_mono2_b12', 's16_mono2', 'voilut_u16']) {
      for (const f of manifest.files.filter((x) => x.source === name && x.lossless)) {
        const d = await decodeDicom(file(f.file), { dicomWindow: true });
        expect(d.info.conversion).toBe('window');
        expect(Buffer.from(d.data).equals(Buffer.from(await png8(`${name}.window.png`))), f.file).toBe(true);
      }
    }
    const v = await decodeDicom(file('voilut_u16.dcm'), { dicomWindow: true });
    expect(v.info.hasVoiLut).toBe(true);
  });

  it('multi-frame: the first frame is used, with a warning', async () => {
    for (const f of manifest.files.filter((x) => x.source === 'multiframe_u16')) {
      const d = await decodeDicom(file(f.file));
      expect(d.info.numberOfFrames).toBe(3);
      expect(d.warnings.join(' ')).toMatch(/3 frames/);
      expect(Buffer.from(d.data).equals(Buffer.from(await png8('multiframe_u16.mimic.png'))), f.file).toBe(true);
    }
  });

  it('lateral views warn, or are refused with NON_FRONTAL_VIEW', async () => {
    for (const name of ['lateral_u16.dcm', 'u16_mono2_b12.lateral-dcmodify.dcm']) {
      const d = await decodeDicom(file(name));
      expect(d.warnings.join(' ')).toMatch(/lateral/);
      await expect(decodeDicom(file(name), { dicomRefuseLateral: true })).rejects.toMatchObject({ code: 'NON_FRONTAL_VIEW' });
    }
    const pa = await decodeDicom(file('u16_mono2_b12.dcm'), { dicomRefuseLateral: true });
    expect(pa.info.viewPosition).toBe('PA');
    expect(pa.warnings).toEqual([]);
  });
});

describe('DICOM through preprocessImage', () => {
  it('is detected by content and equals the MIMIC-CXR-JPG PNG through the same resize and crop', async () => {
    const fromDicom = await preprocessImageU8(file('u16_mono1_b16.jpeg-ls.dcm'), { imageSize: 64 });
    const fromPng = await preprocessImageU8(file('u16_mono1_b16.mimic.png'), { imageSize: 64 });
    expect(fromDicom.source.format).toBe('dicom');
    expect(fromDicom.dicom?.photometricInterpretation).toBe('MONOCHROME1');
    expect(Buffer.from(fromDicom.data).equals(Buffer.from(fromPng.data))).toBe(true);
    const lat = await preprocessImageU8(file('lateral_u16.dcm'), { imageSize: 64 });
    expect(lat.warnings.length).toBe(1);
    await expect(preprocessImageU8(file('lateral_u16.dcm'), { imageSize: 64, dicomRefuseLateral: true })).rejects.toMatchObject({ code: 'NON_FRONTAL_VIEW' });
    const win = await preprocessImageU8(file('u16_mono2_b12.dcm'), { imageSize: 64, dicomWindow: true });
    expect(win.dicom?.conversion).toBe('window');
  });
});

describe('malformed DICOM', () => {
  const samples = [
    'u16_mono2_b12.dcm', 'u16_mono2_b12.implicit.dcm', 'u16_mono2_b12.big.dcm', 'u16_mono2_b12.deflated.dcm',
    'u16_mono2_b12.rle.dcm', 'u16_mono2_b12.jpeg-lossless-sv1.dcm', 'u16_mono2_b12.jpeg-ls.dcm', 'u16_mono2_b12.j2k.dcm',
    'u8_mono2.jpeg-baseline.dcm', 'voilut_u16.implicit.dcm', 'multiframe_u16.rle.dcm',
    'u12_cxr.jpeg-extended.dcm', 'rgb_u8.jpeg-lossless-sv1.dcm',
  ];

  it('truncated at many offsets: a typed error, never a crash or hang', async () => {
    for (const name of samples) {
      const b = file(name);
      const cuts = new Set<number>([0, 1, 100, 128, 131, 132, 133, 140, 150, 200, 300, 400]);
      for (let k = 1; k < 24; k++) cuts.add(Math.floor((b.length * k) / 24));
      cuts.add(b.length - 1);
      cuts.add(b.length - 2);
      for (const cut of cuts) {
        if (cut >= b.length) continue;
        try {
          await decodeDicom(b.subarray(0, cut));
          // a cut inside trailing bytes that are not needed may still decode; then the pixels must be whole
        } catch (e) {
          expectCode(e, ['INVALID_DICOM', 'UNSUPPORTED']);
        }
      }
    }
  }, 20_000);

  it('random byte corruption: typed errors only', async () => {
    let seed = 12345;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (const name of samples) {
      const b = file(name);
      for (let t = 0; t < 12; t++) {
        const c = Buffer.from(b);
        const at = 132 + Math.floor(rnd() * (Math.min(c.length, 2048) - 132));
        for (let j = 0; j < 4 && at + j < c.length; j++) c[at + j] = Math.floor(rnd() * 256);
        try {
          await decodeDicom(c);
        } catch (e) {
          expectCode(e, ['INVALID_DICOM', 'UNSUPPORTED', 'IMAGE_TOO_LARGE', 'IMAGE_TOO_SMALL', 'NON_FRONTAL_VIEW']);
        }
      }
    }
  }, 20_000);

  /** finds an element header (explicit VR LE) and returns the value offset */
  function findUS(b: Buffer, group: number, elem: number): number {
    const needle = Buffer.from([group & 0xff, group >> 8, elem & 0xff, elem >> 8, 0x55, 0x53]);
    const at = b.indexOf(needle, 132);
    if (at < 0) throw new Error('tag not found');
    return at + 8;
  }

  it('huge Rows x Columns is refused before allocating (IMAGE_TOO_LARGE)', async () => {
    const b = Buffer.from(file('u16_mono2_b12.dcm'));
    b.writeUInt16LE(65535, findUS(b, 0x0028, 0x0010));
    b.writeUInt16LE(65535, findUS(b, 0x0028, 0x0011));
    await expect(decodeDicom(b)).rejects.toMatchObject({ code: 'IMAGE_TOO_LARGE' });
    const r = Buffer.from(file('u16_mono2_b12.rle.dcm'));
    r.writeUInt16LE(9000, findUS(r, 0x0028, 0x0010));
    r.writeUInt16LE(9000, findUS(r, 0x0028, 0x0011));
    await expect(decodeDicom(r)).rejects.toMatchObject({ code: 'IMAGE_TOO_LARGE' });
  });

  it('Rows larger than the pixel data / codestream: INVALID_DICOM', async () => {
    for (const name of ['u16_mono2_b12.dcm', 'u16_mono2_b12.rle.dcm', 'u16_mono2_b12.jpeg-ls.dcm', 'u16_mono2_b12.j2k.dcm', 'u16_mono2_b12.jpeg-lossless-sv1.dcm']) {
      const b = Buffer.from(file(name));
      b.writeUInt16LE(200, findUS(b, 0x0028, 0x0010));
      await expect(decodeDicom(b), name).rejects.toMatchObject({ code: 'INVALID_DICOM' });
    }
  });

  it('wrong BitsAllocated / BitsStored / HighBit / SamplesPerPixel: typed errors', async () => {
    const cases: [number, number, string][] = [
      [0x0100, 12, 'INVALID_DICOM'], [0x0100, 32, 'UNSUPPORTED'], [0x0100, 0, 'INVALID_DICOM'],
      [0x0101, 17, 'INVALID_DICOM'], [0x0101, 0, 'INVALID_DICOM'], [0x0102, 16, 'INVALID_DICOM'], [0x0002, 2, 'INVALID_DICOM'],
    ];
    for (const [elem, value, code] of cases) {
      const b = Buffer.from(file('u16_mono2_b12.dcm'));
      b.writeUInt16LE(value, findUS(b, 0x0028, elem));
      await expect(decodeDicom(b), `${elem.toString(16)}=${value}`).rejects.toMatchObject({ code });
    }
  });

  it('missing pixel data, bad lengths, bad preamble, unknown transfer syntax', async () => {
    const b = file('u16_mono2_b12.dcm');
    const px = b.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
    await expect(decodeDicom(b.subarray(0, px))).rejects.toMatchObject({ code: 'INVALID_DICOM' });
    const long = Buffer.from(b);
    long.writeUInt32LE(0x7ffffff0, px + 8); // OW length past the end
    await expect(decodeDicom(long)).rejects.toMatchObject({ code: 'INVALID_DICOM' });
    const notDicom = Buffer.from(b);
    notDicom.write('DICX', 128);
    await expect(decodeDicom(notDicom)).rejects.toMatchObject({ code: 'INVALID_DICOM' });
    const ts = Buffer.from(b);
    const at = ts.indexOf('1.2.840.10008.1.2.1');
    ts.write('1.2.840.10008.1.2.4.99', at - 0, 'latin1'); // overwrites into the next bytes: still a typed error
    await expect(decodeDicom(ts)).rejects.toBeInstanceOf(LlavaRadError);
    const jp = Buffer.from(b);
    jp.write('1.2.840.10008.1.2.4.50', jp.indexOf('1.2.840.10008.1.2.1'), 'latin1');
    await expect(decodeDicom(jp)).rejects.toBeInstanceOf(LlavaRadError);
  });

  it('encapsulated: fragments and offset tables inconsistent', async () => {
    const b = Buffer.from(file('multiframe_u16.rle.dcm'));
    const px = b.indexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42]));
    const bot = px + 12; // the offset table item
    expect(b.readUInt32LE(bot)).toBe(0xe000fffe);
    const botLen = b.readUInt32LE(bot + 4);
    if (botLen >= 8) {
      const c = Buffer.from(b);
      c.writeUInt32LE(12345, bot + 8 + 4); // frame 1 offset not at a fragment boundary
      await expect(decodeDicom(c)).rejects.toMatchObject({ code: 'INVALID_DICOM' });
    }
    const firstFrag = bot + 8 + botLen;
    const d = Buffer.from(b);
    d.writeUInt32LE(0x7fffffff, firstFrag + 4); // fragment length past the end
    await expect(decodeDicom(d)).rejects.toMatchObject({ code: 'INVALID_DICOM' });
    const e = Buffer.from(b);
    e.writeUInt32LE(0xffffffff, firstFrag + 4); // undefined fragment length
    await expect(decodeDicom(e)).rejects.toMatchObject({ code: 'INVALID_DICOM' });
    // RLE header lies about its segments
    const seg = Buffer.from(b);
    seg.writeUInt32LE(3, firstFrag + 8);
    await expect(decodeDicom(seg)).rejects.toMatchObject({ code: 'INVALID_DICOM' });
    const segOff = Buffer.from(b);
    segOff.writeUInt32LE(0x7fffffff, firstFrag + 8 + 8);
    await expect(decodeDicom(segOff)).rejects.toMatchObject({ code: 'INVALID_DICOM' });
  });

  it('RLE and JPEG header readers reject garbage', () => {
    const g = { rows: 4, columns: 4, samplesPerPixel: 1, bitsAllocated: 8 };
    expect(() => decodeRle(new Uint8Array(10), g)).toThrow(LlavaRadError);
    const hdr = new Uint8Array(64);
    new DataView(hdr.buffer).setUint32(0, 1, true);
    new DataView(hdr.buffer).setUint32(4, 64, true);
    const rle = new Uint8Array([...hdr, 0x7f, 1, 2]); // literal run of 128 past the segment
    expect(() => decodeRle(rle, g)).toThrow(LlavaRadError);
    expect(() => jpegHeader(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff]))).toThrow(LlavaRadError);
    expect(() => readDicom(new Uint8Array(131))).toThrow(LlavaRadError);
  });
});
