// ggml's CPU modules against each other, op by op: every module this CPU runs computes each op of the
// decoder and vision graphs on the same random inputs as the plainest one (the lowest-scoring module: x64,
// x86-64 with SSE2 only, on x86; armv8.0_1 on arm64), and must agree with it. All modules are opened side by side in this process (each keeps its own
// state), so a difference is pinned to one op of one module, not to a whole model run.
// LR_DEBUG_VARIANTS=1 prints every (module, op) difference; LR_DEBUG_VARIANTS_OPS=TEXT runs only the ops whose name
// contains TEXT (to look into one op under emulation, where the whole set takes minutes).
#include "harness.h"
#include "cpu_modules.h"

#include "ggml.h"
#include "ggml-alloc.h"
#include "ggml-backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

using lrtest::CpuModule;

// one op (or a few) on inputs made by fill(); its output compared as f32
struct OpCase {
    const char * name;
    double tol; // max |a - b| / max |baseline|
    std::function<ggml_tensor *(ggml_context *, std::vector<ggml_tensor *> & inputs)> build;
};

void fill(ggml_tensor * t, std::mt19937 & rng) {
    const int64_t n = ggml_nelements(t);
    std::vector<uint8_t> bytes(ggml_nbytes(t));
    if (t->type == GGML_TYPE_I32) {
        // positions and row indices: 0 .. ne0-1 cycled within the smallest source the cases use (>= 32)
        std::vector<int32_t> v((size_t) n);
        for (int64_t i = 0; i < n; i++) v[(size_t) i] = (int32_t) ((i * 7) % 32);
        std::memcpy(bytes.data(), v.data(), bytes.size());
    } else if (t->type == GGML_TYPE_I64) {
        std::vector<int64_t> v((size_t) n);
        for (int64_t i = 0; i < n; i++) v[(size_t) i] = i; // distinct rows for set_rows
        std::memcpy(bytes.data(), v.data(), bytes.size());
    } else {
        std::normal_distribution<float> nd(0.0f, 1.0f);
        std::vector<float> f((size_t) n);
        for (float & x : f) x = nd(rng);
        if (std::strcmp(t->name, "mask") == 0) {
            for (int64_t i = 0; i < n; i++) f[(size_t) i] = (i % 5 == 4) ? -INFINITY : 0.0f; // causal-style holes
        }
        if (t->type == GGML_TYPE_F32) {
            std::memcpy(bytes.data(), f.data(), bytes.size());
        } else if (t->type == GGML_TYPE_F16) {
            ggml_fp32_to_fp16_row(f.data(), reinterpret_cast<ggml_fp16_t *>(bytes.data()), n);
        } else {
            for (float & x : f) x *= 0.05f; // weights
            ggml_quantize_chunk(t->type, f.data(), bytes.data(), 0, ggml_nrows(t), t->ne[0], nullptr);
        }
    }
    ggml_backend_tensor_set(t, bytes.data(), 0, bytes.size());
}

std::vector<float> run(const CpuModule & m, const OpCase & c, uint32_t seed) {
    ggml_init_params ip = { 64 * ggml_tensor_overhead() + ggml_graph_overhead(), nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    std::vector<ggml_tensor *> inputs;
    ggml_tensor * out = c.build(ctx, inputs);
    if (out->type != GGML_TYPE_F32) out = ggml_cast(ctx, out, GGML_TYPE_F32);
    ggml_cgraph * gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, out);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, m.backend);
    CHECK(buf != nullptr);
    std::mt19937 rng(seed);
    for (ggml_tensor * t : inputs) fill(t, rng);
    CHECK(ggml_backend_graph_compute(m.backend, gf) == GGML_STATUS_SUCCESS);
    std::vector<float> y((size_t) ggml_nelements(out));
    ggml_backend_tensor_get(out, y.data(), 0, y.size() * sizeof(float));
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    return y;
}

ggml_tensor * input(ggml_context * ctx, std::vector<ggml_tensor *> & in, ggml_type type, int64_t a, int64_t b = 1, int64_t c = 1,
                    const char * name = "") {
    ggml_tensor * t = ggml_new_tensor_3d(ctx, type, a, b, c);
    ggml_set_name(t, name);
    in.push_back(t);
    return t;
}

std::vector<OpCase> cases() {
    using In = std::vector<ggml_tensor *>;
    constexpr int64_t E = 256, F = 512, T = 20, HD = 64, H = 4, KV = 32, V = 32;
    std::vector<OpCase> c;
    auto matmul = [&](const char * name, ggml_type wt, int64_t k, int64_t m, int64_t n, double tol) {
        c.push_back({name, tol, [=](ggml_context * ctx, In & in) {
            ggml_tensor * w = input(ctx, in, wt, k, m);
            return ggml_mul_mat(ctx, ggml_reshape_2d(ctx, w, k, m), ggml_reshape_2d(ctx, input(ctx, in, GGML_TYPE_F32, k, n), k, n));
        }});
    };
    // the decoder's and the vision tower's matrix products (weight types x one column / a prompt's worth)
    for (ggml_type wt : { GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K }) {
        // quantized types quantize the activations too: a one-ulp difference may move one of them by a step
        const double tol = wt == GGML_TYPE_F32 ? 1e-5 : wt == GGML_TYPE_F16 ? 2e-3 : 2e-2;
        for (int64_t n : { (int64_t) 1, (int64_t) 2, (int64_t) 3, (int64_t) 5, T, (int64_t) 21, (int64_t) 23, (int64_t) 37, (int64_t) 64 }) {
            std::string name = std::string("mul_mat ") + ggml_type_name(wt) + " x f32, " + std::to_string(n) + " columns";
            matmul(strdup(name.c_str()), wt, E, F, n, tol);
        }
    }
    c.push_back({"rms_norm * weight", 1e-5, [=](ggml_context * ctx, In & in) {
        return ggml_mul(ctx, ggml_rms_norm(ctx, input(ctx, in, GGML_TYPE_F32, E, T), 1e-5f), input(ctx, in, GGML_TYPE_F32, E));
    }});
    c.push_back({"norm (layer norm)", 1e-5, [=](ggml_context * ctx, In & in) { return ggml_norm(ctx, input(ctx, in, GGML_TYPE_F32, E, T), 1e-6f); }});
    c.push_back({"rope_ext (LLaMA, mode 0)", 1e-5, [=](ggml_context * ctx, In & in) {
        ggml_tensor * pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, T);
        in.push_back(pos);
        return ggml_rope_ext(ctx, input(ctx, in, GGML_TYPE_F32, HD, H, T), pos, nullptr, HD, 0, 4096, 10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f);
    }});
    c.push_back({"soft_max_ext with mask and scale", 1e-5, [=](ggml_context * ctx, In & in) {
        ggml_tensor * mask = input(ctx, in, GGML_TYPE_F32, KV, T, 1, "mask");
        return ggml_soft_max_ext(ctx, input(ctx, in, GGML_TYPE_F32, KV, T, H), mask, 0.125f, 0.0f);
    }});
    c.push_back({"swiglu_split (silu(gate) * up)", 1e-5, [=](ggml_context * ctx, In & in) {
        return ggml_swiglu_split(ctx, input(ctx, in, GGML_TYPE_F32, F, T), input(ctx, in, GGML_TYPE_F32, F, T));
    }});
    c.push_back({"gelu (tanh)", 1e-3, [=](ggml_context * ctx, In & in) { return ggml_gelu(ctx, input(ctx, in, GGML_TYPE_F32, F, T)); }});
    c.push_back({"gelu_erf", 1e-5, [=](ggml_context * ctx, In & in) { return ggml_gelu_erf(ctx, input(ctx, in, GGML_TYPE_F32, F, T)); }});
    c.push_back({"add, scale", 1e-6, [=](ggml_context * ctx, In & in) {
        return ggml_scale(ctx, ggml_add(ctx, input(ctx, in, GGML_TYPE_F32, E, T), input(ctx, in, GGML_TYPE_F32, E, T)), 0.3f);
    }});
    for (ggml_type t : { GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_K }) {
        std::string name = std::string("get_rows ") + ggml_type_name(t);
        c.push_back({strdup(name.c_str()), 1e-6, [=](ggml_context * ctx, In & in) {
            ggml_tensor * rows = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, T);
            in.push_back(rows);
            return ggml_get_rows(ctx, ggml_reshape_2d(ctx, input(ctx, in, t, E, V), E, V), rows);
        }});
    }
    c.push_back({"set_rows f32 -> f16 cache", 1e-6, [=](ggml_context * ctx, In & in) {
        ggml_tensor * cache = input(ctx, in, GGML_TYPE_F16, E, KV);
        ggml_tensor * idx = ggml_new_tensor_1d(ctx, GGML_TYPE_I64, T);
        in.push_back(idx);
        return ggml_set_rows(ctx, ggml_reshape_2d(ctx, cache, E, KV), ggml_reshape_2d(ctx, input(ctx, in, GGML_TYPE_F32, E, T), E, T), idx);
    }});
    // attention as the decoder computes it from an f16 cache: K^T Q on permuted views, softmax, V (KQ)
    c.push_back({"attention: f16 cache views, mul_mat + soft_max", 2e-3, [=](ggml_context * ctx, In & in) {
        ggml_tensor * q = ggml_permute(ctx, input(ctx, in, GGML_TYPE_F32, HD, H, T), 0, 2, 1, 3);       // [HD, T, H]
        ggml_tensor * k = ggml_permute(ctx, input(ctx, in, GGML_TYPE_F16, HD, H, KV), 0, 2, 1, 3);      // [HD, KV, H]
        ggml_tensor * v = ggml_cont(ctx, ggml_permute(ctx, input(ctx, in, GGML_TYPE_F16, HD, H, KV), 1, 2, 0, 3)); // [KV, HD, H]
        ggml_tensor * kq = ggml_mul_mat(ctx, k, q);                                                       // [KV, T, H]
        ggml_mul_mat_set_prec(kq, GGML_PREC_F32);
        kq = ggml_soft_max_ext(ctx, kq, input(ctx, in, GGML_TYPE_F32, KV, T, 1, "mask"), 0.125f, 0.0f);
        return ggml_mul_mat(ctx, v, kq);                                                                  // [HD, T, H]
    }});
    c.push_back({"attention: flash_attn_ext, f16 K and V", 2e-3, [=](ggml_context * ctx, In & in) {
        ggml_tensor * q = ggml_permute(ctx, input(ctx, in, GGML_TYPE_F32, HD, H, T), 0, 2, 1, 3);
        ggml_tensor * k = ggml_permute(ctx, input(ctx, in, GGML_TYPE_F16, HD, H, KV), 0, 2, 1, 3);
        ggml_tensor * v = ggml_permute(ctx, input(ctx, in, GGML_TYPE_F16, HD, H, KV), 0, 2, 1, 3);
        ggml_tensor * mask = input(ctx, in, GGML_TYPE_F16, KV, T, 1, "mask");
        ggml_tensor * o = ggml_flash_attn_ext(ctx, q, k, v, mask, 0.125f, 0.0f, 0.0f);
        ggml_flash_attn_ext_set_prec(o, GGML_PREC_F32);
        return o;
    }});
    c.push_back({"im2col (patch embedding columns)", 1e-6, [=](ggml_context * ctx, In & in) {
        ggml_tensor * kernel = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, 14, 14, 3, 8);
        in.push_back(kernel);
        ggml_tensor * img = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 56, 56, 3, 2);
        in.push_back(img);
        return ggml_im2col(ctx, kernel, img, 14, 14, 0, 0, 1, 1, true, GGML_TYPE_F32);
    }});
    return c;
}

double rel_diff(const std::vector<float> & a, const std::vector<float> & ref) {
    double d = 0, m = 0;
    for (size_t i = 0; i < ref.size(); i++) {
        if (std::isinf(ref[i]) && a[i] == ref[i]) continue;
        d = std::max(d, (double) std::fabs(a[i] - ref[i]));
        if (std::isnan(a[i]) != std::isnan(ref[i])) d = INFINITY;
        m = std::max(m, (double) std::fabs(ref[i]));
    }
    return m > 0 ? d / m : d;
}

} // namespace

TEST("cpu variants: each op of the decoder and vision graphs gives the plainest module's results on every module this CPU runs") {
    // ggml's arm64 SVE modules are left out unless LR_VARIANTS_SVE=1: the engine never chooses them by itself
    // (cpu_variant.cpp), and their q4_K / q6_K products are wrong at some vector lengths (docs/cpu.md, arm64)
    std::vector<lr::CpuVariant> found;
    std::string left_out;
    for (const lr::CpuVariant & v : lrtest::runnable_cpu_variants()) {
        if (v.sve && !std::getenv("LR_VARIANTS_SVE")) left_out += (left_out.empty() ? "" : ", ") + v.name;
        else found.push_back(v);
    }
    if (!left_out.empty()) std::printf("     not compared (SVE, chosen only when named): %s\n", left_out.c_str());
    CHECK(!found.empty());
    if (found.size() == 1) SKIP("this build has one CPU module (" + found[0].name + "): nothing to compare it with");
    std::vector<CpuModule> modules;
    for (const lr::CpuVariant & v : found) modules.push_back(lrtest::open_cpu_module(v, 2));
    const CpuModule * base = &modules.front();
    const std::string baseline = base->name;
    std::string bad;
    int compared = 0;
    const std::vector<OpCase> all = cases();
    for (size_t ci = 0; ci < all.size(); ci++) {
        const OpCase & c = all[ci];
        const char * only = std::getenv("LR_DEBUG_VARIANTS_OPS");
        if (only && !std::strstr(c.name, only)) continue;
        const std::vector<float> ref = run(*base, c, 1000 + (uint32_t) ci);
        for (const CpuModule & m : modules) {
            if (&m == base) continue;
            const double d = rel_diff(run(m, c, 1000 + (uint32_t) ci), ref);
            compared++;
            if (std::getenv("LR_DEBUG_VARIANTS")) std::printf("%s %s %.3g\n", m.name.c_str(), c.name, d);
            if (!(d <= c.tol)) bad += "\n       " + m.name + ": " + c.name + ": " + std::to_string(d) + " (tolerance " + std::to_string(c.tol) + ")";
        }
    }
    for (CpuModule & m : modules) lrtest::close_cpu_module(m);
    std::printf("     compared %d (module, op) pairs against %s\n", compared, baseline.c_str());
    CHECK_MSG(bad.empty(), "ops that differ from " + baseline + ":" + bad);
}
