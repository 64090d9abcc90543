#include "bert_batch.h"
#include "status.h"

#include <algorithm>
#include <numeric>

namespace lr {

BertBatchShape check_bert_batch(const BertHParams & hp, const int32_t * ids, const int32_t * n_ids, int32_t n_seqs,
                                const char * fn) {
    if (ids == nullptr || n_ids == nullptr) fail(LR_ERR_INVALID_ARGUMENT, format("%s: ids and n_ids must not be NULL", fn));
    if (n_seqs < 1) fail(LR_ERR_INVALID_ARGUMENT, format("%s: n_seqs must be at least 1, got %d", fn, n_seqs));
    BertBatchShape shape;
    for (int32_t s = 0; s < n_seqs; s++) {
        if (n_ids[s] < 1 || n_ids[s] > hp.n_ctx) {
            fail(LR_ERR_INVALID_ARGUMENT, format("%s: sequence %d must hold 1 to %d token ids, got %d", fn, s, hp.n_ctx, n_ids[s]));
        }
        if (n_ids[s] > shape.longest) shape.longest = n_ids[s];
        shape.n_tokens += (size_t) n_ids[s];
    }
    if ((int64_t) n_seqs * shape.longest > kMaxBertBatchTokens) {
        fail(LR_ERR_INVALID_ARGUMENT, format("%s: %d sequence(s) padded to %d tokens need %lld token slots; one batch holds at most %lld",
                                             fn, n_seqs, shape.longest, (long long) n_seqs * shape.longest, (long long) kMaxBertBatchTokens));
    }
    for (size_t i = 0; i < shape.n_tokens; i++) {
        if (ids[i] < 0 || ids[i] >= hp.n_vocab) {
            fail(LR_ERR_INVALID_ARGUMENT, format("%s: token id %d at %zu is outside the vocabulary of %d", fn, ids[i], i, hp.n_vocab));
        }
    }
    return shape;
}

std::vector<std::vector<int32_t>> plan_bert_batches(const int32_t * n_ids, int32_t n_seqs, int32_t max_seqs, int64_t max_slots) {
    std::vector<int32_t> order((size_t) n_seqs);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return n_ids[a] > n_ids[b]; });
    std::vector<std::vector<int32_t>> batches;
    for (int32_t s : order) {
        // longest first: the batch's first sequence is its longest, which sets its padded length
        const bool full = !batches.empty() && ((int32_t) batches.back().size() >= max_seqs ||
                                               (int64_t) (batches.back().size() + 1) * n_ids[batches.back().front()] > max_slots);
        if (batches.empty() || full) batches.emplace_back();
        batches.back().push_back(s);
    }
    return batches;
}

} // namespace lr
