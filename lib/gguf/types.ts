// GGUF / ggml constants shared by the GGUF writer (and anything else that reads or writes GGUF in TS).
// Values follow ggml/include/gguf.h and ggml/include/ggml.h of the llama.cpp version node-llama-cpp pins.

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;
export const GGUF_KEY_ALIGNMENT = 'general.alignment';

/** gguf_type: the type tag of a metadata value */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** ggml_type ids (the stable ones a GGUF may contain; removed ids 4, 5, 31..33, 36..38 are absent) */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
  NVFP4 = 40,
  Q1_0 = 41,
  Q2_0 = 42,
}

export const GGML_TYPE_COUNT = 43;

export interface GgmlTypeTraits {
  name: string;
  /** values per block */
  blockSize: number;
  /** bytes per block */
  typeSize: number;
}

// block sizes / bytes per block, from the block structs in ggml/src/ggml-common.h
const TRAITS: Record<number, GgmlTypeTraits> = {
  [GgmlType.F32]: { name: 'f32', blockSize: 1, typeSize: 4 },
  [GgmlType.F16]: { name: 'f16', blockSize: 1, typeSize: 2 },
  [GgmlType.Q4_0]: { name: 'q4_0', blockSize: 32, typeSize: 18 },
  [GgmlType.Q4_1]: { name: 'q4_1', blockSize: 32, typeSize: 20 },
  [GgmlType.Q5_0]: { name: 'q5_0', blockSize: 32, typeSize: 22 },
  [GgmlType.Q5_1]: { name: 'q5_1', blockSize: 32, typeSize: 24 },
  [GgmlType.Q8_0]: { name: 'q8_0', blockSize: 32, typeSize: 34 },
  [GgmlType.Q8_1]: { name: 'q8_1', blockSize: 32, typeSize: 36 },
  [GgmlType.Q2_K]: { name: 'q2_K', blockSize: 256, typeSize: 84 },
  [GgmlType.Q3_K]: { name: 'q3_K', blockSize: 256, typeSize: 110 },
  [GgmlType.Q4_K]: { name: 'q4_K', blockSize: 256, typeSize: 144 },
  [GgmlType.Q5_K]: { name: 'q5_K', blockSize: 256, typeSize: 176 },
  [GgmlType.Q6_K]: { name: 'q6_K', blockSize: 256, typeSize: 210 },
  [GgmlType.Q8_K]: { name: 'q8_K', blockSize: 256, typeSize: 292 },
  [GgmlType.IQ2_XXS]: { name: 'iq2_xxs', blockSize: 256, typeSize: 66 },
  [GgmlType.IQ2_XS]: { name: 'iq2_xs', blockSize: 256, typeSize: 74 },
  [GgmlType.IQ3_XXS]: { name: 'iq3_xxs', blockSize: 256, typeSize: 98 },
  [GgmlType.IQ1_S]: { name: 'iq1_s', blockSize: 256, typeSize: 50 },
  [GgmlType.IQ4_NL]: { name: 'iq4_nl', blockSize: 32, typeSize: 18 },
  [GgmlType.IQ3_S]: { name: 'iq3_s', blockSize: 256, typeSize: 110 },
  [GgmlType.IQ2_S]: { name: 'iq2_s', blockSize: 256, typeSize: 82 },
  [GgmlType.IQ4_XS]: { name: 'iq4_xs', blockSize: 256, typeSize: 136 },
  [GgmlType.I8]: { name: 'i8', blockSize: 1, typeSize: 1 },
  [GgmlType.I16]: { name: 'i16', blockSize: 1, typeSize: 2 },
  [GgmlType.I32]: { name: 'i32', blockSize: 1, typeSize: 4 },
  [GgmlType.I64]: { name: 'i64', blockSize: 1, typeSize: 8 },
  [GgmlType.F64]: { name: 'f64', blockSize: 1, typeSize: 8 },
  [GgmlType.IQ1_M]: { name: 'iq1_m', blockSize: 256, typeSize: 56 },
  [GgmlType.BF16]: { name: 'bf16', blockSize: 1, typeSize: 2 },
  [GgmlType.TQ1_0]: { name: 'tq1_0', blockSize: 256, typeSize: 54 },
  [GgmlType.TQ2_0]: { name: 'tq2_0', blockSize: 256, typeSize: 66 },
  [GgmlType.MXFP4]: { name: 'mxfp4', blockSize: 32, typeSize: 17 },
  [GgmlType.NVFP4]: { name: 'nvfp4', blockSize: 64, typeSize: 36 },
  [GgmlType.Q1_0]: { name: 'q1_0', blockSize: 128, typeSize: 18 },
  [GgmlType.Q2_0]: { name: 'q2_0', blockSize: 64, typeSize: 18 },
};

/** traits of a ggml type id, or undefined for ids a GGUF may not contain */
export function ggmlTypeTraits(type: number): GgmlTypeTraits | undefined {
  return TRAITS[type];
}

/** ggml type id from its lower-case name ("f16", "q4_k", ...); undefined if unknown */
export function ggmlTypeFromName(name: string): GgmlType | undefined {
  const n = name.toLowerCase();
  for (const [id, t] of Object.entries(TRAITS)) if (t.name.toLowerCase() === n) return Number(id);
  return undefined;
}

/**
 * Bytes a tensor of the given ggml shape takes (ne[0] = row length first).
 * Throws when ne[0] is not a multiple of the type's block size or a dimension is invalid.
 */
export function ggmlTensorBytes(type: number, shape: readonly (number | bigint)[]): bigint {
  const t = TRAITS[type];
  if (!t) throw new RangeError(`unknown ggml type ${type}`);
  if (shape.length < 1 || shape.length > 4) throw new RangeError(`tensor must have 1..4 dimensions, got ${shape.length}`);
  const ne = shape.map((d) => BigInt(d));
  for (const d of ne) if (d < 0n) throw new RangeError(`negative dimension ${d}`);
  if (ne[0]! % BigInt(t.blockSize) !== 0n) {
    throw new RangeError(`row length ${ne[0]} is not a multiple of ${t.name}'s block size ${t.blockSize}`);
  }
  let bytes = (ne[0]! / BigInt(t.blockSize)) * BigInt(t.typeSize);
  for (let i = 1; i < ne.length; i++) bytes *= ne[i]!;
  return bytes;
}

/**
 * general.file_type values (llama_ftype) for the whole-model types the fixtures use.
 * MOSTLY_Q4_K is the llama.cpp name Q4_K_M's file type: 15; Q4_K_S is 14.
 */
export const LLAMA_FTYPE = {
  ALL_F32: 0,
  MOSTLY_F16: 1,
  MOSTLY_Q4_0: 2,
  MOSTLY_Q4_1: 3,
  MOSTLY_Q8_0: 7,
  MOSTLY_Q5_0: 8,
  MOSTLY_Q5_1: 9,
  MOSTLY_Q2_K: 10,
  MOSTLY_Q3_K_M: 12,
  MOSTLY_Q4_K_S: 14,
  MOSTLY_Q4_K_M: 15,
  MOSTLY_Q5_K_M: 17,
  MOSTLY_Q6_K: 18,
  MOSTLY_BF16: 32,
} as const;

// ------------------------------------------------------------------------------------------------
// IEEE half precision (what ggml's GGML_TYPE_F16 stores), round to nearest, ties to even

const f32View = new Float32Array(1);
const u32View = new Uint32Array(f32View.buffer);

/** float -> IEEE binary16 bits, round-to-nearest-even (overflow -> inf, NaN stays NaN) */
export function f32ToF16Bits(value: number): number {
  f32View[0] = value;
  const x = u32View[0]!;
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | (abs > 0x7f800000 ? 0x7e00 : 0x7c00); // NaN / inf
  if (abs >= 0x477ff000) return sign | 0x7c00; // >= 65520 rounds to inf
  if (abs >= 0x38800000) {
    // normal half: rebias the exponent (127 -> 15), keep 10 mantissa bits, round on the 13 dropped
    let h = (((abs >>> 23) - 112) << 10) | ((abs >>> 13) & 0x3ff);
    const rem = abs & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // a carry into the exponent is correct
    return sign | h;
  }
  if (abs <= 0x33000000) return sign; // <= 2^-25: rounds to zero (exactly 2^-25 is a tie to even 0)
  // subnormal half: value = sig * 2^(e - 150); in units of 2^-24 that is sig >> (126 - e)
  const e = abs >>> 23;
  const sig = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - e; // 14..24
  let h = sig >>> shift;
  const rem = sig & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (h & 1) !== 0)) h++;
  return sign | h;
}

/** IEEE binary16 bits -> float */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** converts a whole array to f16 bits */
export function f32ArrayToF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]!);
  return out;
}
