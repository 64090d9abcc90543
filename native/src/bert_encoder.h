// Runs the BERT graph: a batch of token id sequences in (padded to the longest, the padding masked), each
// sequence's [CLS] hidden state, the heads' logits and (optionally) every real token's hidden state out.
// One encoder per BERT model; calls are serialized.
#pragma once

#include "bert_graph.h"
#include "bert_model.h"

#include "ggml-backend.h"

#include <mutex>
#include <vector>

namespace lr {

class BertEncoder {
public:
    BertEncoder(const BertModel & model, int32_t n_threads);
    ~BertEncoder();
    BertEncoder(const BertEncoder &) = delete;
    BertEncoder & operator=(const BertEncoder &) = delete;

    // ids: n_ids token ids (checked by the caller: 1..n_ctx ids, each < n_vocab).
    // cls: n_embd floats; logits: n_logits floats (may be null when the model has no heads);
    // hidden (optional): n_ids * n_embd floats, every token's last hidden state, token after token.
    void encode(const int32_t * ids, int32_t n_ids, float * cls, float * logits, float * hidden = nullptr);

    // n_seqs sequences in one graph: ids holds them one after another, n_ids[s] is sequence s's count (checked by
    // the caller: n_seqs >= 1, each 1..n_ctx, ids < n_vocab). cls: n_seqs * n_embd floats; logits (may be null):
    // n_seqs * n_logits; hidden (optional): sum(n_ids) * n_embd floats, each sequence's real tokens in order.
    void encode_batch(const int32_t * ids, const int32_t * n_ids, int32_t n_seqs, float * cls, float * logits,
                      float * hidden = nullptr);

private:
    const BertModel & model_;
    Backends backends_;
    ggml_backend_sched_t sched_ = nullptr;
    std::vector<uint8_t> meta_;
    int32_t reserved_tokens_ = 0; // the padded length and batch whose graph the compute buffers were reserved
    int32_t reserved_seqs_ = 0;   // for (0: none)
    std::mutex mu_;
};

} // namespace lr
