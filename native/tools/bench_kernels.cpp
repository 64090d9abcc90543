// llava-rad-bench-kernels: one matrix product y = w x timed with ggml's own CPU kernels and with ours
// (native/src/vnni_matmul.h) on the same random inputs, same threads. Prints one JSON line per case.
//
//   llava-rad-bench-kernels [--threads N] [--reps R] [--copies C] TYPE:K:M:N ...
//     TYPE q8_0 | q6_K | q4_K (q4_K: w in ggml's CPU_REPACK buffer, as a CPU-only run places it)
//     K values per row, M rows, N columns (prompt tokens; 1 = one decode step)
//
// ggml's side is ggml_mul_mat (llamafile's tinyBLAS for q8_0 with many columns, vec_dot otherwise, ggml's
// repacked gemm / gemv for q4_K); ours is the activations' quantization plus the product, as the decoder
// graph runs them. Best of R runs after one warm-up; the matrix stays in cache between runs when it fits.
// --copies C runs C products in one graph, each on its own copy of the matrix, and reports the time per
// product: with C copies larger than the caches the weights stream from memory, as in a decode step.
#include "backend.h"
#include "vnni_matmul.h"

#include "ggml.h"
#include "ggml-backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

double seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Case { ggml_type type; int64_t k, m, n; };

bool parse_case(const std::string & s, Case & c) {
    char type[16];
    long long k, m, n;
    if (std::sscanf(s.c_str(), "%15[^:]:%lld:%lld:%lld", type, &k, &m, &n) != 4 || k <= 0 || m <= 0 || n <= 0) return false;
    const std::string t = type;
    c.type = t == "q8_0" ? GGML_TYPE_Q8_0 : t == "q6_K" ? GGML_TYPE_Q6_K : t == "q4_K" ? GGML_TYPE_Q4_K : GGML_TYPE_COUNT;
    c.k = k, c.m = m, c.n = n;
    return c.type != GGML_TYPE_COUNT;
}

// best seconds of `reps` runs of y = w x; ours: through vnni_matmul
double time_product(const Case & c, bool ours, int threads, int reps, int copies, const std::vector<uint8_t> & wq,
                    const std::vector<float> & xf) {
    const bool q4 = c.type == GGML_TYPE_Q4_K;
    const lr::VnniLayout layout = q4 ? lr::VnniLayout::Q4_Kx8 : lr::vnni_layout_for(c.type, c.k, c.m);
    ggml_backend_t cpu = lr::new_cpu_backend(threads);
    ggml_init_params wp = { (size_t) copies * ggml_tensor_overhead(), nullptr, true };
    ggml_context * wctx = ggml_init(wp);
    std::vector<ggml_tensor *> ws;
    for (int i = 0; i < copies; i++) ws.push_back(ggml_new_tensor_2d(wctx, c.type, c.k, c.m));
    ggml_init_params ip = { (size_t) (4 * copies + 16) * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    ggml_tensor * x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, c.k, c.n);
    ggml_cgraph * gf = ggml_new_graph(ctx);
    for (ggml_tensor * w : ws) {
        ggml_tensor * y = ours ? lr::vnni_mul_quantized(ctx, layout, w, lr::vnni_quantize(ctx, layout, x)) : ggml_mul_mat(ctx, w, x);
        ggml_build_forward_expand(gf, y);
    }
    ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, q4 ? lr::cpu_repack_buffer_type() : ggml_backend_get_default_buffer_type(cpu));
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, cpu);
    std::vector<uint8_t> wdata = wq;
    if (ours && !q4) lr::vnni_repack(layout, wdata.data(), c.k, c.m);
    for (ggml_tensor * w : ws) ggml_backend_tensor_set(w, wdata.data(), 0, wdata.size());
    ggml_backend_tensor_set(x, xf.data(), 0, xf.size() * sizeof(float));
    ggml_backend_graph_compute(cpu, gf); // warm-up
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = seconds();
        ggml_backend_graph_compute(cpu, gf);
        best = std::min(best, (seconds() - t0) / copies);
    }
    ggml_backend_buffer_free(buf);
    ggml_backend_buffer_free(wbuf);
    ggml_free(ctx);
    ggml_free(wctx);
    ggml_backend_free(cpu);
    return best;
}

} // namespace

int main(int argc, char ** argv) {
    int threads = 2, reps = 10, copies = 1;
    std::vector<Case> cases;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--threads" && i + 1 < argc) threads = std::atoi(argv[++i]);
        else if (a == "--reps" && i + 1 < argc) reps = std::atoi(argv[++i]);
        else if (a == "--copies" && i + 1 < argc) copies = std::atoi(argv[++i]);
        else {
            Case c;
            if (!parse_case(a, c)) {
                std::fprintf(stderr, "usage: llava-rad-bench-kernels [--threads N] [--reps R] [--copies C] TYPE:K:M:N ... (TYPE q8_0|q6_K|q4_K)\n");
                return 2;
            }
            cases.push_back(c);
        }
    }
    if (cases.empty() || threads < 1 || reps < 1 || copies < 1) {
        std::fprintf(stderr, "usage: llava-rad-bench-kernels [--threads N] [--reps R] [--copies C] TYPE:K:M:N ... (TYPE q8_0|q6_K|q4_K)\n");
        return 2;
    }
    if (!lr::vnni_cpu_supported()) {
        std::fprintf(stderr, "this CPU lacks AVX512-VNNI: there are no kernels of ours to time\n");
        return 1;
    }
    for (const Case & c : cases) {
        const bool q4 = c.type == GGML_TYPE_Q4_K;
        const int64_t block = ggml_blck_size(c.type);
        if (c.k % block != 0 || c.m % (q4 ? 8 : lr::kVnniRows) != 0 || (q4 && !lr::cpu_repack_buffer_type())) {
            std::fprintf(stderr, "%s: k must be a multiple of %lld and m of %d\n", ggml_type_name(c.type), (long long) block, q4 ? 8 : 16);
            return 2;
        }
        std::mt19937 rng(1);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        std::vector<float> wf((size_t) (c.k * c.m)), xf((size_t) (c.k * c.n));
        for (float & v : wf) v = normal(rng) * 0.05f;
        for (float & v : xf) v = normal(rng);
        std::vector<uint8_t> wq(ggml_row_size(c.type, c.k) * (size_t) c.m);
        ggml_quantize_chunk(c.type, wf.data(), wq.data(), 0, c.m, c.k, nullptr);
        const double t_ggml = time_product(c, false, threads, reps, copies, wq, xf);
        const double t_ours = time_product(c, true, threads, reps, copies, wq, xf);
        const double gmac = (double) c.k * (double) c.m * (double) c.n / 1e9;
        std::printf("{\"type\":\"%s\",\"k\":%lld,\"m\":%lld,\"n\":%lld,\"threads\":%d,\"reps\":%d,\"copies\":%d,\"weight_bytes\":%zu,"
                    "\"ggml_ms\":%.4f,\"ours_ms\":%.4f,\"ggml_gmac_s\":%.2f,\"ours_gmac_s\":%.2f,\"speedup\":%.3f}\n",
                    ggml_type_name(c.type), (long long) c.k, (long long) c.m, (long long) c.n, threads, reps, copies, wq.size(),
                    t_ggml * 1e3, t_ours * 1e3, gmac / t_ggml, gmac / t_ours, t_ggml / t_ours);
        std::fflush(stdout);
    }
    return 0;
}
