// The LLaMA decoder's forward pass as a ggml graph, one "ubatch" of tokens at a time.
#pragma once

#include "decoder_model.h"
#include "kv_cache.h"

#include "ggml.h"

namespace lr {

// Sizes of one graph: everything its shapes depend on.
struct GraphShape {
    int32_t n_tokens  = 0; // rows in the batch (token ids + embedding rows)
    int32_t n_tok_ids = 0; // rows given as token ids
    int32_t n_emb     = 0; // rows given as embeddings
    int32_t n_kv      = 0; // KV cells attended over
    int32_t n_outputs = 0; // rows whose logits are computed
    bool flash_attn   = false;
    bool cpu          = true; // computed on the CPU backend (an f16 cache's operands are rounded in the graph)

    bool operator==(const GraphShape & o) const {
        return n_tokens == o.n_tokens && n_tok_ids == o.n_tok_ids && n_emb == o.n_emb && n_kv == o.n_kv &&
               n_outputs == o.n_outputs && flash_attn == o.flash_attn && cpu == o.cpu;
    }
};

// The graph's input tensors, filled by the caller after allocation (null when unused).
struct GraphInputs {
    ggml_tensor * tok_ids = nullptr; // I32 [n_tok_ids]
    ggml_tensor * embd    = nullptr; // F32 [n_embd, n_emb]
    ggml_tensor * order   = nullptr; // I32 [n_tokens]: row of concat(tokens, embeddings) for each batch row
    ggml_tensor * pos     = nullptr; // I32 [n_tokens]
    ggml_tensor * kq_mask = nullptr; // F32 (F16 with flash attention) [n_kv, n_tokens]
    ggml_tensor * k_idxs  = nullptr; // I64 [n_tokens]: KV cell of each row
    ggml_tensor * v_idxs  = nullptr; // I64 [n_tokens] or [n_tokens * n_embd_kv] when V is transposed
    ggml_tensor * out_ids = nullptr; // I32 [n_outputs]
    ggml_tensor * k_rot   = nullptr; // F32 [rot_k, rot_k] Hadamard matrix (quantized caches only)
    ggml_tensor * v_rot   = nullptr; // F32 [rot_v, rot_v]
    ggml_tensor * logits  = nullptr; // F32 [n_vocab, n_outputs] (the result)
};

// Builds the graph into ctx (a no_alloc context). Adds the result to gf.
void build_decoder_graph(ggml_context * ctx, ggml_cgraph * gf, const DecoderModel & model, const KvCache & kv,
                         const GraphShape & shape, GraphInputs & in);

// nodes a decoder graph may need (for sizing contexts and graphs)
size_t decoder_graph_max_nodes(const LlamaHParams & hp);

} // namespace lr
