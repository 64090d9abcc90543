#!/usr/bin/env node
// Writes the publishable npm tarballs (`npm run package`, which builds dist/ first):
//
//   <out>/llava-rad-VERSION.tgz               the library, the CLI and the engine's sources (for source builds);
//                                             the platform packages below are its optionalDependencies
//   <out>/llava-rad-linux-x64-VERSION.tgz     the prebuilt engine from build/ (the portable CPU build: every
//                                             x86-64 CPU module, one chosen at run time); on an arm64 machine,
//                                             llava-rad-linux-arm64 from build/ instead
//   <out>/llava-rad-linux-arm64-VERSION.tgz   with --arm64: cross-compiled here into build-pkg-arm64/ and
//                                             smoke-tested under qemu-aarch64: by Clang 16 or later where there
//                                             is one (every arm64 CPU module, one chosen at run time), else by
//                                             Debian's GCC 12 cross compiler (one baseline arm64 module: GCC
//                                             before 14 cannot build ggml's armv9.2-a+sme modules); both link
//                                             against Debian's aarch64 toolchain (g++-aarch64-linux-gnu)
//   <out>/llava-rad-linux-x64-cudaN-VERSION.tgz with --cuda: ggml's CUDA backend plus the CPU modules, for the CUDA
//                                             N runtime (N: the toolkit's major version, 12 or 13), built into
//                                             build-pkg-cuda/ (needs the CUDA toolkit with cuBLAS: scripts/find-cuda.sh
//                                             finds it, NVIDIA's Python wheels included)
//
// A platform package holds what a build folder holds, laid out the same way: Release/llava_rad.node (the addon),
// Release/libggml*.so (ggml, its CPU modules, CUDA), the compiler's libgomp.so.1 (ggml's OpenMP runtime, which
// slim images lack), and llava-rad-cli (the C++ CLI, whose run path is $ORIGIN/Release); lib/native.ts loads
// Release/llava_rad.node from it. Every binary's run path is $ORIGIN-relative, and every library it needs ships
// with it or is part of every glibc system (checked with readelf).
//
// Usage: node scripts/package.mjs [--out DIR] [--no-main] [--no-host] [--arm64] [--arm64-compiler auto|clang|gcc]
//                                 [--cuda] [--cuda-archs LIST] [--cuda-build-dir DIR]
//   --arm64-compiler  auto (default): Clang 16+ (clang-NN or clang on PATH) where found, else GCC; clang: fail
//                     without one
//   --cuda-archs      CMAKE_CUDA_ARCHITECTURES (default: ggml's list for the toolkit, e.g. for CUDA 13
//                     75-virtual;80-virtual;86-real;89-real;90-virtual;120a-real;121a-real)
//   --cuda-build-dir  the build folder of the CUDA package (default build-pkg-cuda)
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt } = parseArgs({
  options: {
    out: { type: 'string', default: path.join(root, 'pkg') },
    'no-main': { type: 'boolean', default: false },
    'no-host': { type: 'boolean', default: false },
    'no-x64': { type: 'boolean', default: false }, // older name of --no-host
    arm64: { type: 'boolean', default: false },
    'arm64-compiler': { type: 'string', default: 'auto' },
    cuda: { type: 'boolean', default: false },
    'cuda-archs': { type: 'string' },
    'cuda-build-dir': { type: 'string', default: 'build-pkg-cuda' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  const lines = readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1);
  console.log(lines.slice(0, lines.findIndex((l) => !l.startsWith('//'))).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
  process.exit(0);
}

const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
const version = pkg.version;
const outDir = path.resolve(opt.out);
const stageRoot = path.join(outDir, '.stage');
const PLATFORMS = {
  'linux-x64': { os: 'linux', cpu: 'x64', buildDir: 'build', what: 'portable CPU build: every x86-64 CPU module, one chosen at run time' },
  // from build/ on an arm64 machine; cross-compiled into build-pkg-arm64/ on x86-64 (--arm64)
  'linux-arm64': { os: 'linux', cpu: 'arm64', buildDir: os.arch() === 'arm64' ? 'build' : 'build-pkg-arm64', what: 'arm64 CPU build' },
};
// the CUDA package of toolkit major version N (12, 13): its libggml-cuda.so needs that runtime's libcudart.so.N
// and libcublas.so.N, so each major version is a package of its own
const cudaPlatform = (major) => ({
  os: 'linux', cpu: 'x64', buildDir: opt['cuda-build-dir'], cuda: major,
  what: `ggml's CUDA backend for the CUDA ${major} runtime (libcudart.so.${major}, libcublas.so.${major}) and the portable CPU modules`,
});

function die(msg) {
  console.error(`package: ${msg}`);
  process.exit(1);
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: root, ...options });
  if (r.status !== 0) die(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}, signal ${r.signal}`})`);
  return r;
}

function npmPack(stageDir) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['pack', stageDir, '--pack-destination', outDir, '--json', '--ignore-scripts'], { cwd: outDir, encoding: 'utf8' });
  if (r.status !== 0) die(`npm pack ${stageDir} failed: ${r.stderr}`);
  const [info] = JSON.parse(r.stdout);
  const file = path.join(outDir, info.filename);
  console.log(`package: ${path.relative(process.cwd(), file) || file} (${(info.size / 2 ** 20).toFixed(1)} MB packed, ` +
    `${(info.unpackedSize / 2 ** 20).toFixed(1)} MB unpacked, ${info.entryCount} files)`);
  return file;
}

function freshStage(name) {
  const dir = path.join(stageRoot, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  return dir;
}

const COMMON = {
  version,
  license: pkg.license,
  author: pkg.author,
  homepage: pkg.homepage,
  repository: pkg.repository,
  bugs: pkg.bugs,
};

// ---- the main package -------------------------------------------------------------------------------------

function mainPackage() {
  for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/cli.js']) {
    if (!existsSync(path.join(root, f))) die(`${f} is missing: run \`npm run build:ts\` first (npm run package does)`);
  }
  const stage = freshStage('llava-rad');
  cpSync(path.join(root, 'dist'), path.join(stage, 'dist'), { recursive: true });
  for (const d of ['include', 'src', 'addon', 'cli', 'tools']) cpSync(path.join(root, 'native', d), path.join(stage, 'native', d), { recursive: true });
  mkdirSync(path.join(stage, 'scripts'));
  copyFileSync(path.join(root, 'scripts', 'build-native.mjs'), path.join(stage, 'scripts', 'build-native.mjs'));
  for (const f of ['CMakeLists.txt', 'README.md', 'LICENSE']) copyFileSync(path.join(root, f), path.join(stage, f));
  const nodeLlamaCpp = pkg.devDependencies?.['node-llama-cpp'];
  if (!/^\d+\.\d+\.\d+$/.test(nodeLlamaCpp ?? '')) die(`package.json must pin node-llama-cpp exactly in devDependencies, got ${nodeLlamaCpp}`);
  const manifest = {
    name: pkg.name,
    description: pkg.description,
    keywords: pkg.keywords,
    ...COMMON,
    type: pkg.type,
    main: pkg.main,
    module: pkg.module,
    types: pkg.types,
    exports: pkg.exports,
    bin: pkg.bin,
    files: ['dist', 'native', 'scripts/build-native.mjs', 'CMakeLists.txt'],
    engines: pkg.engines,
    // no install script: the engine comes prebuilt in a platform package; `npm explore llava-rad -- npm run build`
    // builds it from source (README, "Building from source")
    scripts: { build: 'node scripts/build-native.mjs --force' },
    dependencies: pkg.dependencies,
    optionalDependencies: Object.fromEntries(['linux-x64', 'linux-arm64'].map((p) => [`llava-rad-${p}`, version])),
    // where a source build takes ggml from: this exact node-llama-cpp's llama.cpp bundle (scripts/build-native.mjs)
    llavaRad: { nodeLlamaCpp },
    binary: pkg.binary,
  };
  writeFileSync(path.join(stage, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  return npmPack(stage);
}

// ---- platform packages ------------------------------------------------------------------------------------

function cmakeCache(buildDir) {
  const file = path.join(buildDir, 'CMakeCache.txt');
  if (!existsSync(file)) return undefined;
  const cache = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Za-z0-9_]+):[A-Z]+=(.*)$/.exec(line);
    if (m) cache[m[1]] = m[2];
  }
  return cache;
}

function onOff(v) {
  return /^(1|on|true|yes)$/i.test(v ?? '');
}

/** Checks that a build folder holds the build this platform package promises. */
function checkBuild(name, buildDir) {
  const cache = cmakeCache(buildDir);
  const release = path.join(buildDir, 'Release');
  if (!cache || !existsSync(path.join(release, 'llava_rad.node'))) {
    die(`${buildDir} holds no built addon (Release/llava_rad.node): build it first (npm run build:native)`);
  }
  const p = PLATFORMS[name];
  if (onOff(cache.LLAVA_RAD_NATIVE)) die(`${buildDir} is a -march=native build (LLAVA_RAD_NATIVE=ON): it would not run on other CPUs`);
  if ((cache.LLAVA_RAD_SANITIZE ?? '') !== '') die(`${buildDir} is a sanitizer build`);
  if (onOff(cache.LLAVA_RAD_CUDA) !== (p.cuda !== undefined)) die(`${buildDir} was built with LLAVA_RAD_CUDA=${cache.LLAVA_RAD_CUDA}, not what ${name} needs`);
  const proc = cache.CMAKE_SYSTEM_PROCESSOR || os.arch();
  const isArm = /aarch64|arm64/i.test(proc);
  if (isArm !== (p.cpu === 'arm64')) die(`${buildDir} was built for ${proc}, not ${p.cpu}`);
  if (!existsSync(path.join(buildDir, 'llava-rad-cli'))) die(`${buildDir} has no llava-rad-cli`);
}

/** strip(1) for the target, or undefined when there is none (the files then go in unstripped) */
function stripTool(cpu) {
  const names = cpu === 'arm64' && os.arch() !== 'arm64' ? ['aarch64-linux-gnu-strip'] : ['strip'];
  for (const n of names) if (spawnSync(n, ['--version'], { stdio: 'ignore' }).status === 0) return n;
  return undefined;
}

/** readelf -d of a shipped binary: its run path entries and the libraries it needs (read once per file) */
const dynamicSections = new Map();
function dynamicSection(file) {
  if (dynamicSections.has(file)) return dynamicSections.get(file);
  const r = spawnSync('readelf', ['-d', file], { encoding: 'utf8' });
  if (r.error) die('packaging needs readelf(1) (binutils) to check the binaries');
  if (r.status !== 0) die(`readelf -d ${file} failed: ${r.stderr}`);
  const m = /\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]/.exec(r.stdout);
  const needed = [...r.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[(.+?)\]/g)].map((x) => x[1]);
  const section = { runPath: m ? m[1].split(':') : [], needed };
  dynamicSections.set(file, section);
  return section;
}

// what every glibc Linux has; the CUDA packages also use the CUDA runtime and cuBLAS the user installs
const SYSTEM_LIBRARY = /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libstdc\+\+\.so\.6|libgcc_s\.so\.1|ld-linux-[\w.-]+\.so\.\d)$/;
const CUDA_LIBRARY = /^(libcuda\.so\.1|libcudart\.so\.\d+|libcublas\.so\.\d+|libcublasLt\.so\.\d+)$/;
// compiler runtime libraries that ship beside ggml (slim images such as node:*-slim lack them); GCC's runtime
// library exception allows it
const COMPILER_RUNTIME = ['libgomp.so.1'];

/**
 * Copies the compiler runtime libraries the binaries need (libgomp: ggml's OpenMP threads) from the build's own
 * compiler into Release/; returns the files copied and their notice.
 */
function bundleCompilerRuntime(files, outRelease, cache) {
  const wanted = new Set(files.flatMap((f) => dynamicSection(f).needed).filter((n) => COMPILER_RUNTIME.includes(n)));
  const copied = [];
  let notice = '';
  for (const name of wanted) {
    const cc = cache.CMAKE_C_COMPILER || 'cc';
    const r = spawnSync(cc, [`-print-file-name=${name}`], { encoding: 'utf8' });
    const found = (r.stdout ?? '').trim();
    if (r.status !== 0 || !path.isAbsolute(found) || !existsSync(found)) die(`the binaries need ${name}, which ${cc} -print-file-name did not find`);
    const dest = path.join(outRelease, name);
    copyFileSync(realpathSync(found), dest);
    copied.push(dest);
    const version = spawnSync(cc, ['-dumpfullversion'], { encoding: 'utf8' }).stdout?.trim() || 'unknown';
    notice += `\n\nRelease/${name} is GCC ${version}'s runtime library (${realpathSync(found)}), licensed under the GNU ` +
      'General Public License 3.0 or later with the GCC Runtime Library Exception 3.1.';
    const docs = /aarch64/.test(found) ? ['libgomp1-arm64-cross', 'libgomp1'] : ['libgomp1', 'libgomp1-arm64-cross'];
    const doc = docs.map((d) => path.join('/usr/share/doc', d, 'copyright')).find((f) => existsSync(f));
    if (doc) notice += ` Its copyright file (${doc}):\n\n${readFileSync(doc, 'utf8')}`;
  }
  return { copied, notice };
}

/**
 * A shipped binary looks for libraries beside itself ($ORIGIN...) only: never in the build machine's folders, and
 * never through an empty entry (the working directory). Every library it needs ships with it or is part of
 * every glibc system (and, for CUDA packages, the CUDA runtime).
 */
function checkLinkage(files, outRelease, cuda) {
  const shipped = new Set(readdirSync(outRelease));
  for (const f of files) {
    const { runPath, needed } = dynamicSection(f);
    const foreign = runPath.filter((d) => !d.startsWith('$ORIGIN'));
    if (foreign.length) {
      die(`${path.basename(f)} would look for libraries in ${foreign.map((d) => d === '' ? '(an empty entry: the working directory)' : d).join(', ')} ` +
        '(its run path); only $ORIGIN-relative folders may ship');
    }
    for (const n of needed) {
      if (!shipped.has(n) && !SYSTEM_LIBRARY.test(n) && !(cuda && CUDA_LIBRARY.test(n))) {
        die(`${path.basename(f)} needs ${n}, which neither ships in the package nor is part of every glibc system`);
      }
    }
  }
}

function platformPackage(name) {
  const p = PLATFORMS[name];
  const buildDir = path.join(root, p.buildDir);
  checkBuild(name, buildDir);
  const stage = freshStage(`llava-rad-${name}`);
  const release = path.join(buildDir, 'Release');
  const outRelease = path.join(stage, 'Release');
  mkdirSync(outRelease);
  // the addon and every library beside it; a versioned library goes in under the name its users ask for
  // (libggml.so.0: the SONAME), as one file, since npm tarballs carry no symbolic links
  const files = [];
  for (const e of readdirSync(release, { withFileTypes: true })) {
    const isLib = /\.so(\.\d+)*$/.test(e.name) || e.name === 'llava_rad.node';
    if (!isLib) continue;
    if (e.isSymbolicLink() && !/\.so\.\d+$/.test(e.name)) continue; // libggml.so -> libggml.so.0: for linkers only
    if (!e.isSymbolicLink() && /\.so\.\d+\.\d+/.test(e.name)) continue; // libggml.so.0.23.0: shipped as libggml.so.0
    const dest = path.join(outRelease, e.name);
    copyFileSync(realpathSync(path.join(release, e.name)), dest);
    files.push(dest);
  }
  const cli = path.join(stage, 'llava-rad-cli');
  copyFileSync(path.join(buildDir, 'llava-rad-cli'), cli);
  files.push(cli);
  const runtime = bundleCompilerRuntime(files, outRelease, cmakeCache(buildDir));
  checkLinkage([...files, ...runtime.copied], outRelease, p.cuda !== undefined);
  const strip = stripTool(p.cpu);
  if (strip) for (const f of files) run(strip, ['--strip-unneeded', f]);
  else console.log(`package: no strip(1) for ${p.cpu}: ${name}'s binaries go in unstripped`);
  // ggml / llama.cpp's license travels with the compiled ggml
  const ggmlLicense = path.join(buildDir, 'llama.cpp', 'LICENSE');
  if (!existsSync(ggmlLicense)) die(`${ggmlLicense} is missing (the llama.cpp source the build cloned)`);
  writeFileSync(path.join(stage, 'THIRD_PARTY_NOTICES'),
    'The libraries in Release/ named libggml* are ggml, compiled from the llama.cpp source in node-llama-cpp ' +
    `${pkg.devDependencies['node-llama-cpp']}; its license:\n\n${readFileSync(ggmlLicense, 'utf8')}${runtime.notice}`);
  copyFileSync(path.join(root, 'LICENSE'), path.join(stage, 'LICENSE'));
  const manifest = {
    name: `llava-rad-${name}`,
    description: `Prebuilt native engine of llava-rad for ${p.os} ${p.cpu} (${p.what})`,
    ...COMMON,
    os: [p.os],
    cpu: [p.cpu],
    libc: ['glibc'],
    files: ['Release', 'llava-rad-cli', 'THIRD_PARTY_NOTICES'],
    engines: pkg.engines,
  };
  writeFileSync(path.join(stage, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  writeFileSync(path.join(stage, 'README.md'), `# llava-rad-${name}\n\nThe prebuilt native engine of [llava-rad](https://www.npmjs.com/package/llava-rad) ` +
    `for ${p.os} ${p.cpu} with glibc (${p.what}). Install \`llava-rad\`, not this package; npm picks this one for the machine.\n`);
  return npmPack(stage);
}

// ---- builds made here for other targets -------------------------------------------------------------------

function buildNative(buildDir, env, extraArgs = []) {
  run(process.execPath, [path.join(root, 'scripts', 'build-native.mjs'), '--force', ...extraArgs],
    { env: { ...process.env, LLAVA_RAD_BUILD_DIR: buildDir, LLAVA_RAD_NATIVE: '0', ...env } });
}

// Clang 16 or later (the first to accept ggml's armv9.2-a+sme flags), as [clang, clang++, major], or undefined
const CLANG_MIN = 16;
function findClang() {
  const names = [...Array.from({ length: 10 }, (_, i) => `-${CLANG_MIN + 9 - i}`), ''];
  for (const suffix of names) {
    const r = spawnSync(`clang${suffix}`, ['--version'], { encoding: 'utf8' });
    const major = Number(/clang version (\d+)/.exec(r.stdout ?? '')?.[1]);
    if (r.status === 0 && major >= CLANG_MIN && spawnSync(`clang++${suffix}`, ['--version'], { stdio: 'ignore' }).status === 0) {
      return [`clang${suffix}`, `clang++${suffix}`, major];
    }
  }
  return undefined;
}

function buildArm64() {
  // the GCC cross toolchain is needed either way: its libstdc++, libgcc and glibc for aarch64 are what Clang links
  for (const t of ['aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-g++']) {
    if (spawnSync(t, ['--version'], { stdio: 'ignore' }).status !== 0) die(`--arm64 needs ${t} (Debian: apt install g++-aarch64-linux-gnu)`);
  }
  const choice = opt['arm64-compiler'];
  if (!['auto', 'clang', 'gcc'].includes(choice)) die(`--arm64-compiler must be auto, clang or gcc, got ${JSON.stringify(choice)}`);
  const clang = choice === 'gcc' ? undefined : findClang();
  if (choice === 'clang' && !clang) die(`--arm64-compiler clang needs Clang ${CLANG_MIN} or later (Debian 12: apt install clang-16)`);
  const compilers = clang
    ? [`-DCMAKE_C_COMPILER=${clang[0]}`, `-DCMAKE_CXX_COMPILER=${clang[1]}`,
        '-DCMAKE_C_COMPILER_TARGET=aarch64-linux-gnu', '-DCMAKE_CXX_COMPILER_TARGET=aarch64-linux-gnu']
    : ['-DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc', '-DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++'];
  console.error(clang
    ? `package: arm64 cross build with ${clang[0]} (Clang ${clang[2]}): every arm64 CPU module`
    : 'package: arm64 cross build with aarch64-linux-gnu-gcc: one baseline arm64 module (Clang 16 or later builds them all)');
  buildNative(PLATFORMS['linux-arm64'].buildDir, {
    LLAVA_RAD_CMAKE_ARGS: ['-DCMAKE_SYSTEM_NAME=Linux', '-DCMAKE_SYSTEM_PROCESSOR=aarch64', ...compilers].join(' '),
  });
  // smoke test: the C++ CLI reports its build under qemu-aarch64, with the modules the compiler was to build
  const dir = path.join(root, PLATFORMS['linux-arm64'].buildDir);
  if (spawnSync('qemu-aarch64', ['--version'], { stdio: 'ignore' }).status !== 0) die('--arm64 smoke test needs qemu-aarch64 (Debian: apt install qemu-user)');
  run('qemu-aarch64', ['-L', '/usr/aarch64-linux-gnu', path.join(dir, 'llava-rad-cli'), 'info']);
  const modules = readdirSync(path.join(dir, 'Release')).filter((f) => /^libggml-cpu-.*\.so$/.test(f));
  if (clang && modules.length < 2) die(`the Clang build made ${modules.length} CPU module(s), not ggml's arm64 set: ${modules.join(', ')}`);
}

/** Builds the CUDA package's engine; returns its platform name (linux-x64-cudaN). */
function buildCuda() {
  const buildDir = opt['cuda-build-dir'];
  const shim = path.join(root, `${buildDir}-shim`);
  const found = spawnSync('bash', [path.join(root, 'scripts', 'find-cuda.sh'), shim], { cwd: root, encoding: 'utf8' });
  process.stderr.write(found.stderr ?? '');
  if (found.status !== 0) die('--cuda needs the CUDA toolkit (nvcc) and cuBLAS; scripts/find-cuda.sh found no complete set (above)');
  const defs = [];
  const libdirs = [];
  let version = '';
  for (const line of found.stdout.split('\n')) {
    const [kind, value] = [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)];
    if (kind === 'cmake') defs.push(value);
    else if (kind === 'libdir' && !libdirs.includes(value)) libdirs.push(value);
    else if (kind === 'version') version = value;
  }
  const major = Number.parseInt(version, 10);
  if (!(major >= 12)) die(`the CUDA toolkit is ${version || 'of unknown version'}; the CUDA package needs CUDA 12 or later`);
  if (opt['cuda-archs']) defs.push(`-DCMAKE_CUDA_ARCHITECTURES=${opt['cuda-archs']}`);
  const name = `linux-x64-cuda${major}`;
  PLATFORMS[name] = cudaPlatform(major);
  buildNative(buildDir, { LLAVA_RAD_CUDA: '1', LLAVA_RAD_CMAKE_ARGS: defs.join(' ') });
  // smoke test: the module loads with the toolkit's libraries and says how many devices it sees
  const env = { ...process.env, LD_LIBRARY_PATH: [...libdirs, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
  const info = spawnSync(path.join(root, buildDir, 'llava-rad-cli'), ['info'], { cwd: root, env, encoding: 'utf8' });
  const line = (info.stdout ?? '').split('\n').find((l) => l.includes('CUDA'));
  if (info.status !== 0 || !line || /could not be loaded|could not start/.test(line)) {
    die(`the CUDA build's llava-rad-cli info failed or its CUDA module did not load:\n${info.stdout}${info.stderr}`);
  }
  console.log(`package: CUDA ${version} build: ${line.trim()}`);
  return name;
}

// ---- main -------------------------------------------------------------------------------------------------

mkdirSync(outDir, { recursive: true });
const made = [];
if (!opt['no-main']) made.push(mainPackage());
const host = `${process.platform}-${os.arch()}`;
if (!opt['no-x64'] && !opt['no-host']) {
  // the platform package of this machine, from build/
  if (!PLATFORMS[host]) die(`no platform package is defined for ${host} (--no-host to skip)`);
  made.push(platformPackage(host));
}
if (opt.arm64 && host !== 'linux-arm64') {
  buildArm64();
  made.push(platformPackage('linux-arm64'));
}
if (opt.cuda) made.push(platformPackage(buildCuda()));
rmSync(stageRoot, { recursive: true, force: true });
console.log(`package: ${made.length} tarball(s) in ${outDir}`);
