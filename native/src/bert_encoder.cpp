#include "bert_encoder.h"
#include "status.h"

#include <numeric>

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
    std::lock_guard<std::mutex> lk(mu_);
    const BertHParams & hp = model_.hp;
    ggml_init_params ip = { meta_.size(), meta_.data(), true };
    ggml_context * ctx = ggml_init(ip);
    if (!ctx) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed for the BERT graph");
    struct Free { ggml_context * c; ~Free() { ggml_free(c); } } guard{ctx};

    ggml_cgraph * gf = ggml_new_graph_custom(ctx, bert_graph_max_nodes(hp), false);
    BertGraph g = build_bert_graph(ctx, gf, model_, n_ids);
    if (n_ids != reserved_tokens_) {
        reserved_tokens_ = 0;
        reserve_graph(sched_, backends_, bert_graph_max_nodes(hp), gf, format("the BERT graph for %d token(s)", n_ids));
        reserved_tokens_ = n_ids;
    }
    ggml_backend_sched_reset(sched_);
    if (!ggml_backend_sched_alloc_graph(sched_, gf)) {
        reserved_tokens_ = 0;
        fail(LR_ERR_OUT_OF_MEMORY, "could not allocate the BERT graph");
    }
    std::vector<int32_t> positions((size_t) n_ids);
    std::iota(positions.begin(), positions.end(), 0);
    const std::vector<int32_t> types((size_t) n_ids, 0);
    ggml_backend_tensor_set(g.ids, ids, 0, ggml_nbytes(g.ids));
    ggml_backend_tensor_set(g.positions, positions.data(), 0, ggml_nbytes(g.positions));
    ggml_backend_tensor_set(g.types, types.data(), 0, ggml_nbytes(g.types));
    if (ggml_backend_sched_graph_compute(sched_, gf) != GGML_STATUS_SUCCESS) {
        fail(LR_ERR_BACKEND, "the backend failed to compute the BERT graph");
    }
    ggml_backend_tensor_get(g.cls, cls, 0, ggml_nbytes(g.cls));
    if (g.logits && logits) ggml_backend_tensor_get(g.logits, logits, 0, ggml_nbytes(g.logits));
    if (hidden) ggml_backend_tensor_get(g.hidden, hidden, 0, ggml_nbytes(g.hidden));
}

} // namespace lr
