// Placing a GGUF's tensors on backend buffers: for each weight, the first buffer type whose device can
// run the op that uses it (the CPU's repacking buffers for matrices when there is no GPU, as llama.cpp
// does); mapped in place when the CPU's plain buffers hold it and mmap is on.
#pragma once

#include "backend.h"
#include "gguf_file.h"
#include "vnni_matmul.h"

#include "ggml.h"
#include "ggml-backend.h"

#include <string>
#include <unordered_map>
#include <vector>

namespace lr {

// how the graph uses a weight: decides the types allowed and where it may live
enum class WeightUse {
    Embed,  // ggml_get_rows source (token embeddings): always on the CPU
    MatMul, // ggml_mul_mat source (any weight type a kernel exists for)
    Vector, // elementwise operand (norms, biases, scales, position tables): f32 only
    Conv,   // ggml_conv_2d kernel: f32 or f16
};

struct WeightDecl {
    std::string name;
    std::vector<int64_t> shape; // ggml order; must match exactly
    WeightUse use;
    ggml_tensor ** slot;
};

class WeightStore {
public:
    WeightStore() = default;
    WeightStore(const WeightStore &) = delete;
    WeightStore & operator=(const WeightStore &) = delete;
    ~WeightStore();

    // Checks every declared tensor (presence, shape, type) and places it. Throws lr::Error.
    // vnni: on a CPU-only run on a CPU with AVX512-VNNI, q8_0 and q6_K matrices of a suitable shape are
    // copied (mmap or not) and repacked for vnni_matmul.h's kernels; vnni_layout() then names their layout.
    void place(const GgufFile & gguf, const Backends & backends, const std::vector<WeightDecl> & decls, bool use_mmap,
               bool vnni = false);

    VnniLayout vnni_layout(const ggml_tensor * t) const {
        auto it = vnni_.find(t);
        return it == vnni_.end() ? VnniLayout::None : it->second;
    }
    int32_t n_vnni() const { return (int32_t) vnni_.size(); }

    int64_t n_params = 0;
    int64_t bytes = 0;
    ggml_type main_type = GGML_TYPE_F32; // type holding the most matrix bytes

private:
    std::vector<ggml_context *> contexts_;
    std::vector<ggml_backend_buffer_t> buffers_;
    std::unordered_map<const ggml_tensor *, VnniLayout> vnni_;
};

} // namespace lr
