// The CLIP heads as ggml graphs: the pooled rows of a batch in, the embeddings (not yet normalized) out.
#pragma once

#include "clip_model.h"

#include "ggml.h"

namespace lr {

struct ClipHeadGraph {
    ggml_tensor * pooled = nullptr; // input F32 [D, B]: the text tower's [CLS] rows, or the image tower's CLS rows
    ggml_tensor * out = nullptr;    // F32 [E, B]
};

// text: proj.2(gelu_erf(proj.0(cls))), both without bias (open_clip's hf_proj_type "mlp")
ClipHeadGraph build_clip_text_head(ggml_context * ctx, ggml_cgraph * gf, const ClipModel & model, int32_t n);
// image: head.proj(trunk.norm(cls)), no bias (timm's token pool, then open_clip's timm_proj "linear")
ClipHeadGraph build_clip_image_head(ggml_context * ctx, ggml_cgraph * gf, const ClipModel & model, int32_t n);

constexpr size_t kClipHeadMaxNodes = 32;

} // namespace lr
