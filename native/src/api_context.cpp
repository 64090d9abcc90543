// C API: contexts, batches and generation requests.
#include "api_guard.h"
#include "api_internal.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

namespace {

constexpr int32_t kDefaultCtx = 4096;
constexpr int32_t kDefaultBatch = 512;
constexpr int32_t kCtxPad = 256;      // KV size granularity, as llama.cpp
constexpr int32_t kMaxCtx = 1 << 20;
constexpr int32_t kMaxSeq = 256;

} // namespace

extern "C" {

lr_context_params lr_context_default_params(void) {
    lr_context_params p{};
    p.n_ctx = 0;
    p.n_batch = kDefaultBatch;
    p.n_seq_max = 1;
    p.kv_type = LR_KV_F16;
    p.n_threads = 0;
    p.flash_attn = 0;
    return p;
}

lr_status lr_context_create(lr_model * model, const lr_context_params * params, lr_context ** out_ctx) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(model != nullptr && out_ctx != nullptr, "lr_context_create: NULL argument");
        *out_ctx = nullptr;
        const lr_context_params p = params ? *params : lr_context_default_params();
        const lr::LlamaHParams & hp = model->decoder->hp;
        lr::DecoderContextParams dp;
        dp.n_ctx = p.n_ctx > 0 ? p.n_ctx : std::min(kDefaultCtx, hp.n_ctx_train);
        LR_REQUIRE_ARG(dp.n_ctx <= kMaxCtx, lr::format("context size must be <= %d, got %d", kMaxCtx, dp.n_ctx));
        dp.n_ctx = (dp.n_ctx + kCtxPad - 1) / kCtxPad * kCtxPad;
        dp.n_batch = p.n_batch > 0 ? p.n_batch : kDefaultBatch;
        LR_REQUIRE_ARG(dp.n_batch <= 8192, lr::format("batch size must be <= 8192, got %d", dp.n_batch));
        dp.n_batch = std::min(dp.n_batch, dp.n_ctx);
        dp.n_seq_max = p.n_seq_max > 0 ? p.n_seq_max : 1;
        LR_REQUIRE_ARG(dp.n_seq_max <= kMaxSeq, lr::format("n_seq_max must be <= %d, got %d", kMaxSeq, dp.n_seq_max));
        LR_REQUIRE_ARG(p.n_threads <= 1024, lr::format("n_threads must be <= 1024, got %d", p.n_threads));
        dp.n_threads = p.n_threads;
        switch (p.kv_type) {
            case LR_KV_F16:  dp.kv_type = GGML_TYPE_F16; break;
            case LR_KV_F32:  dp.kv_type = GGML_TYPE_F32; break;
            case LR_KV_Q8_0: dp.kv_type = GGML_TYPE_Q8_0; break;
            default: lr::fail(LR_ERR_INVALID_ARGUMENT, lr::format("unknown KV cache type %d", (int) p.kv_type));
        }
        // a quantized V cache cannot be stored transposed: it needs the flash attention path
        dp.flash_attn = p.flash_attn != 0 || dp.kv_type == GGML_TYPE_Q8_0;
        if (dp.kv_type == GGML_TYPE_Q8_0 && hp.head_dim() % ggml_blck_size(GGML_TYPE_Q8_0) != 0) {
            lr::fail(LR_ERR_UNSUPPORTED, "a q8_0 KV cache needs a head size that is a multiple of 32");
        }
        auto c = std::make_unique<lr_context>();
        c->model = model;
        c->decoder = std::make_unique<lr::DecoderContext>(*model->decoder, dp);
        c->scheduler = std::make_unique<lr::Scheduler>(*c->decoder);
        *out_ctx = c.release();
    });
}

void lr_context_free(lr_context * ctx) { delete ctx; }

lr_status lr_context_get_info(const lr_context * ctx, lr_context_info * out) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(ctx != nullptr && out != nullptr, "lr_context_get_info: NULL argument");
        const lr::DecoderContextParams & p = ctx->decoder->params();
        out->n_ctx = p.n_ctx;
        out->n_batch = p.n_batch;
        out->n_seq_max = p.n_seq_max;
        out->kv_type = p.kv_type == GGML_TYPE_Q8_0 ? LR_KV_Q8_0 : p.kv_type == GGML_TYPE_F32 ? LR_KV_F32 : LR_KV_F16;
        out->n_threads = ctx->decoder->n_threads();
        out->flash_attn = p.flash_attn ? 1 : 0;
        out->kv_bytes = (int64_t) ctx->decoder->kv().bytes();
    });
}

lr_status lr_decode(lr_context * ctx, const lr_batch * batch) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(ctx != nullptr && batch != nullptr, "lr_decode: NULL argument");
        LR_REQUIRE_ARG(batch->n_tokens > 0, lr::format("lr_decode: n_tokens must be positive, got %d", batch->n_tokens));
        LR_REQUIRE_ARG(batch->token && batch->pos && batch->seq_id, "lr_decode: token, pos and seq_id are required");
        const int32_t n_embd = ctx->model->decoder->hp.n_embd;
        std::vector<lr::BatchRow> rows((size_t) batch->n_tokens);
        size_t emb_row = 0;
        for (int32_t i = 0; i < batch->n_tokens; i++) {
            lr::BatchRow & r = rows[(size_t) i];
            r.token = batch->token[i];
            r.embd = nullptr;
            if (r.token == LR_TOKEN_EMBD) {
                LR_REQUIRE_ARG(batch->embd != nullptr, "lr_decode: an embedding row was given but embd is NULL");
                r.embd = batch->embd + (emb_row++) * (size_t) n_embd;
            }
            r.pos = batch->pos[i];
            r.seq = batch->seq_id[i];
            r.logits = batch->logits ? batch->logits[i] != 0 : i == batch->n_tokens - 1;
            LR_REQUIRE_ARG(r.seq < 0 || r.seq >= ctx->decoder->params().n_seq_max || !ctx->scheduler->owns_seq(r.seq),
                lr::format("lr_decode: sequence %d is in use by a running request", r.seq));
        }
        std::lock_guard<std::mutex> lk(ctx->scheduler->compute_mutex());
        ctx->decoder->decode(rows);
    });
}

const float * lr_get_logits(lr_context * ctx, int32_t i) {
    return ctx ? ctx->decoder->logits(i) : nullptr;
}

int32_t lr_seq_length(const lr_context * ctx, int32_t seq_id) {
    if (!ctx || seq_id < 0 || seq_id >= ctx->decoder->params().n_seq_max) return 0;
    return ctx->decoder->kv().seq_length(seq_id);
}

lr_status lr_seq_truncate(lr_context * ctx, int32_t seq_id, int32_t p0) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(ctx != nullptr, "lr_seq_truncate: ctx is NULL");
        const int32_t n = ctx->decoder->params().n_seq_max;
        LR_REQUIRE_ARG(seq_id >= 0 && seq_id < n, lr::format("sequence %d is outside [0, %d)", seq_id, n));
        LR_REQUIRE_ARG(p0 >= 0, lr::format("p0 must be >= 0, got %d", p0));
        LR_REQUIRE_ARG(!ctx->scheduler->owns_seq(seq_id), lr::format("sequence %d is in use by a running request", seq_id));
        std::lock_guard<std::mutex> lk(ctx->scheduler->compute_mutex());
        ctx->decoder->kv().truncate(seq_id, p0);
    });
}

lr_gen_params lr_gen_default_params(void) {
    lr_gen_params p{};
    p.max_tokens = 256;
    p.sampling.temperature = 0.0f;
    p.sampling.top_k = 0;
    p.sampling.top_p = 1.0f;
    p.sampling.seed = 0;
    p.ignore_eos = 0;
    p.keep_logits = 0;
    return p;
}

lr_status lr_submit(lr_context * ctx, const lr_prompt_part * parts, size_t n_parts, const lr_gen_params * params,
                    lr_on_token on_token, lr_on_done on_done, void * user, lr_request_id * out_id) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(ctx != nullptr && params != nullptr, "lr_submit: NULL argument");
        const lr_request_id id = ctx->scheduler->submit(parts, n_parts, *params, on_token, on_done, user);
        if (out_id) *out_id = id;
    });
}

lr_status lr_cancel(lr_context * ctx, lr_request_id id) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(ctx != nullptr, "lr_cancel: ctx is NULL");
        ctx->scheduler->cancel(id);
    });
}

lr_status lr_debug_fault(lr_context * ctx, lr_fault fault) {
    return lr::guard_exceptions([&] {
        LR_REQUIRE_ARG(ctx != nullptr, "lr_debug_fault: ctx is NULL");
        LR_REQUIRE_ARG(fault >= LR_FAULT_NONE && fault <= LR_FAULT_ABORT, lr::format("lr_debug_fault: unknown fault %d", (int) fault));
        ctx->scheduler->inject_fault(fault);
    });
}

namespace {

struct SyncGeneration {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::vector<int32_t> tokens;
    lr_gen_result result{};
    std::string error;
};

} // namespace

lr_status lr_generate(lr_context * ctx, const lr_prompt_part * parts, size_t n_parts, const lr_gen_params * params,
                      int32_t * tokens, size_t capacity, lr_gen_result * out_result) {
    SyncGeneration g;
    const lr_status st = lr_submit(ctx, parts, n_parts, params,
        [](void * user, int32_t token, const float *, int32_t) {
            auto * s = static_cast<SyncGeneration *>(user);
            s->tokens.push_back(token);
        },
        [](void * user, const lr_gen_result * res) {
            auto * s = static_cast<SyncGeneration *>(user);
            std::lock_guard<std::mutex> lk(s->mu);
            s->result = *res;
            s->error = res->error ? res->error : "";
            s->done = true;
            s->cv.notify_all();
        },
        &g, nullptr);
    if (st != LR_OK) return st;
    std::unique_lock<std::mutex> lk(g.mu);
    g.cv.wait(lk, [&] { return g.done; });
    const size_t n = std::min(capacity, g.tokens.size());
    if (tokens && n) std::copy(g.tokens.begin(), g.tokens.begin() + (ptrdiff_t) n, tokens);
    if (out_result) {
        *out_result = g.result;
        out_result->error = nullptr;
    }
    if (g.result.status != LR_OK) lr::set_last_error(g.error);
    return g.result.status;
}

} // extern "C"
