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
};

// a graph scheduler over these backends (GPU first when present, then the CPU); throws LR_ERR_OUT_OF_MEMORY
ggml_backend_sched_t new_scheduler(const Backends & backends, size_t max_nodes);

// Reserves the compute buffers graph `gf` needs on `sched`. First measures what each backend would need and
// refuses a graph that needs more than the device has (the host: host_memory.h; a GPU: its free memory); then
// allocates. Either failure throws LR_ERR_OUT_OF_MEMORY with the sizes, `what` naming the graph ("the vision
// graph for 4 images"). ggml's scheduler is not usable after a failed allocation, so `sched` is then replaced
// by a new one (same backends, `max_nodes`).
void reserve_graph(ggml_backend_sched_t & sched, const Backends & backends, size_t max_nodes, ggml_cgraph * gf,
                   const std::string & what);

// the bytes a buffer of type `buft` needs for every tensor of the no-alloc context `ctx` (each padded to the
// type's alignment, as ggml_backend_alloc_ctx_tensors_from_buft places them)
size_t ctx_alloc_size(ggml_context * ctx, ggml_backend_buffer_type_t buft);

// the CPU backend's extra buffer types that matrices may be placed in, best first: ggml's repacking only (no
// AMX: see cpu_variant.h)
std::vector<ggml_backend_buffer_type_t> cpu_extra_buffer_types();

constexpr const char * kCpuRepackName = "CPU_REPACK";

// ggml's CPU_REPACK buffer type among those (its q4_K blocks are what vnni_matmul.h's Q4_Kx8 reads), or null
ggml_backend_buffer_type_t cpu_repack_buffer_type();

// routes ggml's log (LLAVA_RAD_VERBOSE) and loads the CPU module (cpu_variant.h) once; throws LR_ERR_BACKEND
const struct CpuVariant & load_cpu();

// the default CPU thread count: cpu_threads.h's budget of this process (computed once)
int default_threads();

// a CPU backend of the variant cpu_variant.h loads, computing with n_threads (<= 0: default_threads());
// throws LR_ERR_BACKEND
ggml_backend_t new_cpu_backend(int n_threads);
void set_cpu_threads(ggml_backend_t cpu, int n_threads);
// ggml's CPU backend asks `cb(data)` after each graph node and stops the graph (GGML_STATUS_ABORTED)
// when it returns true
void set_cpu_abort_callback(ggml_backend_t cpu, ggml_abort_callback cb, void * data);

// What became of ggml's CUDA module (loaded on first call): "N device(s): ...", "no device (why)", "not built in
// (...)", or why libggml-cuda.so did not load (a missing libcublas.so.N, say)
std::string cuda_status();

// Throws LR_ERR_BACKEND when CUDA is asked for but not compiled in or no device is present.
void init_backends(Backends & out, lr_backend want, int n_threads);

} // namespace lr
