#include "cli_engine.h"
#include "cli_json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace lrcli {

[[noreturn]] void engine_fail(lr_status s, const std::string & what) {
    const char * msg = lr_last_error();
    throw EngineError{s, what + (msg && *msg ? std::string(": ") + msg : std::string())};
}

// the public error code names (same as the Node package's LlavaRadError codes)
const char * code_name(lr_status s) {
    switch (s) {
        case LR_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
        case LR_ERR_IO: return "IO";
        case LR_ERR_BAD_GGUF: return "BAD_GGUF";
        case LR_ERR_UNSUPPORTED: return "UNSUPPORTED";
        case LR_ERR_OUT_OF_MEMORY: return "OUT_OF_MEMORY";
        case LR_ERR_CONTEXT_FULL: return "CONTEXT_FULL";
        case LR_ERR_BACKEND: return "BACKEND";
        case LR_ERR_CANCELLED: return "ABORTED";
        default: return "INTERNAL";
    }
}

lr_model * load(const std::string & path, const Args & a, ModelHolder & holder, lr_model_info & info) {
    lr_model_params mp = lr_model_default_params();
    mp.backend = get_backend(a);
    long long threads = 0;
    if (get_int(a, "threads", 1, 1024, threads)) mp.n_threads = (int32_t) threads;
    long long mmap = 0;
    if (get_int(a, "mmap", 0, 1, mmap)) mp.use_mmap = (int32_t) mmap;
    const lr_status s = lr_model_load(path.c_str(), &mp, &holder.m);
    if (s != LR_OK) engine_fail(s, "could not load the model");
    const lr_status si = lr_model_get_info(holder.m, &info);
    if (si != LR_OK) engine_fail(si, "could not read the model's info");
    return holder.m;
}

std::vector<int32_t> tokenize(const lr_model * model, const std::string & text, bool add_bos) {
    std::vector<int32_t> ids(text.size() + 8);
    size_t n_ids = 0;
    lr_status s = lr_tokenize(model, text.data(), text.size(), add_bos ? 1 : 0, ids.data(), ids.size(), &n_ids);
    if (s == LR_ERR_BUFFER_TOO_SMALL) {
        ids.resize(n_ids);
        s = lr_tokenize(model, text.data(), text.size(), add_bos ? 1 : 0, ids.data(), ids.size(), &n_ids);
    }
    if (s != LR_OK) engine_fail(s, "tokenize failed");
    ids.resize(std::min(n_ids, ids.size()));
    return ids;
}

// the reference's synthetic test image (scripts/reference/llava_rad_reference.py), normalized in float32
void synthetic_image(int32_t size, bool mirrored, const float * mean, const float * stdv, float * out) {
    for (int c = 0; c < 3; c++) {
        for (int y = 0; y < size; y++) {
            for (int x0 = 0; x0 < size; x0++) {
                const int x = mirrored ? size - 1 - x0 : x0;
                const int u8 = (x * 7 + y * 13 + c * 29 + (x * y) / 97) % 256;
                const float v = (float) u8 / 255.0f;
                out[((size_t) c * size + y) * size + x0] = (v - mean[c]) / stdv[c];
            }
        }
    }
}

Checksum dump_floats(const Args & a, const std::vector<float> & values) {
    Checksum c;
    for (float v : values) {
        c.sum += v;
        c.sum_abs += std::fabs(v);
    }
    auto it = a.values.find("dump");
    if (it == a.values.end()) return c;
    std::FILE * f = std::fopen(it->second.c_str(), "wb");
    if (!f || std::fwrite(values.data(), sizeof(float), values.size(), f) != values.size()) {
        if (f) std::fclose(f);
        throw EngineError{LR_ERR_IO, "cannot write " + it->second};
    }
    if (std::fclose(f) != 0) throw EngineError{LR_ERR_IO, "cannot write " + it->second};
    return c;
}

void print_json_with_checksum(std::string & o, bool & first, const Checksum & sums) {
    json_key(o, "sum", first); o += json_number(sums.sum);
    json_key(o, "sum_abs", first); o += json_number(sums.sum_abs);
    o += "}\n";
    std::fwrite(o.data(), 1, o.size(), stdout);
}

} // namespace lrcli
