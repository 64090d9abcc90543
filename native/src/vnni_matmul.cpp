#include "vnni_matmul.h"
#include "status.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
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

#if LR_VNNI_X86
constexpr int kMaxColsQ8 = 16; // columns per register tile: 16 accumulators + 8 weight quads + scales
constexpr int kMaxColsQ6 = 8;  // 8 float + 8 integer accumulators + 4 weight quads + scales
constexpr int kMaxColsQ4 = 8;  // 8 float + 8 integer accumulators + 8 unpacked weight registers

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
constexpr int64_t kQ8Prefetch = 8; // blocks (4.3 KB) ahead: of 4, 8, 16, the best streaming 17 MB on Zen 4
template <int NC>
LR_VNNI void tile_q8_0(const uint8_t * panel, int64_t nb, const BlockX8 * x, float * y, int64_t ldy) {
    const uint8_t * scales = panel + nb * kQ8PanelQuant;
    __m512 acc[NC];
    LR_UNROLL for (int c = 0; c < NC; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const __m512i * wq = (const __m512i *) (panel + b * kQ8PanelQuant);
        // one column streams the matrix from memory (decode): ask for the block kQ8Prefetch ahead early
        LR_UNROLL for (int l = 0; l < kQ8Block / kQuad; l++) _mm_prefetch((const char *) (wq + l) + kQ8Prefetch * kQ8PanelQuant, _MM_HINT_T0);
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
constexpr int64_t kQ6Prefetch = 8; // super-blocks (27 KB) ahead: best of 1, 2, 4, 8, 16 streaming 37 MB on Zen 4
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
            // one column streams the matrix from memory (decode): ask for the super-block kQ6Prefetch ahead early
            LR_UNROLL for (int l = 0; l < 3; l++) _mm_prefetch((const char *) q + kQ6Prefetch * kQ6PanelQuant + l * kLaneBytes, _MM_HINT_T0);
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

// the 8 rows' fp16 values as 16 floats, each twice (lanes 2r and 2r + 1)
LR_VNNI __m512 rows_twice(const uint16_t * h8) {
    const __m512 f = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) h8)));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), f);
}

// ---- q4_K -------------------------------------------------------------------------------------------
// A decode step streams the matrix from memory once, so the work per block must stay well under the memory
// time of its 1152 bytes: the scales are unpacked with a few vector ops (ggml's kernels use a scalar loop).

// The 8 rows' scales and mins of a block_q4_Kx8, one byte each: byte 8j + r of sc (mn) is the scale (min)
// of row r in sub-block j. The block's 12 bytes of sub-block j (dwords 3j, 3j + 1, 3j + 2) pack the 8 rows
// as q4_K packs the 8 sub-blocks of a row: rows 0-3 in the low 6 bits of dwords 3j (scales) and 3j + 1
// (mins); rows 4-7 in the nibbles of dword 3j + 2 with their top 2 bits in the top bits of the other two.
struct Q4Bytes {
    __m512i sc, mn;
};

LR_VNNI Q4Bytes q4kx8_bytes(const BlockQ4Kx8 & blk) {
    const __m512i a = _mm512_loadu_si512(blk.scales);      // dwords 0-15
    const __m512i b = _mm512_loadu_si512(blk.scales + 64); // dwords 16-23 (the rest: quants, unused)
    // even lane 2j: dword of rows 0-3, odd lane 2j + 1: dword of rows 4-7's nibbles or of their top bits
    const __m512i sc_lo_nib = _mm512_permutex2var_epi32(a, _mm512_setr_epi32(0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23), b);
    const __m512i sc_top    = _mm512_permutex2var_epi32(a, _mm512_setr_epi32(0, 0, 3, 3, 6, 6, 9, 9, 12, 12, 15, 15, 18, 18, 21, 21), b);
    const __m512i mn_lo_nib = _mm512_permutex2var_epi32(a, _mm512_setr_epi32(1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20, 22, 23), b);
    const __m512i mn_top    = _mm512_permutex2var_epi32(a, _mm512_setr_epi32(1, 1, 4, 4, 7, 7, 10, 10, 13, 13, 16, 16, 19, 19, 22, 22), b);
    const __m512i low6 = _mm512_set1_epi8(0x3F), low4 = _mm512_set1_epi8(0x0F), bits45 = _mm512_set1_epi8(0x30);
    constexpr __mmask16 kOdd = 0xAAAA; // the lanes of rows 4-7
    Q4Bytes out;
    // rows 4-7: low nibble (scales) or high nibble (mins) of dword 3j + 2, and bits 6-7 of dword 3j (3j + 1) as bits 4-5
    const __m512i sc_hi = _mm512_or_si512(_mm512_and_si512(sc_lo_nib, low4), _mm512_and_si512(_mm512_srli_epi32(sc_top, 2), bits45));
    const __m512i mn_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(mn_lo_nib, 4), low4), _mm512_and_si512(_mm512_srli_epi32(mn_top, 2), bits45));
    out.sc = _mm512_mask_blend_epi32(kOdd, _mm512_and_si512(sc_lo_nib, low6), sc_hi);
    out.mn = _mm512_mask_blend_epi32(kOdd, _mm512_and_si512(mn_lo_nib, low6), mn_hi);
    return out;
}

// One block_q4_Kx8 (8 rows, one super-block) times NC columns (x: column 0's super-block, the next ones
// `stride` blocks apart), added to acc[c] (lane 2r + h: half h of row r). Per chunk of 64 values the two
// sub-blocks' dot products (|sum| <= 16 * 15 * 127 per lane: int16) are packed as pairs and scaled by one
// vpdpwssd with the pairs (scale of sub-block 2 chunk, scale of sub-block 2 chunk + 1) of the lane's row.
template <int NC>
LR_VNNI void step_q4_K(const BlockQ4Kx8 & blk, const BlockXK * x, int64_t stride, __m512 * acc) {
    const Q4Bytes bytes = q4kx8_bytes(blk);
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    // dword lane l = 2r + h (128-bit lane L, position p: r = 2L + p / 2) <- bytes r and 8 + r of a broadcast
    // 128-bit lane holding sub-blocks 2 chunk and 2 chunk + 1
    static const int8_t kPairCtl[64] = {
        0, -1, 8, -1, 0, -1, 8, -1, 1, -1, 9, -1, 1, -1, 9, -1,
        2, -1, 10, -1, 2, -1, 10, -1, 3, -1, 11, -1, 3, -1, 11, -1,
        4, -1, 12, -1, 4, -1, 12, -1, 5, -1, 13, -1, 5, -1, 13, -1,
        6, -1, 14, -1, 6, -1, 14, -1, 7, -1, 15, -1, 7, -1, 15, -1 };
    const __m512i pair_ctl = _mm512_loadu_si512(kPairCtl);
    // 128-bit lane `chunk` of the scales x4, with the immediates spelled out: `chunk * 0x55` is an immediate only
    // once the chunk loop is unrolled, which -O0 / -O1 builds (debug, sanitizers) do not do
    const __m512i sc_lanes[4] = {
        _mm512_shuffle_i32x4(bytes.sc, bytes.sc, 0x00), _mm512_shuffle_i32x4(bytes.sc, bytes.sc, 0x55),
        _mm512_shuffle_i32x4(bytes.sc, bytes.sc, 0xAA), _mm512_shuffle_i32x4(bytes.sc, bytes.sc, 0xFF) };
    __m512i isum[NC];
    LR_UNROLL for (int c = 0; c < NC; c++) isum[c] = _mm512_setzero_si512();
    LR_UNROLL for (int chunk = 0; chunk < 4; chunk++) {
        __m512i lo[4], hi[4];
        LR_UNROLL for (int t = 0; t < 4; t++) {
            const __m512i raw = _mm512_loadu_si512(blk.qs + (4 * chunk + t) * 64);
            lo[t] = _mm512_and_si512(raw, low4);
            hi[t] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low4);
        }
        const __m512i scale_pairs = _mm512_shuffle_epi8(sc_lanes[chunk], pair_ctl);
        LR_UNROLL for (int c = 0; c < NC; c++) {
            int64_t xq[8];
            std::memcpy(xq, x[c * stride].q + 64 * chunk, sizeof(xq));
            __m512i dlo = _mm512_setzero_si512(), dhi = _mm512_setzero_si512();
            LR_UNROLL for (int t = 0; t < 4; t++) {
                dlo = _mm512_dpbusd_epi32(dlo, lo[t], _mm512_set1_epi64(xq[t]));
                dhi = _mm512_dpbusd_epi32(dhi, hi[t], _mm512_set1_epi64(xq[4 + t]));
            }
            const __m512i pairs = _mm512_mask_blend_epi16(0xAAAAAAAA, dlo, _mm512_slli_epi32(dhi, 16));
            isum[c] = _mm512_dpwssd_epi32(isum[c], pairs, scale_pairs);
        }
    }
    // mins: lane 2r + h takes sub-blocks 4h, 4h + 1 (m01) and 4h + 2, 4h + 3 (m23) of row r, as int16 pairs
    const __m512i mn_lo = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(bytes.mn));       // words 8j + r, j < 4
    const __m512i mn_hi = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(bytes.mn, 1)); // words 32 + 8(j-4) + r
    static const int16_t kM01[32] = { 0, 8, 32, 40, 1, 9, 33, 41, 2, 10, 34, 42, 3, 11, 35, 43,
                                      4, 12, 36, 44, 5, 13, 37, 45, 6, 14, 38, 46, 7, 15, 39, 47 };
    static const int16_t kM23[32] = { 16, 24, 48, 56, 17, 25, 49, 57, 18, 26, 50, 58, 19, 27, 51, 59,
                                      20, 28, 52, 60, 21, 29, 53, 61, 22, 30, 54, 62, 23, 31, 55, 63 };
    const __m512i m01 = _mm512_permutex2var_epi16(mn_lo, _mm512_loadu_si512(kM01), mn_hi);
    const __m512i m23 = _mm512_permutex2var_epi16(mn_lo, _mm512_loadu_si512(kM23), mn_hi);
    const __m512 dv = rows_twice(blk.d), dminv = rows_twice(blk.dmin);
    LR_UNROLL for (int c = 0; c < NC; c++) {
        const BlockXK & xb = x[c * stride];
        int64_t a, b;
        std::memcpy(&a, xb.bs_a, sizeof(a));
        std::memcpy(&b, xb.bs_b, sizeof(b));
        const __m512i imin = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(_mm512_setzero_si512(), m01, _mm512_set1_epi64(a)),
                                                 m23, _mm512_set1_epi64(b));
        const __m512 dx = _mm512_set1_ps(xb.d);
        acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[c]), _mm512_mul_ps(dv, dx), acc[c]);
        acc[c] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(imin), _mm512_mul_ps(dminv, dx), acc[c]);
    }
}

// y[c * ldy + r] for the 8 rows of one group (its nsb blocks, read in order, the block kQ4Prefetch ahead
// asked for early) and NC columns (x: column 0's super-blocks, the next columns nsb blocks apart)
constexpr int64_t kQ4Prefetch = 4; // blocks (4.5 KB) ahead: of 2, 4, 8, 16, 32, the best streaming 25 MB on Zen 4
template <int NC>
LR_VNNI void tile_q4_K(const uint8_t * group, int64_t nsb, const BlockXK * x, float * y, int64_t ldy) {
    const BlockQ4Kx8 * blocks = (const BlockQ4Kx8 *) group;
    __m512 acc[NC];
    LR_UNROLL for (int c = 0; c < NC; c++) acc[c] = _mm512_setzero_ps();
    for (int64_t s = 0; s < nsb; s++) {
        const char * ahead = (const char *) (blocks + s + kQ4Prefetch);
        LR_UNROLL for (int l = 0; l < (int) (sizeof(BlockQ4Kx8) / 64); l++) _mm_prefetch(ahead + 64 * l, _MM_HINT_T0);
        step_q4_K<NC>(blocks[s], x + s, nsb, acc);
    }
    LR_UNROLL for (int c = 0; c < NC; c++) {
        // lanes 2r and 2r + 1 hold the two halves of row r
        const __m512 sums = _mm512_add_ps(acc[c], _mm512_permute_ps(acc[c], 0xB1)); // row r in lanes 2r, 2r + 1
        const __m512 rows = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0), sums);
        _mm256_storeu_ps(y + c * ldy, _mm512_castps512_ps256(rows));
    }
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

// ---- sharing a product among the threads -------------------------------------------------------------
// The rows are cut into chunks that the threads claim in turn, so that a thread slowed down (a busy core, a
// vCPU the hypervisor holds back) takes fewer of them instead of keeping the others waiting at the next
// barrier. The two counters live in the op's op_params past ggml's custom-op parameters (a function
// pointer, an int and a pointer: 24 bytes), which ggml zeroes when it makes the op; the last thread to
// finish zeroes them again for the graph's next run (ggml's barrier between ops orders that).
constexpr int kChunkNext = 12, kChunkDone = 13; // op_params indices (int32)
static_assert(kChunkNext * sizeof(int32_t) >= 2 * sizeof(void *) + sizeof(int64_t), "past ggml_custom_op_params");
static_assert(kChunkDone * sizeof(int32_t) < GGML_MAX_OP_PARAMS, "inside op_params");
constexpr int64_t kChunksPerThread = 8;

class Chunks {
public:
    // n units (panels, groups of rows) for nth threads
    Chunks(ggml_tensor * dst, int nth, int64_t n) : nth_(nth), n_(n),
        per_(std::max<int64_t>(1, n / (kChunksPerThread * nth))), next_(dst->op_params + kChunkNext),
        done_(dst->op_params + kChunkDone) {}
    Chunks(const Chunks &) = delete;
    Chunks & operator=(const Chunks &) = delete;
    ~Chunks() {
        if (__atomic_add_fetch(done_, 1, __ATOMIC_ACQ_REL) == nth_) {
            __atomic_store_n(next_, 0, __ATOMIC_RELAXED);
            __atomic_store_n(done_, 0, __ATOMIC_RELEASE);
        }
    }
    // the next chunk [u0, u1) of units, or false when none is left
    bool claim(int64_t & u0, int64_t & u1) {
        const int64_t c = __atomic_fetch_add(next_, 1, __ATOMIC_RELAXED);
        u0 = c * per_;
        if (u0 >= n_) return false;
        u1 = std::min(n_, u0 + per_);
        return true;
    }

private:
    const int nth_;
    const int64_t n_, per_;
    int32_t * const next_;
    int32_t * const done_;
};

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

// dst [m, n] = w [k, m] (repacked) times the quantized columns; the threads claim chunks of panels
template <typename XBlock, int MaxCols, size_t NTiles>
void mul_panels(ggml_tensor * dst, int nth, const std::array<TileFn<XBlock>, NTiles> & tiles,
                int64_t blocks_per_row, int64_t panel_bytes) {
    const ggml_tensor * w = dst->src[0];
    const ggml_tensor * xq = dst->src[1];
    const int64_t m = w->ne[1];
    const int64_t n = dst->ne[1];
    const XBlock * x = (const XBlock *) xq->data;
    float * y = (float *) dst->data;
    Chunks chunks(dst, nth, m / kVnniRows);
    int64_t p0, p1;
    while (chunks.claim(p0, p1)) {
        for (int64_t p = p0; p < p1; p++) {
            const uint8_t * panel = (const uint8_t *) w->data + p * panel_bytes;
            for (int64_t c = 0; c < n; c += MaxCols) {
                const int64_t nc = std::min<int64_t>(MaxCols, n - c);
                tiles[(size_t) nc - 1](panel, blocks_per_row, x + c * blocks_per_row, y + c * m + p * kVnniRows, m);
            }
        }
    }
}

void mul_op_q8_0(ggml_tensor * dst, int, int nth, void *) {
    static const auto tiles = tiles_q8_0(std::make_integer_sequence<int, kMaxColsQ8>{});
    const int64_t nb = dst->src[0]->ne[0] / kQ8Block;
    mul_panels<BlockX8, kMaxColsQ8>(dst, nth, tiles, nb, nb * (kQ8PanelQuant + kQ8PanelScale));
}

void mul_op_q6_K(ggml_tensor * dst, int, int nth, void *) {
    static const auto tiles = tiles_q6_K(std::make_integer_sequence<int, kMaxColsQ6>{});
    const int64_t nsb = dst->src[0]->ne[0] / kQK;
    mul_panels<BlockXK, kMaxColsQ6>(dst, nth, tiles, nsb, nsb * (kQ6PanelQuant + kQ6PanelScale + kQ6PanelD));
}

template <int... I>
constexpr auto tiles_q4_K(std::integer_sequence<int, I...>) {
    return std::array<TileFn<BlockXK>, sizeof...(I)>{ &tile_q4_K<I + 1>... };
}

// dst [m, n] = w [k, m] (ggml's block_q4_Kx8 groups of 8 rows) times the quantized columns; the threads claim
// chunks of groups, and each group meets all columns, kMaxColsQ4 at a time, while its blocks are in cache
LR_VNNI void mul_op_q4_K(ggml_tensor * dst, int, int nth, void * weight) {
    static const auto tiles = tiles_q4_K(std::make_integer_sequence<int, kMaxColsQ4>{});
    const ggml_tensor * w = (const ggml_tensor *) weight; // not a source: see vnni_mul_quantized
    const int64_t nsb = w->ne[0] / kQK;
    const int64_t m = w->ne[1];
    const int64_t n = dst->ne[1];
    const BlockXK * x = (const BlockXK *) dst->src[0]->data;
    float * y = (float *) dst->data;
    Chunks chunks(dst, nth, m / kQ4Rows);
    int64_t g0, g1;
    while (chunks.claim(g0, g1)) {
        for (int64_t g = g0; g < g1; g++) {
            const uint8_t * group = (const uint8_t *) w->data + g * nsb * (int64_t) sizeof(BlockQ4Kx8);
            for (int64_t c = 0; c < n; c += kMaxColsQ4) {
                const int64_t nc = std::min<int64_t>(kMaxColsQ4, n - c);
                tiles[(size_t) nc - 1](group, nsb, x + c * nsb, y + c * m + g * kQ4Rows, m);
            }
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

bool vnni_kernels_enabled() {
    const char * env = std::getenv("LLAVA_RAD_CPU_KERNELS");
    const std::string want = env ? env : "";
    if (want.empty() || want == "auto") return vnni_cpu_supported();
    if (want == "ggml") return false;
    if (want == "vnni") {
        if (!vnni_cpu_supported()) {
            fail(LR_ERR_BACKEND, "LLAVA_RAD_CPU_KERNELS=vnni: this CPU lacks AVX512-VNNI (or AVX512F/BW/VL, F16C, FMA)");
        }
        return true;
    }
    fail(LR_ERR_INVALID_ARGUMENT, format("LLAVA_RAD_CPU_KERNELS must be auto, vnni or ggml, got '%s'", want.c_str()));
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
    ggml_tensor * y = nullptr;
    if (layout == VnniLayout::Q8_0x16) {
        y = ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], xq->ne[1], 1, 1, args, 2, mul_op_q8_0, GGML_N_TASKS_MAX, nullptr);
    } else if (layout == VnniLayout::Q6_Kx16) {
        y = ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], xq->ne[1], 1, 1, args, 2, mul_op_q6_K, GGML_N_TASKS_MAX, nullptr);
    } else if (layout == VnniLayout::Q4_Kx8) {
        // w lives in ggml's CPU_REPACK buffer, whose supports_op() would refuse any op but ggml's products
        // reading it, so the op gets w as user data (weights never change while a graph runs)
        ggml_tensor * xargs[] = { xq };
        y = ggml_custom_4d(ctx, GGML_TYPE_F32, w->ne[1], xq->ne[1], 1, 1, xargs, 1, mul_op_q4_K, GGML_N_TASKS_MAX, w);
    }
    if (y != nullptr) {
        // the chunk counters (see Chunks) start at zero
        if (y->op_params[kChunkNext] != 0 || y->op_params[kChunkDone] != 0) fail(LR_ERR_INTERNAL, "vnni_mul_quantized: op_params in use");
        return y;
    }
#endif
    (void) args;
    fail(LR_ERR_INTERNAL, "vnni_mul_quantized: no VNNI kernels for this layout on this build");
}

} // namespace lr
