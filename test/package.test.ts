// The published packages, as a user gets them: `scripts/package.mjs` (what `npm run package` runs after building
// dist/) packs llava-rad and this machine's platform package from build/; a fresh app installs both offline with
// a PATH holding node, npm, npx and sh only (no cc, c++, cmake, make or git), and `npx llava-rad` runs the tiny
// models there. The app's findings must equal this checkout's for the same inputs (greedy, same CPU module), its
// node_modules must stay under 150 MB, and its install must build nothing. The install time and size are printed.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREBUILT_SYSTEM } from '../lib/native.js';
import { envWithoutNpm, writeFreshApp } from './helpers/fresh-app.js';
import { tinyLlamaPath } from './helpers/tiny-llama.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
const hostPackage = `llava-rad-${process.platform}-${os.arch()}`;
const VISION = path.join(here, 'fixtures', 'vision', 'tiny-vision-f32.gguf');
const IMAGE = path.join(here, 'fixtures', 'findings', 'radiograph-grey-900x1100.png');
const SIZE_LIMIT_MB = 150;

const tmp = mkdtempSync(path.join(tmpdir(), 'llava-rad-package-'));
const pkgDir = path.join(tmp, 'pkg');
const app = path.join(tmp, 'app');
const bin = path.join(tmp, 'bin');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** a PATH of one folder holding node, npm, npx and sh, and nothing else */
function bareToolPath(): string {
  mkdirSync(bin, { recursive: true });
  const which = (t: string): string => {
    const r = spawnSync('sh', ['-c', `command -v ${t}`], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${t} is not on PATH`);
    return r.stdout.trim();
  };
  symlinkSync(process.execPath, path.join(bin, 'node'));
  for (const t of ['npm', 'npx', 'sh']) symlinkSync(which(t), path.join(bin, t));
  return bin;
}

function sh(cmd: string, args: string[], options: SpawnSyncOptions & { env?: NodeJS.ProcessEnv } = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, ...options }) as ReturnType<typeof spawnSync> & { stdout: string; stderr: string };
}

function tarList(tgz: string): string[] {
  const r = sh('tar', ['-tzf', tgz]);
  if (r.status !== 0) throw new Error(`tar -tzf ${tgz}: ${r.stderr}`);
  return r.stdout.trim().split('\n').map((f) => f.replace(/^package\//, ''));
}

function tarManifest(tgz: string): Record<string, any> {
  const r = sh('tar', ['-xzOf', tgz, 'package/package.json']);
  if (r.status !== 0) throw new Error(`package.json of ${tgz}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, any>;
}

function duBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += duBytes(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

/** <0, 0, >0 as version a is older than, equal to or newer than b (missing parts are 0) */
function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function lastJson(stdout: string): Record<string, any> {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as Record<string, any>;
}

let mainTgz = '';
let hostTgz = '';
let appEnv: NodeJS.ProcessEnv = {};
let install = { seconds: 0, code: -1 as number | null, stderr: '' };

describe(`npm run package, then an offline install with no compiler on PATH (${hostPackage})`, () => {
  beforeAll(() => {
    const r = sh(process.execPath, [path.join(root, 'scripts', 'package.mjs'), '--out', pkgDir], { cwd: root });
    if (r.status !== 0) throw new Error(`scripts/package.mjs failed:\n${r.stdout}\n${r.stderr}`);
    mainTgz = path.join(pkgDir, `llava-rad-${version}.tgz`);
    hostTgz = path.join(pkgDir, `${hostPackage}-${version}.tgz`);

    mkdirSync(app);
    copyFileSync(IMAGE, path.join(app, 'study.png'));
    writeFreshApp({
      app, repoRoot: root, mainTgz, main: tarManifest(mainTgz) as never,
      platform: { [hostPackage]: { tgz: hostTgz, manifest: tarManifest(hostTgz) as never } },
    });
    appEnv = envWithoutNpm({ PATH: bareToolPath() });
    const t0 = process.hrtime.bigint();
    const i = sh('npm', ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: app, env: appEnv, timeout: 600_000 });
    install = { seconds: Number(process.hrtime.bigint() - t0) / 1e9, code: i.status, stderr: `${i.stdout}\n${i.stderr}` };
  }, 900_000);

  it('packs llava-rad with dist/, the engine sources and exact optional platform packages; no node-llama-cpp, no install script', () => {
    const files = tarList(mainTgz);
    for (const f of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/cli.js', 'native/include/llava_rad.h',
      'native/src/decoder_graph.cpp', 'CMakeLists.txt', 'scripts/build-native.mjs', 'README.md', 'LICENSE']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => /^(build|test|bench|lib|node_modules)\//.test(f)), 'no build outputs, tests or TS sources').toEqual([]);
    const m = tarManifest(mainTgz);
    expect(m.dependencies['node-llama-cpp'], 'node-llama-cpp is not a dependency of the published package').toBeUndefined();
    expect(m.devDependencies).toBeUndefined();
    expect(m.optionalDependencies).toEqual({ 'llava-rad-linux-x64': version, 'llava-rad-linux-arm64': version });
    expect(m.scripts.install, 'no install script: nothing compiles on install').toBeUndefined();
    expect(m.scripts.build).toMatch(/build-native\.mjs/);
    expect(m.llavaRad.nodeLlamaCpp).toMatch(/^\d+\.\d+\.\d+$/);
    for (const k of ['description', 'keywords', 'license', 'engines', 'files', 'bin', 'exports']) expect(m[k], k).toBeDefined();
  });

  it(`packs ${hostPackage}: the addon, ggml, its CPU modules, the C++ CLI and ggml's license; os, cpu and libc set`, () => {
    const files = tarList(hostTgz);
    for (const f of ['Release/llava_rad.node', 'Release/libggml.so.0', 'Release/libggml-base.so.0', 'llava-rad-cli', 'THIRD_PARTY_NOTICES', 'LICENSE']) {
      expect(files, f).toContain(f);
    }
    const modules = files.filter((f) => /^Release\/libggml-cpu-.+\.so$/.test(f));
    expect(modules.length, `CPU modules: ${modules.join(', ')}`).toBeGreaterThanOrEqual(os.arch() === 'x64' ? 10 : 1);
    const m = tarManifest(hostTgz);
    expect(m).toMatchObject({ name: hostPackage, version, os: [process.platform], cpu: [os.arch()], libc: ['glibc'] });
  });

  it(`installs offline in a fresh app with no compiler on PATH, under ${SIZE_LIMIT_MB} MB, building nothing`, () => {
    const probe = sh('sh', ['-c', 'for t in cc c++ gcc g++ clang cmake make ninja git; do command -v $t; done; true'], { env: appEnv });
    expect(probe.stdout.trim(), 'compilers or build tools on the install PATH').toBe('');
    expect(install.code, install.stderr).toBe(0);
    const sizeMB = duBytes(path.join(app, 'node_modules')) / 2 ** 20;
    console.log(`fresh app: npm ci --offline took ${install.seconds.toFixed(1)} s; node_modules ${sizeMB.toFixed(1)} MB`);
    expect(sizeMB).toBeLessThan(SIZE_LIMIT_MB);
    expect(existsSync(path.join(app, 'node_modules', 'node-llama-cpp')), 'node-llama-cpp installed').toBe(false);
    expect(readdirSync(path.join(app, 'node_modules')).filter((d) => d.startsWith('@node-llama-cpp'))).toEqual([]);
    expect(existsSync(path.join(app, 'node_modules', 'llava-rad', 'build')), 'a source build ran').toBe(false);
    expect(existsSync(path.join(app, 'node_modules', hostPackage, 'Release', 'llava_rad.node'))).toBe(true);
  });

  it(`ships ${hostPackage}'s binaries self-contained: run paths $ORIGIN only, every needed library shipped or a glibc system one`, () => {
    const release = path.join(app, 'node_modules', hostPackage, 'Release');
    const shipped = readdirSync(release);
    expect(shipped, 'ggml\'s OpenMP runtime ships beside it').toContain('libgomp.so.1');
    const system = /^(libc\.so\.6|libm\.so\.6|libdl\.so\.2|libpthread\.so\.0|librt\.so\.1|libstdc\+\+\.so\.6|libgcc_s\.so\.1|ld-linux-[\w.-]+\.so\.\d)$/;
    const binaries = [...shipped.map((f) => path.join(release, f)), path.join(release, '..', 'llava-rad-cli')];
    for (const f of binaries) {
      const r = sh('readelf', ['-d', f]);
      expect(r.status, `readelf -d ${f} (binutils is needed to check the package): ${r.stderr}`).toBe(0);
      const runPath = /\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]/.exec(r.stdout)?.[1];
      // an empty entry ("$ORIGIN:") would make the dynamic linker search the working directory
      for (const entry of runPath?.split(':') ?? []) expect(entry, `${path.basename(f)} run path ${runPath}`).toMatch(/^\$ORIGIN(\/|$)/);
      const needed = [...r.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[(.+?)\]/g)].map((m) => m[1]!);
      expect(needed.length, `${path.basename(f)} needs something`).toBeGreaterThan(0);
      for (const n of needed) expect(shipped.includes(n) || system.test(n), `${path.basename(f)} needs ${n}`).toBe(true);
    }
    // the dynamic linker takes libgomp from the package, not from the system, and nothing from the working directory
    const cwd = mkdtempSync(path.join(tmp, 'cwd-'));
    const d = sh(path.join(release, '..', 'llava-rad-cli'), ['info'], { cwd, env: { ...appEnv, LD_DEBUG: 'libs' } });
    expect(d.status, d.stderr).toBe(0);
    const inits = [...d.stderr.matchAll(/calling init: (\S+)/g)].map((m) => m[1]!);
    expect(inits.filter((f) => f.includes('libgomp')), 'libgomp loaded').toEqual([path.join(release, 'libgomp.so.1')]);
    expect(d.stderr).not.toContain(`trying file=${cwd}`);
  });

  it(`${hostPackage} needs no newer glibc or libstdc++ than the loader's hint states (${PREBUILT_SYSTEM})`, () => {
    // the newest symbol versions the binaries ask for; PREBUILT_SYSTEM names glibc 2.34 and GCC 11 (GLIBCXX_3.4.29)
    expect(PREBUILT_SYSTEM).toMatch(/glibc 2\.34 .*GCC 11/);
    const limit: Record<string, number[]> = { GLIBC: [2, 34], GLIBCXX: [3, 4, 29], CXXABI: [1, 3, 13] };
    const release = path.join(app, 'node_modules', hostPackage, 'Release');
    const binaries = readdirSync(release).map((f) => path.join(release, f)); // libgomp.so.1 included
    let seen = 0;
    for (const f of [...binaries, path.join(release, '..', 'llava-rad-cli')]) {
      const r = sh('objdump', ['-T', f]);
      expect(r.status, `objdump -T ${f} (binutils is needed to check the package): ${r.stderr}`).toBe(0);
      for (const m of r.stdout.matchAll(/\b(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)+)\b/g)) {
        const v = m[2]!.split('.').map(Number);
        const max = limit[m[1]!]!;
        expect(compareVersions(v, max), `${path.basename(f)} needs ${m[0]}`).toBeLessThanOrEqual(0);
        seen++;
      }
    }
    expect(seen, 'versioned symbols read').toBeGreaterThan(100);
  });

  it('npx llava-rad info loads the addon from the platform package', () => {
    const r = sh('npx', ['--offline', 'llava-rad', 'info'], { cwd: app, env: appEnv });
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.binary).toEqual({ file: path.join(app, 'node_modules', hostPackage, 'Release', 'llava_rad.node'), source: `the platform package ${hostPackage}` });
    expect(j.cpu.variant).toBeTypeOf('string');
  });

  it('npx llava-rad generate and findings run the tiny models; the findings equal this checkout\'s, token for token', async () => {
    const decoder = await tinyLlamaPath('f32');
    const g = sh('npx', ['--offline', 'llava-rad', 'generate', '--model', decoder, '--prompt', 'No acute cardiopulmonary process.', '--max-tokens', '6', '--json'], { cwd: app, env: appEnv });
    expect(g.status, g.stderr).toBe(0);
    expect(lastJson(g.stdout).tokens).toHaveLength(6);

    const args = ['findings', 'study.png', '--model', decoder, '--mmproj', VISION, '--reason', 'Cough.', '--max-tokens', '8', '--json', '--threads', '2'];
    const fromApp = sh('npx', ['--offline', 'llava-rad', ...args], { cwd: app, env: appEnv });
    expect(fromApp.status, fromApp.stderr).toBe(0);
    const here_ = sh(process.execPath, [path.join(root, 'dist', 'cli.js'), ...args], { cwd: app });
    expect(here_.status, here_.stderr).toBe(0);
    const a = lastJson(fromApp.stdout), b = lastJson(here_.stdout);
    expect(a.tokens.length, 'tokens compared').toBe(8);
    expect(a.tokens).toEqual(b.tokens);
    expect(a.findings).toBe(b.findings);
  });

  it('the library imports in the app as ESM and CommonJS, and generateFindings runs', async () => {
    const decoder = await tinyLlamaPath('f32');
    writeFileSync(path.join(app, 'esm.mjs'), `import { loadLlavaRad } from 'llava-rad';
import { readFileSync } from 'node:fs';
const rad = await loadLlavaRad({ decoder: process.argv[2], vision: process.argv[3], threads: 2 });
const r = await rad.generateFindings(readFileSync('study.png'), 'Cough.', { maxTokens: 5 });
await rad.dispose();
console.log(JSON.stringify({ tokens: r.tokens.length, stop: r.stopReason }));
`);
    writeFileSync(path.join(app, 'cjs.cjs'), `const lr = require('llava-rad');
console.log(JSON.stringify({ load: typeof lr.loadLlavaRad, error: typeof lr.LlavaRadError, build: lr.buildInfo().startsWith('llava-rad engine') }));
`);
    const e = sh('node', ['esm.mjs', decoder, VISION], { cwd: app, env: appEnv });
    expect(e.status, e.stderr).toBe(0);
    expect(lastJson(e.stdout)).toEqual({ tokens: 5, stop: 'max_tokens' });
    const c = sh('node', ['cjs.cjs'], { cwd: app, env: appEnv });
    expect(c.status, c.stderr).toBe(0);
    expect(lastJson(c.stdout)).toEqual({ load: 'function', error: 'function', build: true });
  });

  it('without the platform package, NATIVE_LOAD lists each place tried and how to build from source', () => {
    const moved = path.join(tmp, 'moved');
    const from = path.join(app, 'node_modules', hostPackage);
    spawnSync('mv', [from, moved]);
    try {
      const r = sh('npx', ['--offline', 'llava-rad', 'info'], { cwd: app, env: appEnv });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/error \[NATIVE_LOAD\]: no native addon could be loaded/);
      expect(r.stderr).toContain(`the platform package ${hostPackage}: not installed`);
      expect(r.stderr).toMatch(/a source build: .*llava-rad\/build\/Release\/llava_rad\.node does not exist/);
      expect(r.stderr).toContain('npm explore llava-rad -- npm run build');
      // LLAVA_RAD_BINARY names a folder: the moved package is found there
      const b = sh('npx', ['--offline', 'llava-rad', 'info'], { cwd: app, env: { ...appEnv, LLAVA_RAD_BINARY: moved } });
      expect(b.status, b.stderr).toBe(0);
      expect(lastJson(b.stdout).binary).toEqual({ file: path.join(moved, 'Release', 'llava_rad.node'), source: 'LLAVA_RAD_BINARY' });
    } finally {
      spawnSync('mv', [moved, from]);
    }
  });
});
