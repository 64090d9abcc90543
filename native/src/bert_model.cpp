#include "bert_model.h"
#include "status.h"

#include <cmath>

namespace lr {

namespace {

uint32_t bounded(const GgufFile & g, const std::string & key, uint32_t lo, uint32_t hi) {
    const uint32_t v = g.get_u32(key);
    if (v < lo || v > hi) fail(LR_ERR_BAD_GGUF, format("%s: %s = %u is outside [%u, %u]", g.path().c_str(), key.c_str(), v, lo, hi));
    return v;
}

constexpr int32_t kMaxHeads = 64;
constexpr int32_t kMaxClasses = 1024;

} // namespace

BertHParams BertHParams::from_gguf(const GgufFile & g) {
    const std::string path = g.path();
    const std::string arch = g.get_string("general.architecture");
    if (arch != "bert") fail(LR_ERR_BAD_GGUF, format("%s: not a BERT GGUF (architecture '%s', expected 'bert')", path.c_str(), arch.c_str()));
    BertHParams hp;
    hp.n_ctx = (int32_t) bounded(g, "bert.context_length", 2, 1 << 16);
    hp.n_embd = (int32_t) bounded(g, "bert.embedding_length", 1, 16384);
    hp.n_ff = (int32_t) bounded(g, "bert.feed_forward_length", 1, 65536);
    hp.n_block = (int32_t) bounded(g, "bert.block_count", 1, 256);
    hp.n_head = (int32_t) bounded(g, "bert.attention.head_count", 1, 256);
    hp.n_token_types = (int32_t) bounded(g, "bert.token_type_count", 1, 16);
    hp.eps = g.get_f32("bert.attention.layer_norm_epsilon");
    if (!(std::isfinite(hp.eps) && hp.eps > 0.0f && hp.eps < 1.0f)) fail(LR_ERR_BAD_GGUF, format("%s: layer_norm_epsilon %g is invalid", path.c_str(), hp.eps));
    if (g.get_bool("bert.attention.causal", false)) fail(LR_ERR_UNSUPPORTED, format("%s: a causal BERT is not supported", path.c_str()));
    if (hp.n_embd % hp.n_head != 0) fail(LR_ERR_BAD_GGUF, format("%s: embedding_length %d is not a multiple of head_count %d", path.c_str(), hp.n_embd, hp.n_head));
    const uint64_t n_vocab = g.array_length("tokenizer.ggml.tokens");
    if (n_vocab < 1 || n_vocab > (1u << 22)) fail(LR_ERR_BAD_GGUF, format("%s: tokenizer.ggml.tokens is missing or too long", path.c_str()));
    hp.n_vocab = (int32_t) n_vocab;
    if (g.has("chexbert.head_classes")) {
        hp.head_classes = g.get_i32_array("chexbert.head_classes");
        if (hp.head_classes.empty() || hp.head_classes.size() > (size_t) kMaxHeads) fail(LR_ERR_BAD_GGUF, format("%s: chexbert.head_classes must hold 1..%d heads", path.c_str(), kMaxHeads));
        for (int32_t c : hp.head_classes) {
            if (c < 1 || c > kMaxClasses) fail(LR_ERR_BAD_GGUF, format("%s: a head has %d classes", path.c_str(), c));
        }
    }
    return hp;
}

std::unique_ptr<BertModel> BertModel::load(const std::string & path, const lr_model_params & params) {
    std::unique_ptr<BertModel> m(new BertModel());
    m->gguf = GgufFile::open(path);
    m->hp = BertHParams::from_gguf(*m->gguf);
    m->name = m->gguf->get_string("general.name", "");
    init_backends(m->backends, params.backend, params.n_threads);

    const BertHParams & h = m->hp;
    const int64_t D = h.n_embd, F = h.n_ff;
    using U = WeightUse;
    std::vector<WeightDecl> d;
    d.push_back({"bert.token_embd.weight", {D, h.n_vocab}, U::Embed, &m->tok_embd});
    d.push_back({"bert.position_embd.weight", {D, h.n_ctx}, U::Embed, &m->pos_embd});
    d.push_back({"bert.token_types.weight", {D, h.n_token_types}, U::Embed, &m->type_embd});
    // a linear layer: weight [n_in, n_out] (ggml order), bias [n_out]; a LayerNorm: weight and bias [D]
    const auto linear = [&](const std::string & p, int64_t n_in, int64_t n_out, ggml_tensor ** w, ggml_tensor ** b) {
        d.push_back({p + ".weight", {n_in, n_out}, U::MatMul, w});
        d.push_back({p + ".bias", {n_out}, U::Vector, b});
    };
    const auto norm = [&](const std::string & p, ggml_tensor ** w, ggml_tensor ** b) {
        d.push_back({p + ".weight", {D}, U::Vector, w});
        d.push_back({p + ".bias", {D}, U::Vector, b});
    };
    norm("bert.token_embd_norm", &m->embd_norm_w, &m->embd_norm_b);
    m->blocks.resize((size_t) h.n_block);
    for (int i = 0; i < h.n_block; i++) {
        BertBlock & b = m->blocks[(size_t) i];
        const std::string p = "bert.blk." + std::to_string(i) + ".";
        linear(p + "attn_q", D, D, &b.q_w, &b.q_b);
        linear(p + "attn_k", D, D, &b.k_w, &b.k_b);
        linear(p + "attn_v", D, D, &b.v_w, &b.v_b);
        linear(p + "attn_output", D, D, &b.o_w, &b.o_b);
        norm(p + "attn_output_norm", &b.attn_norm_w, &b.attn_norm_b);
        linear(p + "ffn_up", D, F, &b.up_w, &b.up_b);
        linear(p + "ffn_down", F, D, &b.down_w, &b.down_b);
        norm(p + "layer_output_norm", &b.out_norm_w, &b.out_norm_b);
    }
    m->heads.resize(h.head_classes.size());
    for (size_t i = 0; i < h.head_classes.size(); i++) {
        linear("chexbert.head." + std::to_string(i), D, h.head_classes[i], &m->heads[i].w, &m->heads[i].b);
    }
    m->weights_.place(*m->gguf, m->backends, d, params.use_mmap != 0);
    m->n_params = m->weights_.n_params;
    return m;
}

} // namespace lr
