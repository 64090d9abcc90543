// BiomedCLIP-CXR as a CLIP model: the text tower (a BERT encoder), the image tower (the vision GGUF's DINOv2
// trunk, every block), and the CLIP parts of the CLIP GGUF that lib/convert/clip.ts writes:
//
//   clip.embedding_length (E)  clip.logit_scale (f32)  clip.text.context_length  clip.text.pooler ("cls")
//   clip.text.projection ("mlp")  clip.vision.embedding_length (Dv)  clip.vision.layer_norm_epsilon
//   clip.vision.pool ("token")
//   clip.text_proj.0.weight [Dt, M]  clip.text_proj.2.weight [M, E]
//   clip.vision_norm.{weight, bias} [Dv]  clip.vision_head.weight [Dv, E]
// (ggml order; the same file is the text tower's BERT GGUF, loaded by bert_model.cpp)
#pragma once

#include "backend.h"
#include "bert_model.h"
#include "gguf_file.h"
#include "vision_model.h"
#include "weight_store.h"

#include "ggml.h"

#include <memory>
#include <string>

namespace lr {

struct ClipHParams {
    int32_t n_out = 512;          // E: the shared embedding width
    int32_t n_ctx = 256;          // text tokens at most ([CLS] ... [SEP])
    int32_t n_proj_hidden = 640;  // M: the text projection's hidden width
    int32_t n_embd_vision = 768;  // Dv
    float   logit_scale = 0.0f;   // log of the similarity scale
    float   vision_eps = 1e-6f;

    static ClipHParams from_gguf(const GgufFile & gguf, const BertHParams & text);
};

struct ClipModel {
    std::unique_ptr<BertModel> text;
    std::unique_ptr<VisionModel> vision; // every block (VisionModel::load(.., all_blocks))
    std::unique_ptr<GgufFile> gguf;      // the CLIP GGUF, for the heads
    ClipHParams hp;
    Backends backends;                   // where the heads live and run

    ggml_tensor * text_proj0 = nullptr;  // [Dt, M]
    ggml_tensor * text_proj2 = nullptr;  // [M, E]
    ggml_tensor * vision_norm_w = nullptr, * vision_norm_b = nullptr; // [Dv]
    ggml_tensor * vision_head = nullptr; // [Dv, E]

    std::string name;
    int64_t n_params = 0;

    ClipModel() = default;
    ClipModel(const ClipModel &) = delete;
    ClipModel & operator=(const ClipModel &) = delete;

    static std::unique_ptr<ClipModel> load(const std::string & clip_path, const std::string & vision_path,
                                           const lr_model_params & params);

private:
    WeightStore weights_;
};

} // namespace lr
