// vnni_matmul.h's kernels against ggml's own products (q8_0: llamafile's tinyBLAS for many columns, vec_dot
// for one; q6_K: vec_dot with q8_K activations; q4_K: ggml's repacked 8x8 gemm): same inputs, results equal
// up to float summation order. The repacking is checked against ggml's dequantizers.
#include "harness.h"
#include "backend.h"
#include "vnni_matmul.h"

#include "ggml.h"
#include "ggml-backend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

struct Result { std::vector<float> ggml, ours; };

std::vector<float> normal_values(size_t n, float stddev, std::mt19937 & rng) {
    std::normal_distribution<float> normal(0.0f, stddev);
    std::vector<float> v(n);
    for (float & x : v) x = normal(rng);
    return v;
}

// y = w x for a random w [k, m] of `type` and f32 x [k, n], once through ggml_mul_mat and once repacked
Result both_products(ggml_type type, int64_t k, int64_t m, int64_t n, int threads, uint32_t seed) {
    std::mt19937 rng(seed);
    const std::vector<float> wf = normal_values((size_t) (k * m), 0.05f, rng);
    std::vector<float> xf = normal_values((size_t) (k * n), 1.0f, rng);
    std::mt19937 rng_other(seed + 1000);
    for (int64_t i = 0; i < 256 && n > 1 && i < k; i++) xf[(size_t) (k + i)] = 0.0f; // all-zero blocks: scale 0
    const size_t wbytes = ggml_row_size(type, k) * (size_t) m;
    std::vector<uint8_t> wq(wbytes);
    ggml_quantize_chunk(type, wf.data(), wq.data(), 0, m, k, nullptr);
    // q4_K: ggml repacks it into its CPU_REPACK buffer and our kernels read that; the others we repack
    const bool q4 = type == GGML_TYPE_Q4_K;
    const lr::VnniLayout layout = q4 ? lr::VnniLayout::Q4_Kx8 : lr::vnni_layout_for(type, k, m);
    CHECK(layout != lr::VnniLayout::None);
    ggml_backend_buffer_type_t repack = q4 ? lr::cpu_repack_buffer_type() : nullptr;
    CHECK(!q4 || repack != nullptr);

    ggml_backend_t cpu = lr::new_cpu_backend(threads);
    Result r;
    for (int ours = 0; ours < 2; ours++) {
        ggml_init_params ip = { 16 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
        ggml_context * ctx = ggml_init(ip);
        ggml_init_params wp = { ggml_tensor_overhead(), nullptr, true };
        ggml_context * wctx = ggml_init(wp); // w alone: in ggml's repacking buffer for q4_K
        ggml_tensor * w = ggml_new_tensor_2d(wctx, type, k, m);
        ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, n);
        ggml_tensor * y = ours ? lr::vnni_mul_quantized(ctx, layout, w, lr::vnni_quantize(ctx, layout, x)) : ggml_mul_mat(ctx, w, x);
        ggml_cgraph * gf = ggml_new_graph(ctx);
        ggml_build_forward_expand(gf, y);
        ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, cpu);
        ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, q4 ? repack : ggml_backend_get_default_buffer_type(cpu));
        CHECK(wbuf != nullptr);
        std::vector<uint8_t> wdata = wq;
        if (ours && !q4) lr::vnni_repack(layout, wdata.data(), k, m);
        ggml_backend_tensor_set(w, wdata.data(), 0, wbytes);
        if (q4) CHECK(lr::vnni_q4_Kx8_matches(w->data, wq.data(), k));
        if (ours) {
            // a first run on other inputs: the second must not reuse anything of it (the threads' shares of
            // the rows are claimed afresh on every run)
            const std::vector<float> other = normal_values(xf.size(), 1.0f, rng_other);
            ggml_backend_tensor_set(x, other.data(), 0, other.size() * sizeof(float));
            CHECK(ggml_backend_graph_compute(cpu, gf) == GGML_STATUS_SUCCESS);
        }
        ggml_backend_tensor_set(x, xf.data(), 0, xf.size() * sizeof(float));
        CHECK(ggml_backend_graph_compute(cpu, gf) == GGML_STATUS_SUCCESS);
        std::vector<float> & out = ours ? r.ours : r.ggml;
        out.resize((size_t) (m * n));
        ggml_backend_tensor_get(y, out.data(), 0, out.size() * sizeof(float));
        ggml_backend_buffer_free(wbuf);
        ggml_backend_buffer_free(buf);
        ggml_free(wctx);
        ggml_free(ctx);
    }
    ggml_backend_free(cpu);
    return r;
}

struct Shape { int64_t k, m, n; int threads; };

void check_products(ggml_type type, const std::vector<Shape> & shapes) {
    uint32_t seed = 1;
    for (const Shape & s : shapes) {
        const Result r = both_products(type, s.k, s.m, s.n, s.threads, seed++);
        double max_diff = 0.0, max_abs = 0.0;
        for (size_t i = 0; i < r.ggml.size(); i++) {
            max_diff = std::max(max_diff, std::fabs((double) r.ggml[i] - (double) r.ours[i]));
            max_abs = std::max(max_abs, std::fabs((double) r.ggml[i]));
        }
        const std::string what = std::string(ggml_type_name(type)) + " k=" + std::to_string(s.k) + " m=" + std::to_string(s.m) +
                                 " n=" + std::to_string(s.n) + ": max |ggml - ours| " + std::to_string(max_diff) +
                                 " for values up to " + std::to_string(max_abs);
        CHECK_MSG(max_abs > 0.1, what); // the product is not trivially zero
        CHECK_MSG(max_diff <= 2e-6 * max_abs * std::sqrt((double) s.k), what);
    }
}

} // namespace

TEST("vnni: which matrices are repacked") {
    CHECK(lr::vnni_layout_for(GGML_TYPE_Q8_0, 4096, 11008) == lr::VnniLayout::Q8_0x16);
    CHECK(lr::vnni_layout_for(GGML_TYPE_Q8_0, 1024, 32000) == lr::VnniLayout::Q8_0x16);
    CHECK(lr::vnni_layout_for(GGML_TYPE_Q6_K, 11008, 4096) == lr::VnniLayout::Q6_Kx16);
    CHECK(lr::vnni_layout_for(GGML_TYPE_Q8_0, 1000, 32) == lr::VnniLayout::None); // q8_0 rows: k % 32 == 0
    CHECK(lr::vnni_layout_for(GGML_TYPE_Q6_K, 4096 + 32, 32) == lr::VnniLayout::None); // q6_K rows: k % 256 == 0
    CHECK(lr::vnni_layout_for(GGML_TYPE_Q8_0, 1024, 40) == lr::VnniLayout::None);  // panels of 16 rows
    CHECK(lr::vnni_layout_for(GGML_TYPE_Q4_K, 4096, 4096) == lr::VnniLayout::None);
    CHECK(lr::vnni_layout_for(GGML_TYPE_F16, 4096, 4096) == lr::VnniLayout::None);
    CHECK(lr::vnni_layout_for(GGML_TYPE_Q8_0, 0, 16) == lr::VnniLayout::None);
}

TEST("vnni: q8_0 products equal ggml's up to float summation order") {
    if (!lr::vnni_cpu_supported()) SKIP("this CPU lacks AVX512-VNNI: the engine uses ggml's kernels here");
    // every column-tile width 1..16 and beyond, one and several panels, 1 to 3 threads (uneven splits)
    check_products(GGML_TYPE_Q8_0, {
        {32, 16, 1, 1}, {64, 32, 3, 1}, {256, 48, 7, 3}, {256, 64, 16, 2}, {512, 16, 17, 3},
        {96, 80, 33, 2}, {1024, 128, 100, 2}, {2816, 64, 5, 3}, {1024, 2000, 1, 2},
    });
}

TEST("vnni: q6_K products equal ggml's up to float summation order") {
    if (!lr::vnni_cpu_supported()) SKIP("this CPU lacks AVX512-VNNI: the engine uses ggml's kernels here");
    // column tiles of 1..8 and beyond, one and several super-blocks and panels, uneven thread splits
    check_products(GGML_TYPE_Q6_K, {
        {256, 16, 1, 1}, {256, 32, 3, 1}, {512, 48, 7, 3}, {256, 64, 8, 2}, {768, 16, 9, 3},
        {1024, 80, 33, 2}, {2816, 32, 5, 2}, {1024, 2000, 1, 2}, {4096, 64, 20, 2},
    });
}

TEST("vnni: q4_K products (ggml's repacked blocks read as they are) equal ggml's up to float summation order") {
    if (!lr::vnni_cpu_supported()) SKIP("this CPU lacks AVX512-VNNI: the engine uses ggml's kernels here");
    // column steps of 1..8 and beyond, one and several super-blocks and groups of 8 rows, uneven splits
    check_products(GGML_TYPE_Q4_K, {
        {256, 8, 16, 1}, {256, 16, 17, 1}, {512, 24, 23, 3}, {768, 64, 40, 2}, {1024, 80, 64, 2},
        {2816, 32, 19, 2}, {4096, 64, 100, 2}, {256, 2000, 16, 2},
    });
    // few columns (decoding one or several sequences): every tile width 1..8
    check_products(GGML_TYPE_Q4_K, {
        {256, 8, 1, 1}, {512, 16, 2, 1}, {768, 24, 3, 3}, {1024, 64, 4, 2}, {2816, 32, 5, 2},
        {4096, 64, 7, 2}, {1024, 40, 15, 3}, {256, 2000, 1, 2}, {11008, 24, 1, 2},
    });
}

TEST("vnni: ggml's q4_K blocks are recognised, and a different layout is not") {
    // the 8x8 layout is what ggml's x86 modules with AVX2 make (arm64 ones make others, or none, and ggml's
    // repack buffer then cannot take a q4_K matrix at all); only the VNNI kernels read it
    if (!lr::vnni_cpu_supported()) SKIP("this CPU lacks AVX512-VNNI: the engine uses ggml's kernels here");
    const int64_t k = 512, m = 16;
    std::mt19937 rng(3);
    const std::vector<float> wf = normal_values((size_t) (k * m), 1.0f, rng);
    std::vector<uint8_t> q4(ggml_row_size(GGML_TYPE_Q4_K, k) * m);
    ggml_quantize_chunk(GGML_TYPE_Q4_K, wf.data(), q4.data(), 0, m, k, nullptr);
    ggml_backend_buffer_type_t repack = lr::cpu_repack_buffer_type();
    if (!repack) SKIP("this ggml build has no CPU_REPACK buffer type");
    ggml_init_params ip = { 2 * ggml_tensor_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    ggml_tensor * w = ggml_new_tensor_2d(ctx, GGML_TYPE_Q4_K, k, m);
    ggml_backend_buffer_t buf = ggml_backend_buft_alloc_buffer(repack, ggml_backend_buft_get_alloc_size(repack, w));
    CHECK(ggml_backend_tensor_alloc(buf, w, ggml_backend_buffer_get_base(buf)) == GGML_STATUS_SUCCESS);
    ggml_backend_tensor_set(w, q4.data(), 0, q4.size());
    CHECK(lr::vnni_q4_Kx8_matches(w->data, q4.data(), k));
    CHECK(!lr::vnni_q4_Kx8_matches(q4.data(), q4.data(), k)); // the plain q4_K rows are not that layout
    std::vector<uint8_t> other(q4.size());
    std::memcpy(other.data(), w->data, other.size());
    other[16 * 2 + 96 + 64 + 8] ^= 1; // one quant byte of row 1
    CHECK(!lr::vnni_q4_Kx8_matches(other.data(), q4.data(), k));
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
}

TEST("vnni: repacked q8_0 is a permutation of the bytes (quants offset by 128)") {
    const int64_t k = 64, m = 32;
    std::vector<uint8_t> q8(ggml_row_size(GGML_TYPE_Q8_0, k) * m);
    for (size_t i = 0; i < q8.size(); i++) q8[i] = (uint8_t) (i * 37 + 11);
    std::vector<uint8_t> packed = q8;
    lr::vnni_repack(lr::VnniLayout::Q8_0x16, packed.data(), k, m);
    // row r, value i of block b: quant at q8 offset (r * 2 + b) * 34 + 2 + i
    const int64_t panel_bytes = 2 * 16 * 34;
    for (int64_t r = 0; r < m; r++) {
        for (int64_t b = 0; b < 2; b++) {
            const uint8_t * blk = q8.data() + (r * 2 + b) * 34;
            const uint8_t * panel = packed.data() + (r / 16) * panel_bytes;
            // scale: after the panel's 2 * 512 quant bytes, 16 fp16 per block
            CHECK(panel[2 * 512 + b * 32 + (r % 16) * 2] == blk[0] && panel[2 * 512 + b * 32 + (r % 16) * 2 + 1] == blk[1]);
            for (int64_t i = 0; i < 32; i++) {
                const uint8_t got = panel[b * 512 + (i / 4) * 64 + (r % 16) * 4 + i % 4];
                CHECK(got == (uint8_t) (blk[2 + i] ^ 0x80));
            }
        }
    }
}

TEST("vnni: repacked q6_K holds ggml's dequantized values") {
    const int64_t k = 512, m = 32, nsb = k / 256;
    std::mt19937 rng(7);
    const std::vector<float> wf = normal_values((size_t) (k * m), 1.0f, rng);
    std::vector<uint8_t> q6(ggml_row_size(GGML_TYPE_Q6_K, k) * m);
    ggml_quantize_chunk(GGML_TYPE_Q6_K, wf.data(), q6.data(), 0, m, k, nullptr);
    std::vector<float> ref((size_t) (k * m));
    ggml_get_type_traits(GGML_TYPE_Q6_K)->to_float(q6.data(), ref.data(), k * m);
    std::vector<uint8_t> packed = q6;
    lr::vnni_repack(lr::VnniLayout::Q6_Kx16, packed.data(), k, m);
    // the layout documented in vnni_matmul.h, read back value by value
    const int64_t panel_bytes = 16 * nsb * 210;
    int mismatches = 0;
    for (int64_t r = 0; r < m; r++) {
        const uint8_t * panel = packed.data() + (r / 16) * panel_bytes;
        const int8_t * scales = (const int8_t *) (panel + nsb * 3072);
        const uint8_t * ds = panel + nsb * (3072 + 256);
        for (int64_t v = 0; v < k; v++) {
            const int64_t s = v / 256, j = (v % 256) / 16, u = (v % 16) / 4, i = v % 4, lane = (r % 16) * 4 + i;
            const uint8_t * sub = panel + s * 3072 + j * 192;
            const int lo = (sub[(u / 2) * 64 + lane] >> (4 * (u % 2))) & 0x0F;
            const int hi = (sub[128 + lane] >> (2 * u)) & 3;
            uint16_t d16;
            std::memcpy(&d16, ds + s * 32 + (r % 16) * 2, sizeof(d16));
            const float value = ggml_fp16_to_fp32(d16) * (float) scales[s * 256 + j * 16 + (r % 16)] * (float) ((lo | (hi << 4)) - 32);
            mismatches += value != ref[(size_t) (r * k + v)];
        }
    }
    CHECK_MSG(mismatches == 0, std::to_string(mismatches) + " values differ from ggml's dequantization");
}
