#include "q8_0_gemm.h"

#include "status.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LR_Q8X16_X86 1
#include <immintrin.h>
// GCC 12's avx512fintrin.h trips -Wmaybe-uninitialized in its own reduce/abs helpers
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace lr {

namespace {

// a q8_0 block as ggml stores it: fp16 scale, 32 int8 quants
struct BlockQ8 {
    uint16_t d;
    int8_t   q[kQ8Block];
};
static_assert(sizeof(BlockQ8) == 34, "q8_0 block layout");

// panel layout (rows 16p .. 16p+15 of a matrix with nb blocks per row):
//   uint8 quants[nb][8][16][4]   block b, quad j, row r: 4 quants + 128, at (b * 8 + j) * 64 + r * 4
//   fp16  scales[nb][16]         after all quants, so every quant block starts 512 bytes after the last
constexpr int64_t kQuads          = kQ8Block / 4;                   // 8 groups of 4 values per block
constexpr int64_t kPanelQuantBytes = kQ8x16Rows * kQ8Block;          // 512: one block of 16 rows
constexpr int64_t kPanelScaleBytes = kQ8x16Rows * sizeof(uint16_t);  // 32
constexpr int64_t kPanelBlockBytes = kPanelQuantBytes + kPanelScaleBytes;
static_assert(kPanelBlockBytes == kQ8x16Rows * (int64_t) sizeof(BlockQ8), "same bytes as q8_0");

// an activation block, quantized as ggml's quantize_row_q8_0 (x86) does: d is the fp16-rounded scale;
// corr = -128 * sum(q) undoes the +128 offset of the weights in vpdpbusd's unsigned operand
struct BlockX {
    float   d;
    int32_t corr;
    int8_t  q[kQ8Block];
};
static_assert(sizeof(BlockX) == 40, "activation block layout");

constexpr int kMaxCols = 16; // columns per register tile: 16 accumulators + 8 weight quads + scales

#if LR_Q8X16_X86
#define LR_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")))
#define LR_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define LR_UNROLL LR_PRAGMA(unroll)
#else
#define LR_UNROLL LR_PRAGMA(GCC unroll 16)
#endif

LR_VNNI void quantize_block(const float * x, BlockX * out) {
    const __m512 v0 = _mm512_loadu_ps(x);
    const __m512 v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    const __m512 mul = _mm512_set1_ps(id);
    // round to nearest even, as ggml's _mm256_round_ps(_MM_ROUND_NEAREST)
    const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128((__m128i *) out->q, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *) (out->q + 16), _mm512_cvtepi32_epi8(q1));
    out->corr = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    out->d = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT)); // stored as fp16 by ggml
}

// y[c * ldy + r] for 16 rows r of one panel and NC columns c; x: the NC columns' blocks, nb per column
template <int NC>
LR_VNNI void panel_tile(const uint8_t * panel, int64_t nb, const BlockX * x, float * y, int64_t ldy) {
    const uint8_t * scales = panel + nb * kPanelQuantBytes;
    __m512 acc[NC];
    LR_UNROLL for (int c = 0; c < NC; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m512i * wq = (const __m512i *) (panel + b * kPanelQuantBytes);
        __m512i w[kQuads];
        LR_UNROLL for (int j = 0; j < kQuads; j++) w[j] = _mm512_loadu_si512(wq + j);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (scales + b * kPanelScaleBytes)));
        LR_UNROLL for (int c = 0; c < NC; c++) {
            const BlockX * xb = x + c * nb + b;
            int32_t xq[kQuads];
            std::memcpy(xq, xb->q, sizeof(xq));
            __m512i dot = _mm512_set1_epi32(xb->corr);
            LR_UNROLL for (int j = 0; j < kQuads; j++) dot = _mm512_dpbusd_epi32(dot, w[j], _mm512_set1_epi32(xq[j]));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, _mm512_set1_ps(xb->d)), acc[c]);
        }
    }
    LR_UNROLL for (int c = 0; c < NC; c++) _mm512_storeu_ps(y + c * ldy, acc[c]);
}

using TileFn = void (*)(const uint8_t *, int64_t, const BlockX *, float *, int64_t);

template <int... I>
constexpr auto make_tiles(std::integer_sequence<int, I...>) {
    return std::array<TileFn, sizeof...(I)>{ &panel_tile<I + 1>... };
}
#endif

} // namespace

bool q8x16_cpu_supported() {
#if LR_Q8X16_X86
    static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                           __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
    return ok;
#else
    return false;
#endif
}

bool q8x16_shape_ok(int64_t k, int64_t m) {
    return k > 0 && m > 0 && k % kQ8Block == 0 && m % kQ8x16Rows == 0;
}

void q8x16_repack(void * data, int64_t k, int64_t m) {
    const int64_t nb = k / kQ8Block;
    const int64_t panel_bytes = nb * kPanelBlockBytes;
    std::vector<uint8_t> src((size_t) panel_bytes);
    for (int64_t p = 0; p < m / kQ8x16Rows; p++) {
        uint8_t * dst = (uint8_t *) data + p * panel_bytes;
        std::memcpy(src.data(), dst, (size_t) panel_bytes); // 16 rows of nb q8_0 blocks
        const BlockQ8 * rows = (const BlockQ8 *) src.data();
        uint8_t * scales = dst + nb * kPanelQuantBytes;
        for (int64_t r = 0; r < kQ8x16Rows; r++) {
            for (int64_t b = 0; b < nb; b++) {
                const BlockQ8 & blk = rows[r * nb + b];
                std::memcpy(scales + b * kPanelScaleBytes + r * sizeof(uint16_t), &blk.d, sizeof(uint16_t));
                for (int64_t j = 0; j < kQuads; j++) {
                    uint8_t * out = dst + b * kPanelQuantBytes + j * (kQ8x16Rows * 4) + r * 4;
                    for (int64_t i = 0; i < 4; i++) out[i] = (uint8_t) (blk.q[j * 4 + i] ^ 0x80); // q + 128
                }
            }
        }
    }
}

namespace {

#if LR_Q8X16_X86
// dst: one row of nb activation blocks per column of x; the columns are split over the threads
LR_VNNI void quantize_op(ggml_tensor * dst, int ith, int nth, void *) {
    const ggml_tensor * x = dst->src[0];
    const int64_t nb = x->ne[0] / kQ8Block;
    const int64_t n = x->ne[1];
    const int64_t c0 = n * ith / nth, c1 = n * (ith + 1) / nth;
    for (int64_t c = c0; c < c1; c++) {
        const float * xr = (const float *) ((const char *) x->data + c * x->nb[1]);
        BlockX * out = (BlockX *) ((char *) dst->data + c * dst->nb[1]);
        for (int64_t b = 0; b < nb; b++) quantize_block(xr + b * kQ8Block, out + b);
    }
}

// dst [m, n] = w [k, m] (repacked) times the quantized columns; the panels are split over the threads
void mul_op(ggml_tensor * dst, int ith, int nth, void *) {
    static const auto tiles = make_tiles(std::make_integer_sequence<int, kMaxCols>{});
    const ggml_tensor * w = dst->src[0];
    const ggml_tensor * xq = dst->src[1];
    const int64_t nb = w->ne[0] / kQ8Block;
    const int64_t m = w->ne[1];
    const int64_t n = dst->ne[1];
    const int64_t n_panels = m / kQ8x16Rows;
    const int64_t p0 = n_panels * ith / nth, p1 = n_panels * (ith + 1) / nth;
    const BlockX * x = (const BlockX *) xq->data;
    float * y = (float *) dst->data;
    for (int64_t p = p0; p < p1; p++) {
        const uint8_t * panel = (const uint8_t *) w->data + p * nb * kPanelBlockBytes;
        for (int64_t c = 0; c < n; c += kMaxCols) {
            const int64_t nc = std::min<int64_t>(kMaxCols, n - c);
            tiles[(size_t) nc - 1](panel, nb, x + c * nb, y + c * m + p * kQ8x16Rows, m);
        }
    }
}
#endif

} // namespace

ggml_tensor * q8x16_quantize(ggml_context * ctx, ggml_tensor * x) {
    // x: [k, n] f32 with contiguous rows (a 3-D x is flattened: the decoder's activations are 2-D)
    if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
    if (ggml_n_dims(x) > 2) x = ggml_reshape_2d(ctx, x, x->ne[0], ggml_nelements(x) / x->ne[0]);
    const int64_t nb = x->ne[0] / kQ8Block;
    ggml_tensor * args[] = { x };
#if LR_Q8X16_X86
    return ggml_custom_4d(ctx, GGML_TYPE_I8, nb * (int64_t) sizeof(BlockX), x->ne[1], 1, 1, args, 1, quantize_op,
                          GGML_N_TASKS_MAX, nullptr);
#else
    (void) nb;
    fail(LR_ERR_INTERNAL, "q8_0x16 kernels are not built for this CPU");
#endif
}

ggml_tensor * q8x16_mul_quantized(ggml_context * ctx, ggml_tensor * w, ggml_tensor * xq) {
    ggml_tensor * args[] = { w, xq };
#if LR_Q8X16_X86
    return ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], xq->ne[1], 1, 1, args, 2, mul_op, GGML_N_TASKS_MAX, nullptr);
#else
    fail(LR_ERR_INTERNAL, "q8_0x16 kernels are not built for this CPU");
#endif
}

} // namespace lr
