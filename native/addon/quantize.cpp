// Quantization helpers (ggml's own quantizers through the C API). Synchronous: no model involved.
#include "addon.h"

#include <cstring>

namespace lra {

// typeFromName(name: string): number (-1 when unknown)
static Napi::Value TypeFromName(const Napi::CallbackInfo & info) {
    const std::string name = arg_string(info[0], "name");
    if (name.find('\0') != std::string::npos) return Napi::Number::New(info.Env(), -1);
    return Napi::Number::New(info.Env(), lr_type_from_name(name.c_str()));
}

// typeRowBytes(type: number, nPerRow: number): number (0 when nPerRow does not fit the type's block)
static Napi::Value TypeRowBytes(const Napi::CallbackInfo & info) {
    const int32_t type = arg_int32(info[0], "type", 0, 1000);
    const int32_t n = arg_int32(info[1], "nPerRow", 1, INT32_MAX);
    return Napi::Number::New(info.Env(), (double) lr_type_row_bytes(type, n));
}

// quantize(type: number, src: Float32Array, nRows: number, nPerRow: number): Buffer
static Napi::Value Quantize(const Napi::CallbackInfo & info) {
    Napi::Env env = info.Env();
    const int32_t type = arg_int32(info[0], "type", 0, 1000);
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
        throw_type(env, "src must be a Float32Array, got " + describe(info[1]));
    }
    Napi::Float32Array src = info[1].As<Napi::Float32Array>();
    const int32_t n_rows = arg_int32(info[2], "nRows", 1, INT32_MAX);
    const int32_t n_per_row = arg_int32(info[3], "nPerRow", 1, INT32_MAX);
    const uint64_t want = (uint64_t) n_rows * (uint64_t) n_per_row;
    if (want != (uint64_t) src.ElementLength()) {
        throw_range(env, "src must hold nRows * nPerRow = " + std::to_string(want) + " floats, got " +
                             std::to_string(src.ElementLength()));
    }
    const size_t row_bytes = lr_type_row_bytes(type, n_per_row);
    if (row_bytes == 0) {
        // let the engine explain (unknown type, or a row length that does not fit the type's block)
        size_t n = 0;
        uint8_t probe = 0;
        const lr_status s = lr_quantize(type, src.Data(), n_rows, n_per_row, &probe, 0, &n);
        throw_status(env, s == LR_OK ? LR_ERR_INVALID_ARGUMENT : s, "quantize failed");
    }
    const size_t cap = row_bytes * (size_t) n_rows;
    std::vector<uint8_t> dst(cap);
    size_t n = 0;
    const lr_status s = lr_quantize(type, src.Data(), n_rows, n_per_row, dst.data(), dst.size(), &n);
    if (s != LR_OK) throw_status(env, s, "quantize failed");
    if (n > dst.size()) throw_status(env, LR_ERR_INTERNAL, "quantize reported more bytes than it wrote");
    return Napi::Buffer<uint8_t>::Copy(env, dst.data(), n);
}

void init_quantize(Napi::Env env, Napi::Object exports) {
    exports.Set("typeFromName", Napi::Function::New(env, TypeFromName, "typeFromName"));
    exports.Set("typeRowBytes", Napi::Function::New(env, TypeRowBytes, "typeRowBytes"));
    exports.Set("quantize", Napi::Function::New(env, Quantize, "quantize"));
}

} // namespace lra
