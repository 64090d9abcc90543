// A bounds-checked DICOM Part 10 reader (PS3.10 file format, PS3.5 encodings): the 128-byte preamble and
// "DICM", the file meta group (explicit VR little endian), then the data set in its transfer syntax:
// implicit VR little endian, explicit VR little endian, explicit VR big endian (retired, still met), deflated
// explicit VR little endian (raw DEFLATE of the data set), and encapsulated pixel data (basic offset table +
// fragments) for the compressed syntaxes. Sequences are parsed item by item (with a depth limit) so that
// nested data sets such as the VOI LUT Sequence are available; undefined-length sequences and items are
// followed to their delimiters. Every read is checked against the end of the buffer: a malformed file is an
// INVALID_DICOM LlavaRadError, never a crash, an out-of-range read or an endless loop (each step consumes at
// least 8 bytes). Parsing stops after the top-level Pixel Data element (nothing after it is needed).

import { inflateRawSync } from 'node:zlib';
import { LlavaRadError } from '../errors.js';

export const TAG = {
  TransferSyntaxUID: 0x00020010,
  ViewPosition: 0x00185101,
  SamplesPerPixel: 0x00280002,
  PhotometricInterpretation: 0x00280004,
  PlanarConfiguration: 0x00280006,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  BitsStored: 0x00280101,
  HighBit: 0x00280102,
  PixelRepresentation: 0x00280103,
  WindowCenter: 0x00281050,
  WindowWidth: 0x00281051,
  RescaleIntercept: 0x00281052,
  RescaleSlope: 0x00281053,
  VOILUTFunction: 0x00281056,
  ModalityLUTSequence: 0x00283000,
  LUTDescriptor: 0x00283002,
  LUTData: 0x00283006,
  VOILUTSequence: 0x00283010,
  PixelData: 0x7fe00010,
  Item: 0xfffee000,
  ItemDelimitation: 0xfffee00d,
  SequenceDelimitation: 0xfffee0dd,
} as const;

export const TRANSFER_SYNTAX = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JPEGBaseline: '1.2.840.10008.1.2.4.50',
  JPEGExtended: '1.2.840.10008.1.2.4.51',
  JPEGLossless: '1.2.840.10008.1.2.4.57',
  JPEGLosslessSV1: '1.2.840.10008.1.2.4.70',
  JPEGLSLossless: '1.2.840.10008.1.2.4.80',
  JPEGLSNearLossless: '1.2.840.10008.1.2.4.81',
  JPEG2000Lossless: '1.2.840.10008.1.2.4.90',
  JPEG2000: '1.2.840.10008.1.2.4.91',
  RLELossless: '1.2.840.10008.1.2.5',
} as const;

/** VRs whose explicit encoding has 2 reserved bytes and a 32-bit length */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'UC', 'UN', 'UR', 'UT', 'SV', 'UV']);
/** sequences we must recognise in implicit VR even with a defined length */
const KNOWN_SEQUENCES = new Set<number>([TAG.VOILUTSequence, TAG.ModalityLUTSequence]);
const UNDEFINED = 0xffffffff;
const MAX_DEPTH = 16;

export interface DicomFragment {
  offset: number;
  length: number;
}

export interface DicomElement {
  tag: number;
  /** explicit VR, or '' in implicit VR */
  vr: string;
  /** value bytes in `DicomDataSet.bytes` (for a defined length) */
  offset: number;
  length: number;
  /** items of a sequence */
  items?: DicomDataSet[];
  /** encapsulated pixel data: offset table and fragments (offsets into `bytes`) */
  encapsulated?: { offsetTable: DicomFragment; fragments: DicomFragment[] };
}

export interface DicomDataSet {
  /** the buffer the offsets point into */
  bytes: Uint8Array;
  littleEndian: boolean;
  elements: Map<number, DicomElement>;
}

export interface DicomFile {
  transferSyntax: string;
  meta: DicomDataSet;
  dataset: DicomDataSet;
}

export function invalidDicom(message: string, cause?: unknown): LlavaRadError {
  return new LlavaRadError('INVALID_DICOM', `invalid DICOM: ${message}`, cause === undefined ? {} : { cause });
}

function tagName(tag: number): string {
  return `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`;
}

/** true when the bytes start with a 128-byte preamble followed by "DICM" (DICOM Part 10) */
export function isDicom(bytes: Uint8Array): boolean {
  return bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
}

class Reader {
  readonly dv: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly littleEndian: boolean,
    readonly explicit: boolean,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(pos: number, n: number, end: number, what: string): void {
    if (pos < 0 || n < 0 || pos + n > end) {
      throw invalidDicom(`${what} at byte ${pos} needs ${n} bytes but only ${Math.max(0, end - pos)} remain (truncated file or bad length)`);
    }
  }

  u16(pos: number): number {
    return this.dv.getUint16(pos, this.littleEndian);
  }

  u32(pos: number): number {
    return this.dv.getUint32(pos, this.littleEndian);
  }

  tag(pos: number): number {
    return ((this.u16(pos) << 16) | this.u16(pos + 2)) >>> 0;
  }

  /** parses elements in [pos, end) (or until an item delimiter when `untilDelimiter`); returns the end position */
  parse(pos: number, end: number, out: Map<number, DicomElement>, depth: number, untilDelimiter: boolean, topLevel: boolean): number {
    if (depth > MAX_DEPTH) throw invalidDicom(`sequences nested deeper than ${MAX_DEPTH} levels`);
    while (pos < end) {
      this.need(pos, 8, end, 'an element header');
      const tag = this.tag(pos);
      if (tag === TAG.ItemDelimitation) {
        if (!untilDelimiter) throw invalidDicom(`unexpected item delimiter at byte ${pos}`);
        return pos + 8;
      }
      if (tag === TAG.SequenceDelimitation || tag === TAG.Item) {
        throw invalidDicom(`unexpected ${tagName(tag)} at byte ${pos}`);
      }
      let vr = '';
      let length: number;
      let valuePos: number;
      if (this.explicit) {
        const c0 = this.bytes[pos + 4]!;
        const c1 = this.bytes[pos + 5]!;
        if (c0 < 0x41 || c0 > 0x5a || c1 < 0x41 || c1 > 0x5a) {
          throw invalidDicom(`element ${tagName(tag)} at byte ${pos} has no valid VR (bytes ${c0}, ${c1})`);
        }
        vr = String.fromCharCode(c0, c1);
        if (LONG_VRS.has(vr)) {
          this.need(pos, 12, end, `element ${tagName(tag)} header`);
          length = this.u32(pos + 8);
          valuePos = pos + 12;
        } else {
          length = this.u16(pos + 6);
          valuePos = pos + 8;
        }
      } else {
        length = this.u32(pos + 4);
        valuePos = pos + 8;
      }

      const el: DicomElement = { tag, vr, offset: valuePos, length: length === UNDEFINED ? 0 : length };
      if (tag === TAG.PixelData && length === UNDEFINED) {
        if (depth > 0) throw invalidDicom('encapsulated pixel data inside a sequence');
        pos = this.encapsulated(valuePos, end, el);
      } else if (length === UNDEFINED) {
        // undefined length: a sequence (SQ, UN per PS3.5 6.2.2, or anything in implicit VR)
        if (vr !== '' && vr !== 'SQ' && vr !== 'UN') {
          throw invalidDicom(`element ${tagName(tag)} (VR ${vr}) has an undefined length`);
        }
        const sub = vr === 'UN' ? new Reader(this.bytes, true, false) : this;
        el.items = [];
        pos = sub.sequence(valuePos, end, el.items, depth, true);
      } else {
        this.need(valuePos, length, end, `the value of ${tagName(tag)}`);
        if (vr === 'SQ' || (vr === '' && KNOWN_SEQUENCES.has(tag))) {
          el.items = [];
          this.sequence(valuePos, valuePos + length, el.items, depth, false);
        }
        pos = valuePos + length;
      }
      if (!out.has(tag)) out.set(tag, el);
      if (topLevel && tag === TAG.PixelData) return pos;
    }
    if (untilDelimiter) throw invalidDicom('an item of undefined length has no item delimiter (truncated file)');
    return pos;
  }

  /** sequence items from pos: to `end` (defined length) or to the sequence delimiter (undefined length) */
  sequence(pos: number, end: number, items: DicomDataSet[], depth: number, undefinedLength: boolean): number {
    for (;;) {
      if (!undefinedLength && pos >= end) return pos;
      this.need(pos, 8, end, 'a sequence item header');
      const tag = this.tag(pos);
      const length = this.u32(pos + 4);
      if (tag === TAG.SequenceDelimitation) {
        if (!undefinedLength) throw invalidDicom(`sequence delimiter in a sequence of defined length at byte ${pos}`);
        return pos + 8;
      }
      if (tag !== TAG.Item) throw invalidDicom(`expected a sequence item at byte ${pos}, found ${tagName(tag)}`);
      const ds: DicomDataSet = { bytes: this.bytes, littleEndian: this.littleEndian, elements: new Map() };
      if (items.length < 64) items.push(ds);
      if (length === UNDEFINED) {
        pos = this.parse(pos + 8, end, ds.elements, depth + 1, true, false);
      } else {
        this.need(pos + 8, length, end, 'a sequence item');
        this.parse(pos + 8, pos + 8 + length, ds.elements, depth + 1, false, false);
        pos = pos + 8 + length;
      }
    }
  }

  /** encapsulated pixel data (PS3.5 A.4): an offset table item, fragment items, a sequence delimiter */
  encapsulated(pos: number, end: number, el: DicomElement): number {
    const fragments: DicomFragment[] = [];
    let offsetTable: DicomFragment | undefined;
    for (;;) {
      this.need(pos, 8, end, 'an encapsulated pixel data item');
      // item tags are always little endian in encapsulated data of the little endian syntaxes
      const tag = this.tag(pos);
      const length = this.u32(pos + 4);
      if (tag === TAG.SequenceDelimitation) {
        pos += 8;
        break;
      }
      if (tag !== TAG.Item) throw invalidDicom(`expected a pixel data item at byte ${pos}, found ${tagName(tag)}`);
      if (length === UNDEFINED) throw invalidDicom('a pixel data fragment has an undefined length');
      this.need(pos + 8, length, end, 'a pixel data fragment');
      const frag = { offset: pos + 8, length };
      if (offsetTable === undefined) offsetTable = frag;
      else fragments.push(frag);
      pos += 8 + length;
    }
    if (offsetTable === undefined) throw invalidDicom('encapsulated pixel data has no basic offset table item');
    if (fragments.length === 0) throw invalidDicom('encapsulated pixel data has no fragments');
    el.encapsulated = { offsetTable, fragments };
    return pos;
  }
}

export interface ReadOptions {
  /** most bytes a deflated data set may inflate to (default 1 GiB) */
  maxInflatedBytes?: number;
}

/** reads a DICOM Part 10 file (see the module comment) */
export function readDicom(bytes: Uint8Array, options: ReadOptions = {}): DicomFile {
  if (!isDicom(bytes)) throw invalidDicom('no 128-byte preamble followed by "DICM"');
  // file meta information: explicit VR little endian, group 0002
  const metaReader = new Reader(bytes, true, true);
  const meta: DicomDataSet = { bytes, littleEndian: true, elements: new Map() };
  let pos = 132;
  while (pos + 8 <= bytes.length && metaReader.u16(pos) === 0x0002) {
    const start = pos;
    const el = new Map<number, DicomElement>();
    // one element at a time (the group ends where the group number changes)
    metaReader.need(pos, 8, bytes.length, 'a file meta element');
    const vr = String.fromCharCode(bytes[pos + 4]!, bytes[pos + 5]!);
    const len = LONG_VRS.has(vr) ? (metaReader.need(pos, 12, bytes.length, 'a file meta element'), metaReader.u32(pos + 8)) : metaReader.u16(pos + 6);
    const hdr = LONG_VRS.has(vr) ? 12 : 8;
    if (len === UNDEFINED) throw invalidDicom('a file meta element has an undefined length');
    metaReader.need(pos + hdr, len, bytes.length, 'a file meta element');
    metaReader.parse(start, start + hdr + len, el, 0, false, false);
    for (const [k, v] of el) meta.elements.set(k, v);
    pos = start + hdr + len;
  }
  const tsEl = meta.elements.get(TAG.TransferSyntaxUID);
  if (tsEl === undefined) throw invalidDicom('the file meta group has no Transfer Syntax UID (0002,0010)');
  const transferSyntax = stringValue(meta, tsEl);
  if (!/^[0-9.]+$/.test(transferSyntax)) throw invalidDicom(`transfer syntax UID ${JSON.stringify(transferSyntax)} is malformed`);

  let dsBytes = bytes;
  let dsPos = pos;
  let littleEndian = true;
  let explicit = true;
  if (transferSyntax === TRANSFER_SYNTAX.ImplicitVRLittleEndian) {
    explicit = false;
  } else if (transferSyntax === TRANSFER_SYNTAX.ExplicitVRBigEndian) {
    littleEndian = false;
  } else if (transferSyntax === TRANSFER_SYNTAX.DeflatedExplicitVRLittleEndian) {
    try {
      dsBytes = inflateRawSync(bytes.subarray(pos), { maxOutputLength: options.maxInflatedBytes ?? 1 << 30 });
    } catch (e) {
      throw invalidDicom(`the deflated data set does not inflate: ${e instanceof Error ? e.message : String(e)}`, e);
    }
    dsPos = 0;
  }
  const reader = new Reader(dsBytes, littleEndian, explicit);
  const dataset: DicomDataSet = { bytes: dsBytes, littleEndian, elements: new Map() };
  reader.parse(dsPos, dsBytes.length, dataset.elements, 0, false, true);
  return { transferSyntax, meta, dataset };
}

// ---- value accessors (each checks the value's length) ----

/** a string value with trailing NULs and spaces removed */
export function stringValue(ds: DicomDataSet, el: DicomElement): string {
  let s = '';
  const n = Math.min(el.length, 1024);
  for (let i = 0; i < n; i++) s += String.fromCharCode(ds.bytes[el.offset + i]!);
  return s.replace(/[\0 ]+$/, '').replace(/^ +/, '');
}

export function getString(ds: DicomDataSet, tag: number): string | undefined {
  const el = ds.elements.get(tag);
  return el === undefined ? undefined : stringValue(ds, el);
}

/** US value (first of a multi-value); undefined when absent or empty */
export function getUS(ds: DicomDataSet, tag: number): number | undefined {
  const el = ds.elements.get(tag);
  if (el === undefined || el.length === 0) return undefined;
  if (el.length < 2) throw invalidDicom(`${tagName(tag)} is shorter than a US value`);
  return new DataView(ds.bytes.buffer, ds.bytes.byteOffset + el.offset, 2).getUint16(0, ds.littleEndian);
}

/** all US values of an element (e.g. a LUT descriptor) */
export function getUSArray(ds: DicomDataSet, tag: number): number[] | undefined {
  const el = ds.elements.get(tag);
  if (el === undefined) return undefined;
  const dv = new DataView(ds.bytes.buffer, ds.bytes.byteOffset + el.offset, el.length);
  const out: number[] = [];
  for (let i = 0; i + 2 <= el.length && out.length < 16; i += 2) out.push(dv.getUint16(i, ds.littleEndian));
  return out;
}

/** numbers of a DS / IS string (backslash-separated); undefined when absent or empty */
export function getNumbers(ds: DicomDataSet, tag: number): number[] | undefined {
  const s = getString(ds, tag);
  if (s === undefined || s.trim() === '') return undefined;
  const out = s.split('\\').map((p) => Number(p.trim()));
  if (out.some((v) => !Number.isFinite(v))) throw invalidDicom(`${tagName(tag)} holds non-numeric text ${JSON.stringify(s.slice(0, 40))}`);
  return out;
}

/** the `IS` integer value, e.g. NumberOfFrames */
export function getInt(ds: DicomDataSet, tag: number): number | undefined {
  const v = getNumbers(ds, tag);
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v[0])) throw invalidDicom(`${tagName(tag)} is not an integer`);
  return v[0];
}
