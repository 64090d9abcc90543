#include "backend.h"
#include "host_buffer.h"
#include "status.h"

#include "ggml-cpu.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace lr {

namespace {

// ggml's own log lines: warnings and errors go to stderr; the rest (e.g. one line per repacked
// tensor) only with LLAVA_RAD_VERBOSE=1
void ggml_log(ggml_log_level level, const char * text, void *) {
    static const bool verbose = [] {
        const char * v = std::getenv("LLAVA_RAD_VERBOSE");
        return v != nullptr && *v != '\0' && *v != '0';
    }();
    static ggml_log_level last = GGML_LOG_LEVEL_INFO;
    if (level == GGML_LOG_LEVEL_CONT) level = last; else last = level;
    if (verbose || level == GGML_LOG_LEVEL_WARN || level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

} // namespace

Backends::~Backends() {
    if (gpu) ggml_backend_free(gpu);
    if (cpu) ggml_backend_free(cpu);
}

std::string Backends::name() const {
    return gpu ? ggml_backend_name(gpu) : "CPU";
}

void Backends::set_threads(int n) {
    n_threads = n > 0 ? n : physical_cores();
    ggml_backend_cpu_set_n_threads(cpu, n_threads);
}

ggml_backend_buffer_type_t Backends::buffer_type(ggml_backend_t be) const {
    return be == cpu && !gpu ? huge_page_buffer_type() : ggml_backend_get_default_buffer_type(be);
}

std::vector<ggml_backend_buffer_type_t> cpu_extra_buffer_types() {
    std::vector<ggml_backend_buffer_type_t> out;
    ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu) return out;
    auto get_extra = (ggml_backend_dev_get_extra_bufts_t)
        ggml_backend_reg_get_proc_address(ggml_backend_dev_backend_reg(cpu), "ggml_backend_dev_get_extra_bufts");
    for (ggml_backend_buffer_type_t * b = get_extra ? get_extra(cpu) : nullptr; b && *b; ++b) out.push_back(*b);
    return out;
}

ggml_backend_buffer_type_t cpu_repack_buffer_type() {
    static const ggml_backend_buffer_type_t repack = [] {
        for (ggml_backend_buffer_type_t b : cpu_extra_buffer_types()) {
            if (std::string(ggml_backend_buft_name(b)) == "CPU_REPACK") return b;
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

int physical_cores() {
    std::set<std::string> siblings;
    for (int cpu = 0; cpu < 4096; cpu++) {
        std::ifstream f("/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/thread_siblings");
        if (!f.is_open()) break;
        std::string line;
        if (std::getline(f, line)) siblings.insert(line);
    }
    if (!siblings.empty()) return (int) siblings.size();
    const unsigned hc = std::thread::hardware_concurrency();
    return hc > 0 ? (int) hc : 1;
}

void init_backends(Backends & out, lr_backend want, int n_threads) {
    static std::once_flag log_once;
    std::call_once(log_once, [] { ggml_log_set(ggml_log, nullptr); });
    if (want != LR_BACKEND_AUTO && want != LR_BACKEND_CPU && want != LR_BACKEND_CUDA) {
        fail(LR_ERR_INVALID_ARGUMENT, format("unknown backend %d", (int) want));
    }
    out.cpu = ggml_backend_cpu_init();
    if (!out.cpu) fail(LR_ERR_BACKEND, "the CPU backend failed to start");
    out.set_threads(n_threads);

    if (want == LR_BACKEND_CPU) return;
    ggml_backend_dev_t gpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_GPU);
    if (!gpu_dev) {
        if (want == LR_BACKEND_CUDA) {
#ifdef LLAVA_RAD_HAVE_CUDA
            fail(LR_ERR_BACKEND, "backend 'cuda' was requested but no CUDA device was found");
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
