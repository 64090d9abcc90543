// The Node addon: module entry point. Wraps the C API in llava_rad.h and nothing else.
#include "addon.h"

namespace lra {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    auto * data = new AddonData();
    env.SetInstanceData<AddonData>(data); // deleted by N-API when the env goes away
    // runs before N-API deletes the env's thread-safe functions (and before the instance data goes)
    env.AddCleanupHook([data]() { data->free_all_contexts(); });
    // process.exit() runs C++ static destructors (ggml's among them) without the env cleanup above: stop
    // every scheduler thread first, on the 'exit' event (emitted for process.exit() and a normal exit)
    try {
        Napi::Value process = env.Global().Get("process");
        if (process.IsObject()) {
            Napi::Value on = process.As<Napi::Object>().Get("on");
            if (on.IsFunction()) {
                Napi::Function stop = Napi::Function::New(
                    env, [data](const Napi::CallbackInfo &) { data->free_all_contexts(); }, "llavaRadStopContexts");
                on.As<Napi::Function>().Call(process, {Napi::String::New(env, "exit"), stop});
            }
        }
    } catch (const Napi::Error &) {
        // no process object (embedders): the env cleanup hook still runs
    }
    init_errors(env, exports);
    init_model(env, exports, data);
    init_context(env, exports, data);
    init_quantize(env, exports);
    init_vision(env, exports, data);
    init_bert(env, exports, data);
    init_radgraph(env, exports);
    init_clip(env, exports, data);
    exports.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
    return exports;
}

} // namespace lra

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return lra::Init(env, exports); }

NODE_API_MODULE(llava_rad, InitAddon)
