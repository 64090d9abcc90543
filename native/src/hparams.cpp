#include "hparams.h"
#include "gguf_file.h"
#include "status.h"

#include <cmath>

namespace lr {

namespace {

// generous ceilings: far above any LLaMA-family model, low enough that sizes cannot overflow
constexpr uint32_t kMaxEmbd   = 1u << 16;
constexpr uint32_t kMaxLayers = 1024;
constexpr uint32_t kMaxHeads  = 1024;
constexpr uint32_t kMaxFF     = 1u << 18;
constexpr uint32_t kMaxCtx    = 1u << 24;

uint32_t get_bounded(const GgufFile & g, const std::string & key, uint32_t lo, uint32_t hi) {
    const uint32_t v = g.get_u32(key);
    if (v < lo || v > hi) {
        fail(LR_ERR_BAD_GGUF, format("%s: %s = %u is outside [%u, %u]", g.path().c_str(), key.c_str(), v, lo, hi));
    }
    return v;
}

} // namespace

LlamaHParams LlamaHParams::from_gguf(const GgufFile & g) {
    const std::string arch = g.get_string("general.architecture");
    if (arch != "llama") {
        fail(LR_ERR_UNSUPPORTED, format("%s: architecture '%s' is not supported (expected 'llama')", g.path().c_str(), arch.c_str()));
    }
    LlamaHParams hp;
    hp.n_embd      = (int32_t) get_bounded(g, "llama.embedding_length", 1, kMaxEmbd);
    hp.n_layer     = (int32_t) get_bounded(g, "llama.block_count", 1, kMaxLayers);
    hp.n_head      = (int32_t) get_bounded(g, "llama.attention.head_count", 1, kMaxHeads);
    hp.n_head_kv   = g.has("llama.attention.head_count_kv")
                   ? (int32_t) get_bounded(g, "llama.attention.head_count_kv", 1, kMaxHeads) : hp.n_head;
    hp.n_ff        = (int32_t) get_bounded(g, "llama.feed_forward_length", 1, kMaxFF);
    hp.n_ctx_train = (int32_t) get_bounded(g, "llama.context_length", 1, kMaxCtx);
    hp.rms_eps     = g.get_f32("llama.attention.layer_norm_rms_epsilon");
    hp.rope_freq_base = g.get_f32("llama.rope.freq_base", 10000.0f);

    const std::string path = g.path();
    if (hp.n_embd % hp.n_head != 0) {
        fail(LR_ERR_BAD_GGUF, format("%s: embedding_length %d is not a multiple of head_count %d", path.c_str(), hp.n_embd, hp.n_head));
    }
    if (hp.n_head % hp.n_head_kv != 0) {
        fail(LR_ERR_BAD_GGUF, format("%s: head_count %d is not a multiple of head_count_kv %d", path.c_str(), hp.n_head, hp.n_head_kv));
    }
    hp.n_rot = (int32_t) g.get_u32("llama.rope.dimension_count", (uint32_t) hp.head_dim());
    if (hp.n_rot != hp.head_dim()) {
        fail(LR_ERR_UNSUPPORTED, format("%s: rope.dimension_count %d differs from the head size %d", path.c_str(), hp.n_rot, hp.head_dim()));
    }
    if (hp.n_rot % 2 != 0) fail(LR_ERR_BAD_GGUF, format("%s: head size %d is odd", path.c_str(), hp.n_rot));
    if (!(std::isfinite(hp.rms_eps) && hp.rms_eps > 0.0f && hp.rms_eps < 1.0f)) {
        fail(LR_ERR_BAD_GGUF, format("%s: layer_norm_rms_epsilon %g is not in (0, 1)", path.c_str(), hp.rms_eps));
    }
    if (!(std::isfinite(hp.rope_freq_base) && hp.rope_freq_base > 0.0f)) {
        fail(LR_ERR_BAD_GGUF, format("%s: rope.freq_base %g is not positive", path.c_str(), hp.rope_freq_base));
    }
    const std::string scaling = g.get_string("llama.rope.scaling.type", "none");
    if (scaling == "linear") {
        const float factor = g.get_f32("llama.rope.scaling.factor", 1.0f);
        if (!(std::isfinite(factor) && factor >= 1.0f)) {
            fail(LR_ERR_BAD_GGUF, format("%s: rope.scaling.factor %g is invalid", path.c_str(), factor));
        }
        hp.rope_freq_scale = 1.0f / factor;
    } else if (scaling != "none") {
        fail(LR_ERR_UNSUPPORTED, format("%s: rope scaling '%s' is not supported", path.c_str(), scaling.c_str()));
    }
    if (g.has("llama.expert_count") && g.get_u32("llama.expert_count") > 0) {
        fail(LR_ERR_UNSUPPORTED, format("%s: mixture-of-experts LLaMA models are not supported", path.c_str()));
    }

    // the vocabulary size is the embedding table's row count; the tokenizer must agree
    const GgufTensor * embd = g.tensor("token_embd.weight");
    if (!embd) fail(LR_ERR_BAD_GGUF, format("%s: required tensor 'token_embd.weight' is missing", path.c_str()));
    if (embd->ne[1] < 3 || embd->ne[1] > (1 << 22)) {
        fail(LR_ERR_BAD_GGUF, format("%s: token_embd.weight has %lld rows", path.c_str(), (long long) embd->ne[1]));
    }
    hp.n_vocab = (int32_t) embd->ne[1];
    return hp;
}

} // namespace lr
