#include "bert_encoder.h"
#include "status.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace lr {

BertEncoder::BertEncoder(const BertModel & model, int32_t n_threads) : model_(model) {
    init_backends(backends_, model.backends.gpu ? LR_BACKEND_CUDA : LR_BACKEND_CPU,
                  n_threads > 0 ? n_threads : model.backends.n_threads);
    const size_t max_nodes = bert_graph_max_nodes(model.hp);
    sched_ = new_scheduler(backends_, max_nodes);
    meta_.resize(ggml_tensor_overhead() * max_nodes + ggml_graph_overhead_custom(max_nodes, false));
}

BertEncoder::~BertEncoder() {
    if (sched_) ggml_backend_sched_free(sched_);
}

void BertEncoder::encode(const int32_t * ids, int32_t n_ids, float * cls, float * logits, float * hidden) {
    encode_batch(ids, &n_ids, 1, cls, logits, hidden);
}

void BertEncoder::encode_batch(const int32_t * ids, const int32_t * n_ids, int32_t n_seqs, float * cls, float * logits,
                               float * hidden) {
    std::lock_guard<std::mutex> lk(mu_);
    const BertHParams & hp = model_.hp;
    const int32_t B = n_seqs;
    const int32_t T = *std::max_element(n_ids, n_ids + B); // the padded length
    const size_t D = (size_t) hp.n_embd;

    ggml_init_params ip = { meta_.size(), meta_.data(), true };
    ggml_context * ctx = ggml_init(ip);
    if (!ctx) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed for the BERT graph");
    struct Free { ggml_context * c; ~Free() { ggml_free(c); } } guard{ctx};

    ggml_cgraph * gf = ggml_new_graph_custom(ctx, bert_graph_max_nodes(hp), false);
    BertGraph g = build_bert_graph(ctx, gf, model_, T, B);
    if (T != reserved_tokens_ || B != reserved_seqs_) {
        reserved_tokens_ = reserved_seqs_ = 0;
        reserve_graph(sched_, backends_, bert_graph_max_nodes(hp), gf,
                      format("the BERT graph for %d sequence(s) of %d token(s)", B, T));
        reserved_tokens_ = T;
        reserved_seqs_ = B;
    }
    ggml_backend_sched_reset(sched_);
    if (!ggml_backend_sched_alloc_graph(sched_, gf)) {
        reserved_tokens_ = reserved_seqs_ = 0;
        fail(LR_ERR_OUT_OF_MEMORY, "could not allocate the BERT graph");
    }

    // inputs, sequence after sequence, each padded to T with id 0 (its rows are never read)
    std::vector<int32_t> padded_ids((size_t) T * B, 0), positions((size_t) T * B);
    const std::vector<int32_t> types((size_t) T * B, 0);
    std::vector<float> mask(g.mask ? (size_t) T * T * B : 0);
    const int32_t * seq = ids;
    for (int32_t b = 0; b < B; b++) {
        const size_t at = (size_t) b * T;
        std::memcpy(padded_ids.data() + at, seq, sizeof(int32_t) * (size_t) n_ids[b]);
        for (int32_t t = 0; t < T; t++) positions[at + t] = t;
        seq += n_ids[b];
        if (!g.mask) continue;
        // mask[b][query][key]: 0 for the real keys, -inf for the padding ones, the same for every query row
        for (int32_t q = 0; q < T; q++) {
            float * row = mask.data() + ((size_t) b * T + q) * T;
            for (int32_t k = 0; k < T; k++) row[k] = k < n_ids[b] ? 0.0f : -INFINITY;
        }
    }
    ggml_backend_tensor_set(g.ids, padded_ids.data(), 0, ggml_nbytes(g.ids));
    ggml_backend_tensor_set(g.positions, positions.data(), 0, ggml_nbytes(g.positions));
    ggml_backend_tensor_set(g.types, types.data(), 0, ggml_nbytes(g.types));
    if (g.mask) ggml_backend_tensor_set(g.mask, mask.data(), 0, ggml_nbytes(g.mask));
    if (ggml_backend_sched_graph_compute(sched_, gf) != GGML_STATUS_SUCCESS) {
        fail(LR_ERR_BACKEND, "the backend failed to compute the BERT graph");
    }

    ggml_backend_tensor_get(g.cls, cls, 0, ggml_nbytes(g.cls));
    if (g.logits && logits) ggml_backend_tensor_get(g.logits, logits, 0, ggml_nbytes(g.logits));
    if (hidden) {
        // each sequence's real rows of [D, T * B], packed
        size_t out_at = 0;
        for (int32_t b = 0; b < B; b++) {
            const size_t n = D * (size_t) n_ids[b];
            ggml_backend_tensor_get(g.hidden, hidden + out_at, sizeof(float) * D * (size_t) b * T, sizeof(float) * n);
            out_at += n;
        }
    }
}

} // namespace lr
