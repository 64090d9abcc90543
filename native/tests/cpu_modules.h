// ggml's CPU modules opened side by side in one test process: each dlopen'ed module keeps its own state,
// so tests can run one op on several modules and compare them.
#pragma once

#include "cpu_variant.h"

#include "ggml-backend.h"

#include <string>
#include <vector>

namespace lrtest {

struct CpuModule {
    std::string name;
    void * handle = nullptr;
    ggml_backend_t backend = nullptr;
};

// the modules of this build that this CPU runs (score > 0), lowest score (the plainest) first
std::vector<lr::CpuVariant> runnable_cpu_variants();

// opens a module and a backend on it with n_threads threads (CHECK-fails when it cannot); the module stays loaded
CpuModule open_cpu_module(const lr::CpuVariant & v, int n_threads);

// frees the backend (the module itself stays loaded for the rest of the process)
void close_cpu_module(CpuModule & m);

} // namespace lrtest
