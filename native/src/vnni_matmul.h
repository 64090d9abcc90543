#pragma once
// Matrix products with q8_0, q6_K and q4_K weights on x86-64 CPUs that have AVX512-VNNI (AMD Zen 4 and
// later, Intel Ice Lake and later), for CPU-only runs.
//
// On x86 ggml multiplies q8_0 matrices with llamafile's tinyBLAS and q6_K ones with one vec_dot per row
// and column; both spend several instructions per 32 products on sign tricks, unpacking and scales. Here
// each such matrix is repacked once, at load time, into panels of 16 rows, so that one 64-byte register
// holds 4 consecutive weights of 16 rows and one vpdpbusd multiplies them with 4 activations of a column:
//
//   q8_0x16, per block b of 32 values:   uint8 q[8][16][4]  quad j of row r: the 4 quants + 128
//   (the panel's quants first, then)     fp16  d[16]        the rows' scales
//
//   q6_Kx16, per super-block of 256 values, per sub-block s of 16 values (192 bytes):
//                                        uint8 lo01[16][4]  low 4 bits of quads 0 (bits 0-3) and 1 (4-7)
//                                        uint8 lo23[16][4]  the same for quads 2 and 3
//                                        uint8 hi[16][4]    top 2 bits of quads 0, 1, 2, 3 (bits 0-1 .. 6-7)
//   (then, per super-block)              int8  scales[16 sub-blocks][16 rows], fp16 d[16 rows]
//
//   q4_Kx8: ggml's own repacked q4_K layout (block_q4_Kx8 of its CPU_REPACK buffer: 8 rows, quants
//   interleaved 8 bytes at a time), read as it is, so nothing is copied: a 64-byte register holds 8 quants
//   of each of 8 rows, and one vpdpbusd with 8 broadcast activations makes 16 partial sums (two per row).
//   A block's scales are unpacked with a few vector ops, and the blocks are prefetched, so that decoding
//   (one column, the matrix streamed from memory) stays bound by memory, not by instructions.
//
// q8_0x16 and q6_Kx16 keep the ggml type, shape and byte size of the matrix (16 q8_0 blocks are 544 bytes, 16 q6_K
// super-blocks 3360), but only vnni_mul_quantized() may read a repacked matrix. Activations are quantized
// exactly as ggml quantizes them for these types (q8_0 blocks of 32 with an fp16 scale; q8_K super-blocks
// of 256 with a float scale), so every block's integer dot product equals ggml's and only the float sums
// run in another order. native/tests/test_vnni_matmul.cpp checks the products against ggml's.
#include "ggml.h"

#include <cstdint>

namespace lr {

enum class VnniLayout {
    None,     // not repacked: ggml_mul_mat
    Q8_0x16,  // a q8_0 matrix in 16-row panels
    Q6_Kx16,  // a q6_K matrix in 16-row panels
    Q4_Kx8,   // a q4_K matrix in ggml's repacked 8-row blocks (not repacked by us)
};

constexpr int64_t kVnniRows = 16;        // rows per panel

// this CPU (and OS) can run the kernels (cpuid, at run time: the engine is compiled for any x86-64)
bool vnni_cpu_supported();

// Whether CPU-only runs use these kernels, from LLAVA_RAD_CPU_KERNELS: unset or "auto" where
// vnni_cpu_supported(); "vnni" always (LR_ERR_BACKEND on a CPU without them); "ggml" never (ggml's own
// kernels, for comparisons). Any other value: LR_ERR_INVALID_ARGUMENT.
bool vnni_kernels_enabled();

// the layout a matrix of `type` with m rows of k values would be repacked into, or None
VnniLayout vnni_layout_for(ggml_type type, int64_t k, int64_t m);

// repacks a matrix of m rows of k values, in place, into `layout` (vnni_layout_for(type, k, m))
void vnni_repack(VnniLayout layout, void * data, int64_t k, int64_t m);

// a q4_K matrix [k, m] (m % 8 == 0) that ggml's CPU_REPACK buffer holds: true when its first block of 8
// rows is the block_q4_Kx8 (8-byte interleave) that ggml makes from `original` (the file's q4_K rows),
// i.e. the Q4_Kx8 kernels can read it
bool vnni_q4_Kx8_matches(const void * repacked, const void * original, int64_t k);

// activations quantized for one layout serve every layout that reads the same format
enum class VnniActivations { Q8_0, Q8_K };
VnniActivations vnni_activations(VnniLayout layout);

// The product y [m, n] = w x of a repacked w [k, m] and an f32 x [k, n] is two ops in the graph, both
// split over the CPU backend's threads: x's quantization (once for every product that reads x in that
// layout), then the product itself.
ggml_tensor * vnni_quantize(ggml_context * ctx, VnniLayout layout, ggml_tensor * x);
ggml_tensor * vnni_mul_quantized(ggml_context * ctx, VnniLayout layout, ggml_tensor * w, ggml_tensor * xq);

} // namespace lr
