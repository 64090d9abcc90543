// C API: the vision tower.
#include "api_guard.h"
#include "vision_encoder.h"
#include "vision_model.h"

#include <cmath>
#include <cstring>
#include <memory>

struct lr_vision {
    std::unique_ptr<lr::VisionModel> model;
    std::unique_ptr<lr::VisionEncoder> encoder;
};

namespace {
constexpr int32_t kDefaultVisionBatch = 8;
constexpr int32_t kMaxVisionBatch = 256;
constexpr int32_t kMaxImages = 1 << 16;
}

extern "C" {

lr_status lr_vision_load(const char * path, const lr_model_params * params, int32_t max_batch, lr_vision ** out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(path != nullptr && out != nullptr, "lr_vision_load: path and out_vision must not be NULL");
        LR_REQUIRE_ARG(*path != 0, "lr_vision_load: the path is empty");
        *out = nullptr;
        const lr_model_params p = params ? *params : lr_model_default_params();
        LR_REQUIRE_ARG(p.n_threads <= 1024, lr::format("n_threads must be <= 1024, got %d", p.n_threads));
        const int32_t batch = max_batch > 0 ? max_batch : kDefaultVisionBatch;
        LR_REQUIRE_ARG(batch <= kMaxVisionBatch, lr::format("max_batch must be <= %d, got %d", kMaxVisionBatch, batch));
        auto v = std::make_unique<lr_vision>();
        v->model = lr::VisionModel::load(path, p);
        v->encoder = std::make_unique<lr::VisionEncoder>(*v->model, batch, p.n_threads);
        *out = v.release();
    });
}

void lr_vision_free(lr_vision * vision) { delete vision; }



lr_status lr_vision_get_info(const lr_vision * vision, lr_vision_info * out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(vision != nullptr && out != nullptr, "lr_vision_get_info: NULL argument");
        const lr::VisionModel & m = *vision->model;
        std::memset(out, 0, sizeof(*out));
        std::strncpy(out->name, m.name.c_str(), sizeof(out->name) - 1);
        std::strncpy(out->backend, m.backends.name().c_str(), sizeof(out->backend) - 1);
        out->image_size = m.hp.image_size;
        out->patch_size = m.hp.patch_size;
        out->n_patches = m.hp.n_patches();
        out->n_embd = m.hp.n_embd;
        out->n_out = m.hp.n_out;
        out->n_block = m.hp.n_block;
        out->n_block_used = m.hp.n_block_used;
        out->n_head = m.hp.n_head;
        out->select_layer = m.hp.select_layer;
        for (int c = 0; c < 3; c++) {
            out->image_mean[c] = m.hp.mean[c];
            out->image_std[c] = m.hp.std[c];
        }
        out->n_params = m.n_params;
    });
}

lr_status lr_vision_encode_abortable(lr_vision * vision, const float * pixels, int32_t n_images, lr_vision_output which,
                                     float * out, size_t capacity, lr_abort_callback should_abort, void * user) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(vision != nullptr && pixels != nullptr && out != nullptr, "lr_vision_encode: NULL argument");
        LR_REQUIRE_ARG(n_images > 0 && n_images <= kMaxImages, lr::format("n_images must be in [1, %d], got %d", kMaxImages, n_images));
        LR_REQUIRE_ARG(which == LR_VISION_PROJECTED || which == LR_VISION_FEATURES, lr::format("unknown vision output %d", (int) which));
        const lr::VisionHParams & hp = vision->model->hp;
        const size_t per = (size_t) hp.n_patches() * (size_t) (which == LR_VISION_FEATURES ? hp.n_embd : hp.n_out);
        const size_t need = per * (size_t) n_images;
        if (capacity < need) {
            lr::fail(LR_ERR_BUFFER_TOO_SMALL, lr::format("lr_vision_encode: the output needs %zu floats, capacity is %zu", need, capacity));
        }
        // non-finite inputs would only give NaN embeddings; refuse them as the caller's mistake
        const size_t n_in = (size_t) n_images * 3 * (size_t) hp.image_size * (size_t) hp.image_size;
        for (size_t i = 0; i < n_in; i++) {
            if (!std::isfinite(pixels[i])) lr::fail(LR_ERR_INVALID_ARGUMENT, lr::format("pixel value %zu is not finite", i));
        }
        vision->encoder->encode(pixels, n_images, which == LR_VISION_FEATURES, out, should_abort, user);
    });
}

lr_status lr_vision_encode(lr_vision * vision, const float * pixels, int32_t n_images, lr_vision_output which,
                           float * out, size_t capacity) {
    return lr_vision_encode_abortable(vision, pixels, n_images, which, out, capacity, nullptr, nullptr);
}

} // extern "C"
