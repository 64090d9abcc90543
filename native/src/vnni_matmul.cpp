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

struct BlockQ4K {
    uint16_t d;
    uint16_t dmin;
    uint8_t  scales[12];   // 8 scales and 8 mins of 6 bits
    uint8_t  qs[kQK / 2];  // chunk c of 64 values: byte 32c + l holds values 64c + l (low) and 64c + 32 + l (high)
};
static_assert(sizeof(BlockQ4K) == 144, "q4_K block layout");

// ggml's block_q4_Kx8 (ggml-cpu/repack.h): 8 rows of one q4_K super-block, quants interleaved 8 bytes at a
// time (byte 64g + 8r + b is byte 8g + b of row r), scales regrouped per sub-block (q4kx8_scales)
constexpr int64_t kQ4Rows = 8;
struct BlockQ4Kx8 {
    uint16_t d[kQ4Rows];
    uint16_t dmin[kQ4Rows];
    uint8_t  scales[12 * kQ4Rows];
    uint8_t  qs[kQK * kQ4Rows / 2];
};
static_assert(sizeof(BlockQ4Kx8) == 1152, "ggml block_q4_Kx8 layout");
constexpr int64_t kQ4Subs = kQK / 32; // sub-blocks of 32 values, each with a scale and a min

// scale and min of sub-block j of a q4_K block (as ggml's get_scale_min_k4)
void q4k_scale_min(const uint8_t * q, int j, uint8_t & sc, uint8_t & mn) {
    if (j < 4) {
        sc = q[j] & 63;
        mn = q[j + 4] & 63;
    } else {
        sc = (uint8_t) ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
        mn = (uint8_t) ((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// the scales and mins of the 8 rows of a block_q4_Kx8: its 12 bytes per sub-block j hold the 8 rows'
// values packed as q4_K packs the 8 sub-blocks of one row
void q4kx8_scales(const BlockQ4Kx8 & b, uint8_t sc[kQ4Subs][kQ4Rows], uint8_t mn[kQ4Subs][kQ4Rows]) {
    for (int j = 0; j < kQ4Subs; j++) {
        for (int r = 0; r < kQ4Rows; r++) q4k_scale_min(b.scales + 12 * j, r, sc[j][r], mn[j][r]);
    }
}

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
// applies q6_K's offset of 32 (its values are q - 32); bs_a and bs_b hold the sums of q over the 8
// sub-blocks of 32 that q4_K's mins multiply, in the order of its kernel's lanes: 0, 1, 4, 5 and 2, 3, 6, 7
struct BlockXK {
    int8_t  q[kQK];
    int32_t corr[kQ6Subs];
    float   d;
    int16_t bs_a[4];
    int16_t bs_b[4];
    int32_t pad[3];
};
static_assert(sizeof(BlockXK) == 352, "activation super-block layout");

constexpr int kMaxColsQ8 = 16; // columns per register tile: 16 accumulators + 8 weight quads + scales
constexpr int kMaxColsQ6 = 8;  // 8 float + 8 integer accumulators + 4 weight quads + scales
constexpr int kMaxColsQ4 = 8;  // 8 integer accumulators + 8 unpacked weight registers

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
        std::memset(out, 0, sizeof(*out)); // d = 0, all quants and sums 0
        return;
    }
    const float iscale = -127.f / max;
    const __m512 mul = _mm512_set1_ps(iscale);
    const __m512i top = _mm512_set1_epi32(127);
    int32_t sum16[kQ6Subs];
    for (int64_t s = 0; s < kQ6Subs; s++) {
        // ggml's nearest_int: round to nearest even; then MIN(127, v)
        __m512i q = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + s * kQ6Sub), mul), kRoundEven);
        q = _mm512_min_epi32(q, top);
        _mm_storeu_si128((__m128i *) (out->q + s * kQ6Sub), _mm512_cvtepi32_epi8(q));
        sum16[s] = _mm512_reduce_add_epi32(q);
        out->corr[s] = -32 * sum16[s];
    }
    out->d = 1.0f / iscale;
    static const int kOrderA[4] = { 0, 1, 4, 5 }, kOrderB[4] = { 2, 3, 6, 7 };
    for (int i = 0; i < 4; i++) {
        out->bs_a[i] = (int16_t) (sum16[2 * kOrderA[i]] + sum16[2 * kOrderA[i] + 1]);
        out->bs_b[i] = (int16_t) (sum16[2 * kOrderB[i]] + sum16[2 * kOrderB[i] + 1]);
    }
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

// a block_q4_Kx8's scales, mins and super-block scales laid out for the lanes of step_q4_K
struct Q4Lanes {
    __m512i sc[kQ4Subs]; // lane 2r + h: scale of row r in sub-block j
    __m512i m01, m23;    // lane 2r + h: int16 pairs (min j, min j + 1) of row r, for j = 4h and 4h + 2
    __m512 dv, dminv;    // lane 2r + h: d and dmin of row r
};

// One super-block of a block_q4_Kx8 (8 rows) times NC columns, added to acc (16 floats per column: lane
// 2r + h is half h of row r; the halves are summed at the end). x: column 0's super-block, the next
// columns `stride` blocks apart.
template <int NC>
LR_VNNI void step_q4_K(const BlockQ4Kx8 & blk, const Q4Lanes & lanes, const BlockXK * x, int64_t stride, float * acc) {
    const __m512i * sc = lanes.sc;
    const __m512i m01 = lanes.m01, m23 = lanes.m23;
    const __m512 dv = lanes.dv, dminv = lanes.dminv;
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512i isum[NC]; // exact: |sum| < 8 sub-blocks * 63 * 32 * 15 * 127
    LR_UNROLL for (int c = 0; c < NC; c++) isum[c] = _mm512_setzero_si512();
    LR_UNROLL for (int chunk = 0; chunk < 4; chunk++) {
        // bytes 8t..8t+7 of chunk `chunk` of every row: low nibbles are values 64 chunk + 8t + 0..7 (sub-block
        // 2 chunk), high nibbles the values 32 further on (sub-block 2 chunk + 1)
        __m512i lo[4], hi[4];
        LR_UNROLL for (int t = 0; t < 4; t++) {
            const __m512i raw = _mm512_loadu_si512(blk.qs + (4 * chunk + t) * 64);
            lo[t] = _mm512_and_si512(raw, low4);
            hi[t] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
        }
        LR_UNROLL for (int c = 0; c < NC; c++) {
            int64_t xq[8]; // 8 activations per 64-bit lane pair: lane 2r + h takes 4 of them
            std::memcpy(xq, x[c * stride].q + 64 * chunk, sizeof(xq));
            __m512i dlo = _mm512_setzero_si512(), dhi = _mm512_setzero_si512();
            LR_UNROLL for (int t = 0; t < 4; t++) {
                dlo = _mm512_dpbusd_epi32(dlo, lo[t], _mm512_set1_epi64(xq[t]));
                dhi = _mm512_dpbusd_epi32(dhi, hi[t], _mm512_set1_epi64(xq[4 + t]));
            }
            isum[c] = _mm512_add_epi32(isum[c], _mm512_add_epi32(_mm512_mullo_epi32(dlo, sc[2 * chunk]),
                                                                 _mm512_mullo_epi32(dhi, sc[2 * chunk + 1])));
        }
    }
    LR_UNROLL for (int c = 0; c < NC; c++) {
        const BlockXK & xb = x[c * stride];
        int64_t a, b;
        std::memcpy(&a, xb.bs_a, sizeof(a));
        std::memcpy(&b, xb.bs_b, sizeof(b));
        const __m512i imin = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(_mm512_setzero_si512(), m01, _mm512_set1_epi64(a)),
                                                 m23, _mm512_set1_epi64(b));
        const __m512 dx = _mm512_set1_ps(xb.d);
        __m512 v = _mm512_loadu_ps(acc + c * 16);
        v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dv, dx), v);
        v = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(imin), _mm512_mul_ps(dminv, dx), v);
        _mm512_storeu_ps(acc + c * 16, v);
    }
}

// the 8 rows' fp16 values as 16 floats, each twice (lanes 2r and 2r + 1)
LR_VNNI __m512 rows_twice(const uint16_t * h8) {
    const __m512 f = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) h8)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), f);
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

using StepQ4 = void (*)(const BlockQ4Kx8 &, const Q4Lanes &, const BlockXK *, int64_t, float *);

template <int... I>
constexpr auto steps_q4_K(std::integer_sequence<int, I...>) {
    return std::array<StepQ4, sizeof...(I)>{ &step_q4_K<I + 1>... };
}

// dst [m, n] = w [k, m] (ggml's block_q4_Kx8 groups of 8 rows) times the quantized columns; the groups of
// rows are split over the threads. Per group and super-block the scales are unpacked once for all columns,
// whose 16 partial sums wait in `acc` (n x 16 floats).
LR_VNNI void mul_op_q4_K(ggml_tensor * dst, int ith, int nth, void * weight) {
    static const auto steps = steps_q4_K(std::make_integer_sequence<int, kMaxColsQ4>{});
    const ggml_tensor * w = (const ggml_tensor *) weight; // not a source: see vnni_mul_quantized
    const int64_t nsb = w->ne[0] / kQK;
    const int64_t m = w->ne[1];
    const int64_t n = dst->ne[1];
    const int64_t n_groups = m / kQ4Rows;
    const int64_t g0 = n_groups * ith / nth, g1 = n_groups * (ith + 1) / nth;
    const BlockXK * x = (const BlockXK *) dst->src[0]->data;
    float * y = (float *) dst->data;
    std::vector<float> acc((size_t) n * 16);
    alignas(64) int32_t sc_lanes[kQ4Subs][16];
    alignas(64) int16_t m01[32], m23[32];
    uint8_t sc[kQ4Subs][kQ4Rows], mn[kQ4Subs][kQ4Rows];
    for (int64_t g = g0; g < g1; g++) {
        const BlockQ4Kx8 * blocks = (const BlockQ4Kx8 *) w->data + g * nsb;
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t s = 0; s < nsb; s++) {
            const BlockQ4Kx8 & blk = blocks[s];
            q4kx8_scales(blk, sc, mn);
            for (int j = 0; j < kQ4Subs; j++) {
                for (int l = 0; l < 16; l++) sc_lanes[j][l] = sc[j][l / 2];
            }
            for (int l = 0; l < 16; l++) { // lane l = 2r + h
                const int r = l / 2, h = l % 2;
                m01[2 * l] = mn[4 * h][r];
                m01[2 * l + 1] = mn[4 * h + 1][r];
                m23[2 * l] = mn[4 * h + 2][r];
                m23[2 * l + 1] = mn[4 * h + 3][r];
            }
            Q4Lanes lanes;
            for (int j = 0; j < kQ4Subs; j++) lanes.sc[j] = _mm512_load_si512(sc_lanes[j]);
            lanes.m01 = _mm512_load_si512(m01);
            lanes.m23 = _mm512_load_si512(m23);
            lanes.dv = rows_twice(blk.d);
            lanes.dminv = rows_twice(blk.dmin);
            for (int64_t c = 0; c < n; c += kMaxColsQ4) {
                const int64_t nc = std::min<int64_t>(kMaxColsQ4, n - c);
                steps[(size_t) nc - 1](blk, lanes, x + c * nsb + s, nsb, acc.data() + c * 16);
            }
        }
        for (int64_t c = 0; c < n; c++) {
            const float * a = acc.data() + c * 16;
            for (int r = 0; r < kQ4Rows; r++) y[c * m + g * kQ4Rows + r] = a[2 * r] + a[2 * r + 1];
        }
    }
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

bool vnni_q4_Kx8_matches(const void * repacked, const void * original, int64_t k) {
    const int64_t nsb = k / kQK;
    const BlockQ4Kx8 & b = *(const BlockQ4Kx8 *) repacked;
    const BlockQ4K * rows = (const BlockQ4K *) original; // row r's first super-block: rows[r * nsb]
    uint8_t sc[kQ4Subs][kQ4Rows], mn[kQ4Subs][kQ4Rows];
    q4kx8_scales(b, sc, mn);
    for (int r = 0; r < kQ4Rows; r++) {
        const BlockQ4K & o = rows[r * nsb];
        if (b.d[r] != o.d || b.dmin[r] != o.dmin) return false;
        for (int g = 0; g < 16; g++) {
            if (std::memcmp(b.qs + 64 * g + 8 * r, o.qs + 8 * g, 8) != 0) return false;
        }
        for (int j = 0; j < kQ4Subs; j++) {
            uint8_t s, m_;
            q4k_scale_min(o.scales, j, s, m_);
            if (sc[j][r] != s || mn[j][r] != m_) return false;
        }
    }
    return true;
}

bool vnni_use(VnniLayout layout, int64_t n) {
    if (layout == VnniLayout::None) return false;
    return layout != VnniLayout::Q4_Kx8 || n >= kVnniQ4KMinCols;
}

VnniActivations vnni_activations(VnniLayout layout) {
    return layout == VnniLayout::Q8_0x16 ? VnniActivations::Q8_0 : VnniActivations::Q8_K;
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
    if (layout == VnniLayout::Q6_Kx16 || layout == VnniLayout::Q4_Kx8) {
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
    if (layout == VnniLayout::Q4_Kx8) {
        // w lives in ggml's CPU_REPACK buffer, whose supports_op() would refuse any op but ggml's products
        // reading it, so the op gets w as user data (weights never change while a graph runs)
        ggml_tensor * xargs[] = { xq };
        return ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], xq->ne[1], 1, 1, xargs, 1, mul_op_q4_K, GGML_N_TASKS_MAX, w);
    }
#endif
    (void) args;
    fail(LR_ERR_INTERNAL, "vnni_mul_quantized: no VNNI kernels for this layout on this build");
}

} // namespace lr
