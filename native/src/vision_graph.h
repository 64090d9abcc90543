// The vision tower + projector forward pass as a ggml graph, for a batch of preprocessed images.
#pragma once

#include "vision_model.h"

#include "ggml.h"

namespace lr {

struct VisionGraph {
    ggml_tensor * pixels = nullptr;    // input F32 [S, S, 3, B]: each image CHW, normalized
    ggml_tensor * features = nullptr;  // F32 [D, G*G, B]: hidden_states[select_layer] without CLS
    ggml_tensor * projected = nullptr; // F32 [T, G*G, B]: the embeddings the decoder takes
};

// Builds the graph for n_images into ctx (no_alloc) and gf.
VisionGraph build_vision_graph(ggml_context * ctx, ggml_cgraph * gf, const VisionModel & model, int32_t n_images);

size_t vision_graph_max_nodes(const VisionHParams & hp);

} // namespace lr
