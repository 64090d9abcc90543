// Bundles the library's TypeScript sources (lib/) into one ESM file in a temp folder outside the checkout,
// so the fuzz targets run the current sources, including the entry points dist/ does not export (the
// manifest reader, readImageFile). Bare imports (sharp, the DICOM codecs) stay external and resolve through a
// node_modules symlink next to the bundle; the addon is found through LLAVA_RAD_ADDON (set by the caller).
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** what the targets need beyond lib/index.ts */
const EXTRA = [
  "export { readManifest } from './lib/batch/manifest.ts';",
  "export { readImageFile } from './lib/image/read-file.ts';",
  "export { contextPerStudy } from './lib/batch/engine.ts';",
  // the journal target: the predictions journal, merging, the CLI (batch resumes in process)
  "export { Journal, readPredictions as readPredictionsFile } from './lib/batch/journal.ts';",
  "export { mergePredictions, writeMerged } from './lib/batch/merge.ts';",
  "export { main as cliMain } from './lib/cli.ts';",
  // the seeds of bert-family targets (seeds.mjs) need bert-base-uncased's vocabulary, rebuilt as the tests do
  "export { bertBaseUncasedVocabText } from './test/fixtures/wordpiece/vocab.ts';",
];

/** Builds the bundle; returns its path. */
export async function buildBundle(dir = mkdtempSync(path.join(os.tmpdir(), 'llava-rad-fuzz-bundle-'))) {
  const esbuild = createRequire(path.join(root, 'package.json'))('esbuild');
  mkdirSync(dir, { recursive: true });
  try {
    symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  } catch (e) {
    if (e.code !== 'EEXIST') throw e;
  }
  const out = path.join(dir, 'lib.mjs');
  await esbuild.build({
    stdin: { contents: ["export * from './lib/index.ts';", ...EXTRA].join('\n'), resolveDir: root, loader: 'ts', sourcefile: 'fuzz-entry.ts' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    outfile: out,
    logLevel: 'error',
    sourcemap: true,
    banner: { js: "import { createRequire as __fuzzCreateRequire } from 'node:module'; const require = __fuzzCreateRequire(import.meta.url);" },
  });
  writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}\n');
  return out;
}

/** the environment a child needs to load the bundle's addon */
export function addonEnv() {
  return { LLAVA_RAD_ADDON: process.env.LLAVA_RAD_ADDON || path.join(root, 'build', 'Release', 'llava_rad.node') };
}
