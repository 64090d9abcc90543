// C API: the build and the CPU code in use.
#include "api_guard.h"
#include "backend.h"
#include "cpu_threads.h"
#include "cpu_variant.h"
#include "vnni_matmul.h"

#include "ggml.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

extern "C" {

lr_status lr_get_cpu_info(lr_cpu_info * out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(out != nullptr, "lr_get_cpu_info: out must not be NULL");
        std::memset(out, 0, sizeof(*out));
        const lr::CpuVariant & v = lr::load_cpu();
        std::vector<lr::CpuVariant> found = lr::cpu_variants();
        std::stable_sort(found.begin(), found.end(), [](const lr::CpuVariant & a, const lr::CpuVariant & b) { return a.score < b.score; });
        std::string runnable;
        for (const lr::CpuVariant & c : found) {
            if (c.score <= 0) continue;
            if (!runnable.empty()) runnable += ' ';
            runnable += c.name;
        }
        lr::copy_str(out->variant, sizeof(out->variant), v.name);
        lr::copy_str(out->variants, sizeof(out->variants), runnable);
        lr::copy_str(out->features, sizeof(out->features), lr::cpu_variant_features());
        lr::copy_str(out->kernels, sizeof(out->kernels), lr::vnni_kernels_enabled() ? "vnni" : "ggml");
        const lr::CpuBudget b = lr::cpu_budget();
        out->default_threads = lr::default_threads();
        out->allowed_cpus = b.allowed_cpus;
        out->physical_cores = b.physical_cores;
        out->cpu_quota = b.quota;
    });
}

const char * lr_build_info(void) {
    static const std::string info = [] {
        std::string s = std::string("llava-rad engine; ggml ") + ggml_version() + " (" + ggml_commit() + ")";
#ifdef LLAVA_RAD_HAVE_CUDA
        s += "; backends: CPU, CUDA (" + lr::cuda_status() + ")";
#else
        s += "; backends: CPU";
#endif
#ifdef LLAVA_RAD_CPU_NATIVE
        s += "; CPU build: native (-march=native of the build machine)";
#else
        const size_t n = lr::cpu_variants().size();
        s += n > 1 ? "; CPU build: portable (" + std::to_string(n) + " modules, one chosen at run time)"
                   : std::string("; CPU build: baseline (one module for the architecture)");
#endif
        lr_cpu_info c;
        if (lr_get_cpu_info(&c) == LR_OK) {
            s += std::string("; CPU variant: ") + c.variant + "; CPU kernels: " + c.kernels +
                 "; default threads: " + std::to_string(c.default_threads);
        } else {
            s += std::string("; CPU variant: none (") + lr_last_error() + ")";
        }
        return s;
    }();
    return info.c_str();
}

} // extern "C"
