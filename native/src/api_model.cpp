// C API: models and the tokenizer.
#include "api_guard.h"
#include "api_internal.h"

#include <cstring>

namespace {

lr_status output_bytes(const std::string & s, char * out, size_t capacity, size_t * n_bytes) {
    if (n_bytes) *n_bytes = s.size();
    if (s.size() > capacity || (s.size() > 0 && out == nullptr)) {
        lr::set_last_error(lr::format("output needs %zu bytes, capacity is %zu", s.size(), capacity));
        return LR_ERR_BUFFER_TOO_SMALL;
    }
    if (!s.empty()) std::memcpy(out, s.data(), s.size());
    return LR_OK;
}

} // namespace

extern "C" {

lr_model_params lr_model_default_params(void) {
    lr_model_params p{};
    p.backend = LR_BACKEND_AUTO;
    p.n_threads = 0;
    p.use_mmap = 0;
    return p;
}

lr_status lr_model_load(const char * path, const lr_model_params * params, lr_model ** out_model) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(path != nullptr && out_model != nullptr, "lr_model_load: path and out_model must not be NULL");
        LR_REQUIRE_ARG(*path != '\0', "lr_model_load: the path is empty");
        *out_model = nullptr;
        const lr_model_params p = params ? *params : lr_model_default_params();
        LR_REQUIRE_ARG(p.n_threads <= 1024, lr::format("n_threads must be <= 1024, got %d", p.n_threads));
        auto m = std::make_unique<lr_model>();
        m->decoder = lr::DecoderModel::load(path, p);
        *out_model = m.release();
    });
}

void lr_model_free(lr_model * model) { delete model; }

lr_status lr_model_get_info(const lr_model * model, lr_model_info * out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(model != nullptr && out != nullptr, "lr_model_get_info: NULL argument");
        const lr::DecoderModel & m = *model->decoder;
        std::memset(out, 0, sizeof(*out));
        lr::copy_str(out->architecture, sizeof(out->architecture), "llama");
        lr::copy_str(out->name, sizeof(out->name), m.name);
        lr::copy_str(out->backend, sizeof(out->backend), m.backends.name());
        out->n_vocab = m.hp.n_vocab;
        out->n_ctx_train = m.hp.n_ctx_train;
        out->n_embd = m.hp.n_embd;
        out->n_layer = m.hp.n_layer;
        out->n_head = m.hp.n_head;
        out->n_head_kv = m.hp.n_head_kv;
        out->n_ff = m.hp.n_ff;
        out->n_rot = m.hp.n_rot;
        out->rms_norm_eps = m.hp.rms_eps;
        out->rope_freq_base = m.hp.rope_freq_base;
        out->bos_token = m.tokenizer->bos();
        out->eos_token = m.tokenizer->eos();
        out->add_bos = m.tokenizer->add_bos() ? 1 : 0;
        out->weight_type = (int32_t) m.weight_type;
        out->n_params = m.n_params;
        out->weight_bytes = m.weight_bytes;
        out->n_vnni = m.n_vnni;
    });
}

lr_status lr_tokenize(const lr_model * model, const char * text, size_t text_len, int32_t add_bos,
                      int32_t * tokens, size_t capacity, size_t * n_tokens) {
    lr_status st = LR_OK;
    const lr_status g = lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(model != nullptr, "lr_tokenize: model is NULL");
        LR_REQUIRE_ARG(text != nullptr || text_len == 0, "lr_tokenize: text is NULL");
        const std::vector<int32_t> ids = model->decoder->tokenizer->tokenize(std::string(text ? text : "", text_len), add_bos != 0);
        if (n_tokens) *n_tokens = ids.size();
        if (ids.size() > capacity || (!ids.empty() && tokens == nullptr)) {
            lr::set_last_error(lr::format("lr_tokenize: %zu tokens do not fit a buffer of %zu", ids.size(), capacity));
            st = LR_ERR_BUFFER_TOO_SMALL;
            return;
        }
        if (!ids.empty()) std::memcpy(tokens, ids.data(), ids.size() * sizeof(int32_t));
    });
    return g != LR_OK ? g : st;
}

lr_status lr_detokenize(const lr_model * model, const int32_t * tokens, size_t n, int32_t flags,
                        char * text, size_t capacity, size_t * n_bytes) {
    lr_status st = LR_OK;
    const lr_status g = lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(model != nullptr, "lr_detokenize: model is NULL");
        LR_REQUIRE_ARG(tokens != nullptr || n == 0, "lr_detokenize: tokens is NULL");
        const int32_t n_vocab = model->decoder->tokenizer->n_vocab();
        std::vector<int32_t> ids(tokens, tokens + n);
        for (size_t i = 0; i < n; i++) {
            LR_REQUIRE_ARG(ids[i] >= 0 && ids[i] < n_vocab, lr::format("token id %d at index %zu is outside [0, %d)", ids[i], i, n_vocab));
        }
        const std::string s = model->decoder->tokenizer->detokenize(ids, (flags & LR_DETOK_SKIP_SPECIAL) != 0,
                                                                   (flags & LR_DETOK_REMOVE_LEADING_SPACE) != 0);
        st = output_bytes(s, text, capacity, n_bytes);
    });
    return g != LR_OK ? g : st;
}

lr_status lr_token_piece(const lr_model * model, int32_t token, char * piece, size_t capacity, size_t * n_bytes) {
    lr_status st = LR_OK;
    const lr_status g = lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(model != nullptr, "lr_token_piece: model is NULL");
        const int32_t n_vocab = model->decoder->tokenizer->n_vocab();
        LR_REQUIRE_ARG(token >= 0 && token < n_vocab, lr::format("token id %d is outside [0, %d)", token, n_vocab));
        st = output_bytes(model->decoder->tokenizer->piece(token, false), piece, capacity, n_bytes);
    });
    return g != LR_OK ? g : st;
}

} // extern "C"
