// A fresh npm app that depends on the packed llava-rad tarballs, installed the way a user's app is, offline.
//
// A user's `npm install llava-rad` resolves llava-rad's dependencies from the registry. Tests never touch the
// network, so the app gets a package-lock.json instead: llava-rad and its platform package point at the local
// tarballs, and every other package is the entry this repository's own lockfile holds for it (same version,
// same registry URL, same integrity), all that is not a devDependency here. `npm ci --offline` then takes each
// of those from npm's cache, where this repository's `npm ci` put them.

import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  dev?: boolean;
  link?: boolean;
  optional?: boolean;
  [key: string]: unknown;
}

interface PackedManifest {
  name: string;
  version: string;
  license?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  bin?: Record<string, string>;
  engines?: Record<string, string>;
  os?: string[];
  cpu?: string[];
  libc?: string[];
}

function integrity(file: string): string {
  return `sha512-${createHash('sha512').update(readFileSync(file)).digest('base64')}`;
}

/** the registry's tarball URL of the package a lock key (node_modules/.../NAME) names */
function registryTarball(key: string, version: string): string {
  const name = key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
  return `https://registry.npmjs.org/${name}/-/${name.split('/').pop()}-${version}.tgz`;
}

/**
 * Writes package.json and package-lock.json into `app` for an app depending on `mainTgz`.
 * `platform` maps each platform package llava-rad lists to its tarball here, or to undefined when none was
 * built (then it stands in the lock under its registry URL and npm skips it as an optional dependency of
 * another os / cpu; one of this machine's kind must be given).
 */
export function writeFreshApp(options: {
  app: string;
  repoRoot: string;
  mainTgz: string;
  main: PackedManifest;
  platform: Record<string, { tgz: string; manifest: PackedManifest } | undefined>;
}): void {
  const { app, repoRoot, mainTgz, main } = options;
  const repoLock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const mainSpec = `file:${mainTgz}`;
  const packages: Record<string, LockEntry> = {
    '': { name: 'fresh-app', version: '1.0.0', dependencies: { 'llava-rad': mainSpec } },
    'node_modules/llava-rad': {
      version: main.version,
      resolved: mainSpec,
      integrity: integrity(mainTgz),
      license: main.license,
      dependencies: main.dependencies,
      optionalDependencies: main.optionalDependencies,
      bin: main.bin,
      engines: main.engines,
    },
  };
  for (const [name, version] of Object.entries(main.optionalDependencies ?? {})) {
    const built = options.platform[name];
    const m = built?.manifest;
    packages[`node_modules/${name}`] = {
      version,
      resolved: built ? `file:${built.tgz}` : `https://registry.npmjs.org/${name}/-/${name}-${version}.tgz`,
      ...(built ? { integrity: integrity(built.tgz) } : {}),
      license: m?.license ?? main.license,
      optional: true,
      os: m?.os ?? ['linux'],
      cpu: m?.cpu ?? [name.split('-')[3] ?? 'x64'],
      libc: m?.libc ?? ['glibc'],
    };
  }
  for (const [key, entry] of Object.entries(repoLock.packages)) {
    if (key === '' || entry.dev || entry.link || packages[key]) continue;
    // this npm writes locks without download addresses; given one, an offline install reads the tarball from the
    // cache by its URL and never needs the package's registry document (which the cache may hold in another form)
    packages[key] = entry.resolved || entry.version === undefined ? entry : { ...entry, resolved: registryTarball(key, entry.version) };
  }
  writeFileSync(path.join(app, 'package.json'),
    JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true, type: 'module', dependencies: { 'llava-rad': mainSpec } }, null, 2) + '\n');
  writeFileSync(path.join(app, 'package-lock.json'),
    JSON.stringify({ name: 'fresh-app', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2) + '\n');
}

/** This process's environment without npm's npm_* variables (a nested npm must not think it runs our scripts). */
export function envWithoutNpm(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  if (process.env.npm_config_cache) env.npm_config_cache = process.env.npm_config_cache;
  return { ...env, ...extra };
}
