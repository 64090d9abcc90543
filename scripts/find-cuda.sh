#!/usr/bin/env bash
# scripts/find-cuda.sh: where the CUDA toolkit and cuBLAS are, as CMake definitions for a build with
# LLAVA_RAD_CUDA=ON. Used by scripts/package.mjs --cuda and bench/device/cuda.sh.
#
#   bash scripts/find-cuda.sh SHIM_DIR
#
# CMake's FindCUDAToolkit finds only unversioned libraries inside the toolkit; cuBLAS often lives elsewhere
# (Debian's libcublas-dev, or NVIDIA's Python wheels: nvidia-cublas puts libcublas.so.13 and its headers in
# site-packages/nvidia/cu13/). This script links what it finds into SHIM_DIR/lib and SHIM_DIR/include (only the
# cuBLAS headers: the wheels' include folder also holds other wheels' headers, which must not shadow the
# toolkit's) and prints, one a line on stdout:
#
#   version MAJOR.MINOR        the toolkit's CUDA version (nvcc --version)
#   cmake -DNAME=VALUE         a definition for CMake (no spaces in values)
#   libdir DIR                 a folder to put on LD_LIBRARY_PATH to run what was built
#
# What it looked at goes to stderr. Exit 1 when there is no nvcc or no cuBLAS.
# Environment: PYTHON (python3), to find NVIDIA's wheels in its site-packages (PYTHONPATH is honoured).
set -u -o pipefail
SHIM=${1:?usage: find-cuda.sh SHIM_DIR}
PY=${PYTHON:-python3}
note() { echo "find-cuda: $*" >&2; }

nvcc=$(command -v nvcc || true)
for f in /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc; do [ -z "$nvcc" ] && [ -x "$f" ] && nvcc=$f; done
nvpaths=$("$PY" -c 'import nvidia; print(" ".join(nvidia.__path__))' 2>/dev/null || true)
if [ -z "$nvcc" ]; then
    for d in $nvpaths; do for f in "$d/cu13/bin/nvcc" "$d/cuda_nvcc/bin/nvcc"; do [ -z "$nvcc" ] && [ -x "$f" ] && nvcc=$f; done; done
fi
if [ -z "$nvcc" ]; then note "no nvcc on PATH, in /usr/local/cuda*/bin or in NVIDIA's Python wheels"; exit 1; fi

# the toolkit: where the real nvcc lives (a PATH entry may be a symlink or a wrapper script)
cuda_home=""
wrapped=$(sed -n 's/^exec \([^ ]*nvcc\) .*/\1/p' "$nvcc" 2>/dev/null | head -1)
for d in "$(dirname "$(dirname "$(readlink -f "$nvcc")")")" ${wrapped:+"$(dirname "$(dirname "$(readlink -f "$wrapped")")")"} \
         "$(readlink -f /usr/local/cuda 2>/dev/null)" /usr/local/cuda-*; do
    if [ -z "$cuda_home" ] && [ -x "$d/bin/nvcc" ] && { [ -f "$d/include/cuda_runtime.h" ] || [ -f "$d/targets/x86_64-linux/include/cuda_runtime.h" ]; }; then
        cuda_home=$d
    fi
done
[ -z "$cuda_home" ] && cuda_home=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
nvcc=$cuda_home/bin/nvcc
version=$("$nvcc" --version | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
note "nvcc $nvcc (CUDA $version), toolkit $cuda_home, NVIDIA wheels: ${nvpaths:-none}"
echo "version $version"
echo "cmake -DCMAKE_CUDA_COMPILER=$nvcc"
echo "cmake -DCUDAToolkit_ROOT=$cuda_home"
major=${version%%.*}

tk_dirs="$cuda_home/lib64 $cuda_home/lib $cuda_home/targets/x86_64-linux/lib"
search="$tk_dirs $cuda_home/lib64/stubs $cuda_home/targets/x86_64-linux/lib/stubs /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib"
for d in $nvpaths; do search="$search $d/cu$major/lib $d/cublas/lib $d/cuda_runtime/lib"; done
mkdir -p "$SHIM/lib" "$SHIM/include"
missing=0
for lib in cublas cublasLt cudart; do
    found=""
    for d in $tk_dirs; do
        if [ -z "$found" ] && [ -e "$d/lib$lib.so" ]; then found=toolkit; echo "libdir $d"; fi
    done
    if [ "$found" = toolkit ]; then note "lib$lib.so is in the toolkit"; continue; fi
    # the toolkit's own major version only: a libcublas.so.12 beside a CUDA 13 toolkit would not link
    for d in $search; do
        for f in "$d/lib$lib.so.$major" "$d"/lib$lib.so.$major.*; do
            [ -z "$found" ] && [ -f "$f" ] && found=$f
        done
    done
    if [ -n "$found" ]; then
        ln -sf "$found" "$SHIM/lib/lib$lib.so"
        [ "$(basename "$found")" != "lib$lib.so" ] && ln -sf "$found" "$SHIM/lib/$(basename "$found")"
        echo "cmake -DCUDA_${lib}_LIBRARY=$SHIM/lib/lib$lib.so"
        echo "libdir $(dirname "$found")"
        note "lib$lib -> $found"
    else
        note "lib$lib.so.$major NOT FOUND in $search"
        missing=1
    fi
done

# the driver library: ggml-cuda links it for its virtual-memory pool; without it, GGML_CUDA_NO_VMM (the
# legacy pool) and the build needs no driver
found=""
for d in $tk_dirs $cuda_home/lib64/stubs $cuda_home/targets/x86_64-linux/lib/stubs; do
    [ -z "$found" ] && [ -e "$d/libcuda.so" ] && found=toolkit
done
if [ -z "$found" ]; then
    for f in /usr/lib/x86_64-linux-gnu/libcuda.so.1 /usr/lib64/libcuda.so.1 /usr/local/nvidia/lib64/libcuda.so.1 \
             /usr/local/nvidia/lib/libcuda.so.1 $(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 /{print $NF}'); do
        [ -z "$found" ] && [ -e "$f" ] && found=$f
    done
    if [ -n "$found" ]; then
        ln -sf "$found" "$SHIM/lib/libcuda.so"
        echo "cmake -DCUDA_cuda_driver_LIBRARY=$SHIM/lib/libcuda.so"
        note "libcuda -> $found"
    else
        echo "cmake -DGGML_CUDA_NO_VMM=ON"
        note "no libcuda.so (no driver, no stub): GGML_CUDA_NO_VMM=ON"
    fi
fi

# headers: cublas_v2.h in the toolkit, else the cuBLAS headers alone in SHIM/include
if [ -f "$cuda_home/include/cublas_v2.h" ] || [ -f "$cuda_home/targets/x86_64-linux/include/cublas_v2.h" ]; then
    note "cublas_v2.h is in the toolkit"
else
    found=""
    for d in $nvpaths; do
        for f in "$d/cu$major/include/cublas_v2.h" "$d/cublas/include/cublas_v2.h"; do [ -z "$found" ] && [ -f "$f" ] && found=$f; done
    done
    for f in /usr/include/cublas_v2.h /usr/local/include/cublas_v2.h /usr/include/x86_64-linux-gnu/cublas_v2.h; do
        [ -z "$found" ] && [ -f "$f" ] && found=$f
    done
    if [ -n "$found" ]; then
        for f in "$(dirname "$found")"/cublas*.h; do ln -sf "$f" "$SHIM/include/$(basename "$f")"; done
        echo "cmake -DCMAKE_CUDA_FLAGS=-I$SHIM/include"
        echo "cmake -DCMAKE_CXX_FLAGS=-I$SHIM/include"
        note "cuBLAS headers from $(dirname "$found")"
    else
        note "cublas_v2.h NOT FOUND (toolkit, NVIDIA's wheels, /usr/include)"
        missing=1
    fi
fi
exit $missing
