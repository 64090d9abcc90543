// The vision tower + projector forward pass as a ggml graph, for a batch of preprocessed images.
#pragma once

#include "vision_model.h"

#include "ggml.h"

namespace lr {

struct VisionGraph {
    ggml_tensor * pixels = nullptr;    // input F32 [S, S, 3, B]: each image CHW, normalized
    ggml_tensor * key_mask = nullptr;  // input F32 [NP, NP]: vision_fill_key_mask's values
    ggml_tensor * features = nullptr;  // F32 [D, G*G, B]: hidden_states[select_layer] without CLS
    ggml_tensor * projected = nullptr; // F32 [T, G*G, B]: the embeddings the decoder takes
    ggml_tensor * cls = nullptr;       // F32 [D, B]: the last block's CLS row (cls_only graphs)
};

// Builds the graph for n_images into ctx (no_alloc) and gf. cls_only: the CLS rows alone (no features, no
// projector), for the CLIP image embedding.
VisionGraph build_vision_graph(ggml_context * ctx, ggml_cgraph * gf, const VisionModel & model, int32_t n_images,
                               bool cls_only = false);

size_t vision_graph_max_nodes(const VisionHParams & hp);

// positions the graph computes per image: CLS + patches, padded up to a multiple of 16 (see the .cpp)
int64_t vision_padded_positions(const VisionHParams & hp);
// the attention mask over padded positions, [NP, NP] row-major: 0 for real keys, -inf for padding
void vision_fill_key_mask(const VisionHParams & hp, float * mask);

} // namespace lr
