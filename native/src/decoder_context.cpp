#include "decoder_context.h"
#include "status.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <unordered_map>

namespace lr {

DecoderContext::DecoderContext(const DecoderModel & model, const DecoderContextParams & params)
    : model_(model), params_(params) {
    // each context computes on its own backend instances: a ggml backend is not safe to share
    // between threads computing at the same time
    init_backends(backends_, model.backends.gpu ? LR_BACKEND_CUDA : LR_BACKEND_CPU,
                  params.n_threads > 0 ? params.n_threads : model.backends.n_threads);
    kv_ = std::make_unique<KvCache>(model.hp, backends_, params.n_ctx, params.n_seq_max, params.kv_type, !params.flash_attn);

    const size_t max_nodes = decoder_graph_max_nodes(model.hp);
    sched_ = new_scheduler(backends_, max_nodes);
    meta_.resize(ggml_tensor_overhead() * max_nodes + ggml_graph_overhead_custom(max_nodes, false));
    if (kv_->rot_k() > 0) rot_k_ = hadamard_matrix(kv_->rot_k());
    if (kv_->rot_v() > 0) rot_v_ = hadamard_matrix(kv_->rot_v());
    reserve();
}

DecoderContext::~DecoderContext() {
    drop_graph();
    if (sched_) ggml_backend_sched_free(sched_);
}

void DecoderContext::drop_graph() {
    if (graph_ctx_) ggml_free(graph_ctx_);
    graph_ctx_ = nullptr;
    graph_ = nullptr;
    graph_in_ = GraphInputs{};
}

void DecoderContext::prepare_graph(const GraphShape & s) {
    if (graph_ && s == graph_shape_) return; // same shape: same graph, same allocation; only inputs change
    drop_graph();
    ggml_init_params ip = { meta_.size(), meta_.data(), true };
    graph_ctx_ = ggml_init(ip);
    if (!graph_ctx_) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed for a graph");
    graph_ = ggml_new_graph_custom(graph_ctx_, decoder_graph_max_nodes(model_.hp), false);
    build_decoder_graph(graph_ctx_, graph_, model_, *kv_, s, graph_in_);
    ggml_backend_sched_reset(sched_);
    if (!ggml_backend_sched_alloc_graph(sched_, graph_)) {
        drop_graph();
        fail(LR_ERR_OUT_OF_MEMORY, "could not allocate the graph");
    }
    graph_shape_ = s;
}

namespace {

struct GraphCtx {
    ggml_context * ctx = nullptr;
    explicit GraphCtx(std::vector<uint8_t> & meta) {
        ggml_init_params ip = { meta.size(), meta.data(), true };
        ctx = ggml_init(ip);
        if (!ctx) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed for a graph");
    }
    ~GraphCtx() { ggml_free(ctx); }
};

} // namespace

// allocate compute memory for the largest graph up front, so that running out of memory shows at
// context creation rather than in the middle of a request
void DecoderContext::reserve() {
    GraphShape s;
    s.n_tokens = params_.n_batch;
    s.n_tok_ids = params_.n_batch;
    s.n_emb = 0;
    s.n_kv = kv_->size();
    s.n_outputs = params_.n_batch;
    s.flash_attn = params_.flash_attn;
    s.cpu = !model_.backends.gpu;
    drop_graph(); // the reservation graph uses the same metadata memory
    GraphCtx g(meta_);
    ggml_cgraph * gf = ggml_new_graph_custom(g.ctx, decoder_graph_max_nodes(model_.hp), false);
    GraphInputs in;
    build_decoder_graph(g.ctx, gf, model_, *kv_, s, in);
    reserve_graph(sched_, backends_, decoder_graph_max_nodes(model_.hp), gf,
                  format("a decoder batch of %d tokens over %d cache cells", params_.n_batch, kv_->size()));
}

void DecoderContext::validate(const std::vector<BatchRow> & rows) const {
    if (rows.empty()) fail(LR_ERR_INVALID_ARGUMENT, "the batch is empty");
    const int32_t n_vocab = model_.hp.n_vocab;
    std::unordered_map<int32_t, int32_t> next_pos;
    for (size_t i = 0; i < rows.size(); i++) {
        const BatchRow & r = rows[i];
        if (r.seq < 0 || r.seq >= params_.n_seq_max) {
            fail(LR_ERR_INVALID_ARGUMENT, format("batch row %zu: sequence %d is outside [0, %d)", i, r.seq, params_.n_seq_max));
        }
        if (r.token == LR_TOKEN_EMBD) {
            if (r.embd == nullptr) fail(LR_ERR_INVALID_ARGUMENT, format("batch row %zu: embedding row without data", i));
        } else if (r.token < 0 || r.token >= n_vocab) {
            fail(LR_ERR_INVALID_ARGUMENT, format("batch row %zu: token id %d is outside [0, %d)", i, r.token, n_vocab));
        }
        auto it = next_pos.find(r.seq);
        const int32_t expect = it == next_pos.end() ? kv_->seq_length(r.seq) : it->second;
        if (r.pos != expect) {
            fail(LR_ERR_INVALID_ARGUMENT, format("batch row %zu: position %d of sequence %d should be %d (positions continue the sequence)",
                i, r.pos, r.seq, expect));
        }
        next_pos[r.seq] = expect + 1;
    }
    if ((int64_t) rows.size() > kv_->free_cells()) {
        fail(LR_ERR_CONTEXT_FULL, format("the batch needs %zu KV cells but only %d of %d are free", rows.size(), kv_->free_cells(), kv_->size()));
    }
}

void DecoderContext::decode(const std::vector<BatchRow> & rows) {
    validate(rows);
    const int32_t n_vocab = model_.hp.n_vocab;
    int32_t wanted = 0;
    for (auto & r : rows) wanted += r.logits;
    logits_.assign((size_t) wanted * (size_t) n_vocab, 0.0f);
    n_out_ = 0;
    std::unordered_map<int32_t, int32_t> length_before; // per sequence in the batch
    for (auto & r : rows) length_before.emplace(r.seq, kv_->seq_length(r.seq));
    try {
        for (size_t i = 0; i < rows.size(); i += (size_t) params_.n_batch) {
            const int32_t n = (int32_t) std::min(rows.size() - i, (size_t) params_.n_batch);
            decode_ubatch(rows.data() + i, n);
        }
    } catch (...) {
        // cells the batch took hold keys and values of a computation that did not finish
        for (auto & [seq, len] : length_before) kv_->truncate(seq, len);
        n_out_ = 0;
        throw;
    }
}

void DecoderContext::set_abort_callback(ggml_abort_callback cb, void * data) {
    set_cpu_abort_callback(backends_.cpu, cb, data);
}

const float * DecoderContext::logits(int32_t i) const {
    if (i < 0 || i >= n_out_) return nullptr;
    return logits_.data() + (size_t) i * (size_t) model_.hp.n_vocab;
}

void DecoderContext::decode_ubatch(const BatchRow * rows, int32_t n) {
    const LlamaHParams & hp = model_.hp;

    seq_.assign((size_t) n, 0);
    pos_.assign((size_t) n, 0);
    tok_ids_.clear();
    embd_.clear();
    order_.assign((size_t) n, 0);
    out_ids_.clear();
    int32_t n_tok = 0;
    for (int32_t i = 0; i < n; i++) n_tok += rows[i].token != LR_TOKEN_EMBD;
    int32_t i_tok = 0, i_emb = 0;
    for (int32_t i = 0; i < n; i++) {
        const BatchRow & r = rows[i];
        seq_[(size_t) i] = r.seq;
        pos_[(size_t) i] = r.pos;
        if (r.token != LR_TOKEN_EMBD) {
            tok_ids_.push_back(r.token);
            order_[(size_t) i] = i_tok++;
        } else {
            embd_.insert(embd_.end(), r.embd, r.embd + hp.n_embd);
            order_[(size_t) i] = n_tok + i_emb++;
        }
        if (r.logits) out_ids_.push_back(i);
    }
    const int32_t n_wanted = (int32_t) out_ids_.size();
    // a graph always computes at least one output row; when none is wanted it is discarded
    if (out_ids_.empty()) out_ids_.push_back(n - 1);

    std::vector<int32_t> cells;
    if (!kv_->place(seq_, pos_, cells)) fail(LR_ERR_CONTEXT_FULL, "no free KV cells for the batch");
    if (fault_ != DecoderFault::None) {
        const DecoderFault f = fault_;
        fault_ = DecoderFault::None;
        if (f == DecoderFault::OutOfMemory) throw std::bad_alloc();
        fail(LR_ERR_BACKEND, "injected fault: the backend failed (lr_debug_fault)");
    }

    GraphShape s;
    s.n_tokens = n;
    s.n_tok_ids = n_tok;
    s.n_emb = n - n_tok;
    s.n_kv = kv_->n_kv();
    s.n_outputs = (int32_t) out_ids_.size();
    s.flash_attn = params_.flash_attn;
    s.cpu = !model_.backends.gpu;

    prepare_graph(s);
    const GraphInputs & in = graph_in_;

    // ---- inputs ----
    if (in.tok_ids) ggml_backend_tensor_set(in.tok_ids, tok_ids_.data(), 0, tok_ids_.size() * sizeof(int32_t));
    if (in.embd) ggml_backend_tensor_set(in.embd, embd_.data(), 0, embd_.size() * sizeof(float));
    if (in.order) ggml_backend_tensor_set(in.order, order_.data(), 0, order_.size() * sizeof(int32_t));
    ggml_backend_tensor_set(in.pos, pos_.data(), 0, pos_.size() * sizeof(int32_t));

    const int64_t n_embd_kv = hp.n_embd_kv();
    const int64_t kv_size = kv_->size();
    k_idxs_.assign(cells.begin(), cells.end());
    ggml_backend_tensor_set(in.k_idxs, k_idxs_.data(), 0, k_idxs_.size() * sizeof(int64_t));
    if (kv_->v_trans()) {
        v_idxs_.resize((size_t) n * (size_t) n_embd_kv);
        for (int32_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < n_embd_kv; j++) v_idxs_[(size_t) i * (size_t) n_embd_kv + (size_t) j] = j * kv_size + cells[(size_t) i];
        }
    } else {
        v_idxs_.assign(cells.begin(), cells.end());
    }
    ggml_backend_tensor_set(in.v_idxs, v_idxs_.data(), 0, v_idxs_.size() * sizeof(int64_t));

    mask_.resize((size_t) s.n_kv * (size_t) n);
    kv_->fill_mask(mask_.data(), s.n_kv, seq_, pos_);
    if (s.flash_attn) {
        mask_f16_.resize(mask_.size());
        ggml_fp32_to_fp16_row(mask_.data(), mask_f16_.data(), (int64_t) mask_.size());
        ggml_backend_tensor_set(in.kq_mask, mask_f16_.data(), 0, mask_f16_.size() * sizeof(ggml_fp16_t));
    } else {
        ggml_backend_tensor_set(in.kq_mask, mask_.data(), 0, mask_.size() * sizeof(float));
    }
    ggml_backend_tensor_set(in.out_ids, out_ids_.data(), 0, out_ids_.size() * sizeof(int32_t));
    if (in.k_rot) ggml_backend_tensor_set(in.k_rot, rot_k_.data(), 0, rot_k_.size() * sizeof(float));
    if (in.v_rot) ggml_backend_tensor_set(in.v_rot, rot_v_.data(), 0, rot_v_.size() * sizeof(float));

    // ---- compute ----
    const ggml_status status = ggml_backend_sched_graph_compute(sched_, graph_);
    if (status == GGML_STATUS_ABORTED) fail(LR_ERR_CANCELLED, "the computation was aborted");
    if (status != GGML_STATUS_SUCCESS) {
        drop_graph();
        fail(LR_ERR_BACKEND, "the backend failed to compute the decoder graph");
    }
    if (n_wanted > 0) {
        const size_t row = (size_t) hp.n_vocab;
        ggml_backend_tensor_get(in.logits, logits_.data() + (size_t) n_out_ * row, 0, (size_t) n_wanted * row * sizeof(float));
        n_out_ += n_wanted;
    }
}

} // namespace lr
