#!/usr/bin/env bash
# bench/device/prepare.sh: run HERE (a machine with git, Node's node_modules and a CPU build), before a
# GPU-machine call of bench/device/cuda.sh. Writes into build-device/ (git-ignored by build-*/):
#
#   build-device/llama-src.tar.gz  the llama.cpp tree of node-llama-cpp's bundle (the very commit the engine
#                                  is built from), without the ggml backends and tools a CUDA build never
#                                  compiles: ~6 MB instead of the 35 MB bundle, and no git needed there
#   build-device/vocab.gguf        a 1.8 MB decoder GGUF with the real LLaMA-2 tokenizer (the vocabulary
#                                  template for llava-rad-make-model --vocab-from), instead of a 10.7 MB fixture
#   build-device/chexbert-tiny-f32.gguf, bert-ids.txt   the tiny CheXbert of the tests (4.5 MB) and its 20 golden
#                                  sequences, one a line, for cuda.sh's BERT check (llava-rad-cli bert)
#
# A CUDA build made here cannot travel instead: its libggml-cuda.so alone is 38 MB compressed (sm_90), and the
# working tree (23 MB) plus what is carried must stay under the device tool's 64 MiB.
#
# Then call the device tool with   carry: ["build-device"]   and   command: bash bench/device/cuda.sh
# (cuda.sh also works with the bundle and the fixture carried instead, if git is installed there).
#
#   bash bench/device/prepare.sh [--build-dir build-core]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=build-core
while [ $# -gt 0 ]; do
    case $1 in
        --build-dir) BUILD=$2; shift 2 ;;
        *) echo "prepare: unknown argument '$1' (--build-dir DIR)" >&2; exit 2 ;;
    esac
done
BUNDLE=node_modules/node-llama-cpp/llama/gitRelease.bundle
OUTDIR=build-device
mkdir -p "$OUTDIR"

# ---- the llama.cpp source ----
[ -f "$BUNDLE" ] || { echo "prepare: $BUNDLE not found (npm install first)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
git -c advice.detachedHead=false clone --quiet "$BUNDLE" "$TMP/llama.cpp"
EXCLUDES=()
for b in vulkan sycl metal opencl cann hexagon webgpu zdnn zendnn musa hip openvino virtgpu et blas rpc; do
    EXCLUDES+=(":(exclude)ggml/src/ggml-$b")
done
# the web UI and server are only added with LLAMA_BUILD_SERVER (off)
EXCLUDES+=(":(exclude)tools/ui" ":(exclude)tools/server")
# models/ggml-vocab-llama-spm.gguf*: the C++ tests check the tokenizer against it (<build>/llama.cpp/models)
git -C "$TMP/llama.cpp" archive --format=tar HEAD CMakeLists.txt LICENSE cmake ggml src include common tools vendor licenses \
    models/ggml-vocab-llama-spm.gguf models/ggml-vocab-llama-spm.gguf.inp models/ggml-vocab-llama-spm.gguf.out \
    "${EXCLUDES[@]}" | gzip -9 > "$OUTDIR/llama-src.tar.gz.tmp"
mv "$OUTDIR/llama-src.tar.gz.tmp" "$OUTDIR/llama-src.tar.gz"
git -C "$TMP/llama.cpp" rev-parse HEAD > "$OUTDIR/llama-src.commit"
echo "prepare: $OUTDIR/llama-src.tar.gz ($(du -h "$OUTDIR/llama-src.tar.gz" | cut -f1), llama.cpp $(cut -c1-12 "$OUTDIR/llama-src.commit"))"

# ---- the vocabulary template ----
TEMPLATE=""
for f in test/.fixtures/tiny-llama-base-q4_0-*.gguf test/.fixtures/tiny-llama-base-*.gguf; do
    [ -z "$TEMPLATE" ] && [ -f "$f" ] && TEMPLATE=$f
done
if [ -z "$TEMPLATE" ]; then
    node scripts/make-tiny-llama.mjs --type q4_0 >/dev/null
    TEMPLATE=$(ls test/.fixtures/tiny-llama-base-q4_0-*.gguf | head -1)
fi
MAKE_MODEL="$BUILD/llava-rad-make-model"
[ -x "$MAKE_MODEL" ] || cmake --build "$BUILD" --target llava-rad-make-model
"$MAKE_MODEL" decoder --vocab-from "$TEMPLATE" --out "$OUTDIR/vocab.gguf" --type q4_0 \
    --n-embd 32 --n-ff 32 --n-layer 1 --n-head 1 --n-ctx 4096 2>/dev/null
echo "prepare: $OUTDIR/vocab.gguf ($(du -h "$OUTDIR/vocab.gguf" | cut -f1), tokenizer of $TEMPLATE)"

# ---- a tiny CheXbert and its golden sequences, for the BERT check (llava-rad-cli bert) ----
node --import ./scripts/ts-hooks.mjs --input-type=module -e "
import { readFileSync, writeFileSync } from 'node:fs';
import { convertChexbert } from './lib/convert/chexbert.js';
import { WordPieceVocab } from './lib/bert/wordpiece.js';
import { bertBaseUncasedVocabText } from './test/fixtures/wordpiece/vocab.js';
const golden = JSON.parse(readFileSync('test/fixtures/chexbert/goldens.json', 'utf8'));
await convertChexbert('test/fixtures/chexbert/chexbert-tiny.pth', WordPieceVocab.fromText(bertBaseUncasedVocabText()),
  '$OUTDIR/chexbert-tiny-f32.gguf', { type: 'f32', headCount: golden.hparams.heads });
writeFileSync('$OUTDIR/bert-ids.txt', golden.cases.map((c) => c.ids.join(' ')).join('\\n') + '\\n');
"
echo "prepare: $OUTDIR/chexbert-tiny-f32.gguf ($(du -h "$OUTDIR/chexbert-tiny-f32.gguf" | cut -f1)), $OUTDIR/bert-ids.txt ($(wc -l < "$OUTDIR/bert-ids.txt") sequences)"

# what travels to the GPU machine: the working tree (tracked and untracked, not ignored) plus build-device/
TREE=$( { git ls-files -co --exclude-standard -z; find "$OUTDIR" -type f -print0; } | xargs -0 du -cb 2>/dev/null | awk '$2 == "total" { s += $1 } END { print s }')
echo "prepare: carry [\"build-device\"]; the working tree and build-device/ together: $((TREE / 1048576)) MiB (the device tool takes at most 64)"
[ "$TREE" -le $((64 * 1048576)) ] || { echo "prepare: that is over the device tool's 64 MiB" >&2; exit 1; }
