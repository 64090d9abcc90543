// C API: RadGraph (the BERT encoder's per-token states and DyGIE's span scorers).
#include "api_guard.h"
#include "bert_batch.h"
#include "bert_encoder.h"
#include "bert_model.h"
#include "span_model.h"

#include <cstring>
#include <memory>

struct lr_radgraph {
    std::unique_ptr<lr::BertModel> bert;
    std::unique_ptr<lr::BertEncoder> encoder;
    lr::SpanModel spans;
};

namespace {

constexpr int32_t kMaxPairSpans = 4096;

// words: n_words vectors; spans: n_spans (start, end) pairs inside them, at most n_width words wide
void check_spans(const lr_radgraph & rg, const float * words, int32_t n_words, const int32_t * spans, int32_t n_spans) {
    LR_REQUIRE_ARG(words != nullptr && spans != nullptr, "radgraph: words and spans must not be NULL");
    LR_REQUIRE_ARG(n_words >= 1 && n_words <= (1 << 20), lr::format("n_words must be in [1, %d], got %d", 1 << 20, n_words));
    LR_REQUIRE_ARG(n_spans >= 1 && n_spans <= (1 << 24), lr::format("n_spans must be in [1, %d], got %d", 1 << 24, n_spans));
    for (int32_t k = 0; k < n_spans; k++) {
        const int32_t s = spans[2 * k], e = spans[2 * k + 1];
        LR_REQUIRE_ARG(s >= 0 && s <= e && e < n_words,
                       lr::format("span %d is (%d, %d): expected 0 <= start <= end < %d words", k, s, e, n_words));
        LR_REQUIRE_ARG(e - s < rg.spans.n_width,
                       lr::format("span %d is %d words wide; the model scores spans of at most %d", k, e - s + 1, rg.spans.n_width));
    }
}

void need(size_t capacity, size_t n, const char * what) {
    if (capacity < n) lr::fail(LR_ERR_BUFFER_TOO_SMALL, lr::format("radgraph: %s needs %zu floats, capacity is %zu", what, n, capacity));
}

} // namespace

extern "C" {

lr_status lr_radgraph_load(const char * path, const lr_model_params * params, lr_radgraph ** out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(path != nullptr && out != nullptr, "lr_radgraph_load: path and out_radgraph must not be NULL");
        LR_REQUIRE_ARG(*path != 0, "lr_radgraph_load: the path is empty");
        *out = nullptr;
        const lr_model_params p = params ? *params : lr_model_default_params();
        LR_REQUIRE_ARG(p.n_threads <= 1024, lr::format("n_threads must be <= 1024, got %d", p.n_threads));
        auto rg = std::make_unique<lr_radgraph>();
        rg->bert = lr::BertModel::load(path, p);
        if (!rg->bert->hp.head_classes.empty()) lr::fail(LR_ERR_BAD_GGUF, lr::format("%s: a CheXbert GGUF, not a RadGraph one", path));
        rg->spans = lr::SpanModel::load(*rg->bert->gguf, rg->bert->hp.n_embd);
        rg->encoder = std::make_unique<lr::BertEncoder>(*rg->bert, p.n_threads);
        *out = rg.release();
    });
}

void lr_radgraph_free(lr_radgraph * radgraph) { delete radgraph; }

lr_status lr_radgraph_get_info(const lr_radgraph * rg, lr_radgraph_info * out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(rg != nullptr && out != nullptr, "lr_radgraph_get_info: NULL argument");
        const lr::BertModel & m = *rg->bert;
        std::memset(out, 0, sizeof(*out));
        std::strncpy(out->name, m.name.c_str(), sizeof(out->name) - 1);
        std::strncpy(out->backend, m.backends.name().c_str(), sizeof(out->backend) - 1);
        out->n_vocab = m.hp.n_vocab;
        out->n_ctx = m.hp.n_ctx;
        out->n_embd = m.hp.n_embd;
        out->n_width_embd = rg->spans.n_width;
        out->span_dim = rg->spans.span_dim;
        out->n_ner_labels = rg->spans.n_ner;
        out->n_relation_labels = rg->spans.n_relation;
        out->n_params = m.n_params + rg->spans.n_params;
    });
}

lr_status lr_radgraph_encode(lr_radgraph * rg, const int32_t * ids, int32_t n_ids, float * hidden, size_t capacity) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(rg != nullptr && ids != nullptr && hidden != nullptr, "lr_radgraph_encode: NULL argument");
        const lr::BertHParams & hp = rg->bert->hp;
        LR_REQUIRE_ARG(n_ids >= 1 && n_ids <= hp.n_ctx, lr::format("n_ids must be in [1, %d], got %d", hp.n_ctx, n_ids));
        for (int32_t i = 0; i < n_ids; i++) {
            LR_REQUIRE_ARG(ids[i] >= 0 && ids[i] < hp.n_vocab, lr::format("token id %d at %d is outside the vocabulary of %d", ids[i], i, hp.n_vocab));
        }
        need(capacity, (size_t) n_ids * hp.n_embd, "hidden");
        std::vector<float> cls((size_t) hp.n_embd);
        rg->encoder->encode(ids, n_ids, cls.data(), nullptr, hidden);
    });
}

lr_status lr_radgraph_encode_batch(lr_radgraph * rg, const int32_t * ids, const int32_t * n_ids, int32_t n_seqs,
                                   float * hidden, size_t capacity) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(rg != nullptr && hidden != nullptr, "lr_radgraph_encode_batch: NULL argument");
        const lr::BertHParams & hp = rg->bert->hp;
        const lr::BertBatchShape shape = lr::check_bert_batch(hp, ids, n_ids, n_seqs, "lr_radgraph_encode_batch");
        need(capacity, shape.n_tokens * hp.n_embd, "hidden");
        std::vector<float> cls((size_t) n_seqs * hp.n_embd);
        rg->encoder->encode_batch(ids, n_ids, n_seqs, cls.data(), nullptr, hidden);
    });
}

lr_status lr_radgraph_score_spans(lr_radgraph * rg, const float * words, int32_t n_words, const int32_t * spans, int32_t n_spans,
                                  float * ner, size_t ner_capacity, float * mention, size_t mention_capacity) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(rg != nullptr && ner != nullptr && mention != nullptr, "lr_radgraph_score_spans: NULL argument");
        check_spans(*rg, words, n_words, spans, n_spans);
        const lr::SpanModel & m = rg->spans;
        need(ner_capacity, (size_t) n_spans * m.n_ner, "ner");
        need(mention_capacity, (size_t) n_spans, "mention");
        lr::parallel_for(n_spans, rg->bert->backends.n_threads, [&](int32_t k0, int32_t k1) {
            std::vector<double> span((size_t) m.span_dim);
            for (int32_t k = k0; k < k1; k++) {
                m.represent(words, spans[2 * k], spans[2 * k + 1], span.data());
                m.score_span(span.data(), ner + (size_t) k * m.n_ner, mention + k);
            }
        });
    });
}

lr_status lr_radgraph_score_pairs(lr_radgraph * rg, const float * words, int32_t n_words, const int32_t * spans, int32_t n_spans,
                                  const float * mention, float * relation, size_t relation_capacity) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(rg != nullptr && mention != nullptr && relation != nullptr, "lr_radgraph_score_pairs: NULL argument");
        LR_REQUIRE_ARG(n_spans <= kMaxPairSpans, lr::format("n_spans must be at most %d for pairs, got %d", kMaxPairSpans, n_spans));
        check_spans(*rg, words, n_words, spans, n_spans);
        const lr::SpanModel & m = rg->spans;
        need(relation_capacity, (size_t) n_spans * n_spans * m.n_relation, "relation");
        std::vector<double> reps((size_t) n_spans * m.span_dim);
        for (int32_t k = 0; k < n_spans; k++) m.represent(words, spans[2 * k], spans[2 * k + 1], reps.data() + (size_t) k * m.span_dim);
        m.score_pairs(reps, n_spans, mention, relation, rg->bert->backends.n_threads);
    });
}

} // extern "C"
