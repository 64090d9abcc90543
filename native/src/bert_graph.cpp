// BERT (transformers' BertModel, eval mode) for B sequences padded to T tokens, D = width, H heads of hd = D / H:
//
//   x = LayerNorm(tok_embd[ids] + pos_embd[0..T-1] + type_embd[0])    embeddings, [D, T * B]
//   for each block:
//       a = softmax(Q K^T / sqrt(hd) + mask) V, heads merged, dense   self-attention within each sequence
//       x = LayerNorm(x + a)                                          post-norm (BERT's "add & norm")
//       f = down(gelu_erf(up(x)))                                     feed-forward
//       x = LayerNorm(x + f)
//   hidden = x                                                        every token's last state, [D, T * B]
//   cls = x[:, b * T] for each b                                      the [CLS] rows, [D, B]
//   logits = [head_0(cls) | head_1(cls) | ...]                        CheXbert's 14 linear heads, [n_logits, B]
//
// The mask adds -inf to the scores of padding keys, so a sequence's real rows are what it gives alone (the
// official evaluators pad a batch and add -10000 there: exp(-10000) is 0 in float32 too). Padding rows attend
// to their sequence's real keys (key 0 is always real), so they stay finite; they are never read.
#include "bert_graph.h"

#include <cmath>

namespace lr {

namespace {

// per-block node budget: matmuls, adds, norms, permutes (generous)
constexpr int kNodesPerBlock = 48;
constexpr int kNodesOutside = 64;

ggml_tensor * layer_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b, float eps) {
    return ggml_add(ctx, ggml_mul(ctx, ggml_norm(ctx, x, eps), w), b);
}

ggml_tensor * linear(ggml_context * ctx, ggml_tensor * x, ggml_tensor * w, ggml_tensor * b) {
    return ggml_add(ctx, ggml_mul_mat(ctx, w, x), b);
}

// multi-head self-attention within each of the B sequences of T positions: x [D, T * B] -> [D, T * B];
// mask [T, T, 1, B] (null: one sequence, every key real)
ggml_tensor * self_attention(ggml_context * ctx, ggml_tensor * x, ggml_tensor * mask, const BertBlock & blk,
                             const BertHParams & hp, int64_t T, int64_t B) {
    const int64_t D = hp.n_embd, H = hp.n_head, hd = D / H;
    const float scale = 1.0f / std::sqrt((float) hd);

    ggml_tensor * q = ggml_reshape_4d(ctx, linear(ctx, x, blk.q_w, blk.q_b), hd, H, T, B);
    ggml_tensor * k = ggml_reshape_4d(ctx, linear(ctx, x, blk.k_w, blk.k_b), hd, H, T, B);
    ggml_tensor * v = ggml_reshape_4d(ctx, linear(ctx, x, blk.v_w, blk.v_b), hd, H, T, B);
    q = ggml_cont(ctx, ggml_permute(ctx, q, 0, 2, 1, 3));  // [hd, T, H, B]
    k = ggml_cont(ctx, ggml_permute(ctx, k, 0, 2, 1, 3));  // [hd, T, H, B]
    v = ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3));  // [T, hd, H, B]

    ggml_tensor * scores = ggml_mul_mat(ctx, k, q);        // [T(keys), T(queries), H, B]
    ggml_mul_mat_set_prec(scores, GGML_PREC_F32);
    ggml_tensor * weights = ggml_soft_max_ext(ctx, scores, mask, scale, 0.0f); // mask broadcast over H
    ggml_tensor * context = ggml_mul_mat(ctx, v, weights);  // [hd, T, H, B]
    ggml_tensor * merged = ggml_cont_2d(ctx, ggml_permute(ctx, context, 0, 2, 1, 3), D, T * B); // [D, T * B]
    return linear(ctx, merged, blk.o_w, blk.o_b);
}

} // namespace

size_t bert_graph_max_nodes(const BertHParams & hp) {
    return (size_t) (hp.n_block * kNodesPerBlock + kNodesOutside + 4 * (int) hp.head_classes.size());
}

BertGraph build_bert_graph(ggml_context * ctx, ggml_cgraph * gf, const BertModel & m, int32_t n_tokens,
                           int32_t n_seqs) {
    const BertHParams & hp = m.hp;
    const int64_t D = hp.n_embd, T = n_tokens, B = n_seqs;
    BertGraph g;

    g.ids = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, T * B);
    ggml_set_name(g.ids, "inp_ids");
    ggml_set_input(g.ids);
    g.positions = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, T * B);
    ggml_set_name(g.positions, "inp_positions");
    ggml_set_input(g.positions);
    g.types = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, T * B);
    ggml_set_name(g.types, "inp_types");
    ggml_set_input(g.types);
    if (B > 1) {
        g.mask = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, T, T, 1, B);
        ggml_set_name(g.mask, "inp_attn_mask");
        ggml_set_input(g.mask);
    }

    // embeddings: [D, T * B]
    ggml_tensor * tokens = ggml_get_rows(ctx, m.tok_embd, g.ids);
    ggml_tensor * positions = ggml_get_rows(ctx, m.pos_embd, g.positions);
    ggml_tensor * types = ggml_get_rows(ctx, m.type_embd, g.types);
    ggml_tensor * x = ggml_add(ctx, ggml_add(ctx, tokens, positions), types);
    x = layer_norm(ctx, x, m.embd_norm_w, m.embd_norm_b, hp.eps);

    for (const BertBlock & blk : m.blocks) {
        ggml_tensor * attended = self_attention(ctx, x, g.mask, blk, hp, T, B);
        x = layer_norm(ctx, ggml_add(ctx, x, attended), blk.attn_norm_w, blk.attn_norm_b, hp.eps);
        ggml_tensor * ffn = linear(ctx, ggml_gelu_erf(ctx, linear(ctx, x, blk.up_w, blk.up_b)), blk.down_w, blk.down_b);
        x = layer_norm(ctx, ggml_add(ctx, x, ffn), blk.out_norm_w, blk.out_norm_b, hp.eps);
    }

    // every token's last hidden state: [D, T * B]
    g.hidden = x;
    ggml_set_name(g.hidden, "bert_hidden");
    ggml_set_output(g.hidden);
    ggml_build_forward_expand(gf, g.hidden);

    // the [CLS] rows, each sequence's first: [D, B]
    g.cls = ggml_cont(ctx, ggml_view_2d(ctx, x, D, B, x->nb[1] * T, 0));
    ggml_set_name(g.cls, "bert_cls");
    ggml_set_output(g.cls);
    ggml_build_forward_expand(gf, g.cls);

    // the heads, concatenated: [n_logits, B]
    for (const BertHead & head : m.heads) {
        ggml_tensor * logits = linear(ctx, g.cls, head.w, head.b); // [C, B]
        g.logits = g.logits ? ggml_concat(ctx, g.logits, logits, 0) : logits;
    }
    if (g.logits) {
        ggml_set_name(g.logits, "chexbert_logits");
        ggml_set_output(g.logits);
        ggml_build_forward_expand(gf, g.logits);
    }
    return g;
}

} // namespace lr
