#include "cpu_variant.h"
#include "status.h"

#include "ggml-backend.h"

#include <dirent.h>
#include <dlfcn.h>
#include <link.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <mutex>

namespace lr {

namespace {

// ggml's CPU variants compiled for AMX (ggml/src/CMakeLists.txt): chosen only when named
const char * const kAmxVariants[] = { "sapphirerapids" };

constexpr const char * kPrefix = "libggml-cpu";
constexpr const char * kSuffix = ".so";

// ggml's arm64 variants compiled with SVE (ggml/src/CMakeLists.txt): chosen only when named. Under qemu their
// two-column q4_K / q6_K products are wrong with 512-bit vectors, and their q6_K products with 128-bit ones
// (Graviton 4, Neoverse N2 / V2) when Clang 16 built them; right with 256-bit ones (docs/cpu.md, arm64)
const char * const kSveVariants[] = { "armv8.2_3", "armv8.6_1", "armv8.6_2", "armv9.2_1", "armv9.2_2",
                                      "android_armv9.0_1", "android_armv9.2_1", "android_armv9.2_2" };

bool listed(const std::string & name, const char * const * list, size_t n) {
    for (size_t i = 0; i < n; i++) if (name == list[i]) return true;
    return false;
}

bool is_amx_variant(const std::string & name) { return listed(name, kAmxVariants, std::size(kAmxVariants)); }
bool is_sve_variant(const std::string & name) { return listed(name, kSveVariants, std::size(kSveVariants)); }

#ifndef LLAVA_RAD_CPU_MODULE_NAME
#define LLAVA_RAD_CPU_MODULE_NAME "baseline"
#endif

// "libggml-cpu-haswell.so" -> "haswell", "libggml-cpu.so" -> "native" (LLAVA_RAD_NATIVE builds) or "baseline"
// (builds whose compiler cannot make ggml's whole set), anything else -> ""
std::string variant_name(const std::string & file) {
    const size_t np = std::strlen(kPrefix), ns = std::strlen(kSuffix);
    if (file.size() < np + ns || file.compare(0, np, kPrefix) != 0 || file.compare(file.size() - ns, ns, kSuffix) != 0) return "";
    const std::string mid = file.substr(np, file.size() - np - ns);
    if (mid.empty()) return LLAVA_RAD_CPU_MODULE_NAME;
    return mid[0] == '-' && mid.size() > 1 ? mid.substr(1) : "";
}

// the module's own score for this CPU (0 when it cannot run here or cannot be opened: then `error` says why)
int module_score(const std::string & path, std::string & error) {
    void * h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char * e = dlerror();
        error = e ? e : "dlopen failed";
        return 0;
    }
    using score_fn = int (*)();
    auto score = reinterpret_cast<score_fn>(dlsym(h, "ggml_backend_score"));
    const int s = score ? score() : 1; // a module without a score makes no claim about the CPU
    dlclose(h);
    return s;
}

int find_libggml(dl_phdr_info * info, size_t, void * out) {
    const char * name = info->dlpi_name;
    if (!name || !*name) return 0;
    const char * base = std::strrchr(name, '/');
    base = base ? base + 1 : name;
    if (std::strncmp(base, "libggml.so", 10) != 0) return 0;
    *static_cast<std::string *>(out) = name;
    return 1;
}

std::string loaded_name_list(const std::vector<CpuVariant> & found) {
    std::string s;
    for (const CpuVariant & v : found) {
        if (!s.empty()) s += ", ";
        s += v.name + (v.score > 0 ? "" : !v.error.empty() ? " (could not be opened: " + v.error + ")" : " (not on this CPU)");
    }
    return s.empty() ? "none" : s;
}

} // namespace

std::string ggml_module_dir() {
    std::string lib;
    dl_iterate_phdr(find_libggml, &lib);
    if (lib.empty()) {
        Dl_info info{};
        if (dladdr(reinterpret_cast<void *>(&ggml_backend_load), &info) && info.dli_fname) lib = info.dli_fname;
    }
    const size_t slash = lib.rfind('/');
    return slash == std::string::npos ? "." : lib.substr(0, slash);
}

static std::vector<CpuVariant> scan_cpu_variants() {
    std::vector<CpuVariant> out;
    const std::string dir = ggml_module_dir();
    DIR * d = opendir(dir.c_str());
    if (!d) return out;
    while (dirent * e = readdir(d)) {
        const std::string name = variant_name(e->d_name);
        if (name.empty()) continue;
        CpuVariant v;
        v.name = name;
        v.path = dir + "/" + e->d_name;
        v.score = module_score(v.path, v.error);
        v.amx = is_amx_variant(name);
        v.sve = is_sve_variant(name);
        out.push_back(v);
    }
    closedir(d);
    std::sort(out.begin(), out.end(), [](const CpuVariant & a, const CpuVariant & b) { return a.name < b.name; });
    return out;
}

std::vector<CpuVariant> cpu_variants() {
    // opening every module to read its score is done once: the files beside libggml do not change under us
    static const std::vector<CpuVariant> found = scan_cpu_variants();
    return found;
}

CpuVariant choose_cpu_variant(const std::vector<CpuVariant> & found, const std::string & forced) {
    if (!forced.empty()) {
        for (const CpuVariant & v : found) {
            if (v.name != forced) continue;
            if (v.score <= 0) {
                fail(LR_ERR_BACKEND, format("LLAVA_RAD_CPU_VARIANT=%s: %s (variants here: %s)", forced.c_str(),
                                            v.error.empty() ? "this CPU lacks instructions that variant needs" : "the module could not be opened",
                                            loaded_name_list(found).c_str()));
            }
            return v;
        }
        fail(LR_ERR_BACKEND, format("LLAVA_RAD_CPU_VARIANT=%s: no such CPU backend module in %s (variants here: %s)",
                                    forced.c_str(), ggml_module_dir().c_str(), loaded_name_list(found).c_str()));
    }
    const CpuVariant * best = nullptr;
    for (const CpuVariant & v : found) {
        if (v.score <= 0 || v.amx || v.sve) continue;
        if (!best || v.score > best->score) best = &v;
    }
    if (!best) {
        fail(LR_ERR_BACKEND, format("no CPU backend module in %s runs on this CPU (variants here: %s); rebuild the engine "
                                    "(npm run build:native)", ggml_module_dir().c_str(), loaded_name_list(found).c_str()));
    }
    return *best;
}

const CpuVariant & load_cpu_variant() {
    static std::mutex mu;
    static CpuVariant loaded;
    std::lock_guard<std::mutex> lock(mu);
    if (!loaded.path.empty()) return loaded;
    const char * env = std::getenv("LLAVA_RAD_CPU_VARIANT");
    CpuVariant v = choose_cpu_variant(cpu_variants(), env ? env : "");
    if (!ggml_backend_load(v.path.c_str())) fail(LR_ERR_BACKEND, format("ggml could not load its CPU backend from %s", v.path.c_str()));
    loaded = v;
    return loaded;
}

void * cpu_variant_symbol(const char * name) {
    static void * const handle = dlopen(load_cpu_variant().path.c_str(), RTLD_NOW | RTLD_NOLOAD);
    return handle ? dlsym(handle, name) : nullptr;
}

std::string cpu_variant_features() {
    load_cpu_variant();
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
    if (!reg) return "";
    auto get = reinterpret_cast<ggml_backend_get_features_t>(ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features"));
    std::string s;
    for (ggml_backend_feature * f = get ? get(reg) : nullptr; f && f->name; ++f) {
        if (std::strcmp(f->value, "1") != 0) continue; // flags only, not counts such as SVE_CNT
        if (!s.empty()) s += ' ';
        s += f->name;
    }
    return s;
}

} // namespace lr
