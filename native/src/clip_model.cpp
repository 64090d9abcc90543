#include "clip_model.h"
#include "status.h"

#include <cmath>

namespace lr {

namespace {

constexpr float kMaxLogitScale = 20.0f; // exp(20): far above any trained CLIP's (open_clip clamps at log 100)

void require(const GgufFile & g, const std::string & key, const std::string & want) {
    const std::string v = g.get_string(key, "");
    if (v != want) fail(LR_ERR_UNSUPPORTED, format("%s: %s is '%s', only '%s' is supported", g.path().c_str(), key.c_str(), v.c_str(), want.c_str()));
}

uint32_t bounded(const GgufFile & g, const std::string & key, uint32_t lo, uint32_t hi) {
    const uint32_t v = g.get_u32(key);
    if (v < lo || v > hi) fail(LR_ERR_BAD_GGUF, format("%s: %s = %u is outside [%u, %u]", g.path().c_str(), key.c_str(), v, lo, hi));
    return v;
}

} // namespace

ClipHParams ClipHParams::from_gguf(const GgufFile & g, const BertHParams & text) {
    if (!g.has("clip.embedding_length")) {
        fail(LR_ERR_BAD_GGUF, format("%s: not a CLIP GGUF (no clip.* keys; `llava-rad convert --clip-text` writes one)", g.path().c_str()));
    }
    ClipHParams hp;
    hp.n_out = (int32_t) bounded(g, "clip.embedding_length", 1, 65536);
    hp.n_ctx = (int32_t) bounded(g, "clip.text.context_length", 2, (uint32_t) text.n_ctx);
    hp.n_embd_vision = (int32_t) bounded(g, "clip.vision.embedding_length", 1, 16384);
    hp.n_proj_hidden = (text.n_embd + hp.n_out) / 2;
    hp.logit_scale = g.get_f32("clip.logit_scale");
    if (!std::isfinite(hp.logit_scale) || std::fabs(hp.logit_scale) > kMaxLogitScale) {
        fail(LR_ERR_BAD_GGUF, format("%s: clip.logit_scale %g is invalid", g.path().c_str(), hp.logit_scale));
    }
    hp.vision_eps = g.get_f32("clip.vision.layer_norm_epsilon");
    if (!(std::isfinite(hp.vision_eps) && hp.vision_eps > 0.0f && hp.vision_eps < 1.0f)) {
        fail(LR_ERR_BAD_GGUF, format("%s: clip.vision.layer_norm_epsilon %g is invalid", g.path().c_str(), hp.vision_eps));
    }
    require(g, "clip.text.pooler", "cls");
    require(g, "clip.text.projection", "mlp");
    require(g, "clip.vision.pool", "token");
    return hp;
}

std::unique_ptr<ClipModel> ClipModel::load(const std::string & clip_path, const std::string & vision_path,
                                           const lr_model_params & params) {
    std::unique_ptr<ClipModel> m(new ClipModel());
    m->text = BertModel::load(clip_path, params);
    if (!m->text->hp.head_classes.empty()) fail(LR_ERR_BAD_GGUF, format("%s: a CheXbert GGUF, not a CLIP one", clip_path.c_str()));
    m->vision = VisionModel::load(vision_path, params, true);
    m->gguf = GgufFile::open(clip_path);
    m->hp = ClipHParams::from_gguf(*m->gguf, m->text->hp);
    if (m->hp.n_embd_vision != m->vision->hp.n_embd) {
        fail(LR_ERR_BAD_GGUF, format("%s: the image head takes %d-wide rows, the tower in %s is %d wide",
                                     clip_path.c_str(), m->hp.n_embd_vision, vision_path.c_str(), m->vision->hp.n_embd));
    }
    m->name = m->gguf->get_string("general.name", "");
    init_backends(m->backends, params.backend, params.n_threads);

    const int64_t Dt = m->text->hp.n_embd, Dv = m->hp.n_embd_vision, M = m->hp.n_proj_hidden, E = m->hp.n_out;
    using U = WeightUse;
    const std::vector<WeightDecl> d = {
        {"clip.text_proj.0.weight", {Dt, M}, U::MatMul, &m->text_proj0},
        {"clip.text_proj.2.weight", {M, E}, U::MatMul, &m->text_proj2},
        {"clip.vision_norm.weight", {Dv}, U::Vector, &m->vision_norm_w},
        {"clip.vision_norm.bias", {Dv}, U::Vector, &m->vision_norm_b},
        {"clip.vision_head.weight", {Dv, E}, U::MatMul, &m->vision_head},
    };
    m->weights_.place(*m->gguf, m->backends, d, params.use_mmap != 0);
    m->n_params = m->weights_.n_params + m->text->n_params + m->vision->n_params;
    return m;
}

} // namespace lr
