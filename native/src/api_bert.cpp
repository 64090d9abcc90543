// C API: the BERT encoder (CheXbert's labeler).
#include "api_guard.h"
#include "bert_batch.h"
#include "bert_encoder.h"
#include "bert_model.h"

#include <cstring>
#include <memory>

struct lr_bert {
    std::unique_ptr<lr::BertModel> model;
    std::unique_ptr<lr::BertEncoder> encoder;
};

extern "C" {

lr_status lr_bert_load(const char * path, const lr_model_params * params, lr_bert ** out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(path != nullptr && out != nullptr, "lr_bert_load: path and out_bert must not be NULL");
        LR_REQUIRE_ARG(*path != 0, "lr_bert_load: the path is empty");
        *out = nullptr;
        const lr_model_params p = params ? *params : lr_model_default_params();
        LR_REQUIRE_ARG(p.n_threads <= 1024, lr::format("n_threads must be <= 1024, got %d", p.n_threads));
        auto b = std::make_unique<lr_bert>();
        b->model = lr::BertModel::load(path, p);
        b->encoder = std::make_unique<lr::BertEncoder>(*b->model, p.n_threads);
        *out = b.release();
    });
}

void lr_bert_free(lr_bert * bert) { delete bert; }

lr_status lr_bert_get_info(const lr_bert * bert, lr_bert_info * out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(bert != nullptr && out != nullptr, "lr_bert_get_info: NULL argument");
        const lr::BertModel & m = *bert->model;
        std::memset(out, 0, sizeof(*out));
        std::strncpy(out->name, m.name.c_str(), sizeof(out->name) - 1);
        std::strncpy(out->backend, m.backends.name().c_str(), sizeof(out->backend) - 1);
        out->n_vocab = m.hp.n_vocab;
        out->n_ctx = m.hp.n_ctx;
        out->n_embd = m.hp.n_embd;
        out->n_block = m.hp.n_block;
        out->n_head = m.hp.n_head;
        out->n_heads_cls = (int32_t) m.hp.head_classes.size();
        out->n_logits = m.hp.n_logits();
        out->n_params = m.n_params;
    });
}

lr_status lr_bert_encode(lr_bert * bert, const int32_t * ids, int32_t n_ids, float * cls, size_t cls_capacity,
                         float * logits, size_t logits_capacity) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(bert != nullptr && ids != nullptr && cls != nullptr, "lr_bert_encode: NULL argument");
        const lr::BertHParams & hp = bert->model->hp;
        LR_REQUIRE_ARG(n_ids >= 1 && n_ids <= hp.n_ctx, lr::format("n_ids must be in [1, %d], got %d", hp.n_ctx, n_ids));
        for (int32_t i = 0; i < n_ids; i++) {
            LR_REQUIRE_ARG(ids[i] >= 0 && ids[i] < hp.n_vocab, lr::format("token id %d at %d is outside the vocabulary of %d", ids[i], i, hp.n_vocab));
        }
        if (cls_capacity < (size_t) hp.n_embd) {
            lr::fail(LR_ERR_BUFFER_TOO_SMALL, lr::format("lr_bert_encode: cls needs %d floats, capacity is %zu", hp.n_embd, cls_capacity));
        }
        const size_t n_logits = (size_t) hp.n_logits();
        if (n_logits > 0 && logits != nullptr && logits_capacity < n_logits) {
            lr::fail(LR_ERR_BUFFER_TOO_SMALL, lr::format("lr_bert_encode: logits needs %zu floats, capacity is %zu", n_logits, logits_capacity));
        }
        bert->encoder->encode(ids, n_ids, cls, logits);
    });
}

lr_status lr_bert_encode_batch(lr_bert * bert, const int32_t * ids, const int32_t * n_ids, int32_t n_seqs, float * cls,
                               size_t cls_capacity, float * logits, size_t logits_capacity) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(bert != nullptr && cls != nullptr, "lr_bert_encode_batch: NULL argument");
        const lr::BertHParams & hp = bert->model->hp;
        lr::check_bert_batch(hp, ids, n_ids, n_seqs, "lr_bert_encode_batch");
        const size_t n_cls = (size_t) n_seqs * hp.n_embd, n_logits = (size_t) n_seqs * hp.n_logits();
        if (cls_capacity < n_cls) {
            lr::fail(LR_ERR_BUFFER_TOO_SMALL, lr::format("lr_bert_encode_batch: cls needs %zu floats (%d x %d), capacity is %zu",
                                                         n_cls, n_seqs, hp.n_embd, cls_capacity));
        }
        if (n_logits > 0 && logits != nullptr && logits_capacity < n_logits) {
            lr::fail(LR_ERR_BUFFER_TOO_SMALL, lr::format("lr_bert_encode_batch: logits needs %zu floats (%d x %d), capacity is %zu",
                                                         n_logits, n_seqs, hp.n_logits(), logits_capacity));
        }
        bert->encoder->encode_batch(ids, n_ids, n_seqs, cls, logits);
    });
}

} // extern "C"
