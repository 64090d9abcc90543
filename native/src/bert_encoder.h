// Runs the BERT graph: one sequence of token ids in, the [CLS] hidden state and the heads' logits out.
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

private:
    const BertModel & model_;
    Backends backends_;
    ggml_backend_sched_t sched_ = nullptr;
    std::vector<uint8_t> meta_;
    int32_t reserved_tokens_ = 0; // the length whose graph the compute buffers were reserved for (0: none)
    std::mutex mu_;
};

} // namespace lr
