// BERT (CheXbert): loadBert (async), info (sync), encode / encodeBatch (async: token ids -> [CLS] states and logits),
// dispose.
#include "addon.h"

#include <cstring>

namespace lra {

namespace {

// {cls: Float32Array, logits: Float32Array}
Napi::Value encode_result(Napi::Env env, const std::vector<float> & cls, const std::vector<float> & logits) {
    Napi::Object o = Napi::Object::New(env);
    Napi::Float32Array c = Napi::Float32Array::New(env, cls.size());
    std::memcpy(c.Data(), cls.data(), cls.size() * sizeof(float));
    Napi::Float32Array l = Napi::Float32Array::New(env, logits.size());
    if (!logits.empty()) std::memcpy(l.Data(), logits.data(), logits.size() * sizeof(float));
    o.Set("cls", c);
    o.Set("logits", l);
    return o;
}

} // namespace

struct BertCore {
    lr_bert *    bert = nullptr;
    lr_bert_info info{};
    Gate         gate;
    void free_now() {
        gate.drain();
        if (bert) lr_bert_free(bert);
        bert = nullptr;
    }
    ~BertCore() { if (bert) lr_bert_free(bert); }
};

class Bert : public Napi::ObjectWrap<Bert> {
public:
    static Napi::Function Define(Napi::Env env);
    explicit Bert(const Napi::CallbackInfo & info);
    std::shared_ptr<BertCore> core;

private:
    Napi::Value Info(const Napi::CallbackInfo & info);
    Napi::Value Encode(const Napi::CallbackInfo & info);
    Napi::Value EncodeBatch(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
};

Napi::Function Bert::Define(Napi::Env env) {
    return DefineClass(env, "Bert",
                       {
                           InstanceMethod<&Bert::Info>("info"),
                           InstanceMethod<&Bert::Encode>("encode"),
                           InstanceMethod<&Bert::EncodeBatch>("encodeBatch"),
                           InstanceMethod<&Bert::Dispose>("dispose"),
                       });
}

Bert::Bert(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Bert>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) throw_type(info.Env(), "Bert cannot be constructed directly; use loadBert()");
    core = *info[0].As<Napi::External<std::shared_ptr<BertCore>>>().Data();
}

Napi::Value Bert::Info(const Napi::CallbackInfo & info) {
    GateUse use(info.Env(), core->gate, "the BERT model");
    Napi::Env env = info.Env();
    const lr_bert_info & bi = core->info;
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", Napi::String::New(env, bi.name, strnlen(bi.name, sizeof bi.name)));
    o.Set("backend", Napi::String::New(env, bi.backend, strnlen(bi.backend, sizeof bi.backend)));
    o.Set("nVocab", bi.n_vocab);
    o.Set("nCtx", bi.n_ctx);
    o.Set("nEmbd", bi.n_embd);
    o.Set("nBlock", bi.n_block);
    o.Set("nHead", bi.n_head);
    o.Set("nClassifierHeads", bi.n_heads_cls);
    o.Set("nLogits", bi.n_logits);
    o.Set("nParams", (double) bi.n_params);
    return o;
}

// encode(ids: Int32Array | number[]): Promise<{cls: Float32Array, logits: Float32Array}>
Napi::Value Bert::Encode(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto ids = std::make_shared<std::vector<int32_t>>(arg_int32_list(info[0], "ids"));
    const lr_bert_info & bi = core->info;
    if (ids->empty() || ids->size() > (size_t) bi.n_ctx) {
        throw_range(env, "ids must hold 1 to " + std::to_string(bi.n_ctx) + " token ids, got " + std::to_string(ids->size()));
    }
    auto cls = std::make_shared<std::vector<float>>((size_t) bi.n_embd);
    auto logits = std::make_shared<std::vector<float>>((size_t) bi.n_logits);
    auto bc = core;
    auto op = gate_op(env, bc, "the BERT model");
    return PromiseWorker::Queue(
        env, "llava_rad.Bert.encode",
        [bc, op, ids, cls, logits](Failure & f) {
            const lr_status s = lr_bert_encode(bc->bert, ids->data(), (int32_t) ids->size(), cls->data(), cls->size(),
                                               logits->empty() ? nullptr : logits->data(), logits->size());
            if (s != LR_OK) f.capture(s, "could not encode the token ids");
        },
        [cls, logits](Napi::Env env) -> Napi::Value { return encode_result(env, *cls, *logits); });
}

// encodeBatch(ids: Int32Array | number[], counts: Int32Array | number[]): Promise<{cls, logits}>: the sequences'
// ids one after another and each one's count; cls: counts.length x nEmbd floats, logits: counts.length x nLogits
Napi::Value Bert::EncodeBatch(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto batch = std::make_shared<IdBatch>(arg_id_batch(info[0], info[1], "sequence"));
    const lr_bert_info & bi = core->info;
    const size_t n_seqs = batch->counts.size();
    auto cls = std::make_shared<std::vector<float>>(n_seqs * (size_t) bi.n_embd);
    auto logits = std::make_shared<std::vector<float>>(n_seqs * (size_t) bi.n_logits);
    auto bc = core;
    auto op = gate_op(env, bc, "the BERT model");
    return PromiseWorker::Queue(
        env, "llava_rad.Bert.encodeBatch",
        [bc, op, batch, cls, logits](Failure & f) {
            const lr_status s = lr_bert_encode_batch(bc->bert, batch->ids.data(), batch->counts.data(), (int32_t) batch->counts.size(),
                                                     cls->data(), cls->size(), logits->empty() ? nullptr : logits->data(),
                                                     logits->size());
            if (s != LR_OK) f.capture(s, "could not encode the batch of token ids");
        },
        [cls, logits](Napi::Env env) -> Napi::Value { return encode_result(env, *cls, *logits); });
}

// dispose(): Promise<void>; idempotent; waits for the encodes in flight, then frees
Napi::Value Bert::Dispose(const Napi::CallbackInfo & info) {
    auto bc = core;
    {
        std::lock_guard<std::mutex> lock(bc->gate.mu);
        bc->gate.disposed = true;
    }
    return PromiseWorker::Queue(info.Env(), "llava_rad.Bert.dispose", [bc](Failure &) { bc->free_now(); }, nullptr);
}

// loadBert(path: string, {backend, threads, mmap}): Promise<Bert>
static Napi::Value LoadBert(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const std::string path = arg_string(info[0], "path");
    if (path.empty()) throw_range(env, "path must be a non-empty string");
    if (path.find('\0') != std::string::npos) throw_range(env, "path must not contain NUL characters");
    lr_model_params p = lr_model_default_params();
    if (!info[1].IsUndefined()) p = model_params_arg(arg_object(info[1], "BERT options"));
    auto bc = std::make_shared<BertCore>();
    return PromiseWorker::Queue(
        env, "llava_rad.loadBert",
        [bc, path, p](Failure & f) {
            lr_bert * b = nullptr;
            lr_status s = lr_bert_load(path.c_str(), &p, &b);
            if (s != LR_OK) {
                f.capture(s, "could not load the BERT model");
                return;
            }
            bc->bert = b;
            s = lr_bert_get_info(b, &bc->info);
            if (s != LR_OK) f.capture(s, "could not read the BERT model's info");
        },
        [bc](Napi::Env env) -> Napi::Value {
            auto * data = env.GetInstanceData<AddonData>();
            auto holder = std::make_unique<std::shared_ptr<BertCore>>(bc);
            auto ext = Napi::External<std::shared_ptr<BertCore>>::New(env, holder.get());
            return data->bert_ctor.New({ext});
        });
}

void init_bert(Napi::Env env, Napi::Object exports, AddonData * data) {
    Napi::Function ctor = Bert::Define(env);
    data->bert_ctor = Napi::Persistent(ctor);
    exports.Set("Bert", ctor);
    exports.Set("loadBert", Napi::Function::New(env, LoadBert, "loadBert"));
}

} // namespace lra
