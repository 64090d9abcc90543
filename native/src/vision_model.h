// LLaVA-Rad's vision tower (DINOv2 ViT-B/14 at 518 px, from BiomedCLIP-CXR) and its mlp2x_gelu projector,
// loaded from a vision GGUF ("mmproj").
//
// The vision GGUF: general.architecture "clip"; llama.cpp's clip key and tensor names where the meaning
// is the same, and a `llava_rad.*` namespace for what llama.cpp's clip cannot express:
//
//   clip.vision.image_size (518)  clip.vision.patch_size (14)  clip.vision.embedding_length (768)
//   clip.vision.feed_forward_length (3072)  clip.vision.block_count (12)  clip.vision.attention.head_count (12)
//   clip.vision.attention.layer_norm_epsilon (1e-6)  clip.vision.projection_dim (4096)
//   clip.vision.image_mean / image_std (f32[3])  clip.projector_type ("mlp")
//   llava_rad.vision.select_layer (i32, -2: hidden_states[-2], the output of the second-to-last block)
//   llava_rad.vision.layer_scale (bool: ls1/ls2 tensors present and used)
//   llava_rad.vision.gelu ("erf" or "tanh")      llava_rad.vision.cls_position ("first")
//   llava_rad.vision.crop_mode ("resize_short_center_crop")   llava_rad.projector.type ("mlp2x_gelu")
//
//   v.patch_embd.weight [P, P, 3, D] (+ .bias [D])   v.class_embd [D]   v.position_embd.weight [D, 1 + G*G]
//   v.blk.N.{ln1, ln2}.{weight, bias} [D]   v.blk.N.attn_{q, k, v, out}.{weight [D, D], bias [D]}
//   v.blk.N.{ls1, ls2}.weight [D]   v.blk.N.ffn_up.{weight [D, F], bias [F]}   v.blk.N.ffn_down.{weight [F, D], bias [D]}
//   mm.0.{weight [D, T], bias [T]}   mm.2.{weight [T, T], bias [T]}
// (ggml order: the first number is the row length; G = image_size / patch_size, T = projection_dim)
#pragma once

#include "backend.h"
#include "gguf_file.h"
#include "weight_store.h"

#include "ggml.h"

#include <memory>
#include <string>
#include <vector>

namespace lr {

struct VisionHParams {
    int32_t image_size = 518;
    int32_t patch_size = 14;
    int32_t n_embd = 768;
    int32_t n_ff = 3072;
    int32_t n_block = 12;
    int32_t n_head = 12;
    float   eps = 1e-6f;
    int32_t n_out = 4096;         // projection_dim: the decoder's n_embd
    int32_t select_layer = -2;
    int32_t n_block_used = 11;    // blocks that run: up to the selected one
    bool    layer_scale = true;
    bool    gelu_erf = true;      // exact GELU (false: tanh approximation)
    float   mean[3] = {0, 0, 0};
    float   std[3] = {1, 1, 1};

    int32_t grid() const { return image_size / patch_size; }
    int32_t n_patches() const { return grid() * grid(); }
    int32_t n_pos() const { return n_patches() + 1; } // CLS first

    static VisionHParams from_gguf(const GgufFile & gguf);
};

struct VisionBlock {
    ggml_tensor * ln1_w = nullptr, * ln1_b = nullptr;
    ggml_tensor * q_w = nullptr, * q_b = nullptr, * k_w = nullptr, * k_b = nullptr, * v_w = nullptr, * v_b = nullptr;
    ggml_tensor * o_w = nullptr, * o_b = nullptr;
    ggml_tensor * ls1 = nullptr;
    ggml_tensor * ln2_w = nullptr, * ln2_b = nullptr;
    ggml_tensor * up_w = nullptr, * up_b = nullptr, * down_w = nullptr, * down_b = nullptr;
    ggml_tensor * ls2 = nullptr;
};

struct VisionModel {
    std::unique_ptr<GgufFile> gguf;
    VisionHParams hp;
    Backends backends;

    ggml_tensor * patch_w = nullptr; // [P, P, 3, D]
    ggml_tensor * patch_b = nullptr; // [D]
    ggml_tensor * cls = nullptr;     // [D]
    ggml_tensor * pos = nullptr;     // [D, 1 + G*G]
    std::vector<VisionBlock> blocks; // the n_block_used that run
    ggml_tensor * mm0_w = nullptr, * mm0_b = nullptr, * mm2_w = nullptr, * mm2_b = nullptr;

    std::string name;
    int64_t n_params = 0;
    int64_t weight_bytes = 0;

    VisionModel() = default;
    VisionModel(const VisionModel &) = delete;
    VisionModel & operator=(const VisionModel &) = delete;

    // all_blocks: every block runs (the CLIP image embedding pools the end of the tower), whatever select_layer says;
    // the projector is not loaded (such a model only builds cls_only graphs)
    static std::unique_ptr<VisionModel> load(const std::string & path, const lr_model_params & params, bool all_blocks = false);

private:
    WeightStore weights_;
};

} // namespace lr
