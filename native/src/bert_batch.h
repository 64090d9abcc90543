// Checks a batch of token id sequences for the BERT encoder (the C API entry points of lr_bert, lr_radgraph and
// lr_clip's text tower share it), so a bad batch is refused before any graph is built.
#pragma once

#include "bert_model.h"
#include "llava_rad.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lr {

// The most token slots one graph holds (n_seqs x the longest sequence, padding included): bounds the graph's
// compute memory (BERT-base at 512 x 32 needs about 1 GiB of attention scores).
constexpr int64_t kMaxBertBatchTokens = LR_BERT_MAX_BATCH_TOKENS;

struct BertBatchShape {
    int32_t longest = 0;   // T: the padded length
    size_t  n_tokens = 0;  // sum of n_ids: the real tokens
};

// ids: n_seqs sequences one after another; n_ids[s]: sequence s's count. Refuses (LR_ERR_INVALID_ARGUMENT, the
// message naming `fn`) an empty batch, a count outside 1..n_ctx, an id outside the vocabulary and a batch whose
// n_seqs x longest exceeds kMaxBertBatchTokens.
BertBatchShape check_bert_batch(const BertHParams & hp, const int32_t * ids, const int32_t * n_ids, int32_t n_seqs,
                                const char * fn);

// Groups n_seqs sequences (counts n_ids) into batches, longest first so like lengths share a graph: each at most
// max_seqs sequences and max_slots token slots (count x longest; max_slots >= every count). Every index once.
std::vector<std::vector<int32_t>> plan_bert_batches(const int32_t * n_ids, int32_t n_seqs, int32_t max_seqs, int64_t max_slots);

} // namespace lr
