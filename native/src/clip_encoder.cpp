#include "clip_encoder.h"
#include "bert_batch.h"
#include "status.h"

#include <algorithm>
#include <cmath>

namespace lr {

ClipEncoder::ClipEncoder(const ClipModel & model, int32_t max_batch, int32_t n_threads)
    : model_(model), text_(*model.text, n_threads), vision_(*model.vision, max_batch, n_threads, true) {
    init_backends(backends_, model.backends.gpu ? LR_BACKEND_CUDA : LR_BACKEND_CPU,
                  n_threads > 0 ? n_threads : model.backends.n_threads);
    sched_ = new_scheduler(backends_, kClipHeadMaxNodes);
    meta_.resize(ggml_tensor_overhead() * kClipHeadMaxNodes + ggml_graph_overhead_custom(kClipHeadMaxNodes, false));
}

ClipEncoder::~ClipEncoder() {
    if (sched_) ggml_backend_sched_free(sched_);
}

void ClipEncoder::run_head(bool text, const float * pooled, int32_t n, float * out) {
    ggml_init_params ip = { meta_.size(), meta_.data(), true };
    ggml_context * ctx = ggml_init(ip);
    if (!ctx) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed for the CLIP head graph");
    struct Free { ggml_context * c; ~Free() { ggml_free(c); } } guard{ctx};

    ggml_cgraph * gf = ggml_new_graph_custom(ctx, kClipHeadMaxNodes, false);
    ClipHeadGraph g = text ? build_clip_text_head(ctx, gf, model_, n) : build_clip_image_head(ctx, gf, model_, n);
    // the heads are small: measured and reserved for every call (a batch of any size)
    reserve_graph(sched_, backends_, kClipHeadMaxNodes, gf, format("the CLIP head graph for %d row(s)", n));
    ggml_backend_sched_reset(sched_);
    if (!ggml_backend_sched_alloc_graph(sched_, gf)) fail(LR_ERR_OUT_OF_MEMORY, "could not allocate the CLIP head graph");
    ggml_backend_tensor_set(g.pooled, pooled, 0, ggml_nbytes(g.pooled));
    if (ggml_backend_sched_graph_compute(sched_, gf) != GGML_STATUS_SUCCESS) {
        fail(LR_ERR_BACKEND, "the backend failed to compute the CLIP head graph");
    }
    ggml_backend_tensor_get(g.out, out, 0, ggml_nbytes(g.out));

    // L2 normalization of each row (open_clip's F.normalize: x / max(|x|, 1e-12))
    const int64_t E = model_.hp.n_out;
    for (int32_t i = 0; i < n; i++) {
        float * row = out + (size_t) i * (size_t) E;
        double sum = 0.0;
        for (int64_t j = 0; j < E; j++) sum += (double) row[j] * row[j];
        const double scale = 1.0 / std::max(std::sqrt(sum), 1e-12);
        for (int64_t j = 0; j < E; j++) row[j] = (float) (row[j] * scale);
    }
}

void ClipEncoder::embed_texts(const int32_t * ids, const int32_t * n_ids, int32_t n_texts, float * out,
                              lr_abort_callback should_abort, void * user) {
    std::lock_guard<std::mutex> lk(mu_);
    const size_t D = (size_t) model_.text->hp.n_embd;
    std::vector<size_t> start((size_t) n_texts + 1, 0); // text i's ids begin at start[i]
    for (int32_t i = 0; i < n_texts; i++) start[i + 1] = start[i] + (size_t) n_ids[i];

    // on a GPU texts of like length share a graph, padded to the longest with the padding masked (open_clip masks
    // it too); on the CPU one text a graph, where batches measured slower (docs/benchmarks.md)
    std::vector<float> cls((size_t) n_texts * D);
    const int32_t max_texts = backends_.gpu ? kClipTextBatch : 1;
    for (const std::vector<int32_t> & batch : plan_bert_batches(n_ids, n_texts, max_texts, kClipTextBatchTokens)) {
        if (should_abort && should_abort(user)) fail(LR_ERR_CANCELLED, "the text embedding was cancelled");
        std::vector<int32_t> batch_ids, batch_counts;
        for (int32_t i : batch) {
            batch_ids.insert(batch_ids.end(), ids + start[i], ids + start[i + 1]);
            batch_counts.push_back(n_ids[i]);
        }
        std::vector<float> batch_cls(batch.size() * D);
        text_.encode_batch(batch_ids.data(), batch_counts.data(), (int32_t) batch.size(), batch_cls.data(), nullptr);
        for (size_t b = 0; b < batch.size(); b++) {
            std::copy_n(batch_cls.data() + b * D, D, cls.data() + (size_t) batch[b] * D);
        }
    }
    run_head(true, cls.data(), n_texts, out);
}

void ClipEncoder::embed_images(const float * pixels, int32_t n_images, float * out, lr_abort_callback should_abort, void * user) {
    std::lock_guard<std::mutex> lk(mu_);
    std::vector<float> cls((size_t) n_images * (size_t) model_.vision->hp.n_embd);
    vision_.encode(pixels, n_images, false, cls.data(), should_abort, user);
    run_head(false, cls.data(), n_images, out);
}

} // namespace lr
