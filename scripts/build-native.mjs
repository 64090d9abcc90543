#!/usr/bin/env node
// Builds the native engine (ggml from node-llama-cpp's llama.cpp bundle + our C++) with cmake-js.
// Runs as the package's install script. Switches (environment variables):
//   LLAVA_RAD_CUDA=1        also build ggml's CUDA backend (needs the CUDA toolkit with cuBLAS)
//   LLAVA_RAD_NATIVE=1      one CPU backend tuned for this machine (-march=native) instead of the portable set
//                           of variants chosen at run time (the default; runs on any x86-64 / arm64 CPU)
//   LLAVA_RAD_SKIP_BUILD=1  skip the native build (the library then fails to load with a clear error)
//   LLAVA_RAD_JOBS=N        parallel compile jobs (default: CPU count)
//   LLAVA_RAD_BUILD_DIR=D   build folder (default: build); the library looks for the addon in build/
//   LLAVA_RAD_SANITIZE=L    build the engine, CLI and C++ tests with -fsanitize=L (e.g. address,undefined) into
//                           build-sanitize/ (or LLAVA_RAD_BUILD_DIR): no Node addon, and one CPU module for this
//                           machine unless LLAVA_RAD_NATIVE=0 (README "Building with sanitizers")
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const env = process.env;
const on = (v) => v !== undefined && /^(1|on|true|yes)$/i.test(v);
const off = (v) => v !== undefined && /^(0|off|false|no)$/i.test(v);

if (on(env.LLAVA_RAD_SKIP_BUILD)) {
  console.log('llava-rad: LLAVA_RAD_SKIP_BUILD is set, not building the native engine');
  process.exit(0);
}

// node_modules folders Node would search from this package (works when hoisted, too)
function findPackageFile(pkg, ...rel) {
  for (const dir of require.resolve.paths(pkg) ?? []) {
    const file = path.join(dir, pkg, ...rel);
    if (existsSync(file)) return file;
  }
  return undefined;
}

const bundle = findPackageFile('node-llama-cpp', 'llama', 'gitRelease.bundle');
if (!bundle) {
  console.error("llava-rad: node-llama-cpp's llama/gitRelease.bundle was not found; the node-llama-cpp dependency " +
    'carries the llama.cpp source this build needs (run npm install)');
  process.exit(1);
}
const cmakeJs = findPackageFile('cmake-js', 'bin', 'cmake-js');
if (!cmakeJs) {
  console.error('llava-rad: the cmake-js dependency is missing (run npm install)');
  process.exit(1);
}
const sanitize = (env.LLAVA_RAD_SANITIZE ?? '').trim();
if (sanitize && !/^[a-z][a-z0-9-]*(,[a-z][a-z0-9-]*)*$/.test(sanitize)) {
  console.error(`llava-rad: LLAVA_RAD_SANITIZE must be a comma-separated list of sanitizers such as address,undefined, got '${sanitize}'`);
  process.exit(1);
}
// a sanitized build has no addon: never put it where the library looks for one unless told to
const buildDir = env.LLAVA_RAD_BUILD_DIR || (sanitize ? 'build-sanitize' : 'build');
const native = sanitize ? !off(env.LLAVA_RAD_NATIVE) : on(env.LLAVA_RAD_NATIVE);
const jobs = env.LLAVA_RAD_JOBS || String(os.availableParallelism?.() ?? os.cpus().length);
const args = [
  cmakeJs, 'compile', '--directory', root, '--out', path.resolve(root, buildDir), '--parallel', jobs,
  `--CDLLAVA_RAD_LLAMA_BUNDLE=${bundle}`,
  `--CDLLAVA_RAD_CUDA=${on(env.LLAVA_RAD_CUDA) ? 'ON' : 'OFF'}`,
  `--CDLLAVA_RAD_NATIVE=${native ? 'ON' : 'OFF'}`,
  `--CDLLAVA_RAD_SANITIZE=${sanitize}`,
];
if (env.LLAVA_RAD_DEBUG && on(env.LLAVA_RAD_DEBUG)) args.push('--debug');
console.log(`llava-rad: building the native engine (CPU: ${native ? 'native' : 'portable variants'}, CUDA ${on(env.LLAVA_RAD_CUDA) ? 'on' : 'off'}` +
  (sanitize ? `, -fsanitize=${sanitize} into ${buildDir}/, no Node addon)` : ')'));
const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root });
if (r.status !== 0) {
  console.error('llava-rad: native build failed (see above)');
  process.exit(r.status ?? 1);
}
