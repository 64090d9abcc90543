// SentencePiece `tokenizer.model` reader: a ModelProto (sentencepiece_model.proto) decoded with a minimal,
// bounds-checked protobuf wire decoder. Only what a GGUF vocabulary needs is kept:
//   ModelProto.pieces (1): {piece (1), score (2, float), type (3, enum)}
//   ModelProto.trainer_spec (2): model_type (3), byte_fallback (35), unk_id (40, default 0),
//       bos_id (41, default 1), eos_id (42, default 2), pad_id (43, default -1), unk_piece (45, "<unk>"),
//       bos_piece (46, "<s>"), eos_piece (47, "</s>"), pad_piece (48, "<pad>")
//   ModelProto.normalizer_spec (3): add_dummy_prefix (3, default true),
//       remove_extra_whitespaces (4, default true), escape_whitespaces (5, default true)
// Unknown fields are skipped. bosId/eosId/unkId/padId are what SentencePieceProcessor reports (and what
// a converter should write): the id of the piece named by bos_piece etc. when that piece is CONTROL
// (UNKNOWN for unk), else -1; the raw trainer_spec ids are in `specIds`. Piece types keep SentencePiece's numbering, which is llama.cpp's token type
// numbering too: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6.

import { LlavaRadError } from '../errors.js';
import { readRegularFile } from '../regular-file.js';

/** the largest tokenizer.model read (LLaMA's is 0.5 MB) */
export const MAX_TOKENIZER_BYTES = 64 * 1024 * 1024;

export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export interface SentencePieceModel {
  tokens: string[];
  /** float32 scores (as stored) */
  scores: Float32Array;
  /** llama.cpp token types (TokenType) */
  types: Int32Array;
  /** SentencePieceProcessor's bos_id()/eos_id()/unk_id()/pad_id(): -1 when there is none */
  bosId: number;
  eosId: number;
  unkId: number;
  padId: number;
  /** the ids trainer_spec records (unk_id, bos_id, eos_id, pad_id) */
  specIds: { unk: number; bos: number; eos: number; pad: number };
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  byteFallback: boolean;
  /** 1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR */
  modelType: number;
  /** 'unigram' | 'bpe' | 'word' | 'char' */
  modelTypeName: string;
}

class Wire {
  pos: number;
  constructor(readonly buf: Buffer, readonly start: number, readonly end: number, readonly label: string) {
    this.pos = start;
  }
  fail(msg: string): LlavaRadError {
    return new LlavaRadError('BAD_CHECKPOINT', `${this.label}: malformed protobuf at byte ${this.pos}: ${msg}`);
  }
  done(): boolean {
    return this.pos >= this.end;
  }
  /** a varint as [low 32 bits unsigned, high 32 bits unsigned] */
  varint(): [number, number] {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw this.fail('truncated varint');
      const b = this.buf[this.pos++]!;
      const bits = b & 0x7f;
      if (i < 4) lo |= bits << (7 * i);
      else if (i === 4) {
        lo |= (bits & 0x0f) << 28;
        hi |= bits >> 4;
      } else hi |= bits << (7 * i - 32);
      if ((b & 0x80) === 0) return [lo >>> 0, hi >>> 0];
    }
    throw this.fail('varint longer than 10 bytes');
  }
  uint(): number {
    const [lo, hi] = this.varint();
    const v = hi * 2 ** 32 + lo;
    if (!Number.isSafeInteger(v)) throw this.fail('value out of range');
    return v;
  }
  /** int32 field (negative values are 10-byte sign-extended varints) */
  int32(): number {
    return this.varint()[0] | 0;
  }
  bool(): boolean {
    const [lo, hi] = this.varint();
    return lo !== 0 || hi !== 0;
  }
  float(): number {
    if (this.pos + 4 > this.end) throw this.fail('truncated fixed32');
    const v = this.buf.readFloatLE(this.pos);
    this.pos += 4;
    return v;
  }
  /** a length-delimited field: returns [start, end) */
  bytes(): [number, number] {
    const n = this.uint();
    if (n > this.end - this.pos) throw this.fail(`length ${n} runs past the end of the message`);
    const s = this.pos;
    this.pos += n;
    return [s, this.pos];
  }
  sub(): Wire {
    const [s, e] = this.bytes();
    return new Wire(this.buf, s, e, this.label);
  }
  string(): string {
    const [s, e] = this.bytes();
    return this.buf.toString('utf8', s, e);
  }
  /** [field number, wire type] */
  tag(): [number, number] {
    const t = this.uint();
    const field = Math.floor(t / 8);
    if (field === 0) throw this.fail('field number 0');
    return [field, t & 7];
  }
  skip(wireType: number): void {
    switch (wireType) {
      case 0: this.varint(); break;
      case 1:
        if (this.pos + 8 > this.end) throw this.fail('truncated fixed64');
        this.pos += 8;
        break;
      case 2: this.bytes(); break;
      case 5:
        if (this.pos + 4 > this.end) throw this.fail('truncated fixed32');
        this.pos += 4;
        break;
      default:
        throw this.fail(`unsupported wire type ${wireType}`);
    }
  }
  expect(wireType: number, want: number, field: string): void {
    if (wireType !== want) throw this.fail(`field ${field} has wire type ${wireType}, expected ${want}`);
  }
}

const MODEL_TYPES: Record<number, string> = { 1: 'unigram', 2: 'bpe', 3: 'word', 4: 'char' };

/** Parses the bytes of a SentencePiece model (ModelProto). */
export function parseSentencePiece(bytes: Uint8Array, label = 'tokenizer.model'): SentencePieceModel {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const w = new Wire(buf, 0, buf.length, label);
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const m = {
    bosId: 1, eosId: 2, unkId: 0, padId: -1, addDummyPrefix: true, removeExtraWhitespaces: true,
    escapeWhitespaces: true, byteFallback: false, modelType: 1,
  };
  const names = { unk: '<unk>', bos: '<s>', eos: '</s>', pad: '<pad>' };
  while (!w.done()) {
    const [f, wt] = w.tag();
    if (f === 1) {
      w.expect(wt, 2, 'pieces');
      const p = w.sub();
      let piece: string | undefined;
      let score = 0;
      let type: number = TokenType.NORMAL;
      while (!p.done()) {
        const [pf, pwt] = p.tag();
        if (pf === 1) { p.expect(pwt, 2, 'piece'); piece = p.string(); }
        else if (pf === 2) { p.expect(pwt, 5, 'score'); score = p.float(); }
        else if (pf === 3) { p.expect(pwt, 0, 'type'); type = p.int32(); }
        else p.skip(pwt);
      }
      if (piece === undefined) throw w.fail(`piece ${tokens.length} has no text`);
      if (type < 1 || type > 6) throw w.fail(`piece ${tokens.length} ("${piece}") has unknown type ${type}`);
      tokens.push(piece);
      scores.push(score);
      types.push(type);
    } else if (f === 2) {
      w.expect(wt, 2, 'trainer_spec');
      const t = w.sub();
      while (!t.done()) {
        const [tf, twt] = t.tag();
        const int = (key: 'bosId' | 'eosId' | 'unkId' | 'padId' | 'modelType'): void => {
          t.expect(twt, 0, key);
          m[key] = t.int32();
        };
        if (tf === 3) int('modelType');
        else if (tf === 35) { t.expect(twt, 0, 'byte_fallback'); m.byteFallback = t.bool(); }
        else if (tf === 40) int('unkId');
        else if (tf === 41) int('bosId');
        else if (tf === 42) int('eosId');
        else if (tf === 43) int('padId');
        else if (tf === 45) { t.expect(twt, 2, 'unk_piece'); names.unk = t.string(); }
        else if (tf === 46) { t.expect(twt, 2, 'bos_piece'); names.bos = t.string(); }
        else if (tf === 47) { t.expect(twt, 2, 'eos_piece'); names.eos = t.string(); }
        else if (tf === 48) { t.expect(twt, 2, 'pad_piece'); names.pad = t.string(); }
        else t.skip(twt);
      }
    } else if (f === 3) {
      w.expect(wt, 2, 'normalizer_spec');
      const n = w.sub();
      while (!n.done()) {
        const [nf, nwt] = n.tag();
        if (nf === 3) { n.expect(nwt, 0, 'add_dummy_prefix'); m.addDummyPrefix = n.bool(); }
        else if (nf === 4) { n.expect(nwt, 0, 'remove_extra_whitespaces'); m.removeExtraWhitespaces = n.bool(); }
        else if (nf === 5) { n.expect(nwt, 0, 'escape_whitespaces'); m.escapeWhitespaces = n.bool(); }
        else n.skip(nwt);
      }
    } else {
      w.skip(wt);
    }
  }
  if (tokens.length === 0) throw new LlavaRadError('BAD_CHECKPOINT', `${label}: the model has no pieces`);
  for (const [k, v] of [['unk_id', m.unkId], ['bos_id', m.bosId], ['eos_id', m.eosId], ['pad_id', m.padId]] as const) {
    if (v < -1 || v >= tokens.length) {
      throw new LlavaRadError('BAD_CHECKPOINT', `${label}: ${k} ${v} is outside the vocabulary of ${tokens.length}`);
    }
  }
  // SentencePieceProcessor: the first piece with that text, if its type fits
  const idOf = (piece: string, type: number): number => {
    const i = tokens.indexOf(piece);
    return i >= 0 && types[i] === type ? i : -1;
  };
  return {
    tokens,
    scores: Float32Array.from(scores),
    types: Int32Array.from(types),
    ...m,
    unkId: tokens.includes(names.unk) ? idOf(names.unk, TokenType.UNKNOWN) : types.indexOf(TokenType.UNKNOWN),
    bosId: idOf(names.bos, TokenType.CONTROL),
    eosId: idOf(names.eos, TokenType.CONTROL),
    padId: idOf(names.pad, TokenType.CONTROL),
    specIds: { unk: m.unkId, bos: m.bosId, eos: m.eosId, pad: m.padId },
    modelTypeName: MODEL_TYPES[m.modelType] ?? `unknown(${m.modelType})`,
  };
}

/** Reads and parses a SentencePiece model file (refuses files over 64 MiB). */
export async function readSentencePiece(path: string): Promise<SentencePieceModel> {
  const buf = await readRegularFile(path, 'the tokenizer model', MAX_TOKENIZER_BYTES,
    (size) => new LlavaRadError('BAD_CHECKPOINT', `${path}: ${size} bytes is too large for a tokenizer model`));
  return parseSentencePiece(buf, path);
}
