// The LLaMA decoder's weights, placed on backend buffers from a validated GGUF.
#pragma once

#include "backend.h"
#include "gguf_file.h"
#include "hparams.h"
#include "tokenizer.h"
#include "weight_store.h"

#include "ggml.h"
#include "ggml-backend.h"

#include <memory>
#include <string>
#include <vector>

namespace lr {

struct LayerWeights {
    ggml_tensor * attn_norm = nullptr; // [n_embd]
    ggml_tensor * wq = nullptr;        // [n_embd, n_embd]
    ggml_tensor * wk = nullptr;        // [n_embd, n_embd_kv]
    ggml_tensor * wv = nullptr;        // [n_embd, n_embd_kv]
    ggml_tensor * wo = nullptr;        // [n_embd, n_embd]
    ggml_tensor * ffn_norm = nullptr;  // [n_embd]
    ggml_tensor * ffn_gate = nullptr;  // [n_embd, n_ff]
    ggml_tensor * ffn_up = nullptr;    // [n_embd, n_ff]
    ggml_tensor * ffn_down = nullptr;  // [n_ff, n_embd]
};

struct DecoderModel {
    std::unique_ptr<GgufFile> gguf;
    LlamaHParams hp;
    std::unique_ptr<Tokenizer> tokenizer;
    Backends backends;

    ggml_tensor * tok_embd = nullptr;    // [n_embd, n_vocab]
    ggml_tensor * output_norm = nullptr; // [n_embd]
    ggml_tensor * output = nullptr;      // [n_embd, n_vocab] (token_embd when the file ties them)
    std::vector<LayerWeights> layers;

    std::string name;
    ggml_type weight_type = GGML_TYPE_F32; // type of most matrix weights
    int64_t n_params = 0;
    int64_t weight_bytes = 0;
    int32_t n_vnni = 0; // matrices repacked for vnni_matmul.h's kernels

    DecoderModel() = default;
    DecoderModel(const DecoderModel &) = delete;
    DecoderModel & operator=(const DecoderModel &) = delete;
    ~DecoderModel();

    // Opens, validates and loads. Throws lr::Error.
    static std::unique_ptr<DecoderModel> load(const std::string & path, const lr_model_params & params);

    // the layout of a weight repacked for the VNNI CPU kernels (vnni_matmul.h), or None: the graph
    // multiplies repacked weights with those kernels
    VnniLayout vnni_layout(const ggml_tensor * w) const { return weights_.vnni_layout(w); }

private:
    WeightStore weights_;
    void place_weights(bool use_mmap);
};

} // namespace lr
