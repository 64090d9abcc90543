// Image decoding for LLaVA-Rad: encoded bytes -> 8-bit RGB pixels, matching what the official pipeline's
// `Image.open(f).convert('RGB')` (PIL) yields, with sharp (libvips) as the decoder.
//
// How each kind of input maps to RGB (measured against Debian's Pillow 9.4; test/image.test.ts checks it):
// - 8-bit grey (and 1/2/4-bit grey, which both decoders scale to 0..255): R = G = B = grey.
// - Alpha (grey+alpha, RGBA, palette with transparency, WebP with alpha): the alpha channel is DROPPED, the
//   colour under it is kept, nothing is composited (PIL's convert('RGB') does the same).
// - Palette: the palette colours (libvips expands the palette like PIL's P -> RGB).
// - CMYK (JPEG, TIFF): decoded to raw CMYK (Adobe-inverted JPEGs are un-inverted by both decoders) and
//   converted with PIL's own naive formula, per channel: nk = 255 - K; out = nk - (C * nk) / 255 with PIL's
//   rounded integer division; NOT sharp's default ICC-managed CMYK -> sRGB conversion, which differs by
//   tens of grey levels. Embedded ICC profiles are ignored for every format, as PIL ignores them.
// - 16-bit: PIL 9.4 opens a 16-bit grey PNG as mode "I" and convert('RGB') CLIPS every value above 255 to
//   255 (almost any real 16-bit radiograph turns white), while it keeps the high byte of 16-bit RGB samples.
//   We deliberately do not copy the grey clipping by default: option `highBitDepth` picks
//     'msb'    (default) the high byte, v >> 8, for grey and colour alike (= PIL's 16-bit RGB behaviour);
//     'minmax' (min..max of the colour samples) -> 0..255, round half up (like MIMIC-CXR's DICOM -> JPEG step;
//              use it for 10/12-bit data stored in 16-bit containers);
//     'pil'    exactly PIL: grey clipped at 255, colour high byte.
// - EXIF orientation: PIL's Image.open does not apply it, and neither LLaVA-Rad's loader nor open_clip's eval
//   transform (Resize, CenterCrop, _convert_to_rgb, ToTensor, Normalize) calls ImageOps.exif_transpose, so
//   the official pipeline feeds a rotated photo to the model as stored. We APPLY the orientation by default
//   (`autoOrient: true`, the same pixels as exif_transpose), because a radiograph shown upright by every
//   viewer is what a user means; `autoOrient: false` reproduces the official pipeline exactly.
// - Multi-frame images (animated GIF/WebP, multi-page TIFF) are refused (UNSUPPORTED) unless
//   `firstFrame: true`, which decodes frame 0 like PIL's open.
// - KNOWN DIFFERENCE: transparent pixels of a GIF (still or animated) come out black (0, 0, 0) here, because
//   libvips renders them as RGBA (0, 0, 0, 0), while PIL's convert('RGB') gives the palette colour of the
//   transparent index. Opaque GIF pixels, and transparent pixels of palette PNGs (tRNS), match PIL.
// - AVIF is decoded by sharp's libheif; Pillow 9.4 has no AVIF decoder, so there is no PIL reference for it.
// Safety: the header is read first (no pixel decoding) and images over `maxPixels` (default 50 MP: every
// CR/DR detector and mammography plate fits) or with a side under `minSide` (default 32 px) are refused;
// sharp's own `limitInputPixels` is set to the same limit and `failOn: 'error'` rejects truncated and
// corrupt data (decoder warnings that PIL also tolerates, such as stray bytes between JPEG markers, pass).

import { types } from 'node:util';
import type { Metadata, OutputInfo, Sharp, SharpOptions } from 'sharp';
import { LlavaRadError, describeValue, invalidArgument } from '../errors.js';

export type HighBitDepthMode = 'msb' | 'minmax' | 'pil';

export interface DecodeOptions {
  /** apply the EXIF orientation (default true; false = the official pipeline, which ignores it) */
  autoOrient?: boolean;
  /** decode only the first frame of a multi-frame image instead of refusing it (default false) */
  firstFrame?: boolean;
  /** how 16-bit samples become 8-bit (default 'msb'; see the module comment) */
  highBitDepth?: HighBitDepthMode;
  /** refuse images with more pixels than this, before decoding (default 50,000,000) */
  maxPixels?: number;
  /** refuse images whose shorter side is below this many pixels (default 32) */
  minSide?: number;
}

export const DEFAULT_MAX_PIXELS = 50_000_000;
export const DEFAULT_MIN_SIDE = 32;

/** formats accepted (sharp's names); AVIF is 'heif' with compression 'av1' */
const FORMATS = new Set(['jpeg', 'png', 'webp', 'tiff', 'gif', 'heif']);

export interface ImageSourceInfo {
  /** container format: 'jpeg', 'png', 'webp', 'tiff', 'gif', 'avif' */
  format: string;
  /** stored size (before EXIF orientation) */
  width: number;
  height: number;
  /** EXIF orientation tag (1..8) when present */
  orientation: number | undefined;
  /** whether the orientation was applied to the pixels */
  oriented: boolean;
  /** libvips colour space name: 'b-w', 'srgb', 'cmyk', 'grey16', 'rgb16', ... */
  space: string;
  /** channels as stored, alpha included */
  channels: number;
  /** bits per sample of the decoded data: 8 or 16 */
  bitDepth: 8 | 16;
  hasAlpha: boolean;
  isPalette: boolean;
  isProgressive: boolean;
  /** frames/pages in the file (1 for still images) */
  pages: number;
}

export interface DecodedImage {
  /** interleaved 8-bit RGB, width * height * 3 bytes, rows top to bottom */
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3;
  source: ImageSourceInfo;
}

export type SharpFactory = (input: Buffer, options?: SharpOptions) => Sharp;
let sharpPromise: Promise<SharpFactory> | undefined;

/** sharp (libvips) is loaded on first use, so importing the package does not load it */
export function loadSharp(): Promise<SharpFactory> {
  sharpPromise ??= import('sharp').then(
    (m) => ((m as { default?: unknown }).default ?? m) as SharpFactory,
    (e: unknown) => {
      sharpPromise = undefined;
      throw new LlavaRadError('NATIVE_LOAD', `the image decoder (sharp) could not be loaded: ${sharpMessage(e)}`, { cause: e });
    },
  );
  return sharpPromise;
}

function bytesOf(input: unknown): Buffer {
  // util.types, not instanceof: a Proxy of a Buffer passes instanceof but not the native code that reads it
  if (!types.isUint8Array(input)) throw invalidArgument('image', 'a Buffer or Uint8Array holding an encoded image', input);
  if (Buffer.isBuffer(input)) return input;
  // a view of a detached ArrayBuffer (transferred away) is empty, and Buffer.from would throw on it
  if (input.byteLength === 0) return Buffer.alloc(0);
  return Buffer.from(input.buffer, input.byteOffset, input.byteLength);
}

function checkOptions(options: unknown): Required<DecodeOptions> {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw invalidArgument('options', 'an object', options);
  }
  const o = options as Record<string, unknown>;
  const bool = (name: string, dflt: boolean): boolean => {
    const v = o[name];
    if (v === undefined) return dflt;
    if (typeof v !== 'boolean') throw invalidArgument(`options.${name}`, 'a boolean', v);
    return v;
  };
  const int = (name: string, dflt: number, min: number): number => {
    const v = o[name];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw invalidArgument(`options.${name}`, `an integer >= ${min}`, v);
    }
    return v;
  };
  const hb = o.highBitDepth;
  if (hb !== undefined && hb !== 'msb' && hb !== 'minmax' && hb !== 'pil') {
    throw invalidArgument('options.highBitDepth', "'msb', 'minmax' or 'pil'", hb);
  }
  return {
    autoOrient: bool('autoOrient', true),
    firstFrame: bool('firstFrame', false),
    highBitDepth: (hb as HighBitDepthMode | undefined) ?? 'msb',
    maxPixels: int('maxPixels', DEFAULT_MAX_PIXELS, 1),
    minSide: int('minSide', DEFAULT_MIN_SIDE, 1),
  };
}

function sharpMessage(e: unknown): string {
  return e instanceof Error ? e.message.replace(/\s+/g, ' ').trim() : String(e);
}

/** maps a sharp/libvips failure to a typed error */
function decodeError(e: unknown, stage: string): LlavaRadError {
  const msg = sharpMessage(e);
  if (/pixel limit/i.test(msg)) {
    return new LlavaRadError('IMAGE_TOO_LARGE', `image is too large to decode: ${msg}`, { cause: e });
  }
  if (/unsupported image format|not a known file format|bad seek|input buffer contains/i.test(msg)) {
    return new LlavaRadError('INVALID_IMAGE', `not a supported image (${stage}): ${msg}`, { cause: e });
  }
  if (/truncat|premature end|unexpected end|read error|incomplete/i.test(msg)) {
    return new LlavaRadError('INVALID_IMAGE', `image data is truncated (${stage}): ${msg}`, { cause: e });
  }
  return new LlavaRadError('INVALID_IMAGE', `image could not be decoded (${stage}): ${msg}`, { cause: e });
}

/** Pillow's MULDIV255: (a * b + 128) / 255 rounded, with its shift trick */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/** PIL's CMYK -> RGB (Convert.c cmyk2rgb): out = clip(nk - C*nk/255), nk = 255 - K */
function cmykToRgb(src: Uint8Array, n: number, stride: number): Uint8Array {
  const out = new Uint8Array(n * 3);
  for (let i = 0, p = 0, o = 0; i < n; i++, p += stride) {
    const nk = 255 - src[p + 3]!;
    for (let c = 0; c < 3; c++) {
      const v = nk - mulDiv255(src[p + c]!, nk);
      out[o++] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}

/** 16-bit samples (colourChannels of stride per pixel) -> 8-bit RGB by the chosen mode */
function from16(src: Uint16Array, n: number, stride: number, colour: 1 | 3, mode: HighBitDepthMode): Uint8Array {
  const out = new Uint8Array(n * 3);
  let map: (v: number) => number;
  if (mode === 'minmax') {
    let lo = 65535;
    let hi = 0;
    for (let i = 0, p = 0; i < n; i++, p += stride) {
      for (let c = 0; c < colour; c++) {
        const v = src[p + c]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    }
    const range = hi - lo;
    map = range === 0 ? () => 0 : (v) => Math.floor(((v - lo) * 255) / range + 0.5);
  } else if (mode === 'pil' && colour === 1) {
    map = (v) => (v > 255 ? 255 : v); // PIL: mode I -> RGB clips
  } else {
    map = (v) => v >> 8;
  }
  const lut = new Uint8Array(65536);
  for (let v = 0; v < 65536; v++) lut[v] = map(v);
  for (let i = 0, p = 0, o = 0; i < n; i++, p += stride) {
    if (colour === 1) {
      const g = lut[src[p]!]!;
      out[o++] = g;
      out[o++] = g;
      out[o++] = g;
    } else {
      out[o++] = lut[src[p]!]!;
      out[o++] = lut[src[p + 1]!]!;
      out[o++] = lut[src[p + 2]!]!;
    }
  }
  return out;
}

function greyToRgb(src: Uint8Array, n: number, stride: number): Uint8Array {
  const out = new Uint8Array(n * 3);
  for (let i = 0, p = 0, o = 0; i < n; i++, p += stride) {
    const g = src[p]!;
    out[o++] = g;
    out[o++] = g;
    out[o++] = g;
  }
  return out;
}

function dropAlpha(src: Uint8Array, n: number, stride: number): Uint8Array {
  if (stride === 3) return src;
  const out = new Uint8Array(n * 3);
  for (let i = 0, p = 0, o = 0; i < n; i++, p += stride) {
    out[o++] = src[p]!;
    out[o++] = src[p + 1]!;
    out[o++] = src[p + 2]!;
  }
  return out;
}

/**
 * Decodes an encoded image (PNG, JPEG, WebP, TIFF, GIF, AVIF) to 8-bit RGB the way PIL's
 * `Image.open(f).convert('RGB')` does (see the module comment for the exceptions and options).
 * Errors: INVALID_ARGUMENT (wrong argument types), INVALID_IMAGE (empty, not an image, truncated, corrupt),
 * IMAGE_TOO_LARGE, IMAGE_TOO_SMALL, UNSUPPORTED (multi-frame without firstFrame, other formats, float data).
 */
export async function decodeImage(input: Uint8Array, options?: DecodeOptions): Promise<DecodedImage> {
  const buf = bytesOf(input);
  const opts = checkOptions(options);
  if (buf.length === 0) throw new LlavaRadError('INVALID_IMAGE', 'image is empty (0 bytes)');
  const sharp = await loadSharp();

  const base = {
    failOn: 'error' as const,
    limitInputPixels: opts.maxPixels,
    ignoreIcc: true,
    autoOrient: opts.autoOrient,
    sequentialRead: true,
    pages: 1,
    page: 0,
  };

  // 1. the header only: refuse before decoding pixels
  let meta: Metadata;
  try {
    meta = await sharp(buf, { ...base, limitInputPixels: false }).metadata();
  } catch (e) {
    throw decodeError(e, 'reading the header');
  }
  const format = meta.format === 'heif' && meta.compression === 'av1' ? 'avif' : String(meta.format);
  if (!FORMATS.has(String(meta.format)) || (meta.format === 'heif' && meta.compression !== 'av1')) {
    throw new LlavaRadError('UNSUPPORTED', `image format ${format} is not supported (PNG, JPEG, WebP, TIFF, GIF, AVIF are)`);
  }
  const pages = meta.pages ?? 1;
  const width = meta.width;
  const height = pages > 1 && meta.pageHeight !== undefined ? meta.pageHeight : meta.height;
  if (!(width > 0) || !(height > 0)) {
    throw new LlavaRadError('INVALID_IMAGE', `image header has no valid size (${describeValue(width)}x${describeValue(height)})`);
  }
  if (width * height > opts.maxPixels) {
    throw new LlavaRadError(
      'IMAGE_TOO_LARGE',
      `image is ${width}x${height} = ${width * height} pixels, over the limit of ${opts.maxPixels} (options.maxPixels)`,
    );
  }
  if (Math.min(width, height) < opts.minSide) {
    throw new LlavaRadError(
      'IMAGE_TOO_SMALL',
      `image is ${width}x${height}; a radiograph needs at least ${opts.minSide} pixels on each side (options.minSide)`,
    );
  }
  if (pages > 1 && !opts.firstFrame) {
    throw new LlavaRadError(
      'UNSUPPORTED',
      `image has ${pages} frames; pass one still image, or options.firstFrame = true to use the first frame`,
    );
  }
  const depth = String(meta.depth);
  if (depth !== 'uchar' && depth !== 'ushort') {
    throw new LlavaRadError('UNSUPPORTED', `image sample format ${depth} is not supported (8- or 16-bit integers are)`);
  }
  const space = String(meta.space);
  const bitDepth: 8 | 16 = depth === 'ushort' ? 16 : 8;

  // 2. decode to raw samples in the stored colour model
  let pipeline = sharp(buf, base);
  let kind: 'cmyk' | 'grey16' | 'rgb16' | 'grey' | 'rgb';
  if (space === 'cmyk') {
    kind = 'cmyk';
    pipeline = pipeline.pipelineColourspace('cmyk').toColourspace('cmyk').raw();
  } else if (bitDepth === 16) {
    kind = space === 'grey16' || space === 'b-w' || meta.channels <= 2 ? 'grey16' : 'rgb16';
    pipeline = pipeline.toColourspace(kind).raw({ depth: 'ushort' });
  } else if (space === 'b-w') {
    kind = 'grey';
    pipeline = pipeline.toColourspace('b-w').raw();
  } else {
    kind = 'rgb';
    pipeline = pipeline.toColourspace('srgb').raw();
  }
  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await pipeline.toBuffer({ resolveWithObject: true }));
  } catch (e) {
    throw decodeError(e, 'decoding the pixels');
  }
  const n = info.width * info.height;
  const ch = info.channels;
  let rgb: Uint8Array;
  if (kind === 'grey16' || kind === 'rgb16') {
    const bytes = data.byteOffset % 2 === 0 ? data : Buffer.from(data);
    const u16 = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length >> 1);
    if (u16.length !== n * ch) throw new LlavaRadError('INTERNAL', `decoder returned ${u16.length} samples for ${n}x${ch}`);
    rgb = from16(u16, n, ch, kind === 'grey16' ? 1 : 3, opts.highBitDepth);
  } else {
    if (data.length !== n * ch) throw new LlavaRadError('INTERNAL', `decoder returned ${data.length} bytes for ${n}x${ch}`);
    if (kind === 'cmyk') {
      if (ch < 4) throw new LlavaRadError('INTERNAL', `CMYK decode gave ${ch} channels`);
      rgb = cmykToRgb(data, n, ch);
    } else if (kind === 'grey' || ch <= 2) {
      rgb = greyToRgb(data, n, ch);
    } else {
      rgb = dropAlpha(data, n, ch);
    }
  }
  if (Math.min(info.width, info.height) < opts.minSide) {
    throw new LlavaRadError('IMAGE_TOO_SMALL', `decoded image is ${info.width}x${info.height}, under ${opts.minSide} px`);
  }
  const orientation = meta.orientation;
  return {
    data: rgb,
    width: info.width,
    height: info.height,
    channels: 3,
    source: {
      format,
      width: meta.width,
      height,
      orientation,
      oriented: opts.autoOrient && orientation !== undefined && orientation !== 1,
      space,
      channels: meta.channels,
      bitDepth,
      hasAlpha: meta.hasAlpha,
      isPalette: meta.isPalette,
      isProgressive: meta.isProgressive,
      pages,
    },
  };
}
