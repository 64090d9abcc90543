// Quantization entry points of the C API: ggml's own quantizers, with every precondition checked
// here first (ggml would assert).
#include "api_guard.h"

#include "ggml.h"

#include <cstring>
#include <string>

namespace {

// the types ggml_quantize_chunk can write (any other type makes it abort)
bool quantizable(ggml_type t) {
    switch (t) {
        case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
        case GGML_TYPE_Q1_0: case GGML_TYPE_Q2_0: case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1:
        case GGML_TYPE_Q5_0: case GGML_TYPE_Q5_1: case GGML_TYPE_Q8_0: case GGML_TYPE_MXFP4: case GGML_TYPE_NVFP4:
        case GGML_TYPE_Q2_K: case GGML_TYPE_Q3_K: case GGML_TYPE_Q4_K: case GGML_TYPE_Q5_K: case GGML_TYPE_Q6_K:
        case GGML_TYPE_TQ1_0: case GGML_TYPE_TQ2_0:
        case GGML_TYPE_IQ2_XXS: case GGML_TYPE_IQ2_XS: case GGML_TYPE_IQ3_XXS: case GGML_TYPE_IQ3_S: case GGML_TYPE_IQ2_S:
        case GGML_TYPE_IQ1_S: case GGML_TYPE_IQ1_M: case GGML_TYPE_IQ4_NL: case GGML_TYPE_IQ4_XS:
            return true;
        default:
            return false;
    }
}

} // namespace

extern "C" {

int32_t lr_type_from_name(const char * name) {
    if (name == nullptr) return -1;
    std::string want(name);
    for (auto & c : want) c = (char) std::tolower((unsigned char) c);
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {
        const char * tn = ggml_type_name((ggml_type) t);
        if (tn == nullptr || ggml_blck_size((ggml_type) t) == 0) continue;
        std::string have(tn);
        for (auto & c : have) c = (char) std::tolower((unsigned char) c);
        if (have == want) return t;
    }
    return -1;
}

size_t lr_type_row_bytes(int32_t type, int64_t n_per_row) {
    if (type < 0 || type >= GGML_TYPE_COUNT || n_per_row <= 0) return 0;
    const int64_t blck = ggml_blck_size((ggml_type) type);
    if (blck <= 0 || ggml_type_size((ggml_type) type) == 0 || n_per_row % blck != 0) return 0;
    return ggml_row_size((ggml_type) type, n_per_row);
}

lr_status lr_quantize(int32_t type, const float * src, int64_t n_rows, int64_t n_per_row,
                      void * dst, size_t capacity, size_t * n_bytes) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(src != nullptr && dst != nullptr, "lr_quantize: src and dst must not be NULL");
        LR_REQUIRE_ARG(n_rows > 0 && n_per_row > 0, "lr_quantize: n_rows and n_per_row must be positive");
        LR_REQUIRE_ARG(type >= 0 && type < GGML_TYPE_COUNT, lr::format("lr_quantize: unknown ggml type %d", type));
        const ggml_type t = (ggml_type) type;
        const size_t row = lr_type_row_bytes(type, n_per_row);
        if (row == 0) {
            lr::fail(LR_ERR_INVALID_ARGUMENT, lr::format("lr_quantize: a row of %lld values does not fit type %s (block size %lld)",
                (long long) n_per_row, ggml_type_name(t), (long long) ggml_blck_size(t)));
        }
        if (!quantizable(t)) {
            lr::fail(LR_ERR_UNSUPPORTED, lr::format("lr_quantize: ggml cannot quantize to type %s", ggml_type_name(t)));
        }
        if (ggml_quantize_requires_imatrix(t)) {
            lr::fail(LR_ERR_UNSUPPORTED, lr::format("lr_quantize: type %s needs an importance matrix", ggml_type_name(t)));
        }
        if (n_rows > (int64_t) (SIZE_MAX / row)) lr::fail(LR_ERR_INVALID_ARGUMENT, "lr_quantize: size overflows");
        const size_t need = row * (size_t) n_rows;
        if (n_bytes) *n_bytes = need;
        if (capacity < need) {
            lr::fail(LR_ERR_BUFFER_TOO_SMALL, lr::format("lr_quantize: needs %zu bytes, got %zu", need, capacity));
        }
        if (t == GGML_TYPE_F32) {
            std::memcpy(dst, src, need);
            return;
        }
        ggml_quantize_init(t);
        const size_t written = ggml_quantize_chunk(t, src, dst, 0, n_rows, n_per_row, nullptr);
        if (written != need) lr::fail(LR_ERR_INTERNAL, "lr_quantize: ggml wrote an unexpected size");
    });
}

} // extern "C"
