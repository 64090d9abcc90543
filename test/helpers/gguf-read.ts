// A small GGUF reader for tests: enough to find a tensor and read f32 rows of it. (The engine has its
// own validating reader in C++; this one trusts its input and is only used on files the tests made.)
import { open } from 'node:fs/promises';

const SCALAR_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const STRING = 8;
const ARRAY = 9;
const GGML_F32 = 0;

export interface GgufTensorInfo {
  name: string;
  dims: number[];
  type: number;
  offset: number; // absolute file offset of the data
}

export async function readGgufTensorInfos(file: string): Promise<GgufTensorInfo[]> {
  const fh = await open(file, 'r');
  try {
    // headers of the test fixtures are a few MB (the vocabulary); read 16 MiB at most
    const size = Math.min((await fh.stat()).size, 16 << 20);
    const buf = Buffer.alloc(size);
    await fh.read(buf, 0, size, 0);
    let p = 0;
    const u32 = () => { const v = buf.readUInt32LE(p); p += 4; return v; };
    const u64 = () => { const v = Number(buf.readBigUInt64LE(p)); p += 8; return v; };
    const str = () => { const n = u64(); const s = buf.toString('utf8', p, p + n); p += n; return s; };
    if (buf.toString('latin1', 0, 4) !== 'GGUF') throw new Error(`${file}: not a GGUF file`);
    p = 4;
    u32(); // version
    const nTensors = u64();
    const nKv = u64();
    let alignment = 32;
    const skipValue = (type: number) => {
      if (type === STRING) { str(); return; }
      if (type === ARRAY) {
        const et = u32();
        const n = u64();
        if (et === STRING) for (let i = 0; i < n; i++) str();
        else p += n * SCALAR_BYTES[et];
        return;
      }
      p += SCALAR_BYTES[type];
    };
    for (let i = 0; i < nKv; i++) {
      const key = str();
      const type = u32();
      if (key === 'general.alignment' && type === 4) { alignment = buf.readUInt32LE(p); }
      skipValue(type);
    }
    const infos: GgufTensorInfo[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = str();
      const nd = u32();
      const dims: number[] = [];
      for (let d = 0; d < nd; d++) dims.push(u64());
      const type = u32();
      const offset = u64();
      infos.push({ name, dims, type, offset });
    }
    const dataStart = Math.ceil(p / alignment) * alignment;
    for (const t of infos) t.offset += dataStart;
    return infos;
  } finally {
    await fh.close();
  }
}

/** rows `ids` of a 2-D f32 tensor, concatenated */
export async function readGgufTensorF32Rows(file: string, name: string, ids: number[]): Promise<Float32Array> {
  const t = (await readGgufTensorInfos(file)).find((x) => x.name === name);
  if (!t) throw new Error(`${file}: no tensor ${name}`);
  if (t.type !== GGML_F32) throw new Error(`${name} is not f32`);
  const rowLen = t.dims[0];
  const out = new Float32Array(rowLen * ids.length);
  const fh = await open(file, 'r');
  try {
    for (let i = 0; i < ids.length; i++) {
      const b = Buffer.alloc(rowLen * 4);
      await fh.read(b, 0, b.length, t.offset + ids[i] * rowLen * 4);
      out.set(new Float32Array(b.buffer, b.byteOffset, rowLen), i * rowLen);
    }
  } finally {
    await fh.close();
  }
  return out;
}
