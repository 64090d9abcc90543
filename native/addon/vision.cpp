// Vision: loadVision (async), info (sync), encode (async: images -> embeddings), cancel (sync), dispose.
#include "addon.h"

#include <algorithm>
#include <atomic>
#include <cstring>

namespace lra {

// one encode's stop flag, read by the engine while it computes (lr_vision_encode_abortable)
using StopFlag = std::shared_ptr<std::atomic<int>>;

struct VisionCore {
    lr_vision *    vision = nullptr;
    lr_vision_info info{};
    Gate           gate;
    std::mutex            stops_mu;
    std::vector<StopFlag> stops; // of the encodes submitted and not finished
    void stop_all() {
        std::lock_guard<std::mutex> lock(stops_mu);
        for (auto & s : stops) s->store(1);
    }
    void free_now() {
        gate.drain();
        if (vision) lr_vision_free(vision);
        vision = nullptr;
    }
    ~VisionCore() { if (vision) lr_vision_free(vision); }
};

class Vision : public Napi::ObjectWrap<Vision> {
public:
    static Napi::Function Define(Napi::Env env);
    explicit Vision(const Napi::CallbackInfo & info);
    std::shared_ptr<VisionCore> core;

private:
    Napi::Value Info(const Napi::CallbackInfo & info);
    Napi::Value Encode(const Napi::CallbackInfo & info);
    Napi::Value Cancel(const Napi::CallbackInfo & info);
    Napi::Value Dispose(const Napi::CallbackInfo & info);
    Napi::Value IsDisposed(const Napi::CallbackInfo & info);
};

Napi::Function Vision::Define(Napi::Env env) {
    return DefineClass(env, "Vision",
                       {
                           InstanceMethod<&Vision::Info>("info"),
                           InstanceMethod<&Vision::Encode>("encode"),
                           InstanceMethod<&Vision::Cancel>("cancel"),
                           InstanceMethod<&Vision::Dispose>("dispose"),
                           InstanceAccessor<&Vision::IsDisposed>("disposed"),
                       });
}

Vision::Vision(const Napi::CallbackInfo & info) : Napi::ObjectWrap<Vision>(info) {
    if (info.Length() != 1 || !info[0].IsExternal()) {
        throw_type(info.Env(), "Vision cannot be constructed directly; use loadVision()");
    }
    core = *info[0].As<Napi::External<std::shared_ptr<VisionCore>>>().Data();
}

static Napi::Object vision_info_object(Napi::Env env, const lr_vision_info & vi) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", Napi::String::New(env, vi.name, strnlen(vi.name, sizeof vi.name)));
    o.Set("backend", Napi::String::New(env, vi.backend, strnlen(vi.backend, sizeof vi.backend)));
    o.Set("imageSize", vi.image_size);
    o.Set("patchSize", vi.patch_size);
    o.Set("nPatches", vi.n_patches);
    o.Set("nEmbd", vi.n_embd);
    o.Set("nOut", vi.n_out);
    o.Set("nBlock", vi.n_block);
    o.Set("nBlockUsed", vi.n_block_used);
    o.Set("nHead", vi.n_head);
    o.Set("selectLayer", vi.select_layer);
    Napi::Array mean = Napi::Array::New(env, 3), stdv = Napi::Array::New(env, 3);
    for (uint32_t c = 0; c < 3; c++) {
        mean.Set(c, (double) vi.image_mean[c]);
        stdv.Set(c, (double) vi.image_std[c]);
    }
    o.Set("imageMean", mean);
    o.Set("imageStd", stdv);
    o.Set("nParams", (double) vi.n_params);
    return o;
}

Napi::Value Vision::Info(const Napi::CallbackInfo & info) {
    GateUse use(info.Env(), core->gate, "the vision model");
    return vision_info_object(info.Env(), core->info);
}

Napi::Value Vision::IsDisposed(const Napi::CallbackInfo & info) {
    std::lock_guard<std::mutex> lock(core->gate.mu);
    return Napi::Boolean::New(info.Env(), core->gate.disposed);
}

// encode(pixels: Float32Array, nImages: number, output: 'projected' | 'features'): Promise<Float32Array>
Napi::Value Vision::Encode(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        throw_type(env, "pixels must be a Float32Array, got " + describe(info[0]));
    }
    Napi::Float32Array px = info[0].As<Napi::Float32Array>();
    const int32_t n = arg_int32(info[1], "nImages", 1, 1 << 16);
    lr_vision_output which = LR_VISION_PROJECTED;
    if (!info[2].IsUndefined()) {
        const std::string w = arg_string(info[2], "output");
        if (w == "features") which = LR_VISION_FEATURES;
        else if (w != "projected") throw_range(env, "output must be 'projected' or 'features', got '" + w + "'");
    }
    const VisionCore & c = *core;
    const size_t per_in = (size_t) 3 * (size_t) c.info.image_size * (size_t) c.info.image_size;
    if (px.ElementLength() != per_in * (size_t) n) {
        throw_range(env, "pixels must hold " + std::to_string(n) + " x 3 x " + std::to_string(c.info.image_size) + " x " +
                             std::to_string(c.info.image_size) + " = " + std::to_string(per_in * (size_t) n) + " floats, got " +
                             std::to_string(px.ElementLength()));
    }
    auto pixels = std::make_shared<std::vector<float>>(px.Data(), px.Data() + px.ElementLength());
    const size_t out_n = (size_t) n * (size_t) c.info.n_patches * (size_t) (which == LR_VISION_FEATURES ? c.info.n_embd : c.info.n_out);
    auto out = std::make_shared<std::vector<float>>();
    auto vc = core;
    auto op = gate_op(env, vc, "the vision model");
    StopFlag stop = std::make_shared<std::atomic<int>>(0);
    {
        std::lock_guard<std::mutex> lock(vc->stops_mu);
        vc->stops.push_back(stop);
    }
    return PromiseWorker::Queue(
        env, "llava_rad.Vision.encode",
        [vc, op, pixels, out, out_n, n, which, stop](Failure & f) {
            out->resize(out_n);
            const lr_abort_callback stopped = [](void * u) { return static_cast<std::atomic<int> *>(u)->load(); };
            const lr_status s = lr_vision_encode_abortable(vc->vision, pixels->data(), n, which, out->data(), out->size(), stopped, stop.get());
            {
                std::lock_guard<std::mutex> lock(vc->stops_mu);
                vc->stops.erase(std::remove(vc->stops.begin(), vc->stops.end(), stop), vc->stops.end());
            }
            if (s != LR_OK) f.capture(s, "could not encode the images");
        },
        [out](Napi::Env env) -> Napi::Value {
            Napi::Float32Array r = Napi::Float32Array::New(env, out->size());
            if (!out->empty()) std::memcpy(r.Data(), out->data(), out->size() * sizeof(float));
            return r;
        });
}

// cancel(): stops every encode submitted and not finished (each rejects with LR_ERR_CANCELLED; one computing
// stops after the graph node in progress); encodes submitted later run normally
Napi::Value Vision::Cancel(const Napi::CallbackInfo & info) {
    core->stop_all();
    return info.Env().Undefined();
}

// dispose(): Promise<void>; idempotent; stops the encode in flight (it rejects with LR_ERR_CANCELLED), then
// waits for it to leave and frees
Napi::Value Vision::Dispose(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    auto vc = core;
    {
        std::lock_guard<std::mutex> lock(vc->gate.mu);
        vc->gate.disposed = true;
    }
    vc->stop_all();
    return PromiseWorker::Queue(env, "llava_rad.Vision.dispose", [vc](Failure &) { vc->free_now(); }, nullptr);
}

// loadVision(path: string, {backend, threads, mmap, maxBatch}): Promise<Vision>
static Napi::Value LoadVision(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const std::string path = arg_string(info[0], "path");
    if (path.empty()) throw_range(env, "path must be a non-empty string");
    if (path.find('\0') != std::string::npos) throw_range(env, "path must not contain NUL characters");
    lr_model_params p = lr_model_default_params();
    int32_t max_batch = 0;
    if (!info[1].IsUndefined()) {
        Napi::Object o = arg_object(info[1], "vision options");
        p = model_params_arg(o);
        if (has_opt(o, "maxBatch")) max_batch = arg_int32(o.Get("maxBatch"), "maxBatch", 1, 256);
    }
    auto vc = std::make_shared<VisionCore>();
    return PromiseWorker::Queue(
        env, "llava_rad.loadVision",
        [vc, path, p, max_batch](Failure & f) {
            lr_vision * v = nullptr;
            lr_status s = lr_vision_load(path.c_str(), &p, max_batch, &v);
            if (s != LR_OK) {
                f.capture(s, "could not load the vision model");
                return;
            }
            vc->vision = v;
            s = lr_vision_get_info(v, &vc->info);
            if (s != LR_OK) f.capture(s, "could not read the vision model's info");
        },
        [vc](Napi::Env env) -> Napi::Value {
            auto * data = env.GetInstanceData<AddonData>();
            auto holder = std::make_unique<std::shared_ptr<VisionCore>>(vc);
            auto ext = Napi::External<std::shared_ptr<VisionCore>>::New(env, holder.get());
            return data->vision_ctor.New({ext});
        });
}

void init_vision(Napi::Env env, Napi::Object exports, AddonData * data) {
    Napi::Function ctor = Vision::Define(env);
    data->vision_ctor = Napi::Persistent(ctor);
    exports.Set("Vision", ctor);
    exports.Set("loadVision", Napi::Function::New(env, LoadVision, "loadVision"));
}

} // namespace lra
