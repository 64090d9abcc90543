// The CLIP heads, for B pooled rows (Dt: text width, Dv: image tower width, M = (Dt + E) / 2):
//
//   text:  h = proj0 @ cls            [M, B]
//          e = proj2 @ gelu_erf(h)    [E, B]
//   image: n = LayerNorm(cls)         [Dv, B]   trunk.norm (eps 1e-6)
//          e = head @ n               [E, B]
// L2 normalization happens on the host (clip_encoder.cpp).
#include "clip_head_graph.h"

namespace lr {

namespace {

ggml_tensor * pooled_input(ggml_context * ctx, int64_t width, int32_t n) {
    ggml_tensor * t = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, width, n);
    ggml_set_name(t, "inp_pooled");
    ggml_set_input(t);
    return t;
}

ClipHeadGraph finish(ggml_cgraph * gf, ClipHeadGraph g, const char * name) {
    ggml_set_name(g.out, name);
    ggml_set_output(g.out);
    ggml_build_forward_expand(gf, g.out);
    return g;
}

} // namespace

ClipHeadGraph build_clip_text_head(ggml_context * ctx, ggml_cgraph * gf, const ClipModel & m, int32_t n) {
    ClipHeadGraph g;
    g.pooled = pooled_input(ctx, m.text->hp.n_embd, n);
    ggml_tensor * hidden = ggml_gelu_erf(ctx, ggml_mul_mat(ctx, m.text_proj0, g.pooled)); // [M, B]
    g.out = ggml_mul_mat(ctx, m.text_proj2, hidden);                                      // [E, B]
    return finish(gf, g, "clip_text_embd");
}

ClipHeadGraph build_clip_image_head(ggml_context * ctx, ggml_cgraph * gf, const ClipModel & m, int32_t n) {
    ClipHeadGraph g;
    g.pooled = pooled_input(ctx, m.hp.n_embd_vision, n);
    ggml_tensor * normed = ggml_add(ctx, ggml_mul(ctx, ggml_norm(ctx, g.pooled, m.hp.vision_eps), m.vision_norm_w), m.vision_norm_b);
    g.out = ggml_mul_mat(ctx, m.vision_head, normed); // [E, B]
    return finish(gf, g, "clip_image_embd");
}

} // namespace lr
