#include "decoder_model.h"
#include "status.h"

#include "ggml-cpu.h"

#include <map>

namespace lr {

namespace {

// how a weight is used by the graph: decides where it may live
enum class Use { Embed, MatMul, Norm };

struct Decl {
    std::string name;
    std::vector<int64_t> shape;
    Use use;
    ggml_tensor ** slot;
};

// Would `dev` run the op that uses `w` if w lived in a buffer of type `buft`? (llama.cpp's approach:
// build the op on a dummy tensor and ask the device.)
bool buft_supports(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft, const GgufTensor & t, Use use) {
    ggml_init_params ip = { ggml_tensor_overhead() * 8, nullptr, true };
    ggml_context * ctx = ggml_init(ip);
    if (!ctx) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed");
    ggml_tensor * w = ggml_new_tensor(ctx, t.type, t.n_dims, t.ne);
    ggml_tensor * op = nullptr;
    switch (use) {
        case Use::Embed: op = ggml_get_rows(ctx, w, ggml_new_tensor_1d(ctx, GGML_TYPE_I32, 512)); break;
        case Use::MatMul: op = ggml_mul_mat(ctx, w, ggml_new_tensor_2d(ctx, GGML_TYPE_F32, w->ne[0], 512)); break;
        case Use::Norm: op = ggml_mul(ctx, ggml_new_tensor_2d(ctx, GGML_TYPE_F32, w->ne[0], 512), w); break;
    }
    w->buffer = ggml_backend_buft_alloc_buffer(buft, 0);
    const bool ok = w->buffer != nullptr && ggml_backend_dev_supports_op(dev, op);
    if (w->buffer) ggml_backend_buffer_free(w->buffer);
    w->buffer = nullptr;
    ggml_free(ctx);
    return ok;
}

// The CPU backend's supports_op answers "yes" for types it would then abort on (an I32 matrix, say),
// so the types are checked against the CPU kernels themselves: a matrix needs a dot product (and a
// way to convert activations to its partner type), an embedding table a row conversion to f32.
bool cpu_kernels_exist(ggml_type type, Use use) {
    switch (use) {
        case Use::Norm: return type == GGML_TYPE_F32;
        case Use::Embed:
            return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 ||
                   (ggml_is_quantized(type) && ggml_get_type_traits(type)->to_float != nullptr);
        case Use::MatMul: {
            const ggml_type_traits_cpu * t = ggml_get_type_traits_cpu(type);
            if (t == nullptr || t->vec_dot == nullptr) return false;
            return t->vec_dot_type == GGML_TYPE_F32 || ggml_get_type_traits_cpu(t->vec_dot_type)->from_float != nullptr;
        }
    }
    return false;
}

} // namespace

DecoderModel::~DecoderModel() {
    for (auto * b : buffers_) ggml_backend_buffer_free(b);
    for (auto * c : contexts_) ggml_free(c);
}

std::unique_ptr<DecoderModel> DecoderModel::load(const std::string & path, const lr_model_params & params) {
    std::unique_ptr<DecoderModel> m(new DecoderModel());
    m->gguf = GgufFile::open(path);
    m->hp = LlamaHParams::from_gguf(*m->gguf);
    m->tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_gguf(*m->gguf));
    if (m->tokenizer->n_vocab() != m->hp.n_vocab) {
        fail(LR_ERR_BAD_GGUF, format("%s: the vocabulary has %d tokens but token_embd.weight has %d rows",
            path.c_str(), m->tokenizer->n_vocab(), m->hp.n_vocab));
    }
    m->name = m->gguf->get_string("general.name", "");
    init_backends(m->backends, params.backend, params.n_threads);
    m->place_weights(params.use_mmap != 0);
    return m;
}

void DecoderModel::place_weights(bool use_mmap) {
    const LlamaHParams & h = hp;
    const int64_t E = h.n_embd, V = h.n_vocab, F = h.n_ff, KV = h.n_embd_kv();

    std::vector<Decl> decls;
    decls.push_back({"token_embd.weight", {E, V}, Use::Embed, &tok_embd});
    decls.push_back({"output_norm.weight", {E}, Use::Norm, &output_norm});
    const bool tied = gguf->tensor("output.weight") == nullptr;
    if (!tied) decls.push_back({"output.weight", {E, V}, Use::MatMul, &output});
    layers.resize((size_t) h.n_layer);
    for (int il = 0; il < h.n_layer; il++) {
        LayerWeights & L = layers[(size_t) il];
        const std::string p = "blk." + std::to_string(il) + ".";
        decls.push_back({p + "attn_norm.weight",   {E},     Use::Norm,   &L.attn_norm});
        decls.push_back({p + "attn_q.weight",      {E, E},  Use::MatMul, &L.wq});
        decls.push_back({p + "attn_k.weight",      {E, KV}, Use::MatMul, &L.wk});
        decls.push_back({p + "attn_v.weight",      {E, KV}, Use::MatMul, &L.wv});
        decls.push_back({p + "attn_output.weight", {E, E},  Use::MatMul, &L.wo});
        decls.push_back({p + "ffn_norm.weight",    {E},     Use::Norm,   &L.ffn_norm});
        decls.push_back({p + "ffn_gate.weight",    {E, F},  Use::MatMul, &L.ffn_gate});
        decls.push_back({p + "ffn_up.weight",      {E, F},  Use::MatMul, &L.ffn_up});
        decls.push_back({p + "ffn_down.weight",    {F, E},  Use::MatMul, &L.ffn_down});
    }

    // candidate buffer types per use, best first
    ggml_backend_dev_t cpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!cpu_dev) fail(LR_ERR_BACKEND, "no CPU device");
    ggml_backend_buffer_type_t cpu_buft = ggml_backend_dev_buffer_type(cpu_dev);
    std::vector<std::pair<ggml_backend_dev_t, ggml_backend_buffer_type_t>> matmul_bufts, norm_bufts, embed_bufts;
    if (backends.gpu_dev) {
        auto gpu_buft = ggml_backend_dev_buffer_type(backends.gpu_dev);
        matmul_bufts.push_back({backends.gpu_dev, gpu_buft});
        norm_bufts.push_back({backends.gpu_dev, gpu_buft});
    } else {
        // the CPU backend's repacking buffer types (faster layouts for some quant types), as llama.cpp does
        ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(cpu_dev);
        auto get_extra = (ggml_backend_dev_get_extra_bufts_t)
            ggml_backend_reg_get_proc_address(cpu_reg, "ggml_backend_dev_get_extra_bufts");
        if (get_extra) {
            for (ggml_backend_buffer_type_t * b = get_extra(cpu_dev); b && *b; ++b) matmul_bufts.push_back({cpu_dev, *b});
        }
    }
    matmul_bufts.push_back({cpu_dev, cpu_buft});
    norm_bufts.push_back({cpu_dev, cpu_buft});
    embed_bufts.push_back({cpu_dev, cpu_buft});

    // check every tensor, choose its buffer type
    struct Placed { const Decl * decl; const GgufTensor * src; ggml_backend_buffer_type_t buft; };
    std::vector<Placed> placed;
    std::map<ggml_type, int64_t> type_bytes;
    for (const Decl & d : decls) {
        const GgufTensor & t = gguf->require_tensor(d.name, d.shape);
        if (d.use == Use::Norm && t.type != GGML_TYPE_F32) {
            fail(LR_ERR_BAD_GGUF, format("%s: norm weight '%s' must be f32, found %s", gguf->path().c_str(), d.name.c_str(), ggml_type_name(t.type)));
        }
        // the CPU computes embeddings always, and everything else when there is no GPU
        if ((d.use == Use::Embed || !backends.gpu) && !cpu_kernels_exist(t.type, d.use)) {
            fail(LR_ERR_UNSUPPORTED, format("%s: tensor '%s' has type %s, which the CPU backend cannot compute with",
                gguf->path().c_str(), d.name.c_str(), ggml_type_name(t.type)));
        }
        const auto & cands = d.use == Use::Embed ? embed_bufts : d.use == Use::Norm ? norm_bufts : matmul_bufts;
        ggml_backend_buffer_type_t chosen = nullptr;
        for (auto & c : cands) {
            if (buft_supports(c.first, c.second, t, d.use)) { chosen = c.second; break; }
        }
        if (!chosen) {
            fail(LR_ERR_UNSUPPORTED, format("%s: tensor '%s' of type %s cannot be used by the %s backend",
                gguf->path().c_str(), d.name.c_str(), ggml_type_name(t.type), backends.name().c_str()));
        }
        placed.push_back({&d, &t, chosen});
        n_params += t.ne[0] * t.ne[1] * t.ne[2] * t.ne[3];
        weight_bytes += (int64_t) t.nbytes;
        if (d.use == Use::MatMul) type_bytes[t.type] += (int64_t) t.nbytes;
    }
    int64_t best = -1;
    for (auto & tb : type_bytes) if (tb.second > best) { best = tb.second; weight_type = tb.first; }

    // one metadata context + one buffer per buffer type
    std::map<ggml_backend_buffer_type_t, std::vector<std::pair<const Placed *, ggml_tensor *>>> groups;
    for (const Placed & p : placed) groups[p.buft];
    for (auto & g : groups) {
        size_t n = 0;
        for (const Placed & p : placed) n += p.buft == g.first;
        ggml_init_params ip = { ggml_tensor_overhead() * (n + 1), nullptr, true };
        ggml_context * ctx = ggml_init(ip);
        if (!ctx) fail(LR_ERR_OUT_OF_MEMORY, "ggml_init failed");
        contexts_.push_back(ctx);
        for (const Placed & p : placed) {
            if (p.buft != g.first) continue;
            ggml_tensor * t = ggml_new_tensor(ctx, p.src->type, p.src->n_dims, p.src->ne);
            ggml_set_name(t, p.decl->name.c_str());
            *p.decl->slot = t;
            g.second.push_back({&p, t});
        }
        ggml_backend_buffer_t buf = nullptr;
        if (g.first == cpu_buft && use_mmap) {
            // weights stay in the mapping: no copy
            buf = ggml_backend_cpu_buffer_from_ptr(const_cast<uint8_t *>(gguf->base()), gguf->file_size());
            if (!buf) fail(LR_ERR_OUT_OF_MEMORY, "could not wrap the mapped file in a CPU buffer");
            buffers_.push_back(buf);
            for (auto & pt : g.second) {
                if (ggml_backend_tensor_alloc(buf, pt.second, const_cast<uint8_t *>(pt.first->src->data)) != GGML_STATUS_SUCCESS) {
                    fail(LR_ERR_INTERNAL, "could not place a mapped tensor");
                }
            }
        } else {
            buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, g.first);
            if (!buf) {
                fail(LR_ERR_OUT_OF_MEMORY, format("could not allocate %s memory for the weights", ggml_backend_buft_name(g.first)));
            }
            buffers_.push_back(buf);
            for (auto & pt : g.second) ggml_backend_tensor_set(pt.second, pt.first->src->data, 0, pt.first->src->nbytes);
        }
        ggml_backend_buffer_set_usage(buf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    }
    if (tied) output = tok_embd;
    if (tied && backends.gpu) {
        fail(LR_ERR_UNSUPPORTED, "models with tied output embeddings are not supported on the GPU backend yet");
    }
}

} // namespace lr
