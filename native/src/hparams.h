// Decoder hyperparameters ("llama" architecture keys of a GGUF), validated.
#pragma once

#include <cstdint>

namespace lr {

class GgufFile;

struct LlamaHParams {
    int32_t n_vocab     = 0;
    int32_t n_ctx_train = 0;
    int32_t n_embd      = 0;
    int32_t n_layer     = 0;
    int32_t n_head      = 0;
    int32_t n_head_kv   = 0;
    int32_t n_ff        = 0;
    int32_t n_rot       = 0;      // rotated dimensions per head (= head size for LLaMA)
    float   rms_eps     = 1e-5f;
    float   rope_freq_base  = 10000.0f;
    float   rope_freq_scale = 1.0f;  // 1 / linear scaling factor

    int32_t head_dim()  const { return n_embd / n_head; }
    int32_t n_embd_kv() const { return head_dim() * n_head_kv; } // K/V width (GQA)

    // Reads and checks every value; throws lr::Error(LR_ERR_BAD_GGUF / LR_ERR_UNSUPPORTED).
    static LlamaHParams from_gguf(const GgufFile & gguf);
};

} // namespace lr
