// f16 matrix products must sum in single precision on every CPU module. Where the compiler is allowed
// half-precision vector arithmetic (x86-64 AVX512-FP16; arm64 armv8.2-a+fp16 and later: ggml's arm64 modules
// from armv8.2_2 on, or -mcpu=native on Graviton / Ampere / Apple CPUs), ggml's f16 dot products and
// llamafile's f16 kernels keep their running sums in float16: they overflow past 65504 and lose digits long
// before. The build takes that arithmetic away from ggml's CPU code (CMakeLists.txt); this test shows it on
// whatever modules this CPU runs, against exact float64 sums (it fails on an armv8.2-a+fp16 module built
// without that: Inf for the 524288 sums, 0.5% off on the others).
#include "harness.h"
#include "cpu_modules.h"

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace {

constexpr int64_t K = 4096; // the 7B decoder's width: the length of each dot product
constexpr int64_t M = 32;   // weight rows (outputs per column)

// W [K, M] f16 times X [K, n] (f32, or f16 as the decoder's attention feeds an f16 cache), computed on one module
std::vector<float> product(const lrtest::CpuModule & m, const std::vector<float> & w, const std::vector<float> & x, int64_t n, ggml_type xt) {
    ggml_init_params ip = { 8 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    ggml_tensor * tw = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, K, M);
    ggml_tensor * tx = ggml_new_tensor_2d(ctx, xt, K, n);
    ggml_tensor * y = ggml_mul_mat(ctx, tw, tx); // [M, n]
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, y);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, m.backend);
    CHECK(buf != nullptr);
    std::vector<ggml_fp16_t> h(w.size());
    ggml_fp32_to_fp16_row(w.data(), h.data(), (int64_t) w.size());
    ggml_backend_tensor_set(tw, h.data(), 0, h.size() * sizeof(ggml_fp16_t));
    const size_t nx = (size_t) (K * n); // the first n columns of x
    if (xt == GGML_TYPE_F16) {
        h.resize(nx);
        ggml_fp32_to_fp16_row(x.data(), h.data(), (int64_t) nx);
        ggml_backend_tensor_set(tx, h.data(), 0, nx * sizeof(ggml_fp16_t));
    } else {
        ggml_backend_tensor_set(tx, x.data(), 0, nx * sizeof(float));
    }
    CHECK(ggml_backend_graph_compute(m.backend, gf) == GGML_STATUS_SUCCESS);
    std::vector<float> out((size_t) (M * n));
    ggml_backend_tensor_get(y, out.data(), 0, out.size() * sizeof(float));
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    return out;
}

} // namespace

TEST("f16 products: every CPU module this machine runs sums them in single precision (exact float64 sums, 1-64 columns)") {
    // Every value is a multiple of 1/16 in (0, 4] (exact in f16), so every product is a multiple of 1/256 and
    // every partial sum of K of them stays below 2^24 / 256: summed in float32 in any order the result is
    // exact. Summed in float16, each of a few dozen running sums passes 512, where float16's step is 0.5.
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> step(1, 64);
    const std::vector<int64_t> columns = { 1, 3, 8, 16, 64 }; // one-token steps (vec_dot); batches (llamafile)
    const int64_t n_max = columns.back();
    std::vector<float> w((size_t) (K * M)), x((size_t) (K * n_max));
    for (float & v : w) v = (float) step(rng) / 16.0f;
    for (float & v : x) v = (float) step(rng) / 16.0f;
    // and a case whose float16 running sums overflow: 8 * 16 over 4096 terms = 524288 exactly
    const std::vector<float> w8((size_t) (K * M), 8.0f), x16((size_t) (K * n_max), 16.0f);

    std::string bad;
    int checked = 0;
    for (const lr::CpuVariant & v : lrtest::runnable_cpu_variants()) {
        lrtest::CpuModule m = lrtest::open_cpu_module(v, 2);
        for (ggml_type xt : { GGML_TYPE_F32, GGML_TYPE_F16 }) {
            for (int64_t n : columns) {
                const std::vector<float> y = product(m, w, x, n, xt);
                double worst = 0;
                for (int64_t j = 0; j < n; j++) {
                    for (int64_t i = 0; i < M; i++) {
                        double exact = 0;
                        for (int64_t k = 0; k < K; k++) exact += (double) w[(size_t) (i * K + k)] * (double) x[(size_t) (j * K + k)];
                        const double got = y[(size_t) (j * M + i)];
                        worst = std::isfinite(got) ? std::fmax(worst, std::fabs(got - exact) / exact) : INFINITY;
                    }
                }
                const std::vector<float> big = product(m, w8, x16, n, xt);
                size_t off = 0;
                for (float b : big) off += b != 524288.0f;
                checked += 2;
                const std::string where = m.name + ", f16 x " + ggml_type_name(xt) + ", " + std::to_string(n) + " columns: ";
                if (!(worst <= 1e-6)) bad += "\n       " + where + "relative error " + std::to_string(worst) + " against the exact sums";
                if (off) bad += "\n       " + where + std::to_string(off) + " of " + std::to_string(big.size()) + " sums of 4096 x 128 are not 524288 (e.g. " + std::to_string(big[0]) + ")";
            }
        }
        lrtest::close_cpu_module(m);
    }
    std::printf("     checked %d f16 products of %lld-term dot products against exact sums\n", checked, (long long) K);
    CHECK_MSG(bad.empty(), "f16 products not summed in single precision:" + bad);
}
