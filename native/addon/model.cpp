// Model: loadModel (async), info/tokenize/detokenize/tokenPiece (sync, no weights), createContext and
// dispose (async).
#include "addon.h"

#include <cstring>

namespace lra {

// ---- ModelCore ----------------------------------------------------------------------------------------------

static std::mutex g_free_mu; // serializes frees of models (a second dispose waits for the first)

void ModelCore::free_now() {
    gate.drain();
    std::lock_guard<std::mutex> lock(g_free_mu);
    // contexts first: each cancels its requests and joins its scheduler before the weights go away
    free_contexts(ctx_mu, contexts);
    if (model) {
        lr_model_free(model);
        model = nullptr;
    }
}

ModelCore::~ModelCore() {
    // only reached when nothing refers to the core any more (no context, no worker): nothing in flight
    if (model) {
        lr_model_free(model);
        model = nullptr;
    }
}

// ---- the JS class -----------------------------------------------------------------------------------------

class Model : public Napi::ObjectWrap<Model> {
public:
    static Napi::Function Define(Napi::Env env);
    explicit Model(const Napi::CallbackInfo & info);
    std::shared_ptr<ModelCore> core;

private:
    Napi::Value Info(const Napi::CallbackInfo & info);
    Napi::Value Tokenize(const Napi::CallbackInfo & info);
    Napi::Value Detokenize(const Napi::CallbackInfo & info);
    Napi::Value TokenPiece(const Napi::CallbackInfo & info);
    Napi::Value CreateContext(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
    Napi::Value IsDisposed(const Napi::CallbackInfo & info);
};

Napi::Function Model::Define(Napi::Env env) {
    return DefineClass(env, "Model",
                       {
                           InstanceMethod<&Model::Info>("info"),
                           InstanceMethod<&Model::Tokenize>("tokenize"),
                           InstanceMethod<&Model::Detokenize>("detokenize"),
                           InstanceMethod<&Model::TokenPiece>("tokenPiece"),
                           InstanceMethod<&Model::CreateContext>("createContext"),
                           InstanceMethod<&Model::Dispose>("dispose"),
                           InstanceAccessor<&Model::IsDisposed>("disposed"),
                       });
}

// JS cannot construct a usable Model: only loadModel() attaches a core (passed as an External)
Model::Model(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Model>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
        throw_type(info.Env(), "Model cannot be constructed directly; use loadModel()");
    }
    core = *info[0].As<Napi::External<std::shared_ptr<ModelCore>>>().Data();
}

std::shared_ptr<ModelCore> model_core_of(const Napi::Value & v) {
    Napi::Env env = v.Env();
    auto * data = env.GetInstanceData<AddonData>();
    if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(data->model_ctor.Value())) {
        throw_type(env, "expected a Model, got " + describe(v));
    }
    return Model::Unwrap(v.As<Napi::Object>())->core;
}

Napi::Object model_info_object(Napi::Env env, const lr_model_info & mi) {
    Napi::Object o = Napi::Object::New(env);
    auto str = [&](const char * key, const char * s, size_t cap) {
        o.Set(key, Napi::String::New(env, s, strnlen(s, cap)));
    };
    str("architecture", mi.architecture, sizeof mi.architecture);
    str("name", mi.name, sizeof mi.name);
    str("backend", mi.backend, sizeof mi.backend);
    o.Set("nVocab", mi.n_vocab);
    o.Set("nCtxTrain", mi.n_ctx_train);
    o.Set("nEmbd", mi.n_embd);
    o.Set("nLayer", mi.n_layer);
    o.Set("nHead", mi.n_head);
    o.Set("nHeadKv", mi.n_head_kv);
    o.Set("nFf", mi.n_ff);
    o.Set("nRot", mi.n_rot);
    o.Set("rmsNormEps", (double) mi.rms_norm_eps);
    o.Set("ropeFreqBase", (double) mi.rope_freq_base);
    o.Set("bosToken", mi.bos_token);
    o.Set("eosToken", mi.eos_token);
    o.Set("addBos", Napi::Boolean::New(env, mi.add_bos != 0));
    o.Set("weightType", mi.weight_type);
    o.Set("nParams", (double) mi.n_params);
    o.Set("weightBytes", (double) mi.weight_bytes);
    o.Set("vnniMatrices", mi.n_vnni);
    return o;
}

Napi::Value Model::Info(const Napi::CallbackInfo & info) {
    GateUse use(info.Env(), core->gate, "the model");
    return model_info_object(info.Env(), core->info);
}

Napi::Value Model::IsDisposed(const Napi::CallbackInfo & info) {
    std::lock_guard<std::mutex> lock(core->gate.mu);
    return Napi::Boolean::New(info.Env(), core->gate.disposed);
}

// tokenize(text: string, addBos: boolean): Int32Array
Napi::Value Model::Tokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const std::string text = arg_string(info[0], "text");
    const bool add_bos = info[1].IsUndefined() ? false : arg_bool(info[1], "addBos");
    GateUse use(env, core->gate, "the model");
    std::vector<int32_t> ids(text.size() + 8);
    size_t n = 0;
    lr_status s = lr_tokenize(core->model, text.data(), text.size(), add_bos ? 1 : 0, ids.data(), ids.size(), &n);
    if (s == LR_ERR_BUFFER_TOO_SMALL) {
        ids.resize(n);
        s = lr_tokenize(core->model, text.data(), text.size(), add_bos ? 1 : 0, ids.data(), ids.size(), &n);
    }
    if (s != LR_OK) throw_status(env, s, "tokenize failed");
    if (n > ids.size()) throw_status(env, LR_ERR_INTERNAL, "tokenize reported more tokens than it wrote");
    Napi::Int32Array out = Napi::Int32Array::New(env, n);
    if (n) std::memcpy(out.Data(), ids.data(), n * sizeof(int32_t));
    return out;
}

static void check_ids(Napi::Env env, const std::vector<int32_t> & ids, int32_t n_vocab, const char * what) {
    for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= n_vocab) {
            throw_range(env, std::string(what) + "[" + std::to_string(i) + "] must be a token id between 0 and " +
                                 std::to_string(n_vocab - 1) + ", got " + std::to_string(ids[i]));
        }
    }
}

// detokenize(ids: Int32Array | number[], flags = 0, asBuffer = false): string | Buffer
Napi::Value Model::Detokenize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    std::vector<int32_t> ids = arg_int32_list(info[0], "ids");
    const int32_t flags = info[1].IsUndefined() ? 0 : arg_int32(info[1], "flags", 0, 3);
    const bool as_buffer = info[2].IsUndefined() ? false : arg_bool(info[2], "asBuffer");
    GateUse use(env, core->gate, "the model");
    check_ids(env, ids, core->info.n_vocab, "ids");
    std::vector<char> text(ids.size() * 8 + 16);
    size_t n = 0;
    lr_status s = lr_detokenize(core->model, ids.data(), ids.size(), flags, text.data(), text.size(), &n);
    if (s == LR_ERR_BUFFER_TOO_SMALL) {
        text.resize(n + 1);
        s = lr_detokenize(core->model, ids.data(), ids.size(), flags, text.data(), text.size(), &n);
    }
    if (s != LR_OK) throw_status(env, s, "detokenize failed");
    if (n > text.size()) throw_status(env, LR_ERR_INTERNAL, "detokenize reported more bytes than it wrote");
    if (as_buffer) return Napi::Buffer<char>::Copy(env, text.data(), n);
    return Napi::String::New(env, text.data(), n);
}

// tokenPiece(id: number): Buffer (raw bytes; may be part of a UTF-8 character)
Napi::Value Model::TokenPiece(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    GateUse use(env, core->gate, "the model");
    const int32_t id = arg_int32(info[0], "token", 0, (int64_t) core->info.n_vocab - 1);
    std::vector<char> piece(64);
    size_t n = 0;
    lr_status s = lr_token_piece(core->model, id, piece.data(), piece.size(), &n);
    if (s == LR_ERR_BUFFER_TOO_SMALL) {
        piece.resize(n + 1);
        s = lr_token_piece(core->model, id, piece.data(), piece.size(), &n);
    }
    if (s != LR_OK) throw_status(env, s, "tokenPiece failed");
    if (n > piece.size()) throw_status(env, LR_ERR_INTERNAL, "tokenPiece reported more bytes than it wrote");
    return Napi::Buffer<char>::Copy(env, piece.data(), n);
}

// createContext({contextSize, batchSize, parallel, kvType, threads, flashAttn}): Promise<Context>
Napi::Value Model::CreateContext(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    lr_context_params p = lr_context_default_params();
    if (!info[0].IsUndefined()) {
        Napi::Object o = arg_object(info[0], "context options");
        if (has_opt(o, "contextSize")) p.n_ctx = arg_int32(o.Get("contextSize"), "contextSize", 1, 1 << 24);
        if (has_opt(o, "batchSize")) p.n_batch = arg_int32(o.Get("batchSize"), "batchSize", 1, 1 << 20);
        if (has_opt(o, "parallel")) p.n_seq_max = arg_int32(o.Get("parallel"), "parallel", 1, 256);
        if (has_opt(o, "threads")) p.n_threads = arg_int32(o.Get("threads"), "threads", 0, 1024);
        if (has_opt(o, "flashAttn")) p.flash_attn = arg_bool(o.Get("flashAttn"), "flashAttn") ? 1 : 0;
        if (has_opt(o, "kvType")) {
            const std::string t = arg_string(o.Get("kvType"), "kvType");
            if (t == "f16") p.kv_type = LR_KV_F16;
            else if (t == "q8_0") p.kv_type = LR_KV_Q8_0;
            else if (t == "f32") p.kv_type = LR_KV_F32;
            else throw_range(env, "kvType must be one of 'f16', 'q8_0', 'f32', got '" + t + "'");
        }
    }
    auto mc = core;
    auto op = gate_op(env, mc, "the model");
    auto * data = env.GetInstanceData<AddonData>();
    auto cc = std::make_shared<ContextCore>();
    cc->model = mc;
    cc->params = p;
    return PromiseWorker::Queue(
        env, "llava_rad.createContext",
        [mc, cc, op, p, data](Failure & f) mutable {
            lr_context * ctx = nullptr;
            const lr_status s = lr_context_create(mc->model, &p, &ctx);
            if (s != LR_OK) {
                f.capture(s, "could not create the context");
                return;
            }
            cc->ctx = ctx;
            data->register_context(cc);
            // registered before the model's gate is left: a model dispose always sees it
            std::lock_guard<std::mutex> lock(mc->ctx_mu);
            mc->contexts.push_back(cc);
        },
        [cc](Napi::Env env) -> Napi::Value { return new_context_object(env, cc); });
}

// dispose(): Promise<void>; idempotent. Frees the model's contexts first (their pending requests are
// cancelled and complete with LR_STOP_CANCELLED), then the weights.
Napi::Value Model::Dispose(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto mc = core;
    {
        std::lock_guard<std::mutex> lock(mc->gate.mu);
        mc->gate.disposed = true;
    }
    {
        std::lock_guard<std::mutex> lock(mc->ctx_mu);
        for (auto & w : mc->contexts) {
            if (auto c = w.lock()) {
                std::lock_guard<std::mutex> l(c->gate.mu);
                c->gate.disposed = true;
            }
        }
    }
    return PromiseWorker::Queue(env, "llava_rad.Model.dispose", [mc](Failure &) { mc->free_now(); }, nullptr);
}

lr_model_params model_params_arg(const Napi::Object & o) {
    Napi::Env env = o.Env();
    lr_model_params p = lr_model_default_params();
    if (has_opt(o, "backend")) {
        const std::string b = arg_string(o.Get("backend"), "backend");
        if (b == "auto") p.backend = LR_BACKEND_AUTO;
        else if (b == "cpu") p.backend = LR_BACKEND_CPU;
        else if (b == "cuda") p.backend = LR_BACKEND_CUDA;
        else throw_range(env, "backend must be one of 'auto', 'cpu', 'cuda', got '" + b + "'");
    }
    if (has_opt(o, "threads")) p.n_threads = arg_int32(o.Get("threads"), "threads", 0, 1024);
    if (has_opt(o, "mmap")) p.use_mmap = arg_bool(o.Get("mmap"), "mmap") ? 1 : 0;
    return p;
}

// loadModel(path: string, {backend, threads, mmap}): Promise<Model>
static Napi::Value LoadModel(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const std::string path = arg_string(info[0], "path");
    if (path.empty()) throw_range(env, "path must be a non-empty string");
    if (path.find('\0') != std::string::npos) throw_range(env, "path must not contain NUL characters");
    const lr_model_params p = info[1].IsUndefined() ? lr_model_default_params() : model_params_arg(arg_object(info[1], "model options"));
    auto mc = std::make_shared<ModelCore>();
    return PromiseWorker::Queue(
        env, "llava_rad.loadModel",
        [mc, path, p](Failure & f) {
            lr_model * m = nullptr;
            lr_status s = lr_model_load(path.c_str(), &p, &m);
            if (s != LR_OK) {
                f.capture(s, "could not load the model");
                return;
            }
            mc->model = m;
            s = lr_model_get_info(m, &mc->info);
            if (s != LR_OK) {
                f.capture(s, "could not read the model's info");
                lr_model_free(m);
                mc->model = nullptr;
                return;
            }
            if (mc->info.n_vocab <= 0 || mc->info.n_embd <= 0) {
                f.set(LR_ERR_INTERNAL, "the engine reported a model without vocabulary or embedding size");
                lr_model_free(m);
                mc->model = nullptr;
            }
        },
        [mc](Napi::Env env) -> Napi::Value {
            auto * data = env.GetInstanceData<AddonData>();
            auto holder = std::make_unique<std::shared_ptr<ModelCore>>(mc);
            Napi::External<std::shared_ptr<ModelCore>> ext = Napi::External<std::shared_ptr<ModelCore>>::New(env, holder.get());
            Napi::Object obj = data->model_ctor.New({ext});
            return obj; // holder freed on return: the Model copied the shared_ptr
        });
}

void init_model(Napi::Env env, Napi::Object exports, AddonData * data) {
    Napi::Function ctor = Model::Define(env);
    data->model_ctor = Napi::Persistent(ctor);
    exports.Set("Model", ctor);
    exports.Set("loadModel", Napi::Function::New(env, LoadModel, "loadModel"));
}

} // namespace lra
