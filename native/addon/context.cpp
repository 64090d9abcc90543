// Context: low-level decode (async) + logits/seqLength/seqTruncate (sync), and generation requests
// (submit/cancel) whose callbacks arrive on the engine's scheduler thread and are forwarded to JS with a
// thread-safe function per request.
#include "addon.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

namespace lra {

// ---- requests ------------------------------------------------------------------------------------------------

struct Event {
    bool               done = false;
    int32_t            token = -1;
    std::vector<float> logits;     // token events with keep_logits
    lr_gen_result      result{};   // done events (result.error points into error_text)
    std::string        error_text;
    bool               collected = false;  // done events of a collecting request: its tokens below
    std::vector<int32_t> generated;
};

struct RequestState;
struct RequestHolder { std::shared_ptr<RequestState> state; };
static void call_js(Napi::Env env, Napi::Function, RequestHolder * holder, Event * ev);
using RequestTsfn = Napi::TypedThreadSafeFunction<RequestHolder, Event, call_js>;

struct RequestState {
    std::shared_ptr<ContextCore>      ctx;      // strong: the context outlives its requests
    std::vector<std::vector<int32_t>> tokens;   // prompt parts kept alive until on_done
    std::vector<std::vector<float>>   embd;
    std::vector<lr_prompt_part>       parts;
    Napi::FunctionReference           on_token;
    Napi::FunctionReference           on_done;
    RequestTsfn                       tsfn;
    std::atomic<bool>                 done{false};
    bool                              keep_logits = false;
    // no JS callback per token (no onToken, no logits): the tokens are collected here on the scheduler
    // thread and handed over with the done event, so JS is not woken once per token while the next one computes
    bool                              collect = false;
    std::vector<int32_t>              generated;
    int32_t                           n_vocab = 0;
};

// Completes a request exactly once (from the scheduler thread, or from a dispose that found the engine
// did not complete it): queues the done event and releases the thread-safe function.
static void finish(const std::shared_ptr<RequestState> & st, const lr_gen_result & r, bool from_engine = false) {
    if (st->done.exchange(true)) return;
    {
        std::lock_guard<std::mutex> lock(st->ctx->req_mu);
        auto & v = st->ctx->requests;
        for (auto it = v.begin(); it != v.end(); ++it) {
            if (it->get() == st.get()) { v.erase(it); break; }
        }
    }
    auto * ev = new Event();
    ev->done = true;
    ev->result = r;
    ev->error_text = r.error ? r.error : "";
    ev->result.error = nullptr;
    // the scheduler thread wrote `generated`; only its own on_done may take it
    if (st->collect && from_engine) {
        ev->collected = true;
        ev->generated = std::move(st->generated);
    }
    if (st->tsfn.NonBlockingCall(ev) != napi_ok) delete ev;
    st->tsfn.Release();
}

static void on_token_cb(void * user, int32_t token, const float * logits, int32_t n_vocab) {
    auto * st = static_cast<RequestState *>(user);
    if (st->done.load()) return;
    if (st->collect) {
        st->generated.push_back(token);
        return;
    }
    auto * ev = new Event();
    ev->token = token;
    if (st->keep_logits && logits && n_vocab > 0) ev->logits.assign(logits, logits + n_vocab);
    if (st->tsfn.NonBlockingCall(ev) != napi_ok) delete ev;
}

static void on_done_cb(void * user, const lr_gen_result * result) {
    auto * st = static_cast<RequestState *>(user);
    // the holder owned by the thread-safe function keeps `st` alive until its finalizer
    std::shared_ptr<RequestState> self;
    {
        std::lock_guard<std::mutex> lock(st->ctx->req_mu);
        for (auto & r : st->ctx->requests) {
            if (r.get() == st) { self = r; break; }
        }
    }
    lr_gen_result r{};
    if (result) r = *result;
    else { r.status = LR_ERR_INTERNAL; r.stop_reason = LR_STOP_ERROR; r.error = "the engine gave no result"; }
    if (self) finish(self, r, true);
    // else: already completed (dispose path)
}

static Napi::Object result_object(Napi::Env env, const lr_gen_result & r, const std::string & error, const Event & ev) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("status", Napi::String::New(env, lr_status_name(r.status)));
    o.Set("stopReason", (int32_t) r.stop_reason);
    o.Set("nPrompt", r.n_prompt);
    o.Set("nGenerated", r.n_generated);
    o.Set("queueMs", r.queue_ms);
    o.Set("promptMs", r.prompt_ms);
    o.Set("decodeMs", r.decode_ms);
    o.Set("error", Napi::String::New(env, error));
    if (ev.collected) {
        Napi::Int32Array t = Napi::Int32Array::New(env, ev.generated.size());
        if (!ev.generated.empty()) std::memcpy(t.Data(), ev.generated.data(), ev.generated.size() * sizeof(int32_t));
        o.Set("tokens", t);
    }
    return o;
}

static void call_js(Napi::Env env, Napi::Function, RequestHolder * holder, Event * ev) {
    std::unique_ptr<Event> owned(ev);
    if (env == nullptr || holder == nullptr || ev == nullptr) return; // tearing down
    RequestState & st = *holder->state;
    try {
        Napi::HandleScope scope(env);
        if (ev->done) {
            if (!st.on_done.IsEmpty()) {
                st.on_done.Call({result_object(env, ev->result, ev->error_text, *ev)});
            }
            st.on_token.Reset();
            st.on_done.Reset();
        } else if (!st.on_token.IsEmpty()) {
            Napi::Value logits = env.Undefined();
            if (!ev->logits.empty()) {
                Napi::Float32Array a = Napi::Float32Array::New(env, ev->logits.size());
                std::memcpy(a.Data(), ev->logits.data(), ev->logits.size() * sizeof(float));
                logits = a;
            }
            st.on_token.Call({Napi::Number::New(env, ev->token), logits});
        }
    } catch (const Napi::Error & e) {
        // a throwing JS callback is reported like an exception thrown by an event listener
        napi_fatal_exception(env, e.Value());
    } catch (...) {
    }
}

// ---- ContextCore -------------------------------------------------------------------------------------------

void ContextCore::free_now() {
    gate.drain();
    std::lock_guard<std::mutex> lock(free_mu);
    if (ctx) {
        lr_context_free(ctx); // cancels pending requests (their on_done runs) and joins the scheduler
        ctx = nullptr;
    }
    std::vector<std::shared_ptr<RequestState>> left;
    {
        std::lock_guard<std::mutex> l(req_mu);
        left = requests;
    }
    for (auto & st : left) {
        lr_gen_result r{};
        r.status = LR_ERR_CANCELLED;
        r.stop_reason = LR_STOP_CANCELLED;
        r.error = "the context was disposed";
        finish(st, r);
    }
}

ContextCore::~ContextCore() {
    // nothing refers to the core any more: no request (they hold it) and no operation in flight
    if (ctx) {
        lr_context_free(ctx);
        ctx = nullptr;
    }
}

// ---- env teardown ----------------------------------------------------------------------------------------------

void AddonData::register_context(const std::shared_ptr<ContextCore> & c) {
    std::lock_guard<std::mutex> lock(ctx_mu);
    // drop entries of contexts that are gone
    contexts.erase(std::remove_if(contexts.begin(), contexts.end(), [](const std::weak_ptr<ContextCore> & w) { return w.expired(); }),
                   contexts.end());
    contexts.push_back(c);
}

void free_contexts(std::mutex & mu, std::vector<std::weak_ptr<ContextCore>> & list) {
    std::vector<std::shared_ptr<ContextCore>> alive;
    {
        std::lock_guard<std::mutex> lock(mu);
        for (auto & w : list) {
            if (auto c = w.lock()) alive.push_back(std::move(c));
        }
        list.clear();
    }
    for (auto & c : alive) {
        {
            std::lock_guard<std::mutex> l(c->gate.mu);
            c->gate.disposed = true;
        }
        c->free_now(); // joins the scheduler thread: no callback runs after this
    }
}

void AddonData::free_all_contexts() { free_contexts(ctx_mu, contexts); }

// ---- the JS class -------------------------------------------------------------------------------------------

class Context : public Napi::ObjectWrap<Context> {
public:
    static Napi::Function Define(Napi::Env env);
    explicit Context(const Napi::CallbackInfo & info);
    std::shared_ptr<ContextCore> core;

private:
    Napi::Value Decode(const Napi::CallbackInfo & info);
    Napi::Value Logits(const Napi::CallbackInfo & info);
    Napi::Value SeqLength(const Napi::CallbackInfo & info);
    Napi::Value SeqTruncate(const Napi::CallbackInfo & info);
    Napi::Value Submit(const Napi::CallbackInfo & info);
    Napi::Value Cancel(const Napi::CallbackInfo & info);
    Napi::Value DebugFault(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
    Napi::Value Params(const Napi::CallbackInfo & info);
    Napi::Value Pending(const Napi::CallbackInfo & info);
    Napi::Value IsDisposed(const Napi::CallbackInfo & info);

    int32_t seq_arg(const Napi::Value & v, const char * what) {
        return arg_int32(v, what, 0, (int64_t) core->params.n_seq_max - 1);
    }
};

Napi::Function Context::Define(Napi::Env env) {
    return DefineClass(env, "Context",
                       {
                           InstanceMethod<&Context::Decode>("decode"),
                           InstanceMethod<&Context::Logits>("logits"),
                           InstanceMethod<&Context::SeqLength>("seqLength"),
                           InstanceMethod<&Context::SeqTruncate>("seqTruncate"),
                           InstanceMethod<&Context::Submit>("submit"),
                           InstanceMethod<&Context::Cancel>("cancel"),
                           InstanceMethod<&Context::DebugFault>("debugFault"),
                           InstanceMethod<&Context::Dispose>("dispose"),
                           InstanceMethod<&Context::Params>("params"),
                           InstanceAccessor<&Context::Pending>("pending"),
                           InstanceAccessor<&Context::IsDisposed>("disposed"),
                       });
}

Context::Context(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Context>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
        throw_type(info.Env(), "Context cannot be constructed directly; use Model.createContext()");
    }
    core = *info[0].As<Napi::External<std::shared_ptr<ContextCore>>>().Data();
}

Napi::Object new_context_object(Napi::Env env, std::shared_ptr<ContextCore> core) {
    auto * data = env.GetInstanceData<AddonData>();
    std::shared_ptr<ContextCore> holder = std::move(core);
    auto ext = Napi::External<std::shared_ptr<ContextCore>>::New(env, &holder);
    return data->context_ctor.New({ext});
}

// params(): the settings in force, as the engine resolved them (context rounded up to 256, ...)
Napi::Value Context::Params(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    lr_context_info ci{};
    {
        GateUse use(env, core->gate, "the context");
        const lr_status st = lr_context_get_info(core->ctx, &ci);
        if (st != LR_OK) throw_status(env, st, "context info");
    }
    o.Set("contextSize", ci.n_ctx);
    o.Set("batchSize", ci.n_batch);
    o.Set("parallel", ci.n_seq_max);
    o.Set("kvType", ci.kv_type == LR_KV_Q8_0 ? "q8_0" : ci.kv_type == LR_KV_F32 ? "f32" : "f16");
    o.Set("threads", ci.n_threads);
    o.Set("flashAttn", Napi::Boolean::New(env, ci.flash_attn != 0));
    o.Set("kvBytes", Napi::Number::New(env, (double) ci.kv_bytes));
    return o;
}

Napi::Value Context::Pending(const Napi::CallbackInfo & info) {
    std::lock_guard<std::mutex> lock(core->req_mu);
    return Napi::Number::New(info.Env(), (double) core->requests.size());
}

Napi::Value Context::IsDisposed(const Napi::CallbackInfo & info) {
    std::lock_guard<std::mutex> lock(core->gate.mu);
    return Napi::Boolean::New(info.Env(), core->gate.disposed);
}

// decode({tokens, embd?, pos, seqId, logits?}): Promise<void>
//   tokens: Int32Array | number[] (LR_TOKEN_EMBD = -1: the next n_embd floats of embd)
//   pos, seqId: Int32Array | number[] of the same length; logits: Int8Array | Uint8Array | number[] | boolean[]
Napi::Value Context::Decode(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    Napi::Object b = arg_object(info[0], "batch");
    std::vector<int32_t> tokens = arg_int32_list(b.Get("tokens"), "batch.tokens");
    std::vector<int32_t> pos = arg_int32_list(b.Get("pos"), "batch.pos");
    std::vector<int32_t> seq = arg_int32_list(b.Get("seqId"), "batch.seqId");
    const size_t n = tokens.size();
    if (n == 0) throw_range(env, "batch.tokens must not be empty");
    if (n > (size_t) INT32_MAX) throw_range(env, "batch is too large");
    if (pos.size() != n) throw_range(env, "batch.pos must have " + std::to_string(n) + " entries (one per token), got " + std::to_string(pos.size()));
    if (seq.size() != n) throw_range(env, "batch.seqId must have " + std::to_string(n) + " entries (one per token), got " + std::to_string(seq.size()));
    std::vector<int8_t> logits;
    if (has_opt(b, "logits")) {
        Napi::Value lv = b.Get("logits");
        if (lv.IsTypedArray() && (lv.As<Napi::TypedArray>().TypedArrayType() == napi_int8_array ||
                                  lv.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array)) {
            Napi::TypedArray ta = lv.As<Napi::TypedArray>();
            const uint8_t * p = static_cast<const uint8_t *>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
            for (size_t i = 0; i < ta.ElementLength(); ++i) logits.push_back(p[i] ? 1 : 0);
        } else if (lv.IsArray()) {
            Napi::Array a = lv.As<Napi::Array>();
            for (uint32_t i = 0; i < a.Length(); ++i) {
                Napi::Value e = a.Get(i);
                if (e.IsBoolean()) logits.push_back(e.As<Napi::Boolean>().Value() ? 1 : 0);
                else if (e.IsNumber()) logits.push_back(e.As<Napi::Number>().DoubleValue() != 0 ? 1 : 0);
                else throw_type(env, "batch.logits[" + std::to_string(i) + "] must be a boolean or a number, got " + describe(e));
            }
        } else {
            throw_type(env, "batch.logits must be an Int8Array, a Uint8Array or an array, got " + describe(lv));
        }
        if (logits.size() != n) throw_range(env, "batch.logits must have " + std::to_string(n) + " entries (one per token), got " + std::to_string(logits.size()));
    }
    const int32_t n_vocab = core->model->info.n_vocab;
    const int32_t n_embd = core->model->info.n_embd;
    size_t n_embd_rows = 0;
    for (size_t i = 0; i < n; ++i) {
        if (tokens[i] == LR_TOKEN_EMBD) { ++n_embd_rows; continue; }
        if (tokens[i] < 0 || tokens[i] >= n_vocab) {
            throw_range(env, "batch.tokens[" + std::to_string(i) + "] must be a token id between 0 and " + std::to_string(n_vocab - 1) +
                                 " or -1 (an embedding row), got " + std::to_string(tokens[i]));
        }
    }
    for (size_t i = 0; i < n; ++i) {
        if (seq[i] < 0 || seq[i] >= core->params.n_seq_max) {
            throw_range(env, "batch.seqId[" + std::to_string(i) + "] must be between 0 and " + std::to_string(core->params.n_seq_max - 1) +
                                 ", got " + std::to_string(seq[i]));
        }
        if (pos[i] < 0) throw_range(env, "batch.pos[" + std::to_string(i) + "] must be >= 0, got " + std::to_string(pos[i]));
    }
    std::vector<float> embd;
    if (has_opt(b, "embd")) {
        Napi::Value ev = b.Get("embd");
        if (!ev.IsTypedArray() || ev.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
            throw_type(env, "batch.embd must be a Float32Array, got " + describe(ev));
        }
        Napi::Float32Array a = ev.As<Napi::Float32Array>();
        embd.assign(a.Data(), a.Data() + a.ElementLength());
    }
    if (embd.size() != n_embd_rows * (size_t) n_embd) {
        throw_range(env, "batch.embd must hold " + std::to_string(n_embd_rows) + " rows of " + std::to_string(n_embd) +
                             " floats (" + std::to_string(n_embd_rows * (size_t) n_embd) + "), got " + std::to_string(embd.size()));
    }
    auto cc = core;
    auto op = gate_op(env, cc, "the context");
    {
        std::lock_guard<std::mutex> lock(cc->req_mu);
        if (!cc->requests.empty()) throw status_error(env, LR_ERR_INVALID_ARGUMENT, "decode cannot run while generation requests are in flight on this context");
        if (cc->decoding) throw status_error(env, LR_ERR_INVALID_ARGUMENT, "a decode is already running on this context");
        cc->decoding = true;
    }
    auto busy = std::shared_ptr<void>(cc.get(), [cc](void *) {
        std::lock_guard<std::mutex> lock(cc->req_mu);
        cc->decoding = false;
    });
    return PromiseWorker::Queue(
        env, "llava_rad.Context.decode",
        [cc, op, busy, tokens = std::move(tokens), pos = std::move(pos), seq = std::move(seq), logits = std::move(logits),
         embd = std::move(embd)](Failure & f) {
            lr_batch batch{};
            batch.n_tokens = (int32_t) tokens.size();
            batch.token = tokens.data();
            batch.embd = embd.empty() ? nullptr : embd.data();
            batch.pos = pos.data();
            batch.seq_id = seq.data();
            batch.logits = logits.empty() ? nullptr : logits.data();
            const lr_status s = lr_decode(cc->ctx, &batch);
            if (s != LR_OK) f.capture(s, "decode failed");
        },
        nullptr);
}

static void check_idle(Napi::Env env, ContextCore & c, const char * what) {
    std::lock_guard<std::mutex> lock(c.req_mu);
    if (c.decoding) throw status_error(env, LR_ERR_INVALID_ARGUMENT, std::string(what) + " cannot run while a decode is running");
    if (!c.requests.empty()) throw status_error(env, LR_ERR_INVALID_ARGUMENT, std::string(what) + " cannot run while generation requests are in flight");
}

// logits(i): Float32Array copy of the i-th kept entry of the last decode, or null
Napi::Value Context::Logits(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const int32_t i = arg_int32(info[0], "i", 0, INT32_MAX);
    GateUse use(env, core->gate, "the context");
    check_idle(env, *core, "logits()");
    const float * l = lr_get_logits(core->ctx, i);
    if (!l) return env.Null();
    const int32_t n_vocab = core->model->info.n_vocab;
    Napi::Float32Array a = Napi::Float32Array::New(env, (size_t) n_vocab);
    std::memcpy(a.Data(), l, (size_t) n_vocab * sizeof(float));
    return a;
}

Napi::Value Context::SeqLength(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const int32_t s = seq_arg(info[0], "seqId");
    GateUse use(env, core->gate, "the context");
    return Napi::Number::New(env, lr_seq_length(core->ctx, s));
}

Napi::Value Context::SeqTruncate(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const int32_t s = seq_arg(info[0], "seqId");
    const int32_t p0 = arg_int32(info[1], "p0", 0, INT32_MAX);
    GateUse use(env, core->gate, "the context");
    check_idle(env, *core, "seqTruncate()");
    const lr_status st = lr_seq_truncate(core->ctx, s, p0);
    if (st != LR_OK) throw_status(env, st, "seqTruncate failed");
    return env.Undefined();
}

// submit(parts, params, onToken, onDone): request id (number)
//   parts: array of Int32Array | number[] (token ids) or Float32Array (rows of n_embd floats)
//   params: {maxTokens, temperature, topK, topP, seed, ignoreEos, keepLogits}
//   onToken(token: number, logits?: Float32Array); onDone(result)
Napi::Value Context::Submit(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) throw_type(env, "parts must be an array, got " + describe(info[0]));
    Napi::Array arr = info[0].As<Napi::Array>();
    const uint32_t n_parts = arr.Length();
    if (n_parts == 0) throw_range(env, "parts must not be empty");
    const int32_t n_vocab = core->model->info.n_vocab;
    const int32_t n_embd = core->model->info.n_embd;
    auto st = std::make_shared<RequestState>();
    st->n_vocab = n_vocab;
    std::vector<bool> is_embd; // kind of each part, as read once
    for (uint32_t i = 0; i < n_parts; ++i) {
        Napi::Value v = arr.Get(i);
        const std::string what = "parts[" + std::to_string(i) + "]";
        if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_float32_array) {
            Napi::Float32Array a = v.As<Napi::Float32Array>();
            const size_t len = a.ElementLength();
            if (len == 0 || len % (size_t) n_embd != 0) {
                throw_range(env, what + " must hold whole rows of " + std::to_string(n_embd) + " floats, got " + std::to_string(len) + " floats");
            }
            for (size_t k = 0; k < len; ++k) {
                if (!std::isfinite(a.Data()[k])) throw_range(env, what + " must hold finite numbers; entry " + std::to_string(k) + " is not");
            }
            st->embd.emplace_back(a.Data(), a.Data() + len);
            is_embd.push_back(true);
        } else if (v.IsArray() || (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array)) {
            std::vector<int32_t> ids = arg_int32_list(v, what.c_str());
            if (ids.empty()) throw_range(env, what + " must not be empty");
            for (size_t k = 0; k < ids.size(); ++k) {
                if (ids[k] < 0 || ids[k] >= n_vocab) {
                    throw_range(env, what + "[" + std::to_string(k) + "] must be a token id between 0 and " + std::to_string(n_vocab - 1) +
                                         ", got " + std::to_string(ids[k]));
                }
            }
            st->tokens.push_back(std::move(ids));
            is_embd.push_back(false);
        } else {
            throw_type(env, what + " must be an Int32Array of token ids or a Float32Array of embedding rows, got " + describe(v));
        }
    }
    {
        size_t ti = 0, ei = 0;
        for (bool e : is_embd) {
            lr_prompt_part p{};
            if (e) {
                p.embd = st->embd[ei].data();
                p.n_embd_rows = st->embd[ei].size() / (size_t) n_embd;
                ++ei;
            } else {
                p.tokens = st->tokens[ti].data();
                p.n_tokens = st->tokens[ti].size();
                ++ti;
            }
            st->parts.push_back(p);
        }
    }
    lr_gen_params gp = lr_gen_default_params();
    if (!info[1].IsUndefined()) {
        Napi::Object o = arg_object(info[1], "params");
        if (has_opt(o, "maxTokens")) gp.max_tokens = arg_int32(o.Get("maxTokens"), "maxTokens", 1, INT32_MAX);
        if (has_opt(o, "temperature")) {
            const double t = arg_number(o.Get("temperature"), "temperature");
            if (t < 0) throw_range(env, "temperature must be >= 0, got " + describe(o.Get("temperature")));
            gp.sampling.temperature = (float) t;
        }
        if (has_opt(o, "topK")) gp.sampling.top_k = arg_int32(o.Get("topK"), "topK", 0, INT32_MAX);
        if (has_opt(o, "topP")) {
            const double p = arg_number(o.Get("topP"), "topP");
            if (p < 0 || p > 1) throw_range(env, "topP must be between 0 and 1, got " + describe(o.Get("topP")));
            gp.sampling.top_p = (float) p;
        }
        if (has_opt(o, "seed")) {
            Napi::Value sv = o.Get("seed");
            if (sv.IsBigInt()) {
                bool lossless = false;
                gp.sampling.seed = sv.As<Napi::BigInt>().Uint64Value(&lossless);
                if (!lossless) throw_range(env, "seed must fit in 64 unsigned bits");
            } else {
                const double d = arg_number(sv, "seed");
                if (d < 0 || d != std::floor(d) || d > 9007199254740991.0) {
                    throw_range(env, "seed must be an integer between 0 and 2^53-1 (or a bigint), got " + describe(sv));
                }
                gp.sampling.seed = (uint64_t) d;
            }
        }
        if (has_opt(o, "ignoreEos")) gp.ignore_eos = arg_bool(o.Get("ignoreEos"), "ignoreEos") ? 1 : 0;
        if (has_opt(o, "keepLogits")) gp.keep_logits = arg_bool(o.Get("keepLogits"), "keepLogits") ? 1 : 0;
    }
    st->keep_logits = gp.keep_logits != 0;
    if (!info[2].IsUndefined() && !info[2].IsNull()) st->on_token = Napi::Persistent(arg_function(info[2], "onToken"));
    st->collect = st->on_token.IsEmpty() && !st->keep_logits;
    st->on_done = Napi::Persistent(arg_function(info[3], "onDone"));

    GateUse use(env, core->gate, "the context");
    {
        std::lock_guard<std::mutex> lock(core->req_mu);
        if (core->decoding) throw status_error(env, LR_ERR_INVALID_ARGUMENT, "submit cannot run while a decode is running on this context");
    }
    st->ctx = core;
    auto * holder = new RequestHolder{st};
    st->tsfn = RequestTsfn::New(env, "llava_rad.request", 0, 1, holder,
                                [](Napi::Env, void *, RequestHolder * h) { delete h; });
    {
        std::lock_guard<std::mutex> lock(core->req_mu);
        core->requests.push_back(st);
    }
    lr_request_id id = 0;
    const lr_status s = lr_submit(core->ctx, st->parts.data(), st->parts.size(), &gp, on_token_cb, on_done_cb, st.get(), &id);
    if (s != LR_OK) {
        const char * msg = lr_last_error();
        std::string text = std::string("submit failed") + (msg && *msg ? std::string(": ") + msg : std::string());
        st->done = true;
        {
            std::lock_guard<std::mutex> lock(core->req_mu);
            auto & v = core->requests;
            for (auto it = v.begin(); it != v.end(); ++it) {
                if (it->get() == st.get()) { v.erase(it); break; }
            }
        }
        st->on_token.Reset();
        st->on_done.Reset();
        st->tsfn.Release();
        Napi::Error e = status_error(env, s, text);
        e.Set("lrMessage", Napi::String::New(env, msg ? msg : ""));
        throw e;
    }
    return Napi::Number::New(env, (double) id);
}

// cancel(id): stops a request before its next token; no-op for finished requests or a disposed context
Napi::Value Context::Cancel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber() && !info[0].IsBigInt()) throw_type(env, "id must be a number, got " + describe(info[0]));
    lr_request_id id = 0;
    if (info[0].IsBigInt()) {
        bool lossless = false;
        id = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
    } else {
        const double d = info[0].As<Napi::Number>().DoubleValue();
        if (!std::isfinite(d) || d < 0 || d != std::floor(d)) throw_range(env, "id must be a request id, got " + describe(info[0]));
        id = (lr_request_id) d;
    }
    if (!core->gate.enter()) return env.Undefined();
    struct Leave { Gate & g; ~Leave() { g.leave(); } } leave{core->gate};
    const lr_status s = lr_cancel(core->ctx, id);
    if (s != LR_OK) throw_status(env, s, "cancel failed");
    return env.Undefined();
}

// debugFault(kind): testing only (lr_debug_fault): the next scheduler step that decodes fails this way
Napi::Value Context::DebugFault(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const int32_t kind = arg_int32(info[0], "fault", LR_FAULT_NONE, LR_FAULT_ABORT);
    if (!core->gate.enter()) return env.Undefined();
    struct Leave { Gate & g; ~Leave() { g.leave(); } } leave{core->gate};
    const lr_status s = lr_debug_fault(core->ctx, (lr_fault) kind);
    if (s != LR_OK) throw_status(env, s, "debugFault failed");
    return env.Undefined();
}

// dispose(): Promise<void>; idempotent. Cancels pending requests (each completes with LR_STOP_CANCELLED).
Napi::Value Context::Dispose(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto cc = core;
    {
        std::lock_guard<std::mutex> lock(cc->gate.mu);
        cc->gate.disposed = true;
    }
    return PromiseWorker::Queue(env, "llava_rad.Context.dispose", [cc](Failure &) { cc->free_now(); }, nullptr);
}

void init_context(Napi::Env env, Napi::Object exports, AddonData * data) {
    Napi::Function ctor = Context::Define(env);
    data->context_ctor = Napi::Persistent(ctor);
    exports.Set("Context", ctor);
    exports.Set("TOKEN_EMBD", Napi::Number::New(env, LR_TOKEN_EMBD));
}

} // namespace lra
