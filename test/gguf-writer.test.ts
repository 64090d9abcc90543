// The GGUF writer (lib/gguf/writer.ts): every value type, alignment, chunked and out-of-order tensor
// writes, its argument checks, f16 rounding; read back with node-llama-cpp's independent GGUF reader
// and with llama.cpp itself (the tiny fixtures load and tokenize like llama-tokenizer-js).
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readGgufFileInfo } from 'node-llama-cpp';
import llamaTokenizer from 'llama-tokenizer-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GgmlType, GgufValueType, f16BitsToF32, f32ToF16Bits, ggmlTensorBytes } from '../lib/gguf/types.js';
import { GgufWriter } from '../lib/gguf/writer.js';
import { parseGgufLayout } from './helpers/corrupt-gguf.js';
import { referenceGreedyDetailed, referenceTokenize } from './helpers/llamacpp.js';
import { makeTinyLlama, tinyLlamaTensorValues, tinyLlamaTensors } from './helpers/tiny-llama.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'llava-rad-writer-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('GgufWriter', () => {
  it('writes every value type and reads back with node-llama-cpp', async () => {
    const file = path.join(dir, 'values.gguf');
    const w = new GgufWriter(file);
    w.addUint8('t.u8', 255)
      .addInt8('t.i8', -128)
      .addUint16('t.u16', 65535)
      .addInt16('t.i16', -32768)
      .addUint32('t.u32', 4294967295)
      .addInt32('t.i32', -2147483648)
      .addFloat32('t.f32', 1.5)
      .addBool('t.bool', true)
      .addString('t.str', 'héllo ▁world')
      .addUint64('t.u64', 2n ** 64n - 1n)
      .addInt64('t.i64', -(2n ** 63n))
      .addFloat64('t.f64', Math.PI)
      .addArray('t.arr_str', GgufValueType.STRING, ['a', '', '▁b'])
      .addArray('t.arr_f32', GgufValueType.FLOAT32, new Float32Array([1, -2.5]))
      .addArray('t.arr_i32', GgufValueType.INT32, [1, -2, 3])
      .addArray('t.arr_bool', GgufValueType.BOOL, [true, false]);
    w.addTensorInfo('a', GgmlType.F32, [3, 2]);
    w.addTensorInfo('b', GgmlType.Q8_0, [64], 68);
    await w.writeHeader();
    await w.writeTensorData('b', new Uint8Array(68).fill(7)); // out of order is fine
    await w.writeTensorChunk('a', new Float32Array([1, 2, 3]));
    await w.writeTensorChunk('a', new Float32Array([4, 5, 6]));
    await w.close();

    const info = await readGgufFileInfo(file, { logWarnings: false });
    const t = (info.metadata as unknown as { t: Record<string, unknown> }).t;
    expect(info.version).toBe(3);
    expect(t.u8).toBe(255);
    expect(t.i8).toBe(-128);
    expect(t.u16).toBe(65535);
    expect(t.i16).toBe(-32768);
    expect(t.u32).toBe(4294967295);
    expect(t.i32).toBe(-2147483648);
    expect(t.f32).toBe(1.5);
    expect(t.bool).toBe(true);
    expect(t.str).toBe('héllo ▁world');
    expect(BigInt(t.u64 as bigint)).toBe(2n ** 64n - 1n);
    expect(BigInt(t.i64 as bigint)).toBe(-(2n ** 63n));
    expect(t.f64).toBe(Math.PI);
    expect(t.arr_str).toEqual(['a', '', '▁b']);
    expect(t.arr_f32).toEqual([1, -2.5]);
    expect(t.arr_i32).toEqual([1, -2, 3]);
    expect(t.arr_bool).toEqual([true, false]);
    expect(info.tensorInfo!.map((x) => [x.name, x.dimensions.map(Number), x.ggmlType, Number(x.offset)])).toEqual([
      ['a', [3, 2], GgmlType.F32, 0],
      ['b', [64], GgmlType.Q8_0, 32],
    ]);

    const buf = await readFile(file);
    const layout = parseGgufLayout(buf);
    expect(layout.dataStart % 32).toBe(0);
    expect([...new Float32Array(buf.buffer.slice(buf.byteOffset + layout.dataStart, buf.byteOffset + layout.dataStart + 24))]).toEqual([1, 2, 3, 4, 5, 6]);
    expect(buf[layout.dataStart + 32]).toBe(7);
    // each tensor padded to the alignment, the last one included
    expect(buf.length).toBe(layout.dataStart + 32 + 96);
  });

  it('honours a custom alignment (written as general.alignment)', async () => {
    const file = path.join(dir, 'align.gguf');
    const w = new GgufWriter(file, { alignment: 64 });
    w.addTensorInfo('x', GgmlType.F16, [3]);
    w.addTensorInfo('y', GgmlType.F32, [5]);
    await w.writeHeader();
    await w.writeTensorData('x', new Uint16Array([1, 2, 3]));
    await w.writeTensorData('y', new Float32Array(5));
    await w.close();
    const info = await readGgufFileInfo(file, { logWarnings: false });
    expect((info.metadata as unknown as { general: { alignment: number } }).general.alignment).toBe(64);
    expect(info.tensorInfo!.map((x) => Number(x.offset))).toEqual([0, 64]);
    const layout = parseGgufLayout(await readFile(file));
    expect(layout.dataStart % 64).toBe(0);
    expect((await stat(file)).size).toBe(layout.dataStart + 128);
  });

  it('checks its arguments', async () => {
    const w = new GgufWriter(path.join(dir, 'bad.gguf'));
    w.addUint32('k', 1);
    expect(() => w.addUint32('k', 2)).toThrow(/duplicate/);
    expect(() => w.addUint8('u8', 256)).toThrow(RangeError);
    expect(() => w.addInt32('i32', 1.5)).toThrow(TypeError);
    expect(() => w.addString('s', 1 as unknown as string)).toThrow(TypeError);
    expect(() => w.addArray('a', GgufValueType.UINT16, [70000])).toThrow(RangeError);
    expect(() => w.addKv('t', 13 as GgufValueType, 1)).toThrow(/unknown GGUF value type/);
    expect(() => w.addTensorInfo('q', GgmlType.Q4_0, [48])).toThrow(/block size/);
    expect(() => w.addTensorInfo('q', GgmlType.F32, [0])).toThrow(/positive/);
    expect(() => w.addTensorInfo('q', 4, [32])).toThrow(/unknown ggml type/);
    expect(() => w.addTensorInfo('q', GgmlType.F32, [1, 1, 1, 1, 1])).toThrow(/dimensions/);
    expect(() => w.addTensorInfo('x'.repeat(64), GgmlType.F32, [1])).toThrow(/longer/);
    expect(() => w.addTensorInfo('q', GgmlType.F32, [4], 15)).toThrow(/nbytes/);
    expect(() => new GgufWriter('x', { alignment: 48 })).toThrow(/power of two/);
    w.addTensorInfo('q', GgmlType.F32, [4]);
    await w.writeHeader();
    expect(() => w.addUint32('late', 1)).toThrow(/after writeHeader/);
    await expect(w.writeTensorData('q', new Float32Array(3))).rejects.toThrow(/takes 16 bytes/);
    await expect(w.writeTensorData('nope', new Float32Array(4))).rejects.toThrow(/unknown tensor/);
    await expect(w.close()).rejects.toThrow(/missing/);
  });

  it('computes tensor byte sizes like ggml', () => {
    expect(ggmlTensorBytes(GgmlType.F16, [4096, 32000])).toBe(4096n * 32000n * 2n);
    expect(ggmlTensorBytes(GgmlType.Q8_0, [4096, 11008])).toBe((4096n / 32n) * 34n * 11008n);
    expect(ggmlTensorBytes(GgmlType.Q4_0, [4096, 4096])).toBe((4096n / 32n) * 18n * 4096n);
    expect(ggmlTensorBytes(GgmlType.Q4_K, [11008, 4096])).toBe((11008n / 256n) * 144n * 4096n);
    expect(ggmlTensorBytes(GgmlType.Q6_K, [4096, 32000])).toBe((4096n / 256n) * 210n * 32000n);
  });
});

describe('f16 conversion', () => {
  it('round-trips every finite half and rounds midpoints to even', () => {
    for (let h = 0; h < 0x7c00; h++) {
      const v = f16BitsToF32(h);
      expect(f32ToF16Bits(v)).toBe(h);
      expect(f32ToF16Bits(-v)).toBe(h | 0x8000);
      if (h < 0x7bff) {
        const mid = (v + f16BitsToF32(h + 1)) / 2; // exact in f32
        expect(f32ToF16Bits(mid)).toBe(h & 1 ? h + 1 : h);
      }
    }
  });

  it('handles overflow, underflow, infinities and NaN', () => {
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519.99)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToF16Bits(1e10)).toBe(0x7c00);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(f32ToF16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16Bits(NaN) & 0x3ff).not.toBe(0);
    expect(f32ToF16Bits(2 ** -25)).toBe(0); // tie to even
    expect(f32ToF16Bits(2 ** -25 * 1.001)).toBe(1);
    expect(f32ToF16Bits(2 ** -24)).toBe(1);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
  });
});

describe('tiny LLaMA fixtures', () => {
  it('are deterministic per tensor', () => {
    const specs = tinyLlamaTensors({});
    const q = specs.find((s) => s.name === 'blk.0.attn_q.weight')!;
    const a = tinyLlamaTensorValues(q, 1);
    const b = tinyLlamaTensorValues(q, 1);
    const c = tinyLlamaTensorValues(q, 2);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(Buffer.from(a.buffer).equals(Buffer.from(c.buffer))).toBe(false);
    let s2 = 0;
    for (const v of a) s2 += v * v;
    expect(Math.sqrt(s2 / a.length)).toBeCloseTo(0.2, 1);
  });

  it('load in llama.cpp, tokenize like llama-tokenizer-js and generate', async () => {
    const file = path.join(dir, 'tiny-f16.gguf');
    await makeTinyLlama({ path: file, type: 'f16', nEmbd: 64, nFf: 128, nHead: 2, nHeadKv: 1, nLayer: 1 });
    const info = await readGgufFileInfo(file, { logWarnings: false });
    const meta = info.metadata as unknown as { llama: Record<string, unknown>; tokenizer: { ggml: Record<string, unknown> } };
    expect(meta.llama.embedding_length).toBe(64);
    expect(meta.llama.attention).toMatchObject({ head_count: 2, head_count_kv: 1 });
    expect((meta.tokenizer.ggml.tokens as string[]).length).toBe(32000);

    for (const text of ['No acute cardiopulmonary process.', 'Heart size normal.\n\nLungs: clear ✓ 🫁', '', '  two  spaces   three']) {
      expect(await referenceTokenize(file, text)).toEqual(llamaTokenizer.encode(text, false));
    }
    const r = await referenceGreedyDetailed(file, [1, 450, 5192, 2159], 8);
    expect(r.tokens.length + (r.stoppedAtEos ? 1 : 0)).toBeGreaterThan(0);
    expect(r.steps.every((s) => s.margin >= 0)).toBe(true);
  });
});
