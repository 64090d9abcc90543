// The BERT encoder's forward pass (and CheXbert's heads) as a ggml graph, for a batch of B sequences padded to
// the longest (T tokens each).
#pragma once

#include "bert_model.h"

#include "ggml.h"

namespace lr {

struct BertGraph {
    ggml_tensor * ids = nullptr;       // input I32 [T * B]: WordPiece ids, [CLS] first, sequence after sequence
    ggml_tensor * positions = nullptr; // input I32 [T * B]: 0 .. T-1 for each sequence
    ggml_tensor * types = nullptr;     // input I32 [T * B]: token type ids (all 0: one segment)
    ggml_tensor * mask = nullptr;      // input F32 [T(keys), T(queries), 1, B]: 0 for a real key, -inf for padding
                                       // (null when B == 1: a lone sequence has no padding)
    ggml_tensor * cls = nullptr;       // F32 [D, B]: the last layer's hidden state at each sequence's [CLS]
    ggml_tensor * logits = nullptr;    // F32 [n_logits, B]: every head's logits, head after head (null: no heads)
    ggml_tensor * hidden = nullptr;    // F32 [D, T * B]: the last layer's hidden state of every token (RadGraph's input)
};

// Builds the graph for n_seqs sequences of n_tokens (padded) into ctx (no_alloc) and gf.
BertGraph build_bert_graph(ggml_context * ctx, ggml_cgraph * gf, const BertModel & model, int32_t n_tokens,
                           int32_t n_seqs);

size_t bert_graph_max_nodes(const BertHParams & hp);

} // namespace lr
