// C API: BiomedCLIP-CXR's embeddings.
#include "api_guard.h"
#include "clip_encoder.h"
#include "clip_model.h"

#include <cmath>
#include <cstring>
#include <memory>

struct lr_clip {
    std::unique_ptr<lr::ClipModel> model;
    std::unique_ptr<lr::ClipEncoder> encoder;
};

namespace {
constexpr int32_t kDefaultBatch = 8;
constexpr int32_t kMaxBatch = 256;
constexpr int32_t kMaxItems = 1 << 16;
}

extern "C" {

lr_status lr_clip_load(const char * clip_path, const char * vision_path, const lr_model_params * params,
                       int32_t max_batch, lr_clip ** out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(clip_path != nullptr && vision_path != nullptr && out != nullptr, "lr_clip_load: NULL argument");
        LR_REQUIRE_ARG(*clip_path != 0 && *vision_path != 0, "lr_clip_load: a path is empty");
        *out = nullptr;
        const lr_model_params p = params ? *params : lr_model_default_params();
        LR_REQUIRE_ARG(p.n_threads <= 1024, lr::format("n_threads must be <= 1024, got %d", p.n_threads));
        const int32_t batch = max_batch > 0 ? max_batch : kDefaultBatch;
        LR_REQUIRE_ARG(batch <= kMaxBatch, lr::format("max_batch must be <= %d, got %d", kMaxBatch, batch));
        auto c = std::make_unique<lr_clip>();
        c->model = lr::ClipModel::load(clip_path, vision_path, p);
        c->encoder = std::make_unique<lr::ClipEncoder>(*c->model, batch, p.n_threads);
        *out = c.release();
    });
}

void lr_clip_free(lr_clip * clip) { delete clip; }

lr_status lr_clip_get_info(const lr_clip * clip, lr_clip_info * out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(clip != nullptr && out != nullptr, "lr_clip_get_info: NULL argument");
        const lr::ClipModel & m = *clip->model;
        std::memset(out, 0, sizeof(*out));
        std::strncpy(out->name, m.name.c_str(), sizeof(out->name) - 1);
        std::strncpy(out->backend, m.backends.name().c_str(), sizeof(out->backend) - 1);
        out->n_out = m.hp.n_out;
        out->n_ctx = m.hp.n_ctx;
        out->n_vocab = m.text->hp.n_vocab;
        out->image_size = m.vision->hp.image_size;
        for (int c = 0; c < 3; c++) {
            out->image_mean[c] = m.vision->hp.mean[c];
            out->image_std[c] = m.vision->hp.std[c];
        }
        out->logit_scale = m.hp.logit_scale;
        out->n_params = m.n_params;
    });
}

lr_status lr_clip_embed_texts(lr_clip * clip, const int32_t * ids, const int32_t * n_ids, int32_t n_texts,
                              float * out, size_t capacity, lr_abort_callback should_abort, void * user) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(clip != nullptr && ids != nullptr && n_ids != nullptr && out != nullptr, "lr_clip_embed_texts: NULL argument");
        LR_REQUIRE_ARG(n_texts > 0 && n_texts <= kMaxItems, lr::format("n_texts must be in [1, %d], got %d", kMaxItems, n_texts));
        const lr::ClipModel & m = *clip->model;
        const int32_t n_vocab = m.text->hp.n_vocab;
        const int32_t * at = ids;
        for (int32_t t = 0; t < n_texts; t++) {
            LR_REQUIRE_ARG(n_ids[t] >= 1 && n_ids[t] <= m.hp.n_ctx, lr::format("text %d has %d ids, expected 1..%d", t, n_ids[t], m.hp.n_ctx));
            for (int32_t i = 0; i < n_ids[t]; i++, at++) {
                LR_REQUIRE_ARG(*at >= 0 && *at < n_vocab, lr::format("text %d: token id %d at %d is outside the vocabulary of %d", t, *at, i, n_vocab));
            }
        }
        const size_t need = (size_t) n_texts * (size_t) m.hp.n_out;
        if (capacity < need) lr::fail(LR_ERR_BUFFER_TOO_SMALL, lr::format("lr_clip_embed_texts: the output needs %zu floats, capacity is %zu", need, capacity));
        clip->encoder->embed_texts(ids, n_ids, n_texts, out, should_abort, user);
    });
}

lr_status lr_clip_embed_images(lr_clip * clip, const float * pixels, int32_t n_images, float * out, size_t capacity,
                               lr_abort_callback should_abort, void * user) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(clip != nullptr && pixels != nullptr && out != nullptr, "lr_clip_embed_images: NULL argument");
        LR_REQUIRE_ARG(n_images > 0 && n_images <= kMaxItems, lr::format("n_images must be in [1, %d], got %d", kMaxItems, n_images));
        const lr::ClipModel & m = *clip->model;
        const size_t need = (size_t) n_images * (size_t) m.hp.n_out;
        if (capacity < need) lr::fail(LR_ERR_BUFFER_TOO_SMALL, lr::format("lr_clip_embed_images: the output needs %zu floats, capacity is %zu", need, capacity));
        const size_t n_in = (size_t) n_images * 3 * (size_t) m.vision->hp.image_size * (size_t) m.vision->hp.image_size;
        for (size_t i = 0; i < n_in; i++) {
            if (!std::isfinite(pixels[i])) lr::fail(LR_ERR_INVALID_ARGUMENT, lr::format("pixel value %zu is not finite", i));
        }
        clip->encoder->embed_images(pixels, n_images, out, should_abort, user);
    });
}

} // extern "C"
