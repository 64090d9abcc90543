// Backend selection: the CPU backend always; a GPU backend (CUDA) when asked for or when AUTO finds one.
#pragma once

#include "llava_rad.h"

#include "ggml-backend.h"

#include <string>
#include <vector>

namespace lr {

struct Backends {
    ggml_backend_t cpu = nullptr;      // always present: inputs, token embeddings on GPU builds
    ggml_backend_t gpu = nullptr;      // null on CPU-only runs
    ggml_backend_dev_t gpu_dev = nullptr;
    int n_threads = 1;

    Backends() = default;
    Backends(const Backends &) = delete;
    Backends & operator=(const Backends &) = delete;
    ~Backends();

    ggml_backend_t main() const { return gpu ? gpu : cpu; }
    // Buffer type for memory backend `be` computes from (weights, KV cache, compute buffers): on a CPU-only
    // run the CPU's memory in transparent huge pages (host_buffer.h), otherwise the backend's default.
    ggml_backend_buffer_type_t buffer_type(ggml_backend_t be) const;
    std::string name() const;
    void set_threads(int n);
};

// a graph scheduler over these backends (GPU first when present, then the CPU); throws LR_ERR_OUT_OF_MEMORY
ggml_backend_sched_t new_scheduler(const Backends & backends, size_t max_nodes);

// the CPU backend's extra (repacking) buffer types, best first, as llama.cpp offers them to matrices
std::vector<ggml_backend_buffer_type_t> cpu_extra_buffer_types();

// ggml's CPU_REPACK buffer type among those (its q4_K blocks are what vnni_matmul.h's Q4_Kx8 reads), or null
ggml_backend_buffer_type_t cpu_repack_buffer_type();

// physical cores of this machine (thread siblings counted once), at least 1
int physical_cores();

// Throws LR_ERR_BACKEND when CUDA is asked for but not compiled in or no device is present.
void init_backends(Backends & out, lr_backend want, int n_threads);

} // namespace lr
