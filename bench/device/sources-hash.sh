#!/usr/bin/env bash
# bench/device/sources-hash.sh [CUDA_ARCH]: one sha256 over what a CUDA build of the engine is made from (our
# CMakeLists.txt and native/, the llama.cpp tree's commit in build-device/llama-src.commit, the architecture):
# prepare.sh stamps the prebuilt CUDA build with it, cuda.sh uses that build only when its own hash is the same.
set -euo pipefail
cd "$(dirname "$0")/../.."
{
    find CMakeLists.txt native -type f | LC_ALL=C sort | xargs sha256sum
    cat build-device/llama-src.commit 2>/dev/null || echo "no llama-src.commit"
    echo "arch ${1:-90}"
} | sha256sum | cut -d' ' -f1
