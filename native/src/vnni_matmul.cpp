#include "vnni_matmul.h"
#include "status.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LR_VNNI_X86 1
#include <immintrin.h>
// GCC 12's avx512fintrin.h trips -W(maybe-)uninitialized in its own reduce/abs helpers
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#endif

namespace lr {

namespace {

// ---- the ggml blocks read by the repacking ---------------------------------------------------------
constexpr int64_t kQ8Block = 32;  // values per q8_0 block
constexpr int64_t kQK      = 256; // values per q6_K (and q8_K) super-block
constexpr int64_t kQ6Sub   = 16;  // values per q6_K sub-block (one int8 scale)
constexpr int64_t kQ6Subs  = kQK / kQ6Sub;

struct BlockQ8 {
    uint16_t d;
    int8_t   q[kQ8Block];
};
static_assert(sizeof(BlockQ8) == 34, "q8_0 block layout");

struct BlockQ6K {
    uint8_t  ql[kQK / 2];   // low 4 bits
    uint8_t  qh[kQK / 4];   // high 2 bits
    int8_t   scales[kQ6Subs];
    uint16_t d;
};
static_assert(sizeof(BlockQ6K) == 210, "q6_K block layout");

// quant v (0..63) of a q6_K super-block, as ggml's dequantize_row_q6_K reads it
int q6_value(const BlockQ6K & b, int64_t v) {
    const int64_t half = v / 128, w = v % 128, t = w / 32, l = w % 32;
    const uint8_t lo = b.ql[64 * half + l + (t & 1) * 32];
    const int nib = t < 2 ? (lo & 0x0F) : (lo >> 4);
    const int hi = (b.qh[32 * half + l] >> (2 * t)) & 3;
    return nib | (hi << 4);
}

// ---- the panels ------------------------------------------------------------------------------------
constexpr int64_t kQuad = 4; // values per 32-bit lane of vpdpbusd

// q8_0x16: [nb][8 quads][16 rows][4] quants, then [nb][16] fp16 scales
constexpr int64_t kQ8PanelQuant = kVnniRows * kQ8Block;
constexpr int64_t kQ8PanelScale = kVnniRows * (int64_t) sizeof(uint16_t);
static_assert(kQ8PanelQuant + kQ8PanelScale == kVnniRows * (int64_t) sizeof(BlockQ8), "same bytes as q8_0");

// q6_Kx16: [nsb][16 sub-blocks][lo01, lo23, hi: 16 rows x 4] quants, then [nsb][16 sub-blocks][16 rows]
// int8 scales, then [nsb][16 rows] fp16 scales
constexpr int64_t kLaneBytes    = kVnniRows * kQuad;     // 64: one register
constexpr int64_t kQ6SubBytes   = 3 * kLaneBytes;        // lo01, lo23, hi
constexpr int64_t kQ6PanelQuant = kQ6Subs * kQ6SubBytes;
constexpr int64_t kQ6PanelScale = kQ6Subs * kVnniRows;
constexpr int64_t kQ6PanelD     = kVnniRows * (int64_t) sizeof(uint16_t);
static_assert(kQ6PanelQuant + kQ6PanelScale + kQ6PanelD == kVnniRows * (int64_t) sizeof(BlockQ6K), "same bytes as q6_K");

// ---- quantized activations -------------------------------------------------------------------------
// a q8_0 block as ggml's x86 quantize_row_q8_0 makes it, d rounded to fp16 as ggml stores it; corr =
// -128 * sum(q) undoes the +128 offset of the weights in vpdpbusd's unsigned operand
struct BlockX8 {
    float   d;
    int32_t corr;
    int8_t  q[kQ8Block];
};
static_assert(sizeof(BlockX8) == 40, "activation block layout");

// a q8_K super-block as ggml's quantize_row_q8_K_ref makes it; corr[s] = -32 * sum(q of sub-block s)
// applies q6_K's offset of 32 (its values are q - 32)
struct BlockXK {
    int8_t  q[kQK];
    int32_t corr[kQ6Subs];
    float   d;
    int32_t pad[3];
};
static_assert(sizeof(BlockXK) == 336, "activation super-block layout");

constexpr int kMaxColsQ8 = 16; // columns per register tile: 16 accumulators + 8 weight quads + scales
constexpr int kMaxColsQ6 = 8;  // 8 float + 8 integer accumulators + 4 weight quads + scales

#if LR_VNNI_X86
#define LR_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma")))
#define LR_PRAGMA(x) _Pragma(#x)
#if defined(__clang__)
#define LR_UNROLL LR_PRAGMA(unroll)
#else
#define LR_UNROLL LR_PRAGMA(GCC unroll 16)
#endif

constexpr int kRoundEven = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

LR_VNNI void quantize_q8_0(const float * x, BlockX8 * out) {
    const __m512 v0 = _mm512_loadu_ps(x);
    const __m512 v1 = _mm512_loadu_ps(x + 16);
    const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    const __m512 mul = _mm512_set1_ps(id);
    // round to nearest even, as ggml's _mm256_round_ps(_MM_ROUND_NEAREST)
    const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v0, mul), kRoundEven);
    const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(v1, mul), kRoundEven);
    _mm_storeu_si128((__m128i *) out->q, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *) (out->q + 16), _mm512_cvtepi32_epi8(q1));
    out->corr = -128 * _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    out->d = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT)); // stored as fp16 by ggml
}

LR_VNNI void quantize_q8_K(const float * x, BlockXK * out) {
    // the scale comes from the first value of largest magnitude, sign included, as in ggml
    float max = 0.0f, amax = 0.0f;
    for (int64_t j = 0; j < kQK; j++) {
        const float ax = std::fabs(x[j]);
        if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (!(amax > 0.0f)) {
        std::memset(out, 0, sizeof(*out));
        return;
    }
    const float iscale = -127.f / max;
    const __m512 mul = _mm512_set1_ps(iscale);
    const __m512i top = _mm512_set1_epi32(127);
    for (int64_t s = 0; s < kQ6Subs; s++) {
        // ggml's nearest_int: round to nearest even; then MIN(127, v)
        __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + s * kQ6Sub), mul), kRoundEven);
        q = _mm512_min_epi32(q, top);
        _mm_storeu_si128((__m128i *) (out->q + s * kQ6Sub), _mm512_cvtepi32_epi8(q));
        out->corr[s] = -32 * _mm512_reduce_add_epi32(q);
    }
    out->d = 1.0f / iscale;
}

// y[c * ldy + r] for the 16 rows r of a q8_0x16 panel and NC columns c; x: the NC columns' blocks, nb each
template <int NC>
LR_VNNI void tile_q8_0(const uint8_t * panel, int64_t nb, const BlockX8 * x, float * y, int64_t ldy) {
    const uint8_t * scales = panel + nb * kQ8PanelQuant;
    __m512 acc[NC];
    LR_UNROLL for (int c = 0; c < NC; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m512i * wq = (const __m512i *) (panel + b * kQ8PanelQuant);
        __m512i w[kQ8Block / kQuad];
        LR_UNROLL for (int j = 0; j < kQ8Block / kQuad; j++) w[j] = _mm512_loadu_si512(wq + j);
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (scales + b * kQ8PanelScale)));
        LR_UNROLL for (int c = 0; c < NC; c++) {
            const BlockX8 * xb = x + c * nb + b;
            int32_t xq[kQ8Block / kQuad];
            std::memcpy(xq, xb->q, sizeof(xq));
            __m512i dot = _mm512_set1_epi32(xb->corr);
            LR_UNROLL for (int j = 0; j < kQ8Block / kQuad; j++) dot = _mm512_dpbusd_epi32(dot, w[j], _mm512_set1_epi32(xq[j]));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(dw, _mm512_set1_ps(xb->d)), acc[c]);
        }
    }
    LR_UNROLL for (int c = 0; c < NC; c++) _mm512_storeu_ps(y + c * ldy, acc[c]);
}

// the same for a q6_Kx16 panel; x: the NC columns' super-blocks, nsb each
template <int NC>
LR_VNNI void tile_q6_K(const uint8_t * panel, int64_t nsb, const BlockXK * x, float * y, int64_t ldy) {
    const int8_t * scales = (const int8_t *) (panel + nsb * kQ6PanelQuant);
    const uint8_t * ds = panel + nsb * (kQ6PanelQuant + kQ6PanelScale);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i bits45 = _mm512_set1_epi8(0x30);
    __m512 acc[NC];
    LR_UNROLL for (int c = 0; c < NC; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        __m512i isum[NC]; // exact: |sum| < 16 sub-blocks * 128 * (16 * 63 * 127 + 32 * 16 * 128) < 2^31
        LR_UNROLL for (int c = 0; c < NC; c++) isum[c] = _mm512_setzero_si512();
        for (int64_t j = 0; j < kQ6Subs; j++) {
            const uint8_t * q = panel + s * kQ6PanelQuant + j * kQ6SubBytes;
            // one column streams the matrix from memory (decode): ask for the next super-block early
            LR_UNROLL for (int l = 0; l < 3; l++) _mm_prefetch((const char *) q + kQ6PanelQuant + l * kLaneBytes, _MM_HINT_T0);
            const __m512i lo01 = _mm512_loadu_si512(q);
            const __m512i lo23 = _mm512_loadu_si512(q + kLaneBytes);
            const __m512i hi = _mm512_loadu_si512(q + 2 * kLaneBytes);
            // the 6-bit values (0..63) of quads 0..3: low nibble | top bits moved to bits 4-5
            __m512i w[4];
            w[0] = _mm512_or_si512(_mm512_and_si512(lo01, low4), _mm512_and_si512(_mm512_slli_epi16(hi, 4), bits45));
            w[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lo01, 4), low4), _mm512_and_si512(_mm512_slli_epi16(hi, 2), bits45));
            w[2] = _mm512_or_si512(_mm512_and_si512(lo23, low4), _mm512_and_si512(hi, bits45));
            w[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(lo23, 4), low4), _mm512_and_si512(_mm512_srli_epi16(hi, 2), bits45));
            const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *) (scales + s * kQ6PanelScale + j * kVnniRows)));
            LR_UNROLL for (int c = 0; c < NC; c++) {
                const BlockXK * xb = x + c * nsb + s;
                int32_t xq[4];
                std::memcpy(xq, xb->q + j * kQ6Sub, sizeof(xq));
                __m512i dot = _mm512_set1_epi32(xb->corr[j]);
                LR_UNROLL for (int u = 0; u < 4; u++) dot = _mm512_dpbusd_epi32(dot, w[u], _mm512_set1_epi32(xq[u]));
                isum[c] = _mm512_add_epi32(isum[c], _mm512_mullo_epi32(dot, sc));
            }
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (ds + s * kQ6PanelD)));
        LR_UNROLL for (int c = 0; c < NC; c++) {
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dw, _mm512_set1_ps(x[c * nsb + s].d)), acc[c]);
        }
    }
    LR_UNROLL for (int c = 0; c < NC; c++) _mm512_storeu_ps(y + c * ldy, acc[c]);
}

template <typename XBlock>
using TileFn = void (*)(const uint8_t *, int64_t, const XBlock *, float *, int64_t);

template <int... I>
constexpr auto tiles_q8_0(std::integer_sequence<int, I...>) {
    return std::array<TileFn<BlockX8>, sizeof...(I)>{ &tile_q8_0<I + 1>... };
}
template <int... I>
constexpr auto tiles_q6_K(std::integer_sequence<int, I...>) {
    return std::array<TileFn<BlockXK>, sizeof...(I)>{ &tile_q6_K<I + 1>... };
}

// ---- the graph ops ---------------------------------------------------------------------------------
// dst: one row of activation blocks per column of x; the columns are split over the threads
template <typename XBlock, void (*Quantize)(const float *, XBlock *), int64_t BlockValues>
void quantize_op(ggml_tensor * dst, int ith, int nth, void *) {
    const ggml_tensor * x = dst->src[0];
    const int64_t nb = x->ne[0] / BlockValues;
    const int64_t n = x->ne[1];
    const int64_t c0 = n * ith / nth, c1 = n * (ith + 1) / nth;
    for (int64_t c = c0; c < c1; c++) {
        const float * xr = (const float *) ((const char *) x->data + c * x->nb[1]);
        XBlock * out = (XBlock *) ((char *) dst->data + c * dst->nb[1]);
        for (int64_t b = 0; b < nb; b++) Quantize(xr + b * BlockValues, out + b);
    }
}

// dst [m, n] = w [k, m] (repacked) times the quantized columns; the panels are split over the threads
template <typename XBlock, int MaxCols, size_t NTiles>
void mul_panels(ggml_tensor * dst, int ith, int nth, const std::array<TileFn<XBlock>, NTiles> & tiles,
                int64_t blocks_per_row, int64_t panel_bytes) {
    const ggml_tensor * w = dst->src[0];
    const ggml_tensor * xq = dst->src[1];
    const int64_t m = w->ne[1];
    const int64_t n = dst->ne[1];
    const int64_t n_panels = m / kVnniRows;
    const int64_t p0 = n_panels * ith / nth, p1 = n_panels * (ith + 1) / nth;
    const XBlock * x = (const XBlock *) xq->data;
    float * y = (float *) dst->data;
    for (int64_t p = p0; p < p1; p++) {
        const uint8_t * panel = (const uint8_t *) w->data + p * panel_bytes;
        for (int64_t c = 0; c < n; c += MaxCols) {
            const int64_t nc = std::min<int64_t>(MaxCols, n - c);
            tiles[(size_t) nc - 1](panel, blocks_per_row, x + c * blocks_per_row, y + c * m + p * kVnniRows, m);
        }
    }
}

void mul_op_q8_0(ggml_tensor * dst, int ith, int nth, void *) {
    static const auto tiles = tiles_q8_0(std::make_integer_sequence<int, kMaxColsQ8>{});
    const int64_t nb = dst->src[0]->ne[0] / kQ8Block;
    mul_panels<BlockX8, kMaxColsQ8>(dst, ith, nth, tiles, nb, nb * (kQ8PanelQuant + kQ8PanelScale));
}

void mul_op_q6_K(ggml_tensor * dst, int ith, int nth, void *) {
    static const auto tiles = tiles_q6_K(std::make_integer_sequence<int, kMaxColsQ6>{});
    const int64_t nsb = dst->src[0]->ne[0] / kQK;
    mul_panels<BlockXK, kMaxColsQ6>(dst, ith, nth, tiles, nsb, nsb * (kQ6PanelQuant + kQ6PanelScale + kQ6PanelD));
}
#endif

// ---- repacking -------------------------------------------------------------------------------------
void repack_q8_0(uint8_t * panel, const uint8_t * src, int64_t nb) {
    const BlockQ8 * rows = (const BlockQ8 *) src; // 16 rows of nb blocks
    uint8_t * scales = panel + nb * kQ8PanelQuant;
    for (int64_t r = 0; r < kVnniRows; r++) {
        for (int64_t b = 0; b < nb; b++) {
            const BlockQ8 & blk = rows[r * nb + b];
            std::memcpy(scales + b * kQ8PanelScale + r * (int64_t) sizeof(uint16_t), &blk.d, sizeof(uint16_t));
            for (int64_t j = 0; j < kQ8Block / kQuad; j++) {
                uint8_t * out = panel + b * kQ8PanelQuant + j * kLaneBytes + r * kQuad;
                for (int64_t i = 0; i < kQuad; i++) out[i] = (uint8_t) (blk.q[j * kQuad + i] ^ 0x80); // q + 128
            }
        }
    }
}

void repack_q6_K(uint8_t * panel, const uint8_t * src, int64_t nsb) {
    const BlockQ6K * rows = (const BlockQ6K *) src; // 16 rows of nsb super-blocks
    std::memset(panel, 0, (size_t) (nsb * kQ6PanelQuant));
    int8_t * scales = (int8_t *) (panel + nsb * kQ6PanelQuant);
    uint8_t * ds = panel + nsb * (kQ6PanelQuant + kQ6PanelScale);
    for (int64_t r = 0; r < kVnniRows; r++) {
        for (int64_t s = 0; s < nsb; s++) {
            const BlockQ6K & blk = rows[r * nsb + s];
            std::memcpy(ds + s * kQ6PanelD + r * (int64_t) sizeof(uint16_t), &blk.d, sizeof(uint16_t));
            for (int64_t j = 0; j < kQ6Subs; j++) {
                scales[s * kQ6PanelScale + j * kVnniRows + r] = blk.scales[j];
                uint8_t * sub = panel + s * kQ6PanelQuant + j * kQ6SubBytes;
                for (int64_t u = 0; u < 4; u++) {
                    for (int64_t i = 0; i < kQuad; i++) {
                        const int q = q6_value(blk, j * kQ6Sub + u * kQuad + i);
                        const int64_t lane = r * kQuad + i;
                        sub[(u / 2) * kLaneBytes + lane] |= (uint8_t) ((q & 0x0F) << (4 * (u % 2)));
                        sub[2 * kLaneBytes + lane] |= (uint8_t) ((q >> 4) << (2 * u));
                    }
                }
            }
        }
    }
}

} // namespace

bool vnni_cpu_supported() {
#if LR_VNNI_X86
    static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni") &&
                           __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
    return ok;
#else
    return false;
#endif
}

VnniLayout vnni_layout_for(ggml_type type, int64_t k, int64_t m) {
    if (k <= 0 || m <= 0 || m % kVnniRows != 0) return VnniLayout::None;
    if (type == GGML_TYPE_Q8_0 && k % kQ8Block == 0) return VnniLayout::Q8_0x16;
    if (type == GGML_TYPE_Q6_K && k % kQK == 0) return VnniLayout::Q6_Kx16;
    return VnniLayout::None;
}

void vnni_repack(VnniLayout layout, void * data, int64_t k, int64_t m) {
    if (layout == VnniLayout::None) return;
    const bool q8 = layout == VnniLayout::Q8_0x16;
    const int64_t blocks = q8 ? k / kQ8Block : k / kQK;
    const int64_t panel_bytes = kVnniRows * blocks * (int64_t) (q8 ? sizeof(BlockQ8) : sizeof(BlockQ6K));
    std::vector<uint8_t> src((size_t) panel_bytes);
    for (int64_t p = 0; p < m / kVnniRows; p++) {
        uint8_t * panel = (uint8_t *) data + p * panel_bytes;
        std::memcpy(src.data(), panel, (size_t) panel_bytes); // the panel's 16 rows, in ggml's layout
        if (q8) repack_q8_0(panel, src.data(), blocks);
        else repack_q6_K(panel, src.data(), blocks);
    }
}

ggml_tensor * vnni_quantize(ggml_context * ctx, VnniLayout layout, ggml_tensor * x) {
    // x: [k, n] f32 with contiguous rows (a 3-D x is flattened: the decoder's activations are 2-D)
    if (!ggml_is_contiguous(x)) x = ggml_cont(ctx, x);
    if (ggml_n_dims(x) > 2) x = ggml_reshape_2d(ctx, x, x->ne[0], ggml_nelements(x) / x->ne[0]);
    ggml_tensor * args[] = { x };
#if LR_VNNI_X86
    if (layout == VnniLayout::Q8_0x16) {
        return ggml_custom_4d(ctx, GGML_TYPE_I8, x->ne[0] / kQ8Block * (int64_t) sizeof(BlockX8), x->ne[1], 1, 1, args, 1,
                              quantize_op<BlockX8, quantize_q8_0, kQ8Block>, GGML_N_TASKS_MAX, nullptr);
    }
    if (layout == VnniLayout::Q6_Kx16) {
        return ggml_custom_4d(ctx, GGML_TYPE_I8, x->ne[0] / kQK * (int64_t) sizeof(BlockXK), x->ne[1], 1, 1, args, 1,
                              quantize_op<BlockXK, quantize_q8_K, kQK>, GGML_N_TASKS_MAX, nullptr);
    }
#endif
    (void) args;
    fail(LR_ERR_INTERNAL, "vnni_quantize: no VNNI kernels for this layout on this build");
}

ggml_tensor * vnni_mul_quantized(ggml_context * ctx, VnniLayout layout, ggml_tensor * w, ggml_tensor * xq) {
    ggml_tensor * args[] = { w, xq };
#if LR_VNNI_X86
    if (layout == VnniLayout::Q8_0x16) {
        return ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], xq->ne[1], 1, 1, args, 2, mul_op_q8_0, GGML_N_TASKS_MAX, nullptr);
    }
    if (layout == VnniLayout::Q6_Kx16) {
        return ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], xq->ne[1], 1, 1, args, 2, mul_op_q6_K, GGML_N_TASKS_MAX, nullptr);
    }
#endif
    (void) args;
    fail(LR_ERR_INTERNAL, "vnni_mul_quantized: no VNNI kernels for this layout on this build");
}

} // namespace lr
