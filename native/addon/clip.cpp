// CLIP (BiomedCLIP-CXR): loadClip (async), info (sync), embedTexts / embedImages (async: L2-normalized rows),
// cancel (sync), dispose.
#include "addon.h"

#include <algorithm>
#include <atomic>
#include <cstring>

namespace lra {

using StopFlag = std::shared_ptr<std::atomic<int>>;

struct ClipCore {
    lr_clip *    clip = nullptr;
    lr_clip_info info{};
    Gate         gate;
    std::mutex            stops_mu;
    std::vector<StopFlag> stops; // of the calls submitted and not finished
    void stop_all() {
        std::lock_guard<std::mutex> lock(stops_mu);
        for (auto & s : stops) s->store(1);
    }
    StopFlag add_stop() {
        StopFlag s = std::make_shared<std::atomic<int>>(0);
        std::lock_guard<std::mutex> lock(stops_mu);
        stops.push_back(s);
        return s;
    }
    void drop_stop(const StopFlag & s) {
        std::lock_guard<std::mutex> lock(stops_mu);
        stops.erase(std::remove(stops.begin(), stops.end(), s), stops.end());
    }
    void free_now() {
        gate.drain();
        if (clip) lr_clip_free(clip);
        clip = nullptr;
    }
    ~ClipCore() { if (clip) lr_clip_free(clip); }
};

class Clip : public Napi::ObjectWrap<Clip> {
public:
    static Napi::Function Define(Napi::Env env);
    explicit Clip(const Napi::CallbackInfo & info);
    std::shared_ptr<ClipCore> core;

private:
    Napi::Value Info(const Napi::CallbackInfo & info);
    Napi::Value EmbedTexts(const Napi::CallbackInfo & info);
    Napi::Value EmbedImages(const Napi::CallbackInfo & info);
    Napi::Value Cancel(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
};

Napi::Function Clip::Define(Napi::Env env) {
    return DefineClass(env, "Clip",
                       {
                           InstanceMethod<&Clip::Info>("info"),
                           InstanceMethod<&Clip::EmbedTexts>("embedTexts"),
                           InstanceMethod<&Clip::EmbedImages>("embedImages"),
                           InstanceMethod<&Clip::Cancel>("cancel"),
                           InstanceMethod<&Clip::Dispose>("dispose"),
                       });
}

Clip::Clip(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Clip>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) throw_type(info.Env(), "Clip cannot be constructed directly; use loadClip()");
    core = *info[0].As<Napi::External<std::shared_ptr<ClipCore>>>().Data();
}

Napi::Value Clip::Info(const Napi::CallbackInfo & info) {
    GateUse use(info.Env(), core->gate, "the CLIP model");
    Napi::Env env = info.Env();
    const lr_clip_info & ci = core->info;
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", Napi::String::New(env, ci.name, strnlen(ci.name, sizeof ci.name)));
    o.Set("backend", Napi::String::New(env, ci.backend, strnlen(ci.backend, sizeof ci.backend)));
    o.Set("nOut", ci.n_out);
    o.Set("nCtx", ci.n_ctx);
    o.Set("nVocab", ci.n_vocab);
    o.Set("imageSize", ci.image_size);
    Napi::Array mean = Napi::Array::New(env, 3), stdv = Napi::Array::New(env, 3);
    for (uint32_t c = 0; c < 3; c++) {
        mean.Set(c, ci.image_mean[c]);
        stdv.Set(c, ci.image_std[c]);
    }
    o.Set("imageMean", mean);
    o.Set("imageStd", stdv);
    o.Set("logitScale", ci.logit_scale);
    o.Set("nParams", (double) ci.n_params);
    return o;
}

// runs `call` on the pool with a stop flag; resolves with the n x n_out floats it wrote
template <class Call>
static Napi::Value queue_embed(Napi::Env env, const std::shared_ptr<ClipCore> & cc, const char * name, size_t out_n, Call call) {
    auto out = std::make_shared<std::vector<float>>();
    auto op = gate_op(env, cc, "the CLIP model");
    StopFlag stop = cc->add_stop();
    return PromiseWorker::Queue(
        env, name,
        [cc, op, out, out_n, stop, call](Failure & f) {
            out->resize(out_n);
            const lr_abort_callback stopped = [](void * u) { return static_cast<std::atomic<int> *>(u)->load(); };
            const lr_status s = call(out->data(), out->size(), stopped, stop.get());
            cc->drop_stop(stop);
            if (s != LR_OK) f.capture(s, "could not compute the embeddings");
        },
        [out](Napi::Env env) -> Napi::Value {
            Napi::Float32Array r = Napi::Float32Array::New(env, out->size());
            if (!out->empty()) std::memcpy(r.Data(), out->data(), out->size() * sizeof(float));
            return r;
        });
}

// embedTexts(ids: Int32Array | number[], counts: Int32Array | number[]): Promise<Float32Array> (texts x nOut)
Napi::Value Clip::EmbedTexts(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto ids = std::make_shared<std::vector<int32_t>>(arg_int32_list(info[0], "ids"));
    auto counts = std::make_shared<std::vector<int32_t>>(arg_int32_list(info[1], "counts"));
    if (counts->empty() || counts->size() > (1u << 16)) throw_range(env, "counts must hold 1 to 65536 texts, got " + std::to_string(counts->size()));
    int64_t total = 0;
    for (int32_t c : *counts) total += c;
    if (total != (int64_t) ids->size()) {
        throw_range(env, "counts add up to " + std::to_string(total) + " ids, ids holds " + std::to_string(ids->size()));
    }
    const size_t out_n = counts->size() * (size_t) core->info.n_out;
    auto cc = core;
    return queue_embed(env, cc, "llava_rad.Clip.embedTexts", out_n,
                       [cc, ids, counts](float * out, size_t cap, lr_abort_callback stopped, void * u) {
                           return lr_clip_embed_texts(cc->clip, ids->data(), counts->data(), (int32_t) counts->size(), out, cap, stopped, u);
                       });
}

// embedImages(pixels: Float32Array, nImages: number): Promise<Float32Array> (images x nOut)
Napi::Value Clip::EmbedImages(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        throw_type(env, "pixels must be a Float32Array, got " + describe(info[0]));
    }
    Napi::Float32Array px = info[0].As<Napi::Float32Array>();
    const int32_t n = arg_int32(info[1], "nImages", 1, 1 << 16);
    const size_t per_in = (size_t) 3 * (size_t) core->info.image_size * (size_t) core->info.image_size;
    if (px.ElementLength() != per_in * (size_t) n) {
        throw_range(env, "pixels must hold " + std::to_string(per_in * (size_t) n) + " floats for " + std::to_string(n) +
                             " image(s), got " + std::to_string(px.ElementLength()));
    }
    auto pixels = std::make_shared<std::vector<float>>(px.Data(), px.Data() + px.ElementLength());
    const size_t out_n = (size_t) n * (size_t) core->info.n_out;
    auto cc = core;
    return queue_embed(env, cc, "llava_rad.Clip.embedImages", out_n,
                       [cc, pixels, n](float * out, size_t cap, lr_abort_callback stopped, void * u) {
                           return lr_clip_embed_images(cc->clip, pixels->data(), n, out, cap, stopped, u);
                       });
}

// cancel(): stops every call submitted and not finished (each rejects with LR_ERR_CANCELLED)
Napi::Value Clip::Cancel(const Napi::CallbackInfo & info) {
    core->stop_all();
    return info.Env().Undefined();
}

// dispose(): Promise<void>; idempotent; stops the calls in flight, waits for them, then frees
Napi::Value Clip::Dispose(const Napi::CallbackInfo & info) {
    auto cc = core;
    {
        std::lock_guard<std::mutex> lock(cc->gate.mu);
        cc->gate.disposed = true;
    }
    cc->stop_all();
    return PromiseWorker::Queue(info.Env(), "llava_rad.Clip.dispose", [cc](Failure &) { cc->free_now(); }, nullptr);
}

// loadClip(clipPath: string, visionPath: string, {backend, threads, mmap, maxBatch}): Promise<Clip>
static Napi::Value LoadClip(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const std::string clip_path = arg_string(info[0], "clipPath");
    const std::string vision_path = arg_string(info[1], "visionPath");
    for (const std::string * s : {&clip_path, &vision_path}) {
        if (s->empty()) throw_range(env, "paths must be non-empty strings");
        if (s->find('\0') != std::string::npos) throw_range(env, "paths must not contain NUL characters");
    }
    lr_model_params p = lr_model_default_params();
    int32_t max_batch = 0;
    if (!info[2].IsUndefined()) {
        Napi::Object o = arg_object(info[2], "CLIP options");
        p = model_params_arg(o);
        if (has_opt(o, "maxBatch")) max_batch = arg_int32(o.Get("maxBatch"), "maxBatch", 1, 256);
    }
    auto cc = std::make_shared<ClipCore>();
    return PromiseWorker::Queue(
        env, "llava_rad.loadClip",
        [cc, clip_path, vision_path, p, max_batch](Failure & f) {
            lr_clip * c = nullptr;
            lr_status s = lr_clip_load(clip_path.c_str(), vision_path.c_str(), &p, max_batch, &c);
            if (s != LR_OK) {
                f.capture(s, "could not load the CLIP model");
                return;
            }
            cc->clip = c;
            s = lr_clip_get_info(c, &cc->info);
            if (s != LR_OK) f.capture(s, "could not read the CLIP model's info");
        },
        [cc](Napi::Env env) -> Napi::Value {
            auto * data = env.GetInstanceData<AddonData>();
            auto holder = std::make_unique<std::shared_ptr<ClipCore>>(cc);
            auto ext = Napi::External<std::shared_ptr<ClipCore>>::New(env, holder.get());
            return data->clip_ctor.New({ext});
        });
}

void init_clip(Napi::Env env, Napi::Object exports, AddonData * data) {
    Napi::Function ctor = Clip::Define(env);
    data->clip_ctor = Napi::Persistent(ctor);
    exports.Set("Clip", ctor);
    exports.Set("loadClip", Napi::Function::New(env, LoadClip, "loadClip"));
}

} // namespace lra
