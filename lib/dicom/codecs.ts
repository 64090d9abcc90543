// Decoders for the encapsulated transfer syntaxes. Every compressed frame's header is read here first
// (JPEG SOF, JPEG-LS SOF55, JPEG 2000 SIZ) and checked against the data set's Rows, Columns and Samples per
// Pixel before any codec allocates anything, and the codec's output size is checked again afterwards.
//   RLE Lossless            PS3.5 Annex G (PackBits segments), implemented here: it is a dozen lines
//   JPEG baseline/extended  8-bit: sharp (libvips + libjpeg-turbo), already the package's image decoder;
//                           12-bit (process 4): dcmjs-codecs (the IJG 6b libijg12 that dcmtk also uses,
//                           compiled to WebAssembly, loaded from disk)
//   JPEG lossless (57, 70)  greyscale: jpeg-lossless-decoder-js; colour: dcmjs-codecs (libijg8/16)
//   JPEG-LS (80, 81)        @cornerstonejs/codec-charls (CharLS compiled to WebAssembly, loaded from disk)
//   JPEG 2000 (90, 91)      @cornerstonejs/codec-openjpeg (OpenJPEG compiled to WebAssembly, loaded from disk)
// Codec failures, and IJG's "Corrupt JPEG data" warnings (a truncated or damaged entropy-coded segment that
// IJG would fill with grey), become INVALID_DICOM; a 12-bit colour lossy JPEG is UNSUPPORTED.

import { createRequire } from 'node:module';
import { LlavaRadError } from '../errors.js';
import { loadSharp } from '../image/decode.js';
import { invalidDicom, TRANSFER_SYNTAX } from './parse.js';

export interface FrameGeometry {
  rows: number;
  columns: number;
  samplesPerPixel: number;
  bitsAllocated: number;
}

/** decoded samples of one frame: interleaved, `bytesPerSample` of 1 (Uint8Array) or 2 (Uint16Array/Int16Array) */
export type DecodedSamples = Uint8Array | Uint16Array | Int16Array;

const requireCjs = createRequire(import.meta.url);

function codecError(what: string, e: unknown): LlavaRadError {
  if (e instanceof LlavaRadError) return e;
  const msg = e instanceof Error ? e.message : typeof e === 'string' ? e : `code ${String(e)}`;
  return invalidDicom(`the ${what} frame could not be decoded: ${msg}`, e);
}

// ---------------------------------------------------------------- RLE

function packBits(src: Uint8Array, start: number, end: number, out: Uint8Array): void {
  let p = start;
  let o = 0;
  const n = out.length;
  while (o < n && p < end) {
    const h = src[p++]!;
    if (h < 128) {
      const count = h + 1;
      if (p + count > end || o + count > n) throw invalidDicom('an RLE literal run goes past its segment or the frame');
      out.set(src.subarray(p, p + count), o);
      p += count;
      o += count;
    } else if (h > 128) {
      const count = 257 - h;
      if (p >= end || o + count > n) throw invalidDicom('an RLE replicate run goes past its segment or the frame');
      out.fill(src[p++]!, o, o + count);
      o += count;
    }
  }
  if (o < n) throw invalidDicom(`an RLE segment decodes to ${o} bytes, the frame needs ${n}`);
}

/** RLE Lossless (PS3.5 G.3): 64-byte header of segment offsets, one segment per byte plane (MSB first) */
export function decodeRle(frame: Uint8Array, g: FrameGeometry): DecodedSamples {
  const bytesPerSample = g.bitsAllocated / 8;
  const nSeg = g.samplesPerPixel * bytesPerSample;
  if (frame.length < 64) throw invalidDicom('an RLE frame is shorter than its 64-byte header');
  const dv = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const count = dv.getUint32(0, true);
  if (count !== nSeg) throw invalidDicom(`an RLE frame has ${count} segments, expected ${nSeg}`);
  const offsets: number[] = [];
  for (let i = 0; i < count; i++) offsets.push(dv.getUint32(4 + 4 * i, true));
  for (let i = 0; i < count; i++) {
    const next = i + 1 < count ? offsets[i + 1]! : frame.length;
    if (offsets[i]! < 64 || offsets[i]! > frame.length || next < offsets[i]! || next > frame.length) {
      throw invalidDicom('an RLE segment offset is out of order or past the end of the frame');
    }
  }
  const pixels = g.rows * g.columns;
  const plane = new Uint8Array(pixels);
  const out = bytesPerSample === 1 ? new Uint8Array(pixels * g.samplesPerPixel) : new Uint16Array(pixels * g.samplesPerPixel);
  for (let s = 0; s < g.samplesPerPixel; s++) {
    for (let b = 0; b < bytesPerSample; b++) {
      const seg = s * bytesPerSample + b;
      const end = seg + 1 < count ? offsets[seg + 1]! : frame.length;
      packBits(frame, offsets[seg]!, end, plane);
      const shift = (bytesPerSample - 1 - b) * 8; // MSB segment first
      for (let i = 0, o = s; i < pixels; i++, o += g.samplesPerPixel) out[o] = out[o]! | (plane[i]! << shift);
    }
  }
  return out;
}

// ---------------------------------------------------------------- headers

interface CodestreamInfo {
  width: number;
  height: number;
  components: number;
  precision: number;
  /** SOF marker (JPEG family) */
  marker?: number;
}

/** the SOF header of a JPEG / JPEG-LS stream */
export function jpegHeader(data: Uint8Array): CodestreamInfo {
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0xd8) throw invalidDicom('a JPEG frame does not start with SOI');
  let p = 2;
  while (p + 4 <= data.length) {
    if (data[p] !== 0xff) throw invalidDicom(`a JPEG frame has no marker at byte ${p}`);
    const m = data[p + 1]!;
    if (m === 0xff) {
      p += 1; // fill byte
      continue;
    }
    if (m === 0xd8 || (m >= 0xd0 && m <= 0xd7) || m === 0x01) {
      p += 2;
      continue;
    }
    const len = (data[p + 2]! << 8) | data[p + 3]!;
    if (len < 2 || p + 2 + len > data.length) throw invalidDicom('a JPEG marker segment runs past the end of the frame');
    const isSof = (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) || m === 0xf7;
    if (isSof) {
      if (len < 8) throw invalidDicom('a JPEG frame header is too short');
      return {
        marker: m,
        precision: data[p + 4]!,
        height: (data[p + 5]! << 8) | data[p + 6]!,
        width: (data[p + 7]! << 8) | data[p + 8]!,
        components: data[p + 9]!,
      };
    }
    if (m === 0xda || m === 0xd9) break;
    p += 2 + len;
  }
  throw invalidDicom('a JPEG frame has no frame header (SOF) before its scan');
}

/** the SIZ marker of a JPEG 2000 codestream (PS3.5 A.4.4: a raw codestream, not a JP2 file) */
export function j2kHeader(data: Uint8Array): CodestreamInfo {
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0x4f || data[2] !== 0xff || data[3] !== 0x51) {
    throw invalidDicom('a JPEG 2000 frame does not start with SOC + SIZ');
  }
  if (data.length < 4 + 38 + 3) throw invalidDicom('a JPEG 2000 frame is shorter than its SIZ marker');
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const xsiz = dv.getUint32(8);
  const ysiz = dv.getUint32(12);
  const x0 = dv.getUint32(16);
  const y0 = dv.getUint32(20);
  const csiz = dv.getUint16(40);
  if (xsiz <= x0 || ysiz <= y0) throw invalidDicom('a JPEG 2000 frame has an empty image area');
  return { width: xsiz - x0, height: ysiz - y0, components: csiz, precision: (data[42]! & 0x7f) + 1 };
}

function checkHeader(h: CodestreamInfo, g: FrameGeometry, what: string): void {
  if (h.width !== g.columns || h.height !== g.rows) {
    throw invalidDicom(`the ${what} frame is ${h.width}x${h.height} but the data set says ${g.columns}x${g.rows}`);
  }
  if (h.components !== g.samplesPerPixel) {
    throw invalidDicom(`the ${what} frame has ${h.components} components but Samples per Pixel is ${g.samplesPerPixel}`);
  }
  if (h.precision < 1 || h.precision > 16) throw invalidDicom(`the ${what} frame has ${h.precision}-bit samples`);
  if (h.precision > g.bitsAllocated) {
    throw invalidDicom(`the ${what} frame has ${h.precision}-bit samples but Bits Allocated is ${g.bitsAllocated}`);
  }
}

function checkOutput(n: number, g: FrameGeometry, what: string): void {
  const want = g.rows * g.columns * g.samplesPerPixel;
  if (n !== want) throw invalidDicom(`the ${what} decoder returned ${n} samples, expected ${want}`);
}

// ---------------------------------------------------------------- JPEG baseline / extended (sharp)

async function decodeJpegLossy(ts: string, frame: Uint8Array, g: FrameGeometry): Promise<DecodedSamples> {
  const h = jpegHeader(frame);
  checkHeader(h, g, 'JPEG');
  if (g.samplesPerPixel !== 1 && g.samplesPerPixel !== 3) throw invalidDicom(`a JPEG frame with ${g.samplesPerPixel} samples per pixel`);
  if (h.precision > 8) {
    // 12-bit (process 4); IJG reads any precision up to 16
    if (g.samplesPerPixel !== 1) {
      throw new LlavaRadError(
        'UNSUPPORTED',
        `${h.precision}-bit colour lossy JPEG (transfer syntax ${ts}) is not supported; 12-bit greyscale and 8-bit colour are. Convert the file with dcmtk first: dcmdjpeg in.dcm out.dcm`,
      );
    }
    return decodeIjg(frame, h, g, `${h.precision}-bit JPEG`);
  }
  const sharp = await loadSharp();
  try {
    const { data, info } = await sharp(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength), { failOn: 'error', limitInputPixels: g.rows * g.columns })
      .toColourspace(g.samplesPerPixel === 1 ? 'b-w' : 'srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.width !== g.columns || info.height !== g.rows || info.channels !== g.samplesPerPixel) {
      throw invalidDicom(`the JPEG decoder returned ${info.width}x${info.height}x${info.channels}`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (e) {
    throw codecError('JPEG', e);
  }
}

// ---------------------------------------------------------------- IJG 6b (dcmjs-codecs)
// dcmjs-codecs' NativeCodecs is one WebAssembly instance (a static class). Its C code reports errors by
// throwing through the WebAssembly frames, which leaves that instance's heap and libjpeg state behind: after
// any error the instance is dropped and a fresh one is made on the next call. Its messages (IJG's trace
// and warning texts) arrive through its own bundled loglevel logger, caught here for the call's duration.

interface IjgContext {
  getDecodedBuffer(): Uint8Array | undefined;
}
interface IjgModule {
  NativeCodecs: {
    initializeAsync(opts?: { logCodecsInfo?: boolean; logCodecsTrace?: boolean }): Promise<void>;
    decodeJpeg(ctx: IjgContext, params?: { convertColorspaceToRgb?: boolean }): IjgContext;
  };
  Context: new (attrs: {
    width: number;
    height: number;
    bitsAllocated: number;
    bitsStored: number;
    samplesPerPixel: number;
    pixelRepresentation: number;
    planarConfiguration: number;
    photometricInterpretation: string;
    encodedBuffer: Uint8Array;
  }) => IjgContext;
  log: { info: (...args: unknown[]) => void };
}

let ijgModule: IjgModule | undefined;
let ijgReady: Promise<IjgModule> | undefined;

function loadIjg(): Promise<IjgModule> {
  if (ijgReady === undefined) {
    ijgReady = (async () => {
      if (ijgModule === undefined) ijgModule = requireCjs('dcmjs-codecs') as IjgModule;
      // info on: IJG's warnings come only through it; they are caught in decodeIjg, never printed
      await ijgModule.NativeCodecs.initializeAsync({ logCodecsInfo: true, logCodecsTrace: false });
      return ijgModule;
    })().catch((e: unknown) => {
      ijgReady = undefined;
      throw new LlavaRadError('NATIVE_LOAD', 'the IJG JPEG decoder (dcmjs-codecs) could not be loaded', { cause: e });
    });
  }
  return ijgReady;
}

/** IJG warnings that mean the pixels are not the encoded ones (extraneous bytes between segments do not) */
const IJG_CORRUPT = /^(Corrupt JPEG data(?!: \d+ extraneous bytes)|Premature end of JPEG file|Inconsistent progression sequence)/;

/** a JPEG frame (8/12/16-bit, DCT or lossless) decoded by IJG 6b, samples interleaved as in the codestream */
async function decodeIjg(frame: Uint8Array, h: CodestreamInfo, g: FrameGeometry, label: string): Promise<DecodedSamples> {
  let mod: IjgModule;
  for (;;) {
    // another call's error while this one waited drops the instance: wait for the fresh one
    const ready = loadIjg();
    mod = await ready;
    if (ijgReady === ready) break;
  }
  const wide = h.precision > 8;
  let damaged: string | undefined;
  const saved = mod.log.info;
  mod.log.info = (...args: unknown[]) => {
    if (damaged !== undefined) return;
    const text = /EmitMessage::(.*)$/s.exec(args.map(String).join(' '))?.[1]?.trim();
    if (text !== undefined && IJG_CORRUPT.test(text)) damaged = text;
  };
  let bytes: Uint8Array | undefined;
  try {
    // the output buffer is sized from BitsAllocated: 16 for every precision above 8 (IJG writes 2-byte
    // samples for 9..16 bits); pixel representation and photometric are neutral here, image.ts applies them
    const ctx = new mod.Context({
      width: g.columns,
      height: g.rows,
      bitsAllocated: wide ? 16 : 8,
      bitsStored: h.precision,
      samplesPerPixel: g.samplesPerPixel,
      pixelRepresentation: 0,
      planarConfiguration: 0,
      photometricInterpretation: g.samplesPerPixel === 1 ? 'MONOCHROME2' : 'RGB',
      encodedBuffer: frame,
    });
    bytes = mod.NativeCodecs.decodeJpeg(ctx, { convertColorspaceToRgb: false }).getDecodedBuffer();
  } catch (e) {
    ijgReady = undefined;
    const msg = e instanceof Error ? e.message : String(e);
    throw invalidDicom(`the ${label} frame could not be decoded: ${msg.replace(/^JpegDecoder\d+::ErrorExit::/, '')}`, e);
  } finally {
    mod.log.info = saved;
  }
  if (damaged !== undefined) throw invalidDicom(`the ${label} frame is damaged: ${damaged}`);
  if (!(bytes instanceof Uint8Array)) throw invalidDicom(`the ${label} decoder returned no samples`);
  const bytesPerSample = wide ? 2 : 1;
  if (bytes.byteLength % bytesPerSample !== 0) throw invalidDicom(`the ${label} decoder returned ${bytes.byteLength} bytes`);
  let out: DecodedSamples;
  if (!wide) out = bytes;
  else {
    const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
    out = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 1);
  }
  checkOutput(out.length, g, label);
  return out;
}

// ---------------------------------------------------------------- JPEG lossless

type LosslessModule = { Decoder: new () => { decode(buffer: ArrayBuffer, offset: number, length: number, numBytes?: number): Uint8Array | Uint16Array } };
let losslessModule: LosslessModule | undefined;

function decodeJpegLosslessSync(mod: LosslessModule, frame: Uint8Array, g: FrameGeometry): DecodedSamples {
  let out: Uint8Array | Uint16Array;
  try {
    const copy = new Uint8Array(frame); // a copy: the decoder reads the whole ArrayBuffer from `offset`
    out = new mod.Decoder().decode(copy.buffer, 0, copy.byteLength, g.bitsAllocated / 8);
  } catch (e) {
    throw codecError('JPEG lossless', e);
  }
  if (!(out instanceof Uint8Array || out instanceof Uint16Array)) throw invalidDicom('the JPEG lossless decoder returned no samples');
  checkOutput(out.length, g, 'JPEG lossless');
  return out;
}

// ---------------------------------------------------------------- WebAssembly codecs (CharLS, OpenJPEG)

interface WasmFrameInfo {
  width: number;
  height: number;
  bitsPerSample: number;
  componentCount: number;
  isSigned?: boolean;
}
interface WasmDecoder {
  getEncodedBuffer(n: number): Uint8Array;
  decode(): void;
  getFrameInfo(): WasmFrameInfo;
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
type WasmModule = Record<string, new () => WasmDecoder>;

const wasmModules = new Map<string, Promise<WasmModule>>();

function loadWasm(spec: string, label: string): Promise<WasmModule> {
  let p = wasmModules.get(spec);
  if (p === undefined) {
    p = (async () => {
      const factory = requireCjs(spec) as unknown;
      const fn = ((factory as { default?: unknown }).default ?? factory) as (arg?: object) => Promise<WasmModule>;
      return fn({ print: () => {}, printErr: () => {} });
    })().catch((e: unknown) => {
      wasmModules.delete(spec);
      throw new LlavaRadError('NATIVE_LOAD', `the ${label} decoder (${spec}) could not be loaded`, { cause: e });
    });
    wasmModules.set(spec, p);
  }
  return p;
}

async function decodeWasm(spec: string, cls: string, label: string, frame: Uint8Array, g: FrameGeometry): Promise<DecodedSamples> {
  const mod = await loadWasm(spec, label);
  let dec: WasmDecoder | undefined;
  let info: WasmFrameInfo;
  let bytes: Uint8Array;
  try {
    dec = new mod[cls]!();
    dec.getEncodedBuffer(frame.length).set(frame);
    dec.decode();
    info = dec.getFrameInfo();
    bytes = dec.getDecodedBuffer().slice();
  } catch (e) {
    // a trap may leave the instance in an undefined state: use a fresh one next time
    wasmModules.delete(spec);
    throw codecError(label, e);
  } finally {
    try {
      dec?.delete();
    } catch {
      wasmModules.delete(spec);
    }
  }
  if (info.width !== g.columns || info.height !== g.rows || info.componentCount !== g.samplesPerPixel) {
    throw invalidDicom(`the ${label} decoder returned ${info.width}x${info.height}x${info.componentCount}`);
  }
  const bps = info.bitsPerSample <= 8 ? 1 : 2;
  if (bps * 8 > g.bitsAllocated && g.bitsAllocated === 8) throw invalidDicom(`the ${label} frame has ${info.bitsPerSample}-bit samples for 8-bit pixel data`);
  let out: DecodedSamples;
  if (bps === 1) out = bytes;
  else {
    const aligned = bytes.byteOffset % 2 === 0 ? bytes : bytes.slice();
    out = info.isSigned
      ? new Int16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 1)
      : new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength >> 1);
  }
  checkOutput(out.length, g, label);
  return out;
}

// ---------------------------------------------------------------- dispatch

export const SUPPORTED_ENCAPSULATED = new Set<string>([
  TRANSFER_SYNTAX.RLELossless,
  TRANSFER_SYNTAX.JPEGBaseline,
  TRANSFER_SYNTAX.JPEGExtended,
  TRANSFER_SYNTAX.JPEGLossless,
  TRANSFER_SYNTAX.JPEGLosslessSV1,
  TRANSFER_SYNTAX.JPEGLSLossless,
  TRANSFER_SYNTAX.JPEGLSNearLossless,
  TRANSFER_SYNTAX.JPEG2000Lossless,
  TRANSFER_SYNTAX.JPEG2000,
]);

/** decodes one compressed frame of the given transfer syntax */
export async function decodeFrame(ts: string, frame: Uint8Array, g: FrameGeometry): Promise<DecodedSamples> {
  switch (ts) {
    case TRANSFER_SYNTAX.RLELossless:
      return decodeRle(frame, g);
    case TRANSFER_SYNTAX.JPEGBaseline:
    case TRANSFER_SYNTAX.JPEGExtended:
      return decodeJpegLossy(ts, frame, g);
    case TRANSFER_SYNTAX.JPEGLossless:
    case TRANSFER_SYNTAX.JPEGLosslessSV1: {
      const h = jpegHeader(frame);
      checkHeader(h, g, 'JPEG lossless');
      if (h.marker !== 0xc3) throw invalidDicom(`a JPEG lossless frame has SOF marker 0x${(h.marker ?? 0).toString(16)}, expected SOF3 (0xc3)`);
      // colour: IJG (lossless JPEG has no colour transform, the samples come back as coded)
      if (g.samplesPerPixel !== 1) return decodeIjg(frame, h, g, 'colour JPEG lossless');
      if (losslessModule === undefined) {
        try {
          losslessModule = requireCjs('jpeg-lossless-decoder-js') as LosslessModule;
        } catch (e) {
          throw new LlavaRadError('NATIVE_LOAD', 'the JPEG lossless decoder (jpeg-lossless-decoder-js) could not be loaded', { cause: e });
        }
      }
      return decodeJpegLosslessSync(losslessModule, frame, g);
    }
    case TRANSFER_SYNTAX.JPEGLSLossless:
    case TRANSFER_SYNTAX.JPEGLSNearLossless: {
      const h = jpegHeader(frame);
      if (h.marker !== 0xf7) throw invalidDicom('a JPEG-LS frame has no SOF55 header');
      checkHeader(h, g, 'JPEG-LS');
      return decodeWasm('@cornerstonejs/codec-charls/decodewasmjs', 'JpegLSDecoder', 'JPEG-LS', frame, g);
    }
    case TRANSFER_SYNTAX.JPEG2000Lossless:
    case TRANSFER_SYNTAX.JPEG2000: {
      checkHeader(j2kHeader(frame), g, 'JPEG 2000');
      return decodeWasm('@cornerstonejs/codec-openjpeg/decodewasmjs', 'J2KDecoder', 'JPEG 2000', frame, g);
    }
    default:
      throw new LlavaRadError('UNSUPPORTED', `DICOM transfer syntax ${ts} is not supported`);
  }
}
