#!/usr/bin/env node
// Random-weight LLaMA GGUFs of benchmark shapes, cached under bench/.models/ (git-ignored).
//
//   node bench/make-model.mjs --shape mid --type q8_0        prints the path (generates it if missing)
//   node bench/make-model.mjs --shape 7b --type q4_k_m
//
// Shapes: small (512x4), mid (n_embd 1024, n_ff 2816, 8 layers, 16 heads: the reference point),
// 7b (LLaMA-2-7B: 4096, 11008, 32 layers, 32 heads). The real LLaMA-2 vocabulary (32000), context 4096.
//
// Types follow what llama-quantize writes for a LLaMA (build/llama.cpp/src/llama-quant.cpp):
//   f16     every matrix f16
//   q8_0    every matrix q8_0 (llama-quantize keeps output.weight at q8_0 too)
//   q4_0    matrices q4_0, output.weight q6_K (llama-quantize's rule for the lm head)
//   q4_k_m  the Q4_K_M mix: q4_K, but output.weight q6_K, and attn_v / ffn_down q6_K in the layers where
//           use_more_bits(i, n) holds (i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2); file type 15
//   q4_k    every matrix q4_K (test/helpers/tiny-llama.ts's "q4_k", file type Q4_K_S)
// Weights come from test/helpers/tiny-llama.ts (deterministic PRNG, ggml's own quantizers through our
// addon); the file is written tensor by tensor, so a 7B file never sits in memory whole.
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
export const MODELS_DIR = path.join(here, '.models');

export const SHAPES = {
  small: { nEmbd: 512, nFf: 1408, nLayer: 4, nHead: 8, nHeadKv: 8, nCtx: 4096 },
  mid: { nEmbd: 1024, nFf: 2816, nLayer: 8, nHead: 16, nHeadKv: 16, nCtx: 4096 },
  '7b': { nEmbd: 4096, nFf: 11008, nLayer: 32, nHead: 32, nHeadKv: 32, nCtx: 4096 },
};
export const TYPES = ['f16', 'q8_0', 'q4_0', 'q4_k_m', 'q4_k'];

// ggml type ids (ggml.h)
const Q4_K = 12;
const Q6_K = 14;
const FTYPE_MOSTLY_Q4_K_M = 15;

const useMoreBits = (i, n) => i < Math.floor(n / 8) || i >= Math.floor((7 * n) / 8) || (i - Math.floor(n / 8)) % 3 === 2;

/** the bench/.models/ file of a shape and type */
export function modelPath(shape, type) {
  return path.join(MODELS_DIR, `bench-${shape}-${type}.gguf`);
}

/** Generates (if missing) and returns the path of a benchmark model. */
export async function ensureModel(shape, type, { log = console.error } = {}) {
  const dims = SHAPES[shape];
  if (!dims) throw new Error(`unknown shape '${shape}' (${Object.keys(SHAPES).join(', ')})`);
  if (!TYPES.includes(type)) throw new Error(`unknown type '${type}' (${TYPES.join(', ')})`);
  const file = modelPath(shape, type);
  if (existsSync(file)) return file;
  mkdirSync(MODELS_DIR, { recursive: true });
  register(pathToFileURL(path.join(here, '..', 'scripts', 'ts-hooks-impl.mjs')));
  const tiny = await import(pathToFileURL(path.join(here, '..', 'test', 'helpers', 'tiny-llama.ts')).href);

  const baseType = type === 'q4_k_m' ? 'q4_k' : type;
  let transformTensors;
  let transformKv;
  if (type === 'q4_0' || type === 'q4_k_m') {
    transformTensors = (tensors) =>
      tensors.map((t) => {
        if (t.name === 'output.weight') return { ...t, type: Q6_K };
        if (type === 'q4_k_m') {
          const m = /^blk\.(\d+)\.(attn_v|ffn_down)\.weight$/.exec(t.name);
          if (m && useMoreBits(Number(m[1]), dims.nLayer)) return { ...t, type: Q6_K };
          if (t.kind === 'matrix') return { ...t, type: Q4_K };
        }
        return t;
      });
  }
  if (type === 'q4_k_m') {
    transformKv = (kvs) => kvs.map((kv) => (kv.key === 'general.file_type' ? { ...kv, value: FTYPE_MOSTLY_Q4_K_M } : kv));
  }
  const tmp = `${file}.${process.pid}.tmp`;
  const t0 = performance.now();
  log(`bench: generating ${path.relative(process.cwd(), file)} (${shape}, ${type}) ...`);
  try {
    await tiny.makeTinyLlama({
      path: tmp,
      type: baseType,
      ...dims,
      name: `bench-${shape}-${type}`,
      ...(transformTensors ? { transformTensors } : {}),
      ...(transformKv ? { transformKv } : {}),
    });
    renameSync(tmp, file);
  } finally {
    rmSync(tmp, { force: true });
  }
  log(`bench: generated in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return file;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { shape: { type: 'string', default: 'mid' }, type: { type: 'string', default: 'q8_0' } } });
  console.log(await ensureModel(values.shape, values.type));
}
