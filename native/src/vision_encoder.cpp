#include "vision_encoder.h"
#include "status.h"

#include <algorithm>

namespace lr {

VisionEncoder::VisionEncoder(const VisionModel & model, int32_t max_batch, int32_t n_threads, bool cls_only)
    : model_(model), max_batch_(max_batch), cls_only_(cls_only) {
    init_backends(backends_, model.backends.gpu ? LR_BACKEND_CUDA : LR_BACKEND_CPU,
                  n_threads > 0 ? n_threads : model.backends.n_threads);
    const size_t max_nodes = vision_graph_max_nodes(model.hp);
    sched_ = new_scheduler(backends_, max_nodes);
    meta_.resize(ggml_tensor_overhead() * max_nodes + ggml_graph_overhead_custom(max_nodes, false));
    set_cpu_abort_callback(backends_.cpu, abort_requested, this);
}

bool VisionEncoder::abort_requested(void * self) {
    return static_cast<const VisionEncoder *>(self)->aborted();
}

VisionEncoder::~VisionEncoder() {
    if (sched_) ggml_backend_sched_free(sched_);
}

void VisionEncoder::encode(const float * pixels, int32_t n_images, bool features, float * out,
                           lr_abort_callback should_abort, void * user) {
    std::lock_guard<std::mutex> lk(mu_);
    struct Callback {
        VisionEncoder & e;
        Callback(VisionEncoder & e, lr_abort_callback f, void * u) : e(e) { e.should_abort_ = f; e.abort_user_ = u; }
        ~Callback() { e.should_abort_ = nullptr; e.abort_user_ = nullptr; }
    } callback(*this, should_abort, user);
    const VisionHParams & hp = model_.hp;
    const size_t in_per = (size_t) 3 * hp.image_size * hp.image_size;
    const size_t out_per = cls_only_ ? (size_t) hp.n_embd : (size_t) hp.n_patches() * (size_t) (features ? hp.n_embd : hp.n_out);
    for (int32_t i = 0; i < n_images; i += max_batch_) {
        const int32_t n = std::min(max_batch_, n_images - i);
        if (aborted()) fail(LR_ERR_CANCELLED, "the encode was cancelled");
        encode_batch(pixels + (size_t) i * in_per, n, features, out + (size_t) i * out_per);
    }
}

void VisionEncoder::encode_batch(const float * pixels, int32_t n, bool features, float * out) {
    const VisionHParams & hp = model_.hp;
    ggml_init_params ip = { meta_.size(), meta_.data(), true };
    ggml_context * ctx = ggml_init(ip);
    if (!ctx) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed for the vision graph");
    struct Free { ggml_context * c; ~Free() { ggml_free(c); } } guard{ctx};

    ggml_cgraph * gf = ggml_new_graph_custom(ctx, vision_graph_max_nodes(hp), false);
    VisionGraph g = build_vision_graph(ctx, gf, model_, n, cls_only_);
    if (n != reserved_batch_) {
        // measured and reserved before ggml allocates: a graph too big for this machine (absurd image or
        // patch sizes in a GGUF) is an error here, never a failed allocation inside ggml
        reserved_batch_ = 0;
        reserve_graph(sched_, backends_, vision_graph_max_nodes(hp), gf, format("the vision graph for %d image(s)", n));
        reserved_batch_ = n;
    }
    ggml_backend_sched_reset(sched_);
    if (!ggml_backend_sched_alloc_graph(sched_, gf)) {
        reserved_batch_ = 0;
        fail(LR_ERR_OUT_OF_MEMORY, "could not allocate the vision graph");
    }
    ggml_backend_tensor_set(g.pixels, pixels, 0, ggml_nbytes(g.pixels));
    if (key_mask_.empty()) {
        const int64_t np = vision_padded_positions(hp);
        key_mask_.resize((size_t) (np * np));
        vision_fill_key_mask(hp, key_mask_.data());
    }
    ggml_backend_tensor_set(g.key_mask, key_mask_.data(), 0, ggml_nbytes(g.key_mask));
    const ggml_status status = ggml_backend_sched_graph_compute(sched_, gf);
    if (status == GGML_STATUS_ABORTED) fail(LR_ERR_CANCELLED, "the encode was cancelled");
    if (status != GGML_STATUS_SUCCESS) fail(LR_ERR_BACKEND, "the backend failed to compute the vision graph");
    ggml_tensor * result = cls_only_ ? g.cls : features ? g.features : g.projected;
    ggml_backend_tensor_get(result, out, 0, ggml_nbytes(result));
}

} // namespace lr
