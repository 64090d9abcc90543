#include "decoder_model.h"
#include "status.h"

#include <cstdlib>

namespace lr {

DecoderModel::~DecoderModel() = default;

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
    using U = WeightUse;

    std::vector<WeightDecl> decls;
    decls.push_back({"token_embd.weight", {E, V}, U::Embed, &tok_embd});
    decls.push_back({"output_norm.weight", {E}, U::Vector, &output_norm});
    const bool tied = gguf->tensor("output.weight") == nullptr;
    if (tied && backends.gpu) {
        fail(LR_ERR_UNSUPPORTED, "models with tied output embeddings are not supported on the GPU backend yet");
    }
    if (!tied) decls.push_back({"output.weight", {E, V}, U::MatMul, &output});
    layers.resize((size_t) h.n_layer);
    for (int il = 0; il < h.n_layer; il++) {
        LayerWeights & L = layers[(size_t) il];
        const std::string p = "blk." + std::to_string(il) + ".";
        decls.push_back({p + "attn_norm.weight",   {E},     U::Vector, &L.attn_norm});
        decls.push_back({p + "attn_q.weight",      {E, E},  U::MatMul, &L.wq});
        decls.push_back({p + "attn_k.weight",      {E, KV}, U::MatMul, &L.wk});
        decls.push_back({p + "attn_v.weight",      {E, KV}, U::MatMul, &L.wv});
        decls.push_back({p + "attn_output.weight", {E, E},  U::MatMul, &L.wo});
        decls.push_back({p + "ffn_norm.weight",    {E},     U::Vector, &L.ffn_norm});
        decls.push_back({p + "ffn_gate.weight",    {E, F},  U::MatMul, &L.ffn_gate});
        decls.push_back({p + "ffn_up.weight",      {E, F},  U::MatMul, &L.ffn_up});
        decls.push_back({p + "ffn_down.weight",    {F, E},  U::MatMul, &L.ffn_down});
    }
    // our kernels or ggml's (LLAVA_RAD_CPU_KERNELS, vnni_matmul.h)
    const bool vnni = !backends.gpu && vnni_kernels_enabled();
    weights_.place(*gguf, backends, decls, use_mmap, vnni);
    if (tied) output = tok_embd;
    n_params = weights_.n_params;
    weight_bytes = weights_.bytes;
    n_vnni = weights_.n_vnni();
    weight_type = weights_.main_type;
}

} // namespace lr
