// Which build of ggml's CPU backend this process computes with.
//
// ggml is built with its CPU backend as run-time modules beside libggml (CMakeLists.txt): by default one per
// CPU generation ggml defines (libggml-cpu-x64.so for any x86-64, sse42, haswell for AVX2, zen4 for AVX-512
// with VNNI and BF16, ...), or one module, libggml-cpu.so: compiled for the build machine with LLAVA_RAD_NATIVE
// (reported as "native"), or for the architecture's baseline where the compiler cannot build ggml's whole set
// (arm64 with GCC < 14; "baseline"). Each module's ggml_backend_score() says whether this CPU can run
// it (0: it cannot) and how many of its features it uses. Exactly one is loaded, once per process:
//
//   LLAVA_RAD_CPU_VARIANT=<name>   that module; LR_ERR_BACKEND when it is missing or this CPU cannot run it
//   otherwise                      the best-scoring module this CPU runs, except those compiled for AMX
//                                  (kAmxVariants), whose extra buffer type crashes on Sapphire Rapids
//
// Whichever is loaded, the weights never go to ggml's AMX buffer type (backend.cpp: cpu_extra_buffer_types).
#pragma once

#include <string>
#include <vector>

namespace lr {

struct CpuVariant {
    std::string name;  // "zen4", "haswell", ..., or "native" / "baseline" for libggml-cpu.so
    std::string path;  // the module's file
    int score = 0;     // its ggml_backend_score() on this CPU (0: this CPU cannot run it)
    bool amx = false;  // compiled for AMX: never chosen unless named
    bool sve = false;  // compiled for arm64 SVE: never chosen unless named (ggml's SVE q4_K / q6_K products are
                       // wrong at some vector lengths: docs/cpu.md, arm64)
    std::string error; // why the module could not be opened (score 0), or ""
};

// the folder of the ggml libraries and backend modules (that of libggml itself)
std::string ggml_module_dir();

// the CPU modules found in ggml_module_dir(), with their scores on this CPU, in name order (read once per process)
std::vector<CpuVariant> cpu_variants();

// the variant the rules above choose among `found` (LLAVA_RAD_CPU_VARIANT when `forced` is non-empty);
// throws LR_ERR_BACKEND with the reason when none fits
CpuVariant choose_cpu_variant(const std::vector<CpuVariant> & found, const std::string & forced);

// Loads and registers the chosen CPU module (first call only) and returns it; throws LR_ERR_BACKEND.
const CpuVariant & load_cpu_variant();

// a function the loaded CPU module exports (e.g. "ggml_get_type_traits_cpu"), or null
void * cpu_variant_symbol(const char * name);

// the loaded CPU backend's features as ggml lists them ("SSE3 AVX AVX2 ... LLAMAFILE REPACK"): the instruction
// sets it was compiled for and its compiled-in kernels
std::string cpu_variant_features();

} // namespace lr
