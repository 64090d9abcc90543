// DICOM -> 8-bit image for LLaVA-Rad.
//
// Default ("mimic"): the MIMIC-CXR-JPG conversion, the dataset authors' own function (MIT-LCP/mimic-cxr
// issue 16), reproduced bit for bit:
//     x = stored - min(stored); u8 = uint8((x / max(x)) * 255)      (float64, TRUNCATED toward zero)
//     MONOCHROME1: u8 = 255 - u8                                   (cv2.bitwise_not)
//     out = cv2.equalizeHist(u8)                                   (equalizeHist below)
//   "stored" = the stored pixel values of the first frame: BitsStored bits at HighBit, sign-extended when
//   PixelRepresentation = 1, bits above HighBit masked off; no Modality LUT (rescale), no VOI (window).
//   A constant image (max = min) gives 0 everywhere before equalization (numpy's 0/0 -> NaN -> uint8 0).
// Option window ("dicomWindow"): Modality LUT (RescaleSlope/Intercept) then the VOI LUT Sequence's first LUT
//   when present, else the first Window Center/Width with VOI LUT Function LINEAR (PS3.3 C.11.2.1.2.1),
//   LINEAR_EXACT (C.11.2.1.3.2) or SIGMOID (C.11.2.1.3.1), output range 0..255 rounded half up
//   (floor(y + 0.5)); without any VOI data, min-max of the rescaled values (rounded half up). MONOCHROME1 is
//   inverted afterwards (255 - v). No histogram equalization.
// Colour images (RGB, YBR_FULL, and compressed YBR_* that the codec returns as RGB) are used as stored
// (8-bit; wider samples scaled to 8 bits), with a warning: the MIMIC recipe is for greyscale radiographs.

import { LlavaRadError, invalidArgument } from '../errors.js';
import { decodeFrame, SUPPORTED_ENCAPSULATED, type DecodedSamples, type FrameGeometry } from './codecs.js';
import {
  getInt,
  getNumbers,
  getString,
  getUS,
  getUSArray,
  invalidDicom,
  readDicom,
  TAG,
  TRANSFER_SYNTAX,
  type DicomDataSet,
  type DicomElement,
} from './parse.js';

export interface DicomOptions {
  /** window/level (rescale + VOI LUT or window centre/width) instead of the MIMIC-CXR-JPG recipe (default false) */
  dicomWindow?: boolean;
  /** refuse lateral views (ViewPosition LL/RL/LAT/LATERAL/...) with NON_FRONTAL_VIEW instead of warning (default false) */
  dicomRefuseLateral?: boolean;
  /** refuse images with more pixels than this before allocating anything (default 50,000,000) */
  maxPixels?: number;
  /** refuse images whose shorter side is below this (default 32) */
  minSide?: number;
}

/** what was read from the DICOM header */
export interface DicomInfo {
  transferSyntax: string;
  rows: number;
  columns: number;
  samplesPerPixel: number;
  photometricInterpretation: string;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  pixelRepresentation: number;
  numberOfFrames: number;
  rescaleSlope: number;
  rescaleIntercept: number;
  windowCenter: number | undefined;
  windowWidth: number | undefined;
  voiLutFunction: string | undefined;
  hasVoiLut: boolean;
  viewPosition: string | undefined;
  /** min and max of the stored values of the frame used (first sample channel for colour) */
  storedMin: number;
  storedMax: number;
  /** 'mimic' or 'window' for greyscale; 'colour' for colour images */
  conversion: 'mimic' | 'window' | 'colour';
}

export interface DicomImage {
  /** 8-bit grey (channels 1) or RGB (channels 3), rows top to bottom */
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
  /** the stored values of the first frame (interleaved samples), as used by the conversion */
  stored: Int32Array;
  info: DicomInfo;
  warnings: string[];
}

const DEFAULT_MAX_PIXELS = 50_000_000;
const LATERAL = new Set(['LL', 'RL', 'LAT', 'LATERAL', 'LLD', 'RLD', 'XTABLE LATERAL', 'LATERAL DECUBITUS']);

/** ViewPosition values of lateral (non-frontal) chest views */
export function isLateralView(viewPosition: string | undefined): boolean {
  return viewPosition !== undefined && LATERAL.has(viewPosition.trim().toUpperCase());
}

/**
 * OpenCV's cv2.equalizeHist (imgproc/src/histogram.cpp, EqualizeHistLut_Invoker) on 8-bit data:
 * i = first non-empty bin; if hist[i] == total the output is i everywhere; else
 * scale = float(255) / float(total - hist[i]), lut[i] = 0, and for j > i: sum += hist[j],
 * lut[j] = saturate_cast<uchar>(float(sum) * scale), i.e. cvRound of a float32 product: round half to even.
 */
export function equalizeHist(src: Uint8Array): Uint8Array {
  const total = src.length;
  const out = new Uint8Array(total);
  if (total === 0) return out;
  const hist = new Float64Array(256);
  for (let k = 0; k < total; k++) hist[src[k]!]!++;
  let i = 0;
  while (hist[i] === 0) i++;
  if (hist[i] === total) {
    out.fill(i);
    return out;
  }
  const scale = Math.fround(255 / Math.fround(total - hist[i]!));
  const lut = new Uint8Array(256);
  let sum = 0;
  lut[i] = 0;
  for (let j = i + 1; j < 256; j++) {
    sum += hist[j]!;
    const v = Math.fround(Math.fround(sum) * scale);
    lut[j] = roundHalfEvenSat(v);
  }
  for (let k = 0; k < total; k++) out[k] = lut[src[k]!]!;
  return out;
}

function roundHalfEvenSat(v: number): number {
  let r = Math.round(v); // half up
  if (r - v === 0.5 && r % 2 !== 0) r -= 1; // exact tie: to even
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/** the MIMIC-CXR-JPG min-max step: uint8(((x - min) / (max - min)) * 255), truncated */
export function minMaxTo8Bit(stored: Int32Array, min: number, max: number): Uint8Array {
  const out = new Uint8Array(stored.length);
  const range = max - min;
  if (range === 0) return out;
  for (let k = 0; k < stored.length; k++) out[k] = Math.trunc(((stored[k]! - min) / range) * 255);
  return out;
}

function checkOptions(options: unknown): Required<DicomOptions> {
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object' || Array.isArray(options)) throw invalidArgument('options', 'an object', options);
  const o = options as Record<string, unknown>;
  const bool = (name: string): boolean => {
    const v = o[name];
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw invalidArgument(`options.${name}`, 'a boolean', v);
    return v;
  };
  const int = (name: string, dflt: number): number => {
    const v = o[name];
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw invalidArgument(`options.${name}`, 'an integer >= 1', v);
    return v;
  };
  return {
    dicomWindow: bool('dicomWindow'),
    dicomRefuseLateral: bool('dicomRefuseLateral'),
    maxPixels: int('maxPixels', DEFAULT_MAX_PIXELS),
    minSide: int('minSide', 32),
  };
}

function required(ds: DicomDataSet, tag: number, name: string): number {
  const v = getUS(ds, tag);
  if (v === undefined) throw invalidDicom(`${name} is missing`);
  return v;
}

/** the bytes of frame 0 of encapsulated pixel data (PS3.5 A.4) */
function firstFrameFragments(bytes: Uint8Array, el: DicomElement, frames: number, ts: string): Uint8Array {
  const enc = el.encapsulated!;
  const frags = enc.fragments;
  const concat = (list: typeof frags): Uint8Array => {
    if (list.length === 1) return bytes.subarray(list[0]!.offset, list[0]!.offset + list[0]!.length);
    const total = list.reduce((s, f) => s + f.length, 0);
    const out = new Uint8Array(total);
    let o = 0;
    for (const f of list) {
      out.set(bytes.subarray(f.offset, f.offset + f.length), o);
      o += f.length;
    }
    return out;
  };
  if (frames === 1) return concat(frags);
  // multi-frame: the basic offset table when present
  if (enc.offsetTable.length >= 8) {
    if (enc.offsetTable.length % 4 !== 0) throw invalidDicom('the basic offset table length is not a multiple of 4');
    const dv = new DataView(bytes.buffer, bytes.byteOffset + enc.offsetTable.offset, enc.offsetTable.length);
    const first = dv.getUint32(0, true);
    const second = dv.getUint32(4, true);
    if (first !== 0 || second <= first) throw invalidDicom('the basic offset table is inconsistent');
    // fragment positions relative to the first fragment's item header
    const base = frags[0]!.offset - 8;
    const picked = frags.filter((f) => f.offset - 8 - base < second);
    if (picked.length === 0 || frags[picked.length] === undefined || frags[picked.length]!.offset - 8 - base !== second) {
      throw invalidDicom('the basic offset table does not point at fragment boundaries');
    }
    return concat(picked);
  }
  if (frags.length === frames) return concat([frags[0]!]);
  if (ts === TRANSFER_SYNTAX.RLELossless) return concat([frags[0]!]);
  if (frags.length < frames) throw invalidDicom(`${frames} frames but only ${frags.length} fragments`);
  // no offset table, more fragments than frames: a frame ends where the next fragment starts a new codestream
  const starts = (f: (typeof frags)[number]): boolean =>
    f.length >= 2 && bytes[f.offset] === 0xff && (bytes[f.offset + 1] === 0xd8 || bytes[f.offset + 1] === 0x4f);
  let n = 1;
  while (n < frags.length && !starts(frags[n]!)) n++;
  return concat(frags.slice(0, n));
}

/** stored values (masked / sign-extended per BitsStored and HighBit) of `n` samples */
function storedValues(src: DecodedSamples | ((k: number) => number), n: number, bitsStored: number, highBit: number, signed: boolean): Int32Array {
  const out = new Int32Array(n);
  const shift = highBit + 1 - bitsStored;
  const mask = bitsStored >= 32 ? 0xffffffff : (1 << bitsStored) - 1;
  const sign = 1 << (bitsStored - 1);
  const get = typeof src === 'function' ? src : (k: number) => src[k]!;
  for (let k = 0; k < n; k++) {
    let v = (get(k) >>> shift) & mask;
    if (signed && v & sign) v -= mask + 1;
    out[k] = v;
  }
  return out;
}

/**
 * Reads a DICOM Part 10 file and converts its first frame to 8 bits (see the module comment).
 * Errors: INVALID_DICOM (malformed), UNSUPPORTED (transfer syntax / pixel format), IMAGE_TOO_LARGE,
 * IMAGE_TOO_SMALL, NON_FRONTAL_VIEW (with dicomRefuseLateral).
 */
export async function decodeDicom(bytes: Uint8Array, options?: DicomOptions): Promise<DicomImage> {
  const opts = checkOptions(options);
  const file = readDicom(bytes, { maxInflatedBytes: Math.min(2 ** 31 - 1, opts.maxPixels * 8 + (64 << 20)) });
  const ds = file.dataset;
  const ts = file.transferSyntax;
  const warnings: string[] = [];

  const viewPosition = getString(ds, TAG.ViewPosition);
  if (isLateralView(viewPosition)) {
    if (opts.dicomRefuseLateral) {
      throw new LlavaRadError('NON_FRONTAL_VIEW', `the DICOM's ViewPosition is ${viewPosition}: a lateral view; LLaVA-Rad expects a frontal (PA/AP) radiograph`);
    }
    warnings.push(`ViewPosition is ${viewPosition} (lateral): LLaVA-Rad was trained on frontal (PA/AP) views`);
  }

  const rows = required(ds, TAG.Rows, 'Rows (0028,0010)');
  const columns = required(ds, TAG.Columns, 'Columns (0028,0011)');
  const bitsAllocated = required(ds, TAG.BitsAllocated, 'Bits Allocated (0028,0100)');
  const samplesPerPixel = getUS(ds, TAG.SamplesPerPixel) ?? 1;
  const bitsStored = getUS(ds, TAG.BitsStored) ?? bitsAllocated;
  const highBit = getUS(ds, TAG.HighBit) ?? bitsStored - 1;
  const pixelRepresentation = getUS(ds, TAG.PixelRepresentation) ?? 0;
  const photometric = (getString(ds, TAG.PhotometricInterpretation) ?? (samplesPerPixel === 1 ? 'MONOCHROME2' : 'RGB')).toUpperCase();
  const planar = getUS(ds, TAG.PlanarConfiguration) ?? 0;
  const numberOfFrames = getInt(ds, TAG.NumberOfFrames) ?? 1;

  if (rows === 0 || columns === 0) throw invalidDicom(`image size ${columns}x${rows}`);
  if (rows * columns > opts.maxPixels) {
    throw new LlavaRadError('IMAGE_TOO_LARGE', `DICOM image is ${columns}x${rows} = ${rows * columns} pixels, over the limit of ${opts.maxPixels} (options.maxPixels)`);
  }
  if (Math.min(rows, columns) < opts.minSide) {
    throw new LlavaRadError('IMAGE_TOO_SMALL', `DICOM image is ${columns}x${rows}; a radiograph needs at least ${opts.minSide} pixels on each side (options.minSide)`);
  }
  if (bitsAllocated !== 8 && bitsAllocated !== 16) {
    if (bitsAllocated === 1 || bitsAllocated === 32) throw new LlavaRadError('UNSUPPORTED', `Bits Allocated ${bitsAllocated} is not supported (8 and 16 are)`);
    throw invalidDicom(`Bits Allocated is ${bitsAllocated}`);
  }
  if (bitsStored < 1 || bitsStored > bitsAllocated) throw invalidDicom(`Bits Stored ${bitsStored} with Bits Allocated ${bitsAllocated}`);
  if (highBit < bitsStored - 1 || highBit >= bitsAllocated) throw invalidDicom(`High Bit ${highBit} with Bits Stored ${bitsStored}`);
  if (pixelRepresentation > 1) throw invalidDicom(`Pixel Representation ${pixelRepresentation}`);
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) throw invalidDicom(`Samples per Pixel ${samplesPerPixel}`);
  if (numberOfFrames < 1) throw invalidDicom(`Number of Frames ${numberOfFrames}`);
  const grey = photometric === 'MONOCHROME1' || photometric === 'MONOCHROME2';
  if (samplesPerPixel === 1 && !grey) {
    throw new LlavaRadError('UNSUPPORTED', `Photometric Interpretation ${photometric} is not supported (MONOCHROME1/2, RGB, YBR_FULL are)`);
  }
  if (samplesPerPixel === 3 && !['RGB', 'YBR_FULL', 'YBR_FULL_422', 'YBR_RCT', 'YBR_ICT', 'YBR_PARTIAL_420'].includes(photometric)) {
    throw new LlavaRadError('UNSUPPORTED', `Photometric Interpretation ${photometric} with 3 samples is not supported`);
  }
  if (numberOfFrames > 1) warnings.push(`the DICOM has ${numberOfFrames} frames; the first is used`);

  const pixelEl = ds.elements.get(TAG.PixelData);
  if (pixelEl === undefined) throw invalidDicom('no Pixel Data (7FE0,0010)');
  const g: FrameGeometry = { rows, columns, samplesPerPixel, bitsAllocated };
  const n = rows * columns * samplesPerPixel;
  const bytesPerSample = bitsAllocated / 8;
  let stored: Int32Array;
  let colourDecoded = false; // the codec already returned RGB

  if (pixelEl.encapsulated === undefined) {
    if (SUPPORTED_ENCAPSULATED.has(ts)) throw invalidDicom(`transfer syntax ${ts} needs encapsulated pixel data, the file has native pixel data`);
    if (
      ts !== TRANSFER_SYNTAX.ExplicitVRLittleEndian &&
      ts !== TRANSFER_SYNTAX.ImplicitVRLittleEndian &&
      ts !== TRANSFER_SYNTAX.ExplicitVRBigEndian &&
      ts !== TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian
    ) {
      throw new LlavaRadError('UNSUPPORTED', `DICOM transfer syntax ${ts} is not supported`);
    }
    if (photometric === 'YBR_FULL_422' || photometric === 'YBR_PARTIAL_420') {
      throw new LlavaRadError('UNSUPPORTED', `uncompressed ${photometric} (chroma subsampled) is not supported`);
    }
    const frameBytes = n * bytesPerSample;
    if (pixelEl.length < frameBytes) {
      throw invalidDicom(`Pixel Data holds ${pixelEl.length} bytes, one ${columns}x${rows}x${samplesPerPixel} frame of ${bitsAllocated}-bit samples needs ${frameBytes}`);
    }
    const dv = new DataView(ds.bytes.buffer, ds.bytes.byteOffset + pixelEl.offset, frameBytes);
    // 8-bit data in big endian is byte-swapped only when its VR is OW
    const le = ds.littleEndian;
    const swap8 = !le && bitsAllocated === 8 && pixelEl.vr === 'OW';
    const read = bitsAllocated === 16 ? (k: number) => dv.getUint16(2 * k, le) : swap8 ? (k: number) => dv.getUint8(k ^ 1) : (k: number) => dv.getUint8(k);
    const index = samplesPerPixel === 3 && planar === 1 ? (k: number) => read((k % 3) * rows * columns + Math.floor(k / 3)) : read;
    stored = storedValues(index, n, bitsStored, highBit, pixelRepresentation === 1);
  } else {
    if (!SUPPORTED_ENCAPSULATED.has(ts)) {
      if (ts.startsWith('1.2.840.10008.1.2.')) throw new LlavaRadError('UNSUPPORTED', `DICOM transfer syntax ${ts} is not supported`);
      throw invalidDicom(`encapsulated pixel data in transfer syntax ${ts}`);
    }
    const frame = firstFrameFragments(ds.bytes, pixelEl, numberOfFrames, ts);
    const samples = await decodeFrame(ts, frame, g);
    // RLE and lossless JPEG return the samples as coded (no colour transform); the lossy codecs return RGB
    colourDecoded =
      samplesPerPixel === 3 && ts !== TRANSFER_SYNTAX.RLELossless && ts !== TRANSFER_SYNTAX.JPEGLossless && ts !== TRANSFER_SYNTAX.JPEGLosslessSV1;
    stored = storedValues(samples, n, bitsStored, highBit, pixelRepresentation === 1);
  }

  let min = Infinity;
  let max = -Infinity;
  for (let k = 0; k < n; k += samplesPerPixel) {
    const v = stored[k]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }

  const rescaleSlope = getNumbers(ds, TAG.RescaleSlope)?.[0] ?? 1;
  const rescaleIntercept = getNumbers(ds, TAG.RescaleIntercept)?.[0] ?? 0;
  const windowCenter = getNumbers(ds, TAG.WindowCenter)?.[0];
  const windowWidth = getNumbers(ds, TAG.WindowWidth)?.[0];
  const voiLutFunction = getString(ds, TAG.VOILUTFunction)?.toUpperCase();
  const voiSeq = ds.elements.get(TAG.VOILUTSequence)?.items?.[0];
  const info: DicomInfo = {
    transferSyntax: ts,
    rows,
    columns,
    samplesPerPixel,
    photometricInterpretation: photometric,
    bitsAllocated,
    bitsStored,
    highBit,
    pixelRepresentation,
    numberOfFrames,
    rescaleSlope,
    rescaleIntercept,
    windowCenter,
    windowWidth,
    voiLutFunction,
    hasVoiLut: voiSeq !== undefined,
    viewPosition,
    storedMin: min,
    storedMax: max,
    conversion: 'mimic',
  };

  if (samplesPerPixel === 3) {
    info.conversion = 'colour';
    warnings.push(`colour DICOM (${photometric}): used as stored; the MIMIC-CXR-JPG recipe applies to greyscale radiographs`);
    const rgb = new Uint8Array(n);
    const top = (1 << bitsStored) - 1;
    const to8 = bitsStored === 8 && pixelRepresentation === 0 ? (v: number) => v : (v: number) => Math.max(0, Math.min(255, Math.floor((v * 255) / top + 0.5)));
    if (!colourDecoded && photometric === 'YBR_FULL') {
      for (let k = 0; k < n; k += 3) {
        const y = to8(stored[k]!);
        const cb = to8(stored[k + 1]!) - 128;
        const cr = to8(stored[k + 2]!) - 128;
        rgb[k] = clamp8(y + 1.402 * cr);
        rgb[k + 1] = clamp8(y - 0.344136 * cb - 0.714136 * cr);
        rgb[k + 2] = clamp8(y + 1.772 * cb);
      }
    } else {
      for (let k = 0; k < n; k++) rgb[k] = to8(stored[k]!);
    }
    return { data: rgb, width: columns, height: rows, channels: 3, stored, info, warnings };
  }

  let u8: Uint8Array;
  if (opts.dicomWindow) {
    info.conversion = 'window';
    u8 = applyWindow(stored, info, voiSeq, warnings);
    if (photometric === 'MONOCHROME1') for (let k = 0; k < u8.length; k++) u8[k] = 255 - u8[k]!;
  } else {
    u8 = minMaxTo8Bit(stored, min, max);
    if (photometric === 'MONOCHROME1') for (let k = 0; k < u8.length; k++) u8[k] = 255 - u8[k]!;
    u8 = equalizeHist(u8);
  }
  return { data: u8, width: columns, height: rows, channels: 1, stored, info, warnings };
}

function clamp8(v: number): number {
  const r = Math.round(v);
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

/** Modality LUT (rescale) + VOI (LUT sequence, or window centre/width) to 0..255, before any inversion */
function applyWindow(stored: Int32Array, info: DicomInfo, voi: DicomDataSet | undefined, warnings: string[]): Uint8Array {
  const n = stored.length;
  const out = new Uint8Array(n);
  const slope = info.rescaleSlope;
  const intercept = info.rescaleIntercept;
  if (voi !== undefined) {
    const desc = getUSArray(voi, TAG.LUTDescriptor);
    const dataEl = voi.elements.get(TAG.LUTData);
    if (desc === undefined || desc.length < 3 || dataEl === undefined) throw invalidDicom('the VOI LUT Sequence item has no LUT Descriptor or LUT Data');
    const entries = desc[0] === 0 ? 65536 : desc[0]!;
    let first = desc[1]!;
    if (info.pixelRepresentation === 1 && first > 32767) first -= 65536;
    const bits = desc[2]!;
    if (bits < 1 || bits > 16) throw invalidDicom(`the VOI LUT has ${bits}-bit entries`);
    const lut = new Float64Array(entries);
    const dv = new DataView(voi.bytes.buffer, voi.bytes.byteOffset + dataEl.offset, dataEl.length);
    if (dataEl.length >= 2 * entries) for (let i = 0; i < entries; i++) lut[i] = dv.getUint16(2 * i, voi.littleEndian);
    else if (bits <= 8 && dataEl.length >= entries) for (let i = 0; i < entries; i++) lut[i] = dv.getUint8(i);
    else throw invalidDicom(`the VOI LUT Data holds ${dataEl.length} bytes for ${entries} entries`);
    const top = 2 ** bits - 1;
    for (let k = 0; k < n; k++) {
      const x = Math.floor(stored[k]! * slope + intercept + 0.5) - first;
      const v = lut[x < 0 ? 0 : x >= entries ? entries - 1 : x]!;
      out[k] = Math.max(0, Math.min(255, Math.floor((v / top) * 255 + 0.5)));
    }
    return out;
  }
  const c = info.windowCenter;
  const w = info.windowWidth;
  if (c !== undefined && w !== undefined && w >= 1) {
    const fn = info.voiLutFunction ?? 'LINEAR';
    for (let k = 0; k < n; k++) {
      const x = stored[k]! * slope + intercept;
      let y: number;
      if (fn === 'SIGMOID') {
        y = 255 / (1 + Math.exp((-4 * (x - c)) / w));
      } else if (fn === 'LINEAR_EXACT') {
        y = x <= c - w / 2 ? 0 : x > c + w / 2 ? 255 : ((x - c) / w + 0.5) * 255;
      } else {
        y = x <= c - 0.5 - (w - 1) / 2 ? 0 : x > c - 0.5 + (w - 1) / 2 ? 255 : ((x - (c - 0.5)) / (w - 1) + 0.5) * 255;
      }
      const r = Math.floor(y + 0.5);
      out[k] = r < 0 ? 0 : r > 255 ? 255 : r;
    }
    return out;
  }
  warnings.push('dicomWindow: the DICOM has no VOI LUT or window; the rescaled values were min-max scaled instead');
  let lo = Infinity;
  let hi = -Infinity;
  for (let k = 0; k < n; k++) {
    const x = stored[k]! * slope + intercept;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  if (hi > lo) for (let k = 0; k < n; k++) out[k] = Math.floor(((stored[k]! * slope + intercept - lo) / (hi - lo)) * 255 + 0.5);
  return out;
}
