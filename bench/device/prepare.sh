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
#   build-device/cuda-prebuilt.tar.xz, .sources   with --cuda: build-cuda's programs and libraries (stripped)
#                                  for sm_90 (CUDA_ARCH), built HERE with nvcc and cuBLAS (scripts/find-cuda.sh),
#                                  stamped with bench/device/sources-hash.sh; cuda.sh uses them when the stamp
#                                  matches and they find a GPU there, and builds from source otherwise (saves the
#                                  3-5 min build of the GPU machine's budget). The build here has no driver
#                                  library to link, so it uses ggml's legacy CUDA memory pool (GGML_CUDA_NO_VMM).
#
# Then call the device tool with   carry: ["build-device"]   and   command: bash bench/device/cuda.sh
# (cuda.sh also works with the bundle and the fixture carried instead, if git is installed there).
#
#   bash bench/device/prepare.sh [--build-dir build-core] [--cuda]
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=build-core
CUDA=0
while [ $# -gt 0 ]; do
    case $1 in
        --build-dir) BUILD=$2; shift 2 ;;
        --cuda) CUDA=1; shift ;;
        *) echo "prepare: unknown argument '$1' (--build-dir DIR, --cuda)" >&2; exit 2 ;;
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

# ---- the CUDA build, made here ----
if [ $CUDA = 1 ]; then
    ARCH=${CUDA_ARCH:-90}
    if [ ! -f build-cuda/CMakeCache.txt ]; then
        CUDA_ARCH=$ARCH OUT="$TMP/configure" bash bench/device/cuda.sh --configure-only
    fi
    grep -q "^CMAKE_CUDA_ARCHITECTURES:.*=$ARCH\$" build-cuda/CMakeCache.txt || {
        echo "prepare: build-cuda is not configured for CUDA_ARCH=$ARCH (rm -rf build-cuda and rerun)" >&2; exit 1; }
    LIBDIRS=$(bash scripts/find-cuda.sh build-cuda-work/cuda-shim 2>/dev/null | sed -n 's/^libdir //p' | paste -sd: -)
    cmake --build build-cuda --target llava-rad-cli llava-rad-tests llava-rad-make-model llama-bench -j "${JOBS:-$(nproc)}"
    STAGE="$TMP/cuda-prebuilt"
    mkdir -p "$STAGE/bin"
    cp -a build-cuda/llava-rad-cli build-cuda/llava-rad-tests build-cuda/llava-rad-make-model "$STAGE/"
    cp -a build-cuda/bin/llama-bench build-cuda/bin/lib*.so* "$STAGE/bin/"
    find "$STAGE" -type f -exec strip --strip-unneeded {} \;
    # it must load its CUDA module here (with the libraries find-cuda.sh found), else it is no use there
    LD_LIBRARY_PATH="$LIBDIRS" "$STAGE/llava-rad-cli" info | grep -q 'CUDA (\(no device\|[0-9]* device\)' || {
        echo "prepare: the CUDA build's CLI did not load its CUDA module:" >&2; LD_LIBRARY_PATH="$LIBDIRS" "$STAGE/llava-rad-cli" info >&2; exit 1; }
    tar -C "$STAGE" -cJf "$OUTDIR/cuda-prebuilt.tar.xz.tmp" .
    mv "$OUTDIR/cuda-prebuilt.tar.xz.tmp" "$OUTDIR/cuda-prebuilt.tar.xz"
    bash bench/device/sources-hash.sh "$ARCH" > "$OUTDIR/cuda-prebuilt.sources"
    echo "prepare: $OUTDIR/cuda-prebuilt.tar.xz ($(du -h "$OUTDIR/cuda-prebuilt.tar.xz" | cut -f1), sm_$ARCH, sources $(cut -c1-12 "$OUTDIR/cuda-prebuilt.sources"))"
fi
echo "prepare: carry [\"build-device\"]; what travels: $(du -ch "$OUTDIR"/* | tail -1 | cut -f1) + the working tree (at most 64 MiB)"
