// Runs BiomedCLIP-CXR: token ids or preprocessed images in, L2-normalized embeddings out. The towers run on
// their own encoders (BertEncoder: on a GPU batches of texts, padded and masked; VisionEncoder: batches of images,
// CLS only),
// the heads on one graph per batch. Calls are serialized.
#pragma once

#include "bert_encoder.h"
#include "clip_head_graph.h"
#include "clip_model.h"
#include "vision_encoder.h"

#include "ggml-backend.h"

#include <memory>
#include <mutex>
#include <vector>

namespace lr {

// texts in one graph of the text tower on a GPU (the CPU runs one a graph): at most this many, and this many
// token slots (texts x the longest)
constexpr int32_t kClipTextBatch = 16;
constexpr int64_t kClipTextBatchTokens = 4096;

class ClipEncoder {
public:
    ClipEncoder(const ClipModel & model, int32_t max_batch, int32_t n_threads);
    ~ClipEncoder();
    ClipEncoder(const ClipEncoder &) = delete;
    ClipEncoder & operator=(const ClipEncoder &) = delete;

    // ids: the texts' ids one after another, n_ids[i] for text i (checked by the caller). out: n_texts x E.
    void embed_texts(const int32_t * ids, const int32_t * n_ids, int32_t n_texts, float * out,
                     lr_abort_callback should_abort, void * user);
    // pixels: n_images x 3 x S x S (CHW, normalized). out: n_images x E.
    void embed_images(const float * pixels, int32_t n_images, float * out, lr_abort_callback should_abort, void * user);

private:
    const ClipModel & model_;
    BertEncoder text_;
    VisionEncoder vision_;
    Backends backends_;
    ggml_backend_sched_t sched_ = nullptr;
    std::vector<uint8_t> meta_;
    std::mutex mu_;

    // pooled: n rows of the tower's width -> out: n normalized rows of E
    void run_head(bool text, const float * pooled, int32_t n, float * out);
};

} // namespace lr
