#include "cpu_modules.h"
#include "harness.h"

#include <dlfcn.h>

#include <algorithm>

namespace lrtest {

std::vector<lr::CpuVariant> runnable_cpu_variants() {
    std::vector<lr::CpuVariant> found;
    for (const lr::CpuVariant & v : lr::cpu_variants()) if (v.score > 0) found.push_back(v);
    std::stable_sort(found.begin(), found.end(), [](const lr::CpuVariant & a, const lr::CpuVariant & b) { return a.score < b.score; });
    return found;
}

CpuModule open_cpu_module(const lr::CpuVariant & v, int n_threads) {
    CpuModule m;
    m.name = v.name;
    m.handle = dlopen(v.path.c_str(), RTLD_NOW | RTLD_LOCAL);
    CHECK_MSG(m.handle != nullptr, v.path + ": " + dlerror());
    using init_fn = ggml_backend_reg_t (*)();
    auto init = reinterpret_cast<init_fn>(dlsym(m.handle, "ggml_backend_init"));
    CHECK(init != nullptr);
    ggml_backend_reg_t reg = init();
    CHECK(reg != nullptr && ggml_backend_reg_dev_count(reg) == 1);
    m.backend = ggml_backend_dev_init(ggml_backend_reg_dev_get(reg, 0), nullptr);
    CHECK(m.backend != nullptr);
    auto set_threads = reinterpret_cast<ggml_backend_set_n_threads_t>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads"));
    CHECK(set_threads != nullptr);
    set_threads(m.backend, n_threads);
    return m;
}

void close_cpu_module(CpuModule & m) {
    if (m.backend) ggml_backend_free(m.backend);
    m.backend = nullptr;
}

} // namespace lrtest
