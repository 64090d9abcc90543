// RadGraph: loadRadgraph (async), info (sync), encode (async: one segment's ids -> every token's last hidden
// state), scoreSpans / scorePairs (async: word vectors and spans -> DyGIE's scores), dispose.
#include "addon.h"

#include <cstring>

namespace lra {

namespace {

struct RadgraphCore {
    lr_radgraph *    rg = nullptr;
    lr_radgraph_info info{};
    Gate             gate;
    void free_now() {
        gate.drain();
        if (rg) lr_radgraph_free(rg);
        rg = nullptr;
    }
    ~RadgraphCore() { if (rg) lr_radgraph_free(rg); }
};

// the class's constructor, per env (freed with it)
struct RadgraphAddon {
    Napi::FunctionReference ctor;
};

std::shared_ptr<std::vector<float>> float32_arg(const Napi::Value & v, const char * what) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        throw_type(v.Env(), std::string(what) + " must be a Float32Array");
    }
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    return std::make_shared<std::vector<float>>(a.Data(), a.Data() + a.ElementLength());
}

Napi::Float32Array to_js(Napi::Env env, const std::vector<float> & v) {
    Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
    if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
    return a;
}

class Radgraph : public Napi::ObjectWrap<Radgraph> {
public:
    static Napi::Function Define(Napi::Env env) {
        return DefineClass(env, "Radgraph",
                           {
                               InstanceMethod<&Radgraph::Info>("info"),
                               InstanceMethod<&Radgraph::Encode>("encode"),
                               InstanceMethod<&Radgraph::EncodeBatch>("encodeBatch"),
                               InstanceMethod<&Radgraph::ScoreSpans>("scoreSpans"),
                               InstanceMethod<&Radgraph::ScorePairs>("scorePairs"),
                               InstanceMethod<&Radgraph::Dispose>("dispose"),
                           });
    }
    explicit Radgraph(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Radgraph>(info) {
        if (info.Length() != 1 || !info[0].IsExternal()) throw_type(info.Env(), "Radgraph cannot be constructed directly; use loadRadgraph()");
        core = *info[0].As<Napi::External<std::shared_ptr<RadgraphCore>>>().Data();
    }
    std::shared_ptr<RadgraphCore> core;

private:
    Napi::Value Info(const Napi::CallbackInfo & info) {
        GateUse use(info.Env(), core->gate, "the RadGraph model");
        Napi::Env env = info.Env();
        const lr_radgraph_info & ri = core->info;
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", Napi::String::New(env, ri.name, strnlen(ri.name, sizeof ri.name)));
        o.Set("backend", Napi::String::New(env, ri.backend, strnlen(ri.backend, sizeof ri.backend)));
        o.Set("nVocab", ri.n_vocab);
        o.Set("nCtx", ri.n_ctx);
        o.Set("nEmbd", ri.n_embd);
        o.Set("nWidthEmbd", ri.n_width_embd);
        o.Set("spanDim", ri.span_dim);
        o.Set("nNerLabels", ri.n_ner_labels);
        o.Set("nRelationLabels", ri.n_relation_labels);
        o.Set("nParams", (double) ri.n_params);
        return o;
    }

    // encode(ids: Int32Array | number[]): Promise<Float32Array> (n_ids x n_embd)
    Napi::Value Encode(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        auto ids = std::make_shared<std::vector<int32_t>>(arg_int32_list(info[0], "ids"));
        const lr_radgraph_info & ri = core->info;
        if (ids->empty() || ids->size() > (size_t) ri.n_ctx) {
            throw_range(env, "ids must hold 1 to " + std::to_string(ri.n_ctx) + " token ids, got " + std::to_string(ids->size()));
        }
        auto hidden = std::make_shared<std::vector<float>>(ids->size() * (size_t) ri.n_embd);
        auto rc = core;
        auto op = gate_op(env, rc, "the RadGraph model");
        return PromiseWorker::Queue(
            env, "llava_rad.Radgraph.encode",
            [rc, op, ids, hidden](Failure & f) {
                const lr_status s = lr_radgraph_encode(rc->rg, ids->data(), (int32_t) ids->size(), hidden->data(), hidden->size());
                if (s != LR_OK) f.capture(s, "could not encode the token ids");
            },
            [hidden](Napi::Env env) -> Napi::Value { return to_js(env, *hidden); });
    }

    // encodeBatch(ids: Int32Array | number[], counts: Int32Array | number[]): Promise<Float32Array>
    // (sum(counts) x n_embd: each segment's tokens, segment after segment)
    Napi::Value EncodeBatch(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        auto batch = std::make_shared<IdBatch>(arg_id_batch(info[0], info[1], "segment"));
        auto hidden = std::make_shared<std::vector<float>>(batch->ids.size() * (size_t) core->info.n_embd);
        auto rc = core;
        auto op = gate_op(env, rc, "the RadGraph model");
        return PromiseWorker::Queue(
            env, "llava_rad.Radgraph.encodeBatch",
            [rc, op, batch, hidden](Failure & f) {
                const lr_status s = lr_radgraph_encode_batch(rc->rg, batch->ids.data(), batch->counts.data(), (int32_t) batch->counts.size(),
                                                             hidden->data(), hidden->size());
                if (s != LR_OK) f.capture(s, "could not encode the segments");
            },
            [hidden](Napi::Env env) -> Napi::Value { return to_js(env, *hidden); });
    }

    // the word vectors and spans of scoreSpans / scorePairs, checked against each other
    struct SpanArgs {
        std::shared_ptr<std::vector<float>> words;
        std::shared_ptr<std::vector<int32_t>> spans;
        int32_t n_words = 0, n_spans = 0;
    };
    SpanArgs span_args(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        SpanArgs a;
        a.words = float32_arg(info[0], "words");
        a.spans = std::make_shared<std::vector<int32_t>>(arg_int32_list(info[1], "spans"));
        const size_t D = (size_t) core->info.n_embd;
        if (a.words->empty() || a.words->size() % D != 0) {
            throw_range(env, "words must hold a positive multiple of " + std::to_string(D) + " floats, got " + std::to_string(a.words->size()));
        }
        if (a.spans->empty() || a.spans->size() % 2 != 0) {
            throw_range(env, "spans must hold (start, end) pairs, got " + std::to_string(a.spans->size()) + " numbers");
        }
        if (a.words->size() / D > (1u << 20) || a.spans->size() / 2 > (1u << 24)) throw_range(env, "too many words or spans");
        a.n_words = (int32_t) (a.words->size() / D);
        a.n_spans = (int32_t) (a.spans->size() / 2);
        return a;
    }

    // scoreSpans(words: Float32Array, spans: Int32Array): Promise<{ner: Float32Array, mention: Float32Array}>
    Napi::Value ScoreSpans(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        SpanArgs a = span_args(info);
        auto ner = std::make_shared<std::vector<float>>((size_t) a.n_spans * (size_t) core->info.n_ner_labels);
        auto mention = std::make_shared<std::vector<float>>((size_t) a.n_spans);
        auto rc = core;
        auto op = gate_op(env, rc, "the RadGraph model");
        return PromiseWorker::Queue(
            env, "llava_rad.Radgraph.scoreSpans",
            [rc, op, a, ner, mention](Failure & f) {
                const lr_status s = lr_radgraph_score_spans(rc->rg, a.words->data(), a.n_words, a.spans->data(), a.n_spans,
                                                            ner->data(), ner->size(), mention->data(), mention->size());
                if (s != LR_OK) f.capture(s, "could not score the spans");
            },
            [ner, mention](Napi::Env env) -> Napi::Value {
                Napi::Object o = Napi::Object::New(env);
                o.Set("ner", to_js(env, *ner));
                o.Set("mention", to_js(env, *mention));
                return o;
            });
    }

    // scorePairs(words: Float32Array, spans: Int32Array, mention: Float32Array): Promise<Float32Array> (K x K x R)
    Napi::Value ScorePairs(const Napi::CallbackInfo & info) {
        Napi::Env env = info.Env();
        SpanArgs a = span_args(info);
        auto mention = float32_arg(info[2], "mention");
        if (mention->size() != (size_t) a.n_spans) {
            throw_range(env, "mention must hold one score per span (" + std::to_string(a.n_spans) + "), got " + std::to_string(mention->size()));
        }
        if (a.n_spans > 4096) throw_range(env, "scorePairs takes at most 4096 spans, got " + std::to_string(a.n_spans));
        auto out = std::make_shared<std::vector<float>>((size_t) a.n_spans * (size_t) a.n_spans * (size_t) core->info.n_relation_labels);
        auto rc = core;
        auto op = gate_op(env, rc, "the RadGraph model");
        return PromiseWorker::Queue(
            env, "llava_rad.Radgraph.scorePairs",
            [rc, op, a, mention, out](Failure & f) {
                const lr_status s = lr_radgraph_score_pairs(rc->rg, a.words->data(), a.n_words, a.spans->data(), a.n_spans,
                                                            mention->data(), out->data(), out->size());
                if (s != LR_OK) f.capture(s, "could not score the span pairs");
            },
            [out](Napi::Env env) -> Napi::Value { return to_js(env, *out); });
    }

    // dispose(): Promise<void>; idempotent; waits for the calls in flight, then frees
    Napi::Value Dispose(const Napi::CallbackInfo & info) {
        auto rc = core;
        {
            std::lock_guard<std::mutex> lock(rc->gate.mu);
            rc->gate.disposed = true;
        }
        return PromiseWorker::Queue(info.Env(), "llava_rad.Radgraph.dispose", [rc](Failure &) { rc->free_now(); }, nullptr);
    }
};

// loadRadgraph(path: string, {backend, threads, mmap}): Promise<Radgraph>
Napi::Value LoadRadgraph(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto * addon = static_cast<RadgraphAddon *>(info.Data());
    const std::string path = arg_string(info[0], "path");
    if (path.empty()) throw_range(env, "path must be a non-empty string");
    if (path.find('\0') != std::string::npos) throw_range(env, "path must not contain NUL characters");
    lr_model_params p = lr_model_default_params();
    if (!info[1].IsUndefined()) p = model_params_arg(arg_object(info[1], "RadGraph options"));
    auto rc = std::make_shared<RadgraphCore>();
    return PromiseWorker::Queue(
        env, "llava_rad.loadRadgraph",
        [rc, path, p](Failure & f) {
            lr_radgraph * r = nullptr;
            lr_status s = lr_radgraph_load(path.c_str(), &p, &r);
            if (s != LR_OK) {
                f.capture(s, "could not load the RadGraph model");
                return;
            }
            rc->rg = r;
            s = lr_radgraph_get_info(r, &rc->info);
            if (s != LR_OK) f.capture(s, "could not read the RadGraph model's info");
        },
        [rc, addon](Napi::Env env) -> Napi::Value {
            auto holder = std::make_unique<std::shared_ptr<RadgraphCore>>(rc);
            auto ext = Napi::External<std::shared_ptr<RadgraphCore>>::New(env, holder.release(),
                                                                           [](Napi::Env, std::shared_ptr<RadgraphCore> * h) { delete h; });
            return addon->ctor.New({ext});
        });
}

} // namespace

void init_radgraph(Napi::Env env, Napi::Object exports) {
    auto * addon = new RadgraphAddon();
    Napi::Function ctor = Radgraph::Define(env);
    addon->ctor = Napi::Persistent(ctor);
    env.AddCleanupHook([addon] { delete addon; });
    exports.Set("Radgraph", ctor);
    exports.Set("loadRadgraph", Napi::Function::New(env, LoadRadgraph, "loadRadgraph", addon));
}

} // namespace lra
