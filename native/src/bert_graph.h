// The BERT encoder's forward pass (and CheXbert's heads) as a ggml graph, for one sequence of token ids.
#pragma once

#include "bert_model.h"

#include "ggml.h"

namespace lr {

struct BertGraph {
    ggml_tensor * ids = nullptr;       // input I32 [T]: WordPiece ids, [CLS] first
    ggml_tensor * positions = nullptr; // input I32 [T]: 0 .. T-1
    ggml_tensor * types = nullptr;     // input I32 [T]: token type ids (all 0: one segment)
    ggml_tensor * cls = nullptr;       // F32 [D]: the last layer's hidden state at [CLS]
    ggml_tensor * logits = nullptr;    // F32 [n_logits]: every head's logits, head after head (null: no heads)
    ggml_tensor * hidden = nullptr;    // F32 [D, T]: the last layer's hidden state of every token (RadGraph's input)
};

// Builds the graph for n_tokens into ctx (no_alloc) and gf.
BertGraph build_bert_graph(ggml_context * ctx, ggml_cgraph * gf, const BertModel & model, int32_t n_tokens);

size_t bert_graph_max_nodes(const BertHParams & hp);

} // namespace lr
