// LLaVA-Rad's image path (timm DINOv2 ViT + mlp2x_gelu), with D = width, N = 1 + G*G positions, B images:
//
//   x = conv14x14/14(pixels) + patch_bias            patches, [D, G*G, B]
//   x = [cls | x] + pos                               CLS first, [D, N, B]
//   for the blocks up to the selected one:
//       x = x + ls1 * attn(layer_norm1(x))            fused-qkv attention split in q, k, v, with biases
//       x = x + ls2 * fc2(gelu(fc1(layer_norm2(x))))  exact GELU
//   features  = x without CLS                         hidden_states[select_layer][:, 1:]
//   (or, cls_only: cls = x[:, 0], [D, B], after every block: what the CLIP image head pools)
//
// The N positions are padded with zero rows to NP, a multiple of kPositionPad, and the attention masks the
// padded keys out: ggml's CPU matmul takes its fast (llamafile sgemm) path only when the row count and the
// reduced dimension are multiples of 4 / 16, and N = 1370 is neither, so K*Q and (KQ)*V ran on the scalar
// dot-product path and took as long as all the linear layers together. Padded rows never reach real rows
// (masked as keys; as queries they only produce their own rows) and are dropped with CLS at the end.
//   projected = mm2(gelu(mm0(features)))              mlp2x_gelu, [T, G*G, B]
#include "vision_graph.h"

#include <cmath>

namespace lr {

namespace {

// position padding: llamafile's sgemm needs k % 16 == 0 (AVX-512 f32) and m % 4 == 0
constexpr int64_t kPositionPad = 16;

ggml_tensor * layer_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b, float eps) {
    return ggml_add(ctx, ggml_mul(ctx, ggml_norm(ctx, x, eps), w), b);
}

ggml_tensor * linear(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b) {
    return ggml_add(ctx, ggml_mul_mat(ctx, w, x), b);
}

ggml_tensor * gelu(ggml_context * ctx, ggml_tensor * x, bool erf) {
    return erf ? ggml_gelu_erf(ctx, x) : ggml_gelu(ctx, x);
}

// multi-head self-attention over the NP (padded) positions of each image, padded keys masked:
// x [D, NP, B] -> [D, NP, B]; key_mask [NP, NP]: 0 for real keys, -inf for padding
ggml_tensor * attention(ggml_context * ctx, ggml_tensor * h, ggml_tensor * key_mask, const VisionBlock & blk, const VisionHParams & hp) {
    const int64_t D = hp.n_embd, H = hp.n_head, hd = D / H, N = h->ne[1], B = h->ne[2];
    const float scale = 1.0f / std::sqrt((float) hd);

    ggml_tensor * q = ggml_reshape_4d(ctx, linear(ctx, h, blk.q_w, blk.q_b), hd, H, N, B);
    ggml_tensor * k = ggml_reshape_4d(ctx, linear(ctx, h, blk.k_w, blk.k_b), hd, H, N, B);
    ggml_tensor * v = ggml_reshape_4d(ctx, linear(ctx, h, blk.v_w, blk.v_b), hd, H, N, B);
    q = ggml_cont(ctx, ggml_permute(ctx, q, 0, 2, 1, 3));  // [hd, NP, H, B] (sgemm wants a contiguous src1)
    k = ggml_permute(ctx, k, 0, 2, 1, 3);                  // [hd, NP, H, B]
    v = ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3));  // [NP, hd, H, B]

    ggml_tensor * kq = ggml_mul_mat(ctx, k, q);            // [NP(keys), NP(queries), H, B]
    ggml_mul_mat_set_prec(kq, GGML_PREC_F32);
    kq = ggml_soft_max_ext(ctx, kq, key_mask, scale, 0.0f);
    ggml_tensor * kqv = ggml_mul_mat(ctx, v, kq);          // [hd, NP, H, B]
    ggml_tensor * merged = ggml_cont_3d(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3), D, N, B); // [D, NP, B]
    return linear(ctx, merged, blk.o_w, blk.o_b);
}

} // namespace

int64_t vision_padded_positions(const VisionHParams & hp) {
    const int64_t n = 1 + (int64_t) hp.grid() * hp.grid(); // CLS + patches
    return (n + kPositionPad - 1) / kPositionPad * kPositionPad;
}

void vision_fill_key_mask(const VisionHParams & hp, float * mask) {
    const int64_t n = 1 + (int64_t) hp.grid() * hp.grid(), np = vision_padded_positions(hp);
    for (int64_t q = 0; q < np; q++) {
        for (int64_t k = 0; k < np; k++) mask[q * np + k] = k < n ? 0.0f : -INFINITY;
    }
}

size_t vision_graph_max_nodes(const VisionHParams & hp) {
    return (size_t) std::max(1024, hp.n_block_used * 64 + 64);
}

VisionGraph build_vision_graph(ggml_context * ctx, ggml_cgraph * gf, const VisionModel & m, int32_t n_images, bool cls_only) {
    const VisionHParams & hp = m.hp;
    const int64_t S = hp.image_size, P = hp.patch_size, G = hp.grid(), D = hp.n_embd, B = n_images;
    VisionGraph g;

    g.pixels = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, S, S, 3, B);
    ggml_set_name(g.pixels, "inp_pixels");
    ggml_set_input(g.pixels);

    // patch embedding as im2col + matmul (ggml_conv_2d would round the pixels to f16):
    // [S, S, 3, B] -> columns [P*P*3, G*G*B] (patches in row-major order) -> [D, G*G, B]
    ggml_tensor * cols = ggml_im2col(ctx, m.patch_w, g.pixels, (int) P, (int) P, 0, 0, 1, 1, true, GGML_TYPE_F32);
    cols = ggml_reshape_2d(ctx, cols, cols->ne[0], G * G * B);
    ggml_tensor * kernel = ggml_reshape_2d(ctx, m.patch_w, P * P * 3, D);
    ggml_tensor * patches = ggml_reshape_3d(ctx, ggml_mul_mat(ctx, kernel, cols), D, G * G, B);
    patches = ggml_add(ctx, patches, m.patch_b);

    // CLS first, then position embeddings: [D, N, B]
    ggml_tensor * cls = ggml_repeat(ctx, ggml_reshape_3d(ctx, m.cls, D, 1, 1), ggml_new_tensor_3d(ctx, GGML_TYPE_F32, D, 1, B));
    ggml_tensor * x = ggml_concat(ctx, cls, patches, 1);
    x = ggml_add(ctx, x, m.pos);

    // zero rows up to NP positions; the attention masks them out as keys: [D, NP, B]
    const int64_t N = x->ne[1], NP = vision_padded_positions(hp);
    x = ggml_pad(ctx, x, 0, (int) (NP - N), 0, 0);
    g.key_mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, NP, NP);
    ggml_set_name(g.key_mask, "inp_key_mask");
    ggml_set_input(g.key_mask);

    for (const VisionBlock & blk : m.blocks) {
        ggml_tensor * attn = attention(ctx, layer_norm(ctx, x, blk.ln1_w, blk.ln1_b, hp.eps), g.key_mask, blk, hp);
        if (blk.ls1) attn = ggml_mul(ctx, attn, blk.ls1);
        x = ggml_add(ctx, x, attn);

        ggml_tensor * h = layer_norm(ctx, x, blk.ln2_w, blk.ln2_b, hp.eps);
        h = linear(ctx, gelu(ctx, linear(ctx, h, blk.up_w, blk.up_b), hp.gelu_erf), blk.down_w, blk.down_b);
        if (blk.ls2) h = ggml_mul(ctx, h, blk.ls2);
        x = ggml_add(ctx, x, h);
    }

    if (cls_only) {
        // position 0 of each image: [D, B]
        g.cls = ggml_cont(ctx, ggml_view_2d(ctx, x, D, B, x->nb[2], 0));
        ggml_set_name(g.cls, "vision_cls");
        ggml_set_output(g.cls);
        ggml_build_forward_expand(gf, g.cls);
        return g;
    }

    // drop CLS: positions 1..N-1
    g.features = ggml_cont(ctx, ggml_view_3d(ctx, x, D, G * G, B, x->nb[1], x->nb[2], x->nb[1]));
    ggml_set_name(g.features, "vision_features");
    ggml_set_output(g.features);

    g.projected = linear(ctx, gelu(ctx, linear(ctx, g.features, m.mm0_w, m.mm0_b), true), m.mm2_w, m.mm2_b);
    ggml_set_name(g.projected, "vision_projected");
    ggml_set_output(g.projected);

    ggml_build_forward_expand(gf, g.features);
    ggml_build_forward_expand(gf, g.projected);
    return g;
}

} // namespace lr
