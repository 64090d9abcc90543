// A BERT encoder (transformers' BertModel, post-LayerNorm) with CheXbert's 14 classification heads, loaded from
// the GGUF that lib/convert/chexbert.ts writes.
//
//   general.architecture "bert"   bert.context_length (512)  bert.embedding_length (768)
//   bert.feed_forward_length (3072)  bert.block_count (12)  bert.attention.head_count (12)
//   bert.attention.layer_norm_epsilon (1e-12)  bert.token_type_count (2)
//   tokenizer.ggml.tokens (the WordPiece vocabulary: only its size is used here)
//   chexbert.head_classes (u32[14]: 4 x 13, 2)   (absent: a plain encoder, no heads)
//
//   bert.token_embd.weight [D, V]  bert.position_embd.weight [D, P]  bert.token_types.weight [D, 2]
//   bert.token_embd_norm.{weight, bias} [D]
//   bert.blk.N.attn_{q, k, v, output}.{weight [D, D], bias [D]}  bert.blk.N.attn_output_norm.{weight, bias} [D]
//   bert.blk.N.ffn_up.{weight [D, F], bias [F]}  bert.blk.N.ffn_down.{weight [F, D], bias [D]}
//   bert.blk.N.layer_output_norm.{weight, bias} [D]
//   chexbert.head.N.{weight [D, C], bias [C]}
// (ggml order: the first number is the row length)
#pragma once

#include "backend.h"
#include "gguf_file.h"
#include "weight_store.h"

#include "ggml.h"

#include <memory>
#include <string>
#include <vector>

namespace lr {

struct BertHParams {
    int32_t n_vocab = 30522;
    int32_t n_ctx = 512;         // position embeddings: the longest input
    int32_t n_token_types = 2;
    int32_t n_embd = 768;
    int32_t n_ff = 3072;
    int32_t n_block = 12;
    int32_t n_head = 12;
    float   eps = 1e-12f;
    std::vector<int32_t> head_classes; // classes of each classification head (CheXbert: 4 x 13, 2)

    int32_t n_logits() const {
        int32_t n = 0;
        for (int32_t c : head_classes) n += c;
        return n;
    }

    static BertHParams from_gguf(const GgufFile & gguf);
};

struct BertBlock {
    ggml_tensor * q_w = nullptr, * q_b = nullptr, * k_w = nullptr, * k_b = nullptr, * v_w = nullptr, * v_b = nullptr;
    ggml_tensor * o_w = nullptr, * o_b = nullptr;
    ggml_tensor * attn_norm_w = nullptr, * attn_norm_b = nullptr;
    ggml_tensor * up_w = nullptr, * up_b = nullptr, * down_w = nullptr, * down_b = nullptr;
    ggml_tensor * out_norm_w = nullptr, * out_norm_b = nullptr;
};

struct BertHead {
    ggml_tensor * w = nullptr; // [D, C]
    ggml_tensor * b = nullptr; // [C]
};

struct BertModel {
    std::unique_ptr<GgufFile> gguf;
    BertHParams hp;
    Backends backends;

    ggml_tensor * tok_embd = nullptr;   // [D, V]
    ggml_tensor * pos_embd = nullptr;   // [D, P]
    ggml_tensor * type_embd = nullptr;  // [D, 2]
    ggml_tensor * embd_norm_w = nullptr, * embd_norm_b = nullptr;
    std::vector<BertBlock> blocks;
    std::vector<BertHead> heads;

    std::string name;
    int64_t n_params = 0;

    BertModel() = default;
    BertModel(const BertModel &) = delete;
    BertModel & operator=(const BertModel &) = delete;

    static std::unique_ptr<BertModel> load(const std::string & path, const lr_model_params & params);

private:
    WeightStore weights_;
};

} // namespace lr
