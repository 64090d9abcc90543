#pragma once
// Matrix products with q8_0 weights on x86-64 CPUs that have AVX512-VNNI (AMD Zen 4 and later, Intel Ice
// Lake and later), for CPU-only runs.
//
// ggml multiplies q8_0 matrices with llamafile's tinyBLAS on x86, which spends several instructions per
// 32-value block on sign tricks, conversions and scale products. Here each q8_0 matrix is repacked once, at
// load time, into panels of 16 rows ("q8_0x16"), so one 64-byte load feeds one vpdpbusd for 16 rows.
// Panel p (rows 16p .. 16p+15) of a matrix with nb blocks of 32 values per row:
//
//     uint8 q[nb][8][16][4]   block b, quad j, row r: the 4 quants of values 32b+4j .. 32b+4j+3, plus 128
//     fp16  d[nb][16]         block b's scales of the 16 rows
//
// 544 bytes per block of 16 rows, the size of 16 q8_0 blocks: the repacked matrix keeps its ggml type,
// shape and byte size, but only q8x16_mul_quantized() may read it. Activations are quantized to q8_0
// exactly as ggml's x86 quantize_row_q8_0 does (signed, so the +128 of the weights is undone by
// subtracting 128 * sum(activation quants) per block), and every block's integer dot product equals
// ggml's; only the float sums run in another order. On a 2-core Zen 4 the product of 512 columns runs
// about 2.3x faster than llamafile's kernel (native/tests/test_q8_0_gemm.cpp checks the results).
#include "ggml.h"

#include <cstdint>

namespace lr {

constexpr int64_t kQ8x16Rows = 16;  // rows per panel
constexpr int64_t kQ8Block   = 32;  // values per q8_0 block

// this CPU (and OS) can run the kernels
bool q8x16_cpu_supported();

// a [k, m] q8_0 matrix (m rows of k values) can be repacked
bool q8x16_shape_ok(int64_t k, int64_t m);

// repacks a q8_0 matrix of m rows of k values, in place (needs q8x16_shape_ok and q8x16_cpu_supported)
void q8x16_repack(void * data, int64_t k, int64_t m);

// The product y [m, n] = w x of a repacked w [k, m] and an f32 x [k, n] is two ops in the graph, both
// split over the CPU backend's threads: x's quantization (once, for every product that reads x), then
// the product itself.
ggml_tensor * q8x16_quantize(ggml_context * ctx, ggml_tensor * x);           // -> i8 [k / 32 * 40, n]
ggml_tensor * q8x16_mul_quantized(ggml_context * ctx, ggml_tensor * w, ggml_tensor * xq); // -> f32 [m, n]

} // namespace lr
