#include "vision_model.h"
#include "status.h"

#include <cmath>

namespace lr {

namespace {

uint32_t bounded(const GgufFile & g, const std::string & key, uint32_t lo, uint32_t hi) {
    const uint32_t v = g.get_u32(key);
    if (v < lo || v > hi) fail(LR_ERR_BAD_GGUF, format("%s: %s = %u is outside [%u, %u]", g.path().c_str(), key.c_str(), v, lo, hi));
    return v;
}

int32_t get_i32(const GgufFile & g, const std::string & key) {
    const GgufValue * v = g.find(key);
    if (!v) fail(LR_ERR_BAD_GGUF, format("%s: required metadata key '%s' is missing", g.path().c_str(), key.c_str()));
    if (v->type != GgufType::I32 && v->type != GgufType::I64 && v->type != GgufType::I16 && v->type != GgufType::I8) {
        fail(LR_ERR_BAD_GGUF, format("%s: metadata key '%s' must be a signed integer, found %s", g.path().c_str(), key.c_str(), gguf_type_name(v->type)));
    }
    if (v->i < -1024 || v->i > 1024) fail(LR_ERR_BAD_GGUF, format("%s: %s = %lld is out of range", g.path().c_str(), key.c_str(), (long long) v->i));
    return (int32_t) v->i;
}

void require_string(const GgufFile & g, const std::string & key, const std::string & want) {
    const std::string v = g.get_string(key, want);
    if (v != want) {
        fail(LR_ERR_UNSUPPORTED, format("%s: %s = '%s' is not supported (expected '%s')", g.path().c_str(), key.c_str(), v.c_str(), want.c_str()));
    }
}

} // namespace

VisionHParams VisionHParams::from_gguf(const GgufFile & g) {
    const std::string path = g.path();
    const std::string arch = g.get_string("general.architecture");
    if (arch != "clip") fail(LR_ERR_BAD_GGUF, format("%s: not a vision GGUF (architecture '%s', expected 'clip')", path.c_str(), arch.c_str()));
    if (!g.has("llava_rad.vision.select_layer")) {
        fail(LR_ERR_UNSUPPORTED, format("%s: not a LLaVA-Rad vision GGUF (no llava_rad.vision.* keys); "
            "files converted for llama.cpp's clip lack LayerScale and the feature layer", path.c_str()));
    }
    VisionHParams hp;
    hp.image_size = (int32_t) bounded(g, "clip.vision.image_size", 1, 4096);
    hp.patch_size = (int32_t) bounded(g, "clip.vision.patch_size", 1, 64);
    hp.n_embd = (int32_t) bounded(g, "clip.vision.embedding_length", 1, 8192);
    hp.n_ff = (int32_t) bounded(g, "clip.vision.feed_forward_length", 1, 65536);
    hp.n_block = (int32_t) bounded(g, "clip.vision.block_count", 1, 256);
    hp.n_head = (int32_t) bounded(g, "clip.vision.attention.head_count", 1, 256);
    hp.n_out = (int32_t) bounded(g, "clip.vision.projection_dim", 1, 65536);
    hp.eps = g.get_f32("clip.vision.attention.layer_norm_epsilon");
    if (!(std::isfinite(hp.eps) && hp.eps > 0.0f && hp.eps < 1.0f)) fail(LR_ERR_BAD_GGUF, format("%s: layer_norm_epsilon %g is invalid", path.c_str(), hp.eps));
    if (hp.image_size % hp.patch_size != 0) {
        fail(LR_ERR_BAD_GGUF, format("%s: image_size %d is not a multiple of patch_size %d", path.c_str(), hp.image_size, hp.patch_size));
    }
    if (hp.n_embd % hp.n_head != 0) fail(LR_ERR_BAD_GGUF, format("%s: embedding_length %d is not a multiple of head_count %d", path.c_str(), hp.n_embd, hp.n_head));
    const std::vector<float> mean = g.get_f32_array("clip.vision.image_mean");
    const std::vector<float> stdv = g.get_f32_array("clip.vision.image_std");
    if (mean.size() != 3 || stdv.size() != 3) fail(LR_ERR_BAD_GGUF, format("%s: image_mean and image_std must hold 3 values", path.c_str()));
    for (int c = 0; c < 3; c++) {
        if (!std::isfinite(mean[c]) || !std::isfinite(stdv[c]) || stdv[c] <= 0.0f) fail(LR_ERR_BAD_GGUF, format("%s: invalid image_mean / image_std", path.c_str()));
        hp.mean[c] = mean[c];
        hp.std[c] = stdv[c];
    }
    hp.select_layer = get_i32(g, "llava_rad.vision.select_layer");
    hp.n_block_used = hp.select_layer < 0 ? hp.n_block + hp.select_layer + 1 : hp.select_layer + 1;
    if (hp.n_block_used < 1 || hp.n_block_used > hp.n_block) {
        fail(LR_ERR_BAD_GGUF, format("%s: select_layer %d does not name one of the %d blocks", path.c_str(), hp.select_layer, hp.n_block));
    }
    hp.layer_scale = g.get_bool("llava_rad.vision.layer_scale", false);
    const std::string gelu = g.get_string("llava_rad.vision.gelu", "erf");
    if (gelu != "erf" && gelu != "tanh") fail(LR_ERR_UNSUPPORTED, format("%s: llava_rad.vision.gelu '%s' is not supported", path.c_str(), gelu.c_str()));
    hp.gelu_erf = gelu == "erf";
    require_string(g, "llava_rad.vision.cls_position", "first");
    require_string(g, "llava_rad.projector.type", "mlp2x_gelu");
    return hp;
}

std::unique_ptr<VisionModel> VisionModel::load(const std::string & path, const lr_model_params & params, bool all_blocks) {
    std::unique_ptr<VisionModel> m(new VisionModel());
    m->gguf = GgufFile::open(path);
    m->hp = VisionHParams::from_gguf(*m->gguf);
    if (all_blocks) {
        m->hp.select_layer = -1;
        m->hp.n_block_used = m->hp.n_block;
    }
    m->name = m->gguf->get_string("general.name", "");
    init_backends(m->backends, params.backend, params.n_threads);

    const VisionHParams & h = m->hp;
    const int64_t D = h.n_embd, F = h.n_ff, P = h.patch_size, T = h.n_out;
    using U = WeightUse;
    std::vector<WeightDecl> d;
    d.push_back({"v.patch_embd.weight", {P, P, 3, D}, U::Conv, &m->patch_w});
    d.push_back({"v.patch_embd.bias", {D}, U::Vector, &m->patch_b});
    d.push_back({"v.class_embd", {D}, U::Vector, &m->cls});
    d.push_back({"v.position_embd.weight", {D, h.n_pos()}, U::Vector, &m->pos});
    m->blocks.resize((size_t) h.n_block_used);
    for (int i = 0; i < h.n_block_used; i++) {
        VisionBlock & b = m->blocks[(size_t) i];
        const std::string p = "v.blk." + std::to_string(i) + ".";
        d.push_back({p + "ln1.weight", {D}, U::Vector, &b.ln1_w});
        d.push_back({p + "ln1.bias", {D}, U::Vector, &b.ln1_b});
        d.push_back({p + "attn_q.weight", {D, D}, U::MatMul, &b.q_w});
        d.push_back({p + "attn_q.bias", {D}, U::Vector, &b.q_b});
        d.push_back({p + "attn_k.weight", {D, D}, U::MatMul, &b.k_w});
        d.push_back({p + "attn_k.bias", {D}, U::Vector, &b.k_b});
        d.push_back({p + "attn_v.weight", {D, D}, U::MatMul, &b.v_w});
        d.push_back({p + "attn_v.bias", {D}, U::Vector, &b.v_b});
        d.push_back({p + "attn_out.weight", {D, D}, U::MatMul, &b.o_w});
        d.push_back({p + "attn_out.bias", {D}, U::Vector, &b.o_b});
        d.push_back({p + "ln2.weight", {D}, U::Vector, &b.ln2_w});
        d.push_back({p + "ln2.bias", {D}, U::Vector, &b.ln2_b});
        d.push_back({p + "ffn_up.weight", {D, F}, U::MatMul, &b.up_w});
        d.push_back({p + "ffn_up.bias", {F}, U::Vector, &b.up_b});
        d.push_back({p + "ffn_down.weight", {F, D}, U::MatMul, &b.down_w});
        d.push_back({p + "ffn_down.bias", {D}, U::Vector, &b.down_b});
        if (h.layer_scale) {
            d.push_back({p + "ls1.weight", {D}, U::Vector, &b.ls1});
            d.push_back({p + "ls2.weight", {D}, U::Vector, &b.ls2});
        }
    }
    if (!all_blocks) { // the CLIP image path (all_blocks) never runs the projector: its weights stay on disk
        d.push_back({"mm.0.weight", {D, T}, U::MatMul, &m->mm0_w});
        d.push_back({"mm.0.bias", {T}, U::Vector, &m->mm0_b});
        d.push_back({"mm.2.weight", {T, T}, U::MatMul, &m->mm2_w});
        d.push_back({"mm.2.bias", {T}, U::Vector, &m->mm2_b});
    }
    m->weights_.place(*m->gguf, m->backends, d, params.use_mmap != 0);
    m->n_params = m->weights_.n_params;
    m->weight_bytes = m->weights_.bytes;
    return m;
}

} // namespace lr
