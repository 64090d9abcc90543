// q8_0_gemm.h's kernels against ggml's own q8_0 matrix product (llamafile's tinyBLAS for many columns,
// ggml's vec_dot for one): same inputs, results equal up to float summation order.
#include "harness.h"
#include "q8_0_gemm.h"

#include "ggml.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace {

struct Result { std::vector<float> ggml, ours; };

// y = w x for a random q8_0 w [k, m] and f32 x [k, n], once through ggml_mul_mat and once repacked
Result both_products(int64_t k, int64_t m, int64_t n, int threads, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> wf((size_t) (k * m)), xf((size_t) (k * n));
    for (float & v : wf) v = normal(rng) * 0.05f;
    for (float & v : xf) v = normal(rng);
    xf[0] = 0.0f;                                              // an all-zero block: scale 0 on both sides
    for (int64_t i = 0; i < 32 && n > 1; i++) xf[(size_t) (k + i)] = 0.0f;
    const size_t wbytes = ggml_row_size(GGML_TYPE_Q8_0, k) * (size_t) m;
    std::vector<uint8_t> wq(wbytes);
    ggml_quantize_chunk(GGML_TYPE_Q8_0, wf.data(), wq.data(), 0, m, k, nullptr);

    ggml_backend_t cpu = ggml_backend_cpu_init();
    ggml_backend_cpu_set_n_threads(cpu, threads);
    Result r;
    for (int ours = 0; ours < 2; ours++) {
        ggml_init_params ip = { 16 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
        ggml_context * ctx = ggml_init(ip);
        ggml_tensor * w = ggml_new_tensor_2d(ctx, GGML_TYPE_Q8_0, k, m);
        ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, n);
        ggml_tensor * y = ours ? lr::q8x16_mul_quantized(ctx, w, lr::q8x16_quantize(ctx, x)) : ggml_mul_mat(ctx, w, x);
        ggml_cgraph * gf = ggml_new_graph(ctx);
        ggml_build_forward_expand(gf, y);
        ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, cpu);
        std::vector<uint8_t> wdata = wq;
        if (ours) lr::q8x16_repack(wdata.data(), k, m);
        ggml_backend_tensor_set(w, wdata.data(), 0, wbytes);
        ggml_backend_tensor_set(x, xf.data(), 0, xf.size() * sizeof(float));
        CHECK(ggml_backend_graph_compute(cpu, gf) == GGML_STATUS_SUCCESS);
        std::vector<float> & out = ours ? r.ours : r.ggml;
        out.resize((size_t) (m * n));
        ggml_backend_tensor_get(y, out.data(), 0, out.size() * sizeof(float));
        ggml_backend_buffer_free(buf);
        ggml_free(ctx);
    }
    ggml_backend_free(cpu);
    return r;
}

} // namespace

TEST("q8_0x16: shapes that can be repacked") {
    CHECK(lr::q8x16_shape_ok(4096, 11008));
    CHECK(lr::q8x16_shape_ok(1024, 32000));
    CHECK(!lr::q8x16_shape_ok(1000, 32));  // rows of q8_0 blocks need k % 32 == 0
    CHECK(!lr::q8x16_shape_ok(1024, 40));  // panels of 16 rows
    CHECK(!lr::q8x16_shape_ok(0, 16));
}

TEST("q8_0x16: products equal ggml's q8_0 product up to float summation order") {
    if (!lr::q8x16_cpu_supported()) SKIP("this CPU lacks AVX512-VNNI: the engine uses ggml's q8_0 kernels here");
    struct Shape { int64_t k, m, n; int threads; };
    // every column-tile width 1..16 and beyond, one and several panels, 1 and 3 threads (uneven splits)
    const Shape shapes[] = {
        {32, 16, 1, 1}, {64, 32, 3, 1}, {256, 48, 7, 3}, {256, 64, 16, 2}, {512, 16, 17, 3},
        {96, 80, 33, 2}, {1024, 128, 100, 2}, {2816, 64, 5, 3}, {1024, 32000 / 16, 1, 2},
    };
    uint32_t seed = 1;
    for (const Shape & s : shapes) {
        const Result r = both_products(s.k, s.m, s.n, s.threads, seed++);
        double max_diff = 0.0, max_abs = 0.0;
        for (size_t i = 0; i < r.ggml.size(); i++) {
            max_diff = std::fmax(max_diff, std::fabs((double) r.ggml[i] - (double) r.ours[i]));
            max_abs = std::fmax(max_abs, std::fabs((double) r.ggml[i]));
        }
        const std::string what = "k=" + std::to_string(s.k) + " m=" + std::to_string(s.m) + " n=" + std::to_string(s.n) +
                                 ": max |ggml - ours| " + std::to_string(max_diff) + " for values up to " + std::to_string(max_abs);
        CHECK_MSG(max_abs > 0.1, what);                 // the product is not trivially zero
        CHECK_MSG(max_diff <= 2e-6 * max_abs * std::sqrt((double) s.k), what);
    }
}

TEST("q8_0x16: repacking is a permutation of the q8_0 bytes (quants offset by 128)") {
    const int64_t k = 64, m = 32;
    std::vector<uint8_t> q8(ggml_row_size(GGML_TYPE_Q8_0, k) * m);
    for (size_t i = 0; i < q8.size(); i++) q8[i] = (uint8_t) (i * 37 + 11);
    std::vector<uint8_t> packed = q8;
    lr::q8x16_repack(packed.data(), k, m);
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
