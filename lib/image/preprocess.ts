// LLaVA-Rad's image input: the open_clip eval transform on a PIL image, reproduced exactly.
//
//   Image.open(f).convert('RGB')            -> decodeImage (lib/image/decode.ts)
//   Resize(518, BICUBIC)                    short side -> 518, long side int(518 * long / short) (truncated;
//                                           torchvision's rule for Resize(int), checked with torchvision 0.14),
//                                           PIL's bicubic (lib/image/resample.ts)
//   CenterCrop(518)                         offset int(round((H - 518) / 2)), Python round = half to even
//   _convert_to_rgb                         already RGB
//   ToTensor()                              float32(u8) / 255 in float32
//   Normalize(mean, std)                    (x - mean) / std in float32, mean/std rounded to float32
// The output is CHW float32, R plane first. Every float32 step is one correctly rounded IEEE operation, which
// a double operation followed by Math.fround reproduces exactly (double has more than 2 * 24 + 2 bits), so
// the tensor is bit-identical to torch's.

import { types } from 'node:util';
import { LlavaRadError, invalidArgument } from '../errors.js';
import { decodeImage, type DecodeOptions, type ImageSourceInfo } from './decode.js';
import { decodeDicom, type DicomInfo, type DicomOptions } from '../dicom/image.js';
import { isDicom } from '../dicom/parse.js';
import { resizeBicubic, type Image8 } from './resample.js';

/**
 * The preprocessing constants of LLaVA-Rad's vision tower (BiomedCLIP-CXR 518): open_clip's OpenAI mean/std
 * (its config sets none) and the 518 px input. A vision GGUF may carry its own and pass them as options.
 */
export const IMAGE_DEFAULTS = Object.freeze({
  size: 518,
  mean: Object.freeze([0.48145466, 0.4578275, 0.40821073] as const),
  std: Object.freeze([0.26862954, 0.26130258, 0.27577711] as const),
});

export interface PreprocessOptions extends DecodeOptions, Omit<DicomOptions, 'maxPixels' | 'minSide'> {
  /** square input size of the vision tower (default 518) */
  imageSize?: number;
  /** per-channel mean, RGB (default open_clip's OpenAI constants) */
  mean?: readonly number[];
  /** per-channel std, RGB (default open_clip's OpenAI constants) */
  std?: readonly number[];
}

/** where the crop came from */
export interface PreprocessGeometry {
  /** size after the short-side resize (before the crop) */
  resizedWidth: number;
  resizedHeight: number;
  /** top-left of the crop in the resized image */
  cropLeft: number;
  cropTop: number;
}

export interface PreprocessedImageU8 extends PreprocessGeometry {
  /** the uint8 RGB crop, interleaved (HWC), size * size * 3 bytes: what PIL holds before ToTensor */
  data: Uint8Array;
  width: number;
  height: number;
  source: ImageSourceInfo;
  /** DICOM input only: what its header said and how it was converted to 8 bits */
  dicom?: DicomInfo;
  /** things the caller should know (a lateral DICOM view, a multi-frame DICOM, ...); empty when none */
  warnings: string[];
}

export interface PreprocessedImage extends PreprocessGeometry {
  /** 3 x size x size, CHW (R, G, B planes), normalized */
  pixels: Float32Array;
  width: number;
  height: number;
  source: ImageSourceInfo;
  /** DICOM input only: what its header said and how it was converted to 8 bits */
  dicom?: DicomInfo;
  /** things the caller should know (a lateral DICOM view, a multi-frame DICOM, ...); empty when none */
  warnings: string[];
}

/** Python's round() for a multiple of 0.5 given as n / 2 (n an integer): halves go to the even neighbour */
function halfToEvenHalf(n: number): number {
  if (n % 2 === 0) return n / 2;
  const lo = (n - 1) / 2; // n odd: n / 2 = lo + 0.5
  return lo % 2 === 0 ? lo : lo + 1;
}

/** torchvision's Resize(size: int) output size for a w x h PIL image (short side -> size, long side truncated) */
export function resizedSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.trunc((size * height) / width) };
  return { width: Math.trunc((size * width) / height), height: size };
}

/** torchvision's CenterCrop offsets (int(round((H - size) / 2.0)), half to even) */
export function centerCropOffset(length: number, size: number): number {
  return halfToEvenHalf(length - size);
}

function checkSize(v: unknown): number {
  if (v === undefined) return IMAGE_DEFAULTS.size;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 4096) {
    throw invalidArgument('options.imageSize', 'an integer from 1 to 4096', v);
  }
  return v;
}

function checkTriple(name: string, v: unknown, dflt: readonly number[], positive: boolean): readonly number[] {
  if (v === undefined) return dflt;
  const ok =
    (Array.isArray(v) || types.isFloat32Array(v) || types.isFloat64Array(v)) &&
    v.length === 3 &&
    Array.from(v as ArrayLike<number>).every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0));
  if (!ok) throw invalidArgument(`options.${name}`, `an array of 3 finite numbers${positive ? ' > 0' : ''}`, v);
  return Array.from(v as ArrayLike<number>);
}

/**
 * Resize (short side -> size, PIL bicubic) and centre crop of an 8-bit RGB image, exactly like open_clip's
 * eval transform on PIL. Only the cropped part is computed (the same pixels as resizing all, then cropping).
 */
export function resizeAndCrop(img: Image8, size: number = IMAGE_DEFAULTS.size): { image: Image8 } & PreprocessGeometry {
  const r = resizedSize(img.width, img.height, size);
  const cropLeft = centerCropOffset(r.width, size);
  const cropTop = centerCropOffset(r.height, size);
  const image = resizeBicubic(img, r.width, r.height, { left: cropLeft, top: cropTop, width: size, height: size });
  return { image, resizedWidth: r.width, resizedHeight: r.height, cropLeft, cropTop };
}

/** float32 ToTensor + Normalize value of every uint8 level, per channel: lut[c * 256 + v] */
export function normalizeTable(mean: readonly number[] = IMAGE_DEFAULTS.mean, std: readonly number[] = IMAGE_DEFAULTS.std): Float32Array {
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c]!);
    const s = Math.fround(std[c]!);
    for (let v = 0; v < 256; v++) {
      const x = Math.fround(v / 255);
      lut[c * 256 + v] = Math.fround(Math.fround(x - m) / s);
    }
  }
  return lut;
}

/** HWC uint8 RGB (size x size) -> CHW float32, normalized */
export function normalizeToCHW(
  rgb: Uint8Array,
  width: number,
  height: number,
  mean: readonly number[] = IMAGE_DEFAULTS.mean,
  std: readonly number[] = IMAGE_DEFAULTS.std,
): Float32Array {
  const n = width * height;
  if (rgb.length !== n * 3) throw new RangeError(`expected ${n * 3} bytes, got ${rgb.length}`);
  const lut = normalizeTable(mean, std);
  const out = new Float32Array(3 * n);
  for (let i = 0, p = 0; i < n; i++, p += 3) {
    out[i] = lut[rgb[p]!]!;
    out[n + i] = lut[256 + rgb[p + 1]!]!;
    out[2 * n + i] = lut[512 + rgb[p + 2]!]!;
  }
  return out;
}

function splitOptions(options: unknown): { decode: DecodeOptions | undefined; size: number; mean: readonly number[]; std: readonly number[] } {
  if (options === undefined || options === null) {
    return { decode: undefined, size: IMAGE_DEFAULTS.size, mean: IMAGE_DEFAULTS.mean, std: IMAGE_DEFAULTS.std };
  }
  if (typeof options !== 'object' || Array.isArray(options)) throw invalidArgument('options', 'an object', options);
  const { imageSize, mean, std, dicomWindow: _w, dicomRefuseLateral: _l, ...decode } = options as PreprocessOptions;
  return {
    decode,
    size: checkSize(imageSize),
    mean: checkTriple('mean', mean, IMAGE_DEFAULTS.mean, false),
    std: checkTriple('std', std, IMAGE_DEFAULTS.std, true),
  };
}

/**
 * Decodes an image and returns the uint8 518x518 RGB crop the official pipeline feeds to ToTensor
 * (for tests and inspection).
 */
export async function preprocessImageU8(input: Uint8Array, options?: PreprocessOptions): Promise<PreprocessedImageU8> {
  const o = splitOptions(options);
  if (types.isUint8Array(input) && isDicom(input)) return preprocessDicomU8(input, options ?? {}, o.size);
  const decoded = await decodeImage(input, o.decode);
  const { image, ...geometry } = resizeAndCrop(decoded, o.size);
  return { data: image.data, width: image.width, height: image.height, ...geometry, source: decoded.source, warnings: [] };
}

/**
 * DICOM Part 10 input (detected by content: 128-byte preamble + "DICM"): the first frame converted to 8 bits
 * by the MIMIC-CXR-JPG recipe (or window/level with options.dicomWindow; lib/dicom/image.ts), grey -> RGB
 * (R = G = B, as PIL's convert('RGB') of the MIMIC JPEG), then the same resize and crop as any image.
 */
async function preprocessDicomU8(input: Uint8Array, options: PreprocessOptions, size: number): Promise<PreprocessedImageU8> {
  const d = await decodeDicom(input, {
    dicomWindow: options.dicomWindow,
    dicomRefuseLateral: options.dicomRefuseLateral,
    maxPixels: options.maxPixels,
    minSide: options.minSide,
  });
  let rgb: Uint8Array;
  if (d.channels === 3) rgb = d.data;
  else {
    rgb = new Uint8Array(d.data.length * 3);
    for (let i = 0, o = 0; i < d.data.length; i++, o += 3) rgb[o] = rgb[o + 1] = rgb[o + 2] = d.data[i]!;
  }
  const { image, ...geometry } = resizeAndCrop({ data: rgb, width: d.width, height: d.height, channels: 3 } as Image8, size);
  const source: ImageSourceInfo = {
    format: 'dicom',
    width: d.width,
    height: d.height,
    orientation: undefined,
    oriented: false,
    space: d.channels === 1 ? 'b-w' : 'srgb',
    channels: d.info.samplesPerPixel,
    bitDepth: d.info.bitsAllocated > 8 ? 16 : 8,
    hasAlpha: false,
    isPalette: false,
    isProgressive: false,
    pages: d.info.numberOfFrames,
  };
  return { data: image.data, width: image.width, height: image.height, ...geometry, source, dicom: d.info, warnings: d.warnings };
}

/**
 * LLaVA-Rad's image preprocessing: decode -> RGB -> resize short side to 518 (PIL bicubic) -> centre crop
 * 518x518 -> /255 -> normalize. Returns 3 x 518 x 518 float32, CHW. See decodeImage for the accepted inputs,
 * the options and the errors.
 */
export async function preprocessImage(input: Uint8Array, options?: PreprocessOptions): Promise<PreprocessedImage> {
  const o = splitOptions(options);
  const u8 = await preprocessImageU8(input, options);
  if (u8.width !== o.size || u8.height !== o.size) {
    throw new LlavaRadError('INTERNAL', `crop is ${u8.width}x${u8.height}, expected ${o.size}x${o.size}`);
  }
  const pixels = normalizeToCHW(u8.data, u8.width, u8.height, o.mean, o.std);
  const { data: _data, ...rest } = u8;
  return { ...rest, pixels };
}
