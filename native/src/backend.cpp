#include "backend.h"
#include "cpu_threads.h"
#include "cpu_variant.h"
#include "host_buffer.h"
#include "host_memory.h"
#include "status.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace lr {

namespace {

// While the CUDA module loads, ggml's warnings and errors (e.g. ggml_cuda_init's "failed to initialize CUDA")
// are kept here instead of printed: they become cuda_status(), said when CUDA is asked for or in lr_build_info.
thread_local std::string * g_log_capture = nullptr; // the loading thread's lines only

// ggml's own log lines: warnings and errors go to stderr; the rest (e.g. one line per repacked
// tensor) only with LLAVA_RAD_VERBOSE=1
void ggml_log(ggml_log_level level, const char * text, void *) {
    static const bool verbose = [] {
        const char * v = std::getenv("LLAVA_RAD_VERBOSE");
        return v != nullptr && *v != '\0' && *v != '0';
    }();
    static ggml_log_level last = GGML_LOG_LEVEL_INFO;
    if (level == GGML_LOG_LEVEL_CONT) level = last; else last = level;
    const bool problem = level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR;
    if (g_log_capture != nullptr && problem) {
        *g_log_capture += text;
        if (!verbose) return;
    }
    if (verbose || problem) std::fputs(text, stderr);
}

// ggml's log lines go to ggml_log (once, before any module loads)
void route_ggml_log() {
    static std::once_flag once;
    std::call_once(once, [] { ggml_log_set(ggml_log, nullptr); });
}

std::string g_cuda_status = "not looked for yet";

std::string one_line(std::string s) {
    for (char & c : s) if (c == '\n') c = ' ';
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
}

// ggml's CUDA backend is a module beside the CPU ones (built with LLAVA_RAD_CUDA), loaded on first use. It
// needs the CUDA runtime and cuBLAS of the toolkit it was built with, and a driver: when one is missing, the
// module does not load (dlerror says which library) or finds no device (ggml says why); either way the run
// goes on with the CPU and cuda_status() keeps the reason.
void load_cuda_module() {
    static std::once_flag once;
    std::call_once(once, [] {
        route_ggml_log();
        const std::string path = ggml_module_dir() + "/libggml-cuda.so";
        if (access(path.c_str(), R_OK) != 0) {
            g_cuda_status = "not built in (no " + path + ")";
            return;
        }
        // load it ourselves first for dlerror's reason (ggml's loader prints it but does not return it)
        void * handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) {
            const char * why = dlerror();
            g_cuda_status = "libggml-cuda.so could not be loaded: " + std::string(why ? why : "unknown reason") +
                            " (the CUDA runtime and cuBLAS it was built with must be on the library path)";
            return;
        }
        std::string captured;
        g_log_capture = &captured;
        ggml_backend_reg_t reg = ggml_backend_load(path.c_str());
        g_log_capture = nullptr;
        dlclose(handle); // ggml's loader holds its own reference
        if (reg == nullptr) {
            g_cuda_status = "ggml could not start libggml-cuda.so" + (captured.empty() ? "" : ": " + one_line(captured));
            return;
        }
        const size_t n = ggml_backend_reg_dev_count(reg);
        if (n == 0) {
            g_cuda_status = "no device" + (captured.empty() ? "" : " (" + one_line(captured) + ")");
            return;
        }
        g_cuda_status = std::to_string(n) + (n == 1 ? " device: " : " devices: ");
        for (size_t i = 0; i < n; i++) {
            ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, i);
            g_cuda_status += (i ? ", " : "") + std::string(ggml_backend_dev_name(dev)) + " (" + ggml_backend_dev_description(dev) + ")";
        }
        if (!captured.empty()) std::fputs(captured.c_str(), stderr);
    });
}

} // namespace

std::string cuda_status() {
    load_cuda_module();
    return g_cuda_status;
}

const CpuVariant & load_cpu() {
    route_ggml_log();
    return load_cpu_variant();
}

Backends::~Backends() {
    if (gpu) ggml_backend_free(gpu);
    if (cpu) ggml_backend_free(cpu);
}

std::string Backends::name() const {
    return gpu ? ggml_backend_name(gpu) : "CPU";
}

ggml_backend_buffer_type_t Backends::buffer_type(ggml_backend_t be) const {
    return be == cpu && !gpu ? huge_page_buffer_type() : ggml_backend_get_default_buffer_type(be);
}

std::vector<ggml_backend_buffer_type_t> cpu_extra_buffer_types() {
    std::vector<ggml_backend_buffer_type_t> out;
    load_cpu();
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu) return out;
    auto get_extra = (ggml_backend_dev_get_extra_bufts_t)
        ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(cpu), "ggml_backend_dev_get_extra_bufts");
    for (ggml_backend_buffer_type_t * b = get_extra ? get_extra(cpu) : nullptr; b && *b; ++b) {
        // only ggml's repacking: never AMX (its kernels die with SIGILL on Sapphire Rapids), nor others unchecked here
        if (std::string(ggml_backend_buft_name(*b)) == kCpuRepackName) out.push_back(*b);
    }
    return out;
}

ggml_backend_buffer_type_t cpu_repack_buffer_type() {
    static const ggml_backend_buffer_type_t repack = [] {
        for (ggml_backend_buffer_type_t b : cpu_extra_buffer_types()) {
            if (std::string(ggml_backend_buft_name(b)) == kCpuRepackName) return b;
        }
        return (ggml_backend_buffer_type_t) nullptr;
    }();
    return repack;
}

ggml_backend_sched_t new_scheduler(const Backends & b, size_t max_nodes) {
    std::vector<ggml_backend_t> list;
    std::vector<ggml_backend_buffer_type_t> bufts;
    if (b.gpu) {
        list.push_back(b.gpu);
        bufts.push_back(b.buffer_type(b.gpu));
    }
    list.push_back(b.cpu);
    bufts.push_back(b.buffer_type(b.cpu));
    ggml_backend_sched_t s = ggml_backend_sched_new(list.data(), bufts.data(), (int) list.size(), max_nodes, false, true);
    if (!s) fail(LR_ERR_OUT_OF_MEMORY, "could not create a graph scheduler");
    return s;
}

namespace {

// the memory backend `be` of `b` may fill, 0 when unknown
uint64_t device_memory(const Backends & b, ggml_backend_t be) {
    if (be == b.gpu && b.gpu_dev) {
        size_t free = 0, total = 0;
        ggml_backend_dev_memory(b.gpu_dev, &free, &total);
        return free;
    }
    static const uint64_t host = host_memory().limit();
    return host;
}

void replace_scheduler(ggml_backend_sched_t & sched, const Backends & b, size_t max_nodes) {
    ggml_backend_sched_free(sched);
    sched = nullptr;
    sched = new_scheduler(b, max_nodes);
}

} // namespace

void reserve_graph(ggml_backend_sched_t & sched, const Backends & b, size_t max_nodes, ggml_cgraph * gf,
                   const std::string & what) {
    std::vector<ggml_backend_t> order; // the scheduler's backend order (new_scheduler)
    if (b.gpu) order.push_back(b.gpu);
    order.push_back(b.cpu);
    std::vector<size_t> need(order.size(), 0), held(order.size(), 0);
    // the buffers the last graph reserved (and wrote when it ran): a new reservation replaces them
    for (size_t i = 0; i < order.size(); i++) held[i] = ggml_backend_sched_get_buffer_size(sched, order[i]);
    // measuring plans the allocation without making it; the scheduler then holds no buffers, so the
    // reservation below must follow (an allocation from a measured-only plan would write through null)
    ggml_backend_sched_reserve_size(sched, gf, need.data());
    for (size_t i = 0; i < order.size(); i++) {
        const uint64_t have = device_memory(b, order[i]);
        if (have > 0 && need[i] > have) {
            replace_scheduler(sched, b, max_nodes);
            fail(LR_ERR_OUT_OF_MEMORY, format("%s needs %s of compute memory on %s, which has %s",
                what.c_str(), memory_size(need[i]).c_str(), ggml_backend_name(order[i]), memory_size(have).c_str()));
        }
        // host memory is also taken by what was loaded before (weights, KV caches, other processes): a graph
        // that runs at its full size writes all of its buffers, so more than is available now would end
        // with the OOM killer, not an error
        if (order[i] == b.cpu) {
            // only the growth over the buffers held before is new memory
            const uint64_t growth = need[i] > held[i] ? need[i] - held[i] : 0;
            const uint64_t available = host_memory().available;
            if (available > 0 && growth > available) {
                replace_scheduler(sched, b, max_nodes);
                fail(LR_ERR_OUT_OF_MEMORY, format("%s needs %s of compute memory on %s; %s is available now",
                    what.c_str(), memory_size(need[i]).c_str(), ggml_backend_name(order[i]), memory_size(available).c_str()));
            }
        }
    }
    if (!ggml_backend_sched_reserve(sched, gf)) {
        replace_scheduler(sched, b, max_nodes);
        size_t total = 0;
        for (size_t n : need) total += n;
        fail(LR_ERR_OUT_OF_MEMORY, format("could not allocate %s of compute memory for %s", memory_size(total).c_str(), what.c_str()));
    }
}

size_t ctx_alloc_size(ggml_context * ctx, ggml_backend_buffer_type_t buft) {
    const size_t align = ggml_backend_buft_get_alignment(buft);
    size_t total = 0;
    for (ggml_tensor * t = ggml_get_first_tensor(ctx); t; t = ggml_get_next_tensor(ctx, t)) {
        total += GGML_PAD(ggml_backend_buft_get_alloc_size(buft, t), align);
    }
    return total;
}

int default_threads() {
    static const int n = cpu_budget().threads;
    return n;
}

ggml_backend_t new_cpu_backend(int n_threads) {
    load_cpu();
    ggml_backend_t cpu = ggml_backend_init_by_type(GGML_BACKEND_DEVICE_TYPE_CPU, nullptr);
    if (!cpu) fail(LR_ERR_BACKEND, "the CPU backend failed to start");
    set_cpu_threads(cpu, n_threads > 0 ? n_threads : default_threads());
    return cpu;
}

void set_cpu_threads(ggml_backend_t cpu, int n_threads) {
    ggml_backend_dev_t dev = ggml_backend_get_device(cpu);
    auto set = (ggml_backend_set_n_threads_t)
        ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev), "ggml_backend_set_n_threads");
    if (!set) fail(LR_ERR_BACKEND, "the CPU backend offers no thread setting");
    set(cpu, n_threads);
}

void set_cpu_abort_callback(ggml_backend_t cpu, ggml_abort_callback cb, void * data) {
    ggml_backend_dev_t dev = ggml_backend_get_device(cpu);
    auto set = (ggml_backend_set_abort_callback_t)
        ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(dev), "ggml_backend_set_abort_callback");
    if (!set) fail(LR_ERR_BACKEND, "the CPU backend offers no abort callback");
    set(cpu, cb, data);
}

void init_backends(Backends & out, lr_backend want, int n_threads) {
    if (want != LR_BACKEND_AUTO && want != LR_BACKEND_CPU && want != LR_BACKEND_CUDA) {
        fail(LR_ERR_INVALID_ARGUMENT, format("unknown backend %d", (int) want));
    }
    out.n_threads = n_threads > 0 ? n_threads : default_threads();
    out.cpu = new_cpu_backend(out.n_threads);

    if (want == LR_BACKEND_CPU) return;
    load_cuda_module();
    ggml_backend_dev_t gpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_GPU);
    if (!gpu_dev) {
        if (want == LR_BACKEND_CUDA) {
#ifdef LLAVA_RAD_HAVE_CUDA
            fail(LR_ERR_BACKEND, "backend 'cuda' was requested but no CUDA device was found (CUDA: " + cuda_status() + ")");
#else
            fail(LR_ERR_BACKEND, "backend 'cuda' was requested but this build has no CUDA support "
                                 "(rebuild with LLAVA_RAD_CUDA=1 npm rebuild llava-rad)");
#endif
        }
        return;
    }
    out.gpu = ggml_backend_dev_init(gpu_dev, nullptr);
    if (!out.gpu) fail(LR_ERR_BACKEND, format("the GPU backend %s failed to start", ggml_backend_dev_name(gpu_dev)));
    out.gpu_dev = gpu_dev;
}

} // namespace lr
