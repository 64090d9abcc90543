#!/usr/bin/env node
// Builds the native engine (ggml from node-llama-cpp's llama.cpp bundle + our C++) with cmake-js.
// Runs as the repository's install script (npm ci), and as `npm run build` inside an installed package (a
// source build: `npm explore llava-rad -- npm run build`). Switches (environment variables):
//   LLAVA_RAD_LLAMA_BUNDLE=P the llama.cpp source: node-llama-cpp's llama/gitRelease.bundle, or a
//                           node-llama-cpp-<version>.tgz (npm pack node-llama-cpp@<version>). Unset: an installed
//                           node-llama-cpp of the pinned version, else `npm pack` downloads that exact version once
//                           (the only download, made because a source build was asked for)
//   LLAVA_RAD_CUDA=1        also build ggml's CUDA backend (needs the CUDA toolkit with cuBLAS)
//   LLAVA_RAD_NATIVE=1      one CPU backend tuned for this machine (-march=native) instead of the portable set
//                           of variants chosen at run time (the default; runs on any x86-64 / arm64 CPU)
//   LLAVA_RAD_CMAKE_ARGS=".." extra -DNAME=VALUE definitions for CMake, space-separated (scripts/package.mjs
//                           cross-compiles the arm64 package with the aarch64 compilers this way)
//   LLAVA_RAD_SKIP_BUILD=1  skip the native build (the library then fails to load with a clear error)
//   LLAVA_RAD_JOBS=N        parallel compile jobs (default: CPU count)
//   LLAVA_RAD_BUILD_DIR=D   build folder (default: build); the library looks for the addon in build/
//   LLAVA_RAD_SANITIZE=L    build the engine, CLI and C++ tests with -fsanitize=L (e.g. address,undefined) into
//                           build-sanitize/ (or LLAVA_RAD_BUILD_DIR): no Node addon, and one CPU module for this
//                           machine unless LLAVA_RAD_NATIVE=0 (README "Building with sanitizers")
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
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

// The node-llama-cpp version whose llama.cpp this engine is pinned to: the repository's devDependency, or the
// field the published package carries instead (scripts/package.mjs writes it).
function pinnedNodeLlamaCpp() {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  const v = pkg.devDependencies?.['node-llama-cpp'] ?? pkg.llavaRad?.nodeLlamaCpp;
  if (!v || !/^\d+\.\d+\.\d+$/.test(v)) {
    console.error(`llava-rad: package.json must pin node-llama-cpp to an exact version (got ${JSON.stringify(v)})`);
    process.exit(1);
  }
  return v;
}

// node-llama-cpp's gitRelease.bundle taken out of its npm tarball, into the build folder
function bundleFromTarball(tgz, outDir) {
  mkdirSync(outDir, { recursive: true });
  const r = spawnSync('tar', ['-xzf', tgz, '-C', outDir, 'package/llama/gitRelease.bundle'], { stdio: 'inherit' });
  const file = path.join(outDir, 'package', 'llama', 'gitRelease.bundle');
  if (r.status !== 0 || !existsSync(file)) {
    console.error(`llava-rad: ${tgz} holds no package/llama/gitRelease.bundle (is it node-llama-cpp's npm tarball?)`);
    process.exit(1);
  }
  return file;
}

function llamaBundle(buildDirAbs) {
  const pin = pinnedNodeLlamaCpp();
  const given = (env.LLAVA_RAD_LLAMA_BUNDLE ?? '').trim();
  if (given) {
    const file = path.resolve(given);
    if (!existsSync(file)) {
      console.error(`llava-rad: LLAVA_RAD_LLAMA_BUNDLE names ${file}, which does not exist`);
      process.exit(1);
    }
    return file.endsWith('.tgz') ? bundleFromTarball(file, path.join(buildDirAbs, 'llama-bundle')) : file;
  }
  const pj = findPackageFile('node-llama-cpp', 'package.json');
  if (pj) {
    const have = JSON.parse(readFileSync(pj, 'utf8')).version;
    const bundle = path.join(path.dirname(pj), 'llama', 'gitRelease.bundle');
    if (have === pin && existsSync(bundle)) return bundle;
    console.log(`llava-rad: the installed node-llama-cpp is ${have}, not the pinned ${pin}: not using its llama.cpp`);
  }
  const dest = path.join(buildDirAbs, 'llama-bundle');
  const tgz = path.join(dest, `node-llama-cpp-${pin}.tgz`);
  if (!existsSync(tgz)) {
    mkdirSync(dest, { recursive: true });
    console.log(`llava-rad: downloading node-llama-cpp@${pin} (npm pack) for the llama.cpp source the engine is built from`);
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = spawnSync(npm, ['pack', `node-llama-cpp@${pin}`, '--pack-destination', dest, '--silent'], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0 || !existsSync(tgz)) {
      console.error(`llava-rad: npm pack node-llama-cpp@${pin} failed. Offline, fetch it elsewhere with ` +
        `\`npm pack node-llama-cpp@${pin}\` and set LLAVA_RAD_LLAMA_BUNDLE to the .tgz`);
      process.exit(1);
    }
  }
  return bundleFromTarball(tgz, dest);
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
const bundle = llamaBundle(path.resolve(root, buildDir));
const native = sanitize ? !off(env.LLAVA_RAD_NATIVE) : on(env.LLAVA_RAD_NATIVE);
const jobs = env.LLAVA_RAD_JOBS || String(os.availableParallelism?.() ?? os.cpus().length);
const args = [
  cmakeJs, 'compile', '--directory', root, '--out', path.resolve(root, buildDir), '--parallel', jobs,
  `--CDLLAVA_RAD_LLAMA_BUNDLE=${bundle}`,
  `--CDLLAVA_RAD_CUDA=${on(env.LLAVA_RAD_CUDA) ? 'ON' : 'OFF'}`,
  `--CDLLAVA_RAD_NATIVE=${native ? 'ON' : 'OFF'}`,
  `--CDLLAVA_RAD_SANITIZE=${sanitize}`,
];
for (const def of (env.LLAVA_RAD_CMAKE_ARGS ?? '').split(/\s+/).filter(Boolean)) {
  if (!/^-D[A-Za-z_][A-Za-z0-9_]*(:[A-Z]+)?=/.test(def)) {
    console.error(`llava-rad: LLAVA_RAD_CMAKE_ARGS takes -DNAME=VALUE definitions, got '${def}'`);
    process.exit(1);
  }
  args.push(`--CD${def.slice(2)}`);
}
if (env.LLAVA_RAD_DEBUG && on(env.LLAVA_RAD_DEBUG)) args.push('--debug');
console.log(`llava-rad: building the native engine (CPU: ${native ? 'native' : 'portable variants'}, CUDA ${on(env.LLAVA_RAD_CUDA) ? 'on' : 'off'}` +
  (sanitize ? `, -fsanitize=${sanitize} into ${buildDir}/, no Node addon)` : ')'));
const r = spawnSync(process.execPath, args, { stdio: 'inherit', cwd: root });
if (r.status !== 0) {
  console.error('llava-rad: native build failed (see above)');
  process.exit(r.status ?? 1);
}
