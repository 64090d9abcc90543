// Runs the vision graph: batches of preprocessed images in, projected embeddings (or the tower's
// features) out. One encoder per vision model; calls are serialized.
#pragma once

#include "vision_graph.h"
#include "vision_model.h"

#include "ggml-backend.h"

#include <mutex>
#include <vector>

namespace lr {

class VisionEncoder {
public:
    // cls_only: encode() writes the last block's CLS row per image (n_embd floats) instead
    VisionEncoder(const VisionModel & model, int32_t max_batch, int32_t n_threads, bool cls_only = false);
    ~VisionEncoder();
    VisionEncoder(const VisionEncoder &) = delete;
    VisionEncoder & operator=(const VisionEncoder &) = delete;

    // pixels: n_images x 3 x S x S floats (CHW, normalized). out: n_images x n_patches x (n_out or n_embd).
    // Throws LR_ERR_CANCELLED once should_abort(user) returns nonzero (asked before each batch of images
    // and, on the CPU, after each graph node); should_abort may be null.
    void encode(const float * pixels, int32_t n_images, bool features, float * out,
                lr_abort_callback should_abort = nullptr, void * user = nullptr);
    int32_t max_batch() const { return max_batch_; }

private:
    const VisionModel & model_;
    int32_t max_batch_;
    bool cls_only_;
    Backends backends_;
    ggml_backend_sched_t sched_ = nullptr;
    std::vector<uint8_t> meta_;
    int32_t reserved_batch_ = 0; // the batch size whose graph the compute buffers were reserved for (0: none)
    std::vector<float> key_mask_; // the attention mask over padded positions (vision_fill_key_mask)
    std::mutex mu_;
    lr_abort_callback should_abort_ = nullptr; // the encode in progress's (mu_)
    void * abort_user_ = nullptr;
    bool aborted() const { return should_abort_ && should_abort_(abort_user_) != 0; }
    static bool abort_requested(void * self); // ggml's abort callback

    void encode_batch(const float * pixels, int32_t n, bool features, float * out);
};

} // namespace lr
