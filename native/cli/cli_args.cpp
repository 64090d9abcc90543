#include "cli_args.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace lrcli {

Args parse_args(int argc, char ** argv, int start, const std::vector<OptSpec> & specs, const std::string & cmd) {
    Args a;
    for (int i = start; i < argc; ++i) {
        std::string arg = argv[i] ? argv[i] : "";
        const OptSpec * spec = nullptr;
        std::string inline_value;
        bool has_inline = false;
        if (arg.rfind("--", 0) == 0 && arg.size() > 2) {
            std::string name = arg.substr(2);
            const size_t eq = name.find('=');
            if (eq != std::string::npos) {
                inline_value = name.substr(eq + 1);
                name = name.substr(0, eq);
                has_inline = true;
            }
            for (const auto & s : specs) if (name == s.name) spec = &s;
        } else if (arg.size() == 2 && arg[0] == '-' && arg[1] != '-') {
            for (const auto & s : specs) if (s.short_name == arg[1]) spec = &s;
        } else {
            throw UsageError{cmd + ": unexpected argument '" + arg + "'"};
        }
        if (!spec) throw UsageError{cmd + ": unknown option '" + arg + "'"};
        if (spec->takes_value) {
            if (has_inline) {
                a.values[spec->name] = inline_value;
            } else {
                if (i + 1 >= argc || argv[i + 1] == nullptr) throw UsageError{cmd + ": option --" + std::string(spec->name) + " needs a value"};
                a.values[spec->name] = argv[++i];
            }
        } else {
            if (has_inline) throw UsageError{cmd + ": option --" + std::string(spec->name) + " takes no value"};
            a.flags[spec->name] = true;
        }
    }
    return a;
}

bool get_int(const Args & a, const char * name, long long lo, long long hi, long long & out) {
    auto it = a.values.find(name);
    if (it == a.values.end()) return false;
    const std::string & s = it->second;
    errno = 0;
    char * end = nullptr;
    const long long v = s.empty() ? 0 : std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || errno != 0 || end == nullptr || *end != '\0' || v < lo || v > hi) {
        throw UsageError{"--" + std::string(name) + " must be an integer between " + std::to_string(lo) + " and " +
                         std::to_string(hi) + ", got '" + s + "'"};
    }
    out = v;
    return true;
}

bool get_float(const Args & a, const char * name, double lo, double hi, bool lo_open, double & out) {
    auto it = a.values.find(name);
    if (it == a.values.end()) return false;
    const std::string & s = it->second;
    errno = 0;
    char * end = nullptr;
    const double v = s.empty() ? NAN : std::strtod(s.c_str(), &end);
    if (s.empty() || errno != 0 || end == nullptr || *end != '\0' || !std::isfinite(v) || v < lo || v > hi || (lo_open && v == lo)) {
        char range[96];
        std::snprintf(range, sizeof range, "%s%g, %g]", lo_open ? "(" : "[", lo, hi);
        throw UsageError{"--" + std::string(name) + " must be a number in " + range + ", got '" + s + "'"};
    }
    out = v;
    return true;
}

lr_backend get_backend(const Args & a) {
    auto it = a.values.find("backend");
    if (it == a.values.end() || it->second == "auto") return LR_BACKEND_AUTO;
    if (it->second == "cpu") return LR_BACKEND_CPU;
    if (it->second == "cuda") return LR_BACKEND_CUDA;
    throw UsageError{"--backend must be one of auto, cpu, cuda, got '" + it->second + "'"};
}

std::string require_file(const Args & a, const char * name, const std::string & cmd, const std::string & what) {
    auto it = a.values.find(name);
    if (it == a.values.end() || it->second.empty()) throw UsageError{cmd + ": --" + name + " FILE.gguf is required"};
    std::FILE * f = std::fopen(it->second.c_str(), "rb");
    if (!f) throw UsageError{cmd + ": " + what + " file not found or not readable: " + it->second};
    std::fclose(f);
    return it->second;
}

std::string require_model(const Args & a, const std::string & cmd) {
    return require_file(a, "model", cmd, "model");
}

} // namespace lrcli
