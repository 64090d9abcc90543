import { defineConfig } from 'tsup';

export default defineConfig([
  {
    // the library: ESM + CJS with type declarations
    entry: { index: 'lib/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: false, // both builds share dist/; "npm run build:ts" empties it first
    target: 'node20',
    platform: 'node',
    shims: true, // import.meta.url in the CJS build (lib/native.ts finds the package root with it)
    outDir: 'dist',
  },
  {
    // the CLI (bin "llava-rad"): one ESM file with a shebang
    entry: { cli: 'lib/cli.ts' },
    format: ['esm'],
    dts: false,
    sourcemap: true,
    clean: false,
    target: 'node20',
    platform: 'node',
    outDir: 'dist',
    banner: { js: '#!/usr/bin/env node' },
  },
]);
