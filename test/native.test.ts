// Runs the C++ tests (build/llava-rad-tests, built by `npm install` from native/tests/) so that
// `npm test` covers them too.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const exe = path.join(root, process.env.LLAVA_RAD_BUILD_DIR ?? 'build', 'llava-rad-tests');

it('the C++ tests pass', () => {
  expect(existsSync(exe), `${exe} was not built`).toBe(true);
  const r = spawnSync(exe, [], { encoding: 'utf8', timeout: 120_000 });
  const summary = /(\d+) passed, (\d+) failed/.exec(r.stdout ?? '');
  expect(summary, `no summary in:\n${r.stdout}\n${r.stderr}`).not.toBeNull();
  expect(Number(summary![1])).toBeGreaterThan(10);
  expect(Number(summary![2]), r.stdout).toBe(0);
  expect(r.status, r.stdout).toBe(0);
});
