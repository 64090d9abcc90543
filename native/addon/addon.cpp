#include <napi.h>
#include "llava_rad.h"
static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    exports.Set("buildInfo", Napi::String::New(env, lr_build_info()));
    return exports;
}
NODE_API_MODULE(llava_rad, Init)
