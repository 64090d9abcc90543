#!/usr/bin/env node
// Generates tiny random-weight LLaMA GGUFs with the real LLaMA-2 vocabulary (test/helpers/tiny-llama.ts).
//
//   node scripts/make-tiny-llama.mjs                      all cached fixtures -> test/.fixtures/ (prints paths)
//   node scripts/make-tiny-llama.mjs --type q8_0 --variant gqa
//   node scripts/make-tiny-llama.mjs --type f16 --out /tmp/x.gguf [--n-embd 512 --n-ff 1024 --n-layer 4
//                                    --n-head 8 --n-head-kv 2 --n-ctx 1024 --seed 7]
//
// Quantized types (q8_0, q4_0, q4_k) need the native addon (npm run build:native). Runs the TypeScript
// sources in place through scripts/ts-hooks.mjs (esbuild, which tsup brings in), no build step.
import { register } from 'node:module';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    type: { type: 'string', multiple: true },
    variant: { type: 'string', multiple: true },
    out: { type: 'string' },
    'n-embd': { type: 'string' },
    'n-ff': { type: 'string' },
    'n-layer': { type: 'string' },
    'n-head': { type: 'string' },
    'n-head-kv': { type: 'string' },
    'n-ctx': { type: 'string' },
    seed: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  console.log(`usage: node scripts/make-tiny-llama.mjs [--type f32|f16|q8_0|q4_0|q4_k]... [--variant base|gqa]...
       node scripts/make-tiny-llama.mjs --type T --out FILE [--n-embd N --n-ff N --n-layer N --n-head N --n-head-kv N --n-ctx N --seed N]
Without --out: creates the cached fixtures under test/.fixtures/ (all types and variants unless narrowed) and prints their paths.`);
  process.exit(0);
}

register(new URL('./ts-hooks-impl.mjs', import.meta.url));
const tiny = await import(new URL('../test/helpers/tiny-llama.ts', import.meta.url).href);

const num = (k) => (values[k] === undefined ? undefined : Number(values[k]));
const types = values.type ?? tiny.TINY_LLAMA_TYPES;
const variants = values.variant ?? Object.keys(tiny.TINY_LLAMA_VARIANTS);

if (values.out) {
  if (types.length !== 1) {
    console.error('--out needs exactly one --type');
    process.exit(2);
  }
  const t0 = performance.now();
  await tiny.makeTinyLlama({
    path: values.out,
    type: types[0],
    ...(variants.length === 1 ? tiny.TINY_LLAMA_VARIANTS[variants[0]] : {}),
    nEmbd: num('n-embd'),
    nFf: num('n-ff'),
    nLayer: num('n-layer'),
    nHead: num('n-head'),
    nHeadKv: num('n-head-kv'),
    nCtx: num('n-ctx'),
    seed: num('seed'),
  });
  console.log(`${values.out} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
} else {
  for (const variant of variants) {
    for (const type of types) {
      const t0 = performance.now();
      const p = await tiny.tinyLlamaPath(type, variant);
      console.log(`${p} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    }
  }
}
