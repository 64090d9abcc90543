// LLaMA forward pass (the llama.cpp "llama" graph, op for op, so results match it bit for bit on the
// same backend; except that q8_0, q6_K and q4_K matrices on a CPU with AVX512-VNNI go
// through vnni_matmul.h's kernels, whose block products equal ggml's but whose float sums run in another
// order):
//
//   x = embed(tokens) (+ injected embedding rows)
//   for each layer:
//       h = rms_norm(x) * attn_norm
//       q, k, v = Wq h, Wk h, Wv h;  q, k = rope(q), rope(k)
//       cache[k, v] <- k, v
//       x = x + Wo attention(q, cache)
//       h = rms_norm(x) * ffn_norm
//       x = x + Wdown (silu(Wgate h) * Wup h)
//   logits = Wout (rms_norm(x) * output_norm)      (only for the rows asked for)
#include "decoder_graph.h"
#include "vnni_matmul.h"

#include <cmath>
#include <map>
#include <utility>

namespace lr {

namespace {

// ggml rope mode 0: LLaMA's rotation of consecutive pairs (llama.cpp's LLAMA_ROPE_TYPE_NORM)
constexpr int kRopeModeNorm = 0;
// YaRN parameters at their "off" values, as llama.cpp passes them for plain LLaMA
constexpr float kRopeExtFactor  = 0.0f;
constexpr float kRopeAttnFactor = 1.0f;
constexpr float kRopeBetaFast   = 32.0f;
constexpr float kRopeBetaSlow   = 1.0f;

ggml_tensor * rms_norm(ggml_context * ctx, ggml_tensor * x, ggml_tensor * weight, float eps) {
    return ggml_mul(ctx, ggml_rms_norm(ctx, x, eps), weight);
}

ggml_tensor * rope(ggml_context * ctx, ggml_tensor * x, ggml_tensor * pos, const LlamaHParams & hp) {
    return ggml_rope_ext(ctx, x, pos, nullptr, hp.n_rot, kRopeModeNorm, hp.n_ctx_train,
                         hp.rope_freq_base, hp.rope_freq_scale, kRopeExtFactor, kRopeAttnFactor,
                         kRopeBetaFast, kRopeBetaSlow);
}

// x rotated by the Hadamard matrix h in blocks of h's size along dim 0 (h is symmetric: h^T = h)
ggml_tensor * hadamard(ggml_context * ctx, ggml_tensor * x, ggml_tensor * h) {
    const int64_t n = h->ne[0];
    ggml_tensor * flat = ggml_is_contiguous(x) ? ggml_reshape_2d(ctx, x, n, ggml_nelements(x) / n)
                                               : ggml_cont_2d(ctx, x, n, ggml_nelements(x) / n);
    ggml_tensor * r = ggml_mul_mat(ctx, h, flat);
    ggml_mul_mat_set_hint(r, GGML_HINT_SRC0_IS_HADAMARD);
    return ggml_reshape_4d(ctx, r, x->ne[0], x->ne[1], x->ne[2], x->ne[3]);
}

// y = w x for a weight matrix w. Weights repacked for the VNNI CPU kernels (vnni_matmul.h) go through
// them, and each activation is quantized once per layout for all the weights that read it (q, k, v;
// gate, up).
struct MatMul {
    const DecoderModel & model;
    std::map<std::pair<ggml_tensor *, VnniActivations>, ggml_tensor *> quantized; // (activation, format) -> blocks

    ggml_tensor * operator()(ggml_context * ctx, ggml_tensor * w, ggml_tensor * x) {
        const VnniLayout layout = model.vnni_layout(w);
        if (layout == VnniLayout::None) return ggml_mul_mat(ctx, w, x);
        ggml_tensor *& xq = quantized[{x, vnni_activations(layout)}];
        if (!xq) xq = vnni_quantize(ctx, layout, x);
        return vnni_mul_quantized(ctx, layout, w, xq);
    }
};

} // namespace

size_t decoder_graph_max_nodes(const LlamaHParams & hp) {
    return (size_t) std::max(1024, hp.n_layer * 64);
}

void build_decoder_graph(ggml_context * ctx, ggml_cgraph * gf, const DecoderModel & model, const KvCache & kv,
                         const GraphShape & s, GraphInputs & in) {
    const LlamaHParams & hp = model.hp;
    const int64_t n_embd    = hp.n_embd;
    const int64_t head_dim  = hp.head_dim();
    const int64_t n_head    = hp.n_head;
    const int64_t n_head_kv = hp.n_head_kv;
    const int64_t n_embd_kv = hp.n_embd_kv();
    const int64_t n_tokens  = s.n_tokens;
    const int64_t n_kv      = s.n_kv;
    const int64_t kv_size   = kv.size();
    const float   kq_scale  = 1.0f / std::sqrt((float) head_dim);

    // ---- inputs -----------------------------------------------------------------------------------
    ggml_tensor * x = nullptr; // [n_embd, n_tokens]
    if (s.n_tok_ids > 0) {
        in.tok_ids = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, s.n_tok_ids);
        ggml_set_name(in.tok_ids, "inp_tokens");
        ggml_set_input(in.tok_ids);
        x = ggml_get_rows(ctx, model.tok_embd, in.tok_ids); // [n_embd, n_tok_ids]
    }
    if (s.n_emb > 0) {
        in.embd = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n_embd, s.n_emb);
        ggml_set_name(in.embd, "inp_embd");
        ggml_set_input(in.embd);
        if (x == nullptr) {
            x = in.embd;
        } else {
            // rows in batch order: gather from [token rows | embedding rows]
            in.order = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n_tokens);
            ggml_set_name(in.order, "inp_order");
            ggml_set_input(in.order);
            ggml_tensor * both = ggml_concat(ctx, x, in.embd, 1); // [n_embd, n_tokens]
            x = ggml_get_rows(ctx, both, in.order);
        }
    }
    in.pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, n_tokens);
    ggml_set_name(in.pos, "inp_pos");
    ggml_set_input(in.pos);

    in.kq_mask = ggml_new_tensor_4d(ctx, s.flash_attn ? GGML_TYPE_F16 : GGML_TYPE_F32, n_kv, n_tokens, 1, 1);
    ggml_set_name(in.kq_mask, "attn_inp_kq_mask");
    ggml_set_input(in.kq_mask);

    in.k_idxs = ggml_new_tensor_1d(ctx, GGML_TYPE_I64, n_tokens);
    ggml_set_name(in.k_idxs, "inp_k_idxs");
    ggml_set_input(in.k_idxs);
    in.v_idxs = ggml_new_tensor_1d(ctx, GGML_TYPE_I64, kv.v_trans() ? n_tokens * n_embd_kv : n_tokens);
    ggml_set_name(in.v_idxs, "inp_v_idxs");
    ggml_set_input(in.v_idxs);

    in.out_ids = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, s.n_outputs);
    ggml_set_name(in.out_ids, "inp_out_ids");
    ggml_set_input(in.out_ids);

    if (kv.rot_k() > 0) {
        in.k_rot = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, kv.rot_k(), kv.rot_k());
        ggml_set_name(in.k_rot, "attn_inp_k_rot");
        ggml_set_input(in.k_rot);
    }
    if (kv.rot_v() > 0) {
        in.v_rot = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, kv.rot_v(), kv.rot_v());
        ggml_set_name(in.v_rot, "attn_inp_v_rot");
        ggml_set_input(in.v_rot);
    }

    // ---- layers -----------------------------------------------------------------------------------
    MatMul matmul{model, {}};
    for (int il = 0; il < hp.n_layer; il++) {
        const LayerWeights & L = model.layers[(size_t) il];
        ggml_tensor * residual = x;

        ggml_tensor * h = rms_norm(ctx, x, L.attn_norm, hp.rms_eps); // [n_embd, n_tokens]

        ggml_tensor * q = ggml_reshape_3d(ctx, matmul(ctx, L.wq, h), head_dim, n_head, n_tokens);
        ggml_tensor * k = ggml_reshape_3d(ctx, matmul(ctx, L.wk, h), head_dim, n_head_kv, n_tokens);
        ggml_tensor * v = ggml_reshape_3d(ctx, matmul(ctx, L.wv, h), head_dim, n_head_kv, n_tokens);
        q = rope(ctx, q, in.pos, hp); // [head_dim, n_head, n_tokens]
        k = rope(ctx, k, in.pos, hp); // [head_dim, n_head_kv, n_tokens]
        if (in.k_rot) {
            q = hadamard(ctx, q, in.k_rot);
            k = hadamard(ctx, k, in.k_rot);
        }
        if (in.v_rot) v = hadamard(ctx, v, in.v_rot);
        ggml_build_forward_expand(gf, q);
        ggml_build_forward_expand(gf, v);
        ggml_build_forward_expand(gf, k);

        // store this batch's K and V in the cache cells chosen for its rows
        ggml_tensor * k_cache = kv.k(il);
        ggml_tensor * v_cache = kv.v(il);
        ggml_build_forward_expand(gf, ggml_set_rows(ctx, k_cache, ggml_view_2d(ctx, k, n_embd_kv, n_tokens, k->nb[2], 0), in.k_idxs));
        if (kv.v_trans()) {
            // one row per element: cell c of channel j lives at j * kv_size + c
            ggml_tensor * v_flat = ggml_reshape_2d(ctx, v, 1, n_embd_kv * n_tokens);
            ggml_tensor * cache_flat = ggml_reshape_2d(ctx, v_cache, 1, ggml_nelements(v_cache));
            ggml_build_forward_expand(gf, ggml_set_rows(ctx, cache_flat, v_flat, in.v_idxs));
        } else {
            ggml_build_forward_expand(gf, ggml_set_rows(ctx, v_cache, ggml_view_2d(ctx, v, n_embd_kv, n_tokens, v->nb[2], 0), in.v_idxs));
        }

        // views of the first n_kv cells
        ggml_tensor * K = ggml_view_4d(ctx, k_cache, head_dim, n_head_kv, n_kv, 1,
                                       ggml_row_size(k_cache->type, head_dim), ggml_row_size(k_cache->type, n_embd_kv),
                                       ggml_row_size(k_cache->type, n_embd_kv * kv_size), 0);
        ggml_tensor * Q = ggml_permute(ctx, ggml_reshape_4d(ctx, q, head_dim, n_head, n_tokens, 1), 0, 2, 1, 3); // [head_dim, n_tokens, n_head]
        ggml_tensor * Kp = ggml_permute(ctx, K, 0, 2, 1, 3);                                                     // [head_dim, n_kv, n_head_kv]

        ggml_tensor * attn = nullptr; // [n_embd, n_tokens]
        if (s.flash_attn) {
            ggml_tensor * Vv = ggml_view_4d(ctx, v_cache, head_dim, n_head_kv, n_kv, 1,
                                            ggml_row_size(v_cache->type, head_dim), ggml_row_size(v_cache->type, n_embd_kv),
                                            ggml_row_size(v_cache->type, n_embd_kv * kv_size), 0);
            ggml_tensor * Vp = ggml_permute(ctx, Vv, 0, 2, 1, 3); // [head_dim, n_kv, n_head_kv]
            ggml_tensor * o = ggml_flash_attn_ext(ctx, Q, Kp, Vp, in.kq_mask, kq_scale, 0.0f, 0.0f); // [head_dim, n_head, n_tokens]
            ggml_flash_attn_ext_set_prec(o, GGML_PREC_F32);
            attn = ggml_reshape_2d(ctx, o, n_embd, n_tokens);
        } else {
            // With an f16 cache ggml's CPU product rounds the f32 operand (queries, then attention weights) to f16 on
            // one-token steps, but on arm64 its batched f16 x f32 product (llamafile) keeps it in f32: a sequence
            // would get other logits decoded alone than batched with others. Rounding here gives every path the
            // same f16 operands (x86-64 rounds them on every path already: there at most the product's summation
            // order changes, when the rounded queries let a batched step take llamafile's kernel).
            const bool round_q = s.cpu && Kp->type == GGML_TYPE_F16;
            const bool round_w = s.cpu && v_cache->type == GGML_TYPE_F16;
            ggml_tensor * kq = ggml_mul_mat(ctx, Kp, round_q ? ggml_cast(ctx, Q, GGML_TYPE_F16) : Q); // [n_kv, n_tokens, n_head]
            ggml_mul_mat_set_prec(kq, GGML_PREC_F32);
            kq = ggml_soft_max_ext(ctx, kq, in.kq_mask, kq_scale, 0.0f);
            if (round_w) kq = ggml_cast(ctx, kq, GGML_TYPE_F16);
            // transposed V cache viewed as [n_kv, n_head_kv, head_dim] -> [n_kv, head_dim, n_head_kv]
            ggml_tensor * Vt = ggml_view_4d(ctx, v_cache, n_kv, n_head_kv, head_dim, 1,
                                            ggml_row_size(v_cache->type, kv_size * head_dim), ggml_row_size(v_cache->type, kv_size),
                                            ggml_row_size(v_cache->type, kv_size * n_embd_kv), 0);
            Vt = ggml_permute(ctx, Vt, 0, 2, 1, 3);
            ggml_tensor * kqv = ggml_mul_mat(ctx, Vt, kq);          // [head_dim, n_tokens, n_head]
            ggml_tensor * merged = ggml_permute(ctx, kqv, 0, 2, 1, 3); // [head_dim, n_head, n_tokens]
            attn = ggml_cont_2d(ctx, merged, n_embd, n_tokens);
        }
        ggml_build_forward_expand(gf, attn);
        if (in.v_rot) attn = hadamard(ctx, attn, in.v_rot); // undo V's rotation
        attn = matmul(ctx, L.wo, attn); // [n_embd, n_tokens]

        if (il == hp.n_layer - 1) {
            // only the rows whose logits are wanted go on
            attn = ggml_get_rows(ctx, attn, in.out_ids);         // [n_embd, n_outputs]
            residual = ggml_get_rows(ctx, residual, in.out_ids);
        }
        x = ggml_add(ctx, attn, residual);

        residual = x;
        h = rms_norm(ctx, x, L.ffn_norm, hp.rms_eps);
        ggml_tensor * up   = matmul(ctx, L.ffn_up, h);   // [n_ff, rows]
        ggml_tensor * gate = matmul(ctx, L.ffn_gate, h); // [n_ff, rows]
        ggml_tensor * act  = ggml_swiglu_split(ctx, gate, up); // silu(gate) * up
        x = ggml_add(ctx, matmul(ctx, L.ffn_down, act), residual);
    }

    x = rms_norm(ctx, x, model.output_norm, hp.rms_eps);
    in.logits = matmul(ctx, model.output, x); // [n_vocab, n_outputs]
    ggml_set_name(in.logits, "result_output");
    ggml_set_output(in.logits);
    ggml_build_forward_expand(gf, in.logits);
}

} // namespace lr
