// llava-rad-cli: engine errors (exit 1, with the public code name), RAII holders for the C API's handles,
// loading, tokenizing, and the synthetic test image.
#pragma once

#include "cli_args.h"
#include "llava_rad.h"

#include <cstdint>
#include <string>
#include <vector>

namespace lrcli {

struct EngineError {
    lr_status   status;
    std::string message;
};

// throws EngineError{s, what + ": " + lr_last_error()}
[[noreturn]] void engine_fail(lr_status s, const std::string & what);

// the public error code names (same as the Node package's LlavaRadError codes)
const char * code_name(lr_status s);

struct ModelHolder {
    lr_model * m = nullptr;
    ~ModelHolder() { if (m) lr_model_free(m); }
};
struct ContextHolder {
    lr_context * c = nullptr;
    ~ContextHolder() { if (c) lr_context_free(c); }
};
struct VisionHolder {
    lr_vision * v = nullptr;
    ~VisionHolder() { lr_vision_free(v); }
};

// loads a decoder with --backend and --threads from the arguments
lr_model * load(const std::string & path, const Args & a, ModelHolder & holder, lr_model_info & info);

// text -> ids (the full list; engine errors throw)
std::vector<int32_t> tokenize(const lr_model * model, const std::string & text, bool add_bos);

// --dump FILE of the arguments, when given: `values` as raw float32 (throws EngineError IO); and the sums of
// the values and of their magnitudes, the checksum the commands print
struct Checksum {
    double sum = 0, sum_abs = 0;
};
Checksum dump_floats(const Args & a, const std::vector<float> & values);
// ends a command's JSON object `o` with the checksum ("sum", "sum_abs") and prints it on stdout
void print_json_with_checksum(std::string & o, bool & first, const Checksum & sums);

// the reference's synthetic test image (scripts/reference/llava_rad_reference.py), normalized in float32:
// 3 x size x size floats (CHW)
void synthetic_image(int32_t size, bool mirrored, const float * mean, const float * stdv, float * out);

} // namespace lrcli
